//! Delta Lake sink (`delta`), after kafka-delta-ingest: records of each topic are appended to a
//! Delta table (`delta.table.location`, `${topic}` replaced), created from the first record's
//! schema when it does not exist, on S3 or a local directory.
//!
//! Delivery: **exactly-once**, with no state outside the table.
//! - Each commit carries, in the same Delta version as its `add` actions, one `txn` action per
//!   Kafka partition it holds records of: appId `<delta.app.id>-<topic>-<partition>` (the connector
//!   name by default), version = the last offset committed.
//! - On partition assignment the task reads those versions and the worker seeks to version + 1;
//!   records at or below it are dropped if they come again.
//! - Data files have random names and become part of the table only through the commit: files of
//!   a commit that never happened (a crash) are never read (VACUUM removes them).
//! - Concurrent writers: a commit is written with a conditional create; when another writer
//!   committed first, delta-rs checks for a conflict and retries (`delta.commit.max.retries`).
//!   If the other commit holds a `txn` of ours (a zombie task, or a table changed under us), the
//!   window is dropped and the partitions are read again from the table's versions.
//! - Kafka's committed offsets (`pre_commit`) follow the table's: the first offset not committed.
//!
//! Commits happen at `flush.size` records, `flush.bytes` encoded bytes, `allowed.latency.ms`
//! after the first uncommitted record, before a schema change, and when partitions are closed.
//! Data is streamed to the store as it is written (one row group and one upload part in memory per
//! open data file), so memory does not grow with the commit size.

mod config;
mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, Transaction};
use deltalake_core::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter};
use deltalake_core::{DeltaTable, DeltaTableError, TableProperty};
use parquet::file::properties::WriterProperties;
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, ErrantRecordReporter, ErrorKind,
    Offsets, PluginInfo, SinkRecord, SinkTask, SinkTaskContext, TaskSplit, TopicPartition, Value,
};

use crate::sinks::parquet::arrow::RowShape;
use crate::sinks::parquet::dictionary::Advice;
use crate::sinks::parquet::NullValues;
pub use config::DeltaSinkConfig;
use config::DERIVED;

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "io.sluice.connect.delta.DeltaSinkConnector",
    aliases: &["delta", "DeltaSinkConnector", "kafka-delta-ingest"],
    connector_type: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    create: || {
        ConnectorInstance::Sink(Box::new(ConfigConnector::<dyn SinkTask>::new(
            DeltaSinkConfig::def,
            |c| DeltaSinkConfig::parse(c).map(|_| ()),
            TaskSplit::UpToMax,
            || Box::new(DeltaSinkTask::default()),
        )))
    },
};

/// First and last offset of a partition's records in a commit being built.
type Span = (i64, i64);

/// One topic's table and the commit being built for it.
struct Topic {
    location: String,
    table: DeltaTable,
    /// Present once the table exists.
    writer: Option<RecordBatchWriter>,
    /// The writer's (the table's) Arrow schema.
    schema: Option<SchemaRef>,
    /// Records written into the writer, per Kafka partition, not yet flushed.
    window: BTreeMap<i32, Span>,
    records: u64,
    since: Option<Instant>,
    /// Files flushed whose commit failed (retriably): committed with the next attempt.
    staged: Vec<Add>,
    staged_spans: BTreeMap<i32, Span>,
    /// Which columns get a dictionary (see `parquet::dictionary`); learned from the data files of
    /// the commits that try every dictionary.
    dictionary: Advice,
}

impl Topic {
    fn pending(&self, partition: i32) -> Option<i64> {
        let a = self.window.get(&partition).map(|s| s.0);
        let b = self.staged_spans.get(&partition).map(|s| s.0);
        a.into_iter().chain(b).min()
    }

    fn is_idle(&self) -> bool {
        self.window.is_empty() && self.staged_spans.is_empty()
    }
}

