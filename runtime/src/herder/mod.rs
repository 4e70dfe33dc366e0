//! Herders: the only way into the cluster. The REST API calls the [`Herder`] trait; the standalone
//! herder runs everything on this worker, the distributed one (later) on the group.

mod distributed;
mod standalone;
pub mod validate;

use async_trait::async_trait;
use sluice_api::{ConfigErrors, ConfigMap, ConnectorType, PluginInfo};

use crate::worker::OffsetsError;
pub use crate::worker::{ConnectorOffset, ConnectorOffsets};

pub use distributed::DistributedHerder;
pub use standalone::StandaloneHerder;

/// What a herder call can fail with; each maps to Kafka Connect's REST status.
#[derive(Debug, thiserror::Error)]
pub enum HerderError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the connector exists.
    #[error("Connector {0} already exists")]
    AlreadyExists(String),
    /// 400: invalid config.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigErrors),
    /// 400: any other bad request.
    #[error("{0}")]
    BadRequest(String),
    /// 409: conflicting operation.
    #[error("{0}")]
    Conflict(String),
    /// 403: the worker's config forbids it.
    #[error("{0}")]
    Forbidden(String),
    /// 409 unless routed: the work runs on another worker (its id, `host:port`), where the REST
    /// layer sends the request (Kafka Connect's `NotAssignedException`).
    #[error("{message}")]
    NotAssigned {
        /// The owner's worker id.
        worker: String,
        /// What to answer when the request cannot be routed.
        message: String,
    },
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl HerderError {
    /// The HTTP status Kafka Connect answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            HerderError::NotFound(_) => 404,
            HerderError::AlreadyExists(_) | HerderError::Conflict(_) | HerderError::NotAssigned { .. } => 409,
            HerderError::InvalidConfig(_) | HerderError::BadRequest(_) => 400,
            HerderError::Forbidden(_) => 403,
            HerderError::Internal(_) => 500,
        }
    }

    pub(crate) fn connector_not_found(name: &str) -> HerderError {
        HerderError::NotFound(format!("Connector {name} not found"))
    }

    pub(crate) fn task_not_found(name: &str, task: u32) -> HerderError {
        HerderError::NotFound(format!("Task {name}-{task} not found"))
    }

    /// Offsets can change only while the connector is STOPPED (Kafka Connect's wording).
    pub(crate) fn not_stopped(name: &str) -> HerderError {
        HerderError::BadRequest(format!(
            "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
        ))
    }
}

impl From<OffsetsError> for HerderError {
    fn from(e: OffsetsError) -> HerderError {
        match e {
            OffsetsError::BadRequest(m) => HerderError::BadRequest(m),
            OffsetsError::Failed(m) => HerderError::Internal(m),
        }
    }
}

/// Which instances a restart request covers, given the current statuses.
pub(crate) struct RestartPlan {
    /// Restart the connector instance.
    pub connector: bool,
    /// Task numbers to restart.
    pub tasks: Vec<u32>,
}

impl RestartPlan {
    pub(crate) fn new(status: &ConnectorStateInfo, include_tasks: bool, only_failed: bool) -> RestartPlan {
        let failed = |s: &str| s == "FAILED";
        RestartPlan {
            connector: !only_failed || failed(status.connector.state),
            tasks: if include_tasks {
                status.tasks.iter().filter(|t| !only_failed || failed(t.state)).map(|t| t.id).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The 202 body: the covered instances shown as RESTARTING.
    pub(crate) fn mark(&self, mut status: ConnectorStateInfo) -> ConnectorStateInfo {
        if self.connector {
            status.connector.state = "RESTARTING";
        }
        for t in &mut status.tasks {
            if self.tasks.contains(&t.id) {
                t.state = "RESTARTING";
            }
        }
        status
    }
}

/// `GET /connectors/{c}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectorInfo {
    /// Name.
    pub name: String,
    /// Config (secrets masked).
    pub config: ConfigMap,
    /// Task ids.
    pub tasks: Vec<TaskRef>,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub connector_type: &'static str,
}

/// `{"connector","task"}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRef {
    /// Connector.
    pub connector: String,
    /// Task number.
    pub task: u32,
}

/// One state in a status body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StateInfo {
    /// State name.
    pub state: &'static str,
    /// Worker id.
    pub worker_id: String,
    /// Trace, omitted when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// A task's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskStateInfo {
    /// Task number.
    pub id: u32,
    /// State.
    pub state: &'static str,
    /// Worker id.
    pub worker_id: String,
    /// Trace, omitted when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// `GET /connectors/{c}/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectorStateInfo {
    /// Name.
    pub name: String,
    /// Connector state.
    pub connector: StateInfo,
    /// Task states.
    pub tasks: Vec<TaskStateInfo>,
    /// `source` or `sink`.
    #[serde(rename = "type")]
    pub connector_type: &'static str,
}

/// `GET /connectors/{c}/tasks` entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskInfo {
    /// Id.
    pub id: TaskRef,
    /// Config (secrets masked).
    pub config: ConfigMap,
}

