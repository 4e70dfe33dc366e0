#!/usr/bin/env bash
# Order DB -> cache and search index (DESIGN.md scenario 1), started only through the REST API:
#   MariaDB shop.orders (+ order_items) -> MySQL CDC source -> Kafka topic shop.shop.orders
#     -> Redis sink (hash order:<id>)  and  -> Elasticsearch sink (index orders, doc <id>)
# Needs sluice and the local services running: `bash scripts/up.sh` first.
#   bash examples/order-db-to-cache-and-search/run.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/../.."

CONNECTORS=(mysql-source redis-sink elasticsearch-sink)

# shellcheck source=examples/lib.sh
. "$HERE/../lib.sh"
load_env MYSQL_HOST MYSQL_PORT MYSQL_USER MYSQL_PASSWORD REDIS_URL ELASTICSEARCH_URL
ES="$ELASTICSEARCH_URL"

# The MariaDB client, as scripts/services.sh finds it (mariadb, else mysql).
MYSQL_CLI="$(command -v mariadb || command -v mysql || true)"
[ -n "$MYSQL_CLI" ] || die "neither the mariadb nor the mysql client is installed"
sql() { # sql [CLIENT ARGS...]: statements on stdin or with -e; tab-separated output, no headers
    MYSQL_PWD="$MYSQL_PASSWORD" "$MYSQL_CLI" --no-defaults --connect-timeout=5 -N -B \
        -h"$MYSQL_HOST" -P"$MYSQL_PORT" -u"$MYSQL_USER" "$@"
}
rcli() { redis-cli --no-auth-warning -u "$REDIS_URL" "$@"; }

step "connectors of an earlier run: DELETE (if present)"
for c in "${CONNECTORS[@]}"; do
    name="$(name_of "$HERE/$c.json")"
    code="$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$REST/connectors/$name")"
    case "$code" in 204) echo "deleted $name" ;; 404) ;; *) die "DELETE /connectors/$name answered $code" ;; esac
done

step "database shop (drop + create from schema.sql)"
sql <"$HERE/schema.sql"
sql -e "SHOW TABLES FROM shop"

step "connectors: POST to $REST/connectors"
for c in "${CONNECTORS[@]}"; do
    file="$HERE/$c.json"
    name="$(name_of "$file")"
    reply="$(render "$file" | curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary @- "$REST/connectors")"
    code="${reply##*$'\n'}"
    [ "$code" = 201 ] || die "POST $name answered $code: ${reply%$'\n'*}"
    echo "created $name"
done
for c in "${CONNECTORS[@]}"; do
    name="$(name_of "$HERE/$c.json")"
    wait_for "connector $name to be RUNNING" running "$name"
    echo "$name: $(curl -fsS "$REST/connectors/$name/status")"
done
STARTED=1

redis_has() { [ "$(rcli EXISTS "order:$1")" = 1 ]; }
redis_gone() { [ "$(rcli EXISTS "order:$1")" = 0 ]; }
redis_status_is() { [ "$(rcli HGET "order:$1" status)" = "$2" ]; }
es_code() { curl -s -o /dev/null -w '%{http_code}' "$ES/orders/_doc/$1"; }
es_has() { [ "$(es_code "$1")" = 200 ]; }
es_gone() { [ "$(es_code "$1")" = 404 ]; }
es_status_is() { local doc; doc="$(curl -s "$ES/orders/_doc/$1")"; grep -q "\"status\":\"$2\"" <<<"$doc"; }

show() { # show ID: the order as the cache and the search index have it
    echo "-- redis-cli HGETALL order:$1"
    rcli HGETALL "order:$1"
    echo "-- GET $ES/orders/_doc/$1"
    curl -s "$ES/orders/_doc/$1"
    echo
    # Searches see what was indexed before the last refresh.
    curl -s -o /dev/null -X POST "$ES/orders/_refresh"
    echo "-- POST $ES/orders/_search (customer alice, status $2)"
    curl -s -X POST -H 'Content-Type: application/json' "$ES/orders/_search" \
        -d "{\"query\":{\"bool\":{\"must\":[{\"match\":{\"customer\":\"alice\"}},{\"match\":{\"status\":\"$2\"}}]}}}"
    echo
}

step "insert an order with two items"
ID="$(sql -e "USE shop;
    INSERT INTO orders (customer, status, total) VALUES ('alice', 'new', 59.90);
    SET @o = LAST_INSERT_ID();
    INSERT INTO order_items (order_id, sku, qty, price) VALUES (@o, 'SKU-MUG', 2, 19.95), (@o, 'SKU-TEA', 1, 20.00);
    SELECT @o;")"
echo "order id $ID"
sql -e "SELECT * FROM shop.orders WHERE id = $ID; SELECT * FROM shop.order_items WHERE order_id = $ID"
wait_for "order:$ID in Redis" redis_has "$ID"
wait_for "orders/_doc/$ID in Elasticsearch" es_has "$ID"
show "$ID" new

step "update the order's status to shipped"
sql -e "UPDATE shop.orders SET status = 'shipped' WHERE id = $ID"
wait_for "status shipped in Redis" redis_status_is "$ID" shipped
wait_for "status shipped in Elasticsearch" es_status_is "$ID" shipped
show "$ID" shipped

step "delete the order (its items first)"
sql -e "USE shop; DELETE FROM order_items WHERE order_id = $ID; DELETE FROM orders WHERE id = $ID;"
wait_for "order:$ID to leave Redis" redis_gone "$ID"
wait_for "orders/_doc/$ID to be deleted from Elasticsearch" es_gone "$ID"
echo "-- redis-cli EXISTS order:$ID"
rcli EXISTS "order:$ID"
echo "-- GET $ES/orders/_doc/$ID"
curl -s -w '\nHTTP %{http_code}\n' "$ES/orders/_doc/$ID"

step "done"
echo "The connectors keep running: insert, update or delete rows in shop.orders and watch order:<id>"
echo "and $ES/orders/_doc/<id> follow. Remove them with: curl -X DELETE $REST/connectors/<name>"
