//! The sink task loop: consume → convert → `put` → (every `offset.flush.interval.ms`) `pre_commit`
//! → commit exactly the offsets the sink reported durable.
//!
//! Delivery (at-least-once, or exactly-once for sinks that keep offsets with their data): a Kafka
//! offset is committed only after the sink said the data before it is durable. On revocation, the
//! consumer context commits the durable offsets of the revoked partitions before they move.
//! Pipelining: a round fetches a batch, then puts the batch converted in the last round while
//! converting this one on other threads (decoding overlaps the sink's encoding and I/O). Rebalance
//! events are handled before each `put`, and records of partitions revoked or sought back in
//! between are dropped from the converted batch, so the sink sees exactly what the loop without
//! pipelining would give it.
//!
//! Memory: librdkafka's prefetch queue is capped (`queued.max.messages.kbytes`) and a batch holds at
//! most `task.buffer.max.bytes`, two batches at a time (one being put, one being converted); a slow
//! `put` stops consumption, it never grows a buffer.

use std::collections::HashSet;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_api::{
    ConfigErrors, ConnectError, ErrantRecordReporter, ErrorKind, Header, Offsets, ParsedConfig, SinkRecord, SinkTask,
    SinkTaskContext, TimestampType, TopicPartition, Value,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dlq::{DeadLetterQueue, Failure, Original};
use super::kafka::{RebalanceEvent, SinkConsumerContext, SinkEvents};
use super::{StatusReporter, TaskSettings};
use crate::config::ErrorTolerance;
use crate::metrics::TaskMetrics;
use crate::storage::ConnectorState;
use crate::transforms::Parts;

/// Most records in one `put`.
const MAX_BATCH_RECORDS: usize = 10_000;
/// How long to wait for more records to fill a batch.
const FILL_WAIT: Duration = Duration::from_millis(50);
/// With nothing to write (no records, all skipped, or the task paused), the task's `put` is called
/// with an empty batch this often (as Kafka Connect calls it after a poll that returned nothing),
/// so that time-based flushes (`allowed.latency.ms`,
/// `rotate.schedule.interval.ms`) happen on time when a topic goes quiet, not at the next record
/// or offset commit.
const IDLE_PUT: Duration = Duration::from_millis(100);

/// What a sink consumes: `topics` or `topics.regex`.
pub(crate) enum Subscription {
    Topics(Vec<String>),
    Regex(String),
}

impl Subscription {
    /// Whether a topic is part of this subscription (the regex must match the whole name).
    pub(crate) fn matcher(&self) -> impl Fn(&str) -> bool + '_ {
        let regex = match self {
            Subscription::Regex(r) => {
                regex::Regex::new(&format!("^(?:{})$", r.trim_start_matches('^').trim_end_matches('$'))).ok()
            }
            Subscription::Topics(_) => None,
        };
        move |topic: &str| match self {
            Subscription::Topics(t) => t.iter().any(|x| x == topic),
            Subscription::Regex(_) => regex.as_ref().is_some_and(|r| r.is_match(topic)),
        }
    }

    pub(crate) fn from_config(parsed: &ParsedConfig) -> Result<Subscription, ConfigErrors> {
        let topics = parsed.list("topics");
        let regex = parsed.string("topics.regex");
        match (topics.is_empty(), regex.is_empty()) {
            (false, true) => Ok(Subscription::Topics(topics)),
            (true, false) => Ok(Subscription::Regex(if regex.starts_with('^') { regex } else { format!("^{regex}") })),
            (true, true) => Err(ConfigErrors::one("topics", "Must configure one of topics or topics.regex")),
            (false, false) => Err(ConfigErrors::one(
                "topics",
                "topics and topics.regex are mutually exclusive options, but both are set.",
            )),
        }
    }
}

/// Records converted in one round and put in the next (see `main_loop`), with the offsets of
/// records skipped among them (DLQ'd or dropped by a transform), which count as consumed only
/// once the batch is put.
#[derive(Default)]
struct Pending {
    batch: Vec<SinkRecord>,
    skipped: Vec<(TopicPartition, i64)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.skipped.is_empty()
    }
}

pub(crate) struct SinkRunner {
    s: TaskSettings,
    task: Box<dyn SinkTask>,
    consumer: std::sync::Arc<StreamConsumer<SinkConsumerContext>>,
    events: SinkEvents,
    subscription: Subscription,
    assigned: HashSet<TopicPartition>,
    consumed: Offsets,
    committed: Offsets,
    /// Where a sink that keeps its own offsets said to resume: records below are already durable
    /// in the sink (they may have been fetched before the seek took effect) and are not put again.
    floor: Offsets,
    dlq: Option<DeadLetterQueue>,
    /// Records the sink reported as unwritable (`errors.tolerance=all` only).
    errant: Option<ErrantRecordReporter>,
    admin: std::sync::Arc<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>,
    /// After a retriable failure of an empty `put`: no other before this, and the next back-off.
    idle_backoff: Option<(Instant, Duration)>,
    /// Converted in the last round, put in the next.
    pending: Pending,
}

