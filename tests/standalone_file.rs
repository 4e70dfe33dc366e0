//! Standalone worker against the real broker: FileStream source → Kafka → FileStream sink.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

fn connector_files(dir: &std::path::Path, topic: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (source_name, sink_name) = (format!("{topic}-in"), format!("{topic}-out"));
    let src = dir.join("source.properties");
    std::fs::write(
        &src,
        format!(
            "name={source_name}\nconnector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\nfile={}\ntopic={topic}\nbatch.size=500\n",
            dir.join("in.txt").display()
        ),
    )
    .expect("write");
    let sink = dir.join("sink.json");
    std::fs::write(
        &sink,
        serde_json::json!({"name": sink_name, "config": {
            "connector.class": "FileStreamSink", "tasks.max": "1",
            "file": dir.join("out.txt").display().to_string(), "topics": topic}})
        .to_string(),
    )
    .expect("write");
    (src, sink)
}

/// 10,000 lines go through in order, nothing lost or duplicated, and the REST API reports both
/// connectors RUNNING.
#[test]
fn ten_thousand_lines_arrive_in_order() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let topic = unique("file-e2e");
    let input: Vec<String> = (1..=10_000).map(|i| format!("line-{i:05}")).collect();
    std::fs::write(dir.path().join("in.txt"), input.join("\n") + "\n").expect("write input");
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let (src, sink) = connector_files(dir.path(), &topic);
    let mut sluice = Sluice::standalone(&worker, &[&src, &sink], port, dir.path().join("sluice.log"));

    let out = dir.path().join("out.txt");
    wait_until(Duration::from_secs(90), "10,000 lines in the sink file", || read_lines(&out).len() >= 10_000);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(read_lines(&out), input, "output must equal input, in order, without duplicates");

    let (code, body) = sluice.get(&format!("/connectors/{topic}-in/status")).expect("status");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["connector"]["state"], "RUNNING", "{body}");
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{body}");
    assert_eq!(status["type"], "source");
    let (code, body) = sluice.get("/connectors").expect("list");
    assert_eq!((code, body), (200, format!(r#"["{topic}-in","{topic}-out"]"#)));
    let (code, body) = sluice.get("/connectors/nope").expect("404");
    assert_eq!((code, body.as_str()), (404, r#"{"error_code":404,"message":"Connector nope not found"}"#));

    assert_eq!(sluice.terminate(), Some(0), "SIGTERM exits 0; log:\n{}", sluice.log_text());
    let offsets = std::fs::read_to_string(dir.path().join("offsets.json")).expect("offsets file");
    let expected_position = input.iter().map(|l| l.len() + 1).sum::<usize>();
    assert!(offsets.contains(&format!("\"position\":{expected_position}")), "final offset committed: {offsets}");
}

/// kill -9 the worker mid-stream (source still reading, sink still writing), restart it, and check
/// nothing was lost. At-least-once allows duplicates: they are counted and reported.
#[test]
fn kill_9_mid_stream_loses_nothing() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let topic = unique("file-kill9");
    let total = 10_000;
    let input: Vec<String> = (1..=total).map(|i| format!("row-{i:05}")).collect();
    let port = free_port();
    let worker = worker_properties(dir.path(), &kafka, port, "");
    let (src, sink) = connector_files(dir.path(), &topic);
    let in_path = dir.path().join("in.txt");
    let out = dir.path().join("out.txt");
    std::fs::write(&in_path, "").expect("create input");
    let mut sluice = Sluice::standalone(&worker, &[&src, &sink], port, dir.path().join("sluice.log"));

    // Feed the file while the pipeline runs, so the crash hits both connectors mid-stream.
    let feeder_path = in_path.clone();
    let feed = input.clone();
    let feeder = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(feeder_path).expect("open input");
        // About 20 s of input: longer than a group join, so the sink is streaming when it dies.
        for chunk in feed.chunks(50) {
            writeln!(f, "{}", chunk.join("\n")).expect("append");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    wait_until(Duration::from_secs(90), "a third of the lines in the sink", || read_lines(&out).len() >= total / 3);
    sluice.kill9();
    let at_kill = read_lines(&out).len();
    let fed_at_kill = read_lines(&in_path).len();
    assert!(
        at_kill < total && fed_at_kill < total,
        "the crash must hit mid-stream ({at_kill} written, {fed_at_kill} fed)"
    );
    let mut sluice = Sluice::standalone(&worker, &[&src, &sink], port, dir.path().join("sluice-restarted.log"));
    feeder.join().expect("feeder");
    wait_until(Duration::from_secs(120), "every line after the restart", || {
        let lines = read_lines(&out);
        let distinct: std::collections::HashSet<&String> = lines.iter().collect();
        distinct.len() >= total
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sluice.terminate(), Some(0), "log:\n{}", sluice.log_text());

    let lines = read_lines(&out);
    let mut seen = std::collections::HashSet::new();
    let first_occurrences: Vec<&String> = lines.iter().filter(|l| seen.insert(*l)).collect();
    let expected: Vec<&String> = input.iter().collect();
    assert_eq!(first_occurrences, expected, "every line arrives, and first occurrences keep the input order");
    let duplicates = lines.len() - total;
    eprintln!("kill -9 at {at_kill} lines written, {fed_at_kill} fed: {total} distinct lines delivered, {duplicates} duplicates (at-least-once)");
}

/// Transforms run on both sides: a source hoists each line into a struct, tags it and routes it to
/// another topic; a sink extracts the line again. A transform it does not know is rejected with
/// its key, never ignored.
#[test]
fn transforms_run_on_the_source_and_the_sink_and_unknown_ones_are_rejected() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let worker = worker_properties(
        dir.path(),
        &kafka,
        port,
        "value.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=true",
    );
    let sluice = Sluice::standalone(&worker, &[], port, dir.path().join("sluice.log"));
    let base = unique("smt");
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let lines: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("input");
    let source = serde_json::json!({"name": "src", "config": {
        "connector.class": "FileStreamSource", "file": input, "topic": format!("{base}-in"),
        "transforms": "hoist,tag,route",
        "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value", "transforms.hoist.field": "line",
        "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertField$Value",
        "transforms.tag.static.field": "dc", "transforms.tag.static.value": "eu-1",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": "(.*)-in", "transforms.route.replacement": "$1-out"}});
    let sink = serde_json::json!({"name": "sink", "config": {
        "connector.class": "FileStreamSink", "file": output, "topics": format!("{base}-out"),
        "transforms": "pick",
        "transforms.pick.type": "org.apache.kafka.connect.transforms.ExtractField$Value", "transforms.pick.field": "line"}});
    for body in [source, sink] {
        let (code, reply) = common::http(port, "POST", "/connectors", Some(&body.to_string())).expect("reply");
        assert_eq!(code, 201, "{reply}");
    }
    wait_until(Duration::from_secs(60), "every line through both transforms", || {
        read_lines(&output).len() >= lines.len()
    });
    assert_eq!(read_lines(&output), lines);
    let records = read_messages(&kafka, &format!("{base}-out"), Duration::from_secs(2));
    assert_eq!(records.len(), lines.len(), "routed to the -out topic");
    let first: serde_json::Value =
        serde_json::from_slice(rdkafka::Message::payload(&records[0]).expect("payload")).expect("json");
    assert_eq!(first["payload"], serde_json::json!({"line": "line 0", "dc": "eu-1"}), "{first}");
    assert_eq!(first["schema"]["type"], "struct");
    assert!(read_messages(&kafka, &format!("{base}-in"), Duration::from_millis(500)).is_empty());

    let body = r#"{"name":"t","config":{"connector.class":"FileStreamSink","topics":"x","transforms":"a","transforms.a.type":"com.example.Nope"}}"#;
    let (code, reply) = common::http(sluice.port, "POST", "/connectors", Some(body)).expect("reply");
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("transforms.a.type") && reply.contains("com.example.Nope"), "{reply}");
    let (code, reply) = sluice.get("/connectors").expect("list");
    assert_eq!((code, reply.as_str()), (200, r#"["sink","src"]"#));
}
