//! The REST contract, field by field: every endpoint of `../shared/reference/kafka-connect-reference.md`
//! §1.1 on a real standalone worker, its status code, and its body checked against the shape of
//! Kafka Connect's entity (`rest/entities/*.java`): exactly the keys Kafka Connect writes (optional
//! ones marked `?`), each of the JSON type Kafka Connect writes, recursively. Error bodies are
//! `{"error_code","message"}` with `error_code` equal to the status.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Checks `value` against `shape`; collects every mismatch with its JSON path.
///
/// Shapes: `"string"`, `"integer"`, `"boolean"`, `"string|null"`, `"integer|null"`, `"object"`
/// (any object), `"array"` (any array); `[s]`: a non-empty array whose elements are all `s`;
/// `{"*": s}`: a non-empty map whose values are all `s`; any other object: exactly its keys, a
/// key written `?k` may be absent.
fn conform(path: &str, shape: &Value, value: &Value, errors: &mut Vec<String>) {
    match shape {
        Value::String(kinds) => {
            let ok = kinds.split('|').any(|k| match k {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                other => panic!("unknown shape {other}"),
            });
            if !ok {
                errors.push(format!("{path}: expected {kinds}, got {value}"));
            }
        }
        Value::Array(element) => match value.as_array() {
            Some(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    conform(&format!("{path}[{i}]"), &element[0], item, errors);
                }
            }
            _ => errors.push(format!("{path}: expected a non-empty array, got {value}")),
        },
        Value::Object(fields) => {
            let Some(object) = value.as_object() else {
                errors.push(format!("{path}: expected an object, got {value}"));
                return;
            };
            if let Some(each) = fields.get("*") {
                if object.is_empty() {
                    errors.push(format!("{path}: expected a non-empty map"));
                }
                for (k, v) in object {
                    conform(&format!("{path}.{k}"), each, v, errors);
                }
                return;
            }
            for (key, field_shape) in fields {
                let (name, optional) = key.strip_prefix('?').map_or((key.as_str(), false), |k| (k, true));
                match object.get(name) {
                    Some(v) => conform(&format!("{path}.{name}"), field_shape, v, errors),
                    None if optional => {}
                    None => errors.push(format!("{path}: missing key {name}")),
                }
            }
            for key in object.keys() {
                if !fields.contains_key(key) && !fields.contains_key(&format!("?{key}")) {
                    errors.push(format!("{path}: unexpected key {key}"));
                }
            }
        }
        other => panic!("bad shape {other}"),
    }
}

/// Kafka Connect's entities, from `connect/runtime/.../rest/entities`.
struct Shapes;

impl Shapes {
    fn server_info() -> Value {
        json!({"version": "string", "commit": "string", "kafka_cluster_id": "string|null"})
    }
    fn connector_info() -> Value {
        json!({"name": "string", "config": {"*": "string"}, "tasks": "array", "type": "string"})
    }
    fn connector_info_with_tasks() -> Value {
        json!({"name": "string", "config": {"*": "string"}, "tasks": [{"connector": "string", "task": "integer"}], "type": "string"})
    }
    fn connector_state() -> Value {
        json!({"state": "string", "worker_id": "string", "?trace": "string"})
    }
    fn task_state() -> Value {
        json!({"id": "integer", "state": "string", "worker_id": "string", "?trace": "string"})
    }
    fn status() -> Value {
        json!({"name": "string", "connector": Shapes::connector_state(), "tasks": [Shapes::task_state()], "type": "string"})
    }
    fn error() -> Value {
        json!({"error_code": "integer", "message": "string"})
    }
    fn config_key_info() -> Value {
        json!({
            "name": "string", "type": "string", "required": "boolean", "default_value": "string|null",
            "importance": "string", "documentation": "string|null", "group": "string|null", "order": "integer",
            "width": "string", "display_name": "string", "dependents": "array"
        })
    }
    fn config_infos() -> Value {
        json!({
            "name": "string", "error_count": "integer", "groups": "array",
            "configs": [{
                "definition": Shapes::config_key_info(),
                "value": {"name": "string", "value": "string|null", "recommended_values": "array", "errors": "array", "visible": "boolean"}
            }]
        })
    }
}

/// One request: (status, lower-cased head, body as JSON or `Null` when empty).
fn call(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String, Value) {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw(port, &request)
}

/// A request written as is.
fn raw(port: u16, request: &[u8]) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let rest = if head.contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_string() };
    (
        status,
        head,
        if rest.trim().is_empty() { Value::Null } else { serde_json::from_str(&rest).unwrap_or(Value::String(rest)) },
    )
}

