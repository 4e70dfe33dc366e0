//! The worker: runs the connector tasks it is given, one tokio task each, with converters between
//! Kafka bytes and records, and stops them cleanly.

mod dlq;
mod kafka;
mod offsets_admin;
mod sink;
mod source;
mod state_topics;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use sluice_api::{ConfigErrors, ConfigMap, ConnectError, SinkTask, SourceTask};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{resolve_secrets, ErrorTolerance, WorkerConfig};
use crate::converters::{create_converter, Converter};
use crate::storage::{ConnectorState, OffsetStore, Status, StatusStore};

pub use kafka::KafkaClients;
pub use offsets_admin::{ConnectorOffset, ConnectorOffsets, OffsetsError};

/// Identifies a task: connector name and task number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Connector name.
    pub connector: String,
    /// Task number.
    pub task: u32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.connector, self.task)
    }
}

/// Errors starting tasks.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The connector config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A Kafka client could not be created.
    #[error("cannot create Kafka client for {task}: {source}")]
    Kafka {
        /// The task.
        task: TaskId,
        /// The cause.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

struct RunningTask {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    paused: watch::Sender<bool>,
}

/// Runs tasks. Shared by the herders.
pub struct Worker {
    config: WorkerConfig,
    worker_id: String,
    clients: KafkaClients,
    offsets: Arc<dyn OffsetStore>,
    statuses: Arc<dyn StatusStore>,
    tasks: Mutex<BTreeMap<TaskId, RunningTask>>,
    /// Connectors whose target state is PAUSED: their tasks start paused.
    paused: Mutex<std::collections::BTreeSet<String>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Source tasks run exactly-once (transactional producers).
    exactly_once: bool,
}

/// Per-connector settings the task loops need, resolved from the connector config.
pub(crate) struct TaskSettings {
    pub id: TaskId,
    pub task_config: ConfigMap,
    pub key_converter: Box<dyn Converter>,
    pub value_converter: Box<dyn Converter>,
    pub key_converter_class: String,
    pub value_converter_class: String,
    pub tolerance: ErrorTolerance,
    pub log_errors: bool,
    pub log_include_messages: bool,
    pub retry_delay_max: Duration,
    pub flush_interval: Duration,
    pub buffer_max_bytes: usize,
    pub shutdown_timeout: Duration,
    pub metrics: Arc<crate::metrics::TaskMetrics>,
    pub transforms: crate::transforms::TransformChain,
    /// Where active topics are recorded (`None`: `topic.tracking.enable=false`).
    pub topic_tracking: Option<Arc<dyn StatusStore>>,
}

impl TaskSettings {
    /// Records `topic` as active for the connector (Kafka Connect's KIP-558 topic tracking).
    pub(crate) fn topic_active(&self, topic: &str) {
        if let Some(store) = &self.topic_tracking {
            store.put_topic(&self.id.connector, topic, self.id.task);
        }
    }
}

impl Worker {
    /// A worker with the given stores.
    pub fn new(
        config: WorkerConfig,
        worker_id: String,
        offsets: Arc<dyn OffsetStore>,
        statuses: Arc<dyn StatusStore>,
    ) -> Result<Worker, rdkafka::error::KafkaError> {
        let clients = KafkaClients::new(&config)?;
        Ok(Worker {
            config,
            worker_id,
            clients,
            offsets,
            statuses,
            tasks: Mutex::new(BTreeMap::new()),
            paused: Mutex::new(Default::default()),
            metrics: Arc::default(),
            exactly_once: false,
        })
    }

    /// Runs source tasks exactly-once (`exactly.once.source.support=enabled` on a distributed
    /// worker): records and their offsets are committed in one Kafka transaction.
    pub fn with_exactly_once_sources(mut self, enabled: bool) -> Worker {
        self.exactly_once = enabled;
        self
    }

    /// Whether source tasks run exactly-once.
    pub fn exactly_once_sources(&self) -> bool {
        self.exactly_once
    }

    /// Fences the transactional producers of `connector`'s tasks `tasks` (exactly-once sources: a
    /// connector whose task count shrinks leaves no zombie task able to commit). Each task fences
    /// its own predecessor when it starts; this covers the task numbers that no longer exist.
    pub async fn fence_source_tasks(&self, connector: &str, tasks: std::ops::Range<u32>) -> Result<(), String> {
        for task in tasks {
            let id = format!("{}-{connector}-{task}", self.config.group_id());
            let clients = self.clients.clone();
            let fenced = tokio::task::spawn_blocking({
                let id = id.clone();
                move || clients.fence(&id)
            })
            .await
            .map_err(|e| format!("fencing {id} panicked: {e}"))?;
            fenced.map_err(|e| format!("could not fence {id}: {e}"))?;
            tracing::info!(connector, transactional_id = %id, "fenced the producer of a removed task");
        }
        Ok(())
    }

    /// Task counters, for `GET /metrics`.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Tasks running on this worker.
    pub fn running_task_count(&self) -> usize {
        self.tasks.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// This worker's id (`host:port`).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }
    /// The worker config.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }
    /// The status store.
    pub fn statuses(&self) -> &Arc<dyn StatusStore> {
        &self.statuses
    }
    /// The offset store.
    pub fn offsets(&self) -> &Arc<dyn OffsetStore> {
        &self.offsets
    }
    /// The worker's admin client.
    pub fn admin(&self) -> &Arc<AdminClient<DefaultClientContext>> {
        &self.clients.admin
    }

    /// The Kafka cluster id (for `GET /`), `None` when the broker does not say within 5 s.
    pub async fn fetch_cluster_id(&self) -> Option<String> {
        let admin = self.clients.admin.clone();
        tokio::task::spawn_blocking(move || admin.inner().fetch_cluster_id(Duration::from_secs(5))).await.ok().flatten()
    }

    /// Records a status for a task.
    pub fn set_task_status(&self, id: &TaskId, state: ConnectorState, trace: Option<String>) {
        self.statuses.put_task(
            &id.connector,
            id.task,
            Status { state, trace, worker_id: self.worker_id.clone(), generation: 0 },
        );
    }

    fn converter(
        &self,
        connector_config: &ConfigMap,
        which: &str,
        is_key: bool,
    ) -> Result<(Box<dyn Converter>, String), ConfigErrors> {
        let prefix = format!("{which}.");
        let (class, props) = match connector_config.get(which).filter(|c| !c.trim().is_empty()) {
            Some(class) => (class.clone(), strip_prefix(connector_config, &prefix)),
            None => (self.config.parsed().string(which), self.config.parsed().originals_with_prefix(&prefix)),
        };
        Ok((create_converter(which, &class, &props, is_key)?, class))
    }

    fn settings(
        &self,
        id: &TaskId,
        connector_config: &ConfigMap,
        task_config: ConfigMap,
    ) -> Result<TaskSettings, ConfigErrors> {
        let connector_config = resolve_secrets(connector_config)?;
        let task_config = resolve_secrets(&task_config)?;
        let parsed = crate::config::common_connector_def().parse(&connector_config)?;
        let (key_converter, key_converter_class) = self.converter(&connector_config, "key.converter", true)?;
        let (value_converter, value_converter_class) = self.converter(&connector_config, "value.converter", false)?;
        Ok(TaskSettings {
            id: id.clone(),
            task_config,
            key_converter,
            value_converter,
            key_converter_class,
            value_converter_class,
            tolerance: ErrorTolerance::parse(&parsed.string("errors.tolerance")),
            log_errors: parsed.boolean("errors.log.enable"),
            log_include_messages: parsed.boolean("errors.log.include.messages"),
            retry_delay_max: Duration::from_millis(parsed.long("errors.retry.delay.max.ms").max(1) as u64),
            flush_interval: self.config.offset_flush_interval(),
            buffer_max_bytes: self.config.task_buffer_max_bytes(),
            shutdown_timeout: self.config.shutdown_timeout(),
            metrics: self.metrics.task(id),
            transforms: crate::transforms::TransformChain::from_config(&connector_config)?,
            topic_tracking: self.config.topic_tracking().then(|| self.statuses.clone()),
        })
    }

    /// Starts a source task.
    pub fn start_source_task(
        &self,
        id: TaskId,
        connector_config: &ConfigMap,
        task_config: ConfigMap,
        task: Box<dyn SourceTask>,
    ) -> Result<(), WorkerError> {
        let settings = self.settings(&id, connector_config, task_config)?;
        let parsed = crate::config::source_connector_def().parse(&resolve_secrets(connector_config)?)?;
        let txn = if self.exactly_once {
            let interval = match parsed.string("transaction.boundary").as_str() {
                "interval" => Some(match parsed.long("transaction.boundary.interval.ms") {
                    ms if ms > 0 => Duration::from_millis(ms as u64),
                    _ => self.config.offset_flush_interval(),
                }),
                _ => None,
            };
            Some(source::Transactions::new(
                format!("{}-{}-{}", self.config.group_id(), id.connector, id.task),
                self.config.bootstrap_servers(),
                self.config.offset_topic(),
                interval,
            ))
        } else if parsed.string("exactly.once.support") == "required" {
            return Err(WorkerError::Config(ConfigErrors::one(
                "exactly.once.support",
                "required, but this worker does not run exactly-once sources (set exactly.once.source.support=enabled on every worker of a distributed cluster)",
            )));
        } else {
            None
        };
        let producer = self
            .clients
            .producer(
                &id,
                connector_config,
                settings.buffer_max_bytes,
                txn.as_ref().map(|t| t.transactional_id.as_str()),
            )
            .map_err(|source| WorkerError::Kafka { task: id.clone(), source })?;
        let state = self.clients.state_topics(&id);
        let topic_creation = source::TopicCreation::from_config(connector_config);
        let runner = source::SourceRunner::new(
            settings,
            task,
            producer,
            self.clients.admin.clone(),
            topic_creation,
            self.offsets.clone(),
            txn,
            Arc::new(state),
        );
        self.spawn(id, move |cancel, report, paused| runner.run(cancel, report, paused));
        Ok(())
    }

    /// Starts a sink task.
    pub fn start_sink_task(
        &self,
        id: TaskId,
        connector_config: &ConfigMap,
        task_config: ConfigMap,
        task: Box<dyn SinkTask>,
    ) -> Result<(), WorkerError> {
        let settings = self.settings(&id, connector_config, task_config)?;
        let parsed = crate::config::sink_connector_def().parse(&resolve_secrets(connector_config)?)?;
        let subscription = sink::Subscription::from_config(&parsed)?;
        let (consumer, events) = self
            .clients
            .sink_consumer(&id, connector_config)
            .map_err(|source| WorkerError::Kafka { task: id.clone(), source })?;
        let dlq_topic = parsed.string("errors.deadletterqueue.topic.name");
        let dlq = if dlq_topic.is_empty() {
            None
        } else {
            let producer = self
                .clients
                .dlq_producer(&id, connector_config)
                .map_err(|source| WorkerError::Kafka { task: id.clone(), source })?;
            let settings = dlq::DlqSettings {
                topic: dlq_topic,
                replication: parsed.int("errors.deadletterqueue.topic.replication.factor"),
                context_headers: parsed.boolean("errors.deadletterqueue.context.headers.enable"),
            };
            Some(dlq::DeadLetterQueue::new(settings, id.clone(), producer))
        };
        let runner =
            sink::SinkRunner::new(settings, task, consumer, events, subscription, dlq, self.clients.admin.clone());
        self.spawn(id, move |cancel, report, paused| runner.run(cancel, report, paused));
        Ok(())
    }

    fn spawn<F, Fut>(&self, id: TaskId, run: F)
    where
        F: FnOnce(CancellationToken, StatusReporter, watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let reporter =
            StatusReporter { id: id.clone(), worker_id: self.worker_id.clone(), statuses: self.statuses.clone() };
        self.set_task_status(&id, ConnectorState::Unassigned, None);
        let is_paused = self.paused.lock().map(|p| p.contains(&id.connector)).unwrap_or(false);
        let (paused, paused_rx) = watch::channel(is_paused);
        let fut = run(cancel.clone(), reporter.clone(), paused_rx);
        let task_id = id.clone();
        let handle = tokio::spawn(async move {
            match fut.await {
                Ok(()) => tracing::info!(task = %task_id, "task stopped"),
                Err(e) => {
                    tracing::error!(task = %task_id, error = %e, "task failed");
                    reporter.report(ConnectorState::Failed, Some(e.trace()));
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.insert(id, RunningTask { cancel, handle, paused });
        }
    }

    /// Stops the given tasks, waiting up to `task.shutdown.graceful.timeout.ms` for them to flush
    /// and commit.
    pub async fn stop_tasks(&self, ids: &[TaskId]) {
        let running: Vec<(TaskId, RunningTask)> = match self.tasks.lock() {
            Ok(mut tasks) => ids.iter().filter_map(|id| tasks.remove(id).map(|t| (id.clone(), t))).collect(),
            Err(_) => Vec::new(),
        };
        for (_, t) in &running {
            t.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + self.config.shutdown_timeout();
        for (id, t) in running {
            let abort = t.handle.abort_handle();
            if tokio::time::timeout_at(deadline, t.handle).await.is_err() {
                tracing::warn!(task = %id, "task did not stop within task.shutdown.graceful.timeout.ms; aborted");
                abort.abort();
            }
        }
    }

    /// Pauses or resumes a connector's tasks (target state PAUSED / STARTED): paused source tasks stop
    /// polling, paused sink tasks stop consuming; both keep committing what is done. Tasks started
    /// later start in this state.
    pub fn set_paused(&self, connector: &str, paused: bool) {
        if let Ok(mut set) = self.paused.lock() {
            if paused {
                set.insert(connector.to_string());
            } else {
                set.remove(connector);
            }
        }
        if let Ok(tasks) = self.tasks.lock() {
            for (_, t) in tasks.iter().filter(|(id, _)| id.connector == connector) {
                t.paused.send_replace(paused);
            }
        }
    }

    /// Ids of the running tasks of a connector.
    pub fn tasks_of(&self, connector: &str) -> Vec<TaskId> {
        self.tasks
            .lock()
            .map(|t| t.keys().filter(|id| id.connector == connector).cloned().collect())
            .unwrap_or_default()
    }

    /// Ids of every running task.
    pub fn all_tasks(&self) -> Vec<TaskId> {
        self.tasks.lock().map(|t| t.keys().cloned().collect()).unwrap_or_default()
    }
}

fn strip_prefix(config: &ConfigMap, prefix: &str) -> ConfigMap {
    config.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|r| (r.to_string(), v.clone()))).collect()
}

/// Lets a task loop publish its own status.
#[derive(Clone)]
pub(crate) struct StatusReporter {
    id: TaskId,
    worker_id: String,
    statuses: Arc<dyn StatusStore>,
}

impl StatusReporter {
    /// Publishes RUNNING or PAUSED when the pause state differs from the last one published;
    /// returns whether it changed.
    pub(crate) fn report_pause_state(&self, last: &mut Option<bool>, paused: bool) -> bool {
        if *last == Some(paused) {
            return false;
        }
        let state = ConnectorState::running(paused);
        self.report(state, None);
        tracing::info!(task = %self.id, state = state.name(), "task state");
        *last = Some(paused);
        true
    }

    pub(crate) fn report(&self, state: ConnectorState, trace: Option<String>) {
        self.statuses.put_task(
            &self.id.connector,
            self.id.task,
            Status { state, trace, worker_id: self.worker_id.clone(), generation: 0 },
        );
    }
}
