//! The Redis sink against the real Redis server: hashes replaced whole, tombstones delete, offsets
//! kept in Redis in the same MULTI/EXEC as the batch so a worker killed before committing
//! to Kafka does not apply a batch twice, a batch built on offsets Redis no longer holds is refused,
//! and bad credentials fail the task with the reason.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn redis(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-u").arg(url).args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn hgetall(url: &str, key: &str) -> std::collections::BTreeMap<String, String> {
    let text = redis(url, &["HGETALL", key]);
    let lines: Vec<&str> = text.lines().collect();
    lines.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].to_string(), c[1].to_string())).collect()
}

/// The `id` field of every entry of a stream, in stream order.
fn stream_ids(url: &str, stream: &str) -> Vec<i64> {
    let entries = redis(url, &["XRANGE", stream, "-", "+"]);
    let lines: Vec<&str> = entries.lines().collect();
    lines.windows(2).filter(|w| w[0] == "id").filter_map(|w| w[1].parse().ok()).collect()
}

fn order(id: i64, status: Option<&str>, total: f64) -> String {
    order_record(id, status, total)
}

#[test]
fn hashes_tombstones_and_no_reapply_after_kill_9() {
    let services = Services::load();
    let kafka = services.kafka();
    let url = services.vars.get("REDIS_URL").cloned().expect("REDIS_URL: run `bash scripts/services.sh start`");
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    // Kafka commits are rare here, so after the kill only Redis knows how far the sink got.
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=600000",
    );
    let topic = unique("orders");
    create_topic(&kafka, &topic);
    let space = unique("order");
    let connector = dir.path().join("redis.json");
    std::fs::write(
        &connector,
        json!({"name": "cache", "config": {"connector.class": "com.redis.kafka.connect.RedisSinkConnector",
            "topics": topic, "redis.uri": url, "redis.type": "HASH", "redis.keyspace": space}})
        .to_string(),
    )
    .expect("write");
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    produce(&kafka, &topic, &[("1", Some(order(1, Some("new"), 10.5))), ("2", Some(order(2, Some("new"), 20.0)))]);
    let k1 = format!("{space}:1");
    let k2 = format!("{space}:2");
    wait_until(Duration::from_secs(60), "both orders in redis", || redis(&url, &["EXISTS", &k2]) == "1");
    assert_eq!(
        hgetall(&url, &k1),
        [("id", "1"), ("status", "new"), ("total", "10.5")].map(|(a, b)| (a.to_string(), b.to_string())).into()
    );
    // An update that nulls a column removes the field; a tombstone deletes the key.
    produce(&kafka, &topic, &[("1", Some(order(1, None, 12.0))), ("2", None)]);
    wait_until(Duration::from_secs(30), "the tombstone applied", || redis(&url, &["EXISTS", &k2]) == "0");
    assert_eq!(
        hgetall(&url, &k1),
        [("id", "1"), ("total", "12.0")].map(|(a, b)| (a.to_string(), b.to_string())).into()
    );
    let stored: Value =
        serde_json::from_str(&redis(&url, &["GET", &format!("com.redis.kafka.connect.sink.offset.cache.{topic}.0")]))
            .expect("offset json");
    assert_eq!(stored, json!({"topic": topic, "partition": 0, "offset": 4}));

    // kill -9 before any Kafka commit; a marker written behind the sink's back would be wiped by
    // a replay (HASH writes replace the key). It must survive the restart.
    sluice.kill9();
    redis(&url, &["HSET", &k1, "marker", "kept"]);
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice-2.log"));
    wait_until(Duration::from_secs(30), "the sink running again", || running_tasks(sluice.port, "cache", 1).is_some());
    produce(&kafka, &topic, &[("3", Some(order(3, Some("paid"), 5.0)))]);
    let k3 = format!("{space}:3");
    wait_until(Duration::from_secs(60), "a new record after the restart", || redis(&url, &["EXISTS", &k3]) == "1");
    assert_eq!(hgetall(&url, &k1).get("marker").map(String::as_str), Some("kept"), "no batch was applied twice");
    assert!(sluice.log_text().contains("resumes from the offset stored in redis"), "{}", sluice.log_text());
    assert_eq!(redis(&url, &["EXISTS", &k2]), "0", "the deleted order stays deleted");
}

