//! The Delta Lake sink against the real S3 server (SeaweedFS) and Kafka, read back by delta-rs'
//! Python binding: a table partitioned by date and hour derived from a record field, two tasks
//! committing to it concurrently, Kafka offsets as `txn` versions, every produced record exactly
//! once after five kill -9s during writes, and 64 partitions under a stated memory bound.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// 2024-03-10T22:00:00Z
const BASE: i64 = 1_710_108_000_000;

fn ts(seq: i64) -> i64 {
    BASE + ((seq * 7919) % 7200) * 1000
}

fn event(seq: i64) -> String {
    json!({
        "schema": {"type": "struct", "optional": false, "name": "tracking.Event", "fields": [
            {"field": "seq", "type": "int64", "optional": false},
            {"field": "ts", "type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
            {"field": "user", "type": "string", "optional": true},
            {"field": "tags", "type": "array", "optional": false, "items": {"type": "string", "optional": false}}]},
        "payload": {"seq": seq, "ts": ts(seq), "user": if seq % 5 == 0 { Value::Null } else { json!(format!("u{}", seq % 97)) },
            "tags": ["a", "b"]}
    })
    .to_string()
}

#[test]
fn s3_delta_table_exactly_once_across_five_kill_9() {
    let services = Services::load();
    let kafka = services.kafka();
    let lake = Lake::load(&services);
    let bucket = "sluice-tests";
    lake.mkbucket(bucket);
    let topic = unique("delta");
    create_topic_with(&kafka, &topic, 2);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=1000",
    );
    let connector = dir.path().join("delta.json");
    std::fs::write(
        &connector,
        json!({"name": "lake", "config": {
            "connector.class": "delta",
            "tasks.max": "2",
            "topics": topic,
            "delta.table.location": format!("s3://{bucket}/delta/${{topic}}"),
            "store.url": lake.endpoint, "s3.region": "us-east-1",
            "aws.access.key.id": lake.key, "aws.secret.access.key": lake.secret,
            "delta.partition.by": "date,hour",
            "timestamp.extractor": "RecordField", "timestamp.field": "ts",
            "flush.size": "300",
            "allowed.latency.ms": "2000",
            "delta.checkpoint.interval": "10"}})
        .to_string(),
    )
    .expect("write");

    // Seq s goes to partition s % 2; records keep arriving while the worker is killed five times.
    const N: i64 = 16_000;
    let producer = {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
                for p in 0..2 {
                    let recs: Vec<(String, Option<String>)> =
                        chunk.iter().filter(|s| *s % 2 == p).map(|s| (s.to_string(), Some(event(*s)))).collect();
                    produce_to(&kafka, &topic, p as i32, &recs);
                }
                std::thread::sleep(Duration::from_millis(350));
            }
        })
    };
    let uri = format!("s3://{bucket}/delta/{topic}");
    let apps: Vec<String> = (0..2).map(|p| format!("lake-{topic}-{p}")).collect();
    let version = || lake.read_delta(&uri, "-", &[])["version"].as_i64().unwrap_or(-1);
    let mut seen_version = -1;
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice-0.log"));
    for round in 1..=5 {
        // Killed while it commits: once it has committed since the last kill.
        wait_until(Duration::from_secs(90), "a commit by this worker", || {
            let v = version();
            (v > seen_version).then(|| seen_version = v).is_some()
        });
        std::thread::sleep(Duration::from_millis(150 * round));
        sluice.kill9();
        sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join(format!("sluice-{round}.log")));
    }
    producer.join().expect("producer");
    let deadline = Instant::now() + Duration::from_secs(120);
    let view = loop {
        let view = lake.read_delta(&uri, "seq", &apps);
        if view["rows"].as_i64().unwrap_or_default() >= N || Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for s in view["values"].as_array().cloned().unwrap_or_default().iter().filter_map(Value::as_i64) {
        *counts.entry(s).or_default() += 1;
    }
    let missing: Vec<i64> = (0..N).filter(|s| !counts.contains_key(s)).take(10).collect();
    let dups: Vec<(&i64, &usize)> = counts.iter().filter(|(_, c)| **c > 1).take(10).collect();
    assert!(
        missing.is_empty() && dups.is_empty(),
        "{} rows; missing {missing:?}; duplicated {dups:?}\n{}",
        view["rows"],
        sluice.log_text()
    );
    // Each partition's txn version is its last offset: N/2 records each, offsets 0..N/2-1.
    for app in &apps {
        assert_eq!(view["txn"][app], json!(N / 2 - 1), "{app}: {view}");
    }
    assert_eq!(view["partition_columns"], json!(["date", "hour"]));
    assert_eq!(view["partitions"], json!([["2024-03-10", "22"], ["2024-03-10", "23"]]));
    let types = &view["types"];
    assert_eq!(types["seq"], "int64");
    assert_eq!(types["ts"], "timestamp[us, tz=UTC]");
    assert_eq!(types["user"], "string");
    assert!(types["tags"].as_str().is_some_and(|t| t.starts_with("list<")), "{types}");
    assert!(view["history"].as_array().is_some_and(|h| h.contains(&json!("STREAMING UPDATE"))), "{view}");
    // Each of rounds 2..5 waited for a new version, and the last worker committed the rest.
    assert!(view["version"].as_i64().unwrap_or_default() >= 5, "a commit per round: {view}");
}

