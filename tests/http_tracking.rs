//! The HTTP tracking collector against a real broker, driven by real HTTP clients (curl, and raw
//! HTTP/1.1 over TCP for the many-clients test), with the topic read back by a plain Kafka consumer.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, unique, wait_until, worker_properties, Services, Sluice};
use serde_json::{json, Value};

/// A standalone worker running one `http-tracking` connector.
struct Collector {
    dir: tempfile::TempDir,
    sluice: Sluice,
    http: u16,
    topic: String,
    kafka: String,
}

impl Collector {
    /// Starts a worker on `kafka` with the collector configured by `extra` (over test defaults).
    fn start(kafka: &str, extra: Value) -> Collector {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let http = free_port();
        let topic = unique("tracking");
        let worker = worker_properties(dir.path(), kafka, port, "");
        let mut config = json!({
            "connector.class": "http-tracking",
            "tasks.max": "1",
            "http.listener": format!("127.0.0.1:{http}"),
            "topic": topic,
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "topic.creation.default.partitions": "4",
        });
        for (k, v) in extra.as_object().expect("object") {
            config[k] = v.clone();
        }
        let file = dir.path().join("collector.json");
        std::fs::write(&file, json!({"name": "collector", "config": config}).to_string()).expect("write");
        let sluice = Sluice::standalone(&worker, &[&file], port, dir.path().join("sluice.log"));
        let c = Collector { dir, sluice, http, topic, kafka: kafka.to_string() };
        wait_until(Duration::from_secs(30), "the collector's /health", || {
            request(c.http, "GET", "/health", &[], b"").is_some_and(|r| r.status == 200)
        });
        c
    }

    fn curl(&self, args: &[&str]) -> CurlReply {
        curl(self.http, args)
    }
}

