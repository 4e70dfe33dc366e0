//! The Elasticsearch sink against both search servers here (osmem-server, OpenSearch API; noida-db,
//! Elasticsearch 8 API): mapping from the Connect schema, updates and tombstones, replays that never
//! overwrite newer documents (external version = offset), per-item 429s and an unreachable cluster
//! (through a proxy the test owns), auth errors, and malformed documents per
//! `behavior.on.malformed.documents`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The search servers to test against, by env var.
fn servers(services: &Services) -> Vec<(String, String)> {
    let found: Vec<(String, String)> = ["OPENSEARCH_URL", "ELASTICSEARCH_URL"]
        .iter()
        .filter_map(|k| services.vars.get(*k).map(|u| (k.to_string(), u.clone())))
        .collect();
    assert!(!found.is_empty(), "no search server: run `bash scripts/services.sh start`");
    found
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("url with a port")
}

/// One request to a search server; the body parsed as JSON.
fn es(url: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (code, text) = http(port_of(url), method, path, body).expect("search server reachable");
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn source(url: &str, index: &str, id: &str) -> Option<Value> {
    let (code, body) = es(url, "GET", &format!("/{index}/_doc/{id}"), None);
    (code == 200 && body["found"] == true).then(|| body["_source"].clone())
}

fn count(url: &str, index: &str) -> i64 {
    es(url, "POST", &format!("/{index}/_refresh"), None);
    es(url, "GET", &format!("/{index}/_count"), None).1["count"].as_i64().unwrap_or(-1)
}

fn order(id: i64, status: &str, total: f64) -> String {
    order_record(id, Some(status), total)
}

fn sink(name: &str, topic: &str, url: &str, index: &str, extra: Value) -> String {
    let mut config = json!({
        "connector.class": "io.confluent.connect.elasticsearch.ElasticsearchSinkConnector",
        "topics": topic, "connection.url": url, "index.name.template": index,
        "key.ignore": "false", "behavior.on.null.values": "delete",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"name": name, "config": config}).to_string()
}

fn post(port: u16, body: &str) {
    let (code, reply) = http(port, "POST", "/connectors", Some(body)).expect("rest");
    assert_eq!(code, 201, "{reply}");
}

fn sent_total(port: u16, connector: &str) -> u64 {
    let (_, text) = http(port, "GET", "/metrics", None).unwrap_or_default();
    let prefix = format!("sluice_sink_record_send_total{{connector=\"{connector}\"");
    text.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

#[test]
fn mapping_updates_tombstones_and_replays_on_both_servers() {
    let services = Services::load();
    let kafka = services.kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "offset.flush.interval.ms=1000");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    for (name, url) in servers(&services) {
        let topic = unique("orders");
        create_topic(&kafka, &topic);
        let index = unique("orders").to_lowercase();
        post(port, &sink(&format!("{name}-a"), &topic, &url, &index, json!({})));
        produce(&kafka, &topic, &[("1", Some(order(1, "new", 10.5))), ("2", Some(order(2, "new", 20.0)))]);
        wait_until(Duration::from_secs(60), &format!("{name}: both orders indexed"), || {
            source(&url, &index, "1").is_some() && source(&url, &index, "2").is_some()
        });
        assert_eq!(source(&url, &index, "1"), Some(json!({"id": 1, "status": "new", "total": 10.5})), "{name}");
        let (_, mapping) = es(&url, "GET", &format!("/{index}/_mapping"), None);
        let props = &mapping[&index]["mappings"]["properties"];
        assert_eq!(props["id"]["type"], "long", "{name}: {mapping}");
        assert_eq!(props["total"]["type"], "double", "{name}: {mapping}");
        assert_eq!(props["status"]["type"], "text", "{name}: {mapping}");

        produce(&kafka, &topic, &[("1", Some(order(1, "paid", 12.0))), ("2", None)]);
        wait_until(Duration::from_secs(60), &format!("{name}: the update and the tombstone applied"), || {
            source(&url, &index, "2").is_none() && source(&url, &index, "1").is_some_and(|d| d["status"] == "paid")
        });
        assert_eq!(source(&url, &index, "1"), Some(json!({"id": 1, "status": "paid", "total": 12.0})), "{name}");

        // A newer write (version 100) lands behind the sink's back; then a second connector
        // replays the topic from the start, one record per bulk request, so every old version
        // reaches the server. Each must be refused (version = offset < 100) and ignored: the
        // newer document stays, and the task stays RUNNING.
        let (code, reply) = es(
            &url,
            "PUT",
            &format!("/{index}/_doc/1?version=100&version_type=external"),
            Some(r#"{"marker":"kept"}"#),
        );
        assert!(code == 200 || code == 201, "{name}: {reply}");
        post(port, &sink(&format!("{name}-replay"), &topic, &url, &index, json!({"max.buffered.records": "1"})));
        wait_until(Duration::from_secs(60), &format!("{name}: the replay done"), || {
            sent_total(port, &format!("{name}-replay")) >= 4
        });
        assert_eq!(
            source(&url, &index, "1"),
            Some(json!({"marker": "kept"})),
            "{name}: the replay overwrote newer data"
        );
        assert!(source(&url, &index, "2").is_none(), "{name}: a deleted order stays deleted");
        assert_eq!(connector_status(port, &format!("{name}-replay"))["tasks"][0]["state"], "RUNNING");
    }
    drop(sluice);
}

/// An HTTP proxy in front of a search server that can demand basic auth, answer some bulk items
/// with 429 (without forwarding them), and play dead.
struct Proxy {
    port: u16,
    reject_items: Arc<AtomicUsize>,
    rejected: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16, auth: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Proxy {
            port,
            reject_items: Arc::new(AtomicUsize::new(0)),
            rejected: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
        };
        let (reject, rejected, down) = (proxy.reject_items.clone(), proxy.rejected.clone(), proxy.down.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (reject, rejected, down) = (reject.clone(), rejected.clone(), down.clone());
                std::thread::spawn(move || serve(conn, upstream, auth, &reject, &rejected, &down));
            }
        });
        proxy
    }
}