/// Runs the checks and reports every mismatch at the end, not just the first.
struct Contract {
    port: u16,
    failures: Vec<String>,
}

impl Contract {
    /// `method path` must answer `status` with a body of `shape` (`Value::Null`: no body).
    fn expect(&mut self, method: &str, path: &str, body: Option<Value>, status: u16, shape: Value) -> Value {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let (got, _, value) = call(self.port, method, path, "application/json", bytes.as_bytes());
        self.check(&format!("{method} {path}"), got, value, status, shape)
    }

    fn check(&mut self, what: &str, got: u16, value: Value, status: u16, shape: Value) -> Value {
        if got != status {
            self.failures.push(format!("{what}: status {got}, expected {status}; body {value}"));
            return value;
        }
        let mut errors = Vec::new();
        if shape.is_null() {
            if !value.is_null() {
                errors.push(format!("expected no body, got {value}"));
            }
        } else {
            conform("$", &shape, &value, &mut errors);
        }
        if status >= 400 && value.get("error_code").and_then(Value::as_u64) != Some(u64::from(status)) {
            errors.push(format!("error_code is not {status}"));
        }
        self.failures.extend(errors.into_iter().map(|e| format!("{what}: {e}")));
        value
    }

    /// An error with Kafka Connect's message (`None`: any message).
    fn error(&mut self, method: &str, path: &str, body: Option<Value>, status: u16, message: Option<&str>) {
        let v = self.expect(method, path, body, status, Shapes::error());
        if let Some(m) = message {
            if !v["message"].as_str().is_some_and(|got| got.starts_with(m)) {
                self.failures.push(format!("{method} {path}: message {}, expected {m}", v["message"]));
            }
        }
    }
}

#[test]
fn every_endpoint_answers_with_kafka_connects_status_and_shape_standalone() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let mut sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let failures = contract(port, &kafka, dir.path());
    assert_eq!(sluice.terminate(), Some(0), "log:\n{}", sluice.log_text());
    assert!(failures.is_empty(), "{} contract failures:\n{}", failures.len(), failures.join("\n"));
}

/// The same contract through the follower of a 2-worker cluster: every change is forwarded to
/// the leader, and the answers are the same.
#[test]
fn every_endpoint_answers_with_kafka_connects_status_and_shape_on_a_follower() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let group = unique("contract-cluster");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut workers: Vec<Sluice> = ports
        .iter()
        .map(|p| {
            let props = distributed_properties(dir.path(), &kafka, &group, *p);
            Sluice::distributed(&props, *p, &dir.path().join(format!("w{p}.log")))
        })
        .collect();
    let (_, follower) = leader_and_follower(&ports);
    let failures = contract(ports[follower], &kafka, dir.path());
    let forwarded = workers[follower].log_text().matches("forwarding a connector change to the leader").count();

    // A task restart goes to the worker that runs the task: two tasks, one on each worker, both
    // restarted through the follower.
    let topic = unique("contract-restart");
    let body = json!({"name": "spread", "config": {"connector.class": "VerifiableSource", "tasks.max": "2",
                      "topic": topic, "throughput": "10"}});
    assert_eq!(http(ports[follower], "POST", "/connectors", Some(&body.to_string())).map(|r| r.0), Some(201));
    let mut owners = HashMap::new();
    wait_until(Duration::from_secs(120), "both tasks running", || {
        owners = running_tasks(ports[follower], "spread", 2).unwrap_or_default();
        owners.len() == 2
    });
    for task in 0..2 {
        let (code, text) =
            http(ports[follower], "POST", &format!("/connectors/spread/tasks/{task}/restart"), None).expect("restart");
        assert_eq!(code, 204, "task {task} on {:?}: {text}", owners.get(&(task as u64)));
    }
    let follower_id = format!("127.0.0.1:{}", ports[follower]);
    assert!(owners.values().any(|w| *w != follower_id), "the assignor spreads 2 tasks over 2 workers: {owners:?}");
    assert!(
        workers[follower].log_text().contains("sending a task restart to the worker that runs it"),
        "the task on the other worker ({owners:?}) was restarted there"
    );
    assert_eq!(http(ports[follower], "DELETE", "/connectors/spread", None).map(|r| r.0), Some(204));
    for w in workers.iter_mut() {
        assert_eq!(w.terminate(), Some(0), "log:\n{}", w.log_text());
    }
    assert!(failures.is_empty(), "{} contract failures:\n{}", failures.len(), failures.join("\n"));
    assert!(forwarded >= 10, "the follower forwarded the changes ({forwarded})");
}

