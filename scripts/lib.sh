# shellcheck shell=bash
# Shared helpers for the local-services scripts. Source it, don't run it.
#
# Paths (all overridable from the environment):
#   SLUICE_REPO          repo root (default: the parent of this scripts/ directory)
#   SLUICE_CACHE         per-user cache, reused by every clone (default: ~/.cache/sluice)
#   SLUICE_VENV          the Python venv with servers and readers (default: $SLUICE_CACHE/venv)
#   SLUICE_SERVICES_DIR  runtime state: pids, ports, data, logs (default: <repo>/.local/services)
#   SLUICE_SERVICES_ENV  the env file written by `services.sh start` (default: <services dir>/../services.env)

SLUICE_REPO="${SLUICE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
SLUICE_CACHE="${SLUICE_CACHE:-${HOME:-/root}/.cache/sluice}"
SLUICE_VENV="${SLUICE_VENV:-$SLUICE_CACHE/venv}"
SLUICE_SERVICES_DIR="${SLUICE_SERVICES_DIR:-$SLUICE_REPO/.local/services}"
# make it absolute so pid/cmdline checks and the env file do not depend on the cwd
case "$SLUICE_SERVICES_DIR" in /*) ;; *) SLUICE_SERVICES_DIR="$PWD/$SLUICE_SERVICES_DIR" ;; esac
SLUICE_SERVICES_ENV="${SLUICE_SERVICES_ENV:-$(dirname "$SLUICE_SERVICES_DIR")/services.env}"
# shellcheck disable=SC2034 # used by the scripts that source this file
SLUICE_PYTHON="$SLUICE_VENV/bin/python"

log()  { printf '[services] %s\n' "$*" >&2; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die()  { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# Run as root, or through sudo when we are not root.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) for: $*"
    fi
}

# apt_ensure CMD:PKG... -- installs the packages whose command is missing.
# `apt-get update` runs at most once per script run, and only if something is missing.
_SLUICE_APT_UPDATED=0
apt_ensure() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd="${pair%%:*}"; pkg="${pair#*:}"
        if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/usr/bin/$cmd" ]; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    # de-duplicate
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    if [ "$_SLUICE_APT_UPDATED" -eq 0 ]; then
        log "apt-get update (missing: ${missing[*]})"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        _SLUICE_APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# Path of a command, also looking in sbin dirs that may not be on a non-root PATH.
find_cmd() {
    local c
    c="$(command -v "$1" 2>/dev/null || true)"
    if [ -z "$c" ]; then
        for d in /usr/sbin /usr/bin /sbin /usr/local/sbin /usr/local/bin; do
            [ -x "$d/$1" ] && { c="$d/$1"; break; }
        done
    fi
    [ -n "$c" ] || return 1
    printf '%s\n' "$c"
}

# --- processes --------------------------------------------------------------------

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
    local pid="$1" state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# pid_matches PID EXE PORT: PID is alive, runs the executable EXE (resolved path),
# and its command line mentions PORT. Guards against killing a recycled PID.
pid_matches() {
    local pid="$1" exe="$2" port="$3" real cmdline
    pid_alive "$pid" || return 1
    real="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    real="${real% (deleted)}"
    [ -n "$real" ] && [ "$real" = "$exe" ] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    printf '%s\n' "$cmdline" | grep -Eq "(^|[^0-9])${port}([^0-9]|$)"
}

# kill_pid PID NAME: TERM, wait up to 10 s, then KILL.
kill_pid() {
    local pid="$1" name="$2" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    warn "$name (pid $pid) did not stop within 10 s after TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    warn "$name (pid $pid) still alive after KILL"
    return 1
}

# --- ports ------------------------------------------------------------------------

# pick_ports N PLUS_OFFSET EXCLUDE_CSV: prints N distinct free loopback ports.
# A port is free when 127.0.0.1:PORT can be bound (without SO_REUSEADDR, so this also
# fails when 0.0.0.0/:: holds it) and `ss` shows no socket on it in any state. With
# PLUS_OFFSET > 0, PORT+PLUS_OFFSET must be free too (SeaweedFS opens gRPC there).
# The range (SLUICE_PORT_RANGE, default 20000-22700) sits below Linux' ephemeral
# range, so outgoing connections do not grab a port between the pick and the bind.
pick_ports() {
    local n="$1" plus="$2" exclude="$3" used
    used="$(ss -Htan 2>/dev/null | awk '{print $4}' | sed -E 's/.*:([0-9]+)$/\1/' | sort -un | tr '\n' ',' || true)"
    python3 - "$n" "$plus" "${exclude},${used}" "${SLUICE_PORT_RANGE:-20000-22700}" <<'PY'
import random, socket, sys
n, plus = int(sys.argv[1]), int(sys.argv[2])
excl = {int(x) for x in sys.argv[3].split(",") if x.strip().isdigit()}
lo, hi = (int(x) for x in sys.argv[4].split("-"))
held, out = [], []
def grab(p):
    if p in excl or p > 65535:
        return None
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
        return s
    except OSError:
        s.close()
        return None
cands = list(range(lo, hi + 1))
random.shuffle(cands)
for p in cands:
    want = [p] + ([p + plus] if plus else [])
    if any(q in out or q - plus in out for q in want):
        continue
    socks = []
    for q in want:
        s = grab(q)
        if s is None:
            break
        socks.append(s)
    if len(socks) != len(want):
        for s in socks:
            s.close()
        continue
    held += socks
    out.append(p)
    if len(out) == n:
        break
if len(out) != n:
    sys.exit("no free ports in range %d-%d" % (lo, hi))
print(" ".join(map(str, out)))
PY
}

# tcp_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# http_code URL: prints the HTTP status (000 when nothing answers).
http_code() {
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true
}

# Write FILE atomically from stdin (temp file in the same directory + mv).
atomic_write() {
    local file="$1" tmp
    mkdir -p "$(dirname "$file")"
    tmp="$(mktemp "$(dirname "$file")/.$(basename "$file").XXXXXX")"
    cat >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$file"
}