fn serve(conn: TcpStream, upstream: u16, auth: &str, reject: &AtomicUsize, rejected: &AtomicUsize, down: &AtomicBool) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    loop {
        let mut head = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        if down.load(Ordering::SeqCst) {
            return; // connection dropped: the client sees it closed before an answer
        }
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = head.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("GET").to_string(), parts.next().unwrap_or("/").to_string());
        let (code, reply) = if header("authorization").as_deref() != Some(auth) {
            (
                401,
                r#"{"error":{"type":"security_exception","reason":"missing or wrong credentials"},"status":401}"#
                    .to_string(),
            )
        } else if path.starts_with("/_bulk") && reject.load(Ordering::SeqCst) > 0 {
            reject_some(upstream, &String::from_utf8_lossy(&body), reject, rejected)
        } else {
            forward(upstream, &method, &path, &String::from_utf8_lossy(&body))
        };
        let answer = format!(
            "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn forward(upstream: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    http(upstream, method, path, (!body.is_empty()).then_some(body)).unwrap_or((502, "{}".into()))
}

/// Takes the first actions out of a bulk body, forwards the rest, and answers the taken ones 429.
fn reject_some(upstream: u16, body: &str, reject: &AtomicUsize, rejected: &AtomicUsize) -> (u16, String) {
    let lines: Vec<&str> = body.lines().collect();
    let mut actions: Vec<Vec<&str>> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let pair = !lines[i].starts_with("{\"delete\"");
        let end = if pair { i + 2 } else { i + 1 };
        actions.push(lines[i..end.min(lines.len())].to_vec());
        i = end;
    }
    let n = actions.len();
    let take = match reject.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| Some(left - left.min(n))) {
        Ok(left) | Err(left) => left.min(n),
    };
    rejected.fetch_add(take, Ordering::SeqCst);
    let rest: String = actions[take..].iter().flatten().map(|l| format!("{l}\n")).collect();
    let mut items: Vec<Value> = (0..take)
        .map(|_| json!({"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected by the test proxy"}}}))
        .collect();
    if !rest.is_empty() {
        let (code, text) = forward(upstream, "POST", "/_bulk", &rest);
        if code != 200 {
            return (code, text);
        }
        let answer: Value = serde_json::from_str(&text).expect("bulk answer");
        items.extend(answer["items"].as_array().cloned().unwrap_or_default());
    }
    (200, json!({"took": 1, "errors": true, "items": items}).to_string())
}