impl SinkRunner {
    pub(crate) fn new(
        s: TaskSettings,
        task: Box<dyn SinkTask>,
        consumer: StreamConsumer<SinkConsumerContext>,
        events: SinkEvents,
        subscription: Subscription,
        dlq: Option<DeadLetterQueue>,
        admin: std::sync::Arc<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>,
    ) -> SinkRunner {
        SinkRunner {
            task,
            consumer: std::sync::Arc::new(consumer),
            events,
            subscription,
            assigned: HashSet::new(),
            consumed: Offsets::new(),
            committed: Offsets::new(),
            floor: Offsets::new(),
            errant: (s.tolerance == ErrorTolerance::All).then(ErrantRecordReporter::default),
            s,
            dlq,
            admin,
            idle_backoff: None,
            pending: Pending::default(),
        }
    }

    pub(crate) async fn run(
        mut self,
        cancel: CancellationToken,
        report: StatusReporter,
        mut paused: watch::Receiver<bool>,
    ) -> Result<(), ConnectError> {
        let id = self.s.id.clone();
        let config = self.s.task_config.clone();
        let context = SinkTaskContext { connector: id.connector.clone(), task: id.task, errant: self.errant.clone() };
        self.task.start(&config, context).await?;
        if let Some(dlq) = &self.dlq {
            dlq.ensure_topic(&self.admin).await;
        }
        let topics: Vec<&str> = match &self.subscription {
            Subscription::Topics(t) => t.iter().map(String::as_str).collect(),
            Subscription::Regex(r) => vec![r.as_str()],
        };
        self.consumer
            .subscribe(&topics)
            .map_err(|e| ConnectError::fatal_from(format!("task {id} could not subscribe to {topics:?}"), e))?;
        tracing::info!(task = %id, ?topics, "sink task subscribed");
        let result = self.main_loop(&cancel, &report, &mut paused).await;
        let committed = if result.is_ok() { self.commit().await } else { Ok(()) };
        let assigned: Vec<TopicPartition> = self.assigned.drain().collect();
        let closed = self.task.close(&assigned).await;
        let stopped = self.task.stop().await;
        self.consumer.unsubscribe();
        report.report(ConnectorState::Unassigned, None);
        result.and(committed).and(closed).and(stopped)
    }