#[test]
fn bad_credentials_fail_the_task_with_the_reason() {
    let services = Services::load();
    let kafka = services.kafka();
    let url = services.vars.get("REDIS_URL").cloned().expect("REDIS_URL");
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let bad_url = url.replacen("redis://", "redis://nobody:wrong@", 1);
    let body = json!({"name": "c", "config": {"connector.class": "redis", "topics": unique("t"), "redis.uri": bad_url, "redis.type": "HASH"}});
    let (code, reply) = http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
    assert_eq!(code, 201, "{reply}");
    assert!(!reply.contains("wrong"), "the password is hidden: {reply}");
    wait_until(Duration::from_secs(30), "the task FAILED", || {
        connector_status(sluice.port, "c")["tasks"][0]["state"] == "FAILED"
    });
    let trace = connector_status(sluice.port, "c")["tasks"][0]["trace"].as_str().unwrap_or("").to_string();
    assert!(trace.contains("authentication") && trace.contains("redis.uri"), "{trace}");
    // A user that may write but not WATCH: the first batch is refused; the task FAILS with the
    // hint (and does not hang on the transaction the refusal left open).
    let user = unique("nowatch").replace('-', "_");
    assert_eq!(redis(&url, &["ACL", "SETUSER", &user, "on", ">pw", "~*", "+@all", "-watch"]), "OK");
    let limited = url.replacen("redis://", &format!("redis://{user}:pw@"), 1);
    let topic = unique("nowatch");
    create_topic(&kafka, &topic);
    let body = json!({"name": "w", "config": {"connector.class": "redis", "topics": topic, "redis.uri": limited, "redis.type": "HASH"}});
    let (code, reply) = http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
    assert_eq!(code, 201, "{reply}");
    produce(&kafka, &topic, &[("1", Some(order(1, Some("new"), 1.0)))]);
    wait_until(Duration::from_secs(60), "the task without WATCH FAILED", || {
        connector_status(sluice.port, "w")["tasks"][0]["state"] == "FAILED"
    });
    let trace = connector_status(sluice.port, "w")["tasks"][0]["trace"].as_str().unwrap_or("").to_string();
    assert!(trace.contains("NOPERM") && trace.contains("needs WATCH"), "{trace}");
    redis(&url, &["ACL", "DELUSER", &user]);
    let body = json!({"name": "d", "config": {"connector.class": "redis", "topics": "t", "redis.type": "TIMESERIES"}});
    let (code, reply) = http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
    assert_eq!(code, 400);
    assert!(reply.contains("redis.type") && reply.contains("not supported yet"), "{reply}");
}

/// One standalone worker running a STREAM sink (JSON values) on a fresh topic.
struct StreamSink {
    kafka: String,
    url: String,
    topic: String,
    stream: String,
    connector: String,
    port: u16,
    sluice: Sluice,
    _dir: tempfile::TempDir,
}

/// Starts a [`StreamSink`] named `<prefix>-…`; `extra` adds connector keys.
fn stream_sink(prefix: &str, extra: Value) -> StreamSink {
    let services = Services::load();
    let kafka = services.kafka();
    let url = services.vars.get("REDIS_URL").cloned().expect("REDIS_URL");
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let topic = unique("events");
    create_topic(&kafka, &topic);
    let stream = unique("stream");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let connector = unique(prefix);
    let mut config = json!({"connector.class": "redis", "topics": topic, "redis.uri": url,
        "redis.type": "STREAM", "redis.keyspace": stream});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let body = json!({"name": connector, "config": config});
    let (code, reply) = http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
    assert_eq!(code, 201, "{reply}");
    StreamSink { kafka, url, topic, stream, connector, port, sluice, _dir: dir }
}

