//! Topics a source task keeps its own state in (Debezium's schema history), on the worker's Kafka.
//!
//! One partition, `cleanup.policy=delete`, infinite retention (`retention.ms=-1`,
//! `retention.bytes=-1`), as Debezium requires of its history topic: compaction or expiry would
//! lose the definitions older offsets need. Appends use an idempotent `acks=all` producer of their
//! own (outside any exactly-once transaction of the task) and return once acknowledged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_api::{ConnectError, StateTopics};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The worker's implementation of [`StateTopics`].
pub(crate) struct KafkaStateTopics {
    /// The readers' client settings.
    reader: ClientConfig,
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// Created on first append: most source tasks never write a state topic.
    producer_config: ClientConfig,
    producer: Mutex<Option<FutureProducer>>,
    /// Topics this task created or found, so each is checked once.
    known: Mutex<HashSet<String>>,
}

impl KafkaStateTopics {
    /// `producer` and `reader` carry the worker's connection and security settings.
    pub(crate) fn new(
        mut producer: ClientConfig,
        reader: ClientConfig,
        admin: Arc<AdminClient<DefaultClientContext>>,
    ) -> KafkaStateTopics {
        producer.set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "0");
        KafkaStateTopics {
            producer_config: producer,
            producer: Mutex::new(None),
            reader,
            admin,
            known: Mutex::new(HashSet::new()),
        }
    }

    fn producer(&self) -> Result<FutureProducer, ConnectError> {
        let mut slot = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let p: FutureProducer = self
            .producer_config
            .create()
            .map_err(|e| ConnectError::retriable_from("creating the state topic producer", e))?;
        *slot = Some(p.clone());
        Ok(p)
    }

    async fn ensure(&self, topic: &str) -> Result<(), ConnectError> {
        if self.known.lock().unwrap_or_else(|e| e.into_inner()).contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "delete")
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| ConnectError::retriable_from(format!("creating the state topic {topic}"), e))?;
        for r in results {
            match r {
                Ok(_) => tracing::info!(topic, "created state topic (1 partition, delete, infinite retention)"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => {
                    return Err(ConnectError::retriable(format!("cannot create the state topic {t}: {e}")));
                }
            }
        }
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(topic.to_string());
        Ok(())
    }
}

#[async_trait]
impl StateTopics for KafkaStateTopics {
    async fn read_all(&self, topic: &str) -> Result<Option<Vec<Vec<u8>>>, ConnectError> {
        let mut config = self.reader.clone();
        config
            .set("group.id", "sluice-state-reader")
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.queue.backoff.ms", "10");
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || read_blocking(config, &topic))
            .await
            .map_err(|e| ConnectError::retriable(format!("state topic reader: {e}")))?
    }

    async fn append(&self, topic: &str, values: Vec<Vec<u8>>) -> Result<(), ConnectError> {
        self.ensure(topic).await?;
        let producer = self.producer()?;
        let mut acks = Vec::with_capacity(values.len());
        for value in &values {
            let record = FutureRecord::<(), [u8]>::to(topic).partition(0).payload(value.as_slice());
            match producer.send_result(record) {
                Ok(ack) => acks.push(ack),
                Err((e, _)) => return Err(ConnectError::retriable_from(format!("writing to {topic}"), e)),
            }
        }
        for ack in acks {
            match tokio::time::timeout(TIMEOUT, ack).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => return Err(ConnectError::retriable_from(format!("writing to {topic}"), e)),
                Ok(Err(_)) => return Err(ConnectError::retriable(format!("writing to {topic}: producer gone"))),
                Err(_) => {
                    return Err(ConnectError::retriable(format!(
                        "writing to {topic}: no acknowledgement in {TIMEOUT:?}"
                    )))
                }
            }
        }
        Ok(())
    }
}

fn read_blocking(config: ClientConfig, topic: &str) -> Result<Option<Vec<Vec<u8>>>, ConnectError> {
    let fail = |what: &str, e: rdkafka::error::KafkaError| {
        ConnectError::retriable_from(format!("reading the state topic {topic}: {what}"), e)
    };
    let consumer: BaseConsumer = config.create().map_err(|e| fail("consumer", e))?;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| fail("metadata", e))?;
    let exists =
        metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Ok(None);
    }
    let (low, high) = consumer.fetch_watermarks(topic, 0, TIMEOUT).map_err(|e| fail("watermarks", e))?;
    let mut values = Vec::new();
    if high <= low {
        return Ok(Some(values));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(low)).map_err(|e| fail("assign", e))?;
    consumer.assign(&tpl).map_err(|e| fail("assign", e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if std::time::Instant::now() > deadline {
            return Err(ConnectError::retriable(format!(
                "reading the state topic {topic}: not at its end ({high}) after 120 s"
            )));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(e)) => return Err(fail("poll", e)),
            Some(Ok(m)) => {
                if let Some(v) = m.payload() {
                    values.push(v.to_vec());
                }
                if m.offset() + 1 >= high {
                    return Ok(Some(values));
                }
            }
        }
    }
}
