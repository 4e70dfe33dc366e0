//! Connector and task statuses, as Kafka Connect's status backing store.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Runtime state of a connector or task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    /// Not running anywhere yet.
    Unassigned,
    /// Running.
    Running,
    /// Paused by the user.
    Paused,
    /// Failed; see the trace.
    Failed,
    /// Being restarted.
    Restarting,
    /// Stopped by the user (connectors only).
    Stopped,
}

impl ConnectorState {
    /// The state of a running instance: PAUSED when its target state is PAUSED, else RUNNING.
    pub fn running(paused: bool) -> ConnectorState {
        if paused {
            ConnectorState::Paused
        } else {
            ConnectorState::Running
        }
    }

    /// Kafka Connect's upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorState::Unassigned => "UNASSIGNED",
            ConnectorState::Running => "RUNNING",
            ConnectorState::Paused => "PAUSED",
            ConnectorState::Failed => "FAILED",
            ConnectorState::Restarting => "RESTARTING",
            ConnectorState::Stopped => "STOPPED",
        }
    }
}

/// A status record: `{"state","trace","worker_id","generation"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// State.
    pub state: ConnectorState,
    /// Error trace when FAILED.
    pub trace: Option<String>,
    /// Worker running it.
    pub worker_id: String,
    /// Group generation that wrote it.
    pub generation: i32,
}

/// Where statuses live.
pub trait StatusStore: Send + Sync {
    /// Records a connector's status.
    fn put_connector(&self, connector: &str, status: Status);
    /// Records a task's status.
    fn put_task(&self, connector: &str, task: u32, status: Status);
    /// A connector's status.
    fn connector(&self, connector: &str) -> Option<Status>;
    /// A connector's task statuses, by task number.
    fn tasks(&self, connector: &str) -> Vec<(u32, Status)>;
    /// Forgets a connector and its tasks.
    fn remove(&self, connector: &str);
    /// Records that `task` of `connector` used `topic` (Kafka Connect's active topics, KIP-558).
    /// Cheap when already recorded.
    fn put_topic(&self, connector: &str, topic: &str, task: u32);
    /// The connector's active topics, sorted.
    fn topics(&self, connector: &str) -> Vec<String>;
    /// Forgets the connector's active topics.
    fn reset_topics(&self, connector: &str);
}

/// In-memory statuses (standalone mode).
#[derive(Default)]
pub struct MemoryStatusStore {
    connectors: Mutex<BTreeMap<String, Status>>,
    tasks: Mutex<BTreeMap<(String, u32), Status>>,
    topics: Mutex<std::collections::BTreeSet<(String, String)>>,
}

impl StatusStore for MemoryStatusStore {
    fn put_connector(&self, connector: &str, status: Status) {
        if let Ok(mut m) = self.connectors.lock() {
            m.insert(connector.to_string(), status);
        }
    }
    fn put_task(&self, connector: &str, task: u32, status: Status) {
        if let Ok(mut m) = self.tasks.lock() {
            m.insert((connector.to_string(), task), status);
        }
    }
    fn connector(&self, connector: &str) -> Option<Status> {
        self.connectors.lock().ok()?.get(connector).cloned()
    }
    fn tasks(&self, connector: &str) -> Vec<(u32, Status)> {
        self.tasks
            .lock()
            .map(|m| m.iter().filter(|((c, _), _)| c == connector).map(|((_, t), s)| (*t, s.clone())).collect())
            .unwrap_or_default()
    }
    fn remove(&self, connector: &str) {
        if let Ok(mut m) = self.connectors.lock() {
            m.remove(connector);
        }
        if let Ok(mut m) = self.tasks.lock() {
            m.retain(|(c, _), _| c != connector);
        }
    }
    fn put_topic(&self, connector: &str, topic: &str, _task: u32) {
        if let Ok(mut t) = self.topics.lock() {
            t.insert((connector.to_string(), topic.to_string()));
        }
    }
    fn topics(&self, connector: &str) -> Vec<String> {
        self.topics
            .lock()
            .map(|t| t.iter().filter(|(c, _)| c == connector).map(|(_, topic)| topic.clone()).collect())
            .unwrap_or_default()
    }
    fn reset_topics(&self, connector: &str) {
        if let Ok(mut t) = self.topics.lock() {
            t.retain(|(c, _)| c != connector);
        }
    }
}