/// Connections cut under a running sink (CLIENT KILL), some while a batch waits to run
/// (CLIENT PAUSE WRITE), with the worker's batches split into transactions of 7 records
/// (`redis.batch.size`): every batch is applied once. A STREAM shows it: a lost batch would miss
/// its entries, a batch applied twice would add them twice.
#[test]
fn lost_connections_neither_lose_nor_repeat_a_batch() {
    let StreamSink { kafka, url, topic, stream, connector, port, sluice, _dir } =
        stream_sink("cut", json!({"redis.batch.size": "7"}));
    let name = format!("sluice:{connector}:0");
    let mut total = 0;
    for round in 0..20 {
        let records: Vec<(String, Option<String>)> =
            (0..50).map(|i| (format!("{round}-{i}"), Some(order(round * 50 + i, Some("new"), 1.0)))).collect();
        // Writes held (the batch's EXEC waits), the batch is sent, then the sink's connection is
        // cut: that batch never ran and must be read again from Kafka and written. Other rounds cut
        // an idle connection.
        if round % 2 == 0 {
            redis(&url, &["CLIENT", "PAUSE", "1500", "WRITE"]);
        }
        produce(&kafka, &topic, &records);
        total += 50;
        std::thread::sleep(Duration::from_millis(400));
        // Only this test's sink connection (the other tests of this file run alongside).
        for line in redis(&url, &["CLIENT", "LIST"]).lines().filter(|l| l.contains(&format!("name={name} "))) {
            if let Some(id) = line.split(' ').find_map(|kv| kv.strip_prefix("id=")) {
                redis(&url, &["CLIENT", "KILL", "ID", id]);
            }
        }
        redis(&url, &["CLIENT", "UNPAUSE"]);
    }
    let want = total.to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while redis(&url, &["XLEN", &stream]) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {want} entries after 90 s; status {}; log:\n{}",
            redis(&url, &["XLEN", &stream]),
            connector_status(port, &connector),
            sluice.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(redis(&url, &["XLEN", &stream]), want, "no batch applied twice");
    // Every record once: the ids in the entries are exactly 0..total.
    let mut ids = stream_ids(&url, &stream);
    ids.sort_unstable();
    assert_eq!(ids, (0..total as i64).collect::<Vec<_>>(), "each record exactly once");
    assert_eq!(connector_status(port, &connector)["tasks"][0]["state"], "RUNNING", "{}", sluice.log_text());
    assert!(sluice.log_text().contains("redis connection lost"), "the cut connections were noticed");
}

/// Another writer moved the partition's stored offset on (as a task that took the partition over
/// in a rebalance, while this one's batch was still on its way): the sink's next batch, built on
/// the offset it knew, is refused whole, and the sink goes on from the offset Redis holds. A STREAM
/// shows it: records 0..99, then 150..199; the 50 the other writer claimed are not written again
/// by this sink, and nothing is written twice.
#[test]
fn a_batch_built_on_an_offset_redis_no_longer_holds_is_refused() {
    let StreamSink { kafka, url, topic, stream, connector, port, sluice, _dir } = stream_sink("stale", json!({}));
    let batch = |from: i64| -> Vec<(String, Option<String>)> {
        (from..from + 50).map(|i| (i.to_string(), Some(order(i, Some("new"), 1.0)))).collect()
    };
    produce(&kafka, &topic, &batch(0));
    produce(&kafka, &topic, &batch(50));
    wait_until(Duration::from_secs(60), "100 entries", || redis(&url, &["XLEN", &stream]) == "100");
    let key = format!("com.redis.kafka.connect.sink.offset.{connector}.{topic}.0");
    let stored: Value = serde_json::from_str(&redis(&url, &["GET", &key])).expect("offset json");
    assert_eq!(stored["offset"], 100);
    // The other writer: it applied 100..149 and stored 150.
    let claimed = json!({"topic": topic, "partition": 0, "offset": 150}).to_string();
    assert_eq!(redis(&url, &["SET", &key, &claimed]), "OK");
    produce(&kafka, &topic, &batch(100));
    produce(&kafka, &topic, &batch(150));
    wait_until(Duration::from_secs(60), "150 entries", || redis(&url, &["XLEN", &stream]) == "150");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(redis(&url, &["XLEN", &stream]), "150", "nothing more: {}", sluice.log_text());
    let ids = stream_ids(&url, &stream);
    assert_eq!(
        ids,
        (0..100).chain(150..200).collect::<Vec<_>>(),
        "in order, each once, 100..149 left to the other writer"
    );
    let stored: Value = serde_json::from_str(&redis(&url, &["GET", &key])).expect("offset json");
    assert_eq!(stored["offset"], 200);
    let log = sluice.log_text();
    assert!(log.contains("the batch is discarded"), "{log}");
    assert_eq!(connector_status(port, &connector)["tasks"][0]["state"], "RUNNING", "{log}");
}

