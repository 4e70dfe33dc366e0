//! MySQL/MariaDB CDC against the real MariaDB (binlog ROW) and the real broker: Debezium's event
//! format for snapshot and streamed rows of every common column type, DDL mid-stream, deletes with
//! tombstones, kill -9 restarts without loss, and clear failures for bad credentials and a purged
//! binlog. Rows are written with the `mariadb` command-line client, records read with a plain
//! Kafka consumer and the JSON converter's output parsed as JSON.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

struct Db {
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Db {
    fn load(s: &Services) -> Db {
        let get = |k: &str| {
            s.vars.get(k).cloned().unwrap_or_else(|| {
                panic!("{k} is not set: start MariaDB with `bash scripts/services.sh start mariadb`")
            })
        };
        Db {
            host: get("MYSQL_HOST"),
            port: get("MYSQL_PORT"),
            user: get("MYSQL_USER"),
            password: get("MYSQL_PASSWORD"),
        }
    }

    /// Runs SQL with the `mariadb` client (UTC session) and returns its tab-separated output.
    fn sql(&self, statements: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-N", "-B", "-h", &self.host, "-P", &self.port, "-u", &self.user])
            .arg(format!("-p{}", self.password))
            .arg("--init-command=SET time_zone='+00:00'")
            .arg("-e")
            .arg(statements)
            .output()
            .expect("run the mariadb client");
        assert!(out.status.success(), "SQL failed: {}\n{statements}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn connector(&self, name: &str, prefix: &str, database: &str, extra: Value) -> String {
        let mut config = json!({
            "connector.class": "io.debezium.connector.mysql.MySqlConnector",
            "database.hostname": self.host,
            "database.port": self.port,
            "database.user": self.user,
            "database.password": self.password,
            "database.server.id": next_server_id().to_string(),
            "topic.prefix": prefix,
            "database.include.list": database,
            "snapshot.fetch.size": "7",
        });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        json!({"name": name, "config": config}).to_string()
    }
}

/// A replica id no other test uses at the same time.
fn next_server_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = (std::process::id() % 10_000) * 100 + 100_000;
    base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn json_worker(dir: &std::path::Path, kafka: &str, port: u16) -> std::path::PathBuf {
    worker_properties(
        dir,
        kafka,
        port,
        "key.converter=org.apache.kafka.connect.json.JsonConverter\n\
         value.converter=org.apache.kafka.connect.json.JsonConverter",
    )
}

/// Every record of a topic as (key, value) JSON, reading until `quiet` passes without one.
fn read_records(kafka: &str, topic: &str, quiet: Duration) -> Vec<(Value, Value)> {
    use rdkafka::Message;
    let parse = |b: Option<&[u8]>| b.map_or(Value::Null, |b| serde_json::from_slice(b).unwrap_or(Value::Null));
    read_messages(kafka, topic, quiet).iter().map(|m| (parse(m.key()), parse(m.payload()))).collect()
}

/// Waits until the topic holds at least `n` records, and returns them all.
fn wait_records(kafka: &str, topic: &str, n: usize, timeout: Duration) -> Vec<(Value, Value)> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = read_records(kafka, topic, Duration::from_millis(1500));
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
    }
}

fn db_name(prefix: &str) -> String {
    unique(prefix).replace('-', "_")
}

/// One test's setup: a fresh database (`ddl` run in it), a worker directory with JSON converters,
/// and the file of connector `cdc` capturing the database (Debezium keys plus `extra`).
struct Cdc {
    services: Services,
    kafka: String,
    db: Db,
    database: String,
    dir: tempfile::TempDir,
    port: u16,
    worker: std::path::PathBuf,
    prefix: String,
    connector: std::path::PathBuf,
}

impl Cdc {
    fn new(name: &str, ddl: &str, extra: Value) -> Cdc {
        let services = Services::load();
        let kafka = services.kafka();
        let db = Db::load(&services);
        let database = db_name(name);
        db.sql(&format!("CREATE DATABASE {database}; USE {database}; {ddl}"));
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let worker = json_worker(dir.path(), &kafka, port);
        let prefix = db_name(&format!("{name}p"));
        // Standalone workers take their connectors from the command line, so each restart runs it again.
        let connector = dir.path().join("cdc.json");
        std::fs::write(&connector, db.connector("cdc", &prefix, &database, extra)).expect("write");
        Cdc { services, kafka, db, database, dir, port, worker, prefix, connector }
    }
}

const TYPES_TABLE: &str = "CREATE TABLE types (
    id INT NOT NULL PRIMARY KEY,
    t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, m MEDIUMINT, i INT, iu INT UNSIGNED,
    b BIGINT, bu BIGINT UNSIGNED, bit1 BIT(1), bits BIT(12), f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(30,10),
    dt DATE, tm TIME, tm6 TIME(6), dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6), ts TIMESTAMP(6) NULL,
    y YEAR, c CHAR(5), vc VARCHAR(50), tx TEXT, l1 VARCHAR(10) CHARACTER SET latin1,
    bin BINARY(4), vb VARBINARY(10), bl BLOB, e ENUM('small','medium','large'), st SET('a','b','c'), j JSON,
    n INT NULL
)";

const TYPES_VALUES: &str = "-5, 250, -300, 65000, -8000000, -2000000000, 4000000000,
    -9000000000000, 18446744073709551615, b'1', b'101000000011', 1.5, -2.25, 12.34, -12345678901234567890.0123456789,
    '2024-02-29', '-838:59:59', '12:34:56.123456', '2024-01-02 03:04:05', '2024-01-02 03:04:05.678',
    '1969-12-31 23:59:59.999999', '2024-01-02 03:04:05.123456',
    2024, 'ab', 'héllo ✓', 'long text', 'café', x'01', x'00ff', x'deadbeef', 'medium', 'a,c', '{\"k\": [1, 2]}', NULL";

fn check_types_row(after: &Value) {
    let expect = json!({
        "t": -5, "tu": 250, "s": -300, "su": 65000, "m": -8000000, "i": -2000000000, "iu": 4000000000u64,
        "b": -9000000000000i64, "bu": -1, "bit1": true, "bits": "Awo=", "f": 1.5, "d": -2.25,
        "dec1": "BNI=", "dt": 19782, "tm": -3020399000000i64, "tm6": 45296123456i64,
        "dtm": 1704164645000i64, "dtm3": 1704164645678i64, "dtm6": -1, "ts": "2024-01-02T03:04:05.123456Z",
        "y": 2024, "c": "ab", "vc": "héllo ✓", "tx": "long text", "l1": "café", "bin": "AQAAAA==", "vb": "AP8=",
        "bl": "3q2+7w==", "e": "medium", "st": "a,c", "n": null,
    });
    for (k, v) in expect.as_object().expect("object") {
        assert_eq!(&after[k], v, "column {k} in {after}");
    }
    // MariaDB stores JSON as text: the document comes through as written.
    assert_eq!(after["j"], "{\"k\": [1, 2]}", "{after}");
    assert!(after["dec2"].is_string(), "{after}");
}

fn field_schema<'a>(envelope_schema: &'a Value, field: &str, column: &str) -> &'a Value {
    let part = envelope_schema["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["field"] == field))
        .expect("envelope field");
    part["fields"].as_array().and_then(|f| f.iter().find(|x| x["field"] == column)).expect("column schema")
}

