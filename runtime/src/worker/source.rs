//! The source task loop: poll → convert → produce → (after the broker's acks) offsets.
//!
//! Delivery (at-least-once): records are sent in poll order through an idempotent `acks=all`
//! producer; batches are acknowledged in order, and a source offset enters the committable set only
//! when its record and every record before it were acknowledged. Committable offsets are written to
//! the offset store every `offset.flush.interval.ms` and on shutdown. After a crash the task resumes
//! at the last written offset, so records after it may be sent again, never skipped.
//! Memory: at most `task.buffer.max.bytes` of records are in flight; past that the loop stops
//! polling until acknowledgements come back.
//!
//! Exactly-once (`exactly.once.source.support=enabled`, distributed mode): the producer is
//! transactional (`transactional.id` `<group.id>-<connector>-<task>`). Initializing it fences the
//! task's previous incarnation (its open transaction is aborted); only then are the task's offsets
//! read, with the transaction markers applied (`storage::committed`). Each transaction holds a poll
//! batch (`transaction.boundary=poll`) or `transaction.boundary.interval.ms` of them (`interval`,
//! committed early when `task.buffer.max.bytes` is in flight) and, last, the source offsets of its
//! records written to the offsets topic; records and offsets become visible together or not at all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sluice_api::{
    ConfigMap, ConnectError, ErrorKind, JsonMap, RecordMetadata, SourceRecord, SourceTask, SourceTaskContext,
    StateTopics, Value,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{StatusReporter, TaskSettings};
use crate::config::ErrorTolerance;
use crate::metrics::TaskMetrics;
use crate::storage::{
    offset_key, parse_offset_record, ConnectorOffsetReader, ConnectorState, MemoryOffsetStore, OffsetStore,
};
use crate::transforms::Parts;

/// Topic creation settings for topics a source writes to (`topic.creation.default.*`).
pub(crate) struct TopicCreation {
    partitions: i32,
    replication: i32,
}

impl TopicCreation {
    pub(crate) fn from_config(config: &ConfigMap) -> TopicCreation {
        let get = |k: &str, d: i32| config.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d);
        TopicCreation {
            partitions: get("topic.creation.default.partitions", 1),
            replication: get("topic.creation.default.replication.factor", -1),
        }
    }
}

/// How long transactional producer calls may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

type BatchAcks = BoxFuture<'static, Vec<Option<Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>>>>;

/// A record in Kafka form: key, value, headers.
type Converted = (Option<Vec<u8>>, Option<Vec<u8>>, Option<OwnedHeaders>);

struct InFlight {
    records: Vec<SourceRecord>,
    bytes: usize,
}

pub(crate) struct SourceRunner {
    s: TaskSettings,
    task: Box<dyn SourceTask>,
    producer: FutureProducer,
    admin: Arc<AdminClient<DefaultClientContext>>,
    topic_creation: TopicCreation,
    offsets: Arc<dyn OffsetStore>,
    known_topics: HashSet<String>,
    in_flight: std::collections::VecDeque<InFlight>,
    acks: FuturesOrdered<BatchAcks>,
    in_flight_bytes: usize,
    committable: HashMap<String, (JsonMap, JsonMap)>,
    dirty: bool,
    txn: Option<Transactions>,
    /// The task's state topics (schema history).
    state: Arc<dyn StateTopics>,
}

/// How an exactly-once task's transactions are made.
pub(crate) struct Transactions {
    /// `<group.id>-<connector>-<task>`.
    pub transactional_id: String,
    /// Brokers (to read the offsets topic with the markers applied).
    pub bootstrap: String,
    /// The offsets topic.
    pub offsets_topic: String,
    /// `None`: one transaction per poll batch; `Some(d)`: one per `d`.
    pub interval: Option<Duration>,
    /// Partitions of the offsets topic (learned at start).
    offsets_partitions: i32,
    /// When the open transaction began (`None`: none is open).
    open_since: Option<Instant>,
    /// Newest offset per source partition of the open transaction's records.
    offsets: HashMap<String, (JsonMap, JsonMap)>,
}

