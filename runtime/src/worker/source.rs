//! The source task loop: poll → convert → produce → (after the broker's acks) offsets.
//!
//! Delivery (at-least-once): records are sent in poll order through an idempotent `acks=all`
//! producer; batches are acknowledged in order, and a source offset enters the committable set only
//! when its record and every record before it were acknowledged. Committable offsets are written to
//! the offset store every `offset.flush.interval.ms` and on shutdown. After a crash the task resumes
//! at the last written offset, so records after it may be sent again, never skipped.
//! Memory: at most `task.buffer.max.bytes` of records are in flight; past that the loop stops
//! polling until acknowledgements come back.

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
    ConfigMap, ConnectError, ErrorKind, JsonMap, RecordMetadata, SourceRecord, SourceTask, SourceTaskContext, Value,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{StatusReporter, TaskSettings};
use crate::config::ErrorTolerance;
use crate::metrics::TaskMetrics;
use crate::storage::{offset_key, ConnectorOffsetReader, ConnectorState, OffsetStore};
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
}

impl SourceRunner {
    pub(crate) fn new(
        s: TaskSettings,
        task: Box<dyn SourceTask>,
        producer: FutureProducer,
        admin: Arc<AdminClient<DefaultClientContext>>,
        topic_creation: TopicCreation,
        offsets: Arc<dyn OffsetStore>,
    ) -> SourceRunner {
        SourceRunner {
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
        }
    }

    pub(crate) async fn run(
        mut self,
        cancel: CancellationToken,
        report: StatusReporter,
        mut paused: watch::Receiver<bool>,
    ) -> Result<(), ConnectError> {
        let id = self.s.id.clone();
        let context = SourceTaskContext {
            connector: id.connector.clone(),
            task: id.task,
            offsets: Arc::new(ConnectorOffsetReader { connector: id.connector.clone(), store: self.offsets.clone() }),
        };
        let config = self.s.task_config.clone();
        self.task.start(&config, context).await?;
        tracing::info!(task = %id, "source task started");
        let result = self.main_loop(&cancel, &report, &mut paused).await;
        // Whatever happened, commit what the broker acknowledged.
        let drained = self.drain(self.s.shutdown_timeout).await;
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
            while let Some(Some(acks)) = self.acks.next().now_or_never() {
                self.on_acked(acks).await?;
            }
            while self.in_flight_bytes >= self.s.buffer_max_bytes {
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
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = paused.changed() => {}
                    Some(acks) = self.acks.next() => self.on_acked(acks).await?,
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
                        match self.acks.next().now_or_never() {
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
            if !record.source_partition.is_empty() && !superseded {
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
