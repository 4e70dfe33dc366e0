use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_api::{
    ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, ConnectError, Connector, ConnectorContext, Importance,
    JsonMap, Schema, SchemaRef, SourceConnector, SourceRecord, SourceTask, SourceTaskContext, Validator, Value,
};
use tokio::time::Instant;

/// Most records one poll returns.
const MAX_BATCH: u64 = 1000;
/// How long a throttled poll sleeps at most before returning what it has.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Config of the verifiable source (keys as Kafka's).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiableSourceConfig {
    /// `topic`.
    pub topic: String,
    /// `throughput`: records per second per task; negative means unlimited.
    pub throughput: i64,
    /// `id`: the task id (set by the connector in each task config).
    pub id: i32,
}

impl VerifiableSourceConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("topic", ConfigType::String)
                    .importance(Importance::High)
                    .validator(Validator::NonEmpty)
                    .doc("The topic to publish data to"),
            )
            .define(
                ConfigKey::new("throughput", ConfigType::Long)
                    .default("-1")
                    .importance(Importance::High)
                    .doc("Records per second per task; negative for unlimited"),
            )
            .define(
                ConfigKey::new("id", ConfigType::Int)
                    .default("0")
                    .validator(Validator::at_least(0.0))
                    .importance(Importance::Low)
                    .doc("The task id; set by the connector for each task"),
            )
    }

    /// Parses and validates.
    pub fn parse(config: &ConfigMap) -> Result<VerifiableSourceConfig, ConfigErrors> {
        let parsed = Self::def().parse(config)?;
        Ok(VerifiableSourceConfig {
            topic: parsed.string("topic"),
            throughput: parsed.long("throughput"),
            id: parsed.int("id"),
        })
    }
}

/// The connector: `tasks.max` tasks, each with its own sequence.
#[derive(Default)]
pub struct VerifiableSourceConnector {
    pub(super) config: ConfigMap,
}

#[async_trait]
impl Connector for VerifiableSourceConnector {
    fn config_def(&self) -> ConfigDef {
        VerifiableSourceConfig::def()
    }

    async fn start(&mut self, config: &ConfigMap, _context: Arc<dyn ConnectorContext>) -> Result<(), ConnectError> {
        VerifiableSourceConfig::parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        Ok((0..max_tasks.max(1))
            .map(|i| {
                let mut c = self.config.clone();
                c.insert("id".into(), i.to_string());
                c
            })
            .collect())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SourceConnector for VerifiableSourceConnector {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(VerifiableSourceTask::default())
    }

    fn exactly_once_support(&self) -> bool {
        true
    }
}

/// Emits `seqno` 0, 1, 2, … (continuing after the committed offset).
#[derive(Default)]
pub struct VerifiableSourceTask {
    config: Option<VerifiableSourceConfig>,
    partition: JsonMap,
    next_seqno: i64,
    started: Option<Instant>,
    emitted_since_start: u64,
    key_schema: Option<SchemaRef>,
    value_schema: Option<SchemaRef>,
}

impl VerifiableSourceTask {
    /// How many records may go out now under the throughput cap.
    fn allowance(&self, throughput: i64, now: Instant) -> u64 {
        if throughput < 0 {
            return MAX_BATCH;
        }
        let elapsed = self.started.map_or(Duration::ZERO, |s| now.duration_since(s));
        let due = (elapsed.as_secs_f64() * throughput as f64) as u64;
        due.saturating_sub(self.emitted_since_start).min(MAX_BATCH)
    }
}

#[async_trait]
impl SourceTask for VerifiableSourceTask {
    async fn start(&mut self, config: &ConfigMap, context: SourceTaskContext) -> Result<(), ConnectError> {
        let config = VerifiableSourceConfig::parse(config)?;
        self.partition.insert("id".into(), json!(config.id));
        self.next_seqno = match context.offsets.offset(&self.partition) {
            Some(offset) => match offset.get("seqno").and_then(serde_json::Value::as_i64) {
                Some(n) => n + 1,
                None => return Err(ConnectError::fatal(format!("stored offset has no integer seqno: {offset:?}"))),
            },
            None => 0,
        };
        tracing::info!(task = config.id, seqno = self.next_seqno, "verifiable source starting");
        self.key_schema = Some(Arc::new(Schema::int32()));
        self.value_schema = Some(Arc::new(Schema::int64()));
        self.started = Some(Instant::now());
        self.config = Some(config);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let Some(config) = self.config.clone() else {
            return Err(ConnectError::fatal("verifiable source task polled before start"));
        };
        let mut n = self.allowance(config.throughput, Instant::now());
        if n == 0 {
            // Sleep until the next record is due, but never long enough to delay shutdown.
            let wait = Duration::from_secs_f64(1.0 / config.throughput.max(1) as f64).min(MAX_WAIT);
            tokio::time::sleep(wait).await;
            n = self.allowance(config.throughput, Instant::now());
        }
        let mut records = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let seqno = self.next_seqno;
            let mut offset = JsonMap::new();
            offset.insert("seqno".into(), json!(seqno));
            let mut record = SourceRecord::new(
                self.partition.clone(),
                offset,
                &config.topic,
                self.value_schema.clone(),
                Value::Int64(seqno),
            );
            record.key_schema = self.key_schema.clone();
            record.key = Value::Int32(config.id);
            records.push(record);
            self.next_seqno += 1;
        }
        self.emitted_since_start += n;
        Ok(records)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}