    async fn main_loop(
        &mut self,
        cancel: &CancellationToken,
        report: &StatusReporter,
        paused: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectError> {
        let mut last_commit = Instant::now();
        let mut reported: Option<bool> = None;
        loop {
            let is_paused = *paused.borrow_and_update();
            if report.report_pause_state(&mut reported, is_paused) {
                self.set_consumer_paused(is_paused);
            }
            if is_paused {
                // What was fetched before the pause is put first: a paused task gets no records.
                if !self.pending.is_empty() {
                    self.handle_rebalances().await?;
                    let pending = self.admit_pending();
                    self.put_or_idle(&pending, cancel).await?;
                    self.after_put(&pending).await?;
                }
                self.paused_round(cancel, paused, &mut last_commit).await?;
                // Stopping a paused task: it returns here, not in the round (which would spin on
                // the cancelled token until the shutdown timeout aborted the task uncommitted).
                if cancel.is_cancelled() {
                    return Ok(());
                }
                continue;
            }
            let consumer = std::sync::Arc::clone(&self.consumer);
            let until_commit = self.s.flush_interval.saturating_sub(last_commit.elapsed());
            let wait = self.pending.is_empty();
            let fetched = fetch(&self.s, &consumer, &self.events.events, cancel, wait, until_commit).await;
            let Some(Fetched { messages, before_events, .. }) = fetched else { return Ok(()) };
            // Rebalance events from this fetch are handled before anything more is put.
            let revoked = self.handle_rebalances().await?;
            let had_pending = !self.pending.is_empty();
            let pending = self.admit_pending();
            // The batch fetched in the last round is put while this round's is converted (on
            // other threads): the sink's encoding and I/O overlap the decoding of the next batch.
            let overlap = !pending.batch.is_empty() && messages.len() >= PARALLEL_CONVERT_MIN && !cancel.is_cancelled();
            let converted = if overlap {
                let (task, s) = (&mut self.task, &self.s);
                let (converted, put) = tokio::task::block_in_place(|| {
                    std::thread::scope(|scope| {
                        // One converting thread next to the putting one: two busy threads for
                        // two cores measured faster than splitting the conversion again.
                        let other = scope.spawn(|| messages.iter().map(|m| convert(s, m)).collect::<Vec<_>>());
                        // A task abort cannot stop a blocked thread: when the worker would abort
                        // the task (the shutdown timeout after the stop), the put is dropped here.
                        let stopped = async {
                            cancel.cancelled().await;
                            tokio::time::sleep(s.shutdown_timeout).await;
                        };
                        let put = tokio::runtime::Handle::current().block_on(async {
                            tokio::select! {
                                r = put_batch(task.as_mut(), s, &pending.batch, cancel) => r,
                                _ = stopped => Err(ConnectError::retriable(format!("task {} stopped during put", s.id))),
                            }
                        });
                        (other.join(), put)
                    })
                });
                let converted = converted.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                put?;
                converted
            } else {
                // The empty put is for rounds without records to write, not the first of a burst.
                if !pending.batch.is_empty() || messages.is_empty() || had_pending {
                    self.put_or_idle(&pending, cancel).await?;
                }
                convert_all(&self.s, &messages)
            };
            let rewound = self.after_put(&pending).await?;
            drop(pending);
            let mut next = Pending::default();
            // Whether to keep a partition's messages: assigned now, not sought back by the sink
            // (they come again from where it asked), and, before the events, not revoked (what
            // was fetched before a revocation comes again after a new assignment). Decided once
            // per run of a partition.
            let mut last: Option<(&str, i32, bool, bool)> = None;
            for (i, (m, record)) in messages.iter().zip(converted).enumerate() {
                let (keep, was_revoked) = match last {
                    Some((t, p, keep, was_revoked)) if p == m.partition() && t == m.topic() => (keep, was_revoked),
                    _ => {
                        let tp = TopicPartition::new(m.topic(), m.partition());
                        let keep = self.assigned.contains(&tp) && !rewound.contains(&tp);
                        let was_revoked = revoked.contains(&tp);
                        last = Some((m.topic(), m.partition(), keep, was_revoked));
                        (keep, was_revoked)
                    }
                };
                if keep && !(was_revoked && i < before_events) {
                    collect(&self.s, &mut self.dlq, m, record, &mut next.batch, &mut next.skipped)?;
                }
            }
            drop(messages);
            if let Some(dlq) = self.dlq.as_mut() {
                dlq.flush().await?;
            }
            self.pending = next;
            self.commit_if_due(&mut last_commit).await?;
        }
    }

    /// Takes the pending batch, without the records of partitions no longer assigned and those
    /// below a partition's floor (already durable in a sink that keeps its own offsets).
    fn admit_pending(&mut self) -> Pending {
        let mut pending = std::mem::take(&mut self.pending);
        let below_floor =
            |floor: &Offsets, tp: &TopicPartition, offset: i64| floor.get(tp).is_some_and(|f| offset < *f);
        // Per-partition bookkeeping happens once per run of a partition, not once per record.
        let mut keep = Vec::with_capacity(pending.batch.len());
        for (tp, run) in partition_runs(&pending.batch) {
            let assigned = self.assigned.contains(&tp);
            keep.extend(pending.batch[run].iter().map(|r| assigned && !below_floor(&self.floor, &tp, r.kafka_offset)));
        }
        let mut keep = keep.into_iter();
        pending.batch.retain(|_| keep.next().unwrap_or(false));
        pending.skipped.retain(|(tp, offset)| !below_floor(&self.floor, tp, *offset));
        pending
    }

    /// Puts the batch, or with no records calls the empty `put` (see IDLE_PUT).
    async fn put_or_idle(&mut self, pending: &Pending, cancel: &CancellationToken) -> Result<(), ConnectError> {
        if pending.batch.is_empty() {
            self.idle_put().await
        } else {
            put_batch(self.task.as_mut(), &self.s, &pending.batch, cancel).await
        }
    }

    /// After a `put` (or the empty one): what the sink reported unwritable goes to the DLQ, the put
    /// and skipped records count as consumed, and partitions the sink asked to read again are
    /// sought back. Returns those partitions.
    async fn after_put(&mut self, pending: &Pending) -> Result<HashSet<TopicPartition>, ConnectError> {
        let runs = partition_runs(&pending.batch);
        if !pending.batch.is_empty() {
            self.dead_letter_errant().await?;
            // Where the sink holds its own offsets, records fetched before the seek to them
            // come again after it: what was put is never put again.
            for (tp, run) in &runs {
                if let (Some(f), Some(last)) =
                    (self.floor.get_mut(tp), pending.batch[run.clone()].iter().map(|r| r.kafka_offset).max())
                {
                    *f = (*f).max(last + 1);
                }
            }
        }
        // Skipped records count as consumed once they are in the DLQ (or logged, without one).
        let done = runs
            .into_iter()
            .filter_map(|(tp, run)| pending.batch[run].iter().map(|r| r.kafka_offset).max().map(|last| (tp, last)))
            .chain(pending.skipped.iter().cloned());
        for (tp, offset) in done {
            if self.assigned.contains(&tp) {
                let next = self.consumed.entry(tp).or_insert(0);
                *next = (*next).max(offset + 1);
            }
        }
        // The sink asked to read some partitions again (a file it could not complete).
        let mut rewound = HashSet::new();
        for (tp, offset) in self.task.rewind() {
            if !self.assigned.contains(&tp) {
                continue;
            }
            seek_retrying(&self.consumer, &tp, offset).await.map_err(|e| {
                ConnectError::retriable_from(
                    format!("task {} could not seek {tp} back to {offset} as the sink asked", self.s.id),
                    e,
                )
            })?;
            tracing::info!(task = %self.s.id, partition = %tp, offset, "reading again from the offset the sink asked for");
            self.consumed.insert(tp.clone(), offset);
            self.floor.insert(tp.clone(), offset);
            rewound.insert(tp);
        }
        Ok(rewound)
    }

    /// Pauses or resumes fetching on the whole assignment.
    fn set_consumer_paused(&self, paused: bool) {
        let Ok(assignment) = self.consumer.assignment() else { return };
        let result = if paused { self.consumer.pause(&assignment) } else { self.consumer.resume(&assignment) };
        if let Err(e) = result {
            tracing::warn!(task = %self.s.id, error = %e, paused, "could not change the consumer's pause state");
        }
    }

    /// One round while paused: keep the consumer polled (rebalances, liveness), fetch nothing, commit
    /// what is durable. A record that was already fetched is sought back, not processed.
    async fn paused_round(
        &mut self,
        cancel: &CancellationToken,
        paused: &mut watch::Receiver<bool>,
        last_commit: &mut Instant,
    ) -> Result<(), ConnectError> {
        let until_commit = self.s.flush_interval.saturating_sub(last_commit.elapsed());
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = paused.changed() => {}
            m = self.consumer.recv() => {
                if let Ok(m) = m {
                    let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
                    drop(m);
                    if let Err(e) = self.consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(10)) {
                        return Err(ConnectError::retriable_from(format!("task {} could not seek back while paused", self.s.id), e));
                    }
                }
            }
            _ = tokio::time::sleep(until_commit.min(IDLE_PUT)) => {}
        }
        self.handle_rebalances().await?;
        self.set_consumer_paused(true);
        // A paused task still gets its empty batches (Kafka Connect's do too): time-based
        // flushes of what it holds happen while it is paused.
        if !cancel.is_cancelled() && *paused.borrow() {
            self.idle_put().await?;
        }
        self.commit_if_due(last_commit).await
    }

    /// The empty `put` of a round without records (see IDLE_PUT). Not retried in place: a
    /// retriable failure (the store briefly unreachable) is logged and tried again after a
    /// back-off, while the loop goes on polling, committing and handling pauses and rebalances.
    async fn idle_put(&mut self) -> Result<(), ConnectError> {
        if self.idle_backoff.is_some_and(|(until, _)| Instant::now() < until) {
            return Ok(());
        }
        match self.task.put(&[]).await {
            Ok(()) => {
                self.idle_backoff = None;
                self.dead_letter_errant().await
            }
            Err(e) if e.kind() == ErrorKind::Retriable => {
                let backoff = self.idle_backoff.map_or(Duration::from_millis(100), |(_, b)| b * 2);
                let backoff = backoff.min(self.s.retry_delay_max);
                tracing::warn!(task = %self.s.id, error = %e, backoff_ms = backoff.as_millis() as u64, "empty put failed, trying again later");
                self.idle_backoff = Some((Instant::now() + backoff, backoff));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Commits once `offset.flush.interval.ms` has passed; a retriable failure is retried next interval.
    async fn commit_if_due(&mut self, last_commit: &mut Instant) -> Result<(), ConnectError> {
        if last_commit.elapsed() < self.s.flush_interval {
            return Ok(());
        }
        match self.commit().await {
            Err(e) if e.kind() == ErrorKind::Retriable => {
                tracing::warn!(task = %self.s.id, error = %e, "offset commit failed; will retry")
            }
            other => other?,
        }
        *last_commit = Instant::now();
        Ok(())
    }

    /// Closes revoked partitions and opens assigned ones (seeking to where the sink resumes);
    /// returns the partitions revoked.
    async fn handle_rebalances(&mut self) -> Result<HashSet<TopicPartition>, ConnectError> {
        let mut revoked = HashSet::new();
        while let Ok(event) = self.events.events.try_recv() {
            match event {
                RebalanceEvent::Revoked(parts) => {
                    revoked.extend(parts.iter().cloned());
                    tracing::info!(task = %self.s.id, ?parts, "partitions revoked");
                    // Records fetched before the revocation are not put (nor counted) after it.
                    let gone: HashSet<&TopicPartition> = parts.iter().collect();
                    self.pending.batch.retain(|r| !gone.contains(&r.topic_partition()));
                    self.pending.skipped.retain(|(tp, _)| !gone.contains(tp));
                    for tp in &parts {
                        self.assigned.remove(tp);
                        self.consumed.remove(tp);
                        self.committed.remove(tp);
                        self.floor.remove(tp);
                    }
                    let mut retry = RebalanceRetry::new();
                    while let Err(e) = self.task.close(&parts).await {
                        retry.wait_or_give_up(e, &self.s.id.to_string(), "close").await?;
                    }
                }
                RebalanceEvent::Assigned(parts) => {
                    tracing::info!(task = %self.s.id, ?parts, "partitions assigned");
                    self.assigned.extend(parts.iter().cloned());
                    let mut retry = RebalanceRetry::new();
                    let resume = loop {
                        match self.task.open(&parts).await {
                            Ok(resume) => break resume,
                            Err(e) => retry.wait_or_give_up(e, &self.s.id.to_string(), "open").await?,
                        }
                    };
                    for (tp, offset) in resume {
                        // Right after an assignment librdkafka may refuse a seek ("Erroneous
                        // state") until the partition's fetcher has started: try a few times. If
                        // it still refuses and the consumer reads from at or before the sink's
                        // offset, the floor below skips what the sink holds; reading from after
                        // it would skip records the sink never got, so that fails.
                        if let Err(e) = seek_retrying(&self.consumer, &tp, offset).await {
                            let at =
                                |tpl: TopicPartitionList| match tpl.find_partition(&tp.topic, tp.partition)?.offset() {
                                    Offset::Offset(p) => Some(p),
                                    _ => None,
                                };
                            // Where reading will start: the position, or before any fetch the
                            // committed offset (none committed: the earliest, never past it).
                            let consumer = &self.consumer;
                            let start = consumer.position().ok().and_then(at).or_else(|| {
                                tokio::task::block_in_place(|| consumer.committed(Duration::from_secs(5)))
                                    .ok()
                                    .and_then(at)
                            });
                            if start.is_some_and(|p| p > offset) {
                                return Err(ConnectError::retriable_from(
                                    format!(
                                        "task {} could not seek {tp} back to the sink's offset {offset}",
                                        self.s.id
                                    ),
                                    e,
                                ));
                            }
                            tracing::warn!(task = %self.s.id, partition = %tp, offset, error = %e, "could not seek to the sink's own offset; the records before it are skipped instead");
                        }
                        // What the sink holds counts as consumed, so Kafka's commit catches up too.
                        self.consumed.insert(tp.clone(), offset);
                        self.floor.insert(tp, offset);
                    }
                }
            }
        }
        Ok(revoked)
    }

    /// Sends what the sink reported as unwritable during `put` to the DLQ (or logs it, without
    /// one), and waits for the DLQ's acknowledgement before any commit can cover those offsets.
    /// The DLQ gets the record as the sink saw it, serialized again with the task's converters
    /// (Kafka Connect does the same when it no longer holds the original bytes).
    async fn dead_letter_errant(&mut self) -> Result<(), ConnectError> {
        let Some(reported) = self.errant.as_ref().map(ErrantRecordReporter::take) else { return Ok(()) };
        if reported.is_empty() {
            return Ok(());
        }
        let class = self.s.task_config.get("connector.class").cloned().unwrap_or_default();
        for (r, error) in &reported {
            let topic = r.original_topic.as_deref().unwrap_or(&r.topic);
            TaskMetrics::add(&self.s.metrics.total_record_errors, 1);
            TaskMetrics::add(&self.s.metrics.total_records_skipped, 1);
            let msg = format!(
                "task {} could not write the record at {topic}-{} offset {}: {error}",
                self.s.id, r.kafka_partition, r.kafka_offset
            );
            let Some(dlq) = self.dlq.as_mut() else {
                tracing::warn!(task = %self.s.id, error = %msg, "record skipped (errors.tolerance=all, no dead-letter topic)");
                continue;
            };
            tracing::warn!(task = %self.s.id, error = %msg, "record sent to the dead-letter topic (errors.tolerance=all)");
            let key = self.s.key_converter.to_bytes(topic, r.key_schema.as_ref(), &r.key);
            let value = self.s.value_converter.to_bytes(topic, r.value_schema.as_ref(), &r.value);
            let (key, value) = match (key, value) {
                (Ok(k), Ok(v)) => (k, v),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(ConnectError::fatal(format!(
                        "{msg}; and it cannot be serialized for the dead-letter topic: {e}"
                    )))
                }
            };
            let header_bytes: Vec<(&str, Option<Vec<u8>>)> =
                r.headers.iter().map(|h| (h.key.as_str(), header_bytes(&h.value))).collect();
            let original = Original {
                topic,
                partition: r.kafka_partition,
                offset: r.kafka_offset,
                key: key.as_deref(),
                value: value.as_deref(),
                headers: header_bytes.iter().map(|(k, v)| (*k, v.as_deref())).collect(),
            };
            dlq.send_original(&original, &Failure { stage: "TASK_PUT", class: &class, message: error })?;
            TaskMetrics::add(&self.s.metrics.deadletterqueue_produce_requests, 1);
        }
        if let Some(dlq) = self.dlq.as_mut() {
            dlq.flush().await?;
        }
        Ok(())
    }

    /// Asks the sink what is durable and commits exactly that.
    async fn commit(&mut self) -> Result<(), ConnectError> {
        if self.consumed.is_empty() {
            return Ok(());
        }
        let safe = self.task.pre_commit(&self.consumed).await?;
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in &safe {
            if self.assigned.contains(tp) && self.committed.get(tp) != Some(offset) {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                    .map_err(|e| ConnectError::fatal_from("bad offset", e))?;
            }
        }
        if let Ok(mut durable) = self.events.durable.lock() {
            durable.extend(safe.iter().filter(|(tp, _)| self.assigned.contains(tp)).map(|(tp, o)| (tp.clone(), *o)));
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let consumer = &self.consumer;
        tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync)).map_err(|e| {
            TaskMetrics::add(&self.s.metrics.offset_commit_failure_total, 1);
            ConnectError::retriable_from(format!("task {} could not commit offsets", self.s.id), e)
        })?;
        TaskMetrics::add(&self.s.metrics.offset_commit_success_total, 1);
        for (tp, offset) in safe {
            if self.assigned.contains(&tp) {
                self.committed.insert(tp, offset);
            }
        }
        tracing::debug!(task = %self.s.id, partitions = tpl.count(), "consumer offsets committed");
        Ok(())
    }
}