#[test]
fn snapshot_then_stream_every_type_ddl_and_deletes() {
    let _shared = shared_server();
    let ddl = format!(
        "{TYPES_TABLE};
         INSERT INTO types VALUES (1, {TYPES_VALUES});
         CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(40) NOT NULL, total DECIMAL(10,2));
         INSERT INTO orders (customer, total) VALUES {};",
        (1..=20).map(|i| format!("('c{i}', {i}.50)")).collect::<Vec<_>>().join(",")
    );
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new("cdc", &ddl, json!({}));
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));

    // Snapshot: 20 orders (3 chunks of 7), op r, first/true/last markers, key = primary key.
    let orders_topic = format!("{prefix}.{database}.orders");
    let snap = wait_records(&kafka, &orders_topic, 20, Duration::from_secs(60));
    assert_eq!(snap.len(), 20, "snapshot records: {snap:?}\n{}", sluice.log_text());
    let ids: Vec<i64> = snap.iter().map(|(k, _)| k["payload"]["id"].as_i64().expect("key id")).collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    let (key, value) = &snap[0];
    assert_eq!(key["schema"]["name"], format!("{prefix}.{database}.orders.Key"));
    assert_eq!(value["schema"]["name"], format!("{prefix}.{database}.orders.Envelope"));
    let p = &value["payload"];
    assert_eq!(p["op"], "r");
    assert_eq!(p["before"], Value::Null);
    assert_eq!(p["after"]["customer"], "c1");
    assert_eq!(p["source"]["snapshot"], "first", "{snap:?}\n{}", sluice.log_text());
    assert_eq!(p["source"]["db"], database.as_str());
    assert_eq!(p["source"]["table"], "orders");
    assert_eq!(p["source"]["connector"], "mysql");
    assert_eq!(p["source"]["name"], prefix.as_str());
    assert!(p["source"]["file"].as_str().is_some_and(|f| f.starts_with("binlog.")), "{p}");
    assert_eq!(snap[19].1["payload"]["source"]["snapshot"], "last_in_data_collection");
    assert!(snap[1..19].iter().all(|(_, v)| v["payload"]["source"]["snapshot"] == "true"));
    let dec = field_schema(&value["schema"], "after", "total");
    assert_eq!(dec["name"], "org.apache.kafka.connect.data.Decimal", "{dec}");
    assert_eq!(dec["parameters"]["scale"], "2", "{dec}");
    assert_eq!(dec["parameters"]["connect.decimal.precision"], "10", "{dec}");

    let types_topic = format!("{prefix}.{database}.types");
    let types = wait_records(&kafka, &types_topic, 1, Duration::from_secs(30));
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].1["payload"]["source"]["snapshot"], "last");
    let snapshot_after = types[0].1["payload"]["after"].clone();
    check_types_row(&snapshot_after);
    let schema = &types[0].1["schema"];
    for (column, name) in [
        ("dt", "io.debezium.time.Date"),
        ("tm6", "io.debezium.time.MicroTime"),
        ("dtm", "io.debezium.time.Timestamp"),
        ("dtm6", "io.debezium.time.MicroTimestamp"),
        ("ts", "io.debezium.time.ZonedTimestamp"),
        ("y", "io.debezium.time.Year"),
        ("e", "io.debezium.data.Enum"),
        ("st", "io.debezium.data.EnumSet"),
        ("bits", "io.debezium.data.Bits"),
    ] {
        assert_eq!(field_schema(schema, "after", column)["name"], name, "schema of {column}");
    }
    assert_eq!(field_schema(schema, "after", "e")["parameters"]["allowed"], "small,medium,large");
    assert_eq!(field_schema(schema, "after", "t")["type"], "int16");
    assert_eq!(field_schema(schema, "after", "iu")["type"], "int64");

    // Streaming: the same values through the binlog decode to the same JSON as the snapshot's.
    db.sql(&format!("USE {database}; INSERT INTO types VALUES (2, {TYPES_VALUES});"));
    let types = wait_records(&kafka, &types_topic, 2, Duration::from_secs(30));
    assert_eq!(types.len(), 2, "{}", sluice.log_text());
    let streamed = &types[1].1["payload"];
    assert_eq!(streamed["op"], "c");
    assert_eq!(streamed["source"]["snapshot"], "false");
    let mut streamed_after = streamed["after"].clone();
    streamed_after["id"] = json!(1);
    assert_eq!(streamed_after, snapshot_after, "binlog and snapshot decode differently");

    // One transaction with insert, update and delete; then DDL and a row with the new column.
    db.sql(&format!(
        "USE {database}; BEGIN; INSERT INTO orders (customer, total) VALUES ('new', 1.00);
         UPDATE orders SET total = 99.99 WHERE id = 2; DELETE FROM orders WHERE id = 3; COMMIT;
         ALTER TABLE orders ADD COLUMN note VARCHAR(20) NULL;
         INSERT INTO orders (customer, total, note) VALUES ('after-ddl', 2.00, 'hi');"
    ));
    // The stream reads a DDL's table definition when it reaches it (no DDL parser): the second
    // ALTER waits until the first has been streamed, or the first could be recorded with the
    // second's columns (a documented limitation, not what this test checks).
    wait_records(&kafka, &orders_topic, 25, Duration::from_secs(30));
    db.sql(&format!(
        "USE {database}; ALTER TABLE orders DROP COLUMN note;
         UPDATE orders SET customer = 'dropped' WHERE id = 1;"
    ));
    let all = wait_records(&kafka, &orders_topic, 26, Duration::from_secs(30));
    let stream: Vec<&(Value, Value)> = all[20..].iter().collect();
    assert_eq!(stream.len(), 6, "{stream:?}\n{}", sluice.log_text());
    let ops: Vec<Value> = stream.iter().map(|(_, v)| v["payload"]["op"].clone()).collect();
    assert_eq!(ops, vec![json!("c"), json!("u"), json!("d"), Value::Null, json!("c"), json!("u")]);
    assert_eq!(stream[1].1["payload"]["before"]["total"], "APo=", "2.50 → 250 → base64");
    assert_eq!(stream[1].1["payload"]["after"]["total"], "Jw8=", "99.99 → 9999 → base64");
    assert_eq!(stream[2].1["payload"]["before"]["id"], 3);
    assert_eq!(stream[2].1["payload"]["after"], Value::Null);
    assert_eq!(stream[3].0["payload"]["id"], 3, "the tombstone has the deleted row's key");
    assert_eq!(stream[4].1["payload"]["after"]["note"], "hi");
    assert!(stream[5].1["payload"]["after"].get("note").is_none(), "dropped column is gone: {:?}", stream[5]);
    // Same transaction: same restart position, increasing event/row.
    let src = |i: usize| stream[i].1["payload"]["source"].clone();
    assert_eq!(src(0)["file"], src(2)["file"]);
    assert!(src(0)["pos"].as_i64() < src(2)["pos"].as_i64());

    // Schema changes reach the <prefix> topic with the DDL text.
    let changes = wait_records(&kafka, &prefix, 2, Duration::from_secs(10));
    let ddls: Vec<&str> = changes.iter().filter_map(|(_, v)| v["payload"]["ddl"].as_str()).collect();
    assert!(ddls.iter().any(|d| d.contains("ADD COLUMN note")), "{ddls:?}");
    // With Debezium's tableChanges: the table as the DDL left it, in Debezium's schema.
    let alter = changes
        .iter()
        .map(|(_, v)| v)
        .find(|v| v["payload"]["ddl"].as_str().is_some_and(|d| d.contains("ADD COLUMN note")))
        .expect("the ALTER");
    let change = &alter["payload"]["tableChanges"][0];
    assert_eq!(change["type"], "ALTER", "{alter}");
    assert_eq!(change["id"], json!(format!("\"{database}\".\"orders\"")));
    assert_eq!(change["table"]["primaryKeyColumnNames"], json!(["id"]));
    let columns = change["table"]["columns"].as_array().expect("columns");
    assert_eq!(
        columns.last().map(|c| (c["name"].clone(), c["position"].clone())),
        Some((json!("note"), json!(columns.len())))
    );
    assert!(columns.iter().all(|c| c["jdbcType"].is_i64() && c["typeName"].is_string()), "{columns:?}");
    let table_schema = alter["schema"]["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["field"] == "tableChanges"))
        .map(|f| f["items"]["fields"][2]["name"].clone());
    assert_eq!(table_schema, Some(json!("io.debezium.connector.schema.Table")));

    // A restart resumes after the last acknowledged row: nothing is sent again.
    assert_eq!(sluice.terminate(), Some(0));
    let sluice2 = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    wait_until(Duration::from_secs(30), "cdc RUNNING after restart", || running_tasks(port, "cdc", 1).is_some());
    db.sql(&format!("USE {database}; INSERT INTO orders (customer, total) VALUES ('post-restart', 3.00);"));
    let all = wait_records(&kafka, &orders_topic, 27, Duration::from_secs(30));
    assert_eq!(all.len(), 27, "exactly one new record after the restart: {:?}\n{}", &all[20..], sluice2.log_text());
    assert_eq!(all[26].1["payload"]["after"]["customer"], "post-restart");
    db.sql(&format!("DROP DATABASE {database}"));
}

