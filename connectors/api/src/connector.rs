//! The connector and task traits, as Kafka Connect's `Connector`/`Task` made async and batch-first.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigDef, ConfigErrors, ConfigMap};
use crate::error::ConnectError;
use crate::record::{JsonMap, RecordMetadata, SinkRecord, SourceRecord, TopicPartition};

/// Source or sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectorType {
    /// Reads an external system, writes Kafka.
    Source,
    /// Reads Kafka, writes an external system.
    Sink,
}

impl ConnectorType {
    /// `"source"` or `"sink"`, as in Kafka Connect's REST bodies.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// What a running connector may ask of the runtime.
pub trait ConnectorContext: Send + Sync {
    /// The task configs should be regenerated (e.g. the set of tables changed).
    fn request_task_reconfiguration(&self);
    /// The connector failed outside of a call; it goes FAILED with this error.
    fn raise_error(&self, error: ConnectError);
}

/// The part shared by source and sink connectors.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Connector version.
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// Documented keys of this connector (the common connector keys are added by the runtime).
    fn config_def(&self) -> ConfigDef;

    /// Pure validation: no I/O. The default parses against [`Connector::config_def`].
    fn validate(&self, config: &ConfigMap) -> Result<(), ConfigErrors> {
        self.config_def().parse(config).map(|_| ())
    }

    /// Starts the connector with its full config.
    async fn start(&mut self, config: &ConfigMap, context: Arc<dyn ConnectorContext>) -> Result<(), ConnectError>;

    /// Splits the work into at most `max_tasks` task configs.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError>;

    /// Stops the connector.
    async fn stop(&mut self) -> Result<(), ConnectError>;
}

/// A source connector: creates [`SourceTask`]s.
pub trait SourceConnector: Connector {
    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SourceTask>;

    /// Whether tasks can define transaction boundaries that make exactly-once delivery possible.
    fn exactly_once_support(&self) -> bool {
        false
    }
}

/// A sink connector: creates [`SinkTask`]s.
pub trait SinkConnector: Connector {
    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SinkTask>;
}

/// Read access to the committed source offsets.
pub trait OffsetStorageReader: Send + Sync {
    /// The last committed offset of a source partition.
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap>;
}

/// What a source task gets from the runtime at start.
#[derive(Clone)]
pub struct SourceTaskContext {
    /// Connector name.
    pub connector: String,
    /// Task number.
    pub task: u32,
    /// Committed offsets, to resume from.
    pub offsets: Arc<dyn OffsetStorageReader>,
    /// Topics the task keeps its own state in (Debezium's schema history); `None` where the
    /// runtime has no Kafka (unit tests, benchmarks).
    pub state: Option<Arc<dyn StateTopics>>,
}

/// Topics a source task keeps its own state in, beside its records and offsets (Debezium's schema
/// history topic). The runtime creates one on first append with one partition,
/// `cleanup.policy=delete` and infinite retention, writes with `acks=all` and reads it back whole.
#[async_trait]
pub trait StateTopics: Send + Sync {
    /// Every value in `topic`, oldest first; `None` when the topic does not exist.
    async fn read_all(&self, topic: &str) -> Result<Option<Vec<Vec<u8>>>, ConnectError>;
    /// Appends `values` in order (null keys) and returns once the broker acknowledged all of them.
    async fn append(&self, topic: &str, values: Vec<Vec<u8>>) -> Result<(), ConnectError>;
}

/// What a sink task gets from the runtime at start.
#[derive(Debug, Clone)]
pub struct SinkTaskContext {
    /// Connector name.
    pub connector: String,
    /// Task number.
    pub task: u32,
    /// Where to hand records the sink cannot write; `None` unless `errors.tolerance=all`, in which
    /// case a bad record must fail the task.
    pub errant: Option<ErrantRecordReporter>,
}

/// Kafka Connect's `ErrantRecordReporter`: a sink reports a record it cannot write (a schema the
/// table cannot take, a tombstone it must not skip...) and goes on with the rest of the batch. The
/// runtime sends reported records to the dead-letter topic (or logs them, without one) once `put`
/// returns, and before any offset commit can cover them: nothing is dropped silently.
#[derive(Debug, Clone, Default)]
pub struct ErrantRecordReporter {
    reported: Arc<std::sync::Mutex<Vec<(SinkRecord, String)>>>,
}

impl ErrantRecordReporter {
    /// Reports a record with the reason it cannot be written.
    pub fn report(&self, record: &SinkRecord, error: impl std::fmt::Display) {
        if let Ok(mut r) = self.reported.lock() {
            r.push((record.clone(), error.to_string()));
        }
    }

    /// Takes the records reported since the last call (the runtime's side).
    pub fn take(&self) -> Vec<(SinkRecord, String)> {
        self.reported.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }
}

/// A source task: polls an external system and returns records for Kafka.
///
/// Delivery: the runtime writes a record's `source_offset` to the offset store only after the broker
/// acknowledged that record and every record before it, so a restart resumes at or before the first
/// record not yet in Kafka (at-least-once).
#[async_trait]
pub trait SourceTask: Send {
    /// Starts the task with its config.
    async fn start(&mut self, config: &ConfigMap, context: SourceTaskContext) -> Result<(), ConnectError>;

