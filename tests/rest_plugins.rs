//! `/connector-plugins` (list, config definitions, validate), task status and PATCH of a config,
//! through the REST API of a real standalone worker, checked against Kafka Connect's shapes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (code, text) = http(port, method, path, body).unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn config_of<'a>(infos: &'a Value, key: &str) -> &'a Value {
    infos["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["value"]["name"] == key))
        .unwrap_or_else(|| panic!("no config {key} in {infos}"))
}

#[test]
fn plugins_definitions_validation_task_status_and_patch() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let _sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));

    // The list: connectors only by default, sorted by class; converters on request.
    let (code, list) = call(port, "GET", "/connector-plugins", None);
    assert_eq!(code, 200);
    let classes: Vec<&str> = list.as_array().expect("array").iter().filter_map(|p| p["class"].as_str()).collect();
    let mut sorted = classes.clone();
    sorted.sort();
    assert_eq!(classes, sorted);
    for class in [
        "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "io.debezium.connector.mysql.MySqlConnector",
        "io.sluice.connect.tracking.HttpTrackingSourceConnector",
    ] {
        assert!(classes.contains(&class), "{class} in {list}");
    }
    assert!(list.as_array().expect("array").iter().all(|p| p["type"] == "source" || p["type"] == "sink"));
    let (_, all) = call(port, "GET", "/connector-plugins?connectorsOnly=false", None);
    let json_converter: Vec<&Value> = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|p| p["class"] == "org.apache.kafka.connect.json.JsonConverter")
        .collect();
    assert_eq!(
        json_converter.iter().map(|p| p["type"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["converter", "header_converter"]
    );

    // Config definitions of one plugin, by alias.
    let (code, defs) = call(port, "GET", "/connector-plugins/FileStreamSource/config", None);
    assert_eq!(code, 200, "{defs}");
    let batch = defs.as_array().expect("array").iter().find(|d| d["name"] == "batch.size").expect("batch.size");
    assert_eq!(batch["type"], "INT");
    assert_eq!(batch["default_value"], "2000");
    assert_eq!(batch["required"], false);
    let topic = defs.as_array().expect("array").iter().find(|d| d["name"] == "topic").expect("topic");
    assert_eq!((topic["required"].clone(), topic["default_value"].clone()), (json!(true), Value::Null));
    for field in [
        "name",
        "type",
        "required",
        "default_value",
        "importance",
        "documentation",
        "group",
        "width",
        "display_name",
        "dependents",
        "order",
    ] {
        assert!(batch.get(field).is_some(), "ConfigKeyInfo field {field} in {batch}");
    }
    let (code, err) = call(port, "GET", "/connector-plugins/NoSuchConnector/config", None);
    assert_eq!((code, err["error_code"].clone()), (404, json!(404)), "{err}");

    // Validate: every problem at once, per key, with the definitions.
    let body = json!({"connector.class": "FileStreamSource", "tasks.max": "zero", "batch.size": "0"}).to_string();
    let (code, infos) = call(port, "PUT", "/connector-plugins/FileStreamSource/config/validate", Some(&body));
    assert_eq!(code, 200, "{infos}");
    assert_eq!(infos["name"], "org.apache.kafka.connect.file.FileStreamSourceConnector");
    for key in ["name", "tasks.max", "batch.size", "topic"] {
        assert!(
            !config_of(&infos, key)["value"]["errors"].as_array().expect("errors").is_empty(),
            "{key} has an error: {infos}"
        );
    }
    assert_eq!(infos["error_count"], 4, "{infos}");
    assert!(infos["groups"].as_array().expect("groups").contains(&json!("Common")));
    let batch = config_of(&infos, "batch.size");
    assert_eq!(batch["value"]["value"], "0");
    assert_eq!(batch["definition"]["type"], "INT");
    assert_eq!(config_of(&infos, "file")["value"]["errors"], json!([]));
    // A PASSWORD value is hidden; recommended values come from the key's choices.
    let body = json!({"connector.class": "http-tracking", "name": "t", "write.keys": "secret-key:web"}).to_string();
    let (code, infos) = call(port, "PUT", "/connector-plugins/http-tracking/config/validate", Some(&body));
    assert_eq!((code, infos["error_count"].clone()), (200, json!(0)), "{infos}");
    assert_eq!(config_of(&infos, "write.keys")["value"]["value"], "[hidden]");
    assert!(!infos.to_string().contains("secret-key"));
    assert_eq!(
        config_of(&infos, "key.field")["value"]["recommended_values"],
        json!(["userId", "anonymousId", "messageId", "none"])
    );
    // Exactly-once keys: a connector that cannot give it is refused when it is required, and no
    // connector defines its own transaction boundaries.
    let body = json!({"connector.class": "http-tracking", "name": "t", "exactly.once.support": "required",
        "transaction.boundary": "connector"})
    .to_string();
    let (code, infos) = call(port, "PUT", "/connector-plugins/http-tracking/config/validate", Some(&body));
    assert_eq!((code, infos["error_count"].clone()), (200, json!(2)), "{infos}");
    assert!(
        config_of(&infos, "exactly.once.support")["value"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("does not support exactly-once")),
        "{infos}"
    );
    assert!(
        config_of(&infos, "transaction.boundary")["value"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("use poll or interval")),
        "{infos}"
    );
    let body = json!({"connector.class": "FileStreamSource", "name": "f", "file": "/tmp/x", "topic": "t",
        "exactly.once.support": "required", "transaction.boundary": "interval"})
    .to_string();
    let (code, infos) = call(port, "PUT", "/connector-plugins/FileStreamSource/config/validate", Some(&body));
    assert_eq!((code, infos["error_count"].clone()), (200, json!(0)), "{infos}");
    let (code, err) = call(
        port,
        "PUT",
        "/connector-plugins/FileStreamSink/config/validate",
        Some(&json!({"connector.class": "FileStreamSource"}).to_string()),
    );
    assert_eq!(code, 400);
    assert_eq!(err["message"], "Included connector type FileStreamSource does not match request type FileStreamSink");

    // Task status and PATCH on a running connector.
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\n").expect("write");
    let src_topic = unique("patch");
    let source = json!({"name": "src", "config": {"connector.class": "FileStreamSource", "file": input, "topic": src_topic, "batch.size": "100"}});
    assert_eq!(call(port, "POST", "/connectors", Some(&source.to_string())).0, 201);
    wait_until(Duration::from_secs(30), "src RUNNING", || running_tasks(port, "src", 1).is_some());
    let (code, task) = call(port, "GET", "/connectors/src/tasks/0/status", None);
    assert_eq!(code, 200, "{task}");
    assert_eq!((task["id"].clone(), task["state"].clone()), (json!(0), json!("RUNNING")));
    assert_eq!(task["worker_id"], format!("127.0.0.1:{port}"));
    let (code, err) = call(port, "GET", "/connectors/src/tasks/3/status", None);
    assert_eq!((code, err["message"].clone()), (404, json!("No status found for task src-3")));
    // Prometheus text with Kafka Connect's metric names.
    wait_until(Duration::from_secs(20), "both lines written", || {
        http(port, "GET", "/metrics", None)
            .is_some_and(|(_, text)| text.contains("sluice_source_record_write_total{connector=\"src\",task=\"0\"} 2"))
    });
    let (code, text) = http(port, "GET", "/metrics", None).expect("metrics");
    assert_eq!(code, 200);
    for line in [
        "sluice_connector_count 1",
        "sluice_task_count 1",
        "sluice_source_record_poll_total{connector=\"src\",task=\"0\"} 2",
        "sluice_source_record_active_count{connector=\"src\",task=\"0\"} 0",
        "# TYPE sluice_offset_commit_success_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    // Active topics (KIP-558): the topic the source wrote to, then none after a reset until the
    // source writes again.
    let (code, topics) = call(port, "GET", "/connectors/src/topics", None);
    assert_eq!((code, topics.clone()), (200, json!({"src": {"topics": [src_topic]}})));
    assert_eq!(call(port, "PUT", "/connectors/src/topics/reset", None).0, 202);
    assert_eq!(call(port, "GET", "/connectors/src/topics", None).1, json!({"src": {"topics": []}}));
    std::fs::write(&input, "a\nb\nc\n").expect("append");
    wait_until(Duration::from_secs(20), "the topic active again", || {
        call(port, "GET", "/connectors/src/topics", None).1 == json!({"src": {"topics": [src_topic]}})
    });
    let (code, err) = call(port, "GET", "/connectors/nope/topics", None);
    assert_eq!((code, err["message"].clone()), (404, json!("Connector nope not found")));
    let (code, info) =
        call(port, "PATCH", "/connectors/src/config", Some(&json!({"batch.size": 7, "tasks.max": null}).to_string()));
    assert_eq!(code, 200, "{info}");
    let (_, config) = call(port, "GET", "/connectors/src/config", None);
    assert_eq!(config["batch.size"], "7");
    assert!(config.get("tasks.max").is_none(), "null removes the key: {config}");
    assert_eq!(config["file"], input.display().to_string(), "untouched keys stay");
    let (code, err) = call(port, "PATCH", "/connectors/src/config", Some(&json!({"batch.size": "0"}).to_string()));
    assert_eq!(code, 400, "{err}");
    assert!(err["message"].as_str().unwrap_or("").contains("batch.size"), "{err}");
    assert_eq!(call(port, "PATCH", "/connectors/nope/config", Some("{}")).0, 404);
}

/// Every endpoint `/openapi.json` documents is routed (none answers the router's own 404/405), and
/// the document served is the one built from the code's table.
#[test]
fn the_openapi_document_matches_the_routes() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let _sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let (code, doc) = call(port, "GET", "/openapi.json", None);
    assert_eq!(code, 200);
    assert_eq!(doc, sluice_rest::openapi::document());
    assert_eq!(doc["openapi"], "3.0.3");
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("methods") {
            let concrete = path
                .replace("{connector}", "no-such-connector")
                .replace("{task}", "0")
                .replace("{plugin}", "FileStreamSource")
                .replace("{logger}", "root");
            let body = op.get("requestBody").map(|_| "{}");
            let (status, text) = http(port, &method.to_uppercase(), &concrete, body).expect("answer");
            assert!(
                !text.contains("HTTP 404 Not Found") && !text.contains("HTTP 405 Method Not Allowed"),
                "{method} {path} is documented but not routed: {status} {text}"
            );
            let documented: Vec<u16> =
                op["responses"].as_object().expect("responses").keys().filter_map(|k| k.parse().ok()).collect();
            assert!(
                documented.contains(&status),
                "{method} {path} answered {status}, documented {documented:?}: {text}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, sluice_rest::openapi::ENDPOINTS.len());
    // And an undocumented route is the router's 404.
    let (status, body) = call(port, "GET", "/no/such/route", None);
    assert_eq!((status, body["error_code"].clone()), (404, json!(404)));
}

/// A Kafka Connect REST client from PyPI (`kafka-connect-py`, installed by scripts/services.sh)
/// drives a worker through create, list, status, tasks, topics, update, pause, resume, restarts,
/// stop and delete, unchanged (tests/python/kafka_connect_client.py).
#[test]
fn a_third_party_kafka_connect_client_drives_the_api() {
    let services = Services::load();
    let kafka = services.kafka();
    let python = services.vars.get("SLUICE_PYTHON").cloned().unwrap_or_else(|| "python3".into());
    let probe = std::process::Command::new(&python).args(["-c", "import kafka_connect"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip("a_third_party_kafka_connect_client_drives_the_api", "kafka-connect-py is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let _sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\n").expect("write");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kafka_connect_client.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&input)
        .arg(unique("client"))
        .output()
        .expect("run the client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("ALL OK"), "client run:\n{text}");
}
