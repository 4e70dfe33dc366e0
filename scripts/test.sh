#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one (README command b).
#   1. starts the local services (installing what is missing) unless they already run,
#   2. checks formatting and lints (cargo fmt --check, cargo clippy -D warnings),
#   3. runs every unit and integration test against the real servers,
#   4. stops the services it started (not the ones that were already running).
# CARGO_TARGET_DIR defaults to a cache outside the clone, so fresh clones reuse earlier builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CACHE:-$HOME/.cache/sluice}/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install the Rust toolchain (rustup) first" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Services that already run stay running; the ones started here are stopped at the end.
already=$(bash scripts/services.sh status 2>/dev/null | awk '$NF=="healthy"{print $1}' | tr '\n' ' ')
started_here() {
    for s in kafka mariadb redis s3 opensearch elasticsearch; do
        case " $already " in *" $s "*) ;; *) printf '%s ' "$s" ;; esac
    done
}
cleanup() {
    local mine
    mine=$(started_here)
    if [ -n "$mine" ] && [ -z "${SLUICE_KEEP_SERVICES:-}" ]; then
        # shellcheck disable=SC2086
        bash scripts/services.sh stop $mine || true
    fi
}
trap cleanup EXIT

start=$(date +%s)
# Tools the tests drive besides the servers: openssl makes the TLS tests' CA and certificates,
# socat puts a TLS front before the search server, curl is the HTTPS client.
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_ensure openssl:openssl socat:socat curl:curl
bash scripts/services.sh start
export SLUICE_ENV_FILE="$REPO/.local/services.env"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# Tests that need a server these machines cannot run (HDFS) list themselves here when skipped.
export SLUICE_SKIPPED_FILE="$REPO/.local/skipped-tests.txt"
rm -f "$SLUICE_SKIPPED_FILE"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$REPO/.local/test-output.txt"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$REPO/.local/test-output.txt" | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
echo "== finished in $(( $(date +%s) - start )) s"
if [ -s "$SLUICE_SKIPPED_FILE" ]; then
  echo "skipped (counted as passed above): $(wc -l < "$SLUICE_SKIPPED_FILE")"
  sed 's/^/  /' "$SLUICE_SKIPPED_FILE"
fi
# The closing line CI reads: the total over every test binary.
echo "summary: $(set -- $passed; echo "$1 passed, $2 failed")"
exit "$status"
