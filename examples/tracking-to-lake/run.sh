#!/usr/bin/env bash
# Tracking events -> data lake, started only through the REST API:
#   POST /v1/batch (Segment's tracking API) -> http-tracking source on 127.0.0.1:8090
#     -> Kafka topic tracking.events (Connect structs, JSON with schemas)
#     -> Parquet sink -> s3://lake/topics/tracking.events/year=YYYY/month=MM/day=dd/hour=HH/*.parquet
#     -> Delta sink   -> Delta table s3://lake/delta/tracking.events, partitioned by date and hour
# Needs sluice and the local services running: `bash scripts/up.sh` first.
#   bash examples/tracking-to-lake/run.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/../.."

CONNECTORS=(http-tracking-source parquet-sink delta-sink)
BUCKET=lake
TOPIC=tracking.events
WRITE_KEY=example-write-key # write.keys in http-tracking-source.json
EVENTS=50

# shellcheck source=examples/lib.sh
. "$HERE/../lib.sh"
load_env S3_ENDPOINT S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY SLUICE_PYTHON
"$SLUICE_PYTHON" -c 'import pyarrow.parquet, deltalake' 2>/dev/null || die "$SLUICE_PYTHON cannot import pyarrow and deltalake: run 'bash scripts/services.sh start'"

# The collector's address, from its config (http.listener).
LISTENER="$(grep -o '"http.listener"[[:space:]]*:[[:space:]]*"[^"]*"' "$HERE/http-tracking-source.json" | sed 's/.*"\([^"]*\)"$/\1/')"
PORT="${LISTENER##*:}"
COLLECTOR="http://127.0.0.1:$PORT"

# lake count PREFIX | lake show PREFIX EXPECTED: the Parquet files under s3://lake/topics/<topic>/,
# read with pyarrow. count prints how many rows have a messageId starting with PREFIX (this run's
# events); show prints the files, their footers, the schema and this run's rows, and fails unless
# this run's rows are exactly EXPECTED distinct events.
lake() {
    "$SLUICE_PYTHON" - "$BUCKET/topics/$TOPIC" "$@" <<'PY'
import os
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

base, cmd, prefix = sys.argv[1:4]
scheme, host = os.environ["S3_ENDPOINT"].split("://", 1)
fs = pafs.S3FileSystem(endpoint_override=host, scheme=scheme, access_key=os.environ["S3_ACCESS_KEY_ID"],
                       secret_key=os.environ["S3_SECRET_ACCESS_KEY"], region=os.environ["S3_REGION"])
infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
files = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))

def ours(path):
    ids = pq.read_table(path, columns=["messageId"], filesystem=fs).column("messageId")
    return len(ids.filter(pc.starts_with(ids, pattern=prefix)))

counts = {f: ours(f) for f in files}
if cmd == "count":
    print(sum(counts.values()))
    sys.exit(0)

expected = int(sys.argv[4])
mine = [f for f in files if counts[f]]
print(f"{len(files)} Parquet files under s3://{base}/, {len(mine)} with this run's events:")
for f in mine:
    meta = pq.ParquetFile(f, filesystem=fs).metadata
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.startswith(b"kafka.")}
    print(f"  s3://{f}  rows={meta.num_rows}  kafka.offset.start={kv.get('kafka.offset.start')}"
          f"  kafka.offset.end={kv.get('kafka.offset.end')}")

print("\nschema (pyarrow):")
print(pq.read_schema(mine[0], filesystem=fs).remove_metadata())

# The whole topic directory as one Hive-partitioned dataset, as Spark, Trino or DuckDB see it.
table = ds.dataset(base, filesystem=fs, format="parquet", partitioning="hive").to_table()
run = table.filter(pc.starts_with(table["messageId"], pattern=prefix))
print(f"\ndataset s3://{base}/: {table.num_rows} rows in all, columns {table.schema.names[-4:]} from the paths")
print("this run's events per hour and type:")
per = run.group_by(["year", "month", "day", "hour", "type"]).aggregate([("messageId", "count")])
for r in sorted(per.to_pylist(), key=lambda r: (r["year"], r["month"], r["day"], r["hour"], r["type"])):
    day = "-".join(f"{int(r[k]):02d}" for k in ("year", "month", "day"))
    print(f"  {day} {int(r['hour']):02d}h  {r['type']:<9} {r['messageId_count']}")
