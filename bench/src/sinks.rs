//! `sluice-bench redis` and `sluice-bench elasticsearch`: the serving sinks next to the raw
//! limits of the same servers, measured in the same run.
//!
//! The same ~330-byte order documents (10 scalar fields, keyed by order id) go to Kafka, then:
//! - Redis: `redis-benchmark` pipelining HSETs of the same 10 fields (one connection with
//!   pipeline 1000, as the sink uses one connection per task; and 50 connections with pipeline
//!   100), then the Redis sink (HASH, each batch one conditional MULTI/EXEC with its offsets) catching up on
//!   the topic, then latency at a fixed rate: record produced → its offset stored in Redis (which
//!   happens in the same transaction as the write).
//! - Search servers (each one set): a raw `_bulk` loader sending the same documents with the same
//!   actions (index, `_id`, external version) in requests of 2000 over 5 connections (the sink's
//!   defaults), then the sink catching up, then latency at a fixed rate: record produced → counted
//!   by `_count` after `_refresh` (polled every 10 ms; approximate, as documents are written over
//!   several concurrent requests).
//!
//! Group join and connector start are excluded from the throughput figures (timed from the first
//! write seen) and reported apart.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{create_topic, latency, percentile, producer, raw_consume, unique, Rate, SluiceProc};

const FIELDS: usize = 10;

/// One order document (schemaless JSON, 10 scalar fields).
fn order(i: usize) -> String {
    format!(
        r#"{{"id":{i},"customer":"customer-{:06}","status":"paid","total":{}.{:02},"currency":"EUR","items":{},"created_at":"2026-11-22T10:00:00.000Z","channel":"web","address":"Hauptstrasse {} 10115 Berlin Germany","note":"leave at the door, ring twice, thank you very much"}}"#,
        i % 100_000,
        i % 1000,
        i % 100,
        i % 7 + 1,
        i % 500
    )
}

/// Produces `n` orders (key = id) and returns the producer's rate.
async fn produce_orders(bootstrap: &str, topic: &str, n: usize) -> Result<(Rate, usize)> {
    produce_docs(bootstrap, topic, n, order).await
}

/// Produces documents `doc(0..n)` (key = the index) to partition 0; returns the producer's rate
/// and the mean record size.
pub(crate) async fn produce_docs(
    bootstrap: &str,
    topic: &str,
    n: usize,
    doc: fn(usize) -> String,
) -> Result<(Rate, usize)> {
    let p = producer(bootstrap)?;
    let docs: Vec<(String, String)> = (0..n).map(|i| (i.to_string(), doc(i))).collect();
    let bytes: usize = docs.iter().map(|(k, v)| k.len() + v.len()).sum();
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for (k, v) in &docs {
        loop {
            match p.send_result(FutureRecord::to(topic).key(k).payload(v).partition(0)) {
                Ok(f) => {
                    acks.push(f);
                    break;
                }
                Err(_) => {
                    if let Some(r) = acks.next().await {
                        r?.map_err(|(e, _)| e)?;
                    }
                }
            }
        }
    }
    while let Some(r) = acks.next().await {
        r?.map_err(|(e, _)| e)?;
    }
    Ok((Rate { records: n, seconds: start.elapsed().as_secs_f64(), bytes }, bytes / n.max(1)))
}

/// Produces orders at `rate`/s for `seconds`; returns each record's send time (index = offset on
/// a fresh one-partition topic with the idempotent producer).
async fn produce_at_rate(bootstrap: &str, topic: &str, rate: usize, seconds: u64) -> Result<Vec<Instant>> {
    produce_docs_at_rate(bootstrap, topic, rate, seconds, 0, order).await
}

/// Produces `doc(first)`, `doc(first + 1)`... at `rate`/s for `seconds`; returns each record's
/// send time, in order.
pub(crate) async fn produce_docs_at_rate(
    bootstrap: &str,
    topic: &str,
    rate: usize,
    seconds: u64,
    first: usize,
    doc: fn(usize) -> String,
) -> Result<Vec<Instant>> {
    produce_docs_at_rate_with(&producer(bootstrap)?, topic, rate, seconds, first, doc).await
}

