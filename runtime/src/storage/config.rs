//! Connector configs, task configs, target states and restart requests: Kafka Connect's config
//! topic records and their meaning, one state machine shared by the memory and Kafka stores.
//!
//! Records (values are JSON): `connector-<c>` → `{"properties":{..}}` (null deletes the connector);
//! `task-<c>-<n>` → `{"properties":{..}}`, applied only once `commit-<c>` → `{"tasks":N}` arrives
//! (the atomicity barrier); `target-state-<c>` → `{"state","state.v2"}`;
//! `restart-connector-<c>` → `{"include-tasks","only-failed"}`; `logger-cluster-<namespace>` →
//! `{"level"}` (a log level for every worker, KIP-976).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value as Json};
use sluice_api::ConfigMap;
use tokio::sync::broadcast;

use super::StoreError;

/// What the user asked a connector to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Running.
    Started,
    /// Paused: tasks stay, do no work.
    Paused,
    /// Stopped: no tasks.
    Stopped,
}

impl TargetState {
    /// Kafka Connect's name.
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Started => "STARTED",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        }
    }

    fn parse(name: &str) -> Option<TargetState> {
        match name {
            "STARTED" => Some(TargetState::Started),
            "PAUSED" => Some(TargetState::Paused),
            "STOPPED" => Some(TargetState::Stopped),
            _ => None,
        }
    }
}

/// A consistent view of the config topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterConfigState {
    /// Offset of the last record applied (-1 before any).
    pub offset: i64,
    /// Connector configs.
    pub connectors: BTreeMap<String, ConfigMap>,
    /// Target states (absent means STARTED).
    pub target_states: BTreeMap<String, TargetState>,
    /// Committed task configs.
    pub task_configs: BTreeMap<String, Vec<ConfigMap>>,
}

impl ClusterConfigState {
    /// The target state of a connector (STARTED when none was written).
    pub fn target_state(&self, connector: &str) -> TargetState {
        self.target_states.get(connector).copied().unwrap_or(TargetState::Started)
    }
}

/// A change others should react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigUpdate {
    /// A connector config was created, changed or removed.
    Connector(String),
    /// A connector's task configs were committed.
    Tasks(String),
    /// A target state changed.
    TargetState(String),
    /// A restart was requested.
    Restart {
        /// Connector.
        connector: String,
        /// Restart its tasks too.
        include_tasks: bool,
        /// Only failed instances.
        only_failed: bool,
    },
    /// A log level was set for the whole cluster.
    LoggerLevel {
        /// Logger (and the loggers below it).
        namespace: String,
        /// Upper-case level.
        level: String,
    },
}

/// Where connector configs live. Implementations provide the record log (`write_records`,
/// `snapshot`, `subscribe`); the operations are the same records for every store.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// The current state.
    fn snapshot(&self) -> ClusterConfigState;
    /// Changes as they are applied.
    fn subscribe(&self) -> broadcast::Receiver<ConfigUpdate>;
    /// Appends config records (`key`, JSON value or tombstone) in order; returns once they apply.
    async fn write_records(&self, records: Vec<(String, Option<Json>)>) -> Result<(), StoreError>;

    /// Creates or replaces a connector config, optionally with an initial target state.
    async fn put_connector_config(
        &self,
        name: &str,
        config: &ConfigMap,
        target: Option<TargetState>,
    ) -> Result<(), StoreError> {
        let target = target.map(|t| records::target_state(name, t));
        self.write_records(target.into_iter().chain([records::connector(name, config)]).collect()).await
    }
    /// Removes a connector (its config and target state; its tasks go with it).
    async fn remove_connector(&self, name: &str) -> Result<(), StoreError> {
        self.write_records(records::remove(name)).await
    }
    /// Writes task configs and their commit record.
    async fn put_task_configs(&self, name: &str, configs: &[ConfigMap]) -> Result<(), StoreError> {
        self.write_records(records::tasks(name, configs)).await
    }
    /// Sets the target state.
    async fn put_target_state(&self, name: &str, state: TargetState) -> Result<(), StoreError> {
        self.write_records(vec![records::target_state(name, state)]).await
    }
    /// Records a restart request.
    async fn request_restart(&self, name: &str, include_tasks: bool, only_failed: bool) -> Result<(), StoreError> {
        self.write_records(vec![records::restart(name, include_tasks, only_failed)]).await
    }
    /// Sets a log level on every worker (`logger-cluster-<namespace>`).
    async fn put_logger_level(&self, namespace: &str, level: &str) -> Result<(), StoreError> {
        self.write_records(vec![records::logger_level(namespace, level)]).await
    }
}