print("first rows by event time:")
cols = ["timestamp", "type", "userId", "event", "name", "sourceName", "properties", "traits"]
for r in run.sort_by("timestamp").select(cols).slice(0, 4).to_pylist():
    print("  " + "  ".join(f"{c}={r[c]}" for c in cols if r[c] is not None))

rows, distinct = run.num_rows, len(pc.unique(run["messageId"]))
print(f"\nrows of this run: {rows}, distinct messageIds: {distinct}, events sent: {expected}")
sys.exit(0 if rows == expected and distinct == expected else 1)
PY
}

# The request body: EVENTS identify/page/track calls of five users, with event times spread over
# the last two hours (so they land in two or three hour directories), messageIds "<RUN>-<n>".
events_body() {
    "$SLUICE_PYTHON" - "$1" "$EVENTS" <<'PY'
import json
import sys
import time
from datetime import datetime, timezone

run, n = sys.argv[1], int(sys.argv[2])
now = time.time()
users = [f"user-{k}" for k in range(1, 6)]
pages = ["Home", "Pricing", "Docs", "Signup", "Checkout"]
actions = ["Product Viewed", "Added to Cart", "Order Completed"]

def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

batch = []
for i in range(n):
    user = users[i % len(users)]
    e = {"messageId": f"{run}-{i:04d}", "userId": user, "timestamp": iso(now - (n - 1 - i) * 7200 / (n - 1))}
    if i < len(users):
        e.update(type="identify", traits={"email": f"{user}@example.com", "plan": "pro" if i % 2 else "free"})
    elif i % 2:
        page = pages[i % len(pages)]
        e.update(type="page", name=page, properties={"path": "/" + page.lower()})
    else:
        e.update(type="track", event=actions[i % len(actions)], properties={"sku": f"SKU-{i % 7}", "price": 9.5 + i})
    batch.append(e)
print(json.dumps({"batch": batch, "context": {"library": {"name": "examples/tracking-to-lake/run.sh"}}}))
PY
}

step "bucket s3://$BUCKET at $S3_ENDPOINT (create if missing)"
code="$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:$S3_REGION:s3" \
    --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" "$S3_ENDPOINT/$BUCKET" || true)"
case "$code" in 200) echo "created $BUCKET" ;; 409) echo "$BUCKET exists" ;; *) die "PUT $S3_ENDPOINT/$BUCKET answered $code" ;; esac

step "connectors: PUT $REST/connectors/<name>/config (creates, or updates an earlier run's)"
source_name="$(name_of "$HERE/http-tracking-source.json")"
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$REST/connectors/$source_name")" = 404 ] &&
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT is in use: free it, or change http.listener in $HERE/http-tracking-source.json"
fi
for c in "${CONNECTORS[@]}"; do
    file="$HERE/$c.json"
    name="$(name_of "$file")"
    reply="$(render "$file" | "$SLUICE_PYTHON" -c 'import json, sys; json.dump(json.load(sys.stdin)["config"], sys.stdout)' |
        curl -s -w '\n%{http_code}' -X PUT -H 'Content-Type: application/json' --data-binary @- \
            "$REST/connectors/$name/config")"
    code="${reply##*$'\n'}"
    case "$code" in
        201) echo "created $name" ;;
        200) echo "updated $name" ;;
        *) die "PUT /connectors/$name/config answered $code: ${reply%$'\n'*}" ;;
    esac
done
for c in "${CONNECTORS[@]}"; do
    name="$(name_of "$HERE/$c.json")"
    wait_for "connector $name to be RUNNING" running "$name"
    echo "$name: $(curl -fsS "$REST/connectors/$name/status")"
done
STARTED=1
collector_up() { curl -fsS -o /dev/null "$COLLECTOR/health" 2>/dev/null; }
wait_for "the collector at $COLLECTOR/health" collector_up

