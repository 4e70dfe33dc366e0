//! End to end, DESIGN.md scenario 1 (`examples/order-db-to-cache-and-search/`): MariaDB `orders` →
//! MySQL CDC → Kafka → the Redis sink (a hash per order) and the Elasticsearch sink (a document per
//! order), run with the example's own connector configs (names, database, topic, keyspace and index
//! made unique). A writer inserts 10,000 orders, updates 3,000 and deletes 1,000 while the worker
//! is killed with `kill -9` and started again; then Redis and the search index must equal the
//! table: every row there with the same values, no deleted order left. Rows are written and read
//! with the `mariadb` client, the cache with `redis-cli`, the index over plain HTTP/1.1.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const EXAMPLE: &str = "examples/order-db-to-cache-and-search";

/// The example's `orders` table, read from its schema.sql (so the test runs the example's table).
fn orders_ddl() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE).join("schema.sql");
    let text = std::fs::read_to_string(&path).expect("the example's schema.sql");
    let start = text.find("CREATE TABLE orders").expect("CREATE TABLE orders in schema.sql");
    let end = start + text[start..].find(");").expect("end of CREATE TABLE orders") + 1;
    text[start..end].to_string()
}

const ORDERS: usize = 10_000;
const BATCH: usize = 100;
/// A batch's rows are updated this many rounds after they were inserted...
const UPDATE_LAG: usize = 10;
/// ...and some of them deleted this many rounds after.
const DELETE_LAG: usize = 20;
/// The worker is killed once this many orders are inserted.
const KILL_AFTER: usize = 5_000;

/// The columns of `orders`, as they must reach both stores.
const COLUMNS: [&str; 6] = ["id", "customer", "status", "total", "created_at", "updated_at"];

fn need(services: &Services, var: &str, service: &str) -> String {
    services.vars.get(var).cloned().unwrap_or_else(|| {
        panic!("{var} is not set: start the local services with `bash scripts/services.sh start {service}`")
    })
}

#[derive(Clone)]
struct Db {
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Db {
    fn load(s: &Services) -> Db {
        Db {
            host: need(s, "MYSQL_HOST", "mariadb"),
            port: need(s, "MYSQL_PORT", "mariadb"),
            user: need(s, "MYSQL_USER", "mariadb"),
            password: need(s, "MYSQL_PASSWORD", "mariadb"),
        }
    }

    /// Runs SQL with the `mariadb` client (UTC session, utf8mb4) and returns its tab-separated output.
    fn sql(&self, statements: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-N", "-B", "--default-character-set=utf8mb4"])
            .args(["-h", &self.host, "-P", &self.port, "-u", &self.user])
            .env("MYSQL_PWD", &self.password)
            .arg("--init-command=SET time_zone='+00:00'")
            .arg("-e")
            .arg(statements)
            .output()
            .expect("run the mariadb client");
        assert!(out.status.success(), "SQL failed: {}\n{statements}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A row of `orders` as the stores must show it: timestamps as Debezium's `io.debezium.time.Timestamp`
/// (milliseconds since the epoch, the DATETIME read as UTC), the total in cents.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    customer: String,
    status: String,
    cents: i64,
    created_at: i64,
    updated_at: i64,
}

fn final_rows(db: &Db, database: &str) -> BTreeMap<i64, Row> {
    db.sql(&format!(
        "SELECT id, customer, status, total, CAST(ROUND(UNIX_TIMESTAMP(created_at) * 1000) AS SIGNED),
                CAST(ROUND(UNIX_TIMESTAMP(updated_at) * 1000) AS SIGNED)
         FROM {database}.orders ORDER BY id"
    ))
    .lines()
    .map(|line| {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "row {line:?}");
        let int = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{s:?} in row {line:?}"));
        let row = Row {
            customer: f[1].to_string(),
            status: f[2].to_string(),
            cents: cents_of_text(f[3]).unwrap_or_else(|| panic!("total {:?} in row {line:?}", f[3])),
            created_at: int(f[4]),
            updated_at: int(f[5]),
        };
        (int(f[0]), row)
    })
    .collect()
}

/// "123.45" → 12345 (also "123", "123.4", "-0.50").
fn cents_of_text(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || frac.len() > 2 || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let cents = int.parse::<i64>().ok()? * 100 + format!("{frac:0<2}").parse::<i64>().ok()?;
    Some(if negative { -cents } else { cents })
}

/// A total in a search document: a JSON number (the Confluent sink writes Decimals as doubles)
/// or a decimal string.
fn cents_of_json(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| (f * 100.0).round() as i64),
        Value::String(s) => cents_of_text(s),
        _ => None,
    }
}

