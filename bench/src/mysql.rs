//! `sluice-bench mysql`: MySQL/MariaDB CDC throughput and latency, next to the raw limits measured
//! in the same run: a bare binlog read of the same binlog range (mysql_async stream that decodes
//! nothing, and `mariadb-binlog --read-from-remote-server` to /dev/null) and raw rdkafka produce of
//! records of the same size on the same broker.
//!
//! Phases, on `--tables` tables holding `--rows` rows of about 600 bytes in all:
//! 1. **snapshot**: sluice starts with `snapshot.mode=initial`; time from process start until a
//!    consumer has read every snapshot record;
//! 2. **streaming**: with sluice stopped, `--rows` more rows are inserted (10,000-row transactions);
//!    sluice restarts from its stored offset; time from the first streamed record read to the last
//!    (start-up reported apart);
//! 3. **latency**: rows inserted at `--rate` rows/s for 10 s (100-row transactions every 10 ms); each
//!    row carries its insert time, compared with the time a consumer can read its record.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, OptsBuilder};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::{create_topic, now_micros, percentile, raw_produce, unique, Rate, SluiceProc};

/// Flags of `sluice-bench mysql`.
pub struct MysqlArgs {
    pub rows: usize,
    pub tables: usize,
    pub rate: usize,
    pub schemas: bool,
    /// `snapshot.max.threads` of the snapshot phase.
    pub threads: usize,
}

/// Bytes of one row's `note` column: with the other columns a row is about 600 bytes.
const NOTE_BYTES: usize = 480;
/// Rows per bulk INSERT ... SELECT (one transaction each).
const BULK_TXN_ROWS: usize = 10_000;

struct Db {
    host: String,
    port: u16,
    user: String,
    password: String,
}

impl Db {
    fn from_env(vars: &HashMap<String, String>) -> Result<Db> {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| vars.get(k).cloned())
                .ok_or_else(|| anyhow!("{k} not set: run `bash scripts/services.sh start mariadb`"))
        };
        Ok(Db {
            host: get("MYSQL_HOST")?,
            port: get("MYSQL_PORT")?.parse()?,
            user: get("MYSQL_USER")?,
            password: get("MYSQL_PASSWORD")?,
        })
    }

    async fn conn(&self) -> Result<Conn> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false);
        Ok(Conn::new(opts).await?)
    }
}

/// The server's current binlog (file, position).
async fn master_position(conn: &mut Conn) -> Result<(String, u64)> {
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
    let row = row.ok_or_else(|| anyhow!("the binlog is off"))?;
    let file: String = row.get(0).ok_or_else(|| anyhow!("no binlog file"))?;
    let pos: u64 = row.get(1).ok_or_else(|| anyhow!("no binlog position"))?;
    Ok((file, pos))
}

/// Inserts `count` rows with ids starting at `first_id`, spread evenly over the tables, in
/// 10,000-row INSERT ... SELECT transactions (MariaDB's sequence engine generates the rows).
async fn bulk_insert(conn: &mut Conn, db: &str, tables: usize, first_id: usize, count: usize) -> Result<()> {
    let per_table = count / tables;
    for t in 0..tables {
        let mut from = first_id;
        let end = first_id + per_table;
        while from < end {
            let to = (from + BULK_TXN_ROWS).min(end) - 1;
            conn.query_drop(format!(
                "INSERT INTO `{db}`.t{t} (id, created_us, customer, status, amount, qty, note, updated_at) \
                 SELECT seq, 0, CONCAT('customer-', seq % 10000), ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'done'), \
                 (seq % 100000) / 100, seq % 50, REPEAT(CHAR(97 + seq % 26), {NOTE_BYTES}), '2026-11-22 10:00:00.123456' \
                 FROM `{db}`.seq_{from}_to_{to}"
            ))
            .await?;
            from = to + 1;
        }
    }
    Ok(())
}

/// Reads the binlog from `start` to `end` as a replica and decodes nothing but rotations: the raw
/// read limit. Returns (seconds, bytes).
async fn raw_binlog_read(db: &Db, start: &(String, u64), end: &(String, u64)) -> Result<(f64, u64)> {
    let mut conn = db.conn().await?;
    conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    let began = Instant::now();
    let request = BinlogStreamRequest::new(4_000_000_000).with_filename(start.0.as_bytes()).with_pos(start.1);
    let mut stream = conn.get_binlog_stream(request).await?;
    let mut file = start.0.clone();
    let mut bytes = 0u64;
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        let header = ev.header();
        bytes += u64::from(header.event_size());
        if header.event_type_raw() == 4 {
            if let Some(mysql_async::binlog::events::EventData::RotateEvent(r)) = ev.read_data()? {
                let name = String::from_utf8_lossy(r.name_raw()).into_owned();
                // The first (fake) rotate may carry the 4 checksum bytes after the name.
                file = name.get(..start.0.len()).map_or(name.clone(), String::from);
            }
        }
        if file == end.0 && u64::from(header.log_pos()) >= end.1 {
            break;
        }
    }
    Ok((began.elapsed().as_secs_f64(), bytes))
}