#[test]
fn kill9_while_streaming_loses_no_row() {
    let _shared = shared_server();
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new(
        "cdckill",
        "CREATE TABLE ev (id INT PRIMARY KEY, v VARCHAR(32));",
        json!({"max.batch.size": "100", "provide.transaction.metadata": "true"}),
    );
    let log = dir.path().join("sluice.log");
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    wait_until(Duration::from_secs(30), "cdc RUNNING", || running_tasks(port, "cdc", 1).is_some());

    // A writer commits transactions of 10 rows while the worker is killed five times.
    let writer_db =
        Db { host: db.host.clone(), port: db.port.clone(), user: db.user.clone(), password: db.password.clone() };
    let writer_database = database.clone();
    let txns = 150;
    let writer = std::thread::spawn(move || {
        for t in 0..txns {
            let rows = (0..10).map(|r| format!("({}, 'v{t}-{r}')", t * 10 + r + 1)).collect::<Vec<_>>().join(",");
            writer_db.sql(&format!("USE {writer_database}; BEGIN; INSERT INTO ev VALUES {rows}; COMMIT;"));
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(1200 + 300 * round));
        sluice.kill9();
        sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    }
    writer.join().expect("writer");
    let total = txns * 10;
    let topic = format!("{prefix}.{database}.ev");
    let records = wait_records(&kafka, &topic, total, Duration::from_secs(90));
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for (k, v) in &records {
        assert_eq!(v["payload"]["op"], "c", "{v}");
        *counts.entry(k["payload"]["id"].as_i64().expect("id")).or_default() += 1;
    }
    let missing: Vec<i64> = (1..=total as i64).filter(|i| !counts.contains_key(i)).collect();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    eprintln!("kill -9 x5: {} records, {} distinct ids, {duplicates} duplicates", records.len(), counts.len());
    assert!(missing.is_empty(), "rows lost across kill -9: {missing:?}\n{}", sluice.log_text());
    // Transaction metadata survives the kills: every transaction's END counts its 10 rows, also
    // when the worker restarted inside it (the counts so far are kept in the offset).
    let frames = read_records(&kafka, &format!("{prefix}.transaction"), Duration::from_millis(1500));
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    for (_, f) in &frames {
        if f["payload"]["status"] == "END" {
            let id = f["payload"]["id"].as_str().unwrap_or("").to_string();
            let count = f["payload"]["event_count"].as_i64().unwrap_or(-1);
            assert_eq!(count, 10, "END of {id}: {f}");
            ends.insert(id, count);
        }
    }
    assert!(ends.len() >= txns, "{} transactions ended of {txns}", ends.len());
    db.sql(&format!("DROP DATABASE {database}"));
}

#[test]
fn bad_config_and_bad_credentials_fail_with_reasons() {
    let _shared = shared_server();
    let services = Services::load();
    let kafka = services.kafka();
    let db = Db::load(&services);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = json_worker(dir.path(), &kafka, port);
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));

    // Invalid config: rejected before anything connects, naming the fields.
    let bad = db.connector(
        "bad",
        "p",
        "x",
        json!({"table.include.list": "a.b", "table.exclude.list": "c.d", "snapshot.mode": "sometimes", "database.port": "0"}),
    );
    let (code, body) = http(port, "POST", "/connectors", Some(&bad)).expect("POST");
    assert_eq!(code, 400, "{body}");
    for needle in ["snapshot.mode", "database.port"] {
        assert!(body.contains(needle), "{needle} in {body}");
    }

    // Wrong password: the task fails and its trace says why.
    let wrong = db.connector("denied", &unique("den").replace('-', "_"), "x", json!({"database.password": "wrong"}));
    let (code, body) = http(port, "POST", "/connectors", Some(&wrong)).expect("POST");
    assert_eq!(code, 201, "{body}");
    wait_until(Duration::from_secs(30), "denied FAILED", || {
        connector_status(port, "denied")["tasks"][0]["state"] == "FAILED"
    });
    let trace = connector_status(port, "denied")["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    assert!(trace.contains("rejected the credentials"), "{trace}");
    drop(sluice);
}

#[test]
fn purged_binlog_fails_naming_the_file() {
    let _shared = shared_server();
    let services = Services::load();
    let kafka = services.kafka();
    let db = Db::load(&services);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = json_worker(dir.path(), &kafka, port);
    // An offset at a binlog file the server never had (as after a purge).
    let prefix = unique("purged").replace('-', "_");
    std::fs::write(
        dir.path().join("offsets.json"),
        json!({"version": 1, "offsets": [{"key": ["purged", {"server": prefix}], "value": {"file": "binlog.999999", "pos": 4}}]})
            .to_string(),
    )
    .expect("offsets");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let config = db.connector("purged", &prefix, "nothing_here", json!({}));
    let (code, body) = http(port, "POST", "/connectors", Some(&config)).expect("POST");
    assert_eq!(code, 201, "{body}");
    wait_until(Duration::from_secs(30), "purged FAILED", || {
        connector_status(port, "purged")["tasks"][0]["state"] == "FAILED"
    });
    let trace = connector_status(port, "purged")["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    assert!(trace.contains("binlog.999999") && trace.contains("when_needed"), "{trace}\n{}", sluice.log_text());
}

/// How often each id appears as a record key (`{"id":N}` from the schemaless JSON converter) in
/// every partition of `topic`, reading until `quiet` passes without a record.
fn count_ids(kafka: &str, topic: &str, max_id: usize, quiet: Duration) -> Vec<u16> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("cdc-count"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut counts = vec![0u16; max_id + 1];
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = m.key().unwrap_or_default();
            let digits: String = key.iter().filter(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
            let id: usize =
                digits.parse().unwrap_or_else(|_| panic!("key without id: {:?}", String::from_utf8_lossy(key)));
            counts[id.min(max_id)] = counts[id.min(max_id)].saturating_add(1);
            last = Instant::now();
        }
    }
    counts
}