// --- the writer ---------------------------------------------------------------------------------

fn batch_ids(batch: usize) -> (usize, usize) {
    (batch * BATCH + 1, (batch + 1) * BATCH)
}

fn insert_batch(batch: usize) -> String {
    const NAMES: [&str; 4] = ["Ana", "Zoë", "Łukasz", "Chen"];
    let (lo, hi) = batch_ids(batch);
    let rows: Vec<String> = (lo..=hi)
        .map(|id| {
            let cents = (id * 7919) % 100_000 + 100;
            format!(
                "({id}, '{} {}', 'new', {}.{:02}, TIMESTAMP'2024-01-01 00:00:00.123' + INTERVAL {id} SECOND)",
                NAMES[id % NAMES.len()],
                id % 997,
                cents / 100,
                cents % 100
            )
        })
        .collect();
    format!("INSERT INTO orders (id, customer, status, total, created_at) VALUES {};", rows.join(", "))
}

/// 30 of a batch's 100 orders: status and total change (updated_at follows ON UPDATE).
fn update_batch(batch: usize) -> String {
    let (lo, hi) = batch_ids(batch);
    format!(
        "UPDATE orders SET status = 'shipped', total = total + 1.01 \
         WHERE id BETWEEN {lo} AND {hi} AND id % 10 IN (1, 2, 3);"
    )
}

/// 10 of a batch's 100 orders: updated ones (id % 10 = 3) in even batches, never updated ones in odd.
fn delete_batch(batch: usize) -> String {
    let (lo, hi) = batch_ids(batch);
    let m = [3, 5][batch % 2];
    format!("DELETE FROM orders WHERE id BETWEEN {lo} AND {hi} AND id % 10 = {m};")
}