/// `mariadb-binlog --read-from-remote-server` of the same range to /dev/null.
fn raw_mysqlbinlog(db: &Db, files: &[String], start: u64, stop: u64) -> Result<f64> {
    let began = Instant::now();
    let status = Command::new("mariadb-binlog")
        .args([
            "--no-defaults",
            "--read-from-remote-server",
            "-h",
            &db.host,
            "-P",
            &db.port.to_string(),
            "-u",
            &db.user,
        ])
        .arg(format!("-p{}", db.password))
        .arg(format!("--start-position={start}"))
        .arg(format!("--stop-position={stop}"))
        .args(files)
        .stdout(std::process::Stdio::null())
        .status()
        .context("run mariadb-binlog")?;
    if !status.success() {
        bail!("mariadb-binlog failed: {status}");
    }
    Ok(began.elapsed().as_secs_f64())
}

/// Binlog files from `from` to `to`, in order.
async fn binlog_files(conn: &mut Conn, from: &str, to: &str) -> Result<Vec<String>> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
    let names: Vec<String> = rows.iter().filter_map(|r| r.get::<String, _>(0)).collect();
    Ok(names.into_iter().filter(|n| n.as_str() >= from && n.as_str() <= to).collect())
}

fn consumer(bootstrap: &str, topics: &[String], from: i64) -> Result<StreamConsumer> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("bench-cdc"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        tpl.add_partition_offset(t, 0, if from == 0 { Offset::Beginning } else { Offset::Offset(from) })?;
    }
    c.assign(&tpl)?;
    Ok(c)
}

/// Reads `n` records; returns (time of the first, time of the last, payload bytes).
async fn read_n(c: &StreamConsumer, n: usize, deadline: Duration) -> Result<(Instant, Instant, usize)> {
    let mut stream = c.stream();
    let (mut first, mut bytes, mut count) = (None, 0, 0);
    let began = Instant::now();
    while count < n {
        let left =
            deadline.checked_sub(began.elapsed()).ok_or_else(|| anyhow!("only {count} of {n} records arrived"))?;
        let m = tokio::time::timeout(left, stream.next())
            .await
            .map_err(|_| anyhow!("only {count} of {n} records arrived"))?
            .ok_or_else(|| anyhow!("stream ended"))??;
        first.get_or_insert_with(Instant::now);
        bytes += m.payload_len();
        count += 1;
    }
    Ok((first.unwrap_or(began), Instant::now(), bytes))
}

fn connector(db: &Db, name: &str, database: &str, mode: &str) -> String {
    format!(
        "name={name}\nconnector.class=io.debezium.connector.mysql.MySqlConnector\ndatabase.hostname={}\n\
         database.port={}\ndatabase.user={}\ndatabase.password={}\ndatabase.server.id={}\ntopic.prefix=bench\n\
         database.include.list={database}\nsnapshot.mode={mode}\ninclude.schema.changes=false\n\
         database.ssl.mode=disabled\n",
        db.host,
        db.port,
        db.user,
        db.password,
        4_000_000_001u32 - (now_micros() % 1000) as u32
    )
}

/// Offsets for the in-process task: the given binlog position for every partition.
struct FixedOffset(serde_json::Map<String, serde_json::Value>);

impl sluice_api::OffsetStorageReader for FixedOffset {
    fn offset(
        &self,
        _partition: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        Some(self.0.clone())
    }
}