/// LIST, SET and ZSET: record keys become members of the keyspace's collection (the ZSET score is
/// the value), a tombstone removes the member. JSON without the RedisJSON module fails with why.
#[test]
fn collections_and_json_without_the_module() {
    let services = Services::load();
    let kafka = services.kafka();
    let url = services.vars.get("REDIS_URL").cloned().expect("REDIS_URL");
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let topic = unique("scores");
    create_topic(&kafka, &topic);
    produce(
        &kafka,
        &topic,
        &[("a", Some("3".into())), ("b", Some("1.5".into())), ("c", Some("2".into())), ("b", None)],
    );
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let space = unique("coll");
    for kind in ["LIST", "SET", "ZSET", "JSON"] {
        let body = json!({"name": kind, "config": {"connector.class": "redis", "topics": topic, "redis.uri": url,
            "redis.type": kind, "redis.keyspace": format!("{space}-{kind}"),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}});
        let (code, reply) = http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
        assert_eq!(code, 201, "{reply}");
    }
    let key = |kind: &str| format!("{space}-{kind}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(redis(&url, &["LRANGE", &key("LIST"), "0", "-1"]) == "a\nc"
        && redis(&url, &["SCARD", &key("SET")]) == "2"
        && redis(&url, &["ZCARD", &key("ZSET")]) == "2")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "collections not as expected after 60 s: {} / {} / {}",
            connector_status(port, "LIST"),
            connector_status(port, "SET"),
            connector_status(port, "ZSET")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(redis(&url, &["SISMEMBER", &key("SET"), "b"]), "0");
    assert_eq!(redis(&url, &["ZRANGE", &key("ZSET"), "0", "-1", "WITHSCORES"]), "c\n2\na\n3");
    if redis(&url, &["COMMAND", "INFO", "JSON.SET"]).is_empty() {
        wait_until(Duration::from_secs(30), "the JSON task FAILED", || {
            connector_status(sluice.port, "JSON")["tasks"][0]["state"] == "FAILED"
        });
        let trace = connector_status(sluice.port, "JSON")["tasks"][0]["trace"].as_str().unwrap_or("").to_string();
        assert!(trace.contains("RedisJSON"), "{trace}");
    }
}