/// Every endpoint, in an order that exercises its success and error cases; returns the failures.
fn contract(port: u16, kafka: &str, dir: &std::path::Path) -> Vec<String> {
    let topic = unique("contract");
    create_topic(kafka, &topic);
    produce(kafka, &topic, &[("k", Some("v1".to_string())), ("k", Some("v2".to_string()))]);
    let mut c = Contract { port, failures: Vec::new() };
    // Unique: the sink's consumer group is connect-<name>, shared by every worker on the broker.
    let sink_name = format!("sink-{topic}");
    let input = dir.join("in.txt");
    std::fs::write(&input, "a\nb\n").expect("input");
    let source = json!({"connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": topic});
    let sink = json!({"connector.class": "FileStreamSink", "topics": topic,
                      "file": dir.join("out.txt").display().to_string()});

    c.expect("GET", "/", None, 200, Shapes::server_info());

    // Create: 201, ConnectorInfo and Location; then the errors.
    let (status, head, created) = call(
        port,
        "POST",
        "/connectors",
        "application/json",
        json!({"name": "src", "config": source}).to_string().as_bytes(),
    );
    c.check("POST /connectors", status, created, 201, Shapes::connector_info());
    if !head.contains("location: ") || !head.contains("/connectors/src") {
        c.failures.push(format!("POST /connectors: no Location header for /connectors/src: {head}"));
    }
    c.error(
        "POST",
        "/connectors",
        Some(json!({"name": "src", "config": source})),
        409,
        Some("Connector src already exists"),
    );
    c.error(
        "POST",
        "/connectors",
        Some(json!({"name": "bad", "config": {"connector.class": "FileStreamSource", "tasks.max": "x"}})),
        400,
        Some("Connector configuration is invalid and contains the following"),
    );
    c.error(
        "POST",
        "/connectors",
        Some(json!({"name": "src2", "config": {"name": "other", "connector.class": "FileStreamSource"}})),
        400,
        None,
    );
    c.expect(
        "POST",
        "/connectors",
        Some(json!({"name": sink_name, "config": sink, "initial_state": "PAUSED"})),
        201,
        Shapes::connector_info(),
    );
    wait_until(Duration::from_secs(60), "the source's task RUNNING and the sink's task PAUSED", || {
        running_tasks(port, "src", 1).is_some() && connector_status(port, &sink_name)["tasks"][0]["state"] == "PAUSED"
    });

    c.expect("GET", "/connectors", None, 200, json!(["string"]));
    c.expect("GET", "/connectors?expand=status", None, 200, json!({"*": {"status": Shapes::status()}}));
    c.expect(
        "GET",
        "/connectors?expand=status&expand=info",
        None,
        200,
        json!({"*": {"status": Shapes::status(), "info": Shapes::connector_info_with_tasks()}}),
    );
    c.expect("GET", "/connectors/src", None, 200, Shapes::connector_info_with_tasks());
    c.error("GET", "/connectors/nope", None, 404, Some("Connector nope not found"));
    c.expect("GET", "/connectors/src/config", None, 200, json!({"*": "string"}));
    c.error("GET", "/connectors/nope/config", None, 404, Some("Connector nope not found"));
    c.expect("GET", "/connectors/src/status", None, 200, Shapes::status());
    c.error("GET", "/connectors/nope/status", None, 404, None);
    c.expect(
        "GET",
        "/connectors/src/tasks",
        None,
        200,
        json!([{"id": {"connector": "string", "task": "integer"}, "config": {"*": "string"}}]),
    );
    c.expect("GET", "/connectors/src/tasks-config", None, 200, json!({"*": {"*": "string"}}));
    c.expect("GET", "/connectors/src/tasks/0/status", None, 200, Shapes::task_state());
    c.error("GET", "/connectors/src/tasks/9/status", None, 404, None);

    // Config writes: PUT creates (201) or updates (200); PATCH merges (null removes).
    let mut put = source.clone();
    put["batch.size"] = json!("100");
    c.expect("PUT", "/connectors/src/config", Some(put), 200, Shapes::connector_info());
    c.expect("PUT", "/connectors/src3/config", Some(source.clone()), 201, Shapes::connector_info());
    let patched =
        c.expect("PATCH", "/connectors/src/config", Some(json!({"batch.size": null})), 200, Shapes::connector_info());
    if patched["config"].get("batch.size").is_some() {
        c.failures.push(format!("PATCH with null must remove the key: {patched}"));
    }
    c.error("PATCH", "/connectors/nope/config", Some(json!({"a": "b"})), 404, None);
    // A replaced config keeps the target state: a paused connector stays paused. (The source:
    // a sink replaced while its consumer's first group join is pending can wait minutes on
    // tansu for its partitions, see the README's tansu notes.)
    c.expect("PUT", "/connectors/src/pause", None, 202, Value::Null);
    c.expect("PUT", "/connectors/src/config", Some(source.clone()), 200, Shapes::connector_info());
    std::thread::sleep(Duration::from_secs(1));
    wait_until(Duration::from_secs(60), "the reconfigured source still PAUSED", || {
        let s = connector_status(port, "src");
        s["connector"]["state"] == "PAUSED" && s["tasks"][0]["state"] == "PAUSED"
    });
    // initial_state=STOPPED: no tasks; an unknown state is refused.
    c.expect(
        "POST",
        "/connectors",
        Some(json!({"name": "stopped", "config": source, "initial_state": "STOPPED"})),
        201,
        Shapes::connector_info(),
    );
    wait_until(Duration::from_secs(30), "the connector created STOPPED", || {
        connector_status(port, "stopped")["connector"]["state"] == "STOPPED"
    });
    let stopped = c.expect(
        "GET",
        "/connectors/stopped/status",
        None,
        200,
        json!({"name": "string", "connector": Shapes::connector_state(), "tasks": "array", "type": "string"}),
    );
    if stopped["tasks"] != json!([]) {
        c.failures.push(format!("a connector created STOPPED has no tasks: {stopped}"));
    }
    c.expect("DELETE", "/connectors/stopped", None, 204, Value::Null);
    c.error(
        "POST",
        "/connectors",
        Some(json!({"name": "odd", "config": source, "initial_state": "SLEEPING"})),
        400,
        Some("Invalid initial state"),
    );

    // Lifecycle.
    c.expect("PUT", "/connectors/src/pause", None, 202, Value::Null);
    c.expect("PUT", "/connectors/src/resume", None, 202, Value::Null);
    c.error("PUT", "/connectors/nope/pause", None, 404, None);
    wait_until(Duration::from_secs(30), "the source's task RUNNING again", || running_tasks(port, "src", 1).is_some());
    c.expect("POST", "/connectors/src/restart", None, 204, Value::Null);
    c.expect("POST", "/connectors/src/restart?includeTasks=true&onlyFailed=false", None, 202, Shapes::status());
    c.error("POST", "/connectors/nope/restart", None, 404, None);
    wait_until(Duration::from_secs(30), "the source's task RUNNING after restarts", || {
        running_tasks(port, "src", 1).is_some()
    });
    c.expect("POST", "/connectors/src/tasks/0/restart", None, 204, Value::Null);
    c.error("POST", "/connectors/src/tasks/9/restart", None, 404, None);
    c.expect("GET", "/connectors/src/topics", None, 200, json!({"src": {"topics": "array"}}));
    c.expect("PUT", "/connectors/src/topics/reset", None, 202, Value::Null);

    // Offsets: readable any time; changed only when STOPPED (400 before).
    c.expect(
        "GET",
        "/connectors/src/offsets",
        None,
        200,
        json!({"offsets": [{"partition": "object", "offset": "object"}]}),
    );
    let alter =
        json!({"offsets": [{"partition": {"filename": input.display().to_string()}, "offset": {"position": 2}}]});
    c.error(
        "PATCH",
        "/connectors/src/offsets",
        Some(alter.clone()),
        400,
        Some("Connectors must be in the STOPPED state"),
    );
    c.error("DELETE", "/connectors/src/offsets", None, 400, Some("Connectors must be in the STOPPED state"));
    c.expect("PUT", "/connectors/src/stop", None, 204, Value::Null);
    c.expect("PUT", "/connectors/src/stop", None, 204, Value::Null);
    c.expect("PATCH", "/connectors/src/offsets", Some(alter), 200, json!({"message": "string"}));
    c.error("PATCH", "/connectors/src/offsets", Some(json!({})), 400, None);
    c.expect("DELETE", "/connectors/src/offsets", None, 200, json!({"message": "string"}));
    c.error("GET", "/connectors/nope/offsets", None, 404, None);
    // A sink's offsets, once it has consumed: Kafka Connect's kafka_topic/kafka_partition/kafka_offset.
    c.expect("PUT", &format!("/connectors/{sink_name}/resume"), None, 202, Value::Null);
    wait_until(Duration::from_secs(60), "the sink's committed offsets", || {
        http(port, "GET", &format!("/connectors/{sink_name}/offsets"), None)
            .is_some_and(|(_, b)| b.contains("kafka_offset"))
    });
    c.expect(
        "GET",
        &format!("/connectors/{sink_name}/offsets"),
        None,
        200,
        json!({"offsets": [{"partition": {"kafka_topic": "string", "kafka_partition": "integer"}, "offset": {"kafka_offset": "integer"}}]}),
    );

    // Plugins, their definitions, validation.
    c.expect(
        "GET",
        "/connector-plugins",
        None,
        200,
        json!([{"class": "string", "type": "string", "version": "string"}]),
    );
    let all = c.expect(
        "GET",
        "/connector-plugins?connectorsOnly=false",
        None,
        200,
        json!([{"class": "string", "type": "string", "version": "string"}]),
    );
    for kind in ["source", "sink", "converter", "transformation", "predicate"] {
        if !all.as_array().is_some_and(|a| a.iter().any(|p| p["type"] == kind)) {
            c.failures.push(format!("connectorsOnly=false lists no {kind} plugin"));
        }
    }
    c.expect("GET", "/connector-plugins/FileStreamSource/config", None, 200, json!([Shapes::config_key_info()]));
    c.error("GET", "/connector-plugins/NoSuchPlugin/config", None, 404, None);
    let validated = c.expect(
        "PUT",
        "/connector-plugins/FileStreamSource/config/validate",
        Some(json!({"connector.class": "FileStreamSource", "tasks.max": "x"})),
        200,
        Shapes::config_infos(),
    );
    if validated["error_count"].as_u64().unwrap_or(0) == 0 {
        c.failures.push(format!("validate: tasks.max=x must count as an error: {validated}"));
    }

    // Loggers.
    c.expect("GET", "/admin/loggers", None, 200, json!({"*": {"level": "string", "last_modified": "integer|null"}}));
    c.expect("GET", "/admin/loggers/root", None, 200, json!({"level": "string", "last_modified": "integer|null"}));
    c.error("GET", "/admin/loggers/no.such", None, 404, None);
    c.expect("PUT", "/admin/loggers/sluice_connectors", Some(json!({"level": "INFO"})), 200, json!(["string"]));
    c.expect("PUT", "/admin/loggers/sluice_connectors?scope=cluster", Some(json!({"level": "INFO"})), 204, Value::Null);
    c.error("PUT", "/admin/loggers/root", Some(json!({})), 400, Some("Desired 'level' parameter was not specified"));
    c.error("PUT", "/admin/loggers/root", Some(json!({"level": "LOUD"})), 404, Some("invalid log level"));

    // Transport errors in the same shape.
    c.error("GET", "/no/such/route", None, 404, None);
    c.error("DELETE", "/connector-plugins", None, 405, None);
    let (status, _, v) = call(port, "POST", "/connectors", "application/json", b"{not json");
    c.check("POST /connectors (malformed JSON)", status, v, 400, Shapes::error());
    let big = format!(r#"{{"name":"big","config":{{"x":"{}"}}}}"#, "y".repeat(2 << 20));
    let (status, _, v) = call(port, "POST", "/connectors", "application/json", big.as_bytes());
    c.check("POST /connectors (2 MiB body)", status, v, 413, Shapes::error());

    // A chunked body (no Content-Length, as streaming clients send) is read like any other.
    let chunked = json!({"name": "chunked", "config": source}).to_string();
    let request = format!(
        "POST /connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunked}\r\n0\r\n\r\n",
        chunked.len()
    );
    let (status, _, v) = raw(port, request.as_bytes());
    c.check("POST /connectors (chunked)", status, v, 201, Shapes::connector_info());

    // Delete: 204, then 404.
    for name in ["src", "src3", sink_name.as_str(), "chunked"] {
        c.expect("DELETE", &format!("/connectors/{name}"), None, 204, Value::Null);
    }
    c.error("DELETE", "/connectors/src", None, 404, Some("Connector src not found"));
    c.failures
}

#[test]
fn the_shape_checker_catches_missing_extra_and_mistyped_fields() {
    let mut errors = Vec::new();
    let ok = json!({"name": "a", "connector": {"state": "RUNNING", "worker_id": "w"}, "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w"}], "type": "source"});
    conform("$", &Shapes::status(), &ok, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let bad = json!({"name": "a", "connector": {"state": "RUNNING", "worker": "w"}, "tasks": [{"id": "0", "state": "RUNNING", "worker_id": "w", "trace": 1}], "kind": "source"});
    conform("$", &Shapes::status(), &bad, &mut errors);
    for expected in [
        "$.connector: missing key worker_id",
        "$.connector: unexpected key worker",
        "$.tasks[0].id: expected integer",
        "$.tasks[0].trace: expected string",
        "$: missing key type",
        "$: unexpected key kind",
    ] {
        assert!(errors.iter().any(|e| e.starts_with(expected)), "{expected} in {errors:?}");
    }
}