/// The records that express each operation, in write order.
pub(crate) mod records {
    use super::*;

    pub fn connector(name: &str, config: &ConfigMap) -> (String, Option<Json>) {
        (format!("connector-{name}"), Some(json!({ "properties": config })))
    }
    pub fn target_state(name: &str, state: TargetState) -> (String, Option<Json>) {
        // Older workers do not know STOPPED: PAUSED is the closest v1 state, as Kafka Connect writes.
        let v1 = if state == TargetState::Stopped { TargetState::Paused } else { state };
        (format!("target-state-{name}"), Some(json!({"state": v1.name(), "state.v2": state.name()})))
    }
    pub fn remove(name: &str) -> Vec<(String, Option<Json>)> {
        vec![(format!("connector-{name}"), None), (format!("target-state-{name}"), None)]
    }
    pub fn tasks(name: &str, configs: &[ConfigMap]) -> Vec<(String, Option<Json>)> {
        let mut out: Vec<(String, Option<Json>)> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("task-{name}-{i}"), Some(json!({ "properties": c }))))
            .collect();
        out.push((format!("commit-{name}"), Some(json!({"tasks": configs.len()}))));
        out
    }
    pub fn logger_level(namespace: &str, level: &str) -> (String, Option<Json>) {
        (format!("logger-cluster-{namespace}"), Some(json!({"level": level})))
    }
    pub fn restart(name: &str, include_tasks: bool, only_failed: bool) -> (String, Option<Json>) {
        (format!("restart-connector-{name}"), Some(json!({"include-tasks": include_tasks, "only-failed": only_failed})))
    }
}

/// The state machine over config records.
#[derive(Debug, Default)]
pub(crate) struct ConfigStateMachine {
    pub state: ClusterConfigState,
    pending_tasks: BTreeMap<String, BTreeMap<u32, ConfigMap>>,
}

fn properties(value: &Json) -> Option<ConfigMap> {
    let props = value.get("properties")?.as_object()?;
    Some(props.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), String::from))).collect())
}

impl ConfigStateMachine {
    pub(crate) fn new() -> ConfigStateMachine {
        ConfigStateMachine {
            state: ClusterConfigState { offset: -1, ..Default::default() },
            pending_tasks: BTreeMap::new(),
        }
    }

    /// Applies one record; returns what changed.
    pub(crate) fn apply(&mut self, offset: i64, key: &str, value: Option<&Json>) -> Option<ConfigUpdate> {
        self.state.offset = self.state.offset.max(offset);
        let s = &mut self.state;
        if let Some(name) = key.strip_prefix("connector-") {
            match value.and_then(properties) {
                Some(config) => {
                    s.connectors.insert(name.to_string(), config);
                }
                None => {
                    s.connectors.remove(name);
                    s.task_configs.remove(name);
                    s.target_states.remove(name);
                    self.pending_tasks.remove(name);
                }
            }
            return Some(ConfigUpdate::Connector(name.to_string()));
        }
        if let Some(rest) = key.strip_prefix("task-") {
            let (name, task) = rest.rsplit_once('-')?;
            let task: u32 = task.parse().ok()?;
            if let Some(config) = value.and_then(properties) {
                self.pending_tasks.entry(name.to_string()).or_default().insert(task, config);
            }
            return None;
        }
        if let Some(name) = key.strip_prefix("commit-") {
            let count = value?.get("tasks")?.as_u64()? as u32;
            let pending = self.pending_tasks.remove(name).unwrap_or_default();
            let configs: Option<Vec<ConfigMap>> = (0..count).map(|i| pending.get(&i).cloned()).collect();
            match configs {
                Some(c) => {
                    s.task_configs.insert(name.to_string(), c);
                    return Some(ConfigUpdate::Tasks(name.to_string()));
                }
                None => {
                    tracing::warn!(connector = name, count, "commit record without all its task configs; ignored");
                    return None;
                }
            }
        }
        if let Some(name) = key.strip_prefix("target-state-") {
            match value {
                None => {
                    s.target_states.remove(name);
                }
                Some(v) => {
                    let state = v
                        .get("state.v2")
                        .and_then(Json::as_str)
                        .or_else(|| v.get("state").and_then(Json::as_str))
                        .and_then(TargetState::parse)?;
                    s.target_states.insert(name.to_string(), state);
                }
            }
            return Some(ConfigUpdate::TargetState(name.to_string()));
        }
        if let Some(namespace) = key.strip_prefix("logger-cluster-") {
            let level = value?.get("level")?.as_str()?.to_ascii_uppercase();
            return Some(ConfigUpdate::LoggerLevel { namespace: namespace.to_string(), level });
        }
        if let Some(name) = key.strip_prefix("restart-connector-") {
            let v = value?;
            return Some(ConfigUpdate::Restart {
                connector: name.to_string(),
                include_tasks: v.get("include-tasks").and_then(Json::as_bool).unwrap_or(false),
                only_failed: v.get("only-failed").and_then(Json::as_bool).unwrap_or(false),
            });
        }
        None
    }
}