#[test]
fn retries_429_items_and_outages_and_fails_on_bad_credentials() {
    let services = Services::load();
    let kafka = services.kafka();
    let (name, url) = servers(&services).remove(0);
    // "elastic:s3cret"
    let proxy = Proxy::start(port_of(&url), "Basic ZWxhc3RpYzpzM2NyZXQ=");
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "offset.flush.interval.ms=1000");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let topic = unique("events");
    create_topic(&kafka, &topic);
    let index = unique("events").to_lowercase();
    proxy.reject_items.store(3, Ordering::SeqCst);
    let auth = json!({"connection.username": "elastic", "connection.password": "s3cret", "retry.backoff.ms": "50", "read.timeout.ms": "2000"});
    post(port, &sink("search", &topic, &proxy_url, &index, auth.clone()));
    let (_, config) = http(port, "GET", "/connectors/search/config", None).expect("config");
    assert!(!config.contains("s3cret"), "the password is hidden: {config}");
    let batch: Vec<(String, Option<String>)> =
        (0..50).map(|i| (i.to_string(), Some(order(i, "new", i as f64)))).collect();
    produce(&kafka, &topic, &batch);
    wait_until(Duration::from_secs(60), &format!("{name}: 50 documents through 429s"), || count(&url, &index) == 50);
    assert_eq!(proxy.rejected.load(Ordering::SeqCst), 3, "three items were answered 429 and retried");

    // The cluster unreachable for a while: the task keeps retrying, stays RUNNING, loses nothing.
    proxy.down.store(true, Ordering::SeqCst);
    let more: Vec<(String, Option<String>)> = (50..60).map(|i| (i.to_string(), Some(order(i, "new", 1.0)))).collect();
    produce(&kafka, &topic, &more);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(connector_status(port, "search")["tasks"][0]["state"], "RUNNING", "{}", sluice.log_text());
    assert_eq!(count(&url, &index), 50);
    proxy.down.store(false, Ordering::SeqCst);
    wait_until(Duration::from_secs(90), &format!("{name}: the outage's records written"), || count(&url, &index) == 60);
    assert!(sluice.log_text().contains("cannot reach Elasticsearch"), "the outage was logged");

    // Wrong password: the task fails and says which keys to check.
    let wrong = json!({"connection.username": "elastic", "connection.password": "nope"});
    post(port, &sink("wrong", &topic, &proxy_url, &unique("w").to_lowercase(), wrong));
    wait_until(Duration::from_secs(30), "the task FAILED", || {
        connector_status(port, "wrong")["tasks"][0]["state"] == "FAILED"
    });
    let trace = connector_status(port, "wrong")["tasks"][0]["trace"].as_str().unwrap_or("").to_string();
    assert!(trace.contains("connection.password") && trace.contains("401"), "{trace}");
    assert!(!trace.contains("nope"), "{trace}");
}