/// The next batch of messages: with nothing pending, waits for the first (up to the next idle
/// `put` or commit) and then briefly for more; with a batch pending, takes only what is already
/// fetched, so the pending batch is not held back. `None` when the task is stopping.
///
/// A fetch ends at the first rebalance event (they are served inside the consumer's poll): the
/// messages before `Fetched::before_events` were fetched before it, possibly for partitions it
/// revoked.
async fn fetch<'c>(
    s: &TaskSettings,
    consumer: &'c StreamConsumer<SinkConsumerContext>,
    events: &tokio::sync::mpsc::UnboundedReceiver<RebalanceEvent>,
    cancel: &CancellationToken,
    wait: bool,
    until_commit: Duration,
) -> Option<Fetched<'c>> {
    let mut f = Fetched { messages: Vec::new(), before_events: usize::MAX, bytes: 0 };
    // One stream for the whole fetch: each `recv` would make one, taking and releasing the
    // consumer's waker lock twice per message (a few per cent of a sink's CPU).
    let mut stream = consumer.stream();
    let first = if wait {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            m = stream.next() => m,
            _ = tokio::time::sleep(until_commit.min(IDLE_PUT)) => None,
        }
    } else if cancel.is_cancelled() {
        return None;
    } else {
        stream.next().now_or_never().flatten()
    };
    let Some(first) = first else {
        f.event_seen(events);
        return Some(f);
    };
    if f.take(s, first, events) {
        return Some(f);
    }
    let fill_deadline = Instant::now() + FILL_WAIT;
    while f.messages.len() < MAX_BATCH_RECORDS && f.bytes < s.buffer_max_bytes {
        let next = match stream.next().now_or_never() {
            Some(Some(m)) => m,
            None if wait && Instant::now() < fill_deadline && f.messages.len() < 64 => {
                match tokio::time::timeout_at(fill_deadline, stream.next()).await {
                    Ok(Some(m)) => m,
                    Ok(None) | Err(_) => break,
                }
            }
            // (`Some(None)`: a consumer's stream never ends.)
            Some(None) | None => break,
        };
        if f.take(s, next, events) {
            break;
        }
    }
    f.event_seen(events);
    Some(f)
}