/// The operations the REST API needs.
#[async_trait]
pub trait Herder: Send + Sync {
    /// Connector names, sorted.
    async fn connectors(&self) -> Vec<String>;
    /// Connector info.
    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, HerderError>;
    /// Connector config (secrets masked).
    async fn connector_config(&self, name: &str) -> Result<ConfigMap, HerderError>;
    /// Connector config as stored, secrets in clear: for merges inside the worker (PATCH), never
    /// for output.
    async fn stored_connector_config(&self, name: &str) -> Result<ConfigMap, HerderError>;
    /// Connector and task states.
    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, HerderError>;
    /// Task configs.
    async fn task_configs(&self, name: &str) -> Result<Vec<TaskInfo>, HerderError>;
    /// Creates or replaces a connector. Returns whether it was created, and its info. `initial`:
    /// the target state of a new connector (`initial_state` of `POST /connectors`; default
    /// STARTED); a replaced connector keeps its target state.
    async fn put_connector_config(
        &self,
        name: &str,
        config: ConfigMap,
        allow_replace: bool,
        initial: Option<crate::storage::TargetState>,
    ) -> Result<(bool, ConnectorInfo), HerderError>;
    /// Deletes a connector.
    async fn delete_connector(&self, name: &str) -> Result<(), HerderError>;
    /// Target state PAUSED: tasks stay assigned but do no work.
    async fn pause_connector(&self, name: &str) -> Result<(), HerderError>;
    /// Target state STARTED (from PAUSED or STOPPED).
    async fn resume_connector(&self, name: &str) -> Result<(), HerderError>;
    /// Target state STOPPED: the connector and its tasks shut down and its task configs are emptied.
    async fn stop_connector(&self, name: &str) -> Result<(), HerderError>;
    /// Restarts the connector, and its tasks with `include_tasks`; `only_failed` restricts both to
    /// FAILED instances. Returns the status with the restarting instances marked RESTARTING, or
    /// `None` for the plain restart (both flags false, answered 204).
    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, HerderError>;
    /// Restarts one task.
    async fn restart_task(&self, name: &str, task: u32) -> Result<(), HerderError>;
    /// The connector's committed offsets.
    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, HerderError>;
    /// Alters offsets; the connector must be STOPPED.
    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<(), HerderError>;
    /// Resets every offset; the connector must be STOPPED.
    async fn reset_connector_offsets(&self, name: &str) -> Result<(), HerderError>;
    /// The topics the connector has used (`GET /connectors/{c}/topics`).
    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, HerderError>;
    /// Forgets the connector's active topics (`PUT /connectors/{c}/topics/reset`).
    async fn reset_connector_topics(&self, name: &str) -> Result<(), HerderError>;
    /// Installed plugins.
    fn plugins(&self) -> Vec<PluginInfo>;
    /// Group membership as this worker sees it (`GET /admin/cluster`): leader, generation,
    /// rebalance count and timing, and assignments.
    fn cluster(&self) -> serde_json::Value {
        serde_json::json!({"mode": "standalone"})
    }
    /// The leader's REST URL when this worker is a follower that knows its leader (distributed
    /// mode): connector changes are forwarded there. `None`: handle requests here.
    fn leader_url(&self) -> Option<String> {
        None
    }
    /// The leader's REST URL, this worker's own when it leads (distributed mode, once joined).
    fn leader_rest_url(&self) -> Option<String> {
        None
    }
    /// The Kafka cluster id, when known.
    fn kafka_cluster_id(&self) -> Option<String>;
    /// `Ok` when the worker can serve (distributed: it has joined its group; the stores are read
    /// before the API starts); otherwise what it is waiting for.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    /// Prometheus text of this worker's metrics (`GET /metrics`).
    async fn metrics_text(&self) -> String;
    /// `PUT /admin/loggers/{namespace}?scope=cluster`: sets a level on every worker. `Ok(true)`:
    /// written to the config topic, every worker (this one too) applies it as it reads the record;
    /// `Ok(false)`: there is no cluster (standalone), the caller applies it to this worker.
    async fn set_cluster_logger_level(&self, _namespace: &str, _level: &str) -> Result<bool, HerderError> {
        Ok(false)
    }
}

/// Active topics of an existing connector, as Kafka Connect (403 when tracking is off).
pub(crate) fn active_topics(
    worker: &crate::worker::Worker,
    name: &str,
    exists: bool,
) -> Result<Vec<String>, HerderError> {
    if !worker.config().topic_tracking() {
        return Err(HerderError::Forbidden("Topic tracking is disabled.".into()));
    }
    if !exists {
        return Err(HerderError::connector_not_found(name));
    }
    Ok(worker.statuses().topics(name))
}

/// Resets an existing connector's active topics (403 when tracking or its reset is off).
pub(crate) fn reset_active_topics(worker: &crate::worker::Worker, name: &str, exists: bool) -> Result<(), HerderError> {
    if !worker.config().topic_tracking() {
        return Err(HerderError::Forbidden("Topic tracking is disabled.".into()));
    }
    if !worker.config().topic_tracking_reset() {
        return Err(HerderError::Forbidden("Topic tracking reset is disabled.".into()));
    }
    if !exists {
        return Err(HerderError::connector_not_found(name));
    }
    worker.statuses().reset_topics(name);
    Ok(())
}

