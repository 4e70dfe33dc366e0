//! Shared helpers for the workspace tests: find the local services, run `sluice` processes, talk
//! to the REST API and Kafka.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Endpoints of the local services, from the env file `scripts/services.sh start` writes.
pub struct Services {
    pub vars: HashMap<String, String>,
}

impl Services {
    /// Reads `$SLUICE_ENV_FILE` or `<repo>/.local/services.env`; environment variables win.
    pub fn load() -> Services {
        let path = std::env::var("SLUICE_ENV_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/services.env"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut vars: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for (k, v) in std::env::vars() {
            if vars.contains_key(&k) || k == "KAFKA_BOOTSTRAP" {
                vars.insert(k, v);
            }
        }
        Services { vars }
    }

    /// The broker, or a panic that says how to start it.
    pub fn kafka(&self) -> String {
        self.vars.get("KAFKA_BOOTSTRAP").cloned().unwrap_or_else(|| {
            panic!(
                "KAFKA_BOOTSTRAP is not set and no Kafka entry was found in the services env file. \
                 Start the local services first: `bash scripts/services.sh start` (or run the whole \
                 suite with `bash scripts/test.sh`)."
            )
        })
    }
}

/// A unique suffix for topic and connector names.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Polls `check` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A running `sluice` process.
pub struct Sluice {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Sluice {
    /// Starts `sluice standalone <worker> <connectors...>` with logs in `log`.
    pub fn standalone(worker: &Path, connectors: &[&Path], port: u16, log: PathBuf) -> Sluice {
        Sluice::standalone_with_env(worker, connectors, port, log, &[])
    }

    /// As [`Sluice::standalone`], with extra environment variables.
    pub fn standalone_with_env(
        worker: &Path,
        connectors: &[&Path],
        port: u16,
        log: PathBuf,
        env: &[(&str, String)],
    ) -> Sluice {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("standalone").arg(worker).args(connectors);
        cmd.env("RUST_LOG", "info,librdkafka=warn").stdout(Stdio::null()).stderr(log_file);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().expect("spawn sluice");
        let s = Sluice { child, port, log };
        wait_until(Duration::from_secs(30), "the REST API", || s.get("/").is_some());
        s
    }

    /// `GET path` on the REST API: `(status, body)`.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http(self.port, "GET", path, None)
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    /// The process's peak resident memory so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// A minimal HTTP/1.1 client for the REST API (no extra dependencies).
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_string() };
    Some((status, body))
}

/// The body of a chunked HTTP/1.1 response.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Worker properties for a standalone test worker.
pub fn worker_properties(dir: &Path, kafka: &str, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("worker.properties");
    let text = format!(
        "bootstrap.servers={kafka}\n\
         listeners=http://127.0.0.1:{port}\n\
         offset.storage.file.filename={}\n\
         offset.flush.interval.ms=500\n\
         key.converter=org.apache.kafka.connect.storage.StringConverter\n\
         value.converter=org.apache.kafka.connect.storage.StringConverter\n\
         # tansu holds a group join for about session.timeout.ms/2: keep it short in tests\n\
         consumer.session.timeout.ms=6000\n\
         consumer.heartbeat.interval.ms=1000\n\
         {extra}\n",
        dir.join("offsets.json").display()
    );
    std::fs::write(&path, text).expect("write worker.properties");
    path
}

/// Lines of a file (empty when missing).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).map(|t| t.lines().map(String::from).collect()).unwrap_or_default()
}

/// Worker properties for one member of a distributed test cluster (short timeouts for tansu).
pub fn distributed_properties(dir: &Path, kafka: &str, group: &str, port: u16) -> PathBuf {
    let path = dir.join(format!("worker-{port}.properties"));
    std::fs::write(
        &path,
        format!(
            "bootstrap.servers={kafka}\nlisteners=http://127.0.0.1:{port}\ngroup.id={group}\n\
             config.storage.topic={group}-configs\noffset.storage.topic={group}-offsets\nstatus.storage.topic={group}-status\n\
             config.storage.replication.factor=1\noffset.storage.replication.factor=1\nstatus.storage.replication.factor=1\n\
             offset.storage.partitions=5\nstatus.storage.partitions=3\n\
             session.timeout.ms=6000\nheartbeat.interval.ms=1000\nscheduled.rebalance.max.delay.ms=2000\n\
             rebalance.timeout.ms=20000\noffset.flush.interval.ms=500\n\
             key.converter=string\nvalue.converter=string\n\
             consumer.session.timeout.ms=6000\nconsumer.heartbeat.interval.ms=1000\n"
        ),
    )
    .expect("write worker properties");
    path
}