impl Transactions {
    pub(crate) fn new(
        transactional_id: String,
        bootstrap: String,
        offsets_topic: String,
        interval: Option<Duration>,
    ) -> Transactions {
        Transactions {
            transactional_id,
            bootstrap,
            offsets_topic,
            interval,
            offsets_partitions: 0,
            open_since: None,
            offsets: HashMap::new(),
        }
    }
}

/// Kafka's murmur2 (the Java client's default partitioner hash).
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` (so offsets written in a transaction
/// land where the offset store's own writes of the same key do).
pub(crate) fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

impl SourceRunner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        s: TaskSettings,
        task: Box<dyn SourceTask>,
        producer: FutureProducer,
        admin: Arc<AdminClient<DefaultClientContext>>,
        topic_creation: TopicCreation,
        offsets: Arc<dyn OffsetStore>,
        txn: Option<Transactions>,
        state: Arc<dyn StateTopics>,
    ) -> SourceRunner {
        SourceRunner {
            state,
            s,
            task,
            producer,
            admin,
            topic_creation,
            offsets,
            known_topics: HashSet::new(),
            in_flight: Default::default(),
            acks: FuturesOrdered::new(),
            in_flight_bytes: 0,
            committable: HashMap::new(),
            dirty: false,
            txn,
        }
    }

    pub(crate) async fn run(
        mut self,
        cancel: CancellationToken,
        report: StatusReporter,
        mut paused: watch::Receiver<bool>,
    ) -> Result<(), ConnectError> {
        let id = self.s.id.clone();
        let store = match self.txn.is_some() {
            true => self.fence_and_read_offsets().await?,
            false => self.offsets.clone(),
        };
        let context = SourceTaskContext {
            connector: id.connector.clone(),
            task: id.task,
            offsets: Arc::new(ConnectorOffsetReader { connector: id.connector.clone(), store }),
            state: Some(self.state.clone()),
        };
        let config = self.s.task_config.clone();
        self.task.start(&config, context).await?;
        tracing::info!(task = %id, exactly_once = self.txn.is_some(), "source task started");
        let result = self.main_loop(&cancel, &report, &mut paused).await;
        // Whatever happened, commit what the broker acknowledged (exactly-once: the open
        // transaction, unless the loop failed, in which case it is aborted).
        let drained = match (&self.txn, &result) {
            (None, _) => self.drain(self.s.shutdown_timeout).await,
            (Some(_), Ok(())) => self.commit_transaction().await,
            (Some(_), Err(_)) => {
                self.abort_transaction().await;
                Ok(())
            }
        };
        let flushed = self.flush_offsets().await;
        let stopped = self.task.stop().await;
        report.report(ConnectorState::Unassigned, None);
        result.and(drained).and(flushed).and(stopped)
    }

    async fn main_loop(
        &mut self,
        cancel: &CancellationToken,
        report: &StatusReporter,
        paused: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectError> {
        let mut last_flush = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut reported: Option<bool> = None;
        loop {
            let is_paused = *paused.borrow_and_update();
            report.report_pause_state(&mut reported, is_paused);
            if self.txn.is_some() {
                // Records are acknowledged with their transaction's commit.
                if self.transaction_due(is_paused) {
                    self.commit_transaction().await?;
                }
            } else {
                while let Some(Some(acks)) = self.acks.next().now_or_never() {
                    self.on_acked(acks).await?;
                }
            }
            while self.txn.is_none() && self.in_flight_bytes >= self.s.buffer_max_bytes {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    acks = self.acks.next() => match acks {
                        Some(acks) => self.on_acked(acks).await?,
                        None => break,
                    },
                }
            }
            if last_flush.elapsed() >= self.s.flush_interval {
                match self.flush_offsets().await {
                    Err(e) if e.kind() == ErrorKind::Retriable => {
                        tracing::warn!(task = %self.s.id, error = %e, "offset flush failed; will retry")
                    }
                    other => other?,
                }
                last_flush = Instant::now();
            }
            if is_paused {
                // Paused: no polling; acknowledgements and offset flushes go on.
                let until_flush = self.s.flush_interval.saturating_sub(last_flush.elapsed());
                let at_least_once = self.txn.is_none();
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = paused.changed() => {}
                    Some(acks) = self.acks.next(), if at_least_once => self.on_acked(acks).await?,
                    _ = tokio::time::sleep(until_flush) => {}
                }
                continue;
            }
            let polled = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                r = self.task.poll() => r,
            };
            match polled {
                Ok(records) => {
                    backoff = Duration::from_millis(100);
                    TaskMetrics::add(&self.s.metrics.source_record_poll_total, records.len());
                    TaskMetrics::add(&self.s.metrics.source_record_active_count, records.len());
                    if !records.is_empty() {
                        self.send(records).await?;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Retriable => {
                    tracing::warn!(task = %self.s.id, error = %e, backoff_ms = backoff.as_millis() as u64, "poll failed, retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.s.retry_delay_max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Exactly-once start: initializes the transactional producer (fencing the task's previous
    /// incarnation, whose open transaction the broker aborts), then reads the offsets topic with
    /// the transaction markers applied. The task starts from those offsets.
    async fn fence_and_read_offsets(&mut self) -> Result<Arc<dyn OffsetStore>, ConnectError> {
        let Some(txn) = &mut self.txn else { return Ok(self.offsets.clone()) };
        let id = self.s.id.clone();
        let producer = self.producer.clone();
        let topic = txn.offsets_topic.clone();
        let init = tokio::task::spawn_blocking(move || -> Result<i32, KafkaError> {
            producer.init_transactions(TXN_TIMEOUT)?;
            let metadata = producer.client().fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            Ok(metadata.topics().iter().filter(|t| t.name() == topic).map(|t| t.partitions().len() as i32).sum())
        })
        .await
        .map_err(|e| ConnectError::fatal(format!("task {id}: producer initialization panicked: {e}")))?
        .map_err(|e| {
            ConnectError::fatal_from(format!("task {id} could not initialize its transactional producer"), e)
        })?;
        if init < 1 {
            return Err(ConnectError::fatal(format!(
                "task {id}: offsets topic {} has no partitions",
                txn.offsets_topic
            )));
        }
        txn.offsets_partitions = init;
        let records = crate::storage::committed::read_committed(&txn.bootstrap, &txn.offsets_topic, TXN_TIMEOUT)
            .await
            .map_err(|e| {
                ConnectError::retriable_from(
                    format!("task {id} could not read the offsets topic {}", txn.offsets_topic),
                    e,
                )
            })?;
        let store = MemoryOffsetStore::default();
        let mut found = 0;
        for r in records {
            let Some((connector, partition, offset)) =
                parse_offset_record(r.key.as_deref().unwrap_or_default(), r.value.as_deref())
            else {
                continue;
            };
            if connector == id.connector {
                found += 1;
                store
                    .set(&connector, vec![(partition, offset)])
                    .await
                    .map_err(|e| ConnectError::fatal_from(format!("task {id}: offsets"), e))?;
            }
        }
        tracing::info!(task = %id, transactional_id = %txn.transactional_id, offsets = found, "exactly-once: predecessor fenced, committed offsets read");
        Ok(Arc::new(store))
    }

    /// Whether the open transaction should be committed now.
    fn transaction_due(&self, paused: bool) -> bool {
        let Some(txn) = &self.txn else { return false };
        let Some(since) = txn.open_since else { return false };
        paused || self.in_flight_bytes >= self.s.buffer_max_bytes || txn.interval.is_none_or(|i| since.elapsed() >= i)
    }

    async fn begin_transaction(&mut self) -> Result<(), ConnectError> {
        let Some(txn) = &mut self.txn else { return Ok(()) };
        if txn.open_since.is_some() {
            return Ok(());
        }
        self.producer
            .begin_transaction()
            .map_err(|e| ConnectError::fatal_from(format!("task {} could not begin a transaction", self.s.id), e))?;
        txn.open_since = Some(Instant::now());
        Ok(())
    }

    /// Writes the open transaction's source offsets into it and commits: its records and their
    /// offsets become visible together. On failure the transaction is aborted and the task fails
    /// (it restarts from the last committed offsets).
    async fn commit_transaction(&mut self) -> Result<(), ConnectError> {
        let Some(txn) = &mut self.txn else { return Ok(()) };
        if txn.open_since.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let offsets: Vec<(String, (JsonMap, JsonMap))> = txn.offsets.drain().collect();
        let (topic, partitions) = (txn.offsets_topic.clone(), txn.offsets_partitions);
        let mut offset_acks = Vec::with_capacity(offsets.len());
        for (key, (_, offset)) in &offsets {
            let value = serde_json::Value::Object(offset.clone()).to_string();
            let partition = key_partition(key.as_bytes(), partitions);
            loop {
                let record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&topic).key(key.as_bytes()).payload(value.as_bytes()).partition(partition);
                match self.producer.send_result(record) {
                    Ok(ack) => {
                        offset_acks.push(ack);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err((e, _)) => {
                        self.abort_transaction().await;
                        return Err(ConnectError::fatal_from(
                            format!("task {} could not write its offsets into the transaction", self.s.id),
                            e,
                        ));
                    }
                }
            }
        }
        // Every record and offset acknowledged first: rdkafka's commit_transaction otherwise
        // flushes in 100 ms polling steps (a 100 ms floor per transaction).
        let mut acked = Vec::with_capacity(self.acks.len());
        while let Some(acks) = self.acks.next().await {
            acked.push(acks);
        }
        let records_failed = acked.iter().flatten().flatten().any(|a| !matches!(a, Ok(Ok(_))));
        let mut offsets_failed = false;
        for ack in offset_acks {
            offsets_failed |= !matches!(ack.await, Ok(Ok(_)));
        }
        if records_failed || offsets_failed {
            TaskMetrics::add(&self.s.metrics.offset_commit_failure_total, 1);
            self.abort_transaction().await;
            return Err(ConnectError::fatal(format!(
                "task {}: a record or offset of the transaction was not written; the transaction was aborted",
                self.s.id
            )));
        }
        let acked_ms = started.elapsed().as_millis() as u64;
        let producer = self.producer.clone();
        let committed = tokio::task::spawn_blocking(move || producer.commit_transaction(TXN_TIMEOUT)).await;
        if let Some(txn) = &mut self.txn {
            txn.open_since = None;
        }
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                TaskMetrics::add(&self.s.metrics.offset_commit_failure_total, 1);
                self.abort_transaction().await;
                return Err(ConnectError::fatal_from(
                    format!(
                        "task {} could not commit its transaction (records and offsets are discarded together)",
                        self.s.id
                    ),
                    e,
                ));
            }
            Err(e) => return Err(ConnectError::fatal(format!("task {}: commit panicked: {e}", self.s.id))),
        }
        // Every record of the transaction is committed now.
        for acks in acked {
            self.on_acked(acks).await?;
        }
        TaskMetrics::add(&self.s.metrics.offset_commit_success_total, 1);
        tracing::debug!(task = %self.s.id, partitions = offsets.len(), acked_ms, elapsed_ms = started.elapsed().as_millis() as u64, "transaction committed");
        self.task.commit().await
    }

    /// Aborts the open transaction (its records and offsets are never visible); failures are
    /// logged: the next incarnation's fencing aborts it anyway.
    async fn abort_transaction(&mut self) {
        let Some(txn) = &mut self.txn else { return };
        txn.offsets.clear();
        txn.open_since = None;
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.acks = FuturesOrdered::new();
        let producer = self.producer.clone();
        match tokio::task::spawn_blocking(move || producer.abort_transaction(TXN_TIMEOUT)).await {
            Ok(Ok(())) => tracing::warn!(task = %self.s.id, "transaction aborted"),
            Ok(Err(e)) => tracing::warn!(task = %self.s.id, error = %e, "transaction abort failed"),
            Err(e) => tracing::warn!(task = %self.s.id, error = %e, "transaction abort panicked"),
        }
    }

    async fn ensure_topic(&mut self, topic: &str) {
        if self.known_topics.contains(topic) {
            return;
        }
        let new = NewTopic::new(
            topic,
            self.topic_creation.partitions,
            TopicReplication::Fixed(self.topic_creation.replication),
        );
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        match self.admin.create_topics([&new], &opts).await {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(t) => tracing::info!(task = %self.s.id, topic = %t, "created topic"),
                        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((t, code)) => {
                            tracing::warn!(task = %self.s.id, topic = %t, error = %code, "could not create topic; relying on the broker")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(task = %self.s.id, topic, error = %e, "could not create topic; relying on the broker")
            }
        }
        self.known_topics.insert(topic.to_string());
    }

    fn convert(&self, record: &SourceRecord) -> Result<Converted, String> {
        let key = self
            .s
            .key_converter
            .to_bytes(&record.topic, record.key_schema.as_ref(), &record.key)
            .map_err(|e| format!("key converter: {e}"))?;
        let value = self
            .s
            .value_converter
            .to_bytes(&record.topic, record.value_schema.as_ref(), &record.value)
            .map_err(|e| format!("value converter: {e}"))?;
        if record.headers.is_empty() {
            return Ok((key, value, None));
        }
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for h in &record.headers {
            let bytes: Option<Vec<u8>> = match &h.value {
                Value::Null => None,
                Value::String(s) => Some(s.as_bytes().to_vec()),
                Value::Bytes(b) => Some(b.clone()),
                other => Some(other.to_string().into_bytes()),
            };
            headers = headers.insert(KafkaHeader { key: &h.key, value: bytes.as_deref() });
        }
        Ok((key, value, Some(headers)))
    }

    /// A record that cannot be sent: skipped (and counted) under `errors.tolerance=all`, else the
    /// task fails with `what`.
    fn record_failed(&self, what: String) -> Result<(), ConnectError> {
        let msg = format!("task {} {what}", self.s.id);
        TaskMetrics::add(&self.s.metrics.total_record_errors, 1);
        if self.s.tolerance != ErrorTolerance::All {
            return Err(ConnectError::fatal(msg));
        }
        tracing::warn!(task = %self.s.id, error = %msg, "skipping record (errors.tolerance=all)");
        TaskMetrics::add(&self.s.metrics.total_records_skipped, 1);
        Ok(())
    }

    async fn send(&mut self, records: Vec<SourceRecord>) -> Result<(), ConnectError> {
        self.begin_transaction().await?;
        let mut futures = Vec::with_capacity(records.len());
        let mut bytes = 0;
        for original in &records {
            bytes += original.approx_size();
            // Transforms work on a copy: the original keeps its place for acks and offsets.
            let transformed;
            let record = if self.s.transforms.is_empty() {
                original
            } else {
                match self.s.transforms.apply(Parts::of_source(original)) {
                    Ok(Some(parts)) => {
                        transformed = parts.into_source(original);
                        &transformed
                    }
                    Ok(None) => {
                        futures.push(None);
                        continue;
                    }
                    Err(e) => {
                        self.record_failed(format!("could not transform a record for topic {}: {e}", original.topic))?;
                        futures.push(None);
                        continue;
                    }
                }
            };
            let (key, value, headers) = match self.convert(record) {
                Ok(c) => c,
                Err(e) => {
                    self.record_failed(format!("could not convert a record for topic {}: {e}", record.topic))?;
                    futures.push(None);
                    continue;
                }
            };
            self.ensure_topic(&record.topic).await;
            loop {
                let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic);
                if let Some(h) = &headers {
                    fr = fr.headers(h.clone());
                }
                if let Some(k) = &key {
                    fr = fr.key(k.as_slice());
                }
                if let Some(v) = &value {
                    fr = fr.payload(v.as_slice());
                }
                if let Some(p) = record.kafka_partition {
                    fr = fr.partition(p);
                }
                if let Some(ts) = record.timestamp {
                    fr = fr.timestamp(ts);
                }
                match self.producer.send_result(fr) {
                    Ok(f) => {
                        futures.push(Some(f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's queue is full: wait for the oldest batch, or briefly.
                        match self.txn.is_none().then(|| self.acks.next().now_or_never()).flatten() {
                            Some(Some(acks)) => self.on_acked(acks).await?,
                            _ => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        return Err(ConnectError::fatal_from(
                            format!("task {} could not send a record to topic {}", self.s.id, record.topic),
                            e,
                        ))
                    }
                }
            }
        }
        self.in_flight_bytes += bytes;
        // Active topics (once per batch and topic; the store ignores repeats).
        let mut last: Option<&str> = None;
        for r in &records {
            if last != Some(r.topic.as_str()) {
                self.s.topic_active(&r.topic);
                last = Some(r.topic.as_str());
            }
        }
        if let Some(txn) = &mut self.txn {
            // Every polled record's offset is covered, skipped ones too (as in at-least-once).
            for r in records.iter().filter(|r| !r.source_partition.is_empty()) {
                txn.offsets.insert(
                    offset_key(&self.s.id.connector, &r.source_partition),
                    (r.source_partition.clone(), r.source_offset.clone()),
                );
            }
        }
        self.in_flight.push_back(InFlight { records, bytes });
        let acks: BatchAcks = async move {
            let mut out = Vec::with_capacity(futures.len());
            for f in futures {
                out.push(match f {
                    Some(f) => Some(f.await),
                    None => None,
                });
            }
            out
        }
        .boxed();
        self.acks.push_back(acks);
        Ok(())
    }

    async fn on_acked(
        &mut self,
        acks: Vec<Option<Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>>>,
    ) -> Result<(), ConnectError> {
        let Some(batch) = self.in_flight.pop_front() else { return Ok(()) };
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(batch.bytes);
        let records = &batch.records;
        TaskMetrics::sub(&self.s.metrics.source_record_active_count, records.len());
        for (i, (record, ack)) in records.iter().zip(acks).enumerate() {
            let metadata = match ack {
                None => None,
                Some(Ok(Ok(Delivery { partition, offset, .. }))) => {
                    TaskMetrics::add(&self.s.metrics.source_record_write_total, 1);
                    Some(RecordMetadata { topic: record.topic.clone(), partition, offset })
                }
                Some(Ok(Err((e, _)))) => {
                    let msg = format!("task {} failed to send a record to topic {}: {e}", self.s.id, record.topic);
                    TaskMetrics::add(&self.s.metrics.total_record_errors, 1);
                    if self.s.tolerance == ErrorTolerance::All {
                        TaskMetrics::add(&self.s.metrics.total_records_skipped, 1);
                        tracing::warn!(task = %self.s.id, error = %msg, "skipping record (errors.tolerance=all)");
                        None
                    } else {
                        return Err(ConnectError::fatal(msg));
                    }
                }
                Some(Err(_)) => {
                    return Err(ConnectError::fatal(format!(
                        "task {}: producer closed before acknowledging",
                        self.s.id
                    )))
                }
            };
            self.task.commit_record(record, metadata.as_ref());
            // Only the newest offset of a partition is stored: skip a record whose successor in
            // the batch has the same partition.
            let superseded = records.get(i + 1).is_some_and(|next| next.source_partition == record.source_partition);
            if self.txn.is_none() && !record.source_partition.is_empty() && !superseded {
                self.committable.insert(
                    offset_key(&self.s.id.connector, &record.source_partition),
                    (record.source_partition.clone(), record.source_offset.clone()),
                );
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Waits for every in-flight record's acknowledgement, up to `timeout`.
    async fn drain(&mut self, timeout: Duration) -> Result<(), ConnectError> {
        let deadline = Instant::now() + timeout;
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, self.acks.next()).await {
                Ok(Some(acks)) => self.on_acked(acks).await?,
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(task = %self.s.id, batches = self.in_flight.len(), "records still unacknowledged at shutdown; their offsets are not committed");
                    break;
                }
            }
        }
        Ok(())
    }

    async fn flush_offsets(&mut self) -> Result<(), ConnectError> {
        if !self.dirty {
            return Ok(());
        }
        let started = Instant::now();
        let entries: Vec<(JsonMap, Option<JsonMap>)> =
            self.committable.values().map(|(p, o)| (p.clone(), Some(o.clone()))).collect();
        self.offsets.set(&self.s.id.connector, entries).await.map_err(|e| {
            TaskMetrics::add(&self.s.metrics.offset_commit_failure_total, 1);
            ConnectError::retriable_from(format!("task {} could not write source offsets", self.s.id), e)
        })?;
        TaskMetrics::add(&self.s.metrics.offset_commit_success_total, 1);
        self.dirty = false;
        tracing::debug!(task = %self.s.id, partitions = self.committable.len(), elapsed_ms = started.elapsed().as_millis() as u64, "source offsets committed");
        self.task.commit().await
    }
}

impl Drop for SourceRunner {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        for (input, expected) in [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            ("abc", 479470107),
        ] {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
        assert!((0..25).contains(&key_partition(br#"["c",{"id":1}]"#, 25)));
    }
}