/// Configs in memory (standalone mode and tests), through the same state machine as the topic.
pub struct MemoryConfigStore {
    machine: Mutex<(ConfigStateMachine, i64)>,
    updates: broadcast::Sender<ConfigUpdate>,
}

impl Default for MemoryConfigStore {
    fn default() -> Self {
        MemoryConfigStore { machine: Mutex::new((ConfigStateMachine::new(), 0)), updates: broadcast::channel(1024).0 }
    }
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    fn snapshot(&self) -> ClusterConfigState {
        self.machine.lock().map(|g| g.0.state.clone()).unwrap_or_default()
    }
    fn subscribe(&self) -> broadcast::Receiver<ConfigUpdate> {
        self.updates.subscribe()
    }
    async fn write_records(&self, records: Vec<(String, Option<Json>)>) -> Result<(), StoreError> {
        let mut guard = self
            .machine
            .lock()
            .map_err(|_| StoreError::Corrupt { path: "memory".into(), message: "poisoned".into() })?;
        for (key, value) in records {
            let offset = guard.1;
            guard.1 += 1;
            if let Some(update) = guard.0.apply(offset, &key, value.as_ref()) {
                let _ = self.updates.send(update);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_configs_apply_only_after_their_commit_record() {
        let mut m = ConfigStateMachine::new();
        let props = |v: &str| json!({"properties": {"k": v}});
        m.apply(0, "connector-c", Some(&props("c")));
        m.apply(1, "task-c-0", Some(&props("t0")));
        m.apply(2, "task-c-1", Some(&props("t1")));
        assert!(!m.state.task_configs.contains_key("c"), "not before the commit");
        assert_eq!(m.apply(3, "commit-c", Some(&json!({"tasks": 2}))), Some(ConfigUpdate::Tasks("c".into())));
        assert_eq!(m.state.task_configs["c"].len(), 2);
        // A commit naming more tasks than were written is ignored (Kafka Connect: inconsistent).
        m.apply(4, "task-c-0", Some(&props("x")));
        assert_eq!(m.apply(5, "commit-c", Some(&json!({"tasks": 3}))), None);
        assert_eq!(m.state.task_configs["c"][0]["k"], "t0");
        assert_eq!(m.state.offset, 5);
    }

    #[test]
    fn cluster_logger_levels_are_updates_not_state() {
        let mut m = ConfigStateMachine::new();
        let (key, value) = records::logger_level("sluice_runtime", "DEBUG");
        assert_eq!(key, "logger-cluster-sluice_runtime");
        assert_eq!(
            m.apply(0, &key, value.as_ref()),
            Some(ConfigUpdate::LoggerLevel { namespace: "sluice_runtime".into(), level: "DEBUG".into() })
        );
        assert_eq!(m.apply(1, &key, None), None);
        assert!(m.state.connectors.is_empty());
    }

    #[test]
    fn target_state_prefers_v2_and_writes_both() {
        let mut m = ConfigStateMachine::new();
        let (key, value) = records::target_state("c", TargetState::Stopped);
        assert_eq!(value, Some(json!({"state": "PAUSED", "state.v2": "STOPPED"})));
        m.apply(0, &key, value.as_ref());
        assert_eq!(m.state.target_state("c"), TargetState::Stopped);
        m.apply(1, "target-state-d", Some(&json!({"state": "PAUSED"})));
        assert_eq!(m.state.target_state("d"), TargetState::Paused);
        assert_eq!(m.state.target_state("unknown"), TargetState::Started);
    }

    #[test]
    fn deleting_a_connector_drops_its_tasks_and_state() {
        let mut m = ConfigStateMachine::new();
        for (i, (k, v)) in [records::connector("c", &ConfigMap::new())]
            .into_iter()
            .chain(records::tasks("c", &[ConfigMap::new()]))
            .chain([records::target_state("c", TargetState::Paused)])
            .chain(records::remove("c"))
            .enumerate()
        {
            m.apply(i as i64, &k, v.as_ref());
        }
        assert!(m.state.connectors.is_empty() && m.state.task_configs.is_empty() && m.state.target_states.is_empty());
    }
}