/// Inserts, updates and deletes interleaved, one transaction per round; `inserted` counts orders.
fn write_orders(db: &Db, database: &str, inserted: &AtomicUsize) {
    let batches = ORDERS / BATCH;
    for round in 0..batches + DELETE_LAG {
        let mut sql = format!("USE {database}; BEGIN; ");
        if round < batches {
            sql += &insert_batch(round);
        }
        if (UPDATE_LAG..batches + UPDATE_LAG).contains(&round) {
            sql += &update_batch(round - UPDATE_LAG);
        }
        if round >= DELETE_LAG {
            sql += &delete_batch(round - DELETE_LAG);
        }
        sql += " COMMIT;";
        db.sql(&sql);
        inserted.store((round + 1).min(batches) * BATCH, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
    }
}

// --- the example's connector configs --------------------------------------------------------------

/// `${NAME}` (upper-case NAME) replaced by the services' value, JSON-escaped, as run.sh does;
/// `${topic}` and other connector templates are kept.
fn fill_placeholders(text: &str, vars: &HashMap<String, String>, file: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let len = after.find('}').unwrap_or(0);
        let name = &after[..len];
        if len > 0 && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            let value = vars.get(name).unwrap_or_else(|| {
                panic!(
                    "{file} uses ${{{name}}}, which the services env file does not define: \
                     run `bash scripts/services.sh start`"
                )
            });
            let quoted = serde_json::to_string(value).expect("a JSON string");
            out.push_str(&quoted[1..quoted.len() - 1]);
            rest = &after[len + 1..];
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// One of the example's connector files with its placeholders filled: (name, config).
fn example_connector(services: &Services, file: &str) -> (String, serde_json::Map<String, Value>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&fill_placeholders(&text, &services.vars, file))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = v["name"].as_str().unwrap_or_else(|| panic!("{file} has no name")).to_string();
    let config = v["config"].as_object().cloned().unwrap_or_else(|| panic!("{file} has no config object"));
    (name, config)
}

fn write_connector(dir: &Path, name: &str, config: serde_json::Map<String, Value>) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json!({"name": name, "config": config}).to_string()).expect("write connector file");
    path
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until every connector and its task are RUNNING; a FAILED one ends the test at once.
fn wait_running(sluice: &Sluice, names: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<Value> = names.iter().map(|n| connector_status(sluice.port, n)).collect();
        if let Some(failed) = statuses.iter().find(|s| s.to_string().contains("\"FAILED\"")) {
            panic!("a connector FAILED: {failed}\n--- worker log (tail) ---\n{}", tail(&sluice.log_text(), 80));
        }
        if names.iter().all(|n| running_tasks(sluice.port, n, 1).is_some()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connectors not RUNNING after 60 s: {statuses:?}\n--- worker log (tail) ---\n{}",
            tail(&sluice.log_text(), 80)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Polls `check` until it is true; after `timeout` fails with the worker's log.
fn wait_or_fail(sluice: &Sluice, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n--- worker log (tail) ---\n{}",
            tail(&sluice.log_text(), 80)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// --- Redis (redis-cli) ------------------------------------------------------------------------------

fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-u").arg(url).args(args).output().expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every hash whose key matches ARGV[1], as one JSON object {key: {field: value}} (one round trip).
const DUMP_HASHES: &str = "local out = {}
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local flat = redis.call('HGETALL', k)
    local h = {}
    for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
    out[k] = h
  end
until cursor == '0'
return cjson.encode(out)";

const DELETE_KEYS: &str = "local n = 0
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do n = n + redis.call('DEL', k) end
until cursor == '0'
return n";

fn redis_eval(url: &str, script: &str, pattern: &str) -> String {
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(["EVAL", script, "0", pattern])
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "redis-cli EVAL failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    text
}

type Hashes = BTreeMap<String, BTreeMap<String, String>>;

fn redis_hashes(url: &str, keyspace: &str) -> Hashes {
    let text = redis_eval(url, DUMP_HASHES, &format!("{keyspace}:*"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("redis-cli EVAL did not return the JSON object ({e}): {text}"))
}

/// What differs between the hashes and the table (empty: they match).
fn redis_problems(rows: &BTreeMap<i64, Row>, hashes: &Hashes, keyspace: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let expected_keys: BTreeSet<String> = rows.keys().map(|id| format!("{keyspace}:{id}")).collect();
    for key in hashes.keys().filter(|k| !expected_keys.contains(*k)) {
        problems.push(format!("{key} is in Redis but not in the table (deleted order?): {:?}", hashes[key]));
    }
    for (id, row) in rows {
        let key = format!("{keyspace}:{id}");
        let Some(h) = hashes.get(&key) else {
            problems.push(format!("{key} is missing"));
            continue;
        };
        let fields: BTreeSet<&str> = h.keys().map(String::as_str).collect();
        let ok = fields == COLUMNS.into_iter().collect::<BTreeSet<_>>()
            && h["id"] == id.to_string()
            && h["customer"] == row.customer
            && h["status"] == row.status
            && cents_of_text(&h["total"]) == Some(row.cents)
            && h["created_at"] == row.created_at.to_string()
            && h["updated_at"] == row.updated_at.to_string();
        if !ok {
            problems.push(format!("{key}: redis has {h:?}, the table {row:?}"));
        }
    }
    problems
}

// --- Elasticsearch (plain HTTP/1.1) ---------------------------------------------------------------

/// `host:port` of an `http://` URL.
fn host_port(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("only http:// search URLs are supported: {url}"));
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:9200")
    }
}

/// One request on its own connection: (status, body). Handles Content-Length and chunked bodies.
fn es_http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let raw = &response[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") { dechunk_bytes(raw) } else { raw.to_vec() };
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk_bytes(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw[size..].strip_prefix(b"\r\n").unwrap_or(&raw[size..]);
    }
    out
}

/// `_count` after a `_refresh` (`None`: no such index yet).
fn es_count(addr: &str, index: &str) -> Option<u64> {
    let (code, body) = es_http(addr, "POST", &format!("/{index}/_refresh"), None).expect("search server reachable");
    if code == 404 {
        return None;
    }
    assert_eq!(code, 200, "_refresh: {body}");
    let (code, body) = es_http(addr, "GET", &format!("/{index}/_count"), None).expect("_count");
    assert_eq!(code, 200, "_count: {body}");
    let count = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["count"].as_u64());
    Some(count.unwrap_or_else(|| panic!("_count answer without a count: {body}")))
}

/// The index as a searcher sees it after a refresh: (`_count`, `_id` → `_source`). A missing
/// index is empty.
fn es_documents(addr: &str, index: &str) -> (u64, BTreeMap<String, Value>) {
    let Some(count) = es_count(addr, index) else { return (0, BTreeMap::new()) };
    let query = json!({"size": 10_000, "query": {"match_all": {}}}).to_string();
    let (code, body) = es_http(addr, "POST", &format!("/{index}/_search"), Some(&query)).expect("_search");
    assert_eq!(code, 200, "_search: {}", body.chars().take(2000).collect::<String>());
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("_search answer is not JSON ({e})"));
    let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
    let docs =
        hits.into_iter().map(|h| (h["_id"].as_str().unwrap_or_default().to_string(), h["_source"].clone())).collect();
    (count, docs)
}

