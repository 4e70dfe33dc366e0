//! `sluice-bench cluster`: failover and join-rebalance times of a 3-worker `sluice distributed`
//! cluster running the verifiable source with 6 tasks, median of N runs.
//!
//! Failover: kill -9 of a worker → every task RUNNING on the survivors (detection within
//! `session.timeout.ms`=6000, then `scheduled.rebalance.max.delay.ms`=2000). Join: a new worker
//! starts → it runs tasks and all 6 are RUNNING (includes the process start and tansu's join wait).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

const TASKS: usize = 6;

fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = out.split_once("\r\n\r\n")?;
    Some((code, body.to_string()))
}

/// Task → worker port, when all tasks are RUNNING.
fn running(port: u16) -> Option<HashMap<u64, u16>> {
    let (_, body) = http(port, "GET", "/connectors/verif/status", "")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let tasks = v["tasks"].as_array()?;
    if tasks.len() != TASKS || tasks.iter().any(|t| t["state"] != "RUNNING") {
        return None;
    }
    tasks
        .iter()
        .map(|t| Some((t["id"].as_u64()?, t["worker_id"].as_str()?.rsplit(':').next()?.parse().ok()?)))
        .collect()
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Worker {
    child: Child,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, dir: &Path, bootstrap: &str, group: &str, port: u16) -> Result<Worker> {
    start_with(bin, dir, bootstrap, group, port, "")
}

fn start_with(bin: &Path, dir: &Path, bootstrap: &str, group: &str, port: u16, extra: &str) -> Result<Worker> {
    let props = dir.join(format!("w{port}.properties"));
    std::fs::write(
        &props,
        format!(
            "bootstrap.servers={bootstrap}\nlisteners=http://127.0.0.1:{port}\ngroup.id={group}\n\
             config.storage.topic={group}-configs\noffset.storage.topic={group}-offsets\nstatus.storage.topic={group}-status\n\
             config.storage.replication.factor=1\noffset.storage.replication.factor=1\nstatus.storage.replication.factor=1\n\
             offset.storage.partitions=5\nstatus.storage.partitions=3\n\
             session.timeout.ms=6000\nheartbeat.interval.ms=1000\nscheduled.rebalance.max.delay.ms=2000\n\
             rebalance.timeout.ms=20000\n\
             offset.flush.interval.ms=1000\nkey.converter=string\nvalue.converter=string\n{extra}"
        ),
    )?;
    let log = std::fs::File::create(dir.join(format!("w{port}.log")))?;
    let child = Command::new(bin)
        .arg("distributed")
        .arg(&props)
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    wait("a worker's REST API", Duration::from_secs(60), || http(port, "GET", "/", "").map(|_| ()))?;
    Ok(Worker { child })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One run: (failover, join) durations.
fn run_once(bin: &Path, dir: &Path, bootstrap: &str, run: usize) -> Result<(Duration, Duration)> {
    let group = format!("{}-{run}", super::unique("bench-cluster"));
    let ports = [free_port()?, free_port()?, free_port()?];
    let mut workers: HashMap<u16, Worker> = HashMap::new();
    for p in ports {
        workers.insert(p, start(bin, dir, bootstrap, &group, p)?);
    }
    let body = format!(
        r#"{{"name":"verif","config":{{"connector.class":"VerifiableSource","tasks.max":"{TASKS}","topic":"{group}-seq","throughput":"500"}}}}"#
    );
    match http(ports[0], "POST", "/connectors", &body) {
        Some((201, _)) => {}
        other => bail!("create failed: {other:?}"),
    }
    let spread = wait("2/2/2", Duration::from_secs(120), || {
        let t = running(ports[1])?;
        let mut per: HashMap<u16, usize> = HashMap::new();
        for w in t.values() {
            *per.entry(*w).or_default() += 1;
        }
        (per.len() == 3 && per.values().all(|n| *n == 2)).then_some(per)
    })?;
    let victim = *spread.keys().next().ok_or_else(|| anyhow!("no worker"))?;
    let survivor = *ports.iter().find(|p| **p != victim).ok_or_else(|| anyhow!("no survivor"))?;
    let mut w = workers.remove(&victim).ok_or_else(|| anyhow!("victim"))?;
    let killed = Instant::now();
    w.child.kill()?;
    w.child.wait()?;
    wait("failover", Duration::from_secs(120), || running(survivor).filter(|t| t.values().all(|p| *p != victim)))?;
    let failover = killed.elapsed();
    let joiner = free_port()?;
    let joined = Instant::now();
    workers.insert(joiner, start(bin, dir, bootstrap, &group, joiner)?);
    wait("join", Duration::from_secs(120), || running(survivor).filter(|t| t.values().any(|p| *p == joiner)))?;
    let join = joined.elapsed();
    drop(workers);
    Ok((failover, join))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `runs` rounds and prints every figure and the medians.
pub fn bench(bootstrap: &str, dir: &Path, runs: usize) -> Result<()> {
    let bin = std::env::current_exe()?.with_file_name("sluice");
    println!("sluice-bench cluster: 3 workers, verifiable source with {TASKS} tasks, broker {bootstrap}, {runs} runs");
    println!("(session.timeout.ms=6000, heartbeat.interval.ms=1000, scheduled.rebalance.max.delay.ms=2000)\n");
    let (mut failovers, mut joins) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (f, j) = run_once(&bin, dir, bootstrap, run)?;
        println!(
            "run {run}: kill -9 -> all tasks RUNNING elsewhere {:.2} s; join -> new worker running tasks {:.2} s",
            f.as_secs_f64(),
            j.as_secs_f64()
        );
        failovers.push(f);
        joins.push(j);
    }
    println!(
        "\nmedian of {runs}: failover {:.2} s, join rebalance {:.2} s",
        median(failovers).as_secs_f64(),
        median(joins).as_secs_f64()
    );
    Ok(())
}

/// One delivery mode of the exactly-once benchmark.
struct Mode {
    name: &'static str,
    worker: &'static str,
    connector: &'static str,
}

const MODES: [Mode; 3] = [
    Mode { name: "at-least-once", worker: "", connector: "" },
    Mode {
        name: "exactly-once, transaction.boundary=poll",
        worker: "exactly.once.source.support=enabled\n",
        connector: r#","transaction.boundary":"poll""#,
    },
    Mode {
        name: "exactly-once, transaction.boundary=interval (1 s)",
        worker: "exactly.once.source.support=enabled\n",
        connector: r#","transaction.boundary":"interval","transaction.boundary.interval.ms":"1000""#,
    },
];

/// `sluice-bench eos`: one `sluice distributed` worker runs the verifiable source (1 task,
/// unthrottled) for `seconds` in each mode; the records committed to the topic (read with the
/// transaction markers applied) per second, next to raw idempotent produce on the same broker.
pub fn eos_bench(bootstrap: &str, dir: &Path, seconds: u64) -> Result<()> {
    let bin = std::env::current_exe()?.with_file_name("sluice");
    let rt = tokio::runtime::Handle::current();
    println!("sluice-bench eos: 1 worker, verifiable source (1 task, unthrottled), {seconds} s per mode, broker {bootstrap}\n");
    let raw_topic = super::unique("bench-eos-raw");
    let raw = rt.block_on(super::raw_produce(bootstrap, &raw_topic, 500_000, 8))?;
    println!("{:<52} {raw}", "raw rdkafka produce (idempotent, acks=all, 28 B)");
    for mode in &MODES {
        let group = super::unique("bench-eos");
        let topic = format!("{group}-seq");
        let port = free_port()?;
        let worker = start_with(&bin, dir, bootstrap, &group, port, mode.worker)?;
        let body = format!(
            r#"{{"name":"verif","config":{{"connector.class":"VerifiableSource","tasks.max":"1","topic":"{topic}","throughput":"-1"{}}}}}"#,
            mode.connector
        );
        match http(port, "POST", "/connectors", &body) {
            Some((201, _)) => {}
            other => bail!("create failed: {other:?}"),
        }
        wait("the task RUNNING", Duration::from_secs(120), || {
            let (_, body) = http(port, "GET", "/connectors/verif/status", "")?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (v["tasks"][0]["state"] == "RUNNING").then_some(())
        })?;
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        match http(port, "PUT", "/connectors/verif/stop", "") {
            Some((204, _)) => {}
            other => bail!("stop failed: {other:?}"),
        }
        wait("the connector STOPPED", Duration::from_secs(60), || {
            let (_, body) = http(port, "GET", "/connectors/verif/status", "")?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (v["connector"]["state"] == "STOPPED" && v["tasks"].as_array().is_some_and(|t| t.is_empty())).then_some(())
        })?;
        let elapsed = started.elapsed().as_secs_f64();
        let rss = super::peak_rss_mib(worker.child.id());
        let records = rt.block_on(sluice_runtime::storage::committed::read_committed(
            bootstrap,
            &topic,
            Duration::from_secs(120),
        ))?;
        let bytes: usize = records.iter().map(|r| r.value.as_ref().map_or(0, |v| v.len()) + 1).sum();
        let rate = super::Rate { records: records.len(), seconds: elapsed, bytes };
        println!("{:<52} {rate}, peak RSS {rss:.1} MiB", mode.name);
        drop(worker);
    }
    println!("\n(committed records between the task turning RUNNING and the end of its stop; the records are the verifiable source's seqno values with a 1-byte key)");
    Ok(())
}
