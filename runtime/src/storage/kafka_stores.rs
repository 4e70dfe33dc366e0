//! Offset and status stores on compacted Kafka topics, in Kafka Connect's exact formats, so a Kafka
//! Connect cluster's `connect-offsets` and `connect-status` topics can be read as they are:
//! - offsets: key `["<connector>",{source partition}]`, value the offset map, null = reset;
//! - statuses: `status-connector-<c>` / `status-task-<c>-<n>` →
//!   `{"state","trace","worker_id","generation"}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value as Json;
use sluice_api::JsonMap;
use tokio::sync::broadcast;

use super::config::{ClusterConfigState, ConfigStateMachine, ConfigStore, ConfigUpdate};
use super::kafka_log::{Apply, KafkaLog, LogRecord, TopicSpec};
use super::offsets::{apply, for_connector, lookup, offset_key, parse_offset_record, Entries};
use super::{ConnectorState, OffsetStore, Status, StatusStore, StoreError};

/// How long store reads and writes may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(30);

/// Client settings shared by the stores.
#[derive(Debug, Clone)]
pub struct KafkaStoreConfig {
    /// Brokers.
    pub bootstrap: String,
    /// librdkafka overrides (the worker's `admin.`/`producer.`/`consumer.` keys are not applied here).
    pub overrides: HashMap<String, String>,
}

impl KafkaStoreConfig {
    fn overrides(&self) -> HashMap<String, String> {
        let mut o = self.overrides.clone();
        // Same key → same partition as Java's default partitioner, so records written by Kafka
        // Connect and by sluice for one key stay in order.
        o.entry("partitioner".into()).or_insert_with(|| "murmur2_random".into());
        o
    }
}

/// Source offsets in the offsets topic.
pub struct KafkaOffsetStore {
    log: KafkaLog,
    entries: Arc<Mutex<Entries>>,
}

impl KafkaOffsetStore {
    /// Creates or opens the topic and reads it to the end.
    pub async fn start(config: &KafkaStoreConfig, spec: TopicSpec) -> Result<KafkaOffsetStore, StoreError> {
        let entries: Arc<Mutex<Entries>> = Arc::default();
        let sink = entries.clone();
        let topic = spec.name.clone();
        let apply_record: Apply = Box::new(move |LogRecord { key, value, .. }| {
            let Some((connector, partition, offset)) = parse_offset_record(key, value) else {
                tracing::warn!(topic, key = %String::from_utf8_lossy(key), "unreadable offsets record skipped");
                return;
            };
            if let Ok(mut e) = sink.lock() {
                apply(&mut e, &connector, vec![(partition, offset)]);
            }
        });
        let log = KafkaLog::start(&config.bootstrap, &config.overrides(), spec, apply_record, STORE_TIMEOUT).await?;
        Ok(KafkaOffsetStore { log, entries })
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    fn get(&self, connector: &str, partition: &JsonMap) -> Option<JsonMap> {
        self.entries.lock().ok().and_then(|e| lookup(&e, connector, partition))
    }

    fn connector_offsets(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        self.entries.lock().map(|e| for_connector(&e, connector)).unwrap_or_default()
    }

    async fn set(&self, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) -> Result<(), StoreError> {
        let writes = offsets.iter().map(|(partition, offset)| {
            let key = offset_key(connector, partition).into_bytes();
            let value = offset.as_ref().map(|o| Json::Object(o.clone()).to_string().into_bytes());
            async move { self.log.send(&key, value.as_deref(), STORE_TIMEOUT).await }
        });
        futures::future::try_join_all(writes).await?;
        Ok(())
    }
}

/// Connector and task statuses in the status topic. Writes go to the topic without waiting; a
/// status from an older generation of another worker never replaces a newer one (`putSafe`).
pub struct KafkaStatusStore {
    log: KafkaLog,
    state: Arc<Mutex<StatusMaps>>,
}

#[derive(Default)]
struct StatusMaps {
    connectors: BTreeMap<String, Status>,
    tasks: BTreeMap<(String, u32), Status>,
    /// Active topics: (connector, topic).
    topics: std::collections::BTreeSet<(String, String)>,
}

/// Kafka Connect's active-topic key: `status-topic-<topic>:connector-<connector>` (a topic name
/// cannot contain `:`).
fn topic_key(topic: &str, connector: &str) -> String {
    format!("status-topic-{topic}:connector-{connector}")
}

fn parse_topic_key(key: &str) -> Option<(String, String)> {
    let (topic, connector) = key.strip_prefix("status-topic-")?.split_once(":connector-")?;
    Some((connector.to_string(), topic.to_string()))
}

/// The active-topic value: `{"topic":{"name","connector","task","discoverTimestamp"}}`.
fn topic_json(topic: &str, connector: &str, task: u32) -> Vec<u8> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    serde_json::json!({"topic": {"name": topic, "connector": connector, "task": task, "discoverTimestamp": now}})
        .to_string()
        .into_bytes()
}