/// The `snapshot_key` of the stored offset (standalone offsets file), if the snapshot is running.
fn stored_snapshot_key(offsets: &std::path::Path) -> Option<i64> {
    let text = std::fs::read_to_string(offsets).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    // The key is the array of primary-key values as text.
    v["offsets"].as_array()?.iter().find_map(|o| o["value"]["snapshot_key"][0].as_str()?.parse().ok())
}

#[test]
fn million_row_snapshot_killed_twice_resumes_without_loss() {
    let _shared = shared_server();
    let rows = 1_000_000usize;
    let ddl = format!(
        "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(24) NOT NULL);
         INSERT INTO big SELECT seq, CONCAT('row-', seq) FROM seq_1_to_{rows};"
    );
    let extra = json!({
        "snapshot.fetch.size": "10000",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
    });
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new("cdcbig", &ddl, extra);
    let log = dir.path().join("sluice.log");
    let offsets = dir.path().join("offsets.json");
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    // Kill -9 once the stored snapshot position passes 30 %, and again past 60 %.
    let mut kill_points = Vec::new();
    for fraction in [0.3, 0.6] {
        let mark = (rows as f64 * fraction) as i64;
        wait_until(Duration::from_secs(120), "snapshot progress", || {
            stored_snapshot_key(&offsets).is_some_and(|k| k >= mark)
        });
        sluice.kill9();
        kill_points.push(stored_snapshot_key(&offsets).unwrap_or(0));
        sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    }
    // After the snapshot, streaming starts from the snapshot's position.
    wait_until(Duration::from_secs(180), "snapshot finished", || {
        std::fs::read_to_string(&offsets).is_ok_and(|t| !t.contains("snapshot_key") && t.contains("\"pos\""))
    });
    db.sql(&format!("USE {database}; INSERT INTO big VALUES ({}, 'streamed');", rows + 1));
    let topic = format!("{prefix}.{database}.big");
    let counts = count_ids(&kafka, &topic, rows + 1, Duration::from_secs(5));
    let missing: Vec<usize> = (1..=rows + 1).filter(|&i| counts[i] == 0).take(20).collect();
    let records: usize = counts.iter().map(|&c| c as usize).sum();
    let duplicates = records - counts.iter().filter(|&&c| c > 0).count();
    eprintln!("1M-row snapshot, kill -9 at stored keys {kill_points:?}: {records} records, {duplicates} duplicates");
    assert!(missing.is_empty(), "ids never delivered (first 20): {missing:?}\n{}", sluice.log_text());
    // Each restart resumed after its stored key: only rows read ahead of the last stored offset
    // were sent twice, never the snapshot from the start.
    assert_eq!(counts[1], 1, "the snapshot restarted from the first row");
    assert!(duplicates < rows / 5, "{duplicates} duplicates: the snapshot did not resume where it stopped");
    assert_eq!(counts[rows + 1], 1, "the row inserted after the snapshot is streamed once");
    db.sql(&format!("DROP DATABASE {database}"));
}

/// Tests that restart the shared MariaDB take this lock for writing; the others for reading.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared_server() -> std::sync::RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(|e| e.into_inner())
}

