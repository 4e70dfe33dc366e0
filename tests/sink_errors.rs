//! Bad records in a sink: with `errors.tolerance=all` they go to the dead-letter topic with Kafka
//! Connect's context headers and the good ones flow on; with the default `none` the task goes FAILED
//! with a trace naming the record, and the worker keeps running its other connectors. A sink that
//! cannot write a record (a Delta table that cannot take its schema) reports it, and it reaches the
//! dead-letter topic too while the rest are written.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn create_topics(kafka: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", kafka).create().expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(-1))).collect();
    for r in rt.block_on(admin.create_topics(new.iter(), &AdminOptions::new())).expect("create topics") {
        r.expect("topic created");
    }
}

/// Up to `n` records of the DLQ topic (30 s at most): payload and headers.
fn read_dlq(kafka: &str, dlq: &str, n: usize) -> Vec<(String, HashMap<String, String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("dlq-reader"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(dlq, 0, Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dead.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers: HashMap<String, String> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            dead.push((String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(), headers));
        }
    }
    dead
}

#[test]
fn bad_records_go_to_the_dlq_or_fail_the_task() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let topic = unique("sink-errors");
    let dlq = format!("{topic}-dlq");
    create_topics(&kafka, &[&topic]);

    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &kafka).create().expect("producer");
    let good = |i: usize| format!(r#"{{"schema":{{"type":"string","optional":false}},"payload":"good-{i}"}}"#);
    let mut bad_offsets = Vec::new();
    for i in 0..20 {
        let payload = if i % 5 == 3 {
            bad_offsets.push(i as i64);
            format!("not json {i}")
        } else {
            good(i)
        };
        producer.send(BaseRecord::<(), str>::to(&topic).payload(&payload)).expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let tolerant = dir.path().join("tolerant.properties");
    std::fs::write(
        &tolerant,
        format!(
            "name={topic}-tolerant\nconnector.class=file-sink\ntopics={topic}\nfile={}\n\
             errors.tolerance=all\nerrors.deadletterqueue.topic.name={dlq}\n\
             errors.deadletterqueue.topic.replication.factor=1\nerrors.deadletterqueue.context.headers.enable=true\n",
            dir.path().join("good.txt").display()
        ),
    )
    .expect("write");
    let strict = dir.path().join("strict.properties");
    std::fs::write(
        &strict,
        format!(
            "name={topic}-strict\nconnector.class=file-sink\ntopics={topic}\nfile={}\n",
            dir.path().join("strict.txt").display()
        ),
    )
    .expect("write");
    let sluice = Sluice::standalone(&worker, &[&tolerant, &strict], port, dir.path().join("sluice.log"));

    // Tolerant connector: 16 good lines, in order.
    let good_path = dir.path().join("good.txt");
    wait_until(Duration::from_secs(60), "16 good records", || read_lines(&good_path).len() >= 16);
    let expected: Vec<String> = (0..20).filter(|i| i % 5 != 3).map(|i| format!("good-{i}")).collect();
    assert_eq!(read_lines(&good_path), expected);

    // The 4 bad ones are in the DLQ, as they were, with context headers.
    let dead = read_dlq(&kafka, &dlq, 4);
    let payloads: Vec<&str> = dead.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(payloads, vec!["not json 3", "not json 8", "not json 13", "not json 18"]);
    let (_, h) = &dead[0];
    assert_eq!(h["__connect.errors.topic"], topic);
    assert_eq!(h["__connect.errors.offset"], bad_offsets[0].to_string());
    assert_eq!(h["__connect.errors.stage"], "VALUE_CONVERTER");
    assert_eq!(h["__connect.errors.connector.name"], format!("{topic}-tolerant"));
    assert_eq!(h["__connect.errors.class.name"], "org.apache.kafka.connect.json.JsonConverter");
    assert!(h["__connect.errors.exception.message"].contains("serialization error"), "{h:?}");

    // Strict connector: FAILED, with a trace that names the record; the other connector is RUNNING.
    let status_of = |name: &str| -> serde_json::Value {
        let (_, body) = sluice.get(&format!("/connectors/{name}/status")).expect("status");
        serde_json::from_str(&body).expect("json")
    };
    wait_until(Duration::from_secs(30), "the strict task to fail", || {
        status_of(&format!("{topic}-strict"))["tasks"][0]["state"] == "FAILED"
    });
    let strict_status = status_of(&format!("{topic}-strict"));
    let trace = strict_status["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    assert!(trace.contains(&format!("{topic}-0 offset {}", bad_offsets[0])), "trace names the record: {trace}");
    assert_eq!(status_of(&format!("{topic}-tolerant"))["tasks"][0]["state"], "RUNNING");
    // The strict sink never wrote anything at or after the bad record (at most the good ones before it).
    let strict_lines = read_lines(&dir.path().join("strict.txt"));
    assert!(expected[..3].starts_with(&strict_lines), "strict sink wrote {strict_lines:?}");
}

#[test]
fn a_record_the_delta_table_cannot_take_goes_to_the_dlq() {
    let services = Services::load();
    let kafka = services.kafka();
    let python = services.vars.get("SLUICE_PYTHON").cloned().unwrap_or_else(|| "python3".into());
    let dir = tempfile::tempdir().expect("tmp");
    let topic = unique("delta-errant");
    let dlq = format!("{topic}-dlq");
    create_topics(&kafka, &[&topic]);
    let record = |seq: serde_json::Value, kind: &str| {
        serde_json::json!({"schema": {"type": "struct", "optional": false, "fields": [
                {"field": "seq", "type": kind, "optional": false}]},
            "payload": {"seq": seq}})
        .to_string()
    };
    // Offset 5 has `seq` as a string: the table (seq: long) cannot take it.
    let recs: Vec<(String, Option<String>)> = (0..10)
        .map(|i| {
            let v = if i == 5 {
                record(serde_json::json!("five"), "string")
            } else {
                record(serde_json::json!(i), "int64")
            };
            (i.to_string(), Some(v))
        })
        .collect();
    produce(&kafka, &topic, &recs);
    let port = free_port();
    let worker =
        worker_properties(dir.path(), &kafka, port, "value.converter=org.apache.kafka.connect.json.JsonConverter");
    let connector = dir.path().join("delta.properties");
    let tables = dir.path().join("tables");
    std::fs::write(
        &connector,
        format!(
            "name={topic}-delta\nconnector.class=delta\ntopics={topic}\ndelta.table.location={}/${{topic}}\n\
             allowed.latency.ms=500\nerrors.tolerance=all\nerrors.deadletterqueue.topic.name={dlq}\n\
             errors.deadletterqueue.topic.replication.factor=1\nerrors.deadletterqueue.context.headers.enable=true\n",
            tables.display()
        ),
    )
    .expect("write");
    let sluice = Sluice::standalone(&worker, &[&connector], port, dir.path().join("sluice.log"));
    let uri = tables.join(&topic).display().to_string();
    let app = format!("{topic}-delta-{topic}-0");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_delta.py");
    let mut view = serde_json::Value::Null;
    wait_until(Duration::from_secs(60), "9 rows and the txn of offset 9", || {
        let out = std::process::Command::new(&python).arg(&script).args([&uri, "seq", &app]).output().expect("python");
        view = serde_json::from_slice(&out.stdout).unwrap_or_default();
        view["txn"][&app] == 9
    });
    let mut seqs: Vec<i64> = view["values"].as_array().expect("values").iter().filter_map(|v| v.as_i64()).collect();
    seqs.sort();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4, 6, 7, 8, 9], "{view}");

    let dead = read_dlq(&kafka, &dlq, 1);
    assert_eq!(dead.len(), 1, "{}", sluice.log_text());
    let (payload, h) = &dead[0];
    let payload: serde_json::Value = serde_json::from_str(payload).expect("the record, as JSON again");
    assert_eq!(payload["payload"]["seq"], "five");
    assert_eq!(h["__connect.errors.topic"], topic);
    assert_eq!(h["__connect.errors.offset"], "5");
    assert_eq!(h["__connect.errors.stage"], "TASK_PUT");
    assert_eq!(h["__connect.errors.class.name"], "delta");
    assert!(h["__connect.errors.exception.message"].contains("column seq"), "{h:?}");
    let (_, body) = sluice.get(&format!("/connectors/{topic}-delta/status")).expect("status");
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "the task goes on: {status}");
}
