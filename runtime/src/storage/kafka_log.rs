//! A compacted Kafka topic read from the beginning into memory and written through an idempotent
//! producer: the base of the Kafka-backed config, offset and status stores (Kafka Connect's
//! `KafkaBasedLog`).
//!
//! "Read to the end" is established without trusting ListOffsets (tansu under-reports it): at start
//! by a partition-EOF from the fetch path on every partition, and after a write by waiting until the
//! consumer has passed the offset the broker acknowledged for it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::StoreError;

/// One record of the topic: partition, offset, key, value (`None`: a tombstone).
pub struct LogRecord<'a> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes (empty when the record has none).
    pub key: &'a [u8],
    /// Value bytes, `None` for a tombstone.
    pub value: Option<&'a [u8]>,
}

/// Receives every record of the topic, in order per partition.
pub type Apply = Box<dyn Fn(LogRecord<'_>) + Send + Sync>;

/// How to create the topic when it is missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor (-1: the broker's default).
    pub replication: i32,
}

#[derive(Default)]
struct Progress {
    /// Next offset to read, per partition.
    positions: HashMap<i32, i64>,
    /// Partitions that reached their end at least once.
    eof: HashSet<i32>,
    partitions: usize,
    failed: Option<String>,
}

/// A compacted topic mirrored in memory.
pub struct KafkaLog {
    topic: String,
    producer: FutureProducer,
    progress: Arc<Mutex<Progress>>,
    notify: Arc<Notify>,
    stop: CancellationToken,
}

fn err(topic: &str, message: impl Into<String>) -> StoreError {
    StoreError::Kafka { topic: topic.to_string(), message: message.into() }
}

impl KafkaLog {
    /// Creates the topic if needed (compacted; an existing topic that is not compacted is an error),
    /// starts reading it from the beginning and returns once every partition was read to its end.
    pub async fn start(
        bootstrap: &str,
        client_overrides: &HashMap<String, String>,
        spec: TopicSpec,
        apply: Apply,
        timeout: Duration,
    ) -> Result<KafkaLog, StoreError> {
        let topic = spec.name.clone();
        let config = |extra: &[(&str, &str)]| {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", bootstrap);
            for (k, v) in client_overrides {
                c.set(k, v);
            }
            for (k, v) in extra {
                c.set(*k, *v);
            }
            c
        };
        let admin: AdminClient<DefaultClientContext> =
            config(&[]).create().map_err(|e| err(&topic, format!("admin client: {e}")))?;
        ensure_compacted_topic(&admin, &spec).await?;

        let producer: FutureProducer = config(&[("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "0")])
            .create()
            .map_err(|e| err(&topic, format!("producer: {e}")))?;
        let consumer: StreamConsumer = config(&[
            ("group.id", "sluice-internal-log"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_committed"),
            ("fetch.wait.max.ms", "50"),
            // Reading a large offsets topic to its end must not pause 1 s whenever the prefetch
            // queue is full (librdkafka's default backoff).
            ("fetch.queue.backoff.ms", "10"),
        ])
        .create()
        .map_err(|e| err(&topic, format!("consumer: {e}")))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| err(&topic, format!("metadata: {e}")))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(err(&topic, "topic has no partitions"));
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&topic, *p, Offset::Beginning).map_err(|e| err(&topic, e.to_string()))?;
        }
        consumer.assign(&tpl).map_err(|e| err(&topic, format!("assign: {e}")))?;

        let progress = Arc::new(Mutex::new(Progress { partitions: partitions.len(), ..Progress::default() }));
        let notify = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        tokio::spawn(read_loop(topic.clone(), consumer, apply, progress.clone(), notify.clone(), stop.clone()));
        let log = KafkaLog { topic, producer, progress, notify, stop };
        log.wait(timeout, |p| p.eof.len() >= p.partitions).await?;
        Ok(log)
    }

    async fn wait(&self, timeout: Duration, done: impl Fn(&Progress) -> bool) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            {
                let p = self.progress.lock().map_err(|_| err(&self.topic, "poisoned"))?;
                if let Some(f) = &p.failed {
                    return Err(err(&self.topic, f.clone()));
                }
                if done(&p) {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(err(&self.topic, format!("not read to the end within {timeout:?}")));
            }
        }
    }

    /// Writes a record, waits for the broker's acknowledgement, then until this log has read it back
    /// (so a following read sees it, as every other worker eventually will).
    pub async fn send(&self, key: &[u8], value: Option<&[u8]>, timeout: Duration) -> Result<(), StoreError> {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        let delivery = self
            .producer
            .send(record, timeout)
            .await
            .map_err(|(e, _)| err(&self.topic, format!("write failed: {e}")))?;
        let (partition, offset) = (delivery.partition, delivery.offset);
        self.wait(timeout, |p| p.positions.get(&partition).is_some_and(|pos| *pos > offset)).await
    }

