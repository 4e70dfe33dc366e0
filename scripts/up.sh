#!/usr/bin/env bash
# Starts sluice locally with its services and the example pipeline (README command a):
#   local services (installed if missing) -> release build -> `sluice standalone` in the background
#   with examples/file-pipeline (file -> Kafka topic example.lines -> .local/example/output.txt),
#   REST API on 127.0.0.1:${SLUICE_REST_PORT:-8083}.
#   scripts/up.sh          start (idempotent)
#   scripts/up.sh down     stop sluice and the services (and reset the example's state)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CACHE:-$HOME/.cache/sluice}/target}"
export SLUICE_REST_PORT="${SLUICE_REST_PORT:-8083}"
STATE=.local/example
PIDFILE=$STATE/sluice.pid
mkdir -p "$STATE"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && grep -q sluice "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null; }

if [ "${1:-}" = "down" ]; then
    if running; then
        kill -TERM "$(cat "$PIDFILE")"
        for _ in $(seq 1 100); do running || break; sleep 0.1; done
        echo "sluice stopped"
    fi
    rm -f "$PIDFILE"
    bash scripts/services.sh stop
    # The local broker keeps topics in memory: with it gone, the example's offsets and output
    # would describe data that no longer exists. Start the example afresh next time.
    rm -rf "$STATE"
    exit 0
fi

bash scripts/services.sh start
set -a; . .local/services.env; set +a

if running; then
    echo "sluice already running (pid $(cat "$PIDFILE")), REST on http://127.0.0.1:$SLUICE_REST_PORT"
    exit 0
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$SLUICE_REST_PORT") 2>/dev/null; then
    echo "error: port $SLUICE_REST_PORT is in use; set SLUICE_REST_PORT to a free port" >&2
    exit 1
fi

cargo build --release --locked --bin sluice
BIN="$CARGO_TARGET_DIR/release/sluice"
nohup "$BIN" standalone examples/file-pipeline/worker.properties \
    examples/file-pipeline/file-source.properties examples/file-pipeline/file-sink.json \
    >"$STATE/sluice.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$SLUICE_REST_PORT/" >/dev/null 2>&1 && break
    running || { echo "sluice exited; see $STATE/sluice.log" >&2; tail -20 "$STATE/sluice.log" >&2; exit 1; }
    sleep 0.2
done
echo "sluice is running (pid $(cat "$PIDFILE")); logs: $STATE/sluice.log"
echo "REST API:   curl http://127.0.0.1:$SLUICE_REST_PORT/connectors"
echo "pipeline:   examples/file-pipeline/input.txt -> Kafka example.lines -> $STATE/output.txt"
echo "stop:       scripts/up.sh down"