/// One round's messages (see [`fetch`]).
struct Fetched<'c> {
    messages: Vec<BorrowedMessage<'c>>,
    /// How many of `messages` were fetched before a rebalance event (`usize::MAX`: no event).
    before_events: usize,
    bytes: usize,
}

impl<'c> Fetched<'c> {
    /// Notes where the first rebalance event came; whether there was one.
    fn event_seen(&mut self, events: &tokio::sync::mpsc::UnboundedReceiver<RebalanceEvent>) -> bool {
        if self.before_events == usize::MAX && !events.is_empty() {
            self.before_events = self.messages.len();
        }
        self.before_events != usize::MAX
    }

    /// Adds what the stream returned; whether the fetch ends here (a rebalance event was served in
    /// that poll, before the message it returned, or a consumer error).
    fn take(
        &mut self,
        s: &TaskSettings,
        next: Result<BorrowedMessage<'c>, rdkafka::error::KafkaError>,
        events: &tokio::sync::mpsc::UnboundedReceiver<RebalanceEvent>,
    ) -> bool {
        let event = self.event_seen(events);
        match next {
            Ok(m) => {
                self.bytes += message_bytes(&m);
                self.messages.push(m);
                event
            }
            Err(e) => {
                tracing::warn!(task = %s.id, error = %e, "consumer error");
                true
            }
        }
    }
}

