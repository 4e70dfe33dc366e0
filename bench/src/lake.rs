//! `sluice-bench parquet` (or `delta`): the Parquet sink and the Delta Lake sink, each into a local
//! directory and into S3 (the SeaweedFS server of the services), next to the raw consume rate of
//! the same topic and the raw Parquet encode rate of the same records, measured in the same run.
//!
//! Records: ~1 KB JSON values with their Connect schema (JsonConverter envelope, 14 fields of
//! tracking-event shape). The sink runs with the default partitioner (one directory), snappy,
//! `flush.size` = records / 10, so the run ends when ten files exist (Parquet) or when the
//! table's `txn` version reaches the last offset (Delta, ten commits); the rate is timed from the
//! sink's first record put (group join excluded) to the last file or commit, with the sink's CPU
//! time per record. The local Parquet run is repeated with `parquet.dictionary=always` (an A/B in
//! the same run). Then the latency of the Parquet sink into a local directory at 2,000 records/s
//! with files rotated every second, and of the Delta sink's commits at 2,000 records/s with
//! `allowed.latency.ms=1000`. Before the S3 sinks, the files of the first local Parquet run are
//! put to the server one by one: its raw write rate for the same bytes, on the same two cores.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use sluice_api::Value;
use sluice_runtime::converters::create_converter;

use super::{create_topic, raw_consume, unique, Rate, SluiceProc};

fn event(i: usize) -> String {
    let schema = r#"{"type":"struct","optional":false,"name":"tracking.Event","fields":[{"field":"seq","type":"int64","optional":false},{"field":"ts","type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1},{"field":"type","type":"string","optional":false},{"field":"event","type":"string","optional":true},{"field":"userId","type":"string","optional":true},{"field":"anonymousId","type":"string","optional":true},{"field":"messageId","type":"string","optional":false},{"field":"ip","type":"string","optional":true},{"field":"userAgent","type":"string","optional":true},{"field":"page","type":"string","optional":true},{"field":"referrer","type":"string","optional":true},{"field":"price","type":"double","optional":true},{"field":"quantity","type":"int32","optional":true},{"field":"properties","type":"string","optional":true}]}"#;
    format!(
        r#"{{"schema":{schema},"payload":{{"seq":{i},"ts":{},"type":"track","event":"Product Viewed","userId":"user-{:07}","anonymousId":"anon-{:016x}","messageId":"msg-{:032x}","ip":"10.{}.{}.{}","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36","page":"https://shop.example.com/products/{}","referrer":"https://www.example.org/search?q=item+{}","price":{}.{:02},"quantity":{},"properties":"{{\"category\":\"shoes\",\"brand\":\"brand-{}\",\"variant\":\"size-{}\",\"coupon\":null}}"}}}}"#,
        1_763_800_000_000i64 + i as i64,
        i % 1_000_000,
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834),
        i % 256,
        (i / 256) % 256,
        i % 7,
        i % 10_000,
        i % 333,
        i % 500,
        i % 100,
        i % 5 + 1,
        i % 40,
        i % 12
    )
}

/// Decodes the same records with the JSON converter (timed: decode and drop), then encodes them as one Parquet file
/// (snappy) twice, timing the encodes only: first with a dictionary on every column (the Parquet
/// writers' default), then with dictionaries only where that first file showed they pay (as the
/// sink writes its files after the first).
fn raw_encode(n: usize, size: usize) -> Result<(Rate, Rate, Rate)> {
    let conv = create_converter("value.converter", "json", &Default::default(), false)
        .map_err(|e| anyhow!("converter: {e}"))?;
    let texts: Vec<String> = (0..n).map(event).collect();
    // Timed: decode and drop, as the sink does per batch (holding all n values would time the
    // page faults of a growing heap too).
    let start = Instant::now();
    for t in &texts {
        let decoded = conv.to_connect("t", Some(t.as_bytes())).map_err(|e| anyhow!("decode: {e}"))?;
        std::hint::black_box(decoded);
    }
    let decode = Rate { records: n, seconds: start.elapsed().as_secs_f64(), bytes: n * size };
    let mut values = Vec::with_capacity(n);
    let mut schema = None;
    for t in &texts {
        let (s, v) = conv.to_connect("t", Some(t.as_bytes())).map_err(|e| anyhow!("decode: {e}"))?;
        schema = s;
        values.push(v);
    }
    let refs: Vec<&Value> = values.iter().collect();
    use sluice_connectors::sinks::parquet::dictionary::Advice;
    let encode = |advice: &mut Advice| -> Result<Rate> {
        let start = Instant::now();
        let file = sluice_connectors::sinks::parquet::encode(
            schema.as_ref(),
            &refs,
            sluice_connectors::sinks::parquet::Codec::Snappy,
            advice,
        )
        .map_err(|e| anyhow!("encode: {e}"))?;
        let rate = Rate { records: n, seconds: start.elapsed().as_secs_f64(), bytes: n * size };
        println!("  (Parquet file of {n} records: {:.1} MB)", file.len() as f64 / 1e6);
        Ok(rate)
    };
    // A first encode, not reported, warms the allocator; its advice is thrown away.
    encode(&mut Advice::default())?;
    let mut advice = Advice::default();
    let every = encode(&mut advice)?;
    let learned = encode(&mut advice)?;
    Ok((decode, every, learned))
}