/// What differs between the index and the table (empty: they match).
fn es_problems(rows: &BTreeMap<i64, Row>, count: u64, docs: &BTreeMap<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    if count != rows.len() as u64 {
        problems.push(format!("_count is {count}, the table has {} rows", rows.len()));
    }
    let expected_ids: BTreeSet<String> = rows.keys().map(i64::to_string).collect();
    for id in docs.keys().filter(|id| !expected_ids.contains(*id)) {
        problems.push(format!("document {id} is in the index but not in the table (deleted order?): {}", docs[id]));
    }
    // A timestamp is the epoch milliseconds, as a number (or its digits).
    let millis = |v: &Value| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    for (id, row) in rows {
        let Some(doc) = docs.get(&id.to_string()) else {
            problems.push(format!("document {id} is missing"));
            continue;
        };
        let fields: BTreeSet<&str> =
            doc.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        let ok = fields == COLUMNS.into_iter().collect::<BTreeSet<_>>()
            && doc["id"].as_i64() == Some(*id)
            && doc["customer"] == row.customer.as_str()
            && doc["status"] == row.status.as_str()
            && cents_of_json(&doc["total"]) == Some(row.cents)
            && millis(&doc["created_at"]) == Some(row.created_at)
            && millis(&doc["updated_at"]) == Some(row.updated_at);
        if !ok {
            problems.push(format!("document {id}: the index has {doc}, the table {row:?}"));
        }
    }
    problems
}

fn summary(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(10).map(String::as_str).collect();
    format!("{} problem(s), first {}:\n  {}", problems.len(), shown.len(), shown.join("\n  "))
}