/// A restart with a backlog, the offsets in Redis ahead of Kafka's commit: the records the worker
/// fetched before seeking to the stored offset are not put again after it (a STREAM would show
/// them twice).
#[test]
fn a_restart_with_a_backlog_puts_nothing_twice() {
    let services = Services::load();
    let kafka = services.kafka();
    let url = services.vars.get("REDIS_URL").cloned().expect("REDIS_URL");
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=600000",
    );
    let topic = unique("backlog");
    create_topic(&kafka, &topic);
    let stream = unique("backlog-stream");
    let connector = dir.path().join("s.json");
    std::fs::write(
        &connector,
        json!({"name": "s", "config": {"connector.class": "redis", "topics": topic, "redis.uri": url,
            "redis.type": "STREAM", "redis.keyspace": stream}})
        .to_string(),
    )
    .expect("write");
    let batch = |from: i64, n: i64| -> Vec<(String, Option<String>)> {
        (from..from + n).map(|i| (i.to_string(), Some(order(i, Some("new"), 1.0)))).collect()
    };
    let send = |records: &[(String, Option<String>)]| {
        produce(&kafka, &topic, records);
    };
    let mut sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    send(&batch(0, 100));
    wait_until(Duration::from_secs(60), "100 entries", || redis(&url, &["XLEN", &stream]) == "100");
    sluice.kill9();
    send(&batch(100, 50));
    let _sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice-2.log"));
    wait_until(Duration::from_secs(60), "150 entries", || redis(&url, &["XLEN", &stream]) == "150");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(redis(&url, &["XLEN", &stream]), "150", "nothing put twice after the seek");
}

/// A private Redis (append-only file on) restarted under a running HASH sink with records arriving
/// while it is down: the task rides it out and every key ends with its last value.
#[test]
fn a_redis_restart_is_ridden_out() {
    let services = Services::load();
    let kafka = services.kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let redis_port = free_port();
    let start_redis = || {
        let child = Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/services.sh installs it)");
        let url = format!("redis://127.0.0.1:{redis_port}");
        wait_until(Duration::from_secs(30), "private redis up", || redis(&url, &["PING"]) == "PONG");
        child
    };
    let mut server = start_redis();
    let url = format!("redis://127.0.0.1:{redis_port}");
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let topic = unique("restart");
    create_topic(&kafka, &topic);
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let body = json!({"name": "r", "config": {"connector.class": "redis", "topics": topic, "redis.uri": url,
        "redis.type": "HASH", "redis.keyspace": "o"}});
    let (code, reply) = http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
    assert_eq!(code, 201, "{reply}");
    let send = |status: &str| {
        let records: Vec<(String, Option<String>)> =
            (0..50).map(|i| (i.to_string(), Some(order(i, Some(status), 1.0)))).collect();
        produce(&kafka, &topic, &records);
    };
    send("new");
    wait_until(Duration::from_secs(60), "50 hashes", || redis(&url, &["HGET", "o:49", "status"]) == "new");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    send("paid");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(connector_status(port, "r")["tasks"][0]["state"], "RUNNING", "{}", sluice.log_text());
    server = start_redis();
    wait_until(Duration::from_secs(90), "every hash updated after the restart", || {
        (0..50).all(|i| redis(&url, &["HGET", &format!("o:{i}"), "status"]) == "paid")
    });
    assert_eq!(connector_status(port, "r")["tasks"][0]["state"], "RUNNING");
    let _ = server.kill();
    let _ = server.wait();
}

