//! Pause, resume, stop, restart and offsets through the REST API of a standalone worker, with the
//! verifiable source (whose offsets are plain seqnos) and the FileStream sink (consumer-group
//! offsets) on the real broker.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (code, text) = http(port, method, path, body).unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn max_seqno(kafka: &str, topic: &str) -> i64 {
    read_seqnos_within(kafka, topic, Duration::from_secs(1), Duration::from_secs(4))
        .values()
        .flatten()
        .copied()
        .max()
        .unwrap_or(-1)
}

#[test]
fn pause_resume_stop_restart_and_offsets() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let topic = unique("life");
    let source =
        json!({"name": "seq", "config": {"connector.class": "VerifiableSource", "topic": topic, "throughput": "200"}});
    assert_eq!(call(port, "POST", "/connectors", Some(&source.to_string())).0, 201);
    wait_until(Duration::from_secs(30), "seq RUNNING", || running_tasks(port, "seq", 1).is_some());
    wait_until(Duration::from_secs(30), "records", || max_seqno(&kafka, &topic) > 50);

    // Pause: statuses say PAUSED and no new records arrive.
    assert_eq!(http(port, "PUT", "/connectors/seq/pause", None).map(|r| r.0), Some(202));
    wait_until(Duration::from_secs(30), "seq PAUSED", || {
        let s = connector_status(port, "seq");
        s["connector"]["state"] == "PAUSED" && s["tasks"][0]["state"] == "PAUSED"
    });
    let paused_at = max_seqno(&kafka, &topic);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(max_seqno(&kafka, &topic), paused_at, "a paused source produces nothing");

    // Resume: it goes on where it was.
    assert_eq!(http(port, "PUT", "/connectors/seq/resume", None).map(|r| r.0), Some(202));
    wait_until(Duration::from_secs(30), "seq RUNNING again", || running_tasks(port, "seq", 1).is_some());
    wait_until(Duration::from_secs(30), "new records", || max_seqno(&kafka, &topic) > paused_at + 50);

    // Restart: 204 plain, 202 with RESTARTING instances when tasks are included.
    assert_eq!(http(port, "POST", "/connectors/seq/restart", None).map(|r| r.0), Some(204));
    let (code, body) = call(port, "POST", "/connectors/seq/restart?includeTasks=true&onlyFailed=false", None);
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["connector"]["state"], "RESTARTING", "{body}");
    assert_eq!(body["tasks"][0]["state"], "RESTARTING", "{body}");
    // Nothing failed, so nothing is marked RESTARTING. (The task may still be coming back from the
    // restart above, UNASSIGNED for a moment: its state is shown as it is.)
    let (code, body) = call(port, "POST", "/connectors/seq/restart?includeTasks=true&onlyFailed=true", None);
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["connector"]["state"], "RUNNING", "nothing failed: {body}");
    assert!(matches!(body["tasks"][0]["state"].as_str(), Some("RUNNING" | "UNASSIGNED")), "nothing failed: {body}");
    assert_eq!(http(port, "POST", "/connectors/seq/tasks/0/restart", None).map(|r| r.0), Some(204));
    assert_eq!(call(port, "POST", "/connectors/seq/tasks/7/restart", None).0, 404);
    assert_eq!(call(port, "POST", "/connectors/nope/restart", None).0, 404);
    wait_until(Duration::from_secs(30), "seq RUNNING after restarts", || running_tasks(port, "seq", 1).is_some());

    // Offsets: readable any time, writable only when STOPPED.
    let (code, offsets) = call(port, "GET", "/connectors/seq/offsets", None);
    assert_eq!(code, 200, "{offsets}");
    assert_eq!(offsets["offsets"][0]["partition"], json!({"id": 0}), "{offsets}");
    let patch = json!({"offsets": [{"partition": {"id": 0}, "offset": {"seqno": 99999}}]}).to_string();
    let (code, body) = call(port, "PATCH", "/connectors/seq/offsets", Some(&patch));
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("STOPPED"), "{body}");
    assert_eq!(http(port, "PUT", "/connectors/seq/stop", None).map(|r| r.0), Some(204));
    let s = connector_status(port, "seq");
    assert_eq!((s["connector"]["state"].clone(), s["tasks"].clone()), (json!("STOPPED"), json!([])), "{s}");
    let (code, body) = call(port, "PATCH", "/connectors/seq/offsets", Some(&patch));
    assert_eq!(
        (code, body["message"].clone()),
        (200, json!("The offsets for this connector have been altered successfully"))
    );
    let (_, offsets) = call(port, "GET", "/connectors/seq/offsets", None);
    assert_eq!(offsets["offsets"][0]["offset"], json!({"seqno": 99999}), "{offsets}");
    // Resumed, the task continues after the altered offset.
    assert_eq!(http(port, "PUT", "/connectors/seq/resume", None).map(|r| r.0), Some(202));
    wait_until(Duration::from_secs(30), "seqnos after the altered offset", || max_seqno(&kafka, &topic) > 100_000);
    assert_eq!(http(port, "PUT", "/connectors/seq/stop", None).map(|r| r.0), Some(204));
    let (code, body) = call(port, "DELETE", "/connectors/seq/offsets", None);
    assert_eq!(
        (code, body["message"].clone()),
        (200, json!("The offsets for this connector have been reset successfully"))
    );
    assert_eq!(call(port, "GET", "/connectors/seq/offsets", None).1, json!({"offsets": []}));

    // Sink offsets live in the consumer group connect-<name>.
    let out = dir.path().join("out.txt");
    let sink = json!({"name": "sink", "config": {"connector.class": "FileStreamSink", "topics": topic, "file": out.display().to_string()}});
    assert_eq!(call(port, "POST", "/connectors", Some(&sink.to_string())).0, 201);
    wait_until(Duration::from_secs(60), "the sink to copy records", || read_lines(&out).len() > 100);
    assert_eq!(http(port, "PUT", "/connectors/sink/stop", None).map(|r| r.0), Some(204));
    let mut committed = Value::Null;
    wait_until(Duration::from_secs(30), "sink offsets", || {
        committed = call(port, "GET", "/connectors/sink/offsets", None).1;
        committed["offsets"][0]["offset"]["kafka_offset"].as_i64().is_some_and(|o| o > 0)
    });
    assert_eq!(
        committed["offsets"][0]["partition"],
        json!({"kafka_topic": topic, "kafka_partition": 0}),
        "{committed}"
    );
    let rewind = json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": 5}}]});
    assert_eq!(call(port, "PATCH", "/connectors/sink/offsets", Some(&rewind.to_string())).0, 200);
    assert_eq!(
        call(port, "GET", "/connectors/sink/offsets", None).1["offsets"][0]["offset"],
        json!({"kafka_offset": 5})
    );
    assert_eq!(call(port, "PUT", "/connectors/nope/pause", None).0, 404);
    drop(sluice);
}