    /// Returns the next batch; empty means nothing right now. Should return within about a second
    /// when idle, so the runtime can commit offsets and shut down promptly.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;

    /// Called for each record once the broker acknowledged it (`None` when it was filtered out).
    fn commit_record(&mut self, _record: &SourceRecord, _metadata: Option<&RecordMetadata>) {}

    /// Called after offsets were written to the offset store.
    async fn commit(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }

    /// Stops the task and releases its resources.
    async fn stop(&mut self) -> Result<(), ConnectError>;
}

/// Kafka offsets: the next offset to read, per topic-partition (as Kafka's committed offsets).
pub type Offsets = BTreeMap<TopicPartition, i64>;

/// A sink task: receives records from Kafka and writes them to an external system.
///
/// Delivery: the runtime commits to Kafka only the offsets [`SinkTask::pre_commit`] returns, so a
/// sink that returns only what it made durable is at-least-once; one that stores offsets with its
/// data and returns them from [`SinkTask::open`] is exactly-once.
#[async_trait]
pub trait SinkTask: Send {
    /// Starts the task with its config.
    async fn start(&mut self, config: &ConfigMap, context: SinkTaskContext) -> Result<(), ConnectError>;

    /// Partitions newly assigned. A sink that keeps its own offsets returns where to resume.
    async fn open(&mut self, _partitions: &[TopicPartition]) -> Result<Offsets, ConnectError> {
        Ok(Offsets::new())
    }

    /// Writes (or buffers) a batch, in Kafka order per partition. On a retriable error the runtime
    /// backs off and passes the same batch again. While there are no records to write (none
    /// arrived, or the task is paused) the batch is empty, every 100 ms or so (Kafka Connect also
    /// puts empty batches): the moment for time-based flushes.
    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError>;

    /// Makes everything passed to `put` so far durable.
    async fn flush(&mut self, _offsets: &Offsets) -> Result<(), ConnectError> {
        Ok(())
    }

    /// Given the offsets consumed so far, returns the offsets that are safe to commit. The default
    /// flushes and returns them all.
    async fn pre_commit(&mut self, offsets: &Offsets) -> Result<Offsets, ConnectError> {
        self.flush(offsets).await?;
        Ok(offsets.clone())
    }

    /// Offsets the sink wants read again from (Kafka Connect's `SinkTaskContext.offset(...)`):
    /// the runtime takes them after each `put`, seeks there and delivers from there on.
    fn rewind(&mut self) -> Offsets {
        Offsets::new()
    }

    /// Partitions revoked: drop any buffered state for them.
    async fn close(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        Ok(())
    }

    /// Stops the task.
    async fn stop(&mut self) -> Result<(), ConnectError>;
}

/// How a [`ConfigConnector`] splits its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSplit {
    /// One task, whatever `tasks.max` says (a file, a binlog).
    One,
    /// `tasks.max` identical tasks (they share the work through the consumer group or a port).
    UpToMax,
}

/// A connector whose only work is to check its config and give it, unchanged, to its tasks. `T`
/// is `dyn SourceTask` or `dyn SinkTask`.
pub struct ConfigConnector<T: ?Sized> {
    def: fn() -> ConfigDef,
    check: fn(&ConfigMap) -> Result<(), ConfigErrors>,
    split: TaskSplit,
    task: fn() -> Box<T>,
    config: ConfigMap,
    exactly_once: bool,
}

impl<T: ?Sized> ConfigConnector<T> {
    /// A connector with these keys (`def`), this validation (`check`, pure), this split, and
    /// this task constructor.
    pub fn new(
        def: fn() -> ConfigDef,
        check: fn(&ConfigMap) -> Result<(), ConfigErrors>,
        split: TaskSplit,
        task: fn() -> Box<T>,
    ) -> ConfigConnector<T> {
        ConfigConnector { def, check, split, task, config: ConfigMap::new(), exactly_once: false }
    }

    /// Declares that the tasks resume exactly after the last committed offset and produce the
    /// same records again from there, so exactly-once delivery is possible (a source's
    /// `exactlyOnceSupport() = SUPPORTED`).
    pub fn exactly_once(mut self) -> ConfigConnector<T> {
        self.exactly_once = true;
        self
    }
}

#[async_trait]
impl<T: ?Sized + 'static> Connector for ConfigConnector<T> {
    fn config_def(&self) -> ConfigDef {
        (self.def)()
    }

    fn validate(&self, config: &ConfigMap) -> Result<(), ConfigErrors> {
        (self.check)(config)
    }

    async fn start(&mut self, config: &ConfigMap, _context: Arc<dyn ConnectorContext>) -> Result<(), ConnectError> {
        (self.check)(config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        let n = match self.split {
            TaskSplit::One => 1,
            TaskSplit::UpToMax => max_tasks.max(1),
        };
        Ok(vec![self.config.clone(); n])
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SourceConnector for ConfigConnector<dyn SourceTask> {
    fn create_task(&self) -> Box<dyn SourceTask> {
        (self.task)()
    }

    fn exactly_once_support(&self) -> bool {
        self.exactly_once
    }
}

impl SinkConnector for ConfigConnector<dyn SinkTask> {
    fn create_task(&self) -> Box<dyn SinkTask> {
        (self.task)()
    }
}