#[test]
fn orders_reach_redis_and_elasticsearch_across_kill_9() {
    let started = Instant::now();
    let services = Services::load();
    let kafka = services.kafka();
    let db = Db::load(&services);
    let redis_url = need(&services, "REDIS_URL", "redis");
    let es = host_port(&need(&services, "ELASTICSEARCH_URL", "elasticsearch"));

    // Unique names, so runs never see each other's data.
    let tag = unique("e2e").replace('-', "_");
    let database = format!("shop_{tag}");
    let prefix = format!("cdc_{tag}");
    let topic = format!("{prefix}.{database}.orders");
    let keyspace = format!("order_{tag}");
    let index = format!("orders_{tag}");
    db.sql(&format!("CREATE DATABASE {database}; USE {database}; {};", orders_ddl()));
    create_topic(&kafka, &topic);

    // The example's three configs, pointed at this test's database, topic, keyspace and index.
    let dir = tempfile::tempdir().expect("tmp");
    let (source_name, mut source) = example_connector(&services, "mysql-source.json");
    let (redis_name, mut redis) = example_connector(&services, "redis-sink.json");
    let (es_name, mut search) = example_connector(&services, "elasticsearch-sink.json");
    assert_eq!(redis["redis.type"], "HASH");
    assert_eq!(redis["transforms.unwrap.drop.tombstones"], "false", "deletes must reach the sinks as tombstones");
    assert_eq!(search["transforms.unwrap.drop.tombstones"], "false", "deletes must reach the sinks as tombstones");
    assert_eq!(search["behavior.on.null.values"], "delete");
    let server_id = 1_100_000 + std::process::id() % 100_000;
    source.insert("database.server.id".into(), json!(server_id.to_string()));
    source.insert("topic.prefix".into(), json!(prefix));
    source.insert("database.include.list".into(), json!(database));
    source.insert("table.include.list".into(), json!(format!("{database}\\.orders")));
    for sink in [&mut redis, &mut search] {
        sink.insert("topics".into(), json!(topic));
    }
    redis.insert("redis.keyspace".into(), json!(keyspace));
    search.insert("index.name.template".into(), json!(index));
    let names = [format!("{source_name}-{tag}"), format!("{redis_name}-{tag}"), format!("{es_name}-{tag}")];
    let files = [
        write_connector(dir.path(), &names[0], source),
        write_connector(dir.path(), &names[1], redis),
        write_connector(dir.path(), &names[2], search),
    ];
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let log = dir.path().join("sluice.log");

    let mut sluice = Sluice::standalone(&worker, &files, port, log.clone());
    wait_running(&sluice, &names);

    // A warm-up order seen in both stores shows that both sinks are assigned and writing, so the
    // kill below lands while they work. It is deleted at once: the check at the end finds it if
    // that delete is lost.
    let warm_up = ORDERS + 1;
    db.sql(&format!("USE {database}; INSERT INTO orders (id, customer, total) VALUES ({warm_up}, 'warm-up', 1.00);"));
    let warm_key = format!("{keyspace}:{warm_up}");
    let warm_doc = format!("/{index}/_doc/{warm_up}");
    wait_or_fail(&sluice, Duration::from_secs(90), "the warm-up order in Redis and the search index", || {
        redis_cli(&redis_url, &["EXISTS", &warm_key]) == "1"
            && es_http(&es, "GET", &warm_doc, None).is_some_and(|(code, _)| code == 200)
    });
    db.sql(&format!("USE {database}; DELETE FROM orders WHERE id = {warm_up};"));

    // The writer runs while the worker is killed and started again with the same files.
    let inserted = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, database, inserted) = (db.clone(), database.clone(), inserted.clone());
        std::thread::spawn(move || write_orders(&db, &database, &inserted))
    };
    wait_until(Duration::from_secs(120), "5,000 orders inserted", || {
        inserted.load(Ordering::SeqCst) >= KILL_AFTER || writer.is_finished()
    });
    if inserted.load(Ordering::SeqCst) < KILL_AFTER {
        let outcome = writer.join();
        panic!("the writer stopped after {} orders ({outcome:?})", inserted.load(Ordering::SeqCst));
    }
    let cached_at_kill = redis_hashes(&redis_url, &keyspace).len();
    let indexed_at_kill = es_count(&es, &index).unwrap_or(0);
    sluice.kill9();
    let inserted_at_kill = inserted.load(Ordering::SeqCst);
    let killed = Instant::now();
    sluice = Sluice::standalone(&worker, &files, port, log.clone());
    wait_running(&sluice, &names);
    let back_after = killed.elapsed();
    writer.join().expect("the writer thread");
    let written = Instant::now();

    // The table's final state: 10,000 inserted, 1,000 deleted, 2,500 of the rest shipped.
    let rows = final_rows(&db, &database);
    assert_eq!(rows.len(), ORDERS - ORDERS / 10, "rows in {database}.orders");
    assert_eq!(rows.values().filter(|r| r.status == "shipped").count(), 2_500);

    let deadline = written + Duration::from_secs(180);
    let mut last_report = Instant::now();
    let (hashes, count, docs) = loop {
        let hashes = redis_hashes(&redis_url, &keyspace);
        let (count, docs) = es_documents(&es, &index);
        let (redis_bad, es_bad) = (redis_problems(&rows, &hashes, &keyspace), es_problems(&rows, count, &docs));
        if redis_bad.is_empty() && es_bad.is_empty() {
            break (hashes, count, docs);
        }
        if Instant::now() > deadline {
            panic!(
                "after 180 s the stores still differ from the table ({} rows; redis {} keys, search _count {count}, \
                 {} docs read)\nredis: {}\nsearch: {}\n--- worker log (tail) ---\n{}",
                rows.len(),
                hashes.len(),
                docs.len(),
                summary(&redis_bad),
                summary(&es_bad),
                tail(&sluice.log_text(), 80)
            );
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "waiting: {} rows; redis {} keys ({} problems); search _count {count} ({} problems)",
                rows.len(),
                hashes.len(),
                redis_bad.len(),
                es_bad.len()
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "order pipeline: {} rows, redis {} keys, search {count} docs ({} read)",
        rows.len(),
        hashes.len(),
        docs.len()
    );
    eprintln!(
        "kill -9 at {inserted_at_kill} orders inserted ({cached_at_kill} cached, {indexed_at_kill} indexed), \
         RUNNING again {:.1} s later; the stores matched {:.1} s after the last write; {:.1} s in all",
        back_after.as_secs_f64(),
        written.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // Tidy the shared servers.
    drop(sluice);
    db.sql(&format!("DROP DATABASE {database}"));
    let _ = es_http(&es, "DELETE", &format!("/{index}"), None);
    redis_eval(&redis_url, DELETE_KEYS, &format!("{keyspace}:*"));
    redis_eval(&redis_url, DELETE_KEYS, &format!("com.redis.kafka.connect.sink.offset.*.{topic}.*"));
}