/// [`produce_docs_at_rate`] with a given producer: one that has already sent (its connection and
/// idempotent producer id in place) puts no start-up time into the first records' latency.
pub(crate) async fn produce_docs_at_rate_with(
    p: &FutureProducer,
    topic: &str,
    rate: usize,
    seconds: u64,
    first: usize,
    doc: fn(usize) -> String,
) -> Result<Vec<Instant>> {
    let total = rate * seconds as usize;
    let mut sent = Vec::with_capacity(total);
    let tick = Duration::from_millis(5);
    let per_tick = (rate / 200).max(1);
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    while sent.len() < total {
        for _ in 0..per_tick.min(total - sent.len()) {
            let i = first + sent.len();
            let (k, v) = (i.to_string(), doc(i));
            sent.push(Instant::now());
            let f = p
                .send_result(FutureRecord::to(topic).key(&k).payload(&v).partition(0))
                .map_err(|(e, _)| anyhow!("produce: {e}"))?;
            acks.push(f);
        }
        if let Some(wait) = (tick * (sent.len() / per_tick) as u32).checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        while let Some(Some(r)) = futures::FutureExt::now_or_never(acks.next()) {
            r?.map_err(|(e, _)| e)?;
        }
    }
    while let Some(r) = acks.next().await {
        r?.map_err(|(e, _)| e)?;
    }
    Ok(sent)
}

pub(crate) fn summary(lat: &mut [f64]) -> String {
    lat.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(lat, 0.5),
        percentile(lat, 0.95),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    )
}

// ---------------------------------------------------------------------------------------------
// Redis

/// A minimal RESP connection for polling one key.
struct Resp(BufReader<TcpStream>);

impl Resp {
    async fn connect(addr: &str) -> Result<Resp> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Resp(BufReader::new(s)))
    }

    async fn get(&mut self, key: &str) -> Result<Option<String>> {
        let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        self.0.get_mut().write_all(cmd.as_bytes()).await?;
        let mut line = String::new();
        self.0.read_line(&mut line).await?;
        let len: i64 = line.trim().strip_prefix('$').ok_or_else(|| anyhow!("unexpected reply {line}"))?.parse()?;
        if len < 0 {
            return Ok(None);
        }
        let mut buf = vec![0; len as usize + 2];
        self.0.read_exact(&mut buf).await?;
        buf.truncate(len as usize);
        Ok(Some(String::from_utf8(buf)?))
    }

    /// The next offset connector `name` stored for partition 0 of `topic`.
    async fn stored_offset(&mut self, name: &str, topic: &str) -> Result<usize> {
        let v = self.get(&format!("com.redis.kafka.connect.sink.offset.{name}.{topic}.0")).await?;
        Ok(v.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["offset"].as_u64())
            .unwrap_or(0) as usize)
    }
}

fn redis_benchmark(host: &str, port: &str, n: usize, conns: usize, pipeline: usize) -> Result<f64> {
    let fields: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&order(123_456))?
        .into_iter()
        .flat_map(|(k, v)| [k, v.as_str().map_or_else(|| v.to_string(), String::from)])
        .collect();
    assert_eq!(fields.len(), FIELDS * 2);
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-n", &n.to_string(), "-r", "1000000", "-c", &conns.to_string()])
        .args(["-P", &pipeline.to_string(), "-q", "HSET", "bench-raw:__rand_int__"])
        .args(&fields)
        .output()
        .context("redis-benchmark (Debian package redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("requests per second"))
        .ok_or_else(|| anyhow!("redis-benchmark printed no result: {text}"))?;
    // "<command>: 104821.80 requests per second, p50=..." (the command itself may hold colons).
    let rate = line
        .split(" requests per second")
        .next()
        .and_then(|head| head.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("cannot read {line}"))?;
    Ok(rate)
}