RUN="run-$(date -u +%Y%m%dT%H%M%SZ)"
step "POST $COLLECTOR/v1/batch: $EVENTS identify/page/track events, messageIds $RUN-0000..."
BODY="$(events_body "$RUN")"
# 200 means Kafka has every event; 429 and 503 ask for a resend (Retry-After).
for ((attempt = 1; ; attempt++)); do
    reply="$(printf '%s' "$BODY" | curl -s -u "$WRITE_KEY:" -H 'Content-Type: application/json' \
        --data-binary @- -w '\n%{http_code}' "$COLLECTOR/v1/batch" || true)"
    code="${reply##*$'\n'}"
    [ "$code" = 200 ] && break
    case "$code" in
        000 | 429 | 503) [ "$attempt" -lt 10 ] || die "POST /v1/batch answered $code 10 times: ${reply%$'\n'*}" ;;
        *) die "POST /v1/batch answered $code: ${reply%$'\n'*}" ;;
    esac
    echo "answered $code, resending: ${reply%$'\n'*}"
    sleep 1
done
echo "200 ${reply%$'\n'*}"

step "Parquet files in s3://$BUCKET/topics/$TOPIC/ (a file is completed every 10 s: rotate.schedule.interval.ms)"
lake_has_all() {
    local n
    n="$(lake count "$RUN-")" || return 1
    [ "$n" -ge "$EVENTS" ]
}
wait_for "$EVENTS rows of this run in s3://$BUCKET/topics/$TOPIC/" lake_has_all
lake show "$RUN-" "$EVENTS" || die "the lake does not hold exactly the $EVENTS events sent"

# delta count PREFIX | delta show PREFIX EXPECTED: the Delta table s3://lake/delta/<topic>, read with
# delta-rs' Python binding, as count/show above.
delta() {
    "$SLUICE_PYTHON" - "s3://$BUCKET/delta/$TOPIC" "$(name_of "$HERE/delta-sink.json")-$TOPIC-0" "$@" <<'PY'
import os
import sys

import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

uri, app, cmd, prefix = sys.argv[1:5]
opts = {"AWS_ENDPOINT_URL": os.environ["S3_ENDPOINT"], "AWS_ACCESS_KEY_ID": os.environ["S3_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["S3_SECRET_ACCESS_KEY"], "AWS_REGION": os.environ["S3_REGION"],
        "AWS_ALLOW_HTTP": "true"}
try:
    dt = DeltaTable(uri, storage_options=opts)
except TableNotFoundError:
    print(0)
    sys.exit(0)
table = dt.to_pyarrow_table()
run = table.filter(pc.starts_with(table["messageId"], pattern=prefix))
if cmd == "count":
    print(run.num_rows)
    sys.exit(0)
expected = int(sys.argv[5])
print(f"Delta table {uri}: version {dt.version()}, {table.num_rows} rows, {len(dt.file_uris())} data files,"
      f" partitioned by {dt.metadata().partition_columns}")
print(f"txn {app}: last Kafka offset committed with the data = {dt.transaction_version(app)}")
print("last commits:", [h.get("operation") for h in dt.history(3)])
print("this run's events per date, hour and type:")
per = run.group_by(["date", "hour", "type"]).aggregate([("messageId", "count")])
for r in sorted(per.to_pylist(), key=lambda r: (r["date"], r["hour"], r["type"])):
    print(f"  {r['date']} {r['hour']}h  {r['type']:<9} {r['messageId_count']}")
rows, distinct = run.num_rows, len(pc.unique(run["messageId"]))
print(f"rows of this run: {rows}, distinct messageIds: {distinct}, events sent: {expected}")
sys.exit(0 if rows == expected and distinct == expected else 1)
PY
}

step "Delta table s3://$BUCKET/delta/$TOPIC (a commit at most 10 s after the first record: allowed.latency.ms)"
delta_has_all() {
    local n
    n="$(delta count "$RUN-")" || return 1
    [ "$n" -ge "$EVENTS" ]
}
wait_for "$EVENTS rows of this run in the Delta table" delta_has_all
delta show "$RUN-" "$EVENTS" || die "the Delta table does not hold exactly the $EVENTS events sent"

step "done"
echo "The connectors keep running. Send more events and see new files within 10 s, e.g.:"
echo "  curl -u $WRITE_KEY: -H 'Content-Type: application/json' -d '{\"userId\":\"user-1\",\"event\":\"Clicked\"}' $COLLECTOR/v1/track"
echo "Remove them with: curl -X DELETE $REST/connectors/<name>"