/// CPU seconds spent on `n` records, as microseconds per record: the cost of the path, steadier
/// than its rate on a machine whose two cores the broker shares.
fn cpu_per_record(seconds: f64, n: usize) -> String {
    format!("CPU {seconds:.2} s = {:.2} us/record", seconds * 1e6 / n.max(1) as f64)
}

async fn count_files(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<usize> {
    let mut n = 0;
    let mut s = store.list(Some(&object_store::path::Path::from(prefix)));
    while let Some(m) = s.next().await {
        match m {
            Ok(m) if m.location.as_ref().ends_with(".parquet") && !m.location.as_ref().contains("/+tmp/") => n += 1,
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// The `txn` version of `app_id` in a Delta table's newest commit (`None`: no commit holds one
/// yet), read straight from `<table>/_delta_log/`: a listing and one small file, where opening
/// the table replays its whole log. The benchmark's looks cost the machine the sink shares
/// almost nothing this way (opening the table took about 4 ms a look). Each commit of the sink
/// carries the `txn` of every partition it covers; the benchmark topics have one partition.
async fn delta_txn(store: &Arc<dyn ObjectStore>, table: &str, app_id: &str) -> Result<Option<i64>> {
    let log = object_store::path::Path::from(format!("{table}/_delta_log"));
    let mut newest: Option<(u64, object_store::path::Path)> = None;
    let mut s = store.list(Some(&log));
    while let Some(m) = s.next().await {
        let m = match m {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let version = m.location.filename().and_then(|f| f.strip_suffix(".json")).and_then(|v| v.parse::<u64>().ok());
        if let Some(v) = version.filter(|v| newest.as_ref().is_none_or(|(n, _)| v > n)) {
            newest = Some((v, m.location));
        }
    }
    let Some((_, path)) = newest else { return Ok(None) };
    let bytes = store.get(&path).await?.bytes().await?;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line)?;
        let txn = &action["txn"];
        if txn["appId"].as_str() == Some(app_id) {
            return Ok(txn["version"].as_i64());
        }
    }
    Ok(None)
}

/// The S3 server's own write rate for the same bytes, as the raw limit next to the S3 sink rates:
/// the Parquet files of the first local run (`n` records), put one after another, as the sink's
/// single partition writes them. The rate is in records of those files per second.
async fn raw_s3_put(
    local: &Arc<dyn ObjectStore>,
    prefix: &str,
    s3: &Arc<dyn ObjectStore>,
    n: usize,
    size: usize,
) -> Result<(Rate, f64)> {
    let mut files = Vec::new();
    let mut s = local.list(Some(&object_store::path::Path::from(prefix)));
    while let Some(m) = s.next().await {
        let m = m?;
        if m.location.as_ref().ends_with(".parquet") {
            let bytes = local.get(&m.location).await?.bytes().await?;
            files.push((object_store::path::Path::from(format!("raw-put/{}", m.location)), bytes));
        }
    }
    if files.is_empty() {
        bail!("no Parquet files under {prefix} to put");
    }
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let start = Instant::now();
    for (path, bytes) in files {
        s3.put(&path, bytes.into()).await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((Rate { records: n, seconds, bytes: n * size }, total as f64 / 1e6))
}

async fn records_put(port: u16) -> usize {
    super::sinks::sink_records_put(port).await.unwrap_or(0)
}

/// A `sluice standalone` running one sink (string keys, JSON values with schemas) in a fresh
/// directory under `dir` named `<tag>-…`.
fn start_sink(dir: &Path, tag: &str, bootstrap: &str, connector: String) -> Result<(std::path::PathBuf, SluiceProc)> {
    let sink_dir = dir.join(unique(tag));
    std::fs::create_dir_all(&sink_dir)?;
    let sink = SluiceProc::start_with(
        &sink_dir,
        bootstrap,
        "key.converter=string\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\n",
        &[("sink", connector)],
    )?;
    Ok((sink_dir, sink))
}

/// The start offsets of the completed Parquet files under `prefix`, with when each was first seen.
async fn seen_files(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    seen: &mut std::collections::BTreeMap<i64, Instant>,
) -> Result<()> {
    let mut s = store.list(Some(&object_store::path::Path::from(prefix)));
    while let Some(m) = s.next().await {
        match m {
            Ok(m) => {
                let name = m.location.filename().unwrap_or_default();
                let start =
                    name.strip_suffix(".parquet").and_then(|n| n.rsplit('+').next()).and_then(|o| o.parse().ok());
                if let (Some(start), false) = (start, m.location.as_ref().contains("/+tmp/")) {
                    seen.entry(start).or_insert_with(Instant::now);
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Latency of the Parquet sink into a local directory: records produced at `rate`/s for 10 s
/// with files rotated every second of wall clock (`rotate.schedule.interval.ms=1000`); a record's
/// latency runs from its send to the first listing (every 10 ms) that shows the file holding it.
/// One record before the measured ones waits out the group join; records produced for 2 s after
/// them keep the rotation going (the schedule is checked as records arrive).
async fn parquet_latency(bootstrap: &str, dir: &Path, rate: usize) -> Result<()> {
    let topic = unique("bench-parquet-lat");
    create_topic(bootstrap, &topic).await?;
    let local = dir.join(unique("lake-lat"));
    std::fs::create_dir_all(&local)?;
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&local)?);
    let connector = format!(
        "name={}\nconnector.class=parquet\ntopics={topic}\nstore.url=file://{}\nflush.size=100000000\nrotate.schedule.interval.ms=1000\n",
        unique("bench-parquet-lat"),
        local.display()
    );
    let (sink_dir, sink) = start_sink(dir, "parquet-lat", bootstrap, connector)?;
    let prefix = format!("topics/{topic}");
    let mut seen = std::collections::BTreeMap::new();
    // One record first waits out the group join; the producer that sent it sends the rest.
    let p = super::producer(bootstrap)?;
    super::sinks::produce_docs_at_rate_with(&p, &topic, 1, 1, 0, event).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.is_empty() {
        if Instant::now() > deadline {
            bail!("no file from the latency sink; see {}/sluice.log", sink_dir.display());
        }
        seen_files(&store, &prefix, &mut seen).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = topic.clone();
    let producing = tokio::spawn(async move {
        let measured = super::sinks::produce_docs_at_rate_with(&p, &t, rate, 10, 1, event).await?;
        super::sinks::produce_docs_at_rate_with(&p, &t, rate, 2, 1 + measured.len(), event).await?;
        Ok::<_, anyhow::Error>(measured)
    });
    while !producing.is_finished() {
        seen_files(&store, &prefix, &mut seen).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = producing.await.map_err(|e| anyhow!("producer task: {e}"))??;
    let last = sent.len() as i64; // offsets 1..=last were measured
    let until = Instant::now() + Duration::from_secs(5);
    while seen.range(last + 1..).next().is_none() && Instant::now() < until {
        seen_files(&store, &prefix, &mut seen).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rss = sink.peak_rss_mib();
    sink.stop()?;
    // Record i is in the file with the largest start <= i, complete once the next file starts.
    let mut lat = Vec::with_capacity(sent.len());
    for (i, at) in sent.iter().enumerate() {
        let offset = i as i64 + 1;
        let holder = seen.range(..=offset).next_back();
        let complete = seen.range(offset + 1..).next().is_some();
        if let (Some((_, shown)), true) = (holder, complete) {
            lat.push(shown.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    if lat.is_empty() {
        bail!("no measured record reached a completed file; see {}/sluice.log", sink_dir.display());
    }
    let n = lat.len();
    println!(
        "sluice produce -> Parquet file (local) at {rate} rec/s, files every 1 s: {}  ({n} of {} records)  peak RSS {rss:.1} MiB",
        super::sinks::summary(&mut lat),
        sent.len()
    );
    Ok(())
}

/// Latency of the Delta sink into a local table: records produced at `rate`/s for 10 s with
/// `allowed.latency.ms=1000` (and no record or byte limit), so a commit follows a second after
/// the first record it holds; a record's latency runs from its send to the first look (every
/// 20 ms) at the table's `txn` version that shows its offset committed.
async fn delta_latency(bootstrap: &str, dir: &Path, rate: usize) -> Result<()> {
    let topic = unique("bench-delta-lat");
    create_topic(bootstrap, &topic).await?;
    let name = unique("bench-delta-lat");
    let tables = dir.join(unique("delta-lat"));
    std::fs::create_dir_all(&tables)?;
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&tables)?);
    let table = format!("{}/{topic}", tables.display());
    let connector = format!(
        "name={name}\nconnector.class=delta\ntopics={topic}\ndelta.table.location={table}\nflush.size=-1\nallowed.latency.ms=1000\n"
    );
    let (sink_dir, sink) = start_sink(dir, "delta-lat", bootstrap, connector)?;
    let app_id = format!("{name}-{topic}-0");
    let committed = || delta_txn(&store, &topic, &app_id);
    // One record first waits out the group join and creates the table; the producer that sent it
    // sends the rest.
    let p = super::producer(bootstrap)?;
    super::sinks::produce_docs_at_rate_with(&p, &topic, 1, 1, 0, event).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed().await.ok().flatten().is_none() {
        if Instant::now() > deadline {
            bail!("no commit from the latency sink; see {}/sluice.log", sink_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = topic.clone();
    let mut producing =
        Some(tokio::spawn(async move { super::sinks::produce_docs_at_rate_with(&p, &t, rate, 10, 1, event).await }));
    // (when, committed offset) at each look.
    let mut looks: Vec<(Instant, i64)> = Vec::new();
    let mut look_time = Duration::ZERO;
    let mut last_sent = None;
    let until = loop {
        let look = Instant::now();
        if let Some(v) = committed().await? {
            looks.push((Instant::now(), v));
        }
        look_time += look.elapsed();
        if let Some(done) = producing.take_if(|p| p.is_finished()) {
            last_sent = Some(done.await.map_err(|e| anyhow!("producer task: {e}"))??);
        }
        if let Some(sent) = &last_sent {
            if looks.last().is_some_and(|(_, v)| *v >= sent.len() as i64) {
                break sent;
            }
        }
        if Instant::now() > deadline + Duration::from_secs(60) {
            bail!("the latency sink did not commit the last record; see {}/sluice.log", sink_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rss = sink.peak_rss_mib();
    sink.stop()?;
    let mut lat = Vec::with_capacity(until.len());
    for (i, at) in until.iter().enumerate() {
        let offset = i as i64 + 1;
        if let Some((shown, _)) = looks.iter().find(|(_, v)| *v >= offset) {
            lat.push(shown.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    // SLUICE_BENCH_DUMP: a file for each record's offset, send time and latency (investigations).
    if let Ok(path) = std::env::var("SLUICE_BENCH_DUMP") {
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let wall_ms = |t: Instant| {
            (wall - now.saturating_duration_since(t)).duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
        };
        let mut out = String::new();
        for (i, at) in until.iter().enumerate() {
            if let Some((shown, v)) = looks.iter().find(|(_, v)| *v > i as i64) {
                out.push_str(&format!("{} {} {} {v}\n", i + 1, wall_ms(*at), wall_ms(*shown)));
            }
        }
        std::fs::write(path, out)?;
    }
    let n = lat.len();
    // A look lists the table's log and reads its newest commit: its time adds to the resolution.
    let look_ms = look_time.as_secs_f64() * 1000.0 / looks.len().max(1) as f64;
    println!(
        "sluice produce -> Delta commit (local) at {rate} rec/s, allowed.latency.ms=1000: {}  ({n} of {} records; a look takes {look_ms:.0} ms)  peak RSS {rss:.1} MiB",
        super::sinks::summary(&mut lat),
        until.len()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_sink(
    what: &str,
    bootstrap: &str,
    dir: &Path,
    topic: &str,
    n: usize,
    size: usize,
    location: &str,
    store: Arc<dyn ObjectStore>,
) -> Result<()> {
    let files = 10;
    let connector = format!(
        "name={}\nconnector.class=parquet\ntopics={topic}\n{location}\nflush.size={}\n",
        unique("bench-parquet"),
        n / files
    );
    let launched = Instant::now();
    let (sink_dir, sink) = start_sink(dir, "parquet-sink", bootstrap, connector)?;
    let dir_key = location.lines().find_map(|l| l.strip_prefix("topics.dir=")).unwrap_or("topics");
    let prefix = format!("{dir_key}/{topic}");
    let mut first = None;
    let mut cpu_at_first = 0.0;
    loop {
        if first.is_none() && records_put(sink.port).await > 0 {
            first = Some(Instant::now());
            cpu_at_first = sink.cpu_seconds();
        }
        if count_files(&store, &prefix).await? >= files {
            break;
        }
        if launched.elapsed() > Duration::from_secs(600) {
            bail!("the parquet sink did not finish; see {}/sluice.log", sink_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join = first.map_or(0.0, |f| (f - launched).as_secs_f64());
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let rss = sink.peak_rss_mib();
    let cpu = cpu_per_record(sink.cpu_seconds() - cpu_at_first, n);
    sink.stop()?;
    let rate = Rate { records: n, seconds: secs, bytes: n * size };
    println!("sluice Kafka -> Parquet ({what:<5})                 {rate}  peak RSS {rss:.1} MiB  {cpu} (start + group join {join:.1} s, excluded)");
    Ok(())
}

/// The Delta sink into `location` (a table URL template), timed to the commit of the last offset.
#[allow(clippy::too_many_arguments)]
async fn run_delta(
    what: &str,
    bootstrap: &str,
    dir: &Path,
    topic: &str,
    (n, size): (usize, usize),
    location: &str,
    extra: &str,
    (store, tables): (Arc<dyn ObjectStore>, &str),
) -> Result<()> {
    let name = unique("bench-delta");
    let connector = format!(
        "name={name}\nconnector.class=delta\ntopics={topic}\ndelta.table.location={location}\n{extra}\nflush.size={}\nallowed.latency.ms=600000\n",
        n / 10
    );
    let launched = Instant::now();
    let (sink_dir, sink) = start_sink(dir, "delta-sink", bootstrap, connector)?;
    let table = if tables.is_empty() { topic.to_string() } else { format!("{tables}/{topic}") };
    let app_id = format!("{name}-{topic}-0");
    let last = n as i64 - 1;
    let mut first = None;
    let mut cpu_at_first = 0.0;
    loop {
        if first.is_none() && records_put(sink.port).await > 0 {
            first = Some(Instant::now());
            cpu_at_first = sink.cpu_seconds();
        }
        if delta_txn(&store, &table, &app_id).await? == Some(last) {
            break;
        }
        if launched.elapsed() > Duration::from_secs(600) {
            bail!("the delta sink did not finish; see {}/sluice.log", sink_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join = first.map_or(0.0, |f| (f - launched).as_secs_f64());
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let rss = sink.peak_rss_mib();
    let cpu = cpu_per_record(sink.cpu_seconds() - cpu_at_first, n);
    sink.stop()?;
    let rate = Rate { records: n, seconds: secs, bytes: n * size };
    println!("sluice Kafka -> Delta   ({what:<5})                 {rate}  peak RSS {rss:.1} MiB  {cpu} (start + group join {join:.1} s, excluded)");
    Ok(())
}

/// The lake benchmark; `phases` picks some of `raw` (raw consume and encode), `parquet` (local,
/// A-B-A), `latency`, `delta`, `delta-latency` and `s3` (all when empty). The topic is always
/// produced: the raw consume is the reference the sink rates are read against.
pub async fn bench(
    bootstrap: &str,
    vars: &HashMap<String, String>,
    dir: &Path,
    n: usize,
    phases: &[String],
) -> Result<()> {
    let known = ["raw", "parquet", "latency", "delta", "delta-latency", "s3"];
    if let Some(p) = phases.iter().find(|p| !known.contains(&p.as_str())) {
        bail!("unknown phase {p}; phases are {}", known.join(","));
    }
    let run = |p: &str| phases.is_empty() || phases.iter().any(|x| x == p);
    let n = n.max(10) / 10 * 10;
    println!(
        "sluice-bench parquet/delta: {n} tracking events (JSON with schema), broker {bootstrap} (single partition)\n"
    );
    let topic = unique("bench-parquet");
    create_topic(bootstrap, &topic).await?;
    let (_, size) = super::sinks::produce_docs(bootstrap, &topic, n, event).await?;
    println!("({size} bytes per record, schema envelope included)");
    let cpu_before = super::cpu_seconds(std::process::id());
    let consumed = raw_consume(bootstrap, &topic, n, size).await?;
    let cpu = cpu_per_record(super::cpu_seconds(std::process::id()) - cpu_before, n);
    println!("raw rdkafka consume                                {consumed}  {cpu} (consumer start included)");
    if run("raw") {
        let (decode, every, learned) = raw_encode(n, size)?;
        println!("raw JSON converter decode (1 thread)               {decode}");
        println!("raw Parquet encode, Connect values -> snappy file  {every}  (a dictionary on every column)");
        println!("raw Parquet encode, Connect values -> snappy file  {learned}  (dictionaries where they pay)");
    }

    let local = dir.join("lake");
    std::fs::create_dir_all(&local)?;
    let fs: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&local)?);
    // The same sink with a dictionary on every column (Parquet writers' default) between two runs
    // of the default (`parquet.dictionary=auto`): A-B-A, so that drift favours neither.
    let always = format!("store.url=file://{}\ntopics.dir=always\nparquet.dictionary=always", local.display());
    let again = format!("store.url=file://{}\ntopics.dir=again", local.display());
    if run("parquet") {
        let first = format!("store.url=file://{}", local.display());
        run_sink("local", bootstrap, dir, &topic, n, size, &first, fs.clone()).await?;
        run_sink("local, parquet.dictionary=always (A/B)", bootstrap, dir, &topic, n, size, &always, fs.clone())
            .await?;
        run_sink("local, again (A/B)", bootstrap, dir, &topic, n, size, &again, fs.clone()).await?;
    }
    if run("latency") {
        parquet_latency(bootstrap, dir, 2000).await?;
    }
    let tables = dir.join("delta");
    std::fs::create_dir_all(&tables)?;
    let delta_fs: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&tables)?);
    let tables = format!("{}/${{topic}}", tables.display());
    if run("delta") {
        if run("parquet") || run("latency") {
            // The broker after the phases above (it keeps their groups and offsets): the Delta
            // sink's own raw limit, measured again right before it.
            let consumed = raw_consume(bootstrap, &topic, n, size).await?;
            println!("raw rdkafka consume, again before Delta            {consumed}");
        }
        run_delta("local", bootstrap, dir, &topic, (n, size), &tables, "", (delta_fs, "")).await?;
    }
    if run("delta-latency") {
        delta_latency(bootstrap, dir, 2000).await?;
    }
    if !run("s3") {
        return Ok(());
    }
    if let (Some(endpoint), Some(key), Some(secret)) =
        (vars.get("S3_ENDPOINT"), vars.get("S3_ACCESS_KEY_ID"), vars.get("S3_SECRET_ACCESS_KEY"))
    {
        let bucket = unique("bench-lake").to_lowercase();
        let s3: Arc<dyn ObjectStore> = Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(&bucket)
                .with_endpoint(endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(key)
                .with_secret_access_key(secret)
                .build()?,
        );
        // SeaweedFS creates a bucket on PUT /bucket.
        let status = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .arg(format!("{endpoint}/{bucket}"))
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{key}:{secret}")])
            .output()?;
        let code = String::from_utf8_lossy(&status.stdout).to_string();
        if code != "200" {
            bail!("could not create bucket {bucket}: HTTP {code}");
        }
        let location = format!(
            "s3.bucket.name={bucket}\nstore.url={endpoint}\ns3.region=us-east-1\naws.access.key.id={key}\naws.secret.access.key={secret}"
        );
        if run("parquet") {
            let (rate, mb) = raw_s3_put(&fs, &format!("topics/{topic}"), &s3, n, size).await?;
            println!("raw S3 put of the local run's files, one by one    {rate}  ({mb:.1} MB of Parquet)");
        }
        run_sink("s3", bootstrap, dir, &topic, n, size, &location, s3.clone()).await?;
        let extra = format!(
            "store.url={endpoint}\ns3.region=us-east-1\naws.access.key.id={key}\naws.secret.access.key={secret}"
        );
        run_delta(
            "s3",
            bootstrap,
            dir,
            &topic,
            (n, size),
            &format!("s3://{bucket}/delta/${{topic}}"),
            &extra,
            (s3, "delta"),
        )
        .await?;
    } else {
        println!("(S3 phase skipped: no S3_ENDPOINT in the services env file)");
    }
    Ok(())
}