/// 64 partitions of ~4 MB each (~250 MB) into one table, with no flush by count and a 30 s latency.
/// A table has one writer whatever the partition count, holding at most one data file
/// (`delta.target.file.size`) and one commit's worth (`flush.bytes`), both 16 MiB here. The stated
/// bound: peak RSS under 384 MiB (measured 263-274 MiB; most of it is the consumer queue, the batch
/// and its decoded values, not the writer: with `flush.bytes` at 1 GiB, one commit, it was 267 MiB),
/// every record exactly once and each partition's `txn` version its last offset.
#[test]
fn s3_delta_64_partitions_stay_under_the_memory_bound() {
    const PARTITIONS: i32 = 64;
    const PER_PARTITION: i64 = 3600;
    const BOUND_MIB: f64 = 384.0;
    let services = Services::load();
    let kafka = services.kafka();
    let lake = Lake::load(&services);
    let bucket = "sluice-tests";
    lake.mkbucket(bucket);
    let topic = unique("wide");
    create_topic_with(&kafka, &topic, PARTITIONS);
    produce_padded(&kafka, &topic, PARTITIONS, PER_PARTITION);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let connector = dir.path().join("wide.json");
    std::fs::write(
        &connector,
        json!({"name": "wide", "config": {
            "connector.class": "delta", "topics": topic,
            "delta.table.location": format!("s3://{bucket}/delta/${{topic}}"),
            "store.url": lake.endpoint, "s3.region": "us-east-1",
            "aws.access.key.id": lake.key, "aws.secret.access.key": lake.secret,
            "flush.size": "-1", "allowed.latency.ms": "30000", "parquet.codec": "none",
            "flush.bytes": "16777216", "delta.target.file.size": "16777216"}})
        .to_string(),
    )
    .expect("write");
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    let uri = format!("s3://{bucket}/delta/{topic}");
    let apps: Vec<String> = (0..PARTITIONS).map(|p| format!("wide-{topic}-{p}")).collect();
    let total = PARTITIONS as i64 * PER_PARTITION;
    let mut view = Value::Null;
    wait_until(Duration::from_secs(180), "every record in the table", || {
        view = lake.read_delta(&uri, "seq", &apps);
        view["rows"].as_i64().unwrap_or_default() >= total
    });
    let peak = sluice.peak_rss_mib();
    let mut seqs: Vec<i64> = view["values"].as_array().expect("values").iter().filter_map(Value::as_i64).collect();
    seqs.sort();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>(), "every record exactly once");
    for app in &apps {
        assert_eq!(view["txn"][app], json!(PER_PARTITION - 1), "{app}");
    }
    eprintln!("64 partitions: table version {}, peak RSS {peak:.1} MiB (bound {BOUND_MIB} MiB)", view["version"]);
    assert!(peak > 0.0 && peak < BOUND_MIB, "peak RSS {peak:.1} MiB >= {BOUND_MIB} MiB\n{}", sluice.log_text());
}

/// The highest `txn` version of `app` in a local table's log (`None` before its first commit).
fn local_txn_version(table: &std::path::Path, app: &str) -> Option<i64> {
    let entries = std::fs::read_dir(table.join("_delta_log")).ok()?;
    let mut version = None;
    for e in entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")) {
        for line in std::fs::read_to_string(e.path()).unwrap_or_default().lines() {
            let action: Value = serde_json::from_str(line).unwrap_or_default();
            if action["txn"]["appId"] == app {
                version = version.max(action["txn"]["version"].as_i64());
            }
        }
    }
    version
}

/// A topic that goes quiet is still committed within `allowed.latency.ms`: while no records
/// arrive the runtime calls `put` with an empty batch, as Kafka Connect does. The offset flush
/// (Kafka Connect's default, 60 s, here) is not what commits the last records.
#[test]
fn a_quiet_topic_is_committed_within_allowed_latency() {
    let quiet = QuietSink::start(|topic, lake| {
        json!({"connector.class": "delta", "topics": topic,
            "delta.table.location": format!("{}/${{topic}}", lake.display()),
            "flush.size": "-1", "allowed.latency.ms": "1000"})
    });
    let (table, app) = (quiet.lake().join(&quiet.topic), format!("quiet-{}-0", quiet.topic));
    let took = quiet.flush_time(
        event,
        || local_txn_version(&table, &app) == Some(0),
        || local_txn_version(&table, &app) == Some(10),
    );
    assert!(
        took < Duration::from_millis(3000),
        "the last records were committed {took:?} after they were sent (allowed.latency.ms=1000)\n{}",
        quiet.sluice.log_text()
    );
}
