//! Kafka clients for tasks: librdkafka configs from the worker's `producer.*`/`consumer.*`/`admin.*`
//! keys and the connector's `producer.override.*`/`consumer.override.*`.

use std::sync::{Arc, Mutex};

use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::TopicPartitionList;
use sluice_api::{ConfigMap, Offsets, TopicPartition};
use tokio::sync::mpsc;

use super::TaskId;
use crate::config::WorkerConfig;

/// The worker's shared clients and the recipe for per-task ones.
#[derive(Clone)]
pub struct KafkaClients {
    bootstrap: String,
    producer_overrides: ConfigMap,
    consumer_overrides: ConfigMap,
    /// Shared admin client (topic creation).
    pub admin: Arc<AdminClient<DefaultClientContext>>,
}

fn apply(config: &mut ClientConfig, overrides: &ConfigMap) {
    for (k, v) in overrides {
        config.set(k, v);
    }
}

impl KafkaClients {
    /// Builds the shared admin client.
    pub fn new(worker: &WorkerConfig) -> Result<KafkaClients, KafkaError> {
        let bootstrap = worker.bootstrap_servers();
        let mut admin = ClientConfig::new();
        admin.set("bootstrap.servers", &bootstrap).set("client.id", "sluice-worker-admin");
        apply(&mut admin, &worker.client_overrides("admin."));
        Ok(KafkaClients {
            bootstrap,
            producer_overrides: worker.client_overrides("producer."),
            consumer_overrides: worker.client_overrides("consumer."),
            admin: Arc::new(admin.create()?),
        })
    }

    /// A source task's producer: idempotent, `acks=all`, so acknowledged records are written once and
    /// in order per partition; transactional with `transactional_id` (exactly-once sources).
    /// librdkafka's own queue is capped at `buffer_max_bytes` too, so the records we hold and their
    /// serialized copies stay within about twice the task budget.
    pub fn producer(
        &self,
        id: &TaskId,
        connector_config: &ConfigMap,
        buffer_max_bytes: usize,
        transactional_id: Option<&str>,
    ) -> Result<FutureProducer, KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("connector-producer-{}-{}", id.connector, id.task))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "none")
            // As Kafka Connect (delivery.timeout.ms=Integer.MAX_VALUE for source producers): a
            // record is retried until the broker takes it, never dropped by a local timeout. An
            // outage stalls the task (and backpressure reaches its source) instead of failing it.
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.kbytes", (buffer_max_bytes / 1024).max(1024).to_string());
        if let Some(tid) = transactional_id {
            // A transaction cannot outlive transaction.timeout.ms (60 s), so neither can a record.
            c.set("transactional.id", tid).set("message.timeout.ms", "60000");
        }
        apply(&mut c, &self.producer_overrides);
        apply(&mut c, &prefixed(connector_config, "producer.override."));
        c.create()
    }

    /// A source task's state topics (Debezium's schema history), with the worker's client settings.
    pub(crate) fn state_topics(&self, id: &TaskId) -> super::state_topics::KafkaStateTopics {
        let mut producer = ClientConfig::new();
        producer
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("connector-state-producer-{}-{}", id.connector, id.task));
        apply(&mut producer, &self.producer_overrides);
        let mut reader = ClientConfig::new();
        reader
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("connector-state-reader-{}-{}", id.connector, id.task));
        apply(&mut reader, &self.consumer_overrides);
        super::state_topics::KafkaStateTopics::new(producer, reader, self.admin.clone())
    }

    /// Fences every producer with `transactional_id`: initializing a new one bumps its epoch, so
    /// the old one can no longer commit, and its open transaction is aborted.
    pub fn fence(&self, transactional_id: &str) -> Result<(), KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("sluice-fencer-{transactional_id}"))
            .set("transactional.id", transactional_id);
        apply(&mut c, &self.producer_overrides);
        let producer: rdkafka::producer::BaseProducer = c.create()?;
        rdkafka::producer::Producer::init_transactions(&producer, std::time::Duration::from_secs(60))
    }

    /// A sink task's dead-letter producer (idempotent, `acks=all`).
    pub fn dlq_producer(&self, id: &TaskId, connector_config: &ConfigMap) -> Result<FutureProducer, KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("connector-dlq-producer-{}-{}", id.connector, id.task))
            .set("enable.idempotence", "true")
            .set("acks", "all");
        apply(&mut c, &self.producer_overrides);
        apply(&mut c, &prefixed(connector_config, "producer.override."));
        c.create()
    }

    /// A sink task's consumer in group `connect-<connector>`, with manual commits, plus the channel
    /// on which its rebalance events arrive.
    pub fn sink_consumer(
        &self,
        id: &TaskId,
        connector_config: &ConfigMap,
    ) -> Result<(StreamConsumer<SinkConsumerContext>, SinkEvents), KafkaError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("connect-{}", id.connector))
            .set("client.id", format!("connector-consumer-{}-{}", id.connector, id.task))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            // librdkafka's prefetch queue is the consumer's buffer: bound it (KiB).
            .set("queued.max.messages.kbytes", "16384")
            // A fetch the broker holds open waits at most this long for data. librdkafka's 500 ms
            // default is what a record waits on a broker that does not answer a held fetch as soon
            // as data arrives (the local one does not): it was the sinks' median latency.
            .set("fetch.wait.max.ms", "50")
            // When the prefetch queue is over its bound, librdkafka (>= 2.4) waits this long before
            // fetching again; its 1 s default left a sink that drains 16 MiB in a fraction of a
            // second idle most of the time (sink throughput 17k -> 76k records/s when lowered).
            .set("fetch.queue.backoff.ms", "10")
            // A subscribed topic that does not exist yet is picked up within seconds, not minutes.
            .set("topic.metadata.refresh.interval.ms", "5000");
        apply(&mut c, &self.consumer_overrides);
        apply(&mut c, &prefixed(connector_config, "consumer.override."));
        let (tx, rx) = mpsc::unbounded_channel();
        let durable = Arc::new(Mutex::new(Offsets::new()));
        let context = SinkConsumerContext { task: id.to_string(), events: tx, durable: durable.clone() };
        let consumer = c.create_with_context(context)?;
        Ok((consumer, SinkEvents { events: rx, durable }))
    }
}