/// Reads the footer of the largest of a flush's data files and learns which columns pay for
/// their dictionary. A footer that cannot be read teaches nothing (the advice stays as it was).
async fn learn_dictionaries(t: &mut Topic, adds: &[Add]) {
    use object_store::ObjectStoreExt;
    let Some(add) = adds.iter().max_by_key(|a| a.size) else { return t.dictionary.pass() };
    let store = t.table.log_store().object_store(None);
    let footer = async {
        let path = object_store::path::Path::parse(&add.path).map_err(|e| e.to_string())?;
        let size = u64::try_from(add.size).unwrap_or(0);
        if size < 12 {
            return Err(format!("{size} bytes is too short for a Parquet file"));
        }
        let tail = store.get_range(&path, size - 8..size).await.map_err(|e| e.to_string())?;
        if tail.len() != 8 || &tail[4..] != b"PAR1" {
            return Err("no Parquet footer".to_string());
        }
        let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        if len > size - 12 {
            return Err(format!("footer length {len} does not fit a file of {size} bytes"));
        }
        let meta = store.get_range(&path, size - 8 - len..size - 8).await.map_err(|e| e.to_string())?;
        parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&meta).map_err(|e| e.to_string())
    };
    match footer.await {
        Ok(meta) => t.dictionary.learn(&meta),
        Err(e) => {
            tracing::debug!(table = %t.location, file = %add.path, error = %e, "cannot read a data file's footer");
            t.dictionary.pass();
        }
    }
}