impl Sluice {
    /// Starts `sluice distributed <props>` (logs appended to `log`) and waits for its REST API.
    pub fn distributed(props: &Path, port: u16, log: &Path) -> Sluice {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("distributed")
            .arg(props)
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn");
        let mut s = Sluice { child, port, log: log.to_path_buf() };
        // Fails at once when the worker exits, and with the end of its log either way (the log
        // goes with the test's temporary directory).
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.get("/").is_none() {
            let exited = s.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let text = s.log_text();
                let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
                panic!(
                    "a distributed worker's REST API on port {port} did not answer within 60 s (exited: {exited:?}); its log ends:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }
}

/// `GET /connectors/{c}/status` as JSON (`Null` when unavailable).
pub fn connector_status(port: u16, connector: &str) -> serde_json::Value {
    http(port, "GET", &format!("/connectors/{connector}/status"), None)
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or_default()
}

/// Task number → worker id, when every one of `n` tasks is RUNNING.
pub fn running_tasks(port: u16, connector: &str, n: usize) -> Option<HashMap<u64, String>> {
    let s = connector_status(port, connector);
    let tasks = s["tasks"].as_array()?;
    if tasks.len() != n || tasks.iter().any(|t| t["state"] != "RUNNING") {
        return None;
    }
    Some(tasks.iter().filter_map(|t| Some((t["id"].as_u64()?, t["worker_id"].as_str()?.to_string()))).collect())
}

/// Reads a topic written by the verifiable source with String converters: task id → seqnos in
/// topic order. Reads until `quiet` passes without a new record.
pub fn read_seqnos(kafka: &str, topic: &str, quiet: Duration) -> HashMap<i64, Vec<i64>> {
    read_seqnos_within(kafka, topic, quiet, Duration::from_secs(300))
}

/// As [`read_seqnos`], but stops after `limit` even while records keep coming.
pub fn read_seqnos_within(kafka: &str, topic: &str, quiet: Duration, limit: Duration) -> HashMap<i64, Vec<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut last = Instant::now();
    let started = Instant::now();
    while last.elapsed() < quiet && started.elapsed() < limit {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let parse = |b: Option<&[u8]>| b.and_then(|b| std::str::from_utf8(b).ok()?.trim().parse::<i64>().ok());
            let (Some(task), Some(seqno)) = (parse(m.key()), parse(m.payload())) else { continue };
            out.entry(task).or_default().push(seqno);
            last = Instant::now();
        }
    }
    out
}

/// For each task: (distinct seqnos, duplicates, the first missing seqno below the max, if any).
pub fn check_seqnos(seqnos: &HashMap<i64, Vec<i64>>) -> HashMap<i64, (usize, usize, Option<i64>)> {
    seqnos
        .iter()
        .map(|(task, list)| {
            let distinct: std::collections::BTreeSet<i64> = list.iter().copied().collect();
            let max = distinct.iter().next_back().copied().unwrap_or(-1);
            let gap = (0..=max).find(|n| !distinct.contains(n));
            (*task, (distinct.len(), list.len() - distinct.len(), gap))
        })
        .collect()
}

/// Every record of `topic` (all partitions, from the beginning) read by a fresh consumer, until
/// `quiet` passes without one. Empty when the topic does not exist.
pub fn read_messages(kafka: &str, topic: &str, quiet: Duration) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning).expect("partition");
            }
        }
    }
    if tpl.count() == 0 {
        return Vec::new();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.detach());
            last = Instant::now();
        }
    }
    out
}

/// Produces keyed records (a `None` value is a tombstone) to partition 0, acks=all.
pub fn produce<K: AsRef<str>>(kafka: &str, topic: &str, records: &[(K, Option<String>)]) {
    produce_to(kafka, topic, 0, records)
}

/// Produces to one partition of a topic.
pub fn produce_to<K: AsRef<str>>(kafka: &str, topic: &str, partition: i32, records: &[(K, Option<String>)]) {
    let p: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", kafka)
            .set("acks", "all")
            .create()
            .expect("producer");
    for (k, v) in records {
        let mut r: rdkafka::producer::BaseRecord<'_, str, str> =
            rdkafka::producer::BaseRecord::to(topic).key(k.as_ref()).partition(partition);
        if let Some(v) = v {
            r = r.payload(v.as_str());
        }
        p.send(r).map_err(|(e, _)| e).expect("send");
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(10)).expect("flush");
}

/// Creates a one-partition topic.
pub fn create_topic(kafka: &str, topic: &str) {
    create_topic_with(kafka, topic, 1)
}

/// Creates a topic with `partitions` partitions.
pub fn create_topic_with(kafka: &str, topic: &str, partitions: i32) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new().set("bootstrap.servers", kafka).create().expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(admin.create_topics(
        [&rdkafka::admin::NewTopic::new(topic, partitions, rdkafka::admin::TopicReplication::Fixed(-1))],
        &rdkafka::admin::AdminOptions::new(),
    ))
    .expect("create topic");
}

