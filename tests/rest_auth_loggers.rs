//! REST authentication (`rest.auth.*`) and `/admin/loggers` on a real standalone worker.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One request with an optional `Authorization` header: (status, lower-cased head, JSON body).
fn call(port: u16, method: &str, path: &str, auth: Option<&str>, body: Option<&str>) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let body = body.unwrap_or("");
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let (head, rest) = text.split_once("\r\n\r\n").expect("head");
    (status, head.to_ascii_lowercase(), serde_json::from_str(rest).unwrap_or(Value::Null))
}

const ADMIN: &str = "Basic YWRtaW46czNjcmV0"; // admin:s3cret

#[test]
fn basic_auth_guards_every_route_but_health_and_log_levels_change_at_runtime() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "rest.auth.type=basic\nrest.auth.basic.users=admin:s3cret,ops:other",
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    let log = dir.path().join("sluice.log");
    let log_file = std::fs::File::create(&log).expect("log");
    cmd.arg("standalone")
        .arg(&worker)
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(std::process::Stdio::null())
        .stderr(log_file);
    let mut child = cmd.spawn().expect("spawn");
    wait_until(Duration::from_secs(30), "the REST API", || {
        http(port, "GET", "/health", None).is_some_and(|r| r.0 == 200)
    });

    // Without or with wrong credentials: 401 in Kafka Connect's error shape, with a challenge.
    for auth in [None, Some("Basic YWRtaW46d3Jvbmc="), Some("Bearer s3cret")] {
        for path in ["/", "/connectors", "/connectors/x/status", "/no/such/route"] {
            let (status, head, body) = call(port, "GET", path, auth, None);
            assert_eq!(status, 401, "{path} with {auth:?}");
            assert_eq!(body["error_code"], 401);
            assert!(head.contains("www-authenticate: basic realm=\"sluice\""), "{head}");
        }
    }
    let (status, _, _) = call(port, "POST", "/connectors", None, Some("{}"));
    assert_eq!(status, 401, "writes too");
    assert_eq!(call(port, "GET", "/", Some(ADMIN), None).0, 200);
    assert_eq!(call(port, "GET", "/connectors", Some("Basic b3BzOm90aGVy"), None).0, 200, "ops:other");
    assert_eq!(call(port, "GET", "/health", None, None).0, 200, "health stays open");

    // Loggers: the start-up levels, then a change that takes effect at once.
    let (status, _, all) = call(port, "GET", "/admin/loggers", Some(ADMIN), None);
    assert_eq!(status, 200);
    assert_eq!(all["root"], json!({"level": "INFO", "last_modified": null}), "{all}");
    assert_eq!(all["librdkafka"]["level"], "WARN");
    let requests_logged =
        |log: &std::path::Path| std::fs::read_to_string(log).unwrap_or_default().matches("sluice::rest").count();
    call(port, "GET", "/connectors", Some(ADMIN), None);
    wait_until(Duration::from_secs(5), "request log lines", || requests_logged(&log) > 0);
    let (status, _, changed) =
        call(port, "PUT", "/admin/loggers/sluice::rest", Some(ADMIN), Some(r#"{"level":"WARN"}"#));
    assert_eq!((status, changed.clone()), (200, json!(["sluice::rest"])), "{changed}");
    let (_, _, one) = call(port, "GET", "/admin/loggers/sluice::rest", Some(ADMIN), None);
    assert_eq!(one["level"], "WARN");
    assert!(one["last_modified"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "{one}");
    std::thread::sleep(Duration::from_millis(300));
    let before = requests_logged(&log);
    for _ in 0..5 {
        call(port, "GET", "/connectors", Some(ADMIN), None);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(requests_logged(&log), before, "INFO request lines are off at WARN");
    assert_eq!(call(port, "PUT", "/admin/loggers/sluice::rest", Some(ADMIN), Some(r#"{"level":"info"}"#)).0, 200);
    call(port, "GET", "/connectors", Some(ADMIN), None);
    wait_until(Duration::from_secs(5), "request lines again", || requests_logged(&log) > before);

    // Errors as Kafka Connect's.
    let (status, _, body) = call(port, "PUT", "/admin/loggers/root", Some(ADMIN), Some(r#"{"level":"LOUD"}"#));
    assert_eq!((status, body["message"].clone()), (404, json!("invalid log level 'LOUD'.")));
    let (status, _, body) = call(port, "PUT", "/admin/loggers/root", Some(ADMIN), Some("{}"));
    assert_eq!(
        (status, body["message"].clone()),
        (400, json!("Desired 'level' parameter was not specified in request."))
    );
    assert_eq!(call(port, "GET", "/admin/loggers/no.such.logger", Some(ADMIN), None).0, 404);
    // scope=cluster on a standalone worker: the cluster is this worker; 204 as Kafka Connect.
    let (status, _, body) =
        call(port, "PUT", "/admin/loggers/sluice_runtime?scope=cluster", Some(ADMIN), Some(r#"{"level":"DEBUG"}"#));
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(call(port, "GET", "/admin/loggers/sluice_runtime", Some(ADMIN), None).2["level"], "DEBUG");
    assert_eq!(call(port, "PUT", "/admin/loggers/root", None, Some(r#"{"level":"DEBUG"}"#)).0, 401);

    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_basic_auth_setting_without_users_is_refused_at_start() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let worker = worker_properties(dir.path(), &kafka, free_port(), "rest.auth.type=basic");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice")).arg("standalone").arg(&worker).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rest.auth.basic.users"), "{err}");
}
