//! The Parquet sink against the real S3 server (SeaweedFS) and Kafka, read back by pyarrow:
//! hourly Hive partitions with records out of order across an hour boundary, Connect types as
//! Parquet types, every produced offset exactly once after five kill -9s during writes, and a
//! file larger than one upload part (multipart, then moved to its name only if it is free), and
//! 64 partitions with a file open each staying under a stated memory bound; two S3 outages during
//! writes lose and duplicate nothing. HDFS: the same
//! exactly-once check against a namenode when `HDFS_URL` is set (none runs on these machines, so it
//! is reported as skipped otherwise). A quiet topic still gets its scheduled file on time.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// 2024-03-10T22:00:00Z
const BASE: i64 = 1_710_108_000_000;

fn event(seq: i64) -> String {
    let ts = BASE + ((seq * 7919) % 7200) * 1000;
    json!({
        "schema": {"type": "struct", "optional": false, "name": "tracking.Event", "fields": [
            {"field": "seq", "type": "int64", "optional": false},
            {"field": "ts", "type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
            {"field": "user", "type": "string", "optional": true},
            {"field": "amount", "type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}},
            {"field": "tags", "type": "array", "optional": false, "items": {"type": "string", "optional": false}},
            {"field": "ctx", "type": "struct", "optional": true, "fields": [
                {"field": "ip", "type": "string", "optional": true}]}]},
        "payload": {"seq": seq, "ts": ts, "user": if seq % 5 == 0 { Value::Null } else { json!(format!("u{}", seq % 97)) },
            "amount": "MDk=", "tags": ["a", "b"], "ctx": {"ip": "10.0.0.1"}}
    })
    .to_string()
}

/// The first ten of `0..n` absent from `all`, and the first ten present more than once.
fn missing_and_duplicated(all: &[i64], n: i64) -> (Vec<i64>, Vec<(i64, usize)>) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for s in all {
        *counts.entry(*s).or_default() += 1;
    }
    let missing = (0..n).filter(|s| !counts.contains_key(s)).take(10).collect();
    let dups = counts.into_iter().filter(|(_, c)| *c > 1).take(10).collect();
    (missing, dups)
}

fn seqs(view: &Value) -> Vec<i64> {
    let mut all: Vec<i64> = view["files"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .flat_map(|f| f["values"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_i64())
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

#[test]
fn s3_hourly_files_exactly_once_across_five_kill_9() {
    let services = Services::load();
    let kafka = services.kafka();
    let s3 = Lake::load(&services);
    // One bucket for every test (SeaweedFS gives each bucket its own volumes); topics are unique.
    let bucket = "sluice-tests".to_string();
    s3.mkbucket(&bucket);
    let topic = unique("events");
    create_topic(&kafka, &topic);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=1000",
    );
    let connector = dir.path().join("s3.json");
    std::fs::write(
        &connector,
        json!({"name": "lake", "config": {
            "connector.class": "io.confluent.connect.s3.S3SinkConnector",
            "topics": topic,
            "s3.bucket.name": bucket, "store.url": s3.endpoint, "s3.region": "us-east-1",
            "aws.access.key.id": s3.key, "aws.secret.access.key": s3.secret,
            "format.class": "io.confluent.connect.s3.format.parquet.ParquetFormat",
            "flush.size": "400",
            "rotate.schedule.interval.ms": "4000",
            "partitioner.class": "io.confluent.connect.storage.partitioner.HourlyPartitioner",
            "timestamp.extractor": "RecordField", "timestamp.field": "ts",
            "timezone": "UTC", "locale": "en-US"}})
        .to_string(),
    )
    .expect("write");

    // Records keep arriving while the worker is killed five times.
    const N: i64 = 24_000;
    let producer = {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in (0..N).collect::<Vec<_>>().chunks(600) {
                let recs: Vec<(String, Option<String>)> =
                    chunk.iter().map(|s| (s.to_string(), Some(event(*s)))).collect();
                produce(&kafka, &topic, &recs);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice-0.log"));
    for round in 1..=5 {
        wait_until(Duration::from_secs(60), "the sink running", || running_tasks(sluice.port, "lake", 1).is_some());
        std::thread::sleep(Duration::from_millis(1500 + 300 * round));
        sluice.kill9();
        sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join(format!("sluice-{round}.log")));
    }
    producer.join().expect("producer");
    let base = format!("{bucket}/topics/{topic}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let view = loop {
        let view = s3.read_parquet(&base, "seq");
        if seqs(&view).len() >= N as usize || Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let all = seqs(&view);
    let (missing, dups) = missing_and_duplicated(&all, N);
    assert!(
        missing.is_empty() && dups.is_empty(),
        "{} rows; missing {missing:?}; duplicated {dups:?}\n{}",
        all.len(),
        sluice.log_text()
    );

    let files = view["files"].as_array().expect("files");
    for f in files {
        let path = f["path"].as_str().expect("path");
        // year=2024/month=03/day=10/hour=22/<topic>+0+<10 digits>.parquet
        let (dirs, name) = path.rsplit_once('/').expect("dirs");
        assert!(dirs == "year=2024/month=03/day=10/hour=22" || dirs == "year=2024/month=03/day=10/hour=23", "{path}");
        let start: i64 = name
            .strip_prefix(&format!("{topic}+0+"))
            .and_then(|r| r.strip_suffix(".parquet"))
            .filter(|d| d.len() == 10)
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("file name {name}"));
        assert_eq!(f["meta"]["kafka.offset.start"], json!(start.to_string()), "{path}");
        let values: Vec<i64> = f["values"].as_array().expect("values").iter().filter_map(|v| v.as_i64()).collect();
        assert_eq!(values.first().copied(), Some(start), "a single-partition topic: seq = offset ({path})");
        assert_eq!(f["meta"]["kafka.offset.end"], json!(values.last().expect("rows").to_string()), "{path}");
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{path}: offsets ascend");
        let hour = if dirs.ends_with("22") { 22 } else { 23 };
        for s in &values {
            let ts = BASE + ((s * 7919) % 7200) * 1000;
            assert_eq!(22 + (ts - BASE) / 3_600_000, hour, "{path}: seq {s} in the wrong hour");
        }
        assert!(f["rows"].as_i64().expect("rows") <= 400, "{path}: flush.size");
    }
    let types = &files[0]["types"];
    assert_eq!(types["seq"], "int64");
    assert_eq!(types["ts"], "timestamp[ms, tz=UTC]");
    assert_eq!(types["user"], "string");
    assert_eq!(types["amount"], "decimal128(38, 2)");
    assert_eq!(types["tags"], "list<element: string not null>");
    assert_eq!(types["ctx"], "struct<ip: string>");
    let dataset = &view["dataset"];
    assert_eq!(dataset["rows"], json!(N));
    for c in ["year", "month", "day", "hour"] {
        assert!(dataset["columns"].as_array().expect("columns").contains(&json!(c)), "Hive column {c}: {dataset}");
    }
}

/// A TCP proxy in front of the S3 server that can go down: while down it closes the connections
/// it has and refuses new ones, as a server that went away would.
struct CuttableProxy {
    port: u16,
    down: Arc<AtomicBool>,
}

impl CuttableProxy {
    fn start(upstream: &str) -> CuttableProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let flag = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    let (flag, other) =
                        (flag.clone(), (client.try_clone().expect("clone"), server.try_clone().expect("clone")));
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let _ = to.set_write_timeout(Some(Duration::from_secs(1)));
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            if flag.load(Ordering::SeqCst) {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = other.0.shutdown(Shutdown::Both);
                        let _ = other.1.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        CuttableProxy { port, down }
    }
}

/// The S3 server goes away twice for a few seconds while records keep coming: uploads fail in the
/// middle, the sink asks the worker to read the partition again from its open file's first offset,
/// and in the end every produced offset is in the lake exactly once.
#[test]
fn s3_outages_during_writes_lose_and_duplicate_nothing() {
    let services = Services::load();
    let kafka = services.kafka();
    let s3 = Lake::load(&services);
    let bucket = "sluice-tests".to_string();
    s3.mkbucket(&bucket);
    let proxy = CuttableProxy::start(&s3.endpoint);
    let topic = unique("outage");
    // Its own consumer group: a group a killed worker left behind would delay the assignment.
    let name = unique("outage-lake");
    create_topic(&kafka, &topic);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=1000",
    );
    let connector = dir.path().join("s3.json");
    std::fs::write(
        &connector,
        json!({"name": name, "config": {
            "connector.class": "io.confluent.connect.s3.S3SinkConnector",
            "topics": topic,
            "s3.bucket.name": bucket, "store.url": format!("http://127.0.0.1:{}", proxy.port),
            "s3.region": "us-east-1",
            "aws.access.key.id": s3.key, "aws.secret.access.key": s3.secret,
            "format.class": "io.confluent.connect.s3.format.parquet.ParquetFormat",
            "flush.size": "500",
            "rotate.schedule.interval.ms": "3000",
            "partitioner.class": "io.confluent.connect.storage.partitioner.HourlyPartitioner",
            "timestamp.extractor": "RecordField", "timestamp.field": "ts",
            "timezone": "UTC", "locale": "en-US"}})
        .to_string(),
    )
    .expect("write");
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    wait_until(Duration::from_secs(60), "the partition assigned", || {
        sluice.log_text().contains("files already in the lake")
    });
    // Records keep coming from before the first outage to after the second.
    const N: i64 = 20_000;
    let producer = {
        let (kafka, topic) = (kafka.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
                let recs: Vec<(String, Option<String>)> =
                    chunk.iter().map(|s| (s.to_string(), Some(event(*s)))).collect();
                produce(&kafka, &topic, &recs);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1000));
        proxy.down.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(3));
        proxy.down.store(false, Ordering::SeqCst);
    }
    producer.join().expect("producer");
    let base = format!("{bucket}/topics/{topic}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if seqs(&s3.read_parquet(&base, "seq")).len() >= N as usize || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    // A file written late (a duplicate) would land within a scheduled rotation or two.
    std::thread::sleep(Duration::from_secs(7));
    let all = seqs(&s3.read_parquet(&base, "seq"));
    let (missing, dups) = missing_and_duplicated(&all, N);
    let log = sluice.log_text();
    assert!(
        missing.is_empty() && dups.is_empty(),
        "{} rows; missing {missing:?}; duplicated {dups:?}\n{log}",
        all.len()
    );
    // The outages did hit writes, and the worker read the partition again as the sink asked.
    assert!(log.contains("reading again from the offset the sink asked for"), "no rewind happened:\n{log}");
    assert!(running_tasks(sluice.port, &name, 1).is_some(), "the task survived the outages:\n{log}");
}

#[test]
fn s3_file_larger_than_a_part_is_created_once() {
    let services = Services::load();
    let kafka = services.kafka();
    let s3 = Lake::load(&services);
    let bucket = "sluice-tests".to_string();
    s3.mkbucket(&bucket);
    let topic = unique("big");
    create_topic(&kafka, &topic);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    // ~1 KB of incompressible text per record, no compression: 7,000 records are > 5 MiB.
    let recs: Vec<(String, Option<String>)> = (0..7000)
        .map(|s| {
            let v = json!({"schema": {"type": "struct", "optional": false, "fields": [
                    {"field": "seq", "type": "int64", "optional": false},
                    {"field": "pad", "type": "string", "optional": false}]},
                "payload": {"seq": s, "pad": padding(s)}});
            (s.to_string(), Some(v.to_string()))
        })
        .collect();
    produce(&kafka, &topic, &recs);
    let connector = dir.path().join("s3.json");
    std::fs::write(
        &connector,
        json!({"name": "big", "config": {
            "connector.class": "parquet", "topics": topic,
            "store.url": format!("s3://{bucket}"), "s3.region": "us-east-1",
            "aws.access.key.id": s3.key, "aws.secret.access.key": s3.secret,
            "flush.size": "7000", "parquet.codec": "none", "s3.part.size": "5242880",
            "parquet.row.group.bytes": "1048576"}})
        .to_string(),
    )
    .expect("write");
    // store.url=s3://bucket has no endpoint: the endpoint comes from the AWS environment.
    let cmd_env = [("AWS_ENDPOINT_URL", s3.endpoint.clone()), ("AWS_ALLOW_HTTP", "true".to_string())];
    let sluice = Sluice::standalone_with_env(&worker, &[&connector], port, dir.path().join("sluice.log"), &cmd_env);
    let base = format!("{bucket}/topics/{topic}");
    let mut view = Value::Null;
    wait_until(Duration::from_secs(90), "the big file", || {
        view = s3.read_parquet(&base, "seq");
        seqs(&view).len() >= 7000
    });
    let files = view["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{view}");
    assert_eq!(files[0]["path"], json!(format!("partition=0/{topic}+0+0000000000.parquet")));
    assert!(files[0]["row_groups"].as_i64().expect("row groups") > 1, "row groups written as they fill");
    assert_eq!(seqs(&view), (0..7000).collect::<Vec<_>>());
    // The staged upload was moved away, not left behind.
    let staged =
        s3.python("read_lake.py", &["ls", &s3.endpoint, &s3.key, &s3.secret, &format!("{bucket}/topics/+tmp/{topic}")]);
    assert_eq!(staged.trim(), "[]", "{}", sluice.log_text());
}

/// 64 partitions of ~4 MB each, no rotation by size and a 30 s schedule: without a cap the task
/// would hold all 64 files (~250 MB) until the schedule; `buffer.max.bytes` (16 MiB) completes the
/// largest files early instead. The stated bound: peak RSS under 320 MiB (measured ~205 MiB; with
/// the cap raised to 1 GiB the same test measured 390 MiB and failed), every record exactly once.
#[test]
fn s3_64_open_files_stay_under_the_memory_bound() {
    const PARTITIONS: i32 = 64;
    const PER_PARTITION: i64 = 3600;
    const BOUND_MIB: f64 = 320.0;
    let services = Services::load();
    let kafka = services.kafka();
    let s3 = Lake::load(&services);
    let bucket = "sluice-tests".to_string();
    s3.mkbucket(&bucket);
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
            "connector.class": "parquet", "topics": topic,
            "s3.bucket.name": bucket, "store.url": s3.endpoint, "s3.region": "us-east-1",
            "aws.access.key.id": s3.key, "aws.secret.access.key": s3.secret,
            "flush.size": "100000", "rotate.schedule.interval.ms": "30000", "parquet.codec": "none",
            "parquet.row.group.bytes": "1048576", "buffer.max.bytes": "16777216"}})
        .to_string(),
    )
    .expect("write");
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    let base = format!("{bucket}/topics/{topic}");
    let total = PARTITIONS as usize * PER_PARTITION as usize;
    let mut view = Value::Null;
    wait_until(Duration::from_secs(180), "every record in the lake", || {
        view = s3.read_parquet(&base, "seq");
        seqs(&view).len() >= total
    });
    let peak = sluice.peak_rss_mib();
    let all = seqs(&view);
    assert_eq!(all, (0..total as i64).collect::<Vec<_>>(), "every record exactly once");
    let files = view["files"].as_array().expect("files");
    let partitions: std::collections::BTreeSet<&str> =
        files.iter().filter_map(|f| f["path"].as_str()).filter_map(|p| p.split('/').next()).collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "a file for every Kafka partition: {partitions:?}");
    eprintln!("64 partitions: {} files, peak RSS {peak:.1} MiB (bound {BOUND_MIB} MiB)", files.len());
    assert!(peak > 0.0 && peak < BOUND_MIB, "peak RSS {peak:.1} MiB >= {BOUND_MIB} MiB\n{}", sluice.log_text());
}