/// Runs the Redis benchmark.
pub async fn redis(bootstrap: &str, vars: &HashMap<String, String>, dir: &Path, n: usize, rate: usize) -> Result<()> {
    let url = vars.get("REDIS_URL").ok_or_else(|| anyhow!("no REDIS_URL: run `bash scripts/services.sh start`"))?;
    let addr = url.trim_start_matches("redis://").trim_end_matches('/').to_string();
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| anyhow!("REDIS_URL without a port"))?;
    println!(
        "sluice-bench redis: {n} orders (10 fields) keyed by id, broker {bootstrap} (single partition), Redis {addr}\n"
    );

    let topic = unique("bench-redis");
    create_topic(bootstrap, &topic).await?;
    let (produced, size) = produce_orders(bootstrap, &topic, n).await?;
    println!("raw rdkafka produce (idempotent, acks=all)            {produced}  ({size} bytes per record)");
    let consumed = raw_consume(bootstrap, &topic, n, size).await?;
    println!("raw rdkafka consume                                   {consumed}");
    for (conns, pipeline) in [(1, 1000), (50, 100)] {
        let r = redis_benchmark(host, port, n, conns, pipeline)?;
        println!("redis-benchmark HSET 10 fields, {conns:>2} conn(s) pipeline {pipeline:<4} {r:>9.0} rec/s");
    }

    let space = unique("bench-order");
    let sink_dir = dir.join("redis-sink");
    std::fs::create_dir_all(&sink_dir)?;
    let connector = |name: &str, topic: &str| {
        format!(
            "name={name}\nconnector.class=redis\ntopics={topic}\nredis.uri={url}\nredis.type=HASH\nredis.keyspace={space}\n"
        )
    };
    let sink_name = unique("bench-redis-sink");
    let launched = Instant::now();
    let sink = SluiceProc::start_with(
        &sink_dir,
        bootstrap,
        "key.converter=string\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=false\n",
        &[("sink", connector(&sink_name, &topic))],
    )?;
    let mut conn = Resp::connect(&addr).await?;
    let mut first = None;
    loop {
        let done = conn.stored_offset(&sink_name, &topic).await?;
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if done >= n {
            break;
        }
        if launched.elapsed() > Duration::from_secs(600) {
            bail!("the redis sink wrote {done} of {n}; see {}/sluice.log", sink_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let join = first.map_or(0.0, |(f, _)| (f - launched).as_secs_f64());
    // Timed from the first write seen, counting only what was written after it.
    let (after, before) = first.map_or((0.0, 0), |(f, d)| (f.elapsed().as_secs_f64(), d));
    let rate_sink = Rate { records: n - before, seconds: after, bytes: (n - before) * size };
    let rss = sink.peak_rss_mib();
    sink.stop()?;
    println!("sluice Kafka -> Redis sink (HASH, MULTI/EXEC)         {rate_sink}  peak RSS {rss:.1} MiB (start + group join {join:.1} s, excluded)");

    // Latency at a fixed rate, with the sink already running.
    let lat_topic = unique("bench-redis-lat");
    create_topic(bootstrap, &lat_topic).await?;
    let lat_dir = dir.join("redis-lat");
    let lat_name = unique("bench-redis-lat");
    std::fs::create_dir_all(&lat_dir)?;
    let sink = SluiceProc::start_with(
        &lat_dir,
        bootstrap,
        "key.converter=string\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=false\n",
        &[("sink", connector(&lat_name, &lat_topic))],
    )?;
    // Wait until the sink has joined and written a first record.
    produce_orders(bootstrap, &lat_topic, 1).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while conn.stored_offset(&lat_name, &lat_topic).await? < 1 {
        if Instant::now() > deadline {
            bail!("the latency sink did not start; see {}/sluice.log", lat_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lat_topic2 = lat_topic.clone();
    let b = bootstrap.to_string();
    let producing = tokio::spawn(async move { produce_at_rate(&b, &lat_topic2, rate, 5).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The first record (offset 0) was the warm-up: record i of the run is offset i + 1.
    let mut poll = Resp::connect(&addr).await?;
    let sent_guess = Instant::now();
    let mut lat = Vec::new();
    let mut seen = 0usize;
    let total = rate * 5;
    let mut times: Vec<Instant> = Vec::with_capacity(total);
    while seen < total {
        let done = poll.stored_offset(&lat_name, &lat_topic).await?.saturating_sub(1);
        let now = Instant::now();
        while times.len() < done.min(total) {
            times.push(now);
        }
        seen = times.len();
        if sent_guess.elapsed() > Duration::from_secs(120) {
            bail!("only {seen} of {total} latency records written");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let sent = producing.await??;
    for (s, w) in sent.iter().zip(&times) {
        lat.push(w.saturating_duration_since(*s).as_secs_f64() * 1e3);
    }
    let rss = sink.peak_rss_mib();
    sink.stop()?;
    println!("sluice produce -> Redis latency at {rate} rec/s:        {}  peak RSS {rss:.1} MiB", summary(&mut lat));
    let raw_lat_topic = unique("bench-redis-rawlat");
    create_topic(bootstrap, &raw_lat_topic).await?;
    let (raw_lat, _) = latency(bootstrap, &raw_lat_topic, rate, size, None).await?;
    println!("raw rdkafka produce -> consume latency at {rate} rec/s: {raw_lat}");
    Ok(())
}

/// Records the worker's sink tasks have put (acknowledged by the sink), from its `/metrics`: a
/// progress probe that costs the target server nothing.
pub(crate) async fn sink_records_put(rest_port: u16) -> Result<usize> {
    let mut http = Http::connect(rest_port).await?;
    let (_, body) = http.send("GET", "/metrics", "text/plain", b"").await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("sluice_sink_record_send_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize)
}

// ---------------------------------------------------------------------------------------------
// Search servers

/// A keep-alive HTTP/1.1 connection.
struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    async fn connect(port: u16) -> Result<Http> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.set_nodelay(true)?;
        Ok(Http { stream: BufReader::new(s) })
    }

    async fn send(&mut self, method: &str, path: &str, ctype: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.stream.get_mut().write_all(body).await?;
        let mut status = String::new();
        self.stream.read_line(&mut status).await?;
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("bad status {status:?}"))?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            self.stream.read_line(&mut h).await?;
            if h == "\r\n" || h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).await?;
                let n = usize::from_str_radix(size.trim(), 16)?;
                let mut buf = vec![0; n + 2];
                self.stream.read_exact(&mut buf).await?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        } else {
            out.resize(length, 0);
            self.stream.read_exact(&mut out).await?;
        }
        Ok((code, out))
    }

    async fn count(&mut self, index: &str) -> Result<usize> {
        self.send("POST", &format!("/{index}/_refresh"), "application/json", b"").await?;
        let (_, body) = self.send("GET", &format!("/{index}/_count"), "application/json", b"").await?;
        let j: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(j["count"].as_u64().unwrap_or(0) as usize)
    }
}

/// The raw loader: the sink's actions for the same documents, `per_request` per request, 5
/// connections.
async fn raw_bulk(port: u16, index: &str, n: usize, per_request: usize) -> Result<(Rate, Vec<f64>)> {
    let mut bodies = Vec::new();
    let mut bytes = 0;
    for start in (0..n).step_by(per_request) {
        let mut b = String::new();
        for i in start..(start + per_request).min(n) {
            b.push_str(&format!(
                "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{i}\",\"version\":{i},\"version_type\":\"external\"}}}}\n{}\n",
                order(i)
            ));
        }
        bytes += b.len();
        bodies.push(b);
    }
    let bodies = std::sync::Arc::new(bodies);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..5 {
        let bodies = bodies.clone();
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(port).await?;
            let mut lat = Vec::new();
            for b in bodies.iter().skip(c).step_by(5) {
                let t = Instant::now();
                let (code, body) = http.send("POST", "/_bulk", "application/x-ndjson", b.as_bytes()).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                if code != 200 || body.windows(13).any(|w| w == b"\"errors\":true") {
                    bail!("raw _bulk failed: {code} {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok((Rate { records: n, seconds: start.elapsed().as_secs_f64(), bytes }, lat))
}

/// Runs the search benchmark against every search server configured.
pub async fn elasticsearch(
    bootstrap: &str,
    vars: &HashMap<String, String>,
    dir: &Path,
    n: usize,
    rate: usize,
) -> Result<()> {
    let servers: Vec<(&str, String)> = [("OPENSEARCH_URL", "osmem-server"), ("ELASTICSEARCH_URL", "noida-db")]
        .iter()
        .filter_map(|(k, name)| vars.get(*k).map(|u| (*name, u.clone())))
        .collect();
    if servers.is_empty() {
        bail!("no OPENSEARCH_URL or ELASTICSEARCH_URL: run `bash scripts/services.sh start`");
    }
    println!("sluice-bench elasticsearch: {n} orders (10 fields) keyed by id, broker {bootstrap} (single partition)\n");
    let topic = unique("bench-es");
    create_topic(bootstrap, &topic).await?;
    let (produced, size) = produce_orders(bootstrap, &topic, n).await?;
    println!("raw rdkafka produce (idempotent, acks=all)          {produced}  ({size} bytes per record)");
    let consumed = raw_consume(bootstrap, &topic, n, size).await?;
    println!("raw rdkafka consume                                 {consumed}");
    for (name, url) in servers {
        let port: u16 = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .ok_or_else(|| anyhow!("bad url {url}"))?;
        println!("\n{name} ({url})");
        // The servers' cost per document depends on the request size: the raw limit is the best
        // of three sizes (2000 is the sink's default batch.size).
        let mut http = Http::connect(port).await?;
        for per_request in [2000, 500, 100] {
            let raw_index = unique("bench-raw");
            http.send("PUT", &format!("/{raw_index}"), "application/json", b"{}").await?;
            let (raw, mut lat) = raw_bulk(port, &raw_index, n, per_request).await?;
            println!(
                "  raw _bulk loader ({per_request:>4} per request, 5 connections)  {raw}  request {}",
                summary(&mut lat)
            );
            http.send("DELETE", &format!("/{raw_index}"), "application/json", b"").await?;
        }

        let index = unique("bench-sink");
        let sink_dir = dir.join(format!("es-{name}"));
        std::fs::create_dir_all(&sink_dir)?;
        let connector = |cname: &str, topic: &str, index: &str| {
            format!(
                "name={cname}\nconnector.class=elasticsearch\ntopics={topic}\nconnection.url={url}\nindex.name.template={index}\n\
                 key.ignore=false\nschema.ignore=true\nread.timeout.ms=30000\n"
            )
        };
        let converters = "key.converter=string\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=false\n";
        let launched = Instant::now();
        let sink = SluiceProc::start_with(
            &sink_dir,
            bootstrap,
            converters,
            &[("sink", connector(&unique("bench-es-sink"), &topic, &index))],
        )?;
        let mut first = None;
        loop {
            let done = sink_records_put(sink.port).await.unwrap_or(0);
            if done > 0 && first.is_none() {
                first = Some((Instant::now(), done));
            }
            if done >= n {
                break;
            }
            if launched.elapsed() > Duration::from_secs(600) {
                bail!("the sink wrote {done} of {n}; see {}/sluice.log", sink_dir.display());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let visible = http.count(&index).await?;
        if visible != n {
            bail!("the sink acknowledged {n} records but the index holds {visible} documents");
        }
        let join = first.map_or(0.0, |(f, _)| (f - launched).as_secs_f64());
        // Timed from the first write seen, counting only what was written after it.
        let (after, before) = first.map_or((0.0, 0), |(f, d)| (f.elapsed().as_secs_f64(), d));
        let sunk = Rate { records: n - before, seconds: after, bytes: (n - before) * size };
        let rss = sink.peak_rss_mib();
        sink.stop()?;
        println!("  sluice Kafka -> search sink                          {sunk}  peak RSS {rss:.1} MiB (start + group join {join:.1} s, excluded)");
        http.send("DELETE", &format!("/{index}"), "application/json", b"").await?;

        // Latency at a fixed rate.
        let lat_topic = unique("bench-es-lat");
        create_topic(bootstrap, &lat_topic).await?;
        let lat_index = unique("bench-lat");
        let lat_dir = dir.join(format!("es-lat-{name}"));
        std::fs::create_dir_all(&lat_dir)?;
        let sink = SluiceProc::start_with(
            &lat_dir,
            bootstrap,
            converters,
            &[("sink", connector(&unique("bench-es-lat"), &lat_topic, &lat_index))],
        )?;
        produce_orders(bootstrap, &lat_topic, 1).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.count(&lat_index).await.unwrap_or(0) < 1 {
            if Instant::now() > deadline {
                bail!("the latency sink did not start; see {}/sluice.log", lat_dir.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (b, t) = (bootstrap.to_string(), lat_topic.clone());
        let producing = tokio::spawn(async move { produce_at_rate(&b, &t, rate, 5).await });
        // Ids 0.. of the run overwrite the warm-up's id 0: count-1 records of the run are visible.
        let total = rate * 5;
        let mut times: Vec<Instant> = Vec::with_capacity(total);
        let mut poll = Http::connect(port).await?;
        let started = Instant::now();
        while times.len() < total {
            let done = poll.count(&lat_index).await.unwrap_or(0);
            let now = Instant::now();
            while times.len() < done.min(total) {
                times.push(now);
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("only {} of {total} latency records visible", times.len());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = producing.await??;
        let mut lat: Vec<f64> =
            sent.iter().zip(&times).map(|(s, w)| w.saturating_duration_since(*s).as_secs_f64() * 1e3).collect();
        let rss = sink.peak_rss_mib();
        sink.stop()?;
        println!(
            "  sluice produce -> searchable latency at {rate} rec/s: {}  peak RSS {rss:.1} MiB",
            summary(&mut lat)
        );
        http.send("DELETE", &format!("/{lat_index}"), "application/json", b"").await?;
    }
    Ok(())
}