/// `rediss://`: a Redis server of its own with TLS only (`--port 0 --tls-port`), the sink trusting
/// a private CA (`redis.ssl.truststore.location`); a sink that trusts only the system's CAs fails.
#[test]
fn rediss_with_a_private_ca() {
    let services = Services::load();
    let kafka = services.kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let (_, ca) = tls_certificates(dir.path());
    let tls_port = free_port();
    let path = |f: &str| dir.path().join(f).display().to_string();
    let _server = KillOnDrop(
        Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &tls_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--tls-cert-file", &path("worker.crt"), "--tls-key-file", &path("worker.key")])
            // Clients must present a certificate (redis-server's default, made explicit).
            .args(["--tls-ca-cert-file", &path("ca.pem"), "--tls-auth-clients", "yes"])
            .args(["--save", "", "--appendonly", "no", "--dir", &path("")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["--tls", "--cacert", &path("ca.pem"), "--cert", &path("worker.crt"), "--key", &path("worker.key")])
            .args(["-h", "127.0.0.1", "-p", &tls_port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    wait_until(Duration::from_secs(10), "redis over TLS", || cli(&["PING"]) == "PONG");
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let topic = unique("tls-orders");
    create_topic(&kafka, &topic);
    let space = unique("order");
    let uri = format!("rediss://127.0.0.1:{tls_port}");
    let config = |name: &str, extra: Value| {
        let mut c = json!({"connector.class": "com.redis.kafka.connect.RedisSinkConnector", "topics": topic,
            "redis.uri": uri, "redis.type": "HASH", "redis.keyspace": format!("{space}-{name}")});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        json!({"name": name, "config": c}).to_string()
    };
    // Redis Inc's keys: the CA, the client key and its certificate in separate files.
    let trusted = config(
        "trusted",
        json!({"redis.cacert": ca.display().to_string(), "redis.key.file": path("worker.key"), "redis.key.cert": path("worker.crt")}),
    );
    assert_eq!(http(port, "POST", "/connectors", Some(&trusted)).map(|r| r.0), Some(201));
    assert_eq!(http(port, "POST", "/connectors", Some(&config("untrusted", json!({})))).map(|r| r.0), Some(201));
    // Trusts the server but has no client certificate: the server turns it away.
    let anonymous = config("anonymous", json!({"redis.ssl.truststore.location": ca.display().to_string()}));
    assert_eq!(http(port, "POST", "/connectors", Some(&anonymous)).map(|r| r.0), Some(201));
    // An encrypted key is refused at validation, naming the key and the fix.
    let (code, reply) = http(
        port,
        "POST",
        "/connectors",
        Some(&config("encrypted", json!({"redis.key.file": path("worker.key"), "redis.key.password": "secret"}))),
    )
    .expect("reply");
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("redis.key.password") && reply.contains("openssl pkey"), "{reply}");
    produce(&kafka, &topic, &[("1", Some(order(1, Some("new"), 10.5)))]);
    let key = format!("{space}-trusted:1");
    wait_until(Duration::from_secs(60), "the order in redis over TLS", || cli(&["EXISTS", &key]) == "1");
    assert_eq!(cli(&["HGET", &key, "status"]), "new");
    // The untrusting sink's task fails on its first connection, with the certificate reason.
    wait_until(Duration::from_secs(30), "the untrusting sink's certificate error", || {
        sluice
            .log_text()
            .lines()
            .any(|l| l.contains("untrusted-0") && (l.contains("certificate") || l.contains("UnknownIssuer")))
    });
    assert_eq!(cli(&["EXISTS", &format!("{space}-untrusted:1")]), "0", "nothing written without a trusted certificate");
    wait_until(Duration::from_secs(30), "the anonymous sink's task FAILED, saying a certificate is required", || {
        let status = connector_status(port, "anonymous");
        status["tasks"][0]["state"] == "FAILED"
            && status["tasks"][0]["trace"].as_str().is_some_and(|t| t.contains("redis.key.file"))
    });
    assert_eq!(cli(&["EXISTS", &format!("{space}-anonymous:1")]), "0", "nothing written without a client certificate");
    // A backlog large enough that one batch (MULTI, 2 commands a record, EXEC) is
    // megabytes: over TLS the tail must be flushed, or the sink waits for replies for ever.
    let backlog: Vec<(String, Option<String>)> =
        (100..20_100).map(|i| (i.to_string(), Some(order(i, Some("new"), 1.0)))).collect();
    produce(&kafka, &topic, &backlog);
    let last = format!("{space}-trusted:20099");
    wait_until(Duration::from_secs(60), "a 20,000-record backlog over TLS", || cli(&["EXISTS", &last]) == "1");
    // The URI is a secret: never in REST output.
    let (_, shown) = http(port, "GET", "/connectors/trusted/config", None).expect("config");
    assert!(!shown.contains(&uri), "{shown}");
    drop(sluice);
}