#[derive(Debug)]
struct CurlReply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl CurlReply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Runs curl against the collector: `args` are curl arguments with the path last (relative to
/// the collector's address).
fn curl(port: u16, args: &[&str]) -> CurlReply {
    let dir = tempfile::tempdir().expect("tmp");
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let (path, rest) = args.split_last().expect("path");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(rest)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    CurlReply {
        status,
        headers: std::fs::read_to_string(headers).unwrap_or_default(),
        body: std::fs::read(body).unwrap_or_default(),
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 request over a fresh connection.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    Some(Reply { status, headers: head.to_ascii_lowercase(), body: rest.to_string() })
}

/// One record as read back.
#[derive(Debug, Clone)]
struct Read_ {
    partition: i32,
    key: Option<String>,
    value: Value,
    timestamp: Option<i64>,
}

/// Every record of `topic`, reading until `quiet` passes without one.
fn read_topic(kafka: &str, topic: &str, quiet: Duration) -> Vec<Read_> {
    use rdkafka::Message;
    common::read_messages(kafka, topic, quiet)
        .iter()
        .map(|m| Read_ {
            partition: m.partition(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().and_then(|p| serde_json::from_slice(p).ok()).unwrap_or(Value::Null),
            timestamp: m.timestamp().to_millis(),
        })
        .collect()
}

/// Waits until `topic` holds at least `n` records; returns them all.
fn wait_topic(kafka: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Read_> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = read_topic(kafka, topic, Duration::from_millis(1500));
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
    }
}

#[test]
fn segment_calls_events_pixel_gzip_and_cors_reach_kafka_acknowledged() {
    let services = Services::load();
    let c = Collector::start(&services.kafka(), json!({"http.cors.allowed.origins": "https://shop.example"}));
    let post = |path: &str, body: Value| {
        let b = body.to_string();
        c.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-A",
            "sluice-test/1",
            "--data-binary",
            &b,
            path,
        ])
    };
    let calls = [
        (
            "/v1/track",
            json!({"userId": "u1", "event": "Product Viewed", "properties": {"sku": "A-1", "price": 12.5}, "messageId": "m-track"}),
        ),
        ("/v1/page", json!({"userId": "u1", "name": "Home", "messageId": "m-page"})),
        ("/v1/screen", json!({"anonymousId": "anon-7", "name": "Cart", "messageId": "m-screen"})),
        ("/v1/identify", json!({"userId": "u2", "traits": {"plan": "pro"}, "messageId": "m-identify"})),
        ("/v1/group", json!({"userId": "u2", "groupId": "g1", "messageId": "m-group"})),
        ("/v1/alias", json!({"userId": "u2", "previousId": "anon-7", "messageId": "m-alias"})),
    ];
    for (path, body) in &calls {
        let r = post(path, body.clone());
        assert_eq!(r.status, 200, "{path}: {:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json(), json!({"success": true, "accepted": 1}), "{path}");
    }
    // A batch whose envelope context and sentAt apply to each event (clock 60 s behind).
    let batch = json!({"batch": [
        {"type": "track", "userId": "u3", "event": "A", "timestamp": "2026-01-01T00:00:00Z", "messageId": "m-b0"},
        {"type": "track", "userId": "u3", "event": "B", "timestamp": "2026-01-01T00:00:01Z", "messageId": "m-b1"},
        {"type": "page", "userId": "u3", "name": "C", "messageId": "m-b2"}],
        "sentAt": "2026-01-01T00:00:02Z", "context": {"library": {"name": "analytics-node"}}});
    let r = post("/v1/batch", batch);
    assert_eq!((r.status, r.json()["accepted"].clone()), (200, json!(3)));
    // Free-form events: NDJSON, then a JSON array.
    let r = c.curl(&[
        "-X", "POST", "-H", "Content-Type: application/x-ndjson", "--data-binary",
        "{\"type\":\"click\",\"userId\":\"u4\",\"messageId\":\"m-nd0\"}\n{\"type\":\"click\",\"userId\":\"u4\",\"messageId\":\"m-nd1\"}\n",
        "/v1/events",
    ]);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let r =
        post("/v1/events", json!([{"userId": "u5", "messageId": "m-arr0"}, {"userId": "u5", "messageId": "m-arr1"}]));
    assert_eq!(r.status, 200);
    // gzip: curl sends a file compressed by gzip(1).
    let gz_src = c.dir.path().join("batch.json");
    std::fs::write(
        &gz_src,
        json!({"batch": [{"type": "track", "userId": "u6", "event": "Zipped", "messageId": "m-gz"}]}).to_string(),
    )
    .expect("write");
    assert!(Command::new("gzip").arg("-k").arg(&gz_src).status().expect("gzip").success());
    let gz_arg = format!("@{}.gz", gz_src.display());
    let r = c.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &gz_arg,
        "/v1/batch",
    ]);
    assert_eq!(r.status, 200, "gzip: {:?}", String::from_utf8_lossy(&r.body));
    // Pixel: a 43-byte GIF, and the query becomes the event.
    let r = c.curl(&["/v1/pixel.gif?event=Email%20Opened&userId=u7&messageId=m-pixel&campaign=fall"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 43);
    assert_eq!(&r.body[..6], b"GIF89a");
    assert_eq!(r.header("content-type").as_deref(), Some("image/gif"));
    // CORS: preflight from an allowed origin, refused for another; the header on a real answer.
    let r = c.curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://shop.example",
        "-H",
        "Access-Control-Request-Method: POST",
        "-H",
        "Access-Control-Request-Headers: content-type",
        "/v1/track",
    ]);
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://shop.example"));
    assert!(r.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert_eq!(r.header("access-control-allow-headers").as_deref(), Some("content-type"));
    let r = c.curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://evil.example",
        "-H",
        "Access-Control-Request-Method: POST",
        "/v1/track",
    ]);
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    let b = json!({"userId": "u8", "event": "X", "messageId": "m-cors"}).to_string();
    let r = c.curl(&["-X", "POST", "-H", "Origin: https://shop.example", "--data-binary", &b, "/v1/track"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("https://shop.example"));

    // Every acknowledged event is in Kafka, once, keyed by user, with its enrichment.
    let expected = 6 + 3 + 2 + 2 + 1 + 1 + 1;
    let records = wait_topic(&c.kafka, &c.topic, expected, Duration::from_secs(30));
    assert_eq!(records.len(), expected, "{records:#?}");
    let by_id: HashMap<String, Read_> =
        records.iter().map(|r| (r.value["messageId"].as_str().expect("messageId").to_string(), r.clone())).collect();
    assert_eq!(by_id.len(), expected, "message ids are distinct");
    let track = &by_id["m-track"];
    assert_eq!(track.key.as_deref(), Some("u1"));
    assert_eq!(track.value["type"], "track");
    assert_eq!(track.value["properties"], json!({"sku": "A-1", "price": 12.5}));
    assert_eq!(track.value["context"]["ip"], "127.0.0.1");
    assert_eq!(track.value["context"]["userAgent"], "sluice-test/1");
    let received = track.value["receivedAt"].as_str().expect("receivedAt");
    assert!(received.ends_with('Z') && received.len() == 24, "{received}");
    assert_eq!(track.value["timestamp"], track.value["receivedAt"], "no client timestamp: receivedAt");
    assert_eq!(by_id["m-screen"].key.as_deref(), Some("anon-7"), "anonymousId keys when there is no userId");
    for (id, kind) in [
        ("m-page", "page"),
        ("m-screen", "screen"),
        ("m-identify", "identify"),
        ("m-group", "group"),
        ("m-alias", "alias"),
    ] {
        assert_eq!(by_id[id].value["type"], kind);
    }
    // Skew correction: timestamp = receivedAt - (sentAt - originalTimestamp).
    let b0 = &by_id["m-b0"].value;
    assert_eq!(b0["originalTimestamp"], "2026-01-01T00:00:00.000Z");
    assert_eq!(b0["context"]["library"]["name"], "analytics-node");
    let parse = |v: &Value| chrono_like(v.as_str().expect("ts"));
    assert_eq!(parse(&b0["receivedAt"]) - parse(&b0["timestamp"]), 2000, "{b0}");
    assert_eq!(by_id["m-b0"].timestamp, Some(parse(&b0["timestamp"])), "the Kafka timestamp is the event time");
    // One user's events keep their order on one partition.
    let u3: Vec<&Read_> = records.iter().filter(|r| r.key.as_deref() == Some("u3")).collect();
    assert!(u3.iter().all(|r| r.partition == u3[0].partition));
    assert_eq!(
        u3.iter().map(|r| r.value["messageId"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["m-b0", "m-b1", "m-b2"]
    );
    assert_eq!(by_id["m-nd1"].value["type"], "click");
    assert_eq!(by_id["m-gz"].value["event"], "Zipped");
    assert_eq!(by_id["m-pixel"].value["event"], "Email Opened");
    assert_eq!(by_id["m-pixel"].value["properties"]["campaign"], "fall");

    // Metrics count what happened.
    let m = c.curl(&["/metrics"]);
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(&format!(
            "sluice_tracking_events_accepted_total{{connector=\"collector\",task=\"0\"}} {expected}"
        )),
        "{text}"
    );
    assert!(
        text.contains("sluice_tracking_requests_total{connector=\"collector\",task=\"0\",status=\"403\"} 1"),
        "{text}"
    );
}

/// Millis of an RFC 3339 UTC timestamp as the collector writes it (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn chrono_like(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // days from civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

#[test]
fn malformed_requests_are_refused_with_their_reason_and_nothing_of_them_is_written() {
    let services = Services::load();
    let dlq = unique("tracking-dlq");
    let c = Collector::start(
        &services.kafka(),
        json!({"write.keys": "k1:web", "http.max.event.bytes": "2000", "http.max.request.bytes": "20000",
               "errors.deadletterqueue.topic.name": dlq}),
    );
    let with_key = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["-u".to_string(), "k1:".to_string(), "-X".into(), "POST".into()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |args: Vec<String>| c.curl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let big_event =
        json!({"batch": [{"type": "track", "userId": "u", "event": "x", "properties": {"pad": "x".repeat(3000)}}]})
            .to_string();
    let big_body = format!("[{}]", vec![json!({"a": 1}).to_string(); 3000].join(","));
    // (path, body, expected status, a fragment the message must contain, expected index)
    let cases: Vec<(&str, String, u16, &str, Option<u64>)> = vec![
        ("/v1/track", "{\"userId\": \"u\", \"event\": ".into(), 400, "malformed JSON", None),
        ("/v1/track", json!({"event": "x"}).to_string(), 400, "userId or anonymousId is required", Some(0)),
        ("/v1/track", json!({"userId": "u"}).to_string(), 400, "non-empty event name", Some(0)),
        (
            "/v1/track",
            json!({"userId": "u", "event": "x", "timestamp": "last tuesday"}).to_string(),
            400,
            "timestamp",
            Some(0),
        ),
        (
            "/v1/batch",
            json!({"batch": [{"type": "track", "userId": "u", "event": "ok"}, {"type": "purchase", "userId": "u"}]})
                .to_string(),
            400,
            "event 1",
            Some(1),
        ),
        ("/v1/batch", json!({"events": []}).to_string(), 400, "no \"batch\" array", None),
        ("/v1/batch", big_event, 400, "http.max.event.bytes", Some(0)),
        ("/v1/events", big_body, 413, "http.max.request.bytes", None),
        ("/v1/events", "{\"a\":1}\nnot json\n".into(), 400, "event 1", Some(1)),
    ];
    let mut dead_lettered = 0;
    for (path, body, status, fragment, index) in &cases {
        let r = run(with_key(&["-H", "Content-Type: application/json", "--data-binary", body, path]));
        assert_eq!(r.status, *status, "{path} {body:.80}: {}", String::from_utf8_lossy(&r.body));
        let reply = r.json();
        assert_eq!(reply["success"], false);
        let message = reply["message"].as_str().unwrap_or("");
        assert!(message.contains(fragment), "{path}: {reply}");
        assert_eq!(reply["index"].as_u64(), *index, "{path}: {reply}");
        if *status == 400 {
            assert_eq!(reply["deadLetter"], true, "{reply}");
            dead_lettered += 1;
        }
    }
    // Wrong or missing write key: 401; unknown route: 404; wrong method: 405; bad encoding: 415.
    let ok = json!({"userId": "u", "event": "x"}).to_string();
    let r = c.curl(&["-X", "POST", "--data-binary", &ok, "/v1/track"]);
    assert_eq!(r.status, 401, "no key");
    let r = c.curl(&["-u", "nope:", "-X", "POST", "--data-binary", &ok, "/v1/track"]);
    assert_eq!(r.status, 401, "unknown key");
    assert_eq!(c.curl(&["-u", "k1:", "-X", "POST", "--data-binary", &ok, "/v2/track"]).status, 404);
    let r = c.curl(&["-u", "k1:", "/v1/track"]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
    assert_eq!(
        c.curl(&["-u", "k1:", "-X", "POST", "-H", "Content-Encoding: br", "--data-binary", &ok, "/v1/track"]).status,
        415
    );
    let r =
        c.curl(&["-u", "k1:", "-X", "POST", "-H", "Content-Encoding: gzip", "--data-binary", "not gzip", "/v1/track"]);
    assert_eq!(r.status, 400);
    dead_lettered += 1;

    // A good event after all that: it is the only record in the topic.
    let good = json!({"userId": "u", "event": "Sentinel", "messageId": "sentinel"}).to_string();
    let r = run(with_key(&["--data-binary", &good, "/v1/track"]));
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let records = wait_topic(&c.kafka, &c.topic, 1, Duration::from_secs(20));
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].value["messageId"], "sentinel");
    assert_eq!(records[0].value["sourceName"], "web");
    assert!(records[0].value.get("writeKey").is_none());
    // The refused payloads are on the dead-letter topic, raw.
    let dead = wait_topic(&c.kafka, &dlq, dead_lettered, Duration::from_secs(20));
    assert_eq!(dead.len(), dead_lettered, "{dead:#?}");
    assert!(dead.iter().any(|d| d.value.as_str().is_some_and(|s| s.contains("last tuesday"))), "{dead:#?}");
    assert!(c.sluice.log_text().lines().all(|l| !l.contains("panicked")));
    // `write.keys` is a PASSWORD key: hidden in every REST answer that shows configs.
    for path in [
        "/connectors/collector",
        "/connectors/collector/config",
        "/connectors/collector/tasks",
        "/connectors?expand=info",
    ] {
        let (status, body) = common::http(c.sluice.port, "GET", path, None).expect("REST");
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains("k1:web") && body.contains("[hidden]"), "{path}: {body}");
    }
}

