//! Dead-letter queue for sink tasks (`errors.deadletterqueue.topic.name`), as Kafka Connect's
//! `DeadLetterQueueReporter`: the original key, value and headers go to the DLQ topic, with
//! `__connect.errors.*` context headers when `errors.deadletterqueue.context.headers.enable=true`.
//!
//! Delivery: DLQ writes are acknowledged before the sink's next commit can cover the record's offset,
//! so a skipped record is either in the DLQ or will be consumed again.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sluice_api::ConnectError;

use super::TaskId;

/// DLQ settings of a sink connector.
#[derive(Debug, Clone)]
pub(crate) struct DlqSettings {
    pub topic: String,
    pub replication: i32,
    pub context_headers: bool,
}

/// Why a record went to the DLQ.
pub(crate) struct Failure<'a> {
    /// Kafka Connect's stage name (`KEY_CONVERTER`, `VALUE_CONVERTER`, ...).
    pub stage: &'static str,
    /// The class (converter) that failed.
    pub class: &'a str,
    /// The error.
    pub message: &'a str,
}

/// A record as the DLQ writes it: where it was read from, and its bytes.
pub(crate) struct Original<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

pub(crate) struct DeadLetterQueue {
    settings: DlqSettings,
    id: TaskId,
    producer: FutureProducer,
    pending: Vec<DeliveryFuture>,
}

impl DeadLetterQueue {
    pub(crate) fn new(settings: DlqSettings, id: TaskId, producer: FutureProducer) -> DeadLetterQueue {
        DeadLetterQueue { settings, id, producer, pending: Vec::new() }
    }

    /// Creates the topic when missing (with `errors.deadletterqueue.topic.replication.factor`).
    pub(crate) async fn ensure_topic(&self, admin: &Arc<AdminClient<DefaultClientContext>>) {
        let topic = NewTopic::new(&self.settings.topic, 1, TopicReplication::Fixed(self.settings.replication));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        match admin.create_topics([&topic], &opts).await {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((t, e)) => {
                            tracing::warn!(task = %self.id, topic = %t, error = %e, "cannot create the dead-letter topic; relying on the broker")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(task = %self.id, error = %e, "cannot create the dead-letter topic; relying on the broker")
            }
        }
    }

    /// Queues the original record for the DLQ.
    pub(crate) fn send(&mut self, m: &BorrowedMessage<'_>, failure: &Failure<'_>) -> Result<(), ConnectError> {
        let headers: Vec<(&str, Option<&[u8]>)> =
            m.headers().map(|hs| hs.iter().map(|h| (h.key, h.value)).collect()).unwrap_or_default();
        let original = Original {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            value: m.payload(),
            headers,
        };
        self.send_original(&original, failure)
    }

    /// Queues a record, given as its coordinates and bytes, for the DLQ.
    pub(crate) fn send_original(&mut self, m: &Original<'_>, failure: &Failure<'_>) -> Result<(), ConnectError> {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &m.headers {
            headers = headers.insert(KafkaHeader { key, value: *value });
        }
        if self.settings.context_headers {
            let context = [
                ("__connect.errors.topic", m.topic.to_string()),
                ("__connect.errors.partition", m.partition.to_string()),
                ("__connect.errors.offset", m.offset.to_string()),
                ("__connect.errors.connector.name", self.id.connector.clone()),
                ("__connect.errors.task.id", self.id.task.to_string()),
                ("__connect.errors.stage", failure.stage.to_string()),
                ("__connect.errors.class.name", failure.class.to_string()),
                ("__connect.errors.exception.class.name", "org.apache.kafka.connect.errors.DataException".to_string()),
                ("__connect.errors.exception.message", failure.message.to_string()),
                ("__connect.errors.exception.stacktrace", format!("DataException: {}", failure.message)),
            ];
            for (k, v) in &context {
                headers = headers.insert(KafkaHeader { key: k, value: Some(v.as_bytes()) });
            }
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.settings.topic).headers(headers);
        if let Some(k) = m.key {
            record = record.key(k);
        }
        if let Some(v) = m.value {
            record = record.payload(v);
        }
        let future = self.producer.send_result(record).map_err(|(e, _)| {
            ConnectError::retriable_from(
                format!("task {}: cannot queue a record for the dead-letter topic", self.id),
                e,
            )
        })?;
        self.pending.push(future);
        Ok(())
    }

    /// Waits until every queued DLQ record is acknowledged. A failed DLQ write fails the task: the
    /// record must not be skipped without a trace.
    pub(crate) async fn flush(&mut self) -> Result<(), ConnectError> {
        for f in self.pending.drain(..) {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(ConnectError::fatal_from(
                        format!("task {}: writing to dead-letter topic {} failed", self.id, self.settings.topic),
                        e,
                    ))
                }
                Err(_) => return Err(ConnectError::fatal(format!("task {}: dead-letter producer closed", self.id))),
            }
        }
        Ok(())
    }
}
