//! Parquet sink, as Confluent's S3 and HDFS sinks with `ParquetFormat`: records become Parquet
//! files at `<topics.dir>/<topic>/<encoded partition>/<topic>+<kafkaPartition>+<startOffset>.parquet`
//! on S3, a local directory (or, later, HDFS), through one object_store code path.
//!
//! Delivery: **exactly-once files**.
//! - A file's name depends only on its first offset, and it is created only if the name is free
//!   (`If-None-Match: *`); an existing file is never replaced.
//! - `pre_commit` returns, per partition, the first offset of its oldest open file (or everything
//!   seen when none is open): Kafka's committed offset never passes a record that is not in a
//!   completed file.
//! - Every file carries its offsets in its footer (`kafka.offset.start` / `kafka.offset.end`).
//!   On partition assignment the task lists the partition's files: a record replayed after a
//!   crash (committed offset behind the files) is dropped when its directory already holds it,
//!   so replays write no duplicates even when rotation is not deterministic (wall-clock
//!   time, early rotation under memory pressure).
//! - If a file name is taken by a file that ends earlier than ours (another writer, or a replay
//!   that rotated differently), the missing records are read again from Kafka.
//!
//! Memory: each open file holds its row group being built (written out at
//! `parquet.row.group.bytes`) and at most one upload part; past `partitioner.max.open.files` or
//! `buffer.max.bytes` the largest open files are completed early.

pub(crate) mod arrow;
mod config;
pub mod dictionary;
mod partitioner;
mod store;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_schema::Schema as ArrowSchema;
use async_trait::async_trait;
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, ErrantRecordReporter, ErrorKind,
    Offsets, PluginInfo, SinkRecord, SinkTask, SinkTaskContext, TaskSplit, TopicPartition, Value,
};

use arrow::RowShape;
pub(crate) use config::define_s3_keys;
pub use config::{Codec, Location, NullValues, ParquetSinkConfig};
pub use partitioner::{Extractor, PartitionerKind, TimeFormat, Zone};
use store::{Finished, Upload};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "io.confluent.connect.s3.S3SinkConnector",
    aliases: &[
        "parquet",
        "S3SinkConnector",
        "io.confluent.connect.hdfs3.Hdfs3SinkConnector",
        "io.confluent.connect.hdfs.HdfsSinkConnector",
        "Hdfs3SinkConnector",
        "HdfsSinkConnector",
    ],
    connector_type: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    create: || {
        ConnectorInstance::Sink(Box::new(ConfigConnector::<dyn SinkTask>::new(
            ParquetSinkConfig::def,
            |c| ParquetSinkConfig::parse(c).map(|_| ()),
            TaskSplit::UpToMax,
            || Box::new(ParquetSinkTask::default()),
        )))
    },
};

/// A file of one partition and directory, being written.
struct OpenFile {
    start: i64,
    end: i64,
    count: u64,
    /// Record time of the first record (`rotate.interval.ms`).
    first_ts: i64,
    /// Wall-clock time the file must be completed by (`rotate.schedule.interval.ms`).
    deadline: Option<i64>,
    shape: RowShape,
    schema: Arc<ArrowSchema>,
    writer: ArrowWriter<Vec<u8>>,
    upload: Upload,
}

impl OpenFile {
    fn memory(&self) -> usize {
        self.writer.memory_size() + self.writer.inner().len() + self.upload.buffered()
    }
}

/// What the lake holds of one partition in one directory.
#[derive(Debug, Clone, Copy)]
struct Mark {
    /// The largest first offset of a file in the directory.
    last_start: i64,
    /// The last offset of that file, once read from its footer.
    end: Option<i64>,
}

type FileKey = (TopicPartition, String);