#[test]
fn many_clients_at_once_lose_nothing_and_keep_each_users_order() {
    let services = Services::load();
    let c = Collector::start(&services.kafka(), json!({}));
    let clients = 16;
    let requests = 60;
    let per_request = 10;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let port = c.http;
            let failures = failures.clone();
            std::thread::spawn(move || {
                for r in 0..requests {
                    // Each client is two users; events carry a per-user sequence number.
                    let batch: Vec<Value> = (0..per_request)
                        .map(|i| {
                            let user = format!("user-{client}-{}", i % 2);
                            let seq = r * per_request / 2 + i / 2;
                            json!({"type": "track", "userId": user, "event": "Tick", "properties": {"seq": seq},
                                   "messageId": format!("{client}-{r}-{i}")})
                        })
                        .collect();
                    let body = json!({"batch": batch}).to_string();
                    match request(port, "POST", "/v1/batch", &[("Content-Type", "application/json")], body.as_bytes()) {
                        Some(reply) if reply.status == 200 => {}
                        other => failures
                            .lock()
                            .expect("lock")
                            .push(format!("{client}/{r}: {:?}", other.map(|o| (o.status, o.body)))),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert!(failures.lock().expect("lock").is_empty(), "{:?}", failures.lock().expect("lock"));
    let total = clients * requests * per_request;
    let records = wait_topic(&c.kafka, &c.topic, total, Duration::from_secs(60));
    assert_eq!(records.len(), total, "every acknowledged event exactly once");
    let ids: HashSet<&str> = records.iter().filter_map(|r| r.value["messageId"].as_str()).collect();
    assert_eq!(ids.len(), total);
    let mut per_user: BTreeMap<String, (i32, Vec<i64>)> = BTreeMap::new();
    for r in &records {
        let user = r.key.clone().expect("keyed by userId");
        let entry = per_user.entry(user.clone()).or_insert((r.partition, Vec::new()));
        assert_eq!(entry.0, r.partition, "{user} is on one partition");
        entry.1.push(r.value["properties"]["seq"].as_i64().expect("seq"));
    }
    assert_eq!(per_user.len(), clients * 2);
    for (user, (_, seqs)) in per_user {
        let expected: Vec<i64> = (0..(requests * per_request / 2) as i64).collect();
        assert_eq!(seqs, expected, "{user}'s events in order");
    }
}

/// A private broker this test can pause: tansu with in-memory storage on its own port.
struct PrivateBroker {
    child: Child,
    bootstrap: String,
}

impl PrivateBroker {
    fn start(services: &Services, dir: &Path) -> Option<PrivateBroker> {
        let bin = services.vars.get("TANSU_BIN")?;
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log")).expect("log");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        let bootstrap = format!("127.0.0.1:{port}");
        wait_until(Duration::from_secs(20), "the private broker", || TcpStream::connect(&bootstrap).is_ok());
        Some(PrivateBroker { child, bootstrap })
    }

    fn signal(&self, sig: &str) {
        assert!(Command::new("kill").arg(sig).arg(self.child.id().to_string()).status().expect("kill").success());
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn broker_outage_answers_503_or_429_with_retry_after_and_loses_no_acknowledged_event() {
    let services = Services::load();
    let dir = tempfile::tempdir().expect("tmp");
    let Some(broker) = PrivateBroker::start(&services, dir.path()) else {
        panic!("TANSU_BIN is not in the services env file: run `bash scripts/services.sh start`");
    };
    let c = Collector::start(
        &broker.bootstrap,
        json!({"http.request.timeout.ms": "3000", "http.unavailable.after.ms": "1500", "http.backpressure.wait.ms": "200",
               "http.max.inflight.bytes": "262144", "http.max.request.bytes": "65536"}),
    );
    // Clients that resend until they get 200, as a tracking SDK does; they note what was
    // acknowledged and which answers they saw.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let retry_after_missing = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|client| {
            let (port, acked, statuses, missing, stop) =
                (c.http, acked.clone(), statuses.clone(), retry_after_missing.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<String> = (0..20).map(|i| format!("c{client}-{n}-{i}")).collect();
                    let batch: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"type": "track", "anonymousId": format!("a{client}"), "event": "Beat", "messageId": id,
                                         "properties": {"pad": "p".repeat(400)}}))
                        .collect();
                    let body = json!({"batch": batch}).to_string();
                    loop {
                        let reply = request(port, "POST", "/v1/batch", &[], body.as_bytes());
                        let status = reply.as_ref().map_or(0, |r| r.status);
                        *statuses.lock().expect("lock").entry(status).or_default() += 1;
                        match reply {
                            Some(r) if r.status == 200 => {
                                acked.lock().expect("lock").extend(ids.iter().cloned());
                                break;
                            }
                            Some(r) => {
                                if !r.headers.contains("retry-after:") {
                                    *missing.lock().expect("lock") += 1;
                                }
                                std::thread::sleep(Duration::from_millis(300));
                            }
                            None => std::thread::sleep(Duration::from_millis(300)),
                        }
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let before = acked.lock().expect("lock").len();
    assert!(before > 0, "events were acknowledged before the outage");
    broker.signal("-STOP");
    // While the broker is frozen: answers are 503 (or 429 at the in-flight bound), quickly, with
    // Retry-After; the collector's /health says DOWN.
    std::thread::sleep(Duration::from_secs(4));
    let started = Instant::now();
    let probe =
        request(c.http, "POST", "/v1/track", &[], json!({"userId": "p", "event": "Probe"}).to_string().as_bytes())
            .expect("answer during the outage");
    assert!(matches!(probe.status, 503 | 429), "{} {}", probe.status, probe.body);
    assert!(probe.headers.contains("retry-after:"), "{}", probe.headers);
    assert!(started.elapsed() < Duration::from_millis(3500), "answered within the request timeout");
    assert_eq!(request(c.http, "GET", "/health", &[], b"").map(|r| r.status), Some(503));
    std::thread::sleep(Duration::from_secs(4));
    broker.signal("-CONT");
    // Back: requests are accepted again.
    let resumed_at = acked.lock().expect("lock").len();
    wait_until(Duration::from_secs(60), "acknowledgements after the broker came back", || {
        acked.lock().expect("lock").len() > resumed_at + 200
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in clients {
        t.join().expect("client");
    }
    let statuses = statuses.lock().expect("lock").clone();
    assert!(statuses.get(&503).copied().unwrap_or(0) + statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert_eq!(*retry_after_missing.lock().expect("lock"), 0, "every refusal carries Retry-After: {statuses:?}");
    let acked = acked.lock().expect("lock").clone();
    let records = wait_topic(&c.kafka, &c.topic, acked.len(), Duration::from_secs(60));
    let written: HashSet<String> =
        records.iter().filter_map(|r| r.value["messageId"].as_str().map(String::from)).collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !written.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "outage: {} events acknowledged, {} records in Kafka ({} resends after a 503 duplicated), answers {statuses:?}",
        acked.len(),
        records.len(),
        records.len() - written.len()
    );
}

#[test]
fn the_in_flight_bound_answers_429_and_memory_stays_under_it() {
    let services = Services::load();
    let dir = tempfile::tempdir().expect("tmp");
    let broker = PrivateBroker::start(&services, dir.path()).expect("TANSU_BIN in the services env file");
    let bound = 262_144;
    let c = Collector::start(
        &broker.bootstrap,
        json!({"http.request.timeout.ms": "30000", "http.unavailable.after.ms": "60000", "http.backpressure.wait.ms": "200",
               "http.max.inflight.bytes": bound.to_string(), "http.max.request.bytes": "65536"}),
    );
    broker.signal("-STOP");
    // Requests that cannot be acknowledged hold their bytes; the ones past the bound get 429.
    let replies = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..12)
        .map(|client| {
            let (port, replies) = (c.http, replies.clone());
            std::thread::spawn(move || {
                let batch: Vec<Value> = (0..20)
                    .map(|i| json!({"type": "track", "userId": format!("u{client}"), "event": "Big", "messageId": format!("{client}-{i}"),
                                     "properties": {"pad": "p".repeat(600)}}))
                    .collect();
                let reply = request(port, "POST", "/v1/batch", &[], json!({"batch": batch}).to_string().as_bytes());
                replies.lock().expect("lock").push((client, reply.map(|r| (r.status, r.headers.contains("retry-after:")))));
            })
        })
        .collect();
    let inflight = |c: &Collector| -> Option<u64> {
        let m = request(c.http, "GET", "/metrics", &[], b"")?;
        m.body.lines().find(|l| l.starts_with("sluice_tracking_inflight_bytes{"))?.rsplit(' ').next()?.parse().ok()
    };
    wait_until(Duration::from_secs(20), "some requests refused with 429", || {
        replies.lock().expect("lock").iter().any(|(_, r)| matches!(r, Some((429, true))))
    });
    let held = inflight(&c).expect("metrics");
    assert!(held > 0 && held <= bound, "in-flight bytes {held} within the bound {bound}");
    broker.signal("-CONT");
    for s in senders {
        s.join().expect("sender");
    }
    let replies = replies.lock().expect("lock").clone();
    let accepted: Vec<usize> = replies.iter().filter(|(_, r)| matches!(r, Some((200, _)))).map(|(c, _)| *c).collect();
    let refused = replies.iter().filter(|(_, r)| matches!(r, Some((429, true)))).count();
    assert_eq!(accepted.len() + refused, 12, "only 200 or 429 with Retry-After: {replies:?}");
    assert!(!accepted.is_empty() && refused > 0, "{replies:?}");
    let records = wait_topic(&c.kafka, &c.topic, accepted.len() * 20, Duration::from_secs(30));
    let users: HashSet<String> = records.iter().filter_map(|r| r.key.clone()).collect();
    let expected: HashSet<String> = accepted.iter().map(|c| format!("u{c}")).collect();
    assert_eq!(users, expected, "exactly the accepted requests' events were written");
    assert_eq!(records.len(), accepted.len() * 20);
    assert_eq!(inflight(&c), Some(0), "everything acknowledged releases its bytes");
}

#[test]
fn segment_schema_values_carry_a_connect_schema_and_any_origin_is_allowed_without_credentials() {
    let services = Services::load();
    let c = Collector::start(
        &services.kafka(),
        json!({"value.schema": "segment", "value.converter.schemas.enable": "true"}),
    );
    let body = json!({"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}, "messageId": "m-1", "extraField": 7}).to_string();
    let r = c.curl(&["-X", "POST", "-H", "Origin: https://anywhere.example", "--data-binary", &body, "/v1/track"]);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some("*"), "the default * answers *");
    assert!(r.header("access-control-allow-credentials").is_none());
    let records = wait_topic(&c.kafka, &c.topic, 1, Duration::from_secs(20));
    assert_eq!(records.len(), 1);
    let v = &records[0].value;
    assert_eq!(v["schema"]["type"], "struct");
    assert_eq!(v["schema"]["name"], "sluice.tracking.Event");
    let fields: Vec<&str> =
        v["schema"]["fields"].as_array().expect("fields").iter().filter_map(|f| f["field"].as_str()).collect();
    assert!(fields.starts_with(&["type", "messageId", "userId", "anonymousId", "event"]), "{fields:?}");
    let p = &v["payload"];
    assert_eq!(
        (p["type"].as_str(), p["userId"].as_str(), p["event"].as_str()),
        (Some("track"), Some("u1"), Some("Signed Up"))
    );
    assert_eq!(p["anonymousId"], Value::Null);
    assert_eq!(
        serde_json::from_str::<Value>(p["properties"].as_str().expect("JSON text")).ok(),
        Some(json!({"plan": "pro"}))
    );
    assert_eq!(
        serde_json::from_str::<Value>(p["extra"].as_str().expect("JSON text")).ok(),
        Some(json!({"extraField": 7}))
    );
}
