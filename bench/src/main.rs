//! `sluice-bench`: connector throughput, latency and peak memory, next to the raw broker limits
//! measured in the same run on the same broker.
//!
//! `cargo run --release -p sluice-bench -- file [--records N] [--bytes B] [--rate R]`
//!
//! Phases: raw rdkafka produce (same producer settings as sluice's source tasks) and raw consume;
//! file-source → Kafka bulk throughput; Kafka → file-sink bulk throughput; file-source → Kafka
//! latency at a fixed rate (line written → record readable by a consumer). The broker address comes
//! from KAFKA_BOOTSTRAP or the services env file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

mod cluster;
mod lake;
mod mysql;
mod sinks;
mod tracking;

/// The same allocator as the `sluice` binary, so in-process phases compare fairly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(PartialEq)]
enum Bench {
    File,
    Cluster,
    Eos,
    Mysql,
    Tracking,
    Redis,
    Elasticsearch,
    Parquet,
}

struct Args {
    bench: Bench,
    runs: usize,
    records: usize,
    bytes: usize,
    rate: Option<usize>,
    tables: usize,
    schemas: bool,
    threads: usize,
    seconds: u64,
    /// `parquet`/`delta`: the phases to run (all when empty).
    phases: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        bench: Bench::File,
        runs: 5,
        records: 200_000,
        bytes: 200,
        rate: None,
        tables: 1,
        schemas: false,
        threads: 1,
        seconds: 5,
        phases: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    match it.next().as_deref() {
        Some("file") => {}
        Some("cluster") => args.bench = Bench::Cluster,
        Some("eos") => args.bench = Bench::Eos,
        Some("mysql") => args.bench = Bench::Mysql,
        Some("tracking") => args.bench = Bench::Tracking,
        Some("redis") => args.bench = Bench::Redis,
        Some("elasticsearch") => args.bench = Bench::Elasticsearch,
        Some("parquet") | Some("delta") => args.bench = Bench::Parquet,
        _ => bail!(
            "usage: sluice-bench file [--records N] [--bytes B] [--rate LINES_PER_SEC]\n\
             \x20      sluice-bench cluster [--runs N]\n\
             \x20      sluice-bench eos [--seconds S]\n\
             \x20      sluice-bench mysql [--records ROWS] [--tables T] [--threads SNAPSHOT_THREADS] [--rate ROWS_PER_SEC] [--schemas 0|1]\n\
             \x20      sluice-bench tracking [--seconds S] [--rate EVENTS_PER_SEC]\n\
             \x20      sluice-bench redis|elasticsearch [--records N] [--rate RECORDS_PER_SEC]\n\
             \x20      sluice-bench parquet|delta [--records N] [--phases raw,parquet,latency,delta,delta-latency,s3]"
        ),
    }
    while let Some(flag) = it.next() {
        if flag == "--phases" {
            let list = it.next().ok_or_else(|| anyhow!("--phases needs a value"))?;
            args.phases = list.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
            continue;
        }
        let v: usize = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?.parse()?;
        match flag.as_str() {
            "--records" => args.records = v,
            "--bytes" => args.bytes = v.max(16),
            "--rate" => args.rate = Some(v.max(1)),
            "--runs" => args.runs = v.max(1),
            "--tables" => args.tables = v.max(1),
            "--schemas" => args.schemas = v != 0,
            "--threads" => args.threads = v.max(1),
            "--seconds" => args.seconds = v.max(1) as u64,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

/// The services env file written by `scripts/services.sh` (empty when there is none).
fn services_vars() -> HashMap<String, String> {
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/services.env");
    let text = std::fs::read_to_string(env_file).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn kafka_bootstrap(vars: &HashMap<String, String>) -> Result<String> {
    std::env::var("KAFKA_BOOTSTRAP")
        .ok()
        .or_else(|| vars.get("KAFKA_BOOTSTRAP").cloned())
        .ok_or_else(|| anyhow!("no KAFKA_BOOTSTRAP: run `bash scripts/services.sh start kafka`"))
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

fn line(i: usize, bytes: usize) -> String {
    let head = format!("{i:010} {:016} ", now_micros());
    format!("{head}{}", "x".repeat(bytes.saturating_sub(head.len())))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", now_micros() % 1_000_000_000)
}

/// Creates a single-partition topic (tansu would auto-create four).
async fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let results =
        admin.create_topics([&NewTopic::new(topic, 1, TopicReplication::Fixed(-1))], &AdminOptions::new()).await?;
    for r in results {
        r.map_err(|(t, e)| anyhow!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

pub(crate) fn producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?)
}

fn consumer(bootstrap: &str, topic: &str) -> Result<StreamConsumer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", unique("bench"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10");
    // SLUICE_BENCH_RAW_CONSUMER: extra client properties, `k=v;k=v` (experiments).
    for kv in std::env::var("SLUICE_BENCH_RAW_CONSUMER").unwrap_or_default().split(';') {
        if let Some((k, v)) = kv.split_once('=') {
            c.set(k.trim(), v.trim());
        }
    }
    let c: StreamConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    c.assign(&tpl)?;
    Ok(c)
}

struct Rate {
    records: usize,
    seconds: f64,
    bytes: usize,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} rec/s {:>7.1} MB/s ({} records in {:.2} s)",
            self.records as f64 / self.seconds,
            self.bytes as f64 / self.seconds / 1e6,
            self.records,
            self.seconds
        )
    }
}