    /// Writes records in order (one partition keeps their order), waits for every acknowledgement,
    /// then until this log has read them all back.
    pub async fn send_all(&self, records: &[(Vec<u8>, Option<Vec<u8>>)], timeout: Duration) -> Result<(), StoreError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for (key, value) in records {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).key(key);
            if let Some(v) = value {
                record = record.payload(v);
            }
            let d =
                self.producer.send_result(record).map_err(|(e, _)| err(&self.topic, format!("write failed: {e}")))?;
            deliveries.push(d);
        }
        let mut last: HashMap<i32, i64> = HashMap::new();
        for d in deliveries {
            let delivery = tokio::time::timeout(timeout, d)
                .await
                .map_err(|_| err(&self.topic, "write not acknowledged in time"))?
                .map_err(|_| err(&self.topic, "producer closed"))?
                .map_err(|(e, _)| err(&self.topic, format!("write failed: {e}")))?;
            let slot = last.entry(delivery.partition).or_insert(delivery.offset);
            *slot = (*slot).max(delivery.offset);
        }
        self.wait(timeout, |p| last.iter().all(|(part, off)| p.positions.get(part).is_some_and(|pos| pos > off))).await
    }

    /// Number of partitions of the topic.
    pub fn partitions(&self) -> usize {
        self.progress.lock().map(|p| p.partitions).unwrap_or(0)
    }

    /// Writes a record without waiting (status updates); failures are logged.
    pub fn send_nowait(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let topic = self.topic.clone();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).key(&key);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        match self.producer.send_result(record) {
            Ok(delivery) => {
                tokio::spawn(async move {
                    if let Ok(Err((e, _))) = delivery.await {
                        tracing::warn!(topic, error = %e, "internal topic write failed");
                    }
                });
            }
            Err((e, _)) => tracing::warn!(topic, error = %e, "internal topic write not queued"),
        }
    }
}

impl Drop for KafkaLog {
    /// Queued writes (statuses are written without waiting) are flushed, not dropped, on close.
    fn drop(&mut self) {
        if let Err(e) = rdkafka::producer::Producer::flush(&self.producer, Duration::from_secs(5)) {
            tracing::warn!(topic = %self.topic, error = %e, "internal topic writes not flushed on close");
        }
        self.stop.cancel();
    }
}

async fn read_loop(
    topic: String,
    consumer: StreamConsumer,
    apply: Apply,
    progress: Arc<Mutex<Progress>>,
    notify: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            m = consumer.recv() => m,
        };
        match next {
            Ok(m) => {
                apply(LogRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default(),
                    value: m.payload(),
                });
                if let Ok(mut p) = progress.lock() {
                    p.positions.insert(m.partition(), m.offset() + 1);
                }
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                if let Ok(mut p) = progress.lock() {
                    p.eof.insert(partition);
                }
            }
            Err(e) => {
                tracing::warn!(topic, error = %e, "internal topic read error");
                if matches!(e, KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)) {
                    if let Ok(mut p) = progress.lock() {
                        p.failed = Some(format!("topic {topic} disappeared"));
                    }
                }
            }
        }
        notify.notify_waiters();
    }
}

/// Creates the topic compacted when missing; an existing one must be compacted, as Kafka Connect
/// requires for its internal topics.
async fn ensure_compacted_topic(admin: &AdminClient<DefaultClientContext>, spec: &TopicSpec) -> Result<(), StoreError> {
    let new = NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(spec.replication))
        .set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics([&new], &opts).await.map_err(|e| err(&spec.name, format!("create: {e}")))?;
    for r in results {
        match r {
            Ok(_) => {
                tracing::info!(topic = %spec.name, partitions = spec.partitions, "created internal topic (compacted)");
                return Ok(());
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(err(&t, format!("cannot create internal topic: {e}"))),
        }
    }
    // It existed: check its cleanup policy where the broker tells us.
    match admin.describe_configs([&ResourceSpecifier::Topic(&spec.name)], &opts).await {
        Ok(results) => {
            for resource in results.into_iter().flatten() {
                if let Some(policy) = resource.get("cleanup.policy").and_then(|e| e.value.clone()) {
                    if !policy.split(',').any(|p| p.trim() == "compact") {
                        return Err(err(
                            &spec.name,
                            format!(
                                "internal topic has cleanup.policy={policy}; Kafka Connect's internal topics must be \
                                 compacted (set cleanup.policy=compact on it, or point the worker at another topic)"
                            ),
                        ));
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(topic = %spec.name, error = %e, "cannot check the cleanup policy of the internal topic")
        }
    }
    Ok(())
}