/// A Kafka Connect JSON order record with its schema, as a Debezium + unwrap pipeline writes it.
pub fn order_record(id: i64, status: Option<&str>, total: f64) -> String {
    serde_json::json!({
        "schema": {"type": "struct", "optional": false, "name": "shop.orders.Value", "fields": [
            {"field": "id", "type": "int64", "optional": false},
            {"field": "status", "type": "string", "optional": true},
            {"field": "total", "type": "double", "optional": false}]},
        "payload": {"id": id, "status": status, "total": total}
    })
    .to_string()
}

/// ~1 KB of incompressible text (hex of a hash of `seq`).
pub fn padding(seq: i64) -> String {
    (0..64).map(|i| format!("{:016x}", ((seq * 1_000_003 + i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect()
}

/// Produces `per_partition` JSON records with schema `{seq, pad}` (~1.1 KB) to each of
/// `partitions` partitions, one producer thread per partition; partition p holds seqs
/// `p * per_partition ..`.
pub fn produce_padded(kafka: &str, topic: &str, partitions: i32, per_partition: i64) {
    let schema = serde_json::json!({"type": "struct", "optional": false, "fields": [
        {"field": "seq", "type": "int64", "optional": false},
        {"field": "pad", "type": "string", "optional": false}]});
    let producers: Vec<_> = (0..partitions)
        .map(|p| {
            let (kafka, topic, schema) = (kafka.to_string(), topic.to_string(), schema.clone());
            std::thread::spawn(move || {
                let recs: Vec<(String, Option<String>)> = (0..per_partition)
                    .map(|i| {
                        let seq = p as i64 * per_partition + i;
                        let v = serde_json::json!({"schema": schema, "payload": {"seq": seq, "pad": padding(seq)}});
                        (seq.to_string(), Some(v.to_string()))
                    })
                    .collect();
                produce_to(&kafka, &topic, p, &recs);
            })
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
}

/// Marks a test as skipped (it returns without checking anything): says why on stderr and, under
/// `scripts/test.sh`, adds it to the skipped list the suite's summary prints.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
    if let Ok(file) = std::env::var("SLUICE_SKIPPED_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
            let _ = std::io::Write::write_all(&mut f, format!("{test}: {why}\n").as_bytes());
        }
    }
}

/// The S3 server of the services (SeaweedFS) and the Python that reads lakes back as independent
/// readers (pyarrow for Parquet, delta-rs' binding for Delta).
pub struct Lake {
    pub endpoint: String,
    pub key: String,
    pub secret: String,
    pub python: String,
}

impl Lake {
    pub fn load(services: &Services) -> Lake {
        let v = |k: &str| {
            services.vars.get(k).cloned().unwrap_or_else(|| panic!("{k}: run `bash scripts/services.sh start`"))
        };
        Lake {
            endpoint: v("S3_ENDPOINT"),
            key: v("S3_ACCESS_KEY_ID"),
            secret: v("S3_SECRET_ACCESS_KEY"),
            python: services.vars.get("SLUICE_PYTHON").cloned().unwrap_or_else(|| "python3".into()),
        }
    }

    /// Runs `tests/python/<script>` with `args`; its stdout.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
        let out = Command::new(&self.python).arg(script).args(args).output().expect("python");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a bucket (an existing one is fine).
    pub fn mkbucket(&self, bucket: &str) {
        self.python("read_lake.py", &["mkbucket", &self.endpoint, &self.key, &self.secret, bucket]);
    }

    /// pyarrow's view of the Parquet files under `<bucket>/<prefix>` (see read_lake.py).
    pub fn read_parquet(&self, base: &str, column: &str) -> serde_json::Value {
        let out = self.python("read_lake.py", &["read", "s3", &self.endpoint, &self.key, &self.secret, base, column]);
        serde_json::from_str(&out).expect("json")
    }

    /// delta-rs' view of a Delta table (see read_delta.py).
    pub fn read_delta(&self, uri: &str, column: &str, app_ids: &[String]) -> serde_json::Value {
        let mut args: Vec<&str> = vec![uri, column];
        args.extend(app_ids.iter().map(String::as_str));
        args.extend(["--s3", &self.endpoint, &self.key, &self.secret]);
        serde_json::from_str(&self.python("read_delta.py", &args)).expect("json")
    }
}

/// (key, value) text of every committed record of `topic`: its read_committed view through
/// sluice's transaction-marker filter (the local broker does not hide aborted transactions from
/// read_committed consumers).
pub fn committed_values(kafka: &str, topic: &str) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let records = rt
        .block_on(sluice_runtime::storage::committed::read_committed(kafka, topic, Duration::from_secs(60)))
        .expect("read committed");
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    records.iter().map(|r| (text(r.key.as_deref()), text(r.value.as_deref()))).collect()
}

/// As [`read_seqnos`], but the committed view ([`committed_values`]).
pub fn read_committed_seqnos(kafka: &str, topic: &str) -> HashMap<i64, Vec<i64>> {
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for (k, v) in committed_values(kafka, topic) {
        if let (Ok(task), Ok(seqno)) = (k.trim().parse::<i64>(), v.trim().parse::<i64>()) {
            out.entry(task).or_default().push(seqno);
        }
    }
    out
}

/// Runs openssl; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and one certificate it signs for 127.0.0.1/localhost (server and client use), made
/// with openssl in `dir` (`worker.key`, `worker.crt`, `ca.pem`): returns (keystore PEM with key and
/// chain, CA PEM).
pub fn tls_certificates(dir: &Path) -> (PathBuf, PathBuf) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sluice test CA"]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "worker.key", "-out", "worker.csr", "-subj", "/CN=localhost"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "worker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "worker.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let keystore = dir.join("keystore.pem");
    let key = std::fs::read_to_string(dir.join("worker.key")).expect("key");
    let cert = std::fs::read_to_string(dir.join("worker.crt")).expect("crt");
    std::fs::write(&keystore, format!("{key}{cert}")).expect("keystore");
    (keystore, dir.join("ca.pem"))
}

/// A child process killed when dropped (a failing test leaves no server behind).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the workers on `ports` (REST ports) agree on one generation with one leader and a
/// follower that has joined: returns (leader, follower) as indexes into `ports`.
pub fn leader_and_follower(ports: &[u16]) -> (usize, usize) {
    let mut roles = (0, 0);
    wait_until(Duration::from_secs(120), "one leader and one follower that knows it", || {
        let views: Vec<(usize, serde_json::Value)> = ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, serde_json::from_str(&http(*p, "GET", "/admin/cluster", None)?.1).ok()?)))
            .collect();
        let leader = views.iter().find(|(_, v)| v["is_leader"] == true).map(|(i, _)| *i);
        let follower = views.iter().find(|(_, v)| v["is_leader"] == false && v["joined"] == true).map(|(i, _)| *i);
        match (leader, follower) {
            (Some(l), Some(f))
                if views.len() == ports.len()
                    && views.iter().all(|(_, v)| v["generation"] == views[0].1["generation"]) =>
            {
                roles = (l, f);
                true
            }
            _ => false,
        }
    });
    roles
}