/// Restarts the MariaDB server in place (same binary, arguments, data and port): SIGTERM, wait for
/// it to exit, start it again, and record the new pid where `scripts/services.sh` looks for it.
fn restart_mariadb(db: &Db) {
    let pid_file = db.sql("SELECT @@pid_file").trim().to_string();
    let pid = std::fs::read_to_string(&pid_file).expect("pid file").trim().to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .skip(1)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into())
        .collect();
    assert!(Command::new("kill").arg("-TERM").arg(&pid).status().expect("kill").success());
    wait_until(Duration::from_secs(60), "mariadbd exit", || !std::path::Path::new(&format!("/proc/{pid}")).exists());
    let state_dir = std::path::Path::new(&pid_file).parent().expect("state dir").to_path_buf();
    let log = std::fs::OpenOptions::new().append(true).create(true).open(state_dir.join("log")).expect("log");
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start mariadbd")
    };
    std::fs::write(state_dir.join("pid"), format!("{}\n", child.id())).expect("services pid");
    wait_until(Duration::from_secs(60), "mariadbd accepting connections", || {
        Command::new("mariadb")
            .args(["--no-defaults", "-h", &db.host, "-P", &db.port, "-u", &db.user])
            .arg(format!("-p{}", db.password))
            .args(["-e", "SELECT 1"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
}

#[test]
fn database_restart_reconnects_and_resumes() {
    let _exclusive = SERVER.write().unwrap_or_else(|e| e.into_inner());
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } =
        Cdc::new("cdcrestart", "CREATE TABLE ev (id INT PRIMARY KEY, v INT);", json!({}));
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    wait_until(Duration::from_secs(30), "cdc RUNNING", || running_tasks(port, "cdc", 1).is_some());
    let insert = |from: i32, to: i32| {
        let rows = (from..=to).map(|i| format!("({i}, {i})")).collect::<Vec<_>>().join(",");
        db.sql(&format!("USE {database}; INSERT INTO ev VALUES {rows};"));
    };
    insert(1, 50);
    let topic = format!("{prefix}.{database}.ev");
    assert_eq!(wait_records(&kafka, &topic, 50, Duration::from_secs(30)).len(), 50);

    // The server restarts (and starts a new binlog file); the task stays RUNNING and reconnects.
    restart_mariadb(&db);
    insert(51, 100);
    let records = wait_records(&kafka, &topic, 100, Duration::from_secs(90));
    let ids: Vec<i64> = records.iter().map(|(k, _)| k["payload"]["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>(), "every row once, in order\n{}", sluice.log_text());
    assert_eq!(connector_status(port, "cdc")["tasks"][0]["state"], "RUNNING");
    assert!(sluice.log_text().contains("reconnecting"), "the reader noticed the restart");
    db.sql(&format!("DROP DATABASE {database}"));
}

#[test]
fn a_reader_written_for_debezium_consumes_the_output_unchanged() {
    let _shared = shared_server();
    let ddl = "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40) NOT NULL, qty INT, note TEXT);
         INSERT INTO orders SELECT seq, CONCAT('c', seq), seq % 7, NULL FROM seq_1_to_30;";
    let Cdc { services, kafka, db, database, dir, port, worker, prefix, connector } =
        Cdc::new("cdcunwrap", ddl, json!({}));
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    let topic = format!("{prefix}.{database}.orders");
    assert_eq!(wait_records(&kafka, &topic, 30, Duration::from_secs(60)).len(), 30, "{}", sluice.log_text());
    db.sql(&format!(
        "USE {database};
         BEGIN; INSERT INTO orders VALUES (31, 'new', 1, 'quote \" and é'); UPDATE orders SET qty = 100 WHERE id <= 5; COMMIT;
         DELETE FROM orders WHERE id BETWEEN 10 AND 14;
         UPDATE orders SET customer = 'moved', note = 'n' WHERE id = 20;
         ALTER TABLE orders ADD COLUMN extra INT NULL;
         INSERT INTO orders (id, customer, qty, extra) VALUES (32, 'after-ddl', 2, 7);"
    ));
    // 30 r + 1 c + 5 u + 5 d + 5 tombstones + 1 u + 1 c.
    let records = wait_records(&kafka, &topic, 48, Duration::from_secs(30));
    assert_eq!(records.len(), 48, "{}", sluice.log_text());
    let input: String =
        records.iter().map(|(k, v)| json!({"topic": topic, "key": k, "value": v}).to_string() + "\n").collect();
    let python = services.vars.get("SLUICE_PYTHON").cloned().unwrap_or_else(|| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/debezium_unwrap.py");
    // The reader's own checks first: it accepts Debezium's documented events and rejects malformed ones.
    let selftest = Command::new(&python).arg(&script).arg("--self-test").output().expect("reader self-test");
    assert!(selftest.status.success(), "reader self-test: {}", String::from_utf8_lossy(&selftest.stderr));
    let mut child = Command::new(python)
        .arg(script)
        .args(["--delete-handling-mode", "rewrite", "--add-fields", "op,table,source.ts_ms"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the Debezium reader");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("feed the reader");
    }
    let out = child.wait_with_output().expect("reader output");
    assert!(out.status.success(), "the Debezium reader rejected the output: {}", String::from_utf8_lossy(&out.stderr));
    let tables: Value = serde_json::from_slice(&out.stdout).expect("reader JSON");
    let mut materialized: Vec<(i64, String, Option<i64>, Option<String>)> = tables["orders"]
        .as_array()
        .expect("orders rows")
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().expect("id"),
                r["customer"].as_str().expect("customer").to_string(),
                r["qty"].as_i64(),
                r["note"].as_str().map(String::from),
            )
        })
        .collect();
    materialized.sort();
    // The same table as the database sees it.
    let expected: Vec<(i64, String, Option<i64>, Option<String>)> = db
        .sql(&format!("SELECT id, customer, qty, note FROM {database}.orders ORDER BY id"))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let opt = |s: &str| (s != "NULL").then(|| s.to_string());
            (f[0].parse().expect("id"), f[1].to_string(), opt(f[2]).map(|q| q.parse().expect("qty")), opt(f[3]))
        })
        .collect();
    assert_eq!(materialized, expected, "reader: {}", String::from_utf8_lossy(&out.stderr));
    db.sql(&format!("DROP DATABASE {database}"));
}

/// `provide.transaction.metadata=true`: each transaction is framed by BEGIN and END events on
/// `<prefix>.transaction` (END with the event count per table), and each change event carries
/// `transaction {id, total_order, data_collection_order}`, as Debezium's.
#[test]
fn transaction_metadata_frames_each_transaction() {
    let _shared = shared_server();
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new(
        "cdctxn",
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(16)); CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(16));",
        json!({"provide.transaction.metadata": "true"}),
    );
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    wait_until(Duration::from_secs(30), "cdc RUNNING", || running_tasks(port, "cdc", 1).is_some());
    let topic_a = format!("{prefix}.{database}.a");
    let topic_b = format!("{prefix}.{database}.b");
    // A first row, streamed (not snapshotted), so the rest is certainly read from the binlog.
    db.sql(&format!("USE {database}; INSERT INTO b VALUES (100, 'marker');"));
    let marker = wait_records(&kafka, &topic_b, 1, Duration::from_secs(60));
    assert_eq!(marker.len(), 1, "{}", sluice.log_text());
    db.sql(&format!(
        "USE {database}; BEGIN; INSERT INTO a VALUES (1, 'x'), (2, 'y'); INSERT INTO b VALUES (1, 'z'); \
         UPDATE a SET v = 'x2' WHERE id = 1; COMMIT; \
         INSERT INTO b VALUES (2, 'auto'); \
         BEGIN; DELETE FROM a WHERE id = 2; COMMIT;"
    ));
    let txn_topic = format!("{prefix}.transaction");
    let frames = wait_records(&kafka, &txn_topic, 8, Duration::from_secs(60));
    let frames: Vec<&Value> = frames.iter().map(|(_, v)| &v["payload"]).collect();
    assert_eq!(frames.len(), 8, "BEGIN and END of 4 transactions: {frames:?}\n{}", sluice.log_text());
    let status: Vec<&str> = frames.iter().map(|f| f["status"].as_str().unwrap_or("")).collect();
    assert_eq!(status, ["BEGIN", "END", "BEGIN", "END", "BEGIN", "END", "BEGIN", "END"]);
    let (_, first) = &read_records(&kafka, &txn_topic, Duration::from_millis(500))[2];
    assert_eq!(first["schema"]["name"], "io.debezium.connector.common.TransactionMetadataValue");
    for pair in frames.chunks(2) {
        assert_eq!(pair[0]["id"], pair[1]["id"], "BEGIN and END of one transaction");
        assert!(pair[0]["event_count"].is_null() && pair[0]["data_collections"].is_null(), "{}", pair[0]);
        // MariaDB always writes GTIDs: the id is the transaction's (domain-server-sequence).
        assert_eq!(pair[0]["id"].as_str().map(|id| id.split('-').count()), Some(3), "{}", pair[0]);
    }
    let t1 = frames[3];
    assert_eq!(t1["event_count"], 4, "{t1}");
    let collections: BTreeMap<String, i64> = t1["data_collections"]
        .as_array()
        .expect("data_collections")
        .iter()
        .map(|c| (c["data_collection"].as_str().unwrap_or("").to_string(), c["event_count"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(collections, BTreeMap::from([(format!("{database}.a"), 3), (format!("{database}.b"), 1)]));
    assert_eq!((frames[5]["event_count"].as_i64(), frames[7]["event_count"].as_i64()), (Some(1), Some(1)));
    // The change events: their block names the transaction and their order in it.
    let block = |v: &Value| {
        let t = &v["payload"]["transaction"];
        (t["id"].as_str().unwrap_or("").to_string(), t["total_order"].as_i64(), t["data_collection_order"].as_i64())
    };
    let a: Vec<Value> = wait_records(&kafka, &topic_a, 5, Duration::from_secs(30))
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
        .collect();
    let b: Vec<Value> =
        read_records(&kafka, &topic_b, Duration::from_millis(500)).into_iter().map(|(_, v)| v).collect();
    let t1_id = t1["id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        a.iter().map(block).collect::<Vec<_>>(),
        [
            (t1_id.clone(), Some(1), Some(1)),
            (t1_id.clone(), Some(2), Some(2)),
            (t1_id.clone(), Some(4), Some(3)),
            (frames[7]["id"].as_str().unwrap_or("").to_string(), Some(1), Some(1)),
        ]
    );
    assert_eq!(block(&b[1]), (t1_id, Some(3), Some(1)));
    assert_eq!(block(&b[2]), (frames[5]["id"].as_str().unwrap_or("").to_string(), Some(1), Some(1)));
    assert_eq!(
        a[0]["schema"]["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["field"] == "transaction"))
            .map(|f| &f["name"]),
        Some(&json!("event.block"))
    );
    db.sql(&format!("DROP DATABASE {database}"));
}

/// MariaDB: an offset holding a GTID state is resumed by GTID, as after a failover to a server
/// whose binlog files differ. The stored file does not exist; the rows committed after the stored
/// state are streamed and the one before it is not.
#[test]
fn gtid_positioning_resumes_where_the_stored_file_does_not_exist() {
    let _shared = shared_server();
    let services = Services::load();
    let kafka = services.kafka();
    let db = Db::load(&services);
    let database = db_name("cdcgtid");
    db.sql(&format!("CREATE DATABASE {database}; USE {database}; CREATE TABLE ev (id INT PRIMARY KEY, v VARCHAR(16)); INSERT INTO ev VALUES (1, 'before');"));
    let state = db.sql("SELECT @@gtid_binlog_pos").trim().to_string();
    assert!(!state.is_empty(), "the server writes GTIDs");
    db.sql(&format!("USE {database}; INSERT INTO ev VALUES (2, 'after'); BEGIN; INSERT INTO ev VALUES (3, 'after'); UPDATE ev SET v = 'after2' WHERE id = 2; COMMIT;"));
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = json_worker(dir.path(), &kafka, port);
    let prefix = unique("gtid").replace('-', "_");
    std::fs::write(
        dir.path().join("offsets.json"),
        json!({"version": 1, "offsets": [{"key": ["gtid", {"server": prefix}],
            "value": {"file": "other-server-bin.000042", "pos": 12345, "gtids": state}}]})
        .to_string(),
    )
    .expect("offsets");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let config = db.connector("gtid", &prefix, &database, json!({}));
    let (code, body) = http(port, "POST", "/connectors", Some(&config)).expect("POST");
    assert_eq!(code, 201, "{body}");
    let topic = format!("{prefix}.{database}.ev");
    let records = wait_records(&kafka, &topic, 3, Duration::from_secs(60));
    let seen: Vec<(String, i64)> = records
        .iter()
        .map(|(_, v)| {
            (v["payload"]["op"].as_str().unwrap_or("").to_string(), v["payload"]["after"]["id"].as_i64().unwrap_or(-1))
        })
        .collect();
    assert_eq!(seen, [("c".to_string(), 2), ("c".to_string(), 3), ("u".to_string(), 2)], "{}", sluice.log_text());
    assert_eq!(connector_status(port, "gtid")["tasks"][0]["state"], "RUNNING");
    drop(sluice);
    // A GTID state the server never had (ahead of its binlog, as after a failover to a server that
    // is behind): FAILED, naming the state and
    // the way out.
    let lost = unique("gtidlost").replace('-', "_");
    std::fs::write(
        dir.path().join("offsets.json"),
        json!({"version": 1, "offsets": [{"key": ["lost", {"server": lost}],
            "value": {"file": "other-server-bin.000042", "pos": 12345, "gtids": "0-1-999999999"}}]})
        .to_string(),
    )
    .expect("offsets");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice-2.log"));
    let config = db.connector("lost", &lost, &database, json!({}));
    let (code, body) = http(port, "POST", "/connectors", Some(&config)).expect("POST");
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while connector_status(port, "lost")["tasks"][0]["state"] != "FAILED" {
        assert!(
            Instant::now() < deadline,
            "lost not FAILED: {}\n{}",
            connector_status(port, "lost"),
            sluice.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let trace = connector_status(port, "lost")["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    assert!(
        trace.contains("GTID state 0-1-999999999") && trace.contains("snapshot.mode=when_needed"),
        "{trace}\n{}",
        sluice.log_text()
    );
    db.sql(&format!("DROP DATABASE {database}"));
}

/// MariaDB with a second GTID domain that stays idle while the connector runs: the offset's GTID
/// state still names it (taken from BINLOG_GTID_POS at the start position), as Debezium's full
/// GTID sets do, and a GTID resume after kill -9 sends neither domain's history again.
#[test]
fn offsets_name_every_gtid_domain_and_a_gtid_resume_replays_nothing() {
    let _shared = shared_server();
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } =
        Cdc::new("cdcdomain", "CREATE TABLE ev (id INT PRIMARY KEY, v VARCHAR(16));", json!({}));
    db.sql(&format!("SET SESSION gtid_domain_id = 9; USE {database}; INSERT INTO ev VALUES (1, 'domain 9');"));
    let log = dir.path().join("sluice.log");
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    let topic = format!("{prefix}.{database}.ev");
    assert_eq!(wait_records(&kafka, &topic, 1, Duration::from_secs(60)).len(), 1, "{}", sluice.log_text());
    db.sql(&format!("USE {database}; INSERT INTO ev VALUES (2, 'domain 0');"));
    assert_eq!(wait_records(&kafka, &topic, 2, Duration::from_secs(60)).len(), 2, "{}", sluice.log_text());
    // The stored offset once it carries a GTID state (the offset of row 2 committed).
    let stored_gtids = || -> Option<String> {
        let text = std::fs::read_to_string(dir.path().join("offsets.json")).ok()?;
        let offsets: Value = serde_json::from_str(&text).ok()?;
        let entry = offsets["offsets"].as_array()?.iter().find(|e| e["key"][1]["server"] == prefix.as_str())?;
        entry["value"]["gtids"].as_str().map(String::from)
    };
    wait_until(Duration::from_secs(30), "a stored offset with a GTID state", || stored_gtids().is_some());
    let gtids = stored_gtids().unwrap_or_default();
    assert!(gtids.split(',').any(|g| g.starts_with("9-")) && gtids.split(',').any(|g| g.starts_with("0-")), "{gtids}");
    sluice.kill9();
    let sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    db.sql(&format!("USE {database}; INSERT INTO ev VALUES (3, 'domain 0');"));
    let records = wait_records(&kafka, &topic, 3, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let records = if records.len() == 3 { read_records(&kafka, &topic, Duration::from_millis(1500)) } else { records };
    let seen: Vec<(String, i64)> = records
        .iter()
        .map(|(_, v)| {
            (v["payload"]["op"].as_str().unwrap_or("").to_string(), v["payload"]["after"]["id"].as_i64().unwrap_or(-1))
        })
        .collect();
    assert!(seen.contains(&("c".to_string(), 3)), "{seen:?}\n{}", sluice.log_text());
    assert_eq!(
        seen.iter().filter(|(_, id)| *id == 1).collect::<Vec<_>>(),
        [&("r".to_string(), 1)],
        "the domain-9 row once, from the snapshot: {seen:?}"
    );
    db.sql(&format!("DROP DATABASE {database}"));
}

/// Debezium's `column.mask.with.<N>.chars` and `column.truncate.to.<N>.chars`, on snapshot and
/// streamed rows alike (`before` too); NULL stays NULL.
#[test]
fn columns_are_masked_and_truncated() {
    let _shared = shared_server();
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new(
        "cdcmask",
        "CREATE TABLE c (id INT PRIMARY KEY, card VARCHAR(32), note TEXT); INSERT INTO c VALUES (1, '4111-1111-1111', 'a long note');",
        json!({}),
    );
    // The rules name the database Cdc::new made: added to the connector file it wrote.
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&connector).expect("read")).expect("json");
    config["config"]["column.mask.with.4.chars"] = json!(format!("{database}\\.c\\.card"));
    config["config"]["column.truncate.to.3.chars"] = json!(format!("{database}.c.note"));
    std::fs::write(&connector, config.to_string()).expect("write");
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    let topic = format!("{prefix}.{database}.c");
    assert_eq!(wait_records(&kafka, &topic, 1, Duration::from_secs(60)).len(), 1, "{}", sluice.log_text());
    db.sql(&format!(
        "USE {database}; INSERT INTO c VALUES (2, NULL, 'ok'); UPDATE c SET note = 'changed text' WHERE id = 1;"
    ));
    let records = wait_records(&kafka, &topic, 3, Duration::from_secs(60));
    let rows: Vec<(String, Value, Value)> = records
        .iter()
        .map(|(_, v)| {
            (
                v["payload"]["op"].as_str().unwrap_or("").to_string(),
                v["payload"]["before"].clone(),
                v["payload"]["after"].clone(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0].0, "r");
    assert_eq!(rows[0].2, json!({"id": 1, "card": "****", "note": "a l"}));
    assert_eq!(rows[1].2, json!({"id": 2, "card": null, "note": "ok"}));
    assert_eq!(rows[2].0, "u");
    assert_eq!(rows[2].1, json!({"id": 1, "card": "****", "note": "a l"}));
    assert_eq!(rows[2].2, json!({"id": 1, "card": "****", "note": "cha"}));
    db.sql(&format!("DROP DATABASE {database}"));
}

/// `skip.messages.without.change` with `column.exclude.list`: an update touching only an excluded
/// column is not published; one that changes a captured column is.
#[test]
fn updates_of_excluded_columns_only_are_skipped() {
    let _shared = shared_server();
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new(
        "cdcskip",
        "CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(16), seen_at BIGINT);",
        json!({"skip.messages.without.change": "true"}),
    );
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&connector).expect("read")).expect("json");
    config["config"]["column.exclude.list"] = json!(format!("{database}.s.seen_at"));
    std::fs::write(&connector, config.to_string()).expect("write");
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    wait_until(Duration::from_secs(30), "cdc RUNNING", || running_tasks(port, "cdc", 1).is_some());
    let topic = format!("{prefix}.{database}.s");
    db.sql(&format!("USE {database}; INSERT INTO s VALUES (1, 'a', 1);"));
    assert_eq!(wait_records(&kafka, &topic, 1, Duration::from_secs(60)).len(), 1, "{}", sluice.log_text());
    db.sql(&format!(
        "USE {database}; UPDATE s SET seen_at = 2 WHERE id = 1; UPDATE s SET seen_at = 3 WHERE id = 1; UPDATE s SET v = 'b' WHERE id = 1;"
    ));
    let records = wait_records(&kafka, &topic, 2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let records = if records.len() == 2 { read_records(&kafka, &topic, Duration::from_millis(1500)) } else { records };
    let ops: Vec<(String, Value)> = records
        .iter()
        .map(|(_, v)| (v["payload"]["op"].as_str().unwrap_or("").to_string(), v["payload"]["after"].clone()))
        .collect();
    assert_eq!(
        ops,
        [("c".to_string(), json!({"id": 1, "v": "a"})), ("u".to_string(), json!({"id": 1, "v": "b"}))],
        "{}",
        sluice.log_text()
    );
    db.sql(&format!("DROP DATABASE {database}"));
}

/// Sets `binlog_row_metadata` for the life of the guard (the test holds the server exclusively).
struct RowMetadata<'a>(&'a Db);

impl<'a> RowMetadata<'a> {
    fn minimal(db: &'a Db) -> RowMetadata<'a> {
        db.sql("SET GLOBAL binlog_row_metadata = MINIMAL");
        RowMetadata(db)
    }
}

impl Drop for RowMetadata<'_> {
    fn drop(&mut self) {
        self.0.sql("SET GLOBAL binlog_row_metadata = FULL");
    }
}

#[test]
fn schema_history_decodes_rows_written_before_a_ddl_and_a_lost_history_names_recovery() {
    let _exclusive = SERVER.write().unwrap_or_else(|e| e.into_inner());
    let history = unique("cdchist-history");
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new(
        "cdchist",
        "CREATE TABLE ev (id INT PRIMARY KEY, a VARCHAR(10)); INSERT INTO ev VALUES (1, 'a1'), (2, 'a2'), (3, 'a3');",
        json!({"schema.history.internal.kafka.topic": history}),
    );
    // Table maps without column metadata: rows are decoded with the definitions the connector
    // tracks, the case the history exists for.
    let minimal = RowMetadata::minimal(&db);
    let log = dir.path().join("sluice.log");
    let topic = format!("{prefix}.{database}.ev");
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    assert_eq!(wait_records(&kafka, &topic, 3, Duration::from_secs(30)).len(), 3, "{}", sluice.log_text());
    assert_eq!(sluice.terminate(), Some(0));

    // While the worker is down: rows with the old definition, a new column, rows with it.
    db.sql(&format!(
        "USE {database}; INSERT INTO ev VALUES (4, 'a4'), (5, 'a5'); ALTER TABLE ev ADD COLUMN b INT; \
         INSERT INTO ev VALUES (6, 'a6', 60), (7, 'a7', 70);"
    ));
    sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    let records = wait_records(&kafka, &topic, 7, Duration::from_secs(30));
    let afters: Vec<&Value> = records.iter().map(|(_, v)| &v["payload"]["after"]).collect();
    assert_eq!(afters.len(), 7, "{afters:?}\n{}", sluice.log_text());
    // Rows 4 and 5 were written before the ALTER: decoded with two columns, though the table has
    // three now (information_schema alone would fail on them).
    assert_eq!(*afters[3], json!({"id": 4, "a": "a4"}));
    assert_eq!(*afters[4], json!({"id": 5, "a": "a5"}));
    assert_eq!(*afters[6], json!({"id": 7, "a": "a7", "b": 70}));

    // The history topic: the snapshot's CREATE, then the ALTER with the definition it left.
    let recorded: Vec<Value> =
        read_records(&kafka, &history, Duration::from_millis(1500)).into_iter().map(|(_, v)| v).collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0]["source"]["server"], json!(prefix));
    assert!(recorded[0]["ddl"].as_str().unwrap_or("").starts_with("CREATE TABLE `ev`"), "{}", recorded[0]);
    assert_eq!(recorded[0]["tableChanges"][0]["type"], "CREATE");
    assert_eq!(recorded[0]["tableChanges"][0]["id"], json!(format!("\"{database}\".\"ev\"")));
    assert_eq!(recorded[0]["tableChanges"][0]["table"]["primaryKeyColumnNames"], json!(["id"]));
    assert!(recorded[1]["ddl"].as_str().unwrap_or("").contains("ADD COLUMN b"), "{}", recorded[1]);
    assert_eq!(recorded[1]["tableChanges"][0]["type"], "ALTER");
    let columns: Vec<&str> = recorded[1]["tableChanges"][0]["table"]["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(columns, ["id", "a", "b"]);
    assert!(recorded[1]["position"]["pos"].as_u64() > recorded[0]["position"]["pos"].as_u64());
    assert_eq!(sluice.terminate(), Some(0));

    // The history is lost (a new, empty topic) while offsets exist: FAILED, naming the way out.
    let lost = unique("cdchist-lost");
    let rewrite = |extra: Value| {
        let mut extra = extra;
        extra["schema.history.internal.kafka.topic"] = json!(lost);
        std::fs::write(&connector, db.connector("cdc", &prefix, &database, extra)).expect("write");
    };
    rewrite(json!({}));
    sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    wait_until(Duration::from_secs(30), "cdc FAILED", || {
        connector_status(port, "cdc")["tasks"][0]["state"] == "FAILED"
    });
    let trace = connector_status(port, "cdc")["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    assert!(trace.contains(&lost) && trace.contains("snapshot.mode=recovery"), "{trace}");
    sluice.kill9();

    // snapshot.mode=recovery rebuilds it from the current definitions and streams on.
    rewrite(json!({"snapshot.mode": "recovery"}));
    sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    db.sql(&format!("USE {database}; INSERT INTO ev VALUES (8, 'a8', 80);"));
    let records = wait_records(&kafka, &topic, 8, Duration::from_secs(30));
    assert_eq!(records.last().map(|(_, v)| v["payload"]["after"].clone()), Some(json!({"id": 8, "a": "a8", "b": 80})));
    let rebuilt = read_records(&kafka, &lost, Duration::from_millis(1500));
    assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
    assert_eq!(rebuilt[0].1["tableChanges"][0]["table"]["columns"].as_array().map(Vec::len), Some(3));
    sluice.kill9();

    // With FULL table-map metadata rows never depend on the history: a lost one is rebuilt.
    drop(minimal);
    let lost = unique("cdchist-full");
    let mut extra = json!({});
    extra["schema.history.internal.kafka.topic"] = json!(lost);
    std::fs::write(&connector, db.connector("cdc", &prefix, &database, extra)).expect("write");
    sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    db.sql(&format!("USE {database}; INSERT INTO ev VALUES (9, 'a9', 90);"));
    assert_eq!(wait_records(&kafka, &topic, 9, Duration::from_secs(30)).len(), 9, "{}", sluice.log_text());
    assert_eq!(connector_status(port, "cdc")["tasks"][0]["state"], "RUNNING");
    assert_eq!(read_records(&kafka, &lost, Duration::from_millis(1500)).len(), 1);
    drop(sluice);
    db.sql(&format!("DROP DATABASE {database}"));
}

#[test]
fn parallel_snapshot_killed_twice_resumes_every_table_where_it_stopped() {
    let _shared = shared_server();
    let (tables, rows) = (4usize, 100_000usize);
    let ddl: String = (1..=tables)
        .map(|t| {
            format!(
                "CREATE TABLE t{t} (id INT PRIMARY KEY, v VARCHAR(24) NOT NULL);
                 INSERT INTO t{t} SELECT seq, CONCAT('row-', seq) FROM seq_1_to_{rows};"
            )
        })
        .collect();
    let extra = json!({
        "snapshot.fetch.size": "5000",
        "snapshot.max.threads": "3",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
    });
    let Cdc { kafka, db, database, dir, port, worker, prefix, connector, .. } = Cdc::new("cdcpar", &ddl, extra);
    let log = dir.path().join("sluice.log");
    let offsets = dir.path().join("offsets.json");
    let stored = || -> Option<Value> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&offsets).ok()?).ok()?;
        v["offsets"].as_array()?.first().map(|o| o["value"].clone())
    };
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    // Kill -9 while several tables are in flight (the stored offset names them), twice.
    let mut kill_points = Vec::new();
    for round in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = Value::Null;
        while !(last["snapshot_through"].is_string()
            && last["snapshot_key"][0].as_str().and_then(|k| k.parse::<usize>().ok()).is_some_and(|k| k > rows / 4)
            && kill_points.last() != Some(&last))
        {
            assert!(Instant::now() < deadline, "no progress in round {round}: {last}\n{}", sluice.log_text());
            std::thread::sleep(Duration::from_millis(20));
            last = stored().unwrap_or(Value::Null);
        }
        sluice.kill9();
        kill_points.push(stored().unwrap_or(Value::Null));
        sluice = Sluice::standalone(&worker, &[&connector], port, log.clone());
    }
    wait_until(Duration::from_secs(180), "snapshot finished", || {
        std::fs::read_to_string(&offsets).is_ok_and(|t| !t.contains("snapshot_table") && t.contains("\"pos\""))
    });
    assert!(sluice.log_text().contains("threads=3"), "the snapshot ran with three readers");
    let mut duplicates = 0;
    for t in 1..=tables {
        let counts = count_ids(&kafka, &format!("{prefix}.{database}.t{t}"), rows, Duration::from_secs(3));
        let missing: Vec<usize> = (1..=rows).filter(|&i| counts[i] == 0).take(20).collect();
        assert!(missing.is_empty(), "t{t}: ids never delivered (first 20): {missing:?}\n{kill_points:?}");
        assert_eq!(counts[1], 1, "t{t} restarted from its first row\n{kill_points:?}");
        duplicates += counts.iter().map(|&c| c as usize).sum::<usize>() - rows;
    }
    eprintln!("parallel snapshot {tables}x{rows} rows, kill -9 at {kill_points:?}: {duplicates} duplicates");
    assert!(duplicates < tables * rows / 5, "{duplicates} duplicates: tables did not resume where they stopped");
    db.sql(&format!("DROP DATABASE {database}"));
}

