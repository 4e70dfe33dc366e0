# Shared by the examples' run.sh scripts (sourced; not run on its own). Expects HERE (the example's
# directory) and CONNECTORS (its connector JSON file names, without .json) to be set, and the
# current directory to be the repository root.
ENV_FILE=.local/services.env
WAIT_SECONDS="${WAIT_SECONDS:-60}"
REST="http://127.0.0.1:${SLUICE_REST_PORT:-8083}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

# load_env VAR...: reads .local/services.env and checks that each VAR is set and the REST API is up.
load_env() {
    local v
    [ -f "$ENV_FILE" ] || die "$ENV_FILE is missing: start sluice and its services with 'bash scripts/up.sh'"
    set -a
    # shellcheck source=/dev/null
    . "$ENV_FILE"
    set +a
    for v in "$@"; do
        [ -n "${!v:-}" ] || die "$v is not set in $ENV_FILE: is that service running? ('bash scripts/services.sh status')"
    done
    curl -fsS "$REST/" >/dev/null 2>&1 || die "no sluice REST API at $REST: run 'bash scripts/up.sh' (or set SLUICE_REST_PORT)"
}

# wait_for DESCRIPTION COMMAND...: runs COMMAND every 0.5 s until it succeeds; gives up after
# WAIT_SECONDS with a message saying what did not happen. Once the connectors are created
# (STARTED=1), a connector or task that FAILED ends the wait at once, with its trace.
STARTED=0
wait_for() {
    local what="$1" i
    shift
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        if "$@"; then return 0; fi
        [ "$STARTED" = 1 ] && no_failures
        sleep 0.5
    done
    die "gave up after ${WAIT_SECONDS}s waiting for $what"
}

no_failures() {
    local c status
    for c in "${CONNECTORS[@]}"; do
        status="$(curl -fsS "$REST/connectors/$(name_of "$HERE/$c.json")/status" 2>/dev/null || true)"
        if grep -q '"state":"FAILED"' <<<"$status"; then
            die "connector $(name_of "$HERE/$c.json") FAILED: $status"
        fi
    done
}

# A connector config with ${NAME} placeholders replaced by the values of .local/services.env
# (only upper-case names: ${topic} and other connector templates are left alone).
render() {
    local text name value
    text="$(cat "$1")"
    for name in $(grep -o '\${[A-Z_][A-Z0-9_]*}' "$1" | sort -u | tr -d '${}'); do
        [ -n "${!name+x}" ] || die "$1 uses \${$name}, which $ENV_FILE does not define"
        value="${!name//\\/\\\\}"
        value="${value//\"/\\\"}"
        text="${text//"\${$name}"/"$value"}"
    done
    printf '%s\n' "$text"
}

name_of() { grep -o '"name"[[:space:]]*:[[:space:]]*"[^"]*"' "$1" | head -1 | sed 's/.*"\([^"]*\)"$/\1/'; }

# running NAME: the connector and every one of its tasks (at least one) are RUNNING.
# A FAILED connector or task ends the script with the status (which has the trace).
running() {
    local status states
    status="$(curl -fsS "$REST/connectors/$1/status" 2>/dev/null)" || return 1
    if grep -q '"state":"FAILED"' <<<"$status"; then
        die "connector $1 FAILED: $status"
    fi
    states="$(grep -o '"state":"[A-Z]*"' <<<"$status" || true)"
    [ "$(grep -c . <<<"$states")" -ge 2 ] && ! grep -qv '"state":"RUNNING"' <<<"$states"
}