/// Writes Parquet files; see the module docs.
#[derive(Default)]
pub struct ParquetSinkTask {
    config: Option<ParquetSinkConfig>,
    store: Option<Arc<dyn ObjectStore>>,
    files: HashMap<FileKey, OpenFile>,
    marks: HashMap<FileKey, Mark>,
    /// Per partition: the offset after the last record passed to `put`.
    seen: Offsets,
    /// Offsets to read again from, for the worker.
    rewind: Offsets,
    connector: String,
    files_written: u64,
    /// Where records that cannot be placed go (`errors.tolerance=all`); without it they fail the task.
    errant: Option<ErrantRecordReporter>,
    /// Per topic: which columns get a dictionary (see `dictionary`).
    dictionaries: HashMap<String, dictionary::Advice>,
}

fn writer_properties_builder(codec: Codec) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(codec.compression())
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
}

/// Encodes values of one value schema as a whole Parquet file in memory, the way the sink's files
/// are encoded (the benchmark's raw encode limit): with the dictionaries `advice` gives, which
/// then learns from the file.
pub fn encode(
    schema: Option<&sluice_api::SchemaRef>,
    values: &[&Value],
    codec: Codec,
    advice: &mut dictionary::Advice,
) -> Result<Vec<u8>, String> {
    let shape = RowShape::of(schema);
    let arrow_schema = shape.arrow_schema()?;
    let props = advice.apply(writer_properties_builder(codec)).build();
    let mut w = ArrowWriter::try_new(Vec::new(), arrow_schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    for chunk in values.chunks(1024) {
        w.write(&shape.batch(&arrow_schema, chunk)?).map_err(|e| e.to_string())?;
    }
    advice.learn(&w.finish().map_err(|e| e.to_string())?);
    w.sync().map_err(|e| e.to_string())?;
    Ok(std::mem::take(w.inner_mut()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn err_at(r: &SinkRecord, what: impl std::fmt::Display) -> ConnectError {
    ConnectError::fatal(format!(
        "{}-{} offset {}: {what}",
        r.topic_partition().topic,
        r.kafka_partition,
        r.kafka_offset
    ))
}

impl ParquetSinkTask {
    fn cfg(&self) -> Result<&ParquetSinkConfig, ConnectError> {
        self.config.as_ref().ok_or_else(|| ConnectError::fatal("the parquet sink task was not started"))
    }

    fn store(&self) -> Result<Arc<dyn ObjectStore>, ConnectError> {
        self.store.clone().ok_or_else(|| ConnectError::fatal("the parquet sink task was not started"))
    }

    fn topic_dir(c: &ParquetSinkConfig, topic: &str) -> String {
        if c.topics_dir.is_empty() {
            topic.to_string()
        } else {
            format!("{}/{topic}", c.topics_dir)
        }
    }

    fn file_name(c: &ParquetSinkConfig, tp: &TopicPartition, start: i64) -> String {
        let d = &c.file_delim;
        format!("{}{d}{}{d}{:0width$}.parquet", tp.topic, tp.partition, start, width = c.offset_pad)
    }

    /// Where the file of `key` starting at `start` is.
    fn file_path(c: &ParquetSinkConfig, (tp, encoded): &FileKey, start: i64) -> Path {
        Path::from(format!("{}/{encoded}/{}", Self::topic_dir(c, &tp.topic), Self::file_name(c, tp, start)))
    }

    fn staging_prefix(c: &ParquetSinkConfig, tp: &TopicPartition) -> String {
        let root = if c.topics_dir.is_empty() { "+tmp".to_string() } else { format!("{}/+tmp", c.topics_dir) };
        format!("{root}/{}/{}", tp.topic, tp.partition)
    }

    /// Parses `<topic><d><partition><d><offset>.parquet`.
    fn parse_name(c: &ParquetSinkConfig, name: &str) -> Option<(String, i32, i64)> {
        let stem = name.strip_suffix(".parquet")?;
        let mut parts = stem.rsplitn(3, c.file_delim.as_str());
        let offset = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        Some((parts.next()?.to_string(), partition, offset))
    }

    fn new_file(&mut self, key: &FileKey, shape: RowShape, r: &SinkRecord, ts: i64) -> Result<OpenFile, ConnectError> {
        let (codec, always) = (self.cfg()?.codec, self.cfg()?.dictionary_always);
        let props = writer_properties_builder(codec);
        let props = if always { props } else { self.dictionaries.entry(key.0.topic.clone()).or_default().apply(props) };
        let props = props.build();
        let c = self.cfg()?;
        let schema = shape
            .arrow_schema()
            .map_err(|e| err_at(r, format!("the value schema cannot be written to Parquet: {e}")))?;
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
            .map_err(|e| err_at(r, format!("cannot start a Parquet file: {e}")))?;
        let tp = &key.0;
        let path = Self::file_path(c, key, r.kafka_offset);
        let staging = Path::from(format!(
            "{}/{}.{}.{}",
            Self::staging_prefix(c, tp),
            Self::file_name(c, tp, r.kafka_offset),
            self.connector,
            now_ms()
        ));
        let deadline = c.rotate_schedule_ms.map(|every| {
            let now = now_ms();
            let offset_ms = match &c.partitioner {
                PartitionerKind::Time { format, .. } => i64::from(format.zone.offset_s(now)) * 1000,
                _ => 0,
            };
            let local = now + offset_ms;
            (local.div_euclid(every) + 1) * every - offset_ms
        });
        Ok(OpenFile {
            start: r.kafka_offset,
            end: r.kafka_offset,
            count: 0,
            first_ts: ts,
            deadline,
            shape,
            schema,
            writer,
            upload: Upload::new(self.store()?, path, staging, c.part_size),
        })
    }

    /// Appends rows to an open file, writing out the row group once it is large enough.
    async fn append(&mut self, key: &FileKey, rows: &[&SinkRecord]) -> Result<(), ConnectError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rg_bytes = self.cfg()?.row_group_bytes;
        let Some(f) = self.files.get_mut(key) else { return Ok(()) };
        let values: Vec<&Value> = rows.iter().map(|r| &r.value).collect();
        let batch = f.shape.batch(&f.schema, &values).map_err(|e| err_at(rows[0], e))?;
        f.count += rows.len() as u64;
        f.end = rows[rows.len() - 1].kafka_offset;
        // In slices, so that a large batch still ends row groups near their size.
        const SLICE: usize = 1024;
        let mut at = 0;
        while at < batch.num_rows() {
            let n = SLICE.min(batch.num_rows() - at);
            let encode_err = |e| err_at(rows[at], format!("Parquet encoding failed: {e}"));
            f.writer.write(&batch.slice(at, n)).map_err(encode_err)?;
            if f.writer.in_progress_size() >= rg_bytes {
                f.writer.flush().map_err(encode_err)?;
                let _ = f.writer.sync();
                let bytes = std::mem::take(f.writer.inner_mut());
                f.upload.write(&bytes).await?;
            }
            at += n;
        }
        Ok(())
    }

    /// Completes a file. When a file of that name ends earlier than ours, the partition is set
    /// to be read again (see the module docs).
    async fn complete(&mut self, key: &FileKey) -> Result<(), ConnectError> {
        let Some(mut f) = self.files.remove(key) else { return Ok(()) };
        let tp = &key.0;
        for (k, v) in [
            (store::META_TOPIC, tp.topic.clone()),
            (store::META_PARTITION, tp.partition.to_string()),
            (store::META_START, f.start.to_string()),
            (store::META_END, f.end.to_string()),
        ] {
            f.writer.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        let what = || format!("{tp} file at offset {}", f.start);
        let always = self.cfg()?.dictionary_always;
        match f.writer.finish() {
            Ok(meta) if !always => self.dictionaries.entry(tp.topic.clone()).or_default().learn(&meta),
            Ok(_) => {}
            Err(e) => {
                f.upload.abort().await;
                return Err(ConnectError::fatal(format!("{}: Parquet encoding failed: {e}", what())));
            }
        }
        let _ = f.writer.sync();
        let bytes = std::mem::take(f.writer.inner_mut());
        if let Err(e) = f.upload.write(&bytes).await {
            f.upload.abort().await;
            // The file's records are in no file now: read them again, or a retried (or empty)
            // put would let the offsets past them be committed.
            self.read_again(tp, f.start).await;
            return Err(e);
        }
        let (start, end) = (f.start, f.end);
        let path = Self::file_path(self.cfg()?, key, start);
        match f.upload.finish().await {
            Ok(Finished::Created) => {
                self.files_written += 1;
                tracing::debug!(connector = %self.connector, %path, start, end, records = f.count, "file written");
                self.marks.insert(key.clone(), Mark { last_start: start, end: Some(end) });
            }
            Ok(Finished::Exists) => {
                let (_, their_end) = store::file_offsets(&self.store()?, &path, start).await?;
                self.marks.insert(key.clone(), Mark { last_start: start, end: Some(their_end) });
                if their_end >= end {
                    tracing::info!(connector = %self.connector, %path, "file already in the lake, kept as it is");
                } else {
                    // The lake has this directory's records only up to their_end: read the
                    // partition again from there (or from an earlier open file), dropping its
                    // open files; records already in other directories are skipped by their marks.
                    tracing::warn!(connector = %self.connector, %path, their_end, our_end = end, "a file of that name ends earlier; reading the partition again");
                    self.read_again(tp, their_end + 1).await;
                }
            }
            Err(e) => {
                self.read_again(tp, start).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops the partition's open files and asks the worker to read it again from `from` (or
    /// the first record of an open file, if earlier). Until the worker has, `put` skips the
    /// partition's records.
    async fn read_again(&mut self, tp: &TopicPartition, from: i64) {
        let mut from = from;
        let open: Vec<FileKey> = self.files.keys().filter(|(t, _)| t == tp).cloned().collect();
        for k in open {
            if let Some(o) = self.files.remove(&k) {
                from = from.min(o.start);
                o.upload.abort().await;
            }
        }
        let from = self.rewind.get(tp).map_or(from, |r| (*r).min(from));
        self.rewind.insert(tp.clone(), from);
        self.seen.insert(tp.clone(), from);
    }

    /// Whether the lake already holds a record of this directory (a replay).
    async fn in_lake(&mut self, key: &FileKey, offset: i64) -> Result<bool, ConnectError> {
        let Some(mark) = self.marks.get(key).copied() else { return Ok(false) };
        if offset < mark.last_start {
            return Ok(true);
        }
        let end = match mark.end {
            Some(e) => e,
            None => {
                let path = Self::file_path(self.cfg()?, key, mark.last_start);
                let (_, end) = store::file_offsets(&self.store()?, &path, mark.last_start).await?;
                self.marks.insert(key.clone(), Mark { last_start: mark.last_start, end: Some(end) });
                end
            }
        };
        Ok(offset <= end)
    }

    /// Writes a batch (see `put`).
    async fn put_records(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let c = self.cfg()?.clone();
        let now = now_ms();
        // Rows per open file, in order, not yet appended.
        let mut pending: HashMap<FileKey, Vec<&SinkRecord>> = HashMap::new();
        // The partition and the file of the previous record: records come in runs, and their keys
        // are built once per run, not once per record.
        let mut run: Option<TopicPartition> = None;
        let mut last_key: Option<FileKey> = None;
        for r in records {
            let topic = r.original_topic.as_deref().unwrap_or(&r.topic);
            let tp = match run.take() {
                Some(tp) if tp.partition == r.kafka_partition && tp.topic == topic => tp,
                _ => r.topic_partition(),
            };
            let tp = &*run.insert(tp);
            // A partition to be read again, or a record an earlier attempt of this batch handled.
            if self.rewind.contains_key(tp) {
                continue;
            }
            match self.seen.get_mut(tp) {
                Some(next) if r.kafka_offset < *next => continue,
                Some(next) => *next = r.kafka_offset + 1,
                None => {
                    self.seen.insert(tp.clone(), r.kafka_offset + 1);
                }
            }
            // A record that cannot be placed: the DLQ's where allowed, else the task's error.
            let placed = if matches!(r.value, Value::Null) && c.null_values == NullValues::Ignore {
                continue;
            } else if matches!(r.value, Value::Null) {
                Err("a null value (tombstone) cannot be written; set behavior.on.null.values=ignore to skip tombstones"
                    .to_string())
            } else {
                c.extractor.extract(r, now).and_then(|ts| c.partitioner.encode(r, ts).map(|e| (ts, e)))
            };
            let (ts, encoded) = match (placed, &self.errant) {
                (Ok(placed), _) => placed,
                (Err(e), Some(errant)) => {
                    errant.report(r, err_at(r, e));
                    continue;
                }
                (Err(e), None) => return Err(err_at(r, e)),
            };
            let key = match last_key.take() {
                Some(k) if k.1 == encoded && k.0 == *tp => k,
                _ => (tp.clone(), encoded),
            };
            let key = &*last_key.insert(key);
            if self.in_lake(key, r.kafka_offset).await? {
                continue;
            }
            let shape = RowShape::of(r.value_schema.as_ref());
            let open = self
                .files
                .get(key)
                .map(|f| !f.shape.same(&shape) || c.rotate_interval_ms.is_some_and(|iv| ts - f.first_ts >= iv));
            if open == Some(true) {
                let rows = pending.remove(key).unwrap_or_default();
                self.append(key, &rows).await?;
                self.complete(key).await?;
            }
            if open != Some(false) {
                let f = self.new_file(key, shape, r, ts)?;
                self.files.insert(key.clone(), f);
            }
            let held = match pending.get_mut(key) {
                Some(rows) => {
                    rows.push(r);
                    rows.len()
                }
                None => {
                    pending.insert(key.clone(), vec![r]);
                    1
                }
            };
            let full = self.files.get(key).is_some_and(|f| f.count + held as u64 >= c.flush_size);
            if full {
                let rows = pending.remove(key).unwrap_or_default();
                self.append(key, &rows).await?;
                self.complete(key).await?;
            }
        }
        for (key, rows) in pending {
            self.append(&key, &rows).await?;
        }
        self.enforce_limits(now_ms()).await
    }

    /// Completes files past the schedule, then the largest ones while over the open-file or byte cap.
    async fn enforce_limits(&mut self, now: i64) -> Result<(), ConnectError> {
        let due: Vec<FileKey> =
            self.files.iter().filter(|(_, f)| f.deadline.is_some_and(|d| now >= d)).map(|(k, _)| k.clone()).collect();
        for k in due {
            self.complete(&k).await?;
        }
        let (max_files, max_bytes) = {
            let c = self.cfg()?;
            (c.max_open_files, c.buffer_max_bytes)
        };
        loop {
            let total: usize = self.files.values().map(OpenFile::memory).sum();
            if self.files.len() <= max_files && total <= max_bytes {
                return Ok(());
            }
            let Some(largest) = self.files.iter().max_by_key(|(_, f)| f.memory()).map(|(k, _)| k.clone()) else {
                return Ok(());
            };
            tracing::debug!(connector = %self.connector, open = self.files.len(), bytes = total, "memory or open-file cap: completing the largest file early");
            self.complete(&largest).await?;
        }
    }
}

#[async_trait]
impl SinkTask for ParquetSinkTask {
    async fn start(&mut self, config: &ConfigMap, context: SinkTaskContext) -> Result<(), ConnectError> {
        let c = ParquetSinkConfig::parse(config)?;
        self.store = Some(store::open_store(&c)?);
        self.config = Some(c);
        self.connector = context.connector;
        self.errant = context.errant;
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<Offsets, ConnectError> {
        let c = self.cfg()?.clone();
        let store = self.store()?;
        let topics: BTreeSet<&str> = partitions.iter().map(|tp| tp.topic.as_str()).collect();
        for topic in topics {
            let dir = Self::topic_dir(&c, topic);
            let prefix = Path::from(dir.clone());
            let mut found = 0usize;
            for path in store::list(&store, &prefix).await? {
                let Some(name) = path.filename() else { continue };
                let Some((t, partition, start)) = Self::parse_name(&c, name) else { continue };
                let tp = TopicPartition::new(topic, partition);
                if t != topic || !partitions.contains(&tp) {
                    continue;
                }
                let full = path.as_ref();
                let encoded = full
                    .strip_prefix(dir.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.strip_suffix(name))
                    .map(|r| r.trim_end_matches('/').to_string())
                    .unwrap_or_default();
                found += 1;
                let mark = self.marks.entry((tp, encoded)).or_insert(Mark { last_start: start, end: None });
                if start > mark.last_start {
                    *mark = Mark { last_start: start, end: None };
                }
            }
            tracing::info!(connector = %self.connector, topic, files = found, "files already in the lake");
        }
        // Staged parts of uploads that never completed.
        for tp in partitions {
            for path in store::list(&store, &Path::from(Self::staging_prefix(&c, tp))).await? {
                store::delete(&store, &path).await?;
            }
        }
        Ok(Offsets::new())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        match self.put_records(records).await {
            Err(e) if e.kind() == ErrorKind::Retriable => {
                // Rows of this batch may be half-way into files that are now dropped: read every
                // partition of the batch again from its first record here (written files are
                // skipped by their marks), and let the worker's retry of the batch pass.
                let mut first: Offsets = Offsets::new();
                for r in records {
                    first.entry(r.topic_partition()).or_insert(r.kafka_offset);
                }
                for (tp, from) in first {
                    self.read_again(&tp, from).await;
                }
                Err(e)
            }
            other => other,
        }
    }

    async fn pre_commit(&mut self, offsets: &Offsets) -> Result<Offsets, ConnectError> {
        self.enforce_limits(now_ms()).await?;
        let mut safe = Offsets::new();
        for (tp, consumed) in offsets {
            let oldest_open = self.files.iter().filter(|((t, _), _)| t == tp).map(|(_, f)| f.start).min();
            let at = match (oldest_open, self.rewind.get(tp)) {
                (_, Some(r)) => *r,
                (Some(start), None) => start,
                (None, None) => *consumed,
            };
            safe.insert(tp.clone(), at.min(*consumed));
        }
        Ok(safe)
    }

    fn rewind(&mut self) -> Offsets {
        std::mem::take(&mut self.rewind)
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let gone: Vec<FileKey> = self.files.keys().filter(|(tp, _)| partitions.contains(tp)).cloned().collect();
        for k in gone {
            if let Some(f) = self.files.remove(&k) {
                f.upload.abort().await;
            }
        }
        self.marks.retain(|(tp, _), _| !partitions.contains(tp));
        for tp in partitions {
            self.seen.remove(tp);
            self.rewind.remove(tp);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        for (_, f) in self.files.drain() {
            f.upload.abort().await;
        }
        tracing::info!(connector = %self.connector, files = self.files_written, "parquet sink stopped");
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// The complete files of `topic` in the lake a sink config points at: (path, first offset, last
/// offset from the footer), sorted by path. For tests and tools that check a lake (HDFS, where no
/// independent reader runs here).
pub async fn lake_files(config: &ConfigMap, topic: &str) -> Result<Vec<(String, i64, i64)>, ConnectError> {
    use futures::TryStreamExt;
    let c = ParquetSinkConfig::parse(config)?;
    let store = store::open_store(&c)?;
    let prefix = object_store::path::Path::from(format!("{}/{topic}", c.topics_dir));
    let listed: Vec<object_store::ObjectMeta> = match store.list(Some(&prefix)).try_collect().await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(store::store_err(format!("cannot list {prefix}"), e)),
    };
    let mut out = Vec::new();
    for m in listed {
        let path = m.location.to_string();
        let Some(start) = path
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".parquet"))
            .and_then(|n| n.rsplit('+').next())
            .and_then(|d| d.parse::<i64>().ok())
        else {
            continue;
        };
        if path.contains("/+tmp/") {
            continue;
        }
        let (first, last) = store::file_offsets(&store, &m.location, start).await?;
        out.push((path, first, last));
    }
    out.sort();
    Ok(out)
}