async fn raw_produce(bootstrap: &str, topic: &str, n: usize, bytes: usize) -> Result<Rate> {
    let p = producer(bootstrap)?;
    let payloads: Vec<String> = (0..n).map(|i| line(i, bytes)).collect();
    let start = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for payload in &payloads {
        loop {
            match p.send_result(FutureRecord::<(), str>::to(topic).payload(payload)) {
                Ok(f) => {
                    acks.push(f);
                    break;
                }
                Err((_, _)) => {
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
    Ok(Rate { records: n, seconds: start.elapsed().as_secs_f64(), bytes: n * bytes })
}

async fn raw_consume(bootstrap: &str, topic: &str, n: usize, bytes: usize) -> Result<Rate> {
    let c = consumer(bootstrap, topic)?;
    let mut stream = c.stream();
    let mut start = None;
    let mut count = 0;
    while count < n {
        let m = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await?
            .ok_or_else(|| anyhow!("stream ended"))??;
        let _ = m.payload();
        start.get_or_insert_with(Instant::now);
        count += 1;
    }
    Ok(Rate { records: n, seconds: start.map_or(0.0, |s| s.elapsed().as_secs_f64()), bytes: n * bytes })
}

/// Peak resident memory (VmHWM) of process `pid` in MiB (0 when unknown).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) process `pid` has used so far, in seconds (0 when unknown); Linux
/// counts it in clock ticks of 10 ms.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and
    // stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse().ok()).collect();
    ticks.iter().sum::<f64>() / 100.0
}

struct SluiceProc {
    child: Child,
    dir: PathBuf,
    /// The REST port.
    port: u16,
}

impl SluiceProc {
    fn start(dir: &Path, bootstrap: &str, connectors: &[(&str, String)]) -> Result<SluiceProc> {
        Self::start_with(dir, bootstrap, "key.converter=string\nvalue.converter=string\n", connectors)
    }

    /// Starts `sluice standalone` in `dir` with the given converter lines; the offsets file in
    /// `dir` survives between starts.
    fn start_with(dir: &Path, bootstrap: &str, converters: &str, connectors: &[(&str, String)]) -> Result<SluiceProc> {
        let bin = std::env::current_exe()?.with_file_name("sluice");
        if !bin.exists() {
            bail!("{} not found: build it with `cargo build --release --bin sluice`", bin.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::write(
            dir.join("worker.properties"),
            format!(
                "bootstrap.servers={bootstrap}\nlisteners=http://127.0.0.1:{port}\noffset.storage.file.filename={}\n\
                 offset.flush.interval.ms=1000\n{converters}\
                 consumer.session.timeout.ms=6000\nconsumer.heartbeat.interval.ms=1000\n{}",
                dir.join("offsets.json").display(),
                // SLUICE_BENCH_WORKER: extra worker properties, `;`-separated (experiments).
                std::env::var("SLUICE_BENCH_WORKER").unwrap_or_default().replace(';', "\n")
            ),
        )?;
        let mut files = Vec::new();
        for (name, body) in connectors {
            let f = dir.join(format!("{name}.properties"));
            std::fs::write(&f, body)?;
            files.push(f);
        }
        let log = std::fs::File::create(dir.join("sluice.log"))?;
        let child = Command::new(bin)
            .arg("standalone")
            .arg(dir.join("worker.properties"))
            .args(&files)
            // SLUICE_BENCH_LOG: the sluice processes' RUST_LOG (default warn).
            .env("RUST_LOG", std::env::var("SLUICE_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(SluiceProc { child, dir: dir.to_path_buf(), port })
    }

    /// Peak resident memory (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait()?;
        if !status.success() {
            bail!("sluice exited with {status}; see {}/sluice.log", self.dir.display());
        }
        Ok(())
    }
}

/// Reads `topic` from the beginning until `n` distinct records (by their leading index) were seen.
/// (tansu's ListOffsets under-reports the high watermark, so counting is done by reading.)
async fn read_distinct(bootstrap: &str, topic: &str, n: usize, deadline: Duration) -> Result<()> {
    let c = consumer(bootstrap, topic)?;
    let mut stream = c.stream();
    let mut seen = vec![false; n];
    let mut distinct = 0;
    let start = Instant::now();
    while distinct < n {
        let left =
            deadline.checked_sub(start.elapsed()).ok_or_else(|| anyhow!("{topic}: only {distinct} of {n} records"))?;
        let m = tokio::time::timeout(left, stream.next()).await?.ok_or_else(|| anyhow!("stream ended"))??;
        let idx: usize =
            m.payload().and_then(|p| std::str::from_utf8(p.get(..10)?).ok()?.parse().ok()).unwrap_or(usize::MAX);
        if idx < n && !seen[idx] {
            seen[idx] = true;
            distinct += 1;
        }
    }
    Ok(())
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Writes `rate` records per second for 5 s, either straight to Kafka (`file` None: raw producer)
/// or as lines appended to `file` (read by a sluice file source), and measures how long each takes
/// to become readable by a consumer.
async fn latency(
    bootstrap: &str,
    topic: &str,
    rate: usize,
    bytes: usize,
    file: Option<PathBuf>,
) -> Result<(String, Vec<f64>)> {
    let total = rate * 5;
    let raw = match file {
        None => Some(producer(bootstrap)?),
        Some(_) => None,
    };
    let topic_owned = topic.to_string();
    let writer = tokio::spawn(async move {
        let mut f = match &file {
            Some(path) => Some(std::fs::OpenOptions::new().append(true).open(path)?),
            None => None,
        };
        let tick = Duration::from_millis(10);
        let per_tick = (rate / 100).max(1);
        let start = Instant::now();
        let mut i = 0;
        while i < total {
            let mut chunk = String::new();
            for _ in 0..per_tick.min(total - i) {
                let l = line(i, bytes - 1);
                if let Some(p) = &raw {
                    let _ = p.send_result(FutureRecord::<(), str>::to(&topic_owned).payload(&l));
                }
                chunk.push_str(&l);
                chunk.push('\n');
                i += 1;
            }
            if let Some(f) = f.as_mut() {
                f.write_all(chunk.as_bytes())?;
            }
            let next = tick * (i / per_tick) as u32;
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if let Some(p) = &raw {
            rdkafka::producer::Producer::flush(p, Duration::from_secs(30))?;
        }
        anyhow::Ok(())
    });
    let c = consumer(bootstrap, topic)?;
    let mut stream = c.stream();
    let mut latencies = Vec::with_capacity(total);
    let mut seen = vec![false; total];
    while latencies.len() < total {
        let m = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await?
            .ok_or_else(|| anyhow!("stream ended"))??;
        let received = now_micros();
        let text = std::str::from_utf8(m.payload().ok_or_else(|| anyhow!("empty record"))?)?;
        let mut parts = text.split(' ');
        let idx: usize = parts.next().unwrap_or("0").parse()?;
        let written: u128 = parts.next().unwrap_or("0").parse()?;
        if idx < total && !seen[idx] {
            seen[idx] = true;
            latencies.push((received.saturating_sub(written)) as f64 / 1000.0);
        }
    }
    writer.await??;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let summary = format!(
        "p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    Ok((summary, latencies))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let vars = services_vars();
    let bootstrap = kafka_bootstrap(&vars)?;
    let dir = std::env::temp_dir().join(unique("sluice-bench"));
    std::fs::create_dir_all(&dir)?;
    match args.bench {
        Bench::Cluster => {
            return tokio::task::spawn_blocking(move || cluster::bench(&bootstrap, &dir, args.runs)).await?;
        }
        Bench::Eos => {
            return tokio::task::spawn_blocking(move || cluster::eos_bench(&bootstrap, &dir, args.seconds)).await?;
        }
        Bench::Mysql => {
            let a = mysql::MysqlArgs {
                rows: args.records,
                tables: args.tables,
                rate: args.rate.unwrap_or(10_000),
                schemas: args.schemas,
                threads: args.threads,
            };
            mysql::bench(&bootstrap, &vars, &dir, a).await?;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        Bench::Tracking => {
            tracking::bench(&bootstrap, &dir, args.seconds, args.rate.unwrap_or(20_000)).await?;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        Bench::Redis | Bench::Elasticsearch => {
            let default_rate = if args.bench == Bench::Redis { 5_000 } else { 1_000 };
            let (n, rate) = (args.records, args.rate.unwrap_or(default_rate));
            if args.bench == Bench::Redis {
                sinks::redis(&bootstrap, &vars, &dir, n, rate).await?;
            } else {
                sinks::elasticsearch(&bootstrap, &vars, &dir, n, rate).await?;
            }
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        Bench::Parquet => {
            lake::bench(&bootstrap, &vars, &dir, args.records, &args.phases).await?;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        Bench::File => {}
    }
    let lat_rate = args.rate.unwrap_or(5_000);
    let (n, b) = (args.records, args.bytes);
    println!("sluice-bench file: {n} records of {b} bytes, broker {bootstrap} (single partition)\n");

    // Raw limits.
    let raw_topic = unique("bench-raw");
    create_topic(&bootstrap, &raw_topic).await?;
    let produced = raw_produce(&bootstrap, &raw_topic, n, b).await?;
    println!("raw rdkafka produce (idempotent, acks=all)  {produced}");
    let consumed = raw_consume(&bootstrap, &raw_topic, n, b).await?;
    println!("raw rdkafka consume                         {consumed}");

    let raw_lat_topic = unique("bench-raw-lat");
    create_topic(&bootstrap, &raw_lat_topic).await?;
    let (lat, _) = latency(&bootstrap, &raw_lat_topic, lat_rate, b, None).await?;
    println!("raw rdkafka produce -> consume latency at {lat_rate} rec/s: {lat}");

    // file-source -> Kafka, bulk.
    let src_topic = unique("bench-src");
    create_topic(&bootstrap, &src_topic).await?;
    let input = dir.join("input.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        for i in 0..n {
            writeln!(f, "{}", line(i, b - 1))?;
        }
    }
    let source = SluiceProc::start(
        &dir,
        &bootstrap,
        &[(
            "src",
            format!(
                "name=bench-src\nconnector.class=file-source\nfile={}\ntopic={src_topic}\nbatch.size=5000\n",
                input.display()
            ),
        )],
    )?;
    let start = Instant::now();
    read_distinct(&bootstrap, &src_topic, n, Duration::from_secs(600)).await?;
    let rate = Rate { records: n, seconds: start.elapsed().as_secs_f64(), bytes: n * b };
    let rss = source.peak_rss_mib();
    source.stop()?;
    println!("sluice file-source -> Kafka                 {rate}  peak RSS {rss:.1} MiB");

    // Kafka -> file-sink, bulk (reads the raw topic; timed from the first line written, so the
    // consumer-group join is excluded and reported apart).
    let out = dir.join("out.txt");
    let sink_dir = dir.join("sink");
    std::fs::create_dir_all(&sink_dir)?;
    let launched = Instant::now();
    let sink = SluiceProc::start(
        &sink_dir,
        &bootstrap,
        &[(
            "sink",
            format!(
                "name={}\nconnector.class=file-sink\nfile={}\ntopics={raw_topic}\n",
                unique("bench-sink"),
                out.display()
            ),
        )],
    )?;
    let mut first = None;
    loop {
        let lines = count_lines(&out);
        if lines > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if lines >= n {
            break;
        }
        if launched.elapsed() > Duration::from_secs(600) {
            bail!("file sink did not finish ({lines} lines)");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let join = first.map_or(0.0, |f| (f - launched).as_secs_f64());
    let rate = Rate { records: n, seconds: first.map_or(0.0, |f| f.elapsed().as_secs_f64()), bytes: n * b };
    let rss = sink.peak_rss_mib();
    sink.stop()?;
    println!("sluice Kafka -> file-sink                   {rate}  peak RSS {rss:.1} MiB (start + group join {join:.1} s, excluded)");

    // Latency: lines appended at a fixed rate; a consumer compares each record's embedded write
    // time with the time it can read it.
    let lat_topic = unique("bench-lat");
    create_topic(&bootstrap, &lat_topic).await?;
    let lat_input = dir.join("latency.txt");
    std::fs::write(&lat_input, "")?;
    let lat_dir = dir.join("lat");
    std::fs::create_dir_all(&lat_dir)?;
    let source = SluiceProc::start(
        &lat_dir,
        &bootstrap,
        &[(
            "src",
            format!("name=bench-lat\nconnector.class=file-source\nfile={}\ntopic={lat_topic}\n", lat_input.display()),
        )],
    )?;
    let (lat, _) = latency(&bootstrap, &lat_topic, lat_rate, b, Some(lat_input)).await?;
    let rss = source.peak_rss_mib();
    source.stop()?;
    println!("sluice file-source -> Kafka latency at {lat_rate} lines/s: {lat}  peak RSS {rss:.1} MiB");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