/// One sink on a fresh one-partition topic, in a standalone worker with JSON values and Kafka
/// Connect's default offset flush (60 s): for the tests that a topic gone quiet is still flushed
/// on time (the runtime's empty puts), not at the offset flush.
pub struct QuietSink {
    pub kafka: String,
    pub topic: String,
    /// Holds the worker's files and, under `lake/`, the sink's output.
    pub dir: tempfile::TempDir,
    pub sluice: Sluice,
}

impl QuietSink {
    /// Starts the sink; `config` gets the topic and the lake directory and returns the
    /// connector's config.
    pub fn start(config: impl FnOnce(&str, &Path) -> serde_json::Value) -> QuietSink {
        let services = Services::load();
        let kafka = services.kafka();
        let topic = unique("quiet");
        create_topic_with(&kafka, &topic, 1);
        let dir = tempfile::tempdir().expect("tmp");
        let lake = dir.path().join("lake");
        std::fs::create_dir_all(&lake).expect("lake dir");
        let port = free_port();
        let worker = worker_properties(
            dir.path(),
            &kafka,
            port,
            "value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=60000",
        );
        let connector = dir.path().join("quiet.json");
        let body = serde_json::json!({"name": "quiet", "config": config(&topic, &lake)});
        std::fs::write(&connector, body.to_string()).expect("write");
        let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
        QuietSink { kafka, topic, dir, sluice }
    }

    /// The lake directory given to `start`'s config.
    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// Sends record 0 and waits for `first` (start-up and the group join included), then sends
    /// records 1..=10 and returns how long after their send `rest` held.
    pub fn flush_time(
        &self,
        event: fn(i64) -> String,
        first: impl FnMut() -> bool,
        rest: impl FnMut() -> bool,
    ) -> Duration {
        produce_to(&self.kafka, &self.topic, 0, &[("0", Some(event(0)))]);
        wait_until(Duration::from_secs(45), "the first record flushed", first);
        let sent = Instant::now();
        let more: Vec<(String, Option<String>)> = (1..=10).map(|s| (s.to_string(), Some(event(s)))).collect();
        produce_to(&self.kafka, &self.topic, 0, &more);
        wait_until(Duration::from_secs(30), "ten more records flushed", rest);
        sent.elapsed()
    }
}
