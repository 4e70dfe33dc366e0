//! Bad records in a sink: with `errors.tolerance=all` they go to the dead-letter topic with Kafka
//! Connect's context headers and the good ones flow on; with the default `none` the task goes FAILED
//! with a trace naming the record, and the worker keeps running its other connectors.

mod common;

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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka)
        .set("group.id", unique("dlq-reader"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&dlq, 0, Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dead.len() < 4 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers: std::collections::HashMap<String, String> = m
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
