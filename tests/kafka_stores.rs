//! Kafka-backed offset and status stores against the real broker: the same test body as the file
//! and memory stores, restart recovery, and fixtures written in Kafka Connect's exact format.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;
use sluice_api::JsonMap;
use sluice_runtime::storage::{
    ConfigStore, ConfigUpdate, ConnectorState, FileOffsetStore, KafkaConfigStore, KafkaOffsetStore, KafkaStatusStore,
    KafkaStoreConfig, MemoryConfigStore, MemoryOffsetStore, OffsetStore, Status, StatusStore, TargetState, TopicSpec,
};

fn map(v: serde_json::Value) -> JsonMap {
    v.as_object().cloned().unwrap_or_default()
}

fn store_config(kafka: &str) -> KafkaStoreConfig {
    KafkaStoreConfig { bootstrap: kafka.to_string(), overrides: HashMap::new() }
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec { name: name.to_string(), partitions, replication: -1 }
}

/// One body for every offset store implementation.
async fn offsets_contract(store: &dyn OffsetStore) {
    let p1 = map(json!({"filename": "/a"}));
    let p2 = map(json!({"server": "db1"}));
    store.set("c1", vec![(p1.clone(), Some(map(json!({"position": 10}))))]).await.expect("set");
    store
        .set(
            "c1",
            vec![
                (p1.clone(), Some(map(json!({"position": 20})))),
                (p2.clone(), Some(map(json!({"file": "b.1", "pos": 4})))),
            ],
        )
        .await
        .expect("set");
    store.set("c2", vec![(p1.clone(), Some(map(json!({"position": 99}))))]).await.expect("set");
    assert_eq!(store.get("c1", &p1), Some(map(json!({"position": 20}))));
    assert_eq!(store.get("c1", &p2), Some(map(json!({"file": "b.1", "pos": 4}))));
    assert_eq!(store.get("c2", &p1), Some(map(json!({"position": 99}))));
    assert_eq!(store.connector_offsets("c1").len(), 2);
    store.set("c1", vec![(p2.clone(), None)]).await.expect("reset");
    assert_eq!(store.get("c1", &p2), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_offset_store_keeps_the_same_contract() {
    let kafka = Services::load().kafka();
    offsets_contract(&MemoryOffsetStore::default()).await;
    let dir = tempfile::tempdir().expect("tmp");
    offsets_contract(&FileOffsetStore::open(dir.path().join("o.json")).expect("file store")).await;
    let topic = unique("offsets");
    let store = KafkaOffsetStore::start(&store_config(&kafka), spec(&topic, 5)).await.expect("kafka store");
    offsets_contract(&store).await;
    drop(store);
    // A new worker reads the same state back from the topic alone.
    let reopened = KafkaOffsetStore::start(&store_config(&kafka), spec(&topic, 5)).await.expect("reopen");
    assert_eq!(reopened.get("c1", &map(json!({"filename": "/a"}))), Some(map(json!({"position": 20}))));
    assert_eq!(reopened.get("c1", &map(json!({"server": "db1"}))), None, "the reset survives too");
    assert_eq!(reopened.get("c2", &map(json!({"filename": "/a"}))), Some(map(json!({"position": 99}))));
}

/// Records exactly as a Kafka Connect cluster writes them are read correctly.
#[tokio::test(flavor = "multi_thread")]
async fn reads_topics_written_by_kafka_connect() {
    let kafka = Services::load().kafka();
    let offsets_topic = unique("kc-offsets");
    let status_topic = unique("kc-status");
    // Create both topics through the stores (compacted), then write Kafka Connect's bytes into them.
    drop(KafkaOffsetStore::start(&store_config(&kafka), spec(&offsets_topic, 1)).await.expect("create"));
    drop(KafkaStatusStore::start(&store_config(&kafka), spec(&status_topic, 1)).await.expect("create"));
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &kafka).create().expect("producer");
    let raw: &[(&str, &str, Option<&str>)] = &[
        (
            &offsets_topic,
            r#"["inventory-connector",{"server":"dbserver1"}]"#,
            Some(r#"{"ts_sec":1700000000,"file":"mysql-bin.000003","pos":154,"gtids":"a-b-c:1-5","row":1,"event":2}"#),
        ),
        (&offsets_topic, r#"["local-file-source",{"filename":"/tmp/test.txt"}]"#, Some(r#"{"position":74}"#)),
        (&offsets_topic, r#"["gone",{"filename":"/x"}]"#, Some(r#"{"position":1}"#)),
        (&offsets_topic, r#"["gone",{"filename":"/x"}]"#, None),
        (
            &status_topic,
            "status-connector-inventory-connector",
            Some(r#"{"state":"RUNNING","trace":null,"worker_id":"10.0.0.7:8083","generation":12}"#),
        ),
        (
            &status_topic,
            "status-task-inventory-connector-0",
            Some(
                r#"{"state":"FAILED","trace":"org.apache.kafka.connect.errors.ConnectException: boom\n\tat x","worker_id":"10.0.0.8:8083","generation":12}"#,
            ),
        ),
    ];
    for (topic, key, value) in raw {
        let mut record = BaseRecord::<str, str>::to(topic).key(*key);
        if let Some(v) = value {
            record = record.payload(*v);
        }
        producer.send(record).expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let offsets = KafkaOffsetStore::start(&store_config(&kafka), spec(&offsets_topic, 1)).await.expect("offsets");
    let mysql = offsets.get("inventory-connector", &map(json!({"server": "dbserver1"}))).expect("debezium offset");
    assert_eq!(mysql["file"], "mysql-bin.000003");
    assert_eq!(mysql["pos"], 154);
    assert_eq!(
        offsets.get("local-file-source", &map(json!({"filename": "/tmp/test.txt"}))),
        Some(map(json!({"position": 74})))
    );
    assert_eq!(offsets.get("gone", &map(json!({"filename": "/x"}))), None, "a null value resets");

    let statuses = KafkaStatusStore::start(&store_config(&kafka), spec(&status_topic, 1)).await.expect("statuses");
    let c = statuses.connector("inventory-connector").expect("connector status");
    assert_eq!((c.state, c.worker_id.as_str(), c.generation), (ConnectorState::Running, "10.0.0.7:8083", 12));
    let tasks = statuses.tasks("inventory-connector");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].1.state, ConnectorState::Failed);
    assert!(tasks[0].1.trace.as_deref().is_some_and(|t| t.contains("boom")));
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_survive_a_restart_and_stale_generations_do_not_win() {
    let kafka = Services::load().kafka();
    let topic = unique("status");
    let store = Arc::new(KafkaStatusStore::start(&store_config(&kafka), spec(&topic, 5)).await.expect("store"));
    let status = |state, worker: &str, generation| Status { state, trace: None, worker_id: worker.into(), generation };
    store.put_connector("orders", status(ConnectorState::Running, "w1:8083", 4));
    store.put_task("orders", 0, status(ConnectorState::Running, "w1:8083", 4));
    store.put_task("orders", 1, status(ConnectorState::Running, "w2:8083", 4));
    store.put_task("orders", 1, status(ConnectorState::Unassigned, "w3:8083", 3));
    assert_eq!(store.tasks("orders")[1].1.worker_id, "w2:8083", "generation 3 of another worker is stale");
    drop(store);
    let reopened = KafkaStatusStore::start(&store_config(&kafka), spec(&topic, 5)).await.expect("reopen");
    wait_until(Duration::from_secs(20), "statuses read back", || reopened.tasks("orders").len() == 2);
    assert_eq!(reopened.connector("orders").map(|s| s.state), Some(ConnectorState::Running));
    assert_eq!(reopened.tasks("orders")[1].1.worker_id, "w2:8083");
}

/// An existing internal topic that is not compacted is refused with a clear message.
#[tokio::test(flavor = "multi_thread")]
async fn a_non_compacted_internal_topic_is_an_error() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let kafka = Services::load().kafka();
    let topic = unique("not-compacted");
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &kafka).create().expect("admin");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "delete");
    for r in admin.create_topics([&new], &AdminOptions::new()).await.expect("create") {
        r.expect("created");
    }
    let err = KafkaOffsetStore::start(&store_config(&kafka), spec(&topic, 1)).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("cleanup.policy=delete") && msg.contains("compacted"), "{msg}");
}

fn cfg(pairs: &[(&str, &str)]) -> sluice_api::ConfigMap {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One body for every config store implementation.
async fn config_contract(store: &dyn ConfigStore) {
    let mut updates = store.subscribe();
    let config = cfg(&[("connector.class", "file-source"), ("topic", "t"), ("database.password", "s3cr3t")]);
    store.put_connector_config("c1", &config, Some(TargetState::Paused)).await.expect("put");
    store.put_task_configs("c1", &[cfg(&[("task", "0")]), cfg(&[("task", "1")])]).await.expect("tasks");
    store.put_connector_config("c2", &cfg(&[("connector.class", "file-sink")]), None).await.expect("put");
    store.put_target_state("c2", TargetState::Stopped).await.expect("target");
    store.request_restart("c1", true, false).await.expect("restart");
    let s = store.snapshot();
    assert_eq!(s.connectors["c1"], config);
    assert_eq!(s.target_state("c1"), TargetState::Paused);
    assert_eq!(s.target_state("c2"), TargetState::Stopped);
    assert_eq!(s.task_configs["c1"], vec![cfg(&[("task", "0")]), cfg(&[("task", "1")])]);
    let mut seen = Vec::new();
    while let Ok(u) = updates.try_recv() {
        seen.push(u);
    }
    assert!(seen.contains(&ConfigUpdate::Tasks("c1".into())), "{seen:?}");
    assert!(
        seen.contains(&ConfigUpdate::Restart { connector: "c1".into(), include_tasks: true, only_failed: false }),
        "{seen:?}"
    );
    store.remove_connector("c2").await.expect("remove");
    let s = store.snapshot();
    assert!(!s.connectors.contains_key("c2") && !s.target_states.contains_key("c2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_config_store_keeps_the_same_contract_and_kafka_survives_restart() {
    let kafka = Services::load().kafka();
    config_contract(&MemoryConfigStore::default()).await;
    let topic = unique("configs");
    let store = KafkaConfigStore::start(&store_config(&kafka), &topic, -1).await.expect("kafka store");
    config_contract(&store).await;
    let before = store.snapshot();
    drop(store);
    let reopened = KafkaConfigStore::start(&store_config(&kafka), &topic, -1).await.expect("reopen");
    let after = reopened.snapshot();
    assert_eq!(after.connectors, before.connectors);
    assert_eq!(after.task_configs, before.task_configs);
    assert_eq!(after.target_states, before.target_states);
    assert!(after.offset >= 8, "offset of the last record: {}", after.offset);
}

/// Config records exactly as Kafka Connect writes them (incl. uncommitted task configs, which must
/// not apply).
#[tokio::test(flavor = "multi_thread")]
async fn reads_a_config_topic_written_by_kafka_connect() {
    let kafka = Services::load().kafka();
    let topic = unique("kc-configs");
    drop(KafkaConfigStore::start(&store_config(&kafka), &topic, -1).await.expect("create"));
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &kafka).create().expect("producer");
    let raw: &[(&str, Option<&str>)] = &[
        (
            "connector-inventory",
            Some(
                r#"{"properties":{"connector.class":"io.debezium.connector.mysql.MySqlConnector","tasks.max":"1","name":"inventory"}}"#,
            ),
        ),
        (
            "task-inventory-0",
            Some(
                r#"{"properties":{"connector.class":"io.debezium.connector.mysql.MySqlConnector","task.class":"io.debezium.connector.mysql.MySqlConnectorTask"}}"#,
            ),
        ),
        ("commit-inventory", Some(r#"{"tasks":1}"#)),
        ("target-state-inventory", Some(r#"{"state":"PAUSED","state.v2":"STOPPED"}"#)),
        ("connector-half", Some(r#"{"properties":{"connector.class":"x"}}"#)),
        ("task-half-0", Some(r#"{"properties":{"a":"b"}}"#)),
        ("session-key", Some(r#"{"key":"abc","algorithm":"HmacSHA256","creation-timestamp":1}"#)),
    ];
    for (key, value) in raw {
        let mut record = BaseRecord::<str, str>::to(&topic).key(*key);
        if let Some(v) = value {
            record = record.payload(*v);
        }
        producer.send(record).expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let store = KafkaConfigStore::start(&store_config(&kafka), &topic, -1).await.expect("store");
    let s = store.snapshot();
    assert_eq!(s.connectors["inventory"]["connector.class"], "io.debezium.connector.mysql.MySqlConnector");
    assert_eq!(s.task_configs["inventory"][0]["task.class"], "io.debezium.connector.mysql.MySqlConnectorTask");
    assert_eq!(s.target_state("inventory"), TargetState::Stopped, "state.v2 wins");
    assert!(s.connectors.contains_key("half"));
    assert!(!s.task_configs.contains_key("half"), "task configs without their commit record do not apply");
    assert_eq!(s.offset, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_topic_with_several_partitions_is_an_error() {
    let kafka = Services::load().kafka();
    let topic = unique("configs-3p");
    drop(KafkaOffsetStore::start(&store_config(&kafka), spec(&topic, 3)).await.expect("a compacted 3-partition topic"));
    let err = KafkaConfigStore::start(&store_config(&kafka), &topic, -1).await.err().expect("refused");
    assert!(err.to_string().contains("exactly one partition"), "{err}");
}