/// The CDC task alone, in process, with no Kafka: streams `n` rows from `start` through the
/// connector's own task (binlog decode → Debezium records), and optionally the JSON converter.
/// Returns seconds from the first record to the `n`-th.
async fn task_only(db: &Db, database: &str, start: &(String, u64), n: usize, json: bool) -> Result<f64> {
    use sluice_api::{ConnectorInstance, SourceTaskContext};
    let ConnectorInstance::Source(connector) = (sluice_connectors::sources::mysql::PLUGIN.create)() else {
        bail!("the mysql plugin is not a source");
    };
    let config: sluice_api::ConfigMap = [
        ("database.hostname", db.host.clone()),
        ("database.port", db.port.to_string()),
        ("database.user", db.user.clone()),
        ("database.password", db.password.clone()),
        ("database.server.id", "4000000900".to_string()),
        ("topic.prefix", "bench".to_string()),
        ("database.include.list", database.to_string()),
        ("include.schema.changes", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut offset = serde_json::Map::new();
    offset.insert("file".into(), start.0.clone().into());
    offset.insert("pos".into(), start.1.into());
    let context = SourceTaskContext {
        connector: "bench".into(),
        task: 0,
        offsets: std::sync::Arc::new(FixedOffset(offset)),
        state: None,
    };
    let mut task = connector.create_task();
    task.start(&config, context).await.map_err(|e| anyhow!("task start: {e}"))?;
    let converter = sluice_runtime::converters::create_converter(
        "value.converter",
        "json",
        &[("schemas.enable".to_string(), "false".to_string())].into_iter().collect(),
        false,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (mut first, mut count) = (None, 0);
    let began = Instant::now();
    while count < n {
        if began.elapsed() > Duration::from_secs(300) {
            bail!("task-only: {count} of {n} records");
        }
        let records = task.poll().await.map_err(|e| anyhow!("poll: {e}"))?;
        if !records.is_empty() {
            first.get_or_insert_with(Instant::now);
        }
        for r in &records {
            if json {
                let bytes =
                    converter.to_bytes(&r.topic, r.value_schema.as_ref(), &r.value).map_err(|e| anyhow!("{e}"))?;
                std::hint::black_box(bytes);
            }
        }
        count += records.iter().filter(|r| !r.value.is_null()).count();
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    task.stop().await.map_err(|e| anyhow!("stop: {e}"))?;
    Ok(secs)
}

/// Runs the three phases and the raw limits.
pub async fn bench(bootstrap: &str, vars: &HashMap<String, String>, dir: &Path, args: MysqlArgs) -> Result<()> {
    let db = Db::from_env(vars)?;
    let tables = args.tables.max(1);
    let n = args.rows / tables * tables;
    let per_table = n / tables;
    let database = unique("bench").replace('-', "_");
    println!(
        "sluice-bench mysql: {n} rows of ~600 bytes over {tables} table(s), broker {bootstrap}, MariaDB {}:{}, JSON converter schemas.enable={}\n",
        db.host, db.port, args.schemas
    );
    let mut conn = db.conn().await?;
    conn.query_drop(format!("CREATE DATABASE `{database}`")).await?;
    let mut topics = Vec::new();
    for t in 0..tables {
        conn.query_drop(format!(
            "CREATE TABLE `{database}`.t{t} (id BIGINT PRIMARY KEY, created_us BIGINT NOT NULL, customer VARCHAR(64), \
             status VARCHAR(16), amount DECIMAL(12,2), qty INT, note VARCHAR(600), updated_at DATETIME(6))"
        ))
        .await?;
        let topic = format!("bench.{database}.t{t}");
        create_topic(bootstrap, &topic).await?;
        topics.push(topic);
    }
    let load = Instant::now();
    bulk_insert(&mut conn, &database, tables, 1, n).await?;
    println!("loaded {n} rows for the snapshot in {:.1} s", load.elapsed().as_secs_f64());

    let schemas = args.schemas;
    let converters = format!(
        "key.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\n\
         key.converter.schemas.enable={schemas}\nvalue.converter.schemas.enable={schemas}\n"
    );
    let name = unique("bench-cdc");

    // 1. Snapshot.
    let snap = {
        let c = consumer(bootstrap, &topics, 0)?;
        let started = Instant::now();
        let proc = SluiceProc::start_with(
            dir,
            bootstrap,
            &converters,
            &[(
                "cdc",
                format!("{}snapshot.max.threads={}\n", connector(&db, &name, &database, "initial"), args.threads),
            )],
        )?;
        let (_, last, bytes) = read_n(&c, n, Duration::from_secs(900)).await?;
        let rate = Rate { records: n, seconds: (last - started).as_secs_f64(), bytes };
        let rss = proc.peak_rss_mib();
        // Let the last offsets flush (offset.flush.interval.ms=1000) before stopping.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        proc.stop()?;
        println!(
            "sluice snapshot -> Kafka ({} reader{})    {rate}  peak RSS {rss:.1} MiB",
            args.threads,
            if args.threads == 1 { " " } else { "s" }
        );
        rate
    };
    let record_bytes = snap.bytes / n.max(1);

    // 2. Streaming: rows written while sluice is down, then read from its stored offset.
    let start_pos = master_position(&mut conn).await?;
    let load = Instant::now();
    bulk_insert(&mut conn, &database, tables, n + 1, n).await?;
    let end_pos = master_position(&mut conn).await?;
    println!(
        "inserted {n} rows for streaming in {:.1} s ({:.0} rows/s), binlog {}:{} .. {}:{}",
        load.elapsed().as_secs_f64(),
        n as f64 / load.elapsed().as_secs_f64(),
        start_pos.0,
        start_pos.1,
        end_pos.0,
        end_pos.1
    );
    let (secs, binlog_bytes) = raw_binlog_read(&db, &start_pos, &end_pos).await?;
    println!(
        "raw binlog read (mysql_async, no decode)  {:>9.0} rows/s {:>7.1} MB/s ({} rows, {:.1} MB of binlog in {:.2} s)",
        n as f64 / secs,
        binlog_bytes as f64 / secs / 1e6,
        n,
        binlog_bytes as f64 / 1e6,
        secs
    );
    let files = binlog_files(&mut conn, &start_pos.0, &end_pos.0).await?;
    let secs = raw_mysqlbinlog(&db, &files, start_pos.1, end_pos.1)?;
    println!(
        "raw mariadb-binlog --read-from-remote    {:>9.0} rows/s ({:.2} s, text output to /dev/null)",
        n as f64 / secs,
        secs
    );
    for json in [false, true] {
        let secs = task_only(&db, &database, &start_pos, n, json).await?;
        println!(
            "CDC task alone, no Kafka ({})  {:>9.0} rows/s ({n} rows in {secs:.2} s)",
            if json { "decode + JSON   " } else { "decode to records" },
            n as f64 / secs
        );
    }
    let raw_topic = unique("bench-cdc-raw");
    create_topic(bootstrap, &raw_topic).await?;
    let produced = raw_produce(bootstrap, &raw_topic, n, record_bytes).await?;
    println!("raw rdkafka produce ({record_bytes} B records)     {produced}");

    let c = consumer(bootstrap, &topics, per_table as i64)?;
    let started = Instant::now();
    let proc =
        SluiceProc::start_with(dir, bootstrap, &converters, &[("cdc", connector(&db, &name, &database, "initial"))])?;
    let (first, last, bytes) = read_n(&c, n, Duration::from_secs(900)).await?;
    let rate = Rate { records: n, seconds: (last - first).as_secs_f64(), bytes };
    println!(
        "sluice binlog streaming -> Kafka         {rate}  (start-up to first record {:.2} s, excluded)",
        (first - started).as_secs_f64()
    );

    // 3. Latency at a fixed rate.
    let total = args.rate * 10;
    let c = consumer(bootstrap, &topics, 2 * per_table as i64)?;
    let writer = {
        let mut conn = db.conn().await?;
        let database = database.clone();
        let rate = args.rate;
        tokio::spawn(async move {
            let tick = Duration::from_millis(10);
            let per_tick = (rate / 100).max(1);
            let began = Instant::now();
            let mut id = 2 * n + 1;
            let mut written = 0;
            let mut ticks = 0u32;
            while written < total {
                let rows = per_tick.min(total - written);
                let t = ticks as usize % tables;
                let now = now_micros();
                let values: Vec<String> = (0..rows)
                    .map(|k| {
                        format!(
                            "({}, {now}, 'customer-{k}', 'new', 12.34, 1, REPEAT('z', {NOTE_BYTES}), '2026-11-22 10:00:00.123456')",
                            id + k
                        )
                    })
                    .collect();
                conn.query_drop(format!(
                    "INSERT INTO `{database}`.t{t} (id, created_us, customer, status, amount, qty, note, updated_at) VALUES {}",
                    values.join(",")
                ))
                .await?;
                id += rows;
                written += rows;
                ticks += 1;
                if let Some(wait) = (tick * ticks).checked_sub(began.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            anyhow::Ok(began.elapsed())
        })
    };
    let mut latencies = Vec::with_capacity(total);
    {
        let mut stream = c.stream();
        while latencies.len() < total {
            let m = tokio::time::timeout(Duration::from_secs(60), stream.next())
                .await
                .map_err(|_| anyhow!("latency phase: only {} of {total} records arrived", latencies.len()))?
                .ok_or_else(|| anyhow!("stream ended"))??;
            let received = now_micros();
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
            let after = if schemas { &v["payload"]["after"] } else { &v["after"] };
            let created =
                after["created_us"].as_u64().ok_or_else(|| anyhow!("record without after.created_us: {v}"))?;
            latencies.push(received.saturating_sub(u128::from(created)) as f64 / 1000.0);
        }
    }
    let took = writer.await??;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let rss = proc.peak_rss_mib();
    proc.stop()?;
    println!(
        "sluice commit -> Kafka latency at {} rows/s (written in {:.1} s): p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        args.rate,
        took.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!("peak RSS of the streaming process: {rss:.1} MiB");
    conn.query_drop(format!("DROP DATABASE `{database}`")).await?;
    conn.disconnect().await?;
    Ok(())
}