/// Writes records to Delta tables; see the module docs.
#[derive(Default)]
pub struct DeltaSinkTask {
    config: Option<DeltaSinkConfig>,
    storage: HashMap<String, String>,
    connector: String,
    app_id: String,
    topics: HashMap<String, Topic>,
    /// Per partition: the last offset the table holds (its `txn` version).
    durable: HashMap<TopicPartition, i64>,
    /// Per partition: the offset after the last record passed to `put`.
    seen: Offsets,
    /// Offsets to read again from, for the worker.
    rewind: Offsets,
    commits: u64,
    /// Where records the table cannot take go (`errors.tolerance=all`); without it they fail the task.
    errant: Option<ErrantRecordReporter>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn err_at(r: &SinkRecord, what: impl std::fmt::Display) -> ConnectError {
    ConnectError::fatal(format!("{}-{} offset {}: {what}", r.topic, r.kafka_partition, r.kafka_offset))
}

/// Why a run of records was not written.
enum WriteError {
    /// The records cannot go into the table (nothing was written): the DLQ's, where allowed.
    Rejected(ConnectError),
    /// Writing failed (storage, state): the task's error.
    Failed(ConnectError),
}

impl From<ConnectError> for WriteError {
    fn from(e: ConnectError) -> Self {
        WriteError::Failed(e)
    }
}

fn rejected(r: &SinkRecord, what: impl std::fmt::Display) -> WriteError {
    WriteError::Rejected(err_at(r, what))
}

/// A delta-rs error as a task error: storage and commit-race trouble is retriable.
fn delta_err(what: String, e: DeltaTableError) -> ConnectError {
    match e {
        DeltaTableError::ObjectStore { .. }
        | DeltaTableError::Io { .. }
        | DeltaTableError::VersionAlreadyExists(_)
        | DeltaTableError::Transaction { .. } => ConnectError::retriable_from(what, e),
        _ => ConnectError::fatal_from(what, e),
    }
}

/// The last offset the table holds for `app_id` (its `txn` version).
async fn table_offset(table: &DeltaTable, app_id: String) -> Result<Option<i64>, ConnectError> {
    let Ok(state) = table.snapshot() else { return Ok(None) };
    let ls = table.log_store();
    state
        .transaction_version(ls.as_ref(), app_id.clone())
        .await
        .map_err(|e| delta_err(format!("{}: cannot read the txn {app_id}", table.table_url()), e))
}

/// The last offset of `topic`'s `partition` that the table at `location` holds for the sink
/// `app_id` (for benchmarks and tools): its `txn` version, `None` without a table or a version.
pub async fn committed_offset(
    location: &str,
    storage: &HashMap<String, String>,
    app_id: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, ConnectError> {
    let table = table::open(location, storage).await.map_err(|e| delta_err(format!("{location}: cannot open"), e))?;
    table_offset(&table, format!("{app_id}-{topic}-{partition}")).await
}

/// Whether a commit failed because another writer's commit conflicts with ours (a `txn` of ours
/// or the table's metadata changed).
fn is_conflict(e: &DeltaTableError) -> bool {
    use deltalake_core::kernel::transaction::TransactionError;
    matches!(e, DeltaTableError::Transaction { source: TransactionError::CommitConflict(_) })
}

impl DeltaSinkTask {
    fn cfg(&self) -> Result<&DeltaSinkConfig, ConnectError> {
        self.config.as_ref().ok_or_else(|| ConnectError::fatal("the delta sink task was not started"))
    }

    fn app_id(&self, topic: &str, partition: i32) -> String {
        format!("{}-{topic}-{partition}", self.app_id)
    }

    /// Properties of the topic's next data files, with the dictionaries its advice gives.
    fn writer_properties(c: &DeltaSinkConfig, t: &Topic) -> WriterProperties {
        let props = WriterProperties::builder()
            .set_compression(c.codec.compression())
            .set_max_row_group_bytes(Some(c.row_group_bytes))
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")));
        if c.dictionary_always { props } else { t.dictionary.apply(props) }.build()
    }

    /// A writer for the table as it is now.
    fn new_writer(&self, t: &mut Topic) -> Result<(), ConnectError> {
        let c = self.cfg()?;
        let w = RecordBatchWriter::for_table(&t.table)
            .map_err(|e| delta_err(format!("{}: cannot write to the table", t.location), e))?
            .with_writer_properties(Self::writer_properties(c, t))
            .with_target_file_size(c.target_file_size);
        t.schema = Some(w.arrow_schema());
        t.writer = Some(w);
        Ok(())
    }

    /// The topic's table, loaded on first use.
    async fn topic(&mut self, topic: &str) -> Result<&mut Topic, ConnectError> {
        if !self.topics.contains_key(topic) {
            let location = self.cfg()?.table_url(topic);
            let table = table::open(&location, &self.storage)
                .await
                .map_err(|e| delta_err(format!("{location}: cannot open the table"), e))?;
            let mut t = Topic {
                location,
                table,
                writer: None,
                schema: None,
                window: BTreeMap::new(),
                records: 0,
                since: None,
                staged: Vec::new(),
                staged_spans: BTreeMap::new(),
                dictionary: Advice::default(),
            };
            if t.table.version().is_some() {
                self.new_writer(&mut t)?;
            }
            self.topics.insert(topic.to_string(), t);
        }
        self.topics.get_mut(topic).ok_or_else(|| ConnectError::fatal("table vanished"))
    }

    /// Creates the topic's table for rows of `row` (another task may create it first).
    async fn create_table(&mut self, topic: &str, row: &arrow_schema::Schema) -> Result<(), ConnectError> {
        let c = self.cfg()?.clone();
        let connector = self.connector.clone();
        let schema = table::kernel_schema(row)
            .map_err(|e| ConnectError::fatal(format!("{topic}: the records' schema cannot be a Delta schema: {e}")))?;
        let t = self.topic(topic).await?;
        let created = t
            .table
            .create()
            .with_columns(schema.fields().cloned())
            .with_partition_columns(c.partition_by.clone())
            .with_configuration_property(TableProperty::CheckpointInterval, Some(c.checkpoint_interval.to_string()))
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => t.table = table,
            // Another writer created it between our look and our create.
            Err(DeltaTableError::VersionAlreadyExists(_)) => {
                t.table.load().await.map_err(|e| delta_err(format!("{}: cannot load the table", t.location), e))?
            }
            Err(e) => return Err(delta_err(format!("{}: cannot create the table", t.location), e)),
        }
        tracing::info!(connector, table = %t.location, partition_by = ?c.partition_by, "delta table ready");
        let mut t = self.topics.remove(topic).ok_or_else(|| ConnectError::fatal("table vanished"))?;
        let r = self.new_writer(&mut t);
        self.topics.insert(topic.to_string(), t);
        r
    }

    /// Appends the new fields to the table (after committing what was written under the old schema).
    async fn add_columns(&mut self, topic: &str, fields: Vec<arrow_schema::Field>) -> Result<(), ConnectError> {
        self.commit(topic).await?;
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        let schema = table::kernel_schema(&arrow_schema::Schema::new(fields))
            .map_err(|e| ConnectError::fatal(format!("{topic}: new fields {names:?} cannot be Delta columns: {e}")))?;
        let mut t = self.topics.remove(topic).ok_or_else(|| ConnectError::fatal("table vanished"))?;
        let r = t.table.clone().add_columns().with_fields(schema.fields().cloned().collect::<Vec<_>>()).await;
        let r = match r {
            Ok(table) => {
                tracing::info!(connector = %self.connector, table = %t.location, columns = ?names, "columns added to the table");
                t.table = table;
                self.new_writer(&mut t)
            }
            Err(e) => Err(delta_err(format!("{}: cannot add the columns {names:?}", t.location), e)),
        };
        self.topics.insert(topic.to_string(), t);
        r
    }

    /// Commits what was written for the topic, with the offsets as `txn` actions.
    async fn commit(&mut self, topic: &str) -> Result<(), ConnectError> {
        let (max_retries, connector, app) = {
            let c = self.cfg()?;
            (c.max_retries, self.connector.clone(), self.app_id.clone())
        };
        let Some(mut t) = self.topics.remove(topic) else { return Ok(()) };
        if t.is_idle() {
            self.topics.insert(topic.to_string(), t);
            return Ok(());
        }
        let r = self.commit_topic(topic, &mut t, max_retries, &connector, &app).await;
        self.topics.insert(topic.to_string(), t);
        r
    }

    async fn commit_topic(
        &mut self,
        topic: &str,
        t: &mut Topic,
        max_retries: usize,
        connector: &str,
        app: &str,
    ) -> Result<(), ConnectError> {
        let started = Instant::now();
        if !t.window.is_empty() {
            let Some(w) = t.writer.as_mut() else { return Err(ConnectError::fatal("no writer for a written window")) };
            match w.flush().await {
                Ok(adds) => {
                    if !self.cfg()?.dictionary_always {
                        if t.dictionary.next_is_probe() {
                            learn_dictionaries(t, &adds).await;
                        } else {
                            t.dictionary.pass();
                        }
                        // The next files (the flush left none open) with what the advice says now.
                        let props = Self::writer_properties(self.cfg()?, t);
                        t.writer = t.writer.take().map(|w| w.with_writer_properties(props));
                    }
                    t.staged.extend(adds);
                    for (p, (first, last)) in std::mem::take(&mut t.window) {
                        let s = t.staged_spans.entry(p).or_insert((first, last));
                        *s = (s.0.min(first), s.1.max(last));
                    }
                    t.records = 0;
                    t.since = None;
                }
                Err(e) => {
                    // The writer dropped the window: read its records again.
                    let window = std::mem::take(&mut t.window);
                    t.records = 0;
                    t.since = None;
                    for (p, (first, _)) in window {
                        self.read_again(&TopicPartition::new(topic, p), first);
                    }
                    return Err(delta_err(format!("{}: writing data files failed", t.location), e));
                }
            }
        }
        let txns: Vec<Transaction> = t
            .staged_spans
            .iter()
            .map(|(p, (_, last))| Transaction::new_with_last_update(self.app_id(topic, *p), *last, Some(now_ms())))
            .collect();
        let epoch = t.staged_spans.values().map(|s| s.1).max().unwrap_or_default();
        let actions: Vec<Action> = t.staged.iter().cloned().map(Action::Add).collect();
        let files = actions.len();
        let props = CommitProperties::default().with_application_transactions(txns).with_max_retries(max_retries);
        let op = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: app.to_string(),
            epoch_id: epoch,
        };
        let flushed_ms = started.elapsed().as_millis() as u64;
        let snapshot = t.table.snapshot().map_err(|e| delta_err(format!("{}: no table state", t.location), e))?;
        let result =
            CommitBuilder::from(props).with_actions(actions).build(Some(snapshot), t.table.log_store(), op).await;
        match result {
            Ok(done) => {
                let version = done.version();
                t.table.state = Some(done.snapshot());
                for (p, (_, last)) in std::mem::take(&mut t.staged_spans) {
                    self.durable.insert(TopicPartition::new(topic, p), last);
                }
                t.staged.clear();
                self.commits += 1;
                let ms = started.elapsed().as_millis() as u64;
                tracing::debug!(connector, table = %t.location, version, files, flushed_ms, ms, "delta commit");
                Ok(())
            }
            Err(e) if is_conflict(&e) => {
                // Another writer committed something ours conflicts with: drop what we staged,
                // reload, and read the partitions again from what the table holds.
                tracing::warn!(connector, table = %t.location, error = %e, "commit conflict: reading the partitions again from the table's offsets");
                let spans = std::mem::take(&mut t.staged_spans);
                t.staged.clear();
                if let Some(w) = t.writer.as_mut() {
                    w.reset();
                }
                // The staged records are dropped whatever happens next: each partition is read
                // again, from after what the table holds when it can be reloaded, else from its
                // first staged record (a later commit then conflicts and reloads again).
                let (fresh, mut failed) = match t.table.update_state().await {
                    Ok(()) => (true, self.new_writer(t).err()),
                    Err(e) => (false, Some(delta_err(format!("{}: cannot reload", t.location), e))),
                };
                for (p, (first, _)) in spans {
                    let tp = TopicPartition::new(topic, p);
                    let mut held = None;
                    // The reloaded table's offsets, even if its writer could not be made: the
                    // next commit will not conflict, so what the table holds must not come again.
                    if fresh {
                        match table_offset(&t.table, self.app_id(topic, p)).await {
                            Ok(v) => held = v,
                            Err(e) => failed = failed.or(Some(e)),
                        }
                    }
                    if let Some(v) = held {
                        self.durable.insert(tp.clone(), v);
                    }
                    self.read_again(&tp, held.map_or(first, |v| first.max(v + 1)));
                }
                Err(failed.unwrap_or_else(|| {
                    ConnectError::retriable(format!("{}: commit conflict with another writer", t.location))
                }))
            }
            Err(e) => Err(delta_err(format!("{}: commit failed (kept for the next attempt)", t.location), e)),
        }
    }