/// The Parquet sink on HDFS (`hdfs.url`), through a kill -9: every offset in exactly one file,
/// files read back through the sink's own HDFS client (footer offsets). Needs `HDFS_URL`
/// (hdfs://namenode:port[/path]); skipped without it.
#[test]
fn hdfs_files_exactly_once_across_a_kill_9() {
    let Ok(hdfs) = std::env::var("HDFS_URL") else {
        skip("hdfs_files_exactly_once_across_a_kill_9", "HDFS_URL is not set (no HDFS namenode on this machine)");
        return;
    };
    let kafka = Services::load().kafka();
    let topic = unique("hdfs");
    create_topic(&kafka, &topic);
    const N: i64 = 3000;
    let recs: Vec<(String, Option<String>)> = (0..N).map(|s| (s.to_string(), Some(event(s)))).collect();
    produce(&kafka, &topic, &recs);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let config: sluice_api::ConfigMap = [
        ("connector.class", "io.confluent.connect.hdfs3.Hdfs3SinkConnector"),
        ("topics", topic.as_str()),
        ("hdfs.url", hdfs.as_str()),
        ("format.class", "io.confluent.connect.hdfs3.parquet.ParquetFormat"),
        ("flush.size", "250"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let connector = dir.path().join("hdfs.json");
    std::fs::write(&connector, json!({"name": "hdfs", "config": config}).to_string()).expect("write");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let written = || rt.block_on(sluice_connectors::sinks::parquet::lake_files(&config, &topic)).unwrap_or_default();
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice-0.log"));
    // Killed while it writes: once its first file is on HDFS.
    wait_until(Duration::from_secs(60), "a first file on HDFS", || !written().is_empty());
    sluice.kill9();
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice-1.log"));
    let mut files = Vec::new();
    wait_until(Duration::from_secs(120), "every offset in a file on HDFS", || {
        files = written();
        files.last().is_some_and(|(_, _, last)| *last >= N - 1)
    });
    let mut next = 0;
    for (path, first, last) in &files {
        assert_eq!(*first, next, "{path}: a gap or an overlap before it\n{}", sluice.log_text());
        assert!(path.ends_with(&format!("{topic}+0+{first:010}.parquet")), "{path}");
        assert!(last - first < 250, "{path}: flush.size");
        next = last + 1;
    }
    assert_eq!(next, N, "every offset once: {files:?}");
}

/// The completed Parquet files under `dir` (staging excluded).
fn local_parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") && !p.to_string_lossy().contains("+tmp") {
                out.push(p);
            }
        }
    }
    out
}

/// `rotate.schedule.interval.ms` holds when the topic goes quiet: while no records arrive the
/// runtime calls `put` with an empty batch, as Kafka Connect does. The offset flush (Kafka
/// Connect's default, 60 s, here) is not what completes the last file.
#[test]
fn a_quiet_topic_gets_its_scheduled_file() {
    let quiet = QuietSink::start(|topic, lake| {
        json!({"connector.class": "parquet", "topics": topic,
            "store.url": format!("file://{}", lake.display()),
            "flush.size": "100000", "rotate.schedule.interval.ms": "1000"})
    });
    let lake = quiet.lake();
    let took =
        quiet.flush_time(event, || local_parquet_files(&lake).len() == 1, || local_parquet_files(&lake).len() == 2);
    assert!(
        took < Duration::from_millis(3000),
        "the file of the last records was completed {took:?} after they were sent (rotate.schedule.interval.ms=1000)\n{}",
        quiet.sluice.log_text()
    );
}