fn prefixed(config: &ConfigMap, prefix: &str) -> ConfigMap {
    config.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|r| (r.to_string(), v.clone()))).collect()
}

/// A partition assignment change seen by a sink consumer.
#[derive(Debug)]
pub enum RebalanceEvent {
    /// Partitions taken away.
    Revoked(Vec<TopicPartition>),
    /// Partitions given.
    Assigned(Vec<TopicPartition>),
}

/// The sink loop's side of the consumer context.
pub struct SinkEvents {
    /// Rebalance events, in order.
    pub events: mpsc::UnboundedReceiver<RebalanceEvent>,
    /// Offsets the sink made durable (shared with the context, which commits them on revocation).
    pub durable: Arc<Mutex<Offsets>>,
}

/// Consumer context: on revocation, commits what the sink made durable before the partitions move,
/// so the next owner resumes right after it (nothing lost; what was put but not yet durable is
/// delivered again).
pub struct SinkConsumerContext {
    task: String,
    events: mpsc::UnboundedSender<RebalanceEvent>,
    durable: Arc<Mutex<Offsets>>,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

impl ClientContext for SinkConsumerContext {}

impl ConsumerContext for SinkConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            let mut commit = TopicPartitionList::new();
            if let Ok(mut durable) = self.durable.lock() {
                for tp in &revoked {
                    if let Some(offset) = durable.remove(tp) {
                        let _ = commit.add_partition_offset(&tp.topic, tp.partition, rdkafka::Offset::Offset(offset));
                    }
                }
            }
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    tracing::warn!(task = %self.task, error = %e, "commit on revocation failed; records will be re-delivered");
                }
            }
            let _ = self.events.send(RebalanceEvent::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let _ = self.events.send(RebalanceEvent::Assigned(partitions(tpl)));
            }
            Rebalance::Error(e) => tracing::warn!(task = %self.task, error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}