    /// Asks the worker to read `tp` again from `from`; until it has, `put` skips the partition.
    fn read_again(&mut self, tp: &TopicPartition, from: i64) {
        let from = self.rewind.get(tp).map_or(from, |r| (*r).min(from));
        self.rewind.insert(tp.clone(), from);
        self.seen.insert(tp.clone(), from);
    }

    /// Whether the topic's commit is due.
    fn due(&self, t: &Topic) -> bool {
        let Some(c) = self.config.as_ref() else { return false };
        if t.window.is_empty() && t.staged_spans.is_empty() {
            return false;
        }
        c.flush_size.is_some_and(|n| t.records >= n)
            || t.writer.as_ref().is_some_and(|w| w.buffer_len() >= c.flush_bytes)
            || t.since.is_some_and(|s| s.elapsed().as_millis() as u64 >= c.allowed_latency_ms)
            || (!t.staged_spans.is_empty() && t.window.is_empty())
    }

    /// Values of derived partition columns (`date`, `hour`...) for the records.
    fn derived(&self, rows: &[&SinkRecord], names: &[String]) -> Result<Vec<(String, Vec<String>)>, ConnectError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.cfg()?;
        let now = now_ms();
        let mut cols: Vec<(String, Vec<String>)> =
            names.iter().map(|n| (n.clone(), Vec::with_capacity(rows.len()))).collect();
        for r in rows {
            let ts = c.extractor.extract(r, now).map_err(|e| err_at(r, e))?;
            let local = chrono::DateTime::from_timestamp_millis(ts + i64::from(c.zone.offset_s(ts)) * 1000)
                .ok_or_else(|| err_at(r, format!("timestamp {ts} is out of range")))?;
            for (name, values) in cols.iter_mut() {
                let fmt = match name.as_str() {
                    "date" => "%Y-%m-%d",
                    "year" => "%Y",
                    "month" => "%m",
                    "day" => "%d",
                    _ => "%H",
                };
                values.push(local.format(fmt).to_string());
            }
        }
        Ok(cols)
    }

    /// Schemaless values (JSON without a schema) into an existing table, as kafka-delta-ingest
    /// does: each value is decoded into the table's columns (fields the table lacks are ignored,
    /// missing ones are null, a value that does not fit its column rejects the record). `None`
    /// when the records have a schema, the table does not exist yet, or it is the one-`value`-
    /// column table that schemaless records create.
    async fn json_into_table(
        &mut self,
        topic: &str,
        rows: &[&SinkRecord],
        partition_by: &[String],
    ) -> Result<Option<RecordBatch>, WriteError> {
        let Some(first) = rows.first() else { return Ok(None) };
        if first.value_schema.is_some() {
            return Ok(None);
        }
        let t = self.topic(topic).await?;
        let Some(table_schema) = t.schema.clone() else { return Ok(None) };
        if table_schema.fields().len() == 1 && table_schema.field(0).name() == "value" {
            return Ok(None);
        }
        // Derived partition columns are computed afterwards, not read from the value.
        let fields: Vec<_> = table_schema
            .fields()
            .iter()
            .filter(|f| !(DERIVED.contains(&f.name().as_str()) && partition_by.contains(f.name())))
            .cloned()
            .collect();
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| WriteError::Failed(ConnectError::fatal_from("JSON decoder", e)))?;
        let mut text = Vec::with_capacity(rows.len() * 256);
        for r in rows {
            match &r.value {
                Value::Map(_) | Value::Struct(_) => {}
                other => {
                    return Err(rejected(
                        r,
                        format!("a schemaless value must be a JSON object to fit the table's columns, not {other}"),
                    ))
                }
            }
            text.extend_from_slice(r.value.to_json().to_string().as_bytes());
            text.push(b'\n');
        }
        let mut at = 0;
        while at < text.len() {
            let read = decoder
                .decode(&text[at..])
                .map_err(|e| rejected(first, format!("the value does not fit the table: {e}")))?;
            if read == 0 {
                break;
            }
            at += read;
        }
        let batch = decoder
            .flush()
            .map_err(|e| rejected(first, format!("the value does not fit the table: {e}")))?
            .unwrap_or_else(|| RecordBatch::new_empty(schema));
        if batch.num_rows() != rows.len() {
            return Err(WriteError::Failed(ConnectError::fatal(format!(
                "JSON decoding gave {} rows for {} records",
                batch.num_rows(),
                rows.len()
            ))));
        }
        Ok(Some(batch))
    }

    /// Writes records of one topic and one value schema; a problem with the records (they do not
    /// fit the table, a partition value is missing) is `Rejected` before anything is written.
    async fn write(&mut self, topic: &str, rows: &[&SinkRecord]) -> Result<(), WriteError> {
        let Some(first) = rows.first() else { return Ok(()) };
        let (partition_by, evolution) = {
            let c = self.cfg()?;
            (c.partition_by.clone(), c.schema_evolution)
        };
        let (row_schema, batch) = match self.json_into_table(topic, rows, &partition_by).await? {
            Some(batch) => (batch.schema(), batch),
            None => {
                let shape = RowShape::of(first.value_schema.as_ref());
                let row_schema = shape
                    .arrow_schema()
                    .map_err(|e| rejected(first, format!("the value cannot be a Delta row: {e}")))?;
                let values: Vec<&Value> = rows.iter().map(|r| &r.value).collect();
                let batch = shape.batch(&row_schema, &values).map_err(|e| rejected(first, e))?;
                (row_schema, batch)
            }
        };
        let mut derive = Vec::new();
        for col in &partition_by {
            if row_schema.field_with_name(col).is_ok() {
                continue;
            }
            if !DERIVED.contains(&col.as_str()) {
                return Err(rejected(
                    first,
                    format!("partition column {col} is not a field of the value (derived columns: {DERIVED:?})"),
                ));
            }
            derive.push(col.clone());
        }
        let extra = self.derived(rows, &derive).map_err(WriteError::Rejected)?;
        let batch = table::with_columns(&batch, extra).map_err(|e| rejected(first, e))?;
        let delta_row = table::delta_schema(&batch.schema());
        if self.topic(topic).await?.writer.is_none() {
            self.create_table(topic, &delta_row).await?;
        }
        let table_schema = self
            .topic(topic)
            .await?
            .schema
            .clone()
            .ok_or_else(|| WriteError::Failed(ConnectError::fatal("no schema")))?;
        let fit = table::fit(&delta_row, &table_schema);
        if !fit.incompatible.is_empty() {
            return Err(rejected(first, format!("the record does not fit the table: {}", fit.incompatible.join("; "))));
        }
        if !fit.new_fields.is_empty() {
            let names: Vec<&String> = fit.new_fields.iter().map(|f| f.name()).collect();
            if !evolution {
                return Err(rejected(
                    first,
                    format!("the record has fields the table lacks: {names:?} (delta.schema.evolution=false)"),
                ));
            }
            self.add_columns(topic, fit.new_fields).await?;
        }
        let t = self.topic(topic).await?;
        let schema = t.schema.clone().ok_or_else(|| WriteError::Failed(ConnectError::fatal("no schema")))?;
        let batch = table::conform(&batch, &schema).map_err(|e| rejected(first, e))?;
        let Some(w) = t.writer.as_mut() else { return Err(ConnectError::fatal("no writer").into()) };
        if let Err(e) = w.write(batch).await {
            // The writer dropped its window: read it and this batch again.
            let location = t.location.clone();
            let mut from: BTreeMap<i32, i64> =
                std::mem::take(&mut t.window).into_iter().map(|(p, s)| (p, s.0)).collect();
            t.records = 0;
            t.since = None;
            for r in rows {
                from.entry(r.kafka_partition).or_insert(r.kafka_offset);
            }
            for (p, o) in from {
                self.read_again(&TopicPartition::new(topic, p), o);
            }
            return Err(delta_err(format!("{location}: writing data files failed"), e).into());
        }
        for r in rows {
            let s = t.window.entry(r.kafka_partition).or_insert((r.kafka_offset, r.kafka_offset));
            s.1 = r.kafka_offset;
        }
        t.records += rows.len() as u64;
        t.since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Writes a run; with an errant-record reporter, records the table cannot take are reported
    /// (found one at a time when the run as a whole is rejected) and the rest are written.
    async fn write_or_report(&mut self, topic: &str, rows: &[&SinkRecord]) -> Result<(), ConnectError> {
        let e = match self.write(topic, rows).await {
            Ok(()) => return Ok(()),
            Err(WriteError::Failed(e)) => return Err(self.unwritten(topic, rows, e)),
            Err(WriteError::Rejected(e)) => e,
        };
        let Some(errant) = self.errant.clone() else { return Err(e) };
        if let [only] = rows {
            errant.report(only, e);
            return Ok(());
        }
        for (i, r) in rows.iter().enumerate() {
            match self.write(topic, &[r]).await {
                Ok(()) => {}
                Err(WriteError::Rejected(e)) => errant.report(r, e),
                Err(WriteError::Failed(e)) => return Err(self.unwritten(topic, &rows[i..], e)),
            }
        }
        Ok(())
    }

    /// Records `put` let past `seen` but that are in no window, because writing them failed
    /// (creating the table, adding columns, loading it): on a retriable failure their partitions
    /// are read again from their first such record, or the worker's retry of the batch would
    /// skip them and a later commit would move the `txn` past them.
    fn unwritten(&mut self, topic: &str, rows: &[&SinkRecord], e: ConnectError) -> ConnectError {
        if e.kind() == ErrorKind::Retriable {
            let mut from: BTreeMap<i32, i64> = BTreeMap::new();
            for r in rows {
                from.entry(r.kafka_partition).or_insert(r.kafka_offset);
            }
            for (p, o) in from {
                self.read_again(&TopicPartition::new(topic, p), o);
            }
        }
        e
    }

    async fn commit_due(&mut self) -> Result<(), ConnectError> {
        let due: Vec<String> = self.topics.iter().filter(|(_, t)| self.due(t)).map(|(k, _)| k.clone()).collect();
        for topic in due {
            self.commit(&topic).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SinkTask for DeltaSinkTask {
    async fn start(&mut self, config: &ConfigMap, context: SinkTaskContext) -> Result<(), ConnectError> {
        let c = DeltaSinkConfig::parse(config)?;
        self.storage = c.storage.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        self.app_id = if c.app_id.is_empty() { context.connector.clone() } else { c.app_id.clone() };
        self.connector = context.connector;
        self.errant = context.errant;
        self.config = Some(c);
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<Offsets, ConnectError> {
        let mut resume = Offsets::new();
        let topics: BTreeSet<&str> = partitions.iter().map(|tp| tp.topic.as_str()).collect();
        for topic in topics {
            let t = self.topic(topic).await?;
            // Others may have committed since we last looked.
            if t.table.version().is_some() {
                t.table.update_state().await.map_err(|e| delta_err(format!("{}: cannot reload", t.location), e))?;
            } else if t.table.load().await.is_ok() {
                tracing::debug!(table = %t.location, "table found");
            }
            let mut t = self.topics.remove(topic).ok_or_else(|| ConnectError::fatal("table vanished"))?;
            if t.table.version().is_some() && t.is_idle() {
                if let Err(e) = self.new_writer(&mut t) {
                    // Keep the loaded table (and its dictionary advice) for the next attempt.
                    self.topics.insert(topic.to_string(), t);
                    return Err(e);
                }
            }
            let mut found = Vec::new();
            for tp in partitions.iter().filter(|tp| tp.topic == topic) {
                match table_offset(&t.table, self.app_id(topic, tp.partition)).await {
                    Ok(Some(v)) => {
                        self.durable.insert(tp.clone(), v);
                        resume.insert(tp.clone(), v + 1);
                        found.push((tp.partition, v));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.topics.insert(topic.to_string(), t);
                        return Err(e);
                    }
                }
            }
            tracing::info!(connector = %self.connector, table = %t.location, version = ?t.table.version(), offsets = ?found, "offsets held by the table");
            self.topics.insert(topic.to_string(), t);
        }
        Ok(resume)
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let (null_values, flush_size) = {
            let c = self.cfg()?;
            (c.null_values, c.flush_size)
        };
        // Runs of records of one topic and one value schema, in order.
        let mut run: Vec<&SinkRecord> = Vec::new();
        // The previous record's partition: records come in runs, its key is built once per run.
        let mut part: Option<TopicPartition> = None;
        for r in records {
            let topic = r.original_topic.as_deref().unwrap_or(&r.topic);
            if topic != r.topic {
                // Tables, commit windows and `txn` app ids are per topic: a record a transform sent
                // to another topic would have its offsets committed while it is only buffered.
                return Err(ConnectError::fatal(format!(
                    "{topic}-{} offset {}: a transform renamed the topic to {}; the Delta sink keys its tables and \
                     its exactly-once offsets by the topic read, so it takes no topic-renaming transforms \
                     (name the table with delta.table.location, e.g. s3://lake/${{topic}})",
                    r.kafka_partition, r.kafka_offset, r.topic
                )));
            }
            let tp = match part.take() {
                Some(tp) if tp.partition == r.kafka_partition && tp.topic == topic => tp,
                _ => r.topic_partition(),
            };
            let tp = &*part.insert(tp);
            if self.rewind.contains_key(tp) || self.durable.get(tp).is_some_and(|d| r.kafka_offset <= *d) {
                continue;
            }
            match self.seen.get_mut(tp) {
                Some(next) if r.kafka_offset < *next => continue,
                Some(next) => *next = r.kafka_offset + 1,
                None => {
                    self.seen.insert(tp.clone(), r.kafka_offset + 1);
                }
            }
            if matches!(r.value, Value::Null) {
                match null_values {
                    NullValues::Ignore => continue,
                    NullValues::Fail => {
                        let e = err_at(
                            r,
                            "a null value (tombstone) cannot be written; set behavior.on.null.values=ignore to skip tombstones",
                        );
                        match &self.errant {
                            Some(errant) => {
                                errant.report(r, e);
                                continue;
                            }
                            None => return Err(e),
                        }
                    }
                }
            }
            let same = run.last().is_some_and(|l| {
                l.topic == r.topic
                    && match (&l.value_schema, &r.value_schema) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                        (None, None) => true,
                        _ => false,
                    }
            });
            if !same && !run.is_empty() {
                let topic = run[0].topic.clone();
                if let Err(e) = self.write_or_report(&topic, &run).await {
                    // `seen` is past this record too, and it is in no run yet.
                    return Err(self.unwritten(&r.topic, &[r], e));
                }
                run.clear();
            }
            run.push(r);
            // `flush.size` is exact: a commit holds at most that many records of a topic.
            let held = self.topics.get(&r.topic).map_or(0, |t| t.records);
            if flush_size.is_some_and(|n| held + run.len() as u64 >= n) {
                let topic = r.topic.clone();
                self.write_or_report(&topic, &run).await?;
                run.clear();
                self.commit_due().await?;
            }
        }
        if let Some(first) = run.first() {
            let topic = first.topic.clone();
            self.write_or_report(&topic, &run).await?;
        }
        self.commit_due().await
    }

    async fn pre_commit(&mut self, offsets: &Offsets) -> Result<Offsets, ConnectError> {
        let committed = self.commit_due().await;
        let mut safe = Offsets::new();
        for (tp, consumed) in offsets {
            let pending = self.topics.get(&tp.topic).and_then(|t| t.pending(tp.partition));
            // Buffered records before a partition's rewind point hold the commit back too.
            let at = match (self.rewind.get(tp), pending) {
                (Some(r), Some(first)) => (*r).min(first),
                (Some(r), None) => *r,
                (None, Some(first)) => first,
                (None, None) => *consumed,
            };
            safe.insert(tp.clone(), at.min(*consumed));
        }
        committed.map(|_| safe)
    }

    fn rewind(&mut self) -> Offsets {
        std::mem::take(&mut self.rewind)
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        // Commit what we hold while the partitions are still ours; if that fails, the next owner
        // reads them from the table's offsets.
        let topics: BTreeSet<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
        for topic in topics {
            if let Err(e) = self.commit(&topic).await {
                tracing::warn!(connector = %self.connector, topic, error = %e, "commit on close failed; the records are read again");
                if let Some(t) = self.topics.get_mut(&topic) {
                    if let Some(w) = t.writer.as_mut() {
                        w.reset();
                    }
                    let mut spans = std::mem::take(&mut t.window);
                    spans.append(&mut std::mem::take(&mut t.staged_spans));
                    t.staged.clear();
                    t.records = 0;
                    t.since = None;
                    for (p, (first, _)) in spans {
                        let tp = TopicPartition::new(&topic, p);
                        if !partitions.contains(&tp) {
                            self.read_again(&tp, first);
                        }
                    }
                }
            }
        }
        for tp in partitions {
            self.seen.remove(tp);
            self.rewind.remove(tp);
            self.durable.remove(tp);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        let topics: Vec<String> = self.topics.keys().cloned().collect();
        for topic in topics {
            if let Err(e) = self.commit(&topic).await {
                tracing::warn!(connector = %self.connector, topic, error = %e, "commit on stop failed; the records are read again on restart");
            }
        }
        tracing::info!(connector = %self.connector, commits = self.commits, "delta sink stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