/// A sink created PAUSED (`initial_state`, KAFKA-15470) writes nothing, though its partitions
/// are assigned; resumed, it writes what the topic holds (the FileStream sink flushes its file at
/// each offset flush, every 500 ms here).
#[test]
fn a_sink_created_paused_reads_nothing_until_resumed_and_then_at_once() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let topic = unique("paused-sink");
    create_topic(&kafka, &topic);
    produce(&kafka, &topic, &[("k", Some("one".to_string())), ("k", Some("two".to_string()))]);
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let mut sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let out = dir.path().join("out.txt");
    let name = format!("{topic}-sink");
    let body = json!({"name": name, "initial_state": "PAUSED", "config": {
        "connector.class": "FileStreamSink", "topics": topic, "file": out.display().to_string()}});
    assert_eq!(call(port, "POST", "/connectors", Some(&body.to_string())).0, 201);
    wait_until(Duration::from_secs(60), "the paused sink's partitions assigned", || {
        sluice.log_text().contains(&format!("partitions assigned task={name}-0"))
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(read_lines(&out).is_empty(), "a paused sink writes nothing");
    assert_eq!(connector_status(port, &name)["tasks"][0]["state"], "PAUSED");
    assert_eq!(call(port, "PUT", &format!("/connectors/{name}/resume"), None).0, 202);
    let resumed = std::time::Instant::now();
    while read_lines(&out).len() < 2 {
        assert!(resumed.elapsed() < Duration::from_secs(15), "the resumed sink's records; log:\n{}", sluice.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read_lines(&out), ["one", "two"]);
    assert_eq!(sluice.terminate(), Some(0), "log:\n{}", sluice.log_text());
}