fn parse_state(name: &str) -> Option<ConnectorState> {
    Some(match name {
        "UNASSIGNED" => ConnectorState::Unassigned,
        "RUNNING" => ConnectorState::Running,
        "PAUSED" => ConnectorState::Paused,
        "FAILED" => ConnectorState::Failed,
        "RESTARTING" => ConnectorState::Restarting,
        "STOPPED" => ConnectorState::Stopped,
        _ => return None,
    })
}

/// The status value in Kafka Connect's field order (its status schema: state, trace, worker_id,
/// generation).
#[derive(serde::Serialize)]
struct StatusValue<'a> {
    state: &'a str,
    trace: Option<&'a str>,
    worker_id: &'a str,
    generation: i32,
}

fn status_json(s: &Status) -> Vec<u8> {
    let value = StatusValue {
        state: s.state.name(),
        trace: s.trace.as_deref(),
        worker_id: &s.worker_id,
        generation: s.generation,
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn parse_status(value: &[u8]) -> Option<Status> {
    let v: Json = serde_json::from_slice(value).ok()?;
    Some(Status {
        state: parse_state(v.get("state")?.as_str()?)?,
        trace: v.get("trace").and_then(Json::as_str).map(String::from),
        worker_id: v.get("worker_id").and_then(Json::as_str).unwrap_or_default().to_string(),
        generation: v.get("generation").and_then(Json::as_i64).unwrap_or(0) as i32,
    })
}

enum StatusKey {
    Connector(String),
    Task(String, u32),
}

fn parse_status_key(key: &str) -> Option<StatusKey> {
    if let Some(c) = key.strip_prefix("status-connector-") {
        return Some(StatusKey::Connector(c.to_string()));
    }
    let rest = key.strip_prefix("status-task-")?;
    let (connector, task) = rest.rsplit_once('-')?;
    Some(StatusKey::Task(connector.to_string(), task.parse().ok()?))
}

/// `putSafe`: replace only with a status from the same worker or a generation at least as new.
fn newer(existing: Option<&Status>, candidate: &Status) -> bool {
    existing.is_none_or(|e| e.worker_id == candidate.worker_id || candidate.generation >= e.generation)
}

impl KafkaStatusStore {
    /// Creates or opens the topic and reads it to the end.
    pub async fn start(config: &KafkaStoreConfig, spec: TopicSpec) -> Result<KafkaStatusStore, StoreError> {
        let state: Arc<Mutex<StatusMaps>> = Arc::default();
        let sink = state.clone();
        let apply_record: Apply = Box::new(move |LogRecord { key, value, .. }| {
            let text = std::str::from_utf8(key).unwrap_or_default();
            if let Some(pair) = parse_topic_key(text) {
                if let Ok(mut maps) = sink.lock() {
                    match value {
                        Some(_) => maps.topics.insert(pair),
                        None => maps.topics.remove(&pair),
                    };
                }
                return;
            }
            let Some(parsed) = parse_status_key(text) else { return };
            let Ok(mut maps) = sink.lock() else { return };
            let status = value.and_then(parse_status);
            match (parsed, status) {
                (StatusKey::Connector(c), Some(s)) => {
                    maps.connectors.insert(c, s);
                }
                (StatusKey::Connector(c), None) => {
                    maps.connectors.remove(&c);
                }
                (StatusKey::Task(c, t), Some(s)) => {
                    maps.tasks.insert((c, t), s);
                }
                (StatusKey::Task(c, t), None) => {
                    maps.tasks.remove(&(c, t));
                }
            }
        });
        let log = KafkaLog::start(&config.bootstrap, &config.overrides(), spec, apply_record, STORE_TIMEOUT).await?;
        Ok(KafkaStatusStore { log, state })
    }
}

impl StatusStore for KafkaStatusStore {
    fn put_connector(&self, connector: &str, status: Status) {
        let Ok(mut maps) = self.state.lock() else { return };
        if newer(maps.connectors.get(connector), &status) {
            self.log.send_nowait(format!("status-connector-{connector}").into_bytes(), Some(status_json(&status)));
            maps.connectors.insert(connector.to_string(), status);
        }
    }

    fn put_task(&self, connector: &str, task: u32, status: Status) {
        let Ok(mut maps) = self.state.lock() else { return };
        let key = (connector.to_string(), task);
        if newer(maps.tasks.get(&key), &status) {
            self.log.send_nowait(format!("status-task-{connector}-{task}").into_bytes(), Some(status_json(&status)));
            maps.tasks.insert(key, status);
        }
    }

    fn connector(&self, connector: &str) -> Option<Status> {
        self.state.lock().ok()?.connectors.get(connector).cloned()
    }

    fn tasks(&self, connector: &str) -> Vec<(u32, Status)> {
        self.state
            .lock()
            .map(|m| m.tasks.iter().filter(|((c, _), _)| c == connector).map(|((_, t), s)| (*t, s.clone())).collect())
            .unwrap_or_default()
    }

    fn remove(&self, connector: &str) {
        let Ok(mut maps) = self.state.lock() else { return };
        maps.connectors.remove(connector);
        self.log.send_nowait(format!("status-connector-{connector}").into_bytes(), None);
        let tasks: Vec<u32> = maps.tasks.keys().filter(|(c, _)| c == connector).map(|(_, t)| *t).collect();
        for t in tasks {
            maps.tasks.remove(&(connector.to_string(), t));
            self.log.send_nowait(format!("status-task-{connector}-{t}").into_bytes(), None);
        }
    }

    fn put_topic(&self, connector: &str, topic: &str, task: u32) {
        let Ok(mut maps) = self.state.lock() else { return };
        if maps.topics.iter().any(|(c, t)| c == connector && t == topic) {
            return;
        }
        if maps.topics.insert((connector.to_string(), topic.to_string())) {
            self.log.send_nowait(topic_key(topic, connector).into_bytes(), Some(topic_json(topic, connector, task)));
        }
    }

    fn topics(&self, connector: &str) -> Vec<String> {
        self.state
            .lock()
            .map(|m| m.topics.iter().filter(|(c, _)| c == connector).map(|(_, t)| t.clone()).collect())
            .unwrap_or_default()
    }

    fn reset_topics(&self, connector: &str) {
        let Ok(mut maps) = self.state.lock() else { return };
        let gone: Vec<String> = maps.topics.iter().filter(|(c, _)| c == connector).map(|(_, t)| t.clone()).collect();
        for topic in gone {
            maps.topics.remove(&(connector.to_string(), topic.clone()));
            self.log.send_nowait(topic_key(&topic, connector).into_bytes(), None);
        }
    }
}

/// Connector configs in the config topic (exactly one partition, as Kafka Connect requires).
pub struct KafkaConfigStore {
    log: KafkaLog,
    machine: Arc<Mutex<ConfigStateMachine>>,
    updates: broadcast::Sender<ConfigUpdate>,
}

impl KafkaConfigStore {
    /// Creates or opens the topic (one partition) and reads it to the end.
    pub async fn start(
        config: &KafkaStoreConfig,
        topic: &str,
        replication: i32,
    ) -> Result<KafkaConfigStore, StoreError> {
        let machine = Arc::new(Mutex::new(ConfigStateMachine::new()));
        let updates = broadcast::channel(1024).0;
        let (sink, tx) = (machine.clone(), updates.clone());
        let apply_record: Apply = Box::new(move |LogRecord { offset, key, value, .. }| {
            let Ok(key) = std::str::from_utf8(key) else { return };
            let value: Option<Json> = value.and_then(|v| serde_json::from_slice(v).ok());
            let update = sink.lock().ok().and_then(|mut m| m.apply(offset, key, value.as_ref()));
            if let Some(u) = update {
                let _ = tx.send(u);
            }
        });
        let spec = TopicSpec { name: topic.to_string(), partitions: 1, replication };
        let log = KafkaLog::start(&config.bootstrap, &config.overrides(), spec, apply_record, STORE_TIMEOUT).await?;
        if log.partitions() != 1 {
            return Err(StoreError::Kafka {
                topic: topic.to_string(),
                message: format!(
                    "the config topic must have exactly one partition, it has {}; use a new config.storage.topic",
                    log.partitions()
                ),
            });
        }
        Ok(KafkaConfigStore { log, machine, updates })
    }
}

#[async_trait]
impl ConfigStore for KafkaConfigStore {
    fn snapshot(&self) -> ClusterConfigState {
        self.machine.lock().map(|m| m.state.clone()).unwrap_or_default()
    }
    fn subscribe(&self) -> broadcast::Receiver<ConfigUpdate> {
        self.updates.subscribe()
    }
    async fn write_records(&self, records: Vec<(String, Option<Json>)>) -> Result<(), StoreError> {
        let bytes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            records.into_iter().map(|(k, v)| (k.into_bytes(), v.map(|v| v.to_string().into_bytes()))).collect();
        self.log.send_all(&bytes, STORE_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keys_and_values_in_kafka_connect_form() {
        assert!(matches!(parse_status_key("status-task-my-conn-12"), Some(StatusKey::Task(c, 12)) if c == "my-conn"));
        assert!(matches!(parse_status_key("status-connector-a-b"), Some(StatusKey::Connector(c)) if c == "a-b"));
        assert!(parse_status_key("status-topic-x:connector-y").is_none());
        let s =
            Status { state: ConnectorState::Running, trace: None, worker_id: "10.0.0.1:8083".into(), generation: 3 };
        assert_eq!(
            String::from_utf8(status_json(&s)).expect("utf8"),
            r#"{"state":"RUNNING","trace":null,"worker_id":"10.0.0.1:8083","generation":3}"#
        );
        let read =
            parse_status(br#"{"state":"FAILED","trace":"boom","worker_id":"w:1","generation":7}"#).expect("parses");
        assert_eq!((read.state, read.trace.as_deref(), read.generation), (ConnectorState::Failed, Some("boom"), 7));
    }

    #[test]
    fn put_safe_keeps_the_newer_generation() {
        let old = Status { state: ConnectorState::Running, trace: None, worker_id: "a".into(), generation: 5 };
        let stale = Status { state: ConnectorState::Unassigned, trace: None, worker_id: "b".into(), generation: 4 };
        let same_worker = Status { generation: 1, ..old.clone() };
        assert!(!newer(Some(&old), &stale));
        assert!(newer(Some(&old), &same_worker));
        assert!(newer(None, &stale));
    }
}