#[test]
fn tls_to_the_database_is_verified_and_a_wrong_ca_fails_naming_the_truststore() {
    let _shared = shared_server();
    let ca = Services::load()
        .vars
        .get("MYSQL_SSL_CA")
        .cloned()
        .expect("MYSQL_SSL_CA: restart MariaDB with `bash scripts/services.sh stop mariadb && bash scripts/services.sh start mariadb`");
    // A user the server admits over TLS only: a connector that streams as it used TLS.
    let user = db_name("tls");
    let Cdc { kafka, db, database, dir, port, worker, prefix, .. } =
        Cdc::new("cdctls", "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);", json!({}));
    let root = Db { user: "root".into(), password: String::new(), host: db.host.clone(), port: db.port.clone() };
    root.sql(&format!(
        "CREATE USER '{user}'@'localhost' IDENTIFIED BY 'pw' REQUIRE SSL; \
         GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'localhost';"
    ));
    let tls_db = Db { user: user.clone(), password: "pw".into(), host: db.host.clone(), port: db.port.clone() };
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let post = |name: &str, extra: Value| {
        let body = tls_db.connector(name, &format!("{prefix}{name}"), &database, extra);
        http(port, "POST", "/connectors", Some(&body)).expect("POST")
    };
    let trace = |name: &str| -> Option<String> {
        let status = connector_status(port, name);
        (status["tasks"][0]["state"] == "FAILED")
            .then(|| status["tasks"][0]["trace"].as_str().unwrap_or("").to_string())
    };

    // verify_identity with the server's CA: snapshot and streaming over TLS.
    let (code, body) = post("good", json!({"database.ssl.mode": "verify_identity", "database.ssl.truststore": ca}));
    assert_eq!(code, 201, "{body}");
    let topic = format!("{prefix}good.{database}.t");
    assert_eq!(wait_records(&kafka, &topic, 2, Duration::from_secs(30)).len(), 2, "{}", sluice.log_text());
    db.sql(&format!("USE {database}; INSERT INTO t VALUES (3);"));
    assert_eq!(wait_records(&kafka, &topic, 3, Duration::from_secs(30)).len(), 3, "{}", sluice.log_text());

    // Without TLS the same user is refused: the TLS above was real.
    assert_eq!(post("plain", json!({"database.ssl.mode": "disabled"})).0, 201);
    wait_until(Duration::from_secs(30), "plain FAILED", || trace("plain").is_some());
    assert!(trace("plain").unwrap_or_default().contains("rejected the credentials"), "{:?}", trace("plain"));

    // A CA that did not sign the server's certificate: FAILED, naming what to check.
    let other = tempfile::tempdir().expect("tmp");
    let (_, wrong_ca) = tls_certificates(other.path());
    let wrong = json!({"database.ssl.mode": "verify_ca", "database.ssl.truststore": wrong_ca.display().to_string()});
    assert_eq!(post("wrongca", wrong).0, 201);
    wait_until(Duration::from_secs(30), "wrongca FAILED", || trace("wrongca").is_some());
    let t = trace("wrongca").unwrap_or_default();
    assert!(t.contains("TLS to MySQL") && t.contains("database.ssl.truststore"), "{t}");

    // A JKS store is refused at validation, with the conversion command.
    let (code, body) = post("jks", json!({"database.ssl.truststore": "/etc/ssl/truststore.jks"}));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("database.ssl.truststore") && body.contains("keytool"), "{body}");
    drop(sluice);
    root.sql(&format!("DROP USER '{user}'@'localhost'"));
    db.sql(&format!("DROP DATABASE {database}"));
}