/// Puts a batch, retrying it in place after a retriable failure (with back-off, until stopped).
async fn put_batch(
    task: &mut dyn SinkTask,
    s: &TaskSettings,
    batch: &[SinkRecord],
    cancel: &CancellationToken,
) -> Result<(), ConnectError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match task.put(batch).await {
            Ok(()) => {
                TaskMetrics::add(&s.metrics.sink_record_send_total, batch.len());
                // Active topics (once per batch and topic; the store ignores repeats).
                let mut last: Option<&str> = None;
                for r in batch {
                    if last != Some(r.topic.as_str()) {
                        s.topic_active(&r.topic);
                        last = Some(r.topic.as_str());
                    }
                }
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Retriable => {
                tracing::warn!(task = %s.id, error = %e, backoff_ms = backoff.as_millis() as u64, "put failed, retrying the same batch");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(ConnectError::retriable(format!("task {} stopped while retrying put", s.id))),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(s.retry_delay_max);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Seeks a partition. Right after an assignment librdkafka may refuse ("Erroneous state")
/// until the partition's fetcher has started, so a refusal is tried again, ten times in all.
async fn seek_retrying(
    consumer: &StreamConsumer<SinkConsumerContext>,
    tp: &TopicPartition,
    offset: i64,
) -> Result<(), rdkafka::error::KafkaError> {
    let mut tries = 0;
    loop {
        match consumer.seek(&tp.topic, tp.partition, Offset::Offset(offset), Duration::from_secs(1)) {
            Ok(()) => return Ok(()),
            Err(e) if tries >= 9 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A sink's `open` or `close` at a rebalance: a retriable error (the external system briefly
/// unreachable) is retried with back-off for up to a minute instead of failing the task.
struct RebalanceRetry {
    deadline: Instant,
    backoff: Duration,
}

impl RebalanceRetry {
    fn new() -> RebalanceRetry {
        RebalanceRetry { deadline: Instant::now() + Duration::from_secs(60), backoff: Duration::from_millis(100) }
    }

    /// Waits before the next try, or returns the error when it is not retriable or time is up.
    async fn wait_or_give_up(&mut self, e: ConnectError, task: &str, what: &str) -> Result<(), ConnectError> {
        if e.kind() != ErrorKind::Retriable || Instant::now() >= self.deadline {
            return Err(e);
        }
        tracing::warn!(task, error = %e, backoff_ms = self.backoff.as_millis() as u64, "sink {what} failed, retrying");
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

/// The batch's runs of one partition, in order, with their index ranges: a batch comes in runs (a
/// fetch returns a partition's records together), so work per partition is done once per run.
fn partition_runs(batch: &[SinkRecord]) -> Vec<(TopicPartition, std::ops::Range<usize>)> {
    let mut runs: Vec<(TopicPartition, std::ops::Range<usize>)> = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let topic = r.original_topic.as_deref().unwrap_or(&r.topic);
        match runs.last_mut() {
            Some((tp, run)) if tp.partition == r.kafka_partition && tp.topic == topic => run.end = i + 1,
            _ => runs.push((r.topic_partition(), i..i + 1)),
        }
    }
    runs
}

/// What a fetched message counts against `task.buffer.max.bytes`.
fn message_bytes(m: &BorrowedMessage<'_>) -> usize {
    m.payload_len() + m.key().map_or(0, <[u8]>::len) + 64
}

/// Batches at least this large are converted on two threads.
const PARALLEL_CONVERT_MIN: usize = 256;

/// Converts a batch of messages with the task's converters. Conversion (JSON or Avro decoding) is
/// most of the runtime's CPU per record, so a large batch is split in two and one half is
/// converted on a second thread while this one converts the other; results keep the batch order.
fn convert_all(s: &TaskSettings, messages: &[BorrowedMessage<'_>]) -> Vec<Result<SinkRecord, ConvertError>> {
    if messages.len() < PARALLEL_CONVERT_MIN {
        return messages.iter().map(|m| convert(s, m)).collect();
    }
    let (head, tail) = messages.split_at(messages.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| tail.iter().map(|m| convert(s, m)).collect::<Vec<_>>());
        let mut out: Vec<_> = head.iter().map(|m| convert(s, m)).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}

/// Puts one converted message (after the transforms, in batch order) into the batch, or (with
/// `errors.tolerance=all`) skips it: logged, and sent to the dead-letter topic when one is
/// configured. Never a silent drop.
fn collect(
    s: &TaskSettings,
    dlq: &mut Option<DeadLetterQueue>,
    m: &BorrowedMessage<'_>,
    converted: Result<SinkRecord, ConvertError>,
    batch: &mut Vec<SinkRecord>,
    skipped: &mut Vec<(TopicPartition, i64)>,
) -> Result<(), ConnectError> {
    TaskMetrics::add(&s.metrics.sink_record_read_total, 1);
    let (stage, error) = match converted.and_then(|r| transform(s, r)) {
        Ok(Some(r)) => {
            batch.push(r);
            return Ok(());
        }
        Ok(None) => {
            // Dropped by a transform: handled, so its offset may be committed.
            skipped.push((TopicPartition::new(m.topic(), m.partition()), m.offset()));
            return Ok(());
        }
        Err(e) => e,
    };
    let class = stage_class(s, stage);
    let msg = format!(
        "task {} could not convert the record at {}-{} offset {} ({stage}): {error}",
        s.id,
        m.topic(),
        m.partition(),
        m.offset()
    );
    TaskMetrics::add(&s.metrics.total_record_errors, 1);
    if s.tolerance != ErrorTolerance::All {
        return Err(ConnectError::fatal(msg));
    }
    TaskMetrics::add(&s.metrics.total_records_skipped, 1);
    match dlq.as_mut() {
        Some(dlq) => {
            tracing::warn!(task = %s.id, error = %msg, "record sent to the dead-letter topic (errors.tolerance=all)");
            dlq.send(m, &Failure { stage, class, message: &error })?;
            TaskMetrics::add(&s.metrics.deadletterqueue_produce_requests, 1);
        }
        None => {
            tracing::warn!(task = %s.id, error = %msg, "record skipped (errors.tolerance=all, no dead-letter topic)")
        }
    }
    if s.log_errors && s.log_include_messages {
        tracing::warn!(task = %s.id, key = ?m.key().map(String::from_utf8_lossy), value = ?m.payload().map(String::from_utf8_lossy), "skipped record");
    }
    skipped.push((TopicPartition::new(m.topic(), m.partition()), m.offset()));
    Ok(())
}

/// A header value as bytes: strings as UTF-8, bytes as they are, anything else as JSON text.
fn header_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.clone()),
        other => Some(other.to_json().to_string().into_bytes()),
    }
}

/// Why a record could not be converted: the stage (`KEY_CONVERTER`, `VALUE_CONVERTER`,
/// `TRANSFORMATION`) and the message.
type ConvertError = (&'static str, String);

/// The class reported for a failure at `stage`.
fn stage_class<'a>(s: &'a TaskSettings, stage: &str) -> &'a str {
    match stage {
        "KEY_CONVERTER" => &s.key_converter_class,
        "VALUE_CONVERTER" => &s.value_converter_class,
        _ => "transforms",
    }
}

/// The connector's transforms; `None` when one dropped the record.
fn transform(s: &TaskSettings, r: SinkRecord) -> Result<Option<SinkRecord>, ConvertError> {
    if s.transforms.is_empty() {
        return Ok(Some(r));
    }
    let (parts, original) = Parts::of_sink(r);
    match s.transforms.apply(parts) {
        Ok(Some(p)) => Ok(Some(p.into_sink(original))),
        Ok(None) => Ok(None),
        Err(e) => Err(("TRANSFORMATION", e)),
    }
}

fn convert(s: &TaskSettings, m: &BorrowedMessage<'_>) -> Result<SinkRecord, ConvertError> {
    let topic = m.topic();
    let (key_schema, key) = s.key_converter.to_connect(topic, m.key()).map_err(|e| ("KEY_CONVERTER", e.to_string()))?;
    let (value_schema, value) =
        s.value_converter.to_connect(topic, m.payload()).map_err(|e| ("VALUE_CONVERTER", e.to_string()))?;
    let (timestamp, timestamp_type) = match m.timestamp() {
        rdkafka::Timestamp::NotAvailable => (None, TimestampType::NoTimestampType),
        rdkafka::Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
        rdkafka::Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
    };
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    key: h.key.to_string(),
                    schema: None,
                    value: match h.value {
                        None => Value::Null,
                        Some(b) => match std::str::from_utf8(b) {
                            Ok(s) => Value::String(s.to_string()),
                            Err(_) => Value::Bytes(b.to_vec()),
                        },
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(SinkRecord {
        topic: topic.to_string(),
        original_topic: None,
        kafka_partition: m.partition(),
        kafka_offset: m.offset(),
        timestamp,
        timestamp_type,
        key_schema,
        key,
        value_schema,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, original: Option<&str>, partition: i32, offset: i64) -> SinkRecord {
        SinkRecord {
            topic: topic.into(),
            original_topic: original.map(Into::into),
            kafka_partition: partition,
            kafka_offset: offset,
            timestamp: None,
            timestamp_type: TimestampType::NoTimestampType,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: Value::Null,
            headers: Vec::new(),
        }
    }

    #[test]
    fn runs_follow_the_partition_the_offsets_belong_to() {
        let batch = [
            record("a", None, 0, 1),
            record("a", None, 0, 2),
            record("a", None, 1, 7),
            record("a", None, 0, 3),
            // Routed by a transform: still a's partition 0 for offsets.
            record("b", Some("a"), 0, 4),
            record("b", None, 0, 9),
        ];
        let runs: Vec<(String, i32, std::ops::Range<usize>)> =
            partition_runs(&batch).into_iter().map(|(tp, r)| (tp.topic, tp.partition, r)).collect();
        assert_eq!(
            runs,
            vec![("a".into(), 0, 0..2), ("a".into(), 1, 2..3), ("a".into(), 0, 3..5), ("b".into(), 0, 5..6)]
        );
        assert!(partition_runs(&[]).is_empty());
    }
}