/// Checks a config's `name` against the name in the URL, filling it in when absent (as Kafka Connect).
pub(crate) fn apply_name(name: &str, config: &mut ConfigMap) -> Result<(), HerderError> {
    match config.get("name") {
        Some(n) if n != name => Err(HerderError::BadRequest(format!(
            "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
        ))),
        Some(_) => Ok(()),
        None => {
            config.insert("name".into(), name.to_string());
            Ok(())
        }
    }
}

/// Finds a plugin by class name or alias.
pub fn find_plugin<'a>(plugins: &'a [PluginInfo], class: &str) -> Option<&'a PluginInfo> {
    plugins.iter().find(|p| p.matches(class.trim()))
}

/// Full validation of a connector config: the common keys, then the connector's own (pure, no I/O).
pub fn validate_connector_config(
    plugins: &[PluginInfo],
    config: &ConfigMap,
) -> Result<(PluginInfo, ConnectorType), ConfigErrors> {
    let class = config.get("connector.class").cloned().unwrap_or_default();
    let plugin = match find_plugin(plugins, &class) {
        Some(p) => *p,
        None if class.is_empty() => {
            return Err(ConfigErrors::one(
                "connector.class",
                "Missing required configuration \"connector.class\" which has no default value.",
            ))
        }
        None => {
            let known: Vec<&str> = plugins.iter().map(|p| p.class).collect();
            return Err(ConfigErrors::one(
                "connector.class",
                format!("Invalid value {class} for configuration connector.class: Class {class} could not be found. Known connectors: {}", known.join(", ")),
            ));
        }
    };
    let common = match plugin.connector_type {
        ConnectorType::Source => crate::config::source_connector_def(),
        ConnectorType::Sink => crate::config::sink_connector_def(),
    };
    let mut errors = ConfigErrors::default();
    if let Err(e) = common.parse(config) {
        errors.extend(e);
    }
    if let Err(e) = crate::transforms::TransformChain::from_config(config) {
        errors.extend(e);
    }
    if plugin.connector_type == ConnectorType::Sink {
        let topics = config.get("topics").is_some_and(|t| !t.trim().is_empty());
        let regex = config.get("topics.regex").is_some_and(|t| !t.trim().is_empty());
        if topics == regex {
            errors.0.push(sluice_api::ConfigError::new(
                "topics",
                if topics {
                    "topics and topics.regex are mutually exclusive options, but both are set."
                } else {
                    "Must configure one of topics or topics.regex"
                },
            ));
        }
    }
    let instance = (plugin.create)();
    if let sluice_api::ConnectorInstance::Source(source) = &instance {
        if config.get("transaction.boundary").is_some_and(|b| b.trim().eq_ignore_ascii_case("connector")) {
            errors.0.push(sluice_api::ConfigError::new(
                "transaction.boundary",
                format!("{} does not define its own transaction boundaries; use poll or interval", plugin.class),
            ));
        }
        if config.get("exactly.once.support").is_some_and(|s| s.trim().eq_ignore_ascii_case("required"))
            && !source.exactly_once_support()
        {
            errors.0.push(sluice_api::ConfigError::new(
                "exactly.once.support",
                format!("{} does not support exactly-once delivery, which this config requires", plugin.class),
            ));
        }
    }
    let resolved = crate::config::resolve_secrets(config);
    match resolved {
        Ok(resolved) => {
            if let Err(e) = instance.as_connector().validate(&resolved) {
                errors.extend(e);
            }
        }
        Err(e) => errors.extend(e),
    }
    errors.into_result().map(|_| (plugin, plugin.connector_type))
}

/// Worker-level gauges and every task's counters, as Prometheus text.
pub(crate) fn render_metrics(worker: &crate::worker::Worker, connectors: usize, cluster: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP sluice_connector_count Connectors configured in the cluster.\n# TYPE sluice_connector_count gauge\nsluice_connector_count {connectors}"
    );
    let _ = writeln!(
        out,
        "# HELP sluice_task_count Tasks running on this worker.\n# TYPE sluice_task_count gauge\nsluice_task_count {}",
        worker.running_task_count()
    );
    if let Some(n) = cluster.get("rebalances").and_then(serde_json::Value::as_u64) {
        let _ = writeln!(
            out,
            "# HELP sluice_completed_rebalances_total Rebalances this worker completed.\n# TYPE sluice_completed_rebalances_total counter\nsluice_completed_rebalances_total {n}"
        );
    }
    if let Some(ms) = cluster.get("last_rebalance_ms").and_then(serde_json::Value::as_f64) {
        let _ = writeln!(
            out,
            "# HELP sluice_rebalance_last_time_ms Duration of the last rebalance.\n# TYPE sluice_rebalance_last_time_ms gauge\nsluice_rebalance_last_time_ms {ms}"
        );
    }
    worker.metrics().render(&mut out);
    out
}