#[test]
fn malformed_documents_follow_the_setting() {
    let services = Services::load();
    let kafka = services.kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    for (name, url) in servers(&services) {
        let topic = unique("m");
        create_topic(&kafka, &topic);
        let schemaless = |n: &str| Some(format!(r#"{{"n":{n}}}"#));
        produce(&kafka, &topic, &[("1", schemaless("1")), ("2", schemaless("\"abc\"")), ("3", schemaless("3"))]);
        for behavior in ["WARN", "FAIL"] {
            let index = unique(&format!("m-{behavior}")).to_lowercase();
            let (code, reply) =
                es(&url, "PUT", &format!("/{index}"), Some(r#"{"mappings":{"properties":{"n":{"type":"long"}}}}"#));
            assert_eq!(code, 200, "{reply}");
            let connector = format!("{name}-{behavior}");
            let extra = json!({"behavior.on.malformed.documents": behavior,
                "value.converter.schemas.enable": "false", "batch.size": "1", "max.in.flight.requests": "1"});
            post(port, &sink(&connector, &topic, &url, &index, extra));
            if behavior == "WARN" {
                wait_until(Duration::from_secs(60), &format!("{name}: documents 1 and 3"), || {
                    source(&url, &index, "3").is_some()
                });
                assert!(source(&url, &index, "1").is_some() && source(&url, &index, "2").is_none());
                assert_eq!(connector_status(port, &connector)["tasks"][0]["state"], "RUNNING");
                assert!(sluice.log_text().contains("malformed document skipped"), "warned");
            } else {
                wait_until(Duration::from_secs(60), &format!("{name}: the task FAILED"), || {
                    connector_status(port, &connector)["tasks"][0]["state"] == "FAILED"
                });
                let trace = connector_status(port, &connector)["tasks"][0]["trace"].as_str().unwrap_or("").to_string();
                assert!(
                    trace.contains("behavior.on.malformed.documents") && trace.contains("parsing_exception"),
                    "{trace}"
                );
                assert!(source(&url, &index, "1").is_some(), "the document before the bad one is written");
            }
        }
    }
}

/// A private noida-db (Elasticsearch API, on disk) for a restart test.
struct Noida {
    child: std::process::Child,
    bin: String,
    data: std::path::PathBuf,
    port: u16,
}

impl Noida {
    fn start(bin: &str, data: &std::path::Path, port: u16) -> Noida {
        let child = std::process::Command::new(bin)
            .args(["start", "--data-dir"])
            .arg(data)
            .args(["--host", "127.0.0.1", "--only", "elasticsearch", "--elasticsearch-port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start noida-db");
        wait_until(Duration::from_secs(30), "noida-db up", || {
            http(port, "GET", "/", None).is_some_and(|(c, _)| c == 200)
        });
        Noida { child, bin: bin.to_string(), data: data.to_path_buf(), port }
    }

    /// SIGTERM (it writes its data out); `run` while it is down; then the same data and port again.
    fn restart(&mut self, run: impl FnOnce()) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        run();
        *self = Noida::start(&self.bin, &self.data, self.port);
    }
}

impl Drop for Noida {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_search_server_restart_is_ridden_out() {
    let services = Services::load();
    let kafka = services.kafka();
    let python =
        services.vars.get("SLUICE_PYTHON").cloned().expect("SLUICE_PYTHON: run `bash scripts/services.sh start`");
    let out = std::process::Command::new(&python)
        .args(["-c", "import noida_db,os;print(os.path.join(os.path.dirname(noida_db.__file__),'noida-db'))"])
        .output()
        .expect("python");
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        std::path::Path::new(&bin).exists(),
        "noida-db not installed ({bin}): run `bash scripts/services.sh start`"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let es_port = free_port();
    let mut noida = Noida::start(&bin, &dir.path().join("noida"), es_port);
    let url = format!("http://127.0.0.1:{es_port}");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "offset.flush.interval.ms=1000");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let topic = unique("restart");
    create_topic(&kafka, &topic);
    let index = unique("restart").to_lowercase();
    post(port, &sink("search", &topic, &url, &index, json!({"retry.backoff.ms": "50", "read.timeout.ms": "2000"})));
    let send = |from: i64, to: i64| {
        let records: Vec<(String, Option<String>)> =
            (from..to).map(|i| (i.to_string(), Some(order(i, "new", 1.0)))).collect();
        produce(&kafka, &topic, &records);
    };
    send(0, 100);
    wait_until(Duration::from_secs(60), "100 documents", || count(&url, &index) == 100);
    // Records arrive while the server is down for 3 s; the task retries, then writes them.
    noida.restart(|| {
        send(100, 200);
        std::thread::sleep(Duration::from_secs(3));
    });
    send(200, 300);
    wait_until(Duration::from_secs(90), "300 documents after the restart", || count(&url, &index) == 300);
    assert_eq!(source(&url, &index, "150"), Some(json!({"id": 150, "status": "new", "total": 1.0})));
    assert_eq!(connector_status(port, "search")["tasks"][0]["state"], "RUNNING", "{}", sluice.log_text());
    assert!(sluice.log_text().contains("cannot reach Elasticsearch"), "the outage was met: {}", sluice.log_text());
}

/// `https://` nodes: the sink talks TLS (here to a TLS-terminating socat in front of the search
/// server, with a private CA in `elastic.https.ssl.truststore.location`); without the CA the
/// certificate is refused and nothing is written.
#[test]
fn https_nodes_with_a_private_ca() {
    let services = Services::load();
    let kafka = services.kafka();
    let (name, url) = servers(&services).remove(0);
    let dir = tempfile::tempdir().expect("tmp");
    let (keystore, ca) = tls_certificates(dir.path());
    let tls_port = free_port();
    // The front requires a client certificate signed by the CA (as a cluster with PKI auth).
    let _socat = KillOnDrop(
        std::process::Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,verify=1,cafile={},cert={},key={}",
                ca.display(),
                dir.path().join("worker.crt").display(),
                dir.path().join("worker.key").display()
            ))
            .arg(format!("TCP:127.0.0.1:{}", port_of(&url)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (apt-get install socat)"),
    );
    wait_until(Duration::from_secs(10), "the TLS front", || {
        std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    });
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "offset.flush.interval.ms=1000");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let https = format!("https://127.0.0.1:{tls_port}");
    let topic = unique("tls-orders");
    create_topic(&kafka, &topic);
    let index = unique("tls-orders").to_lowercase();
    let trusted = json!({"elastic.security.protocol": "SSL", "elastic.https.ssl.truststore.location": ca.display().to_string(),
        "elastic.https.ssl.keystore.location": keystore.display().to_string(), "elastic.https.ssl.keystore.type": "PEM"});
    post(port, &sink("tls-trusted", &topic, &https, &index, trusted));
    // Trusts the nodes but presents no client certificate: turned away.
    let anonymous_index = unique("tls-anonymous").to_lowercase();
    let anonymous = json!({"elastic.https.ssl.truststore.location": ca.display().to_string()});
    post(port, &sink("tls-anonymous", &topic, &https, &anonymous_index, anonymous));
    // The same through a sink that trusts only the system's CAs: refused.
    let other_index = unique("tls-untrusted").to_lowercase();
    post(port, &sink("tls-untrusted", &topic, &https, &other_index, json!({})));
    produce(&kafka, &topic, &[("1", Some(order(1, "new", 10.5))), ("2", Some(order(2, "paid", 20.0)))]);
    wait_until(Duration::from_secs(60), &format!("{name}: both orders indexed over TLS"), || {
        source(&url, &index, "1").is_some() && source(&url, &index, "2").is_some()
    });
    assert_eq!(source(&url, &index, "2"), Some(json!({"id": 2, "status": "paid", "total": 20.0})));
    wait_until(Duration::from_secs(30), "the untrusting sink's certificate error", || {
        sluice
            .log_text()
            .lines()
            .any(|l| l.contains("tls-untrusted") && (l.contains("certificate") || l.contains("UnknownIssuer")))
    });
    assert_eq!(count(&url, &other_index), -1, "no index without a trusted certificate");
    wait_until(Duration::from_secs(30), "the anonymous sink's missing-certificate error", || {
        sluice.log_text().lines().any(|l| l.contains("tls-anonymous") && l.contains("CertificateRequired"))
    });
    assert_eq!(count(&url, &anonymous_index), -1, "no index without a client certificate");
    drop(sluice);
}
