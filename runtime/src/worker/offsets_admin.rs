//! Reading, altering and resetting a connector's offsets (KIP-875): source offsets in the offset
//! store, sink offsets in the consumer group `connect-<connector>`. The herders call these only
//! while the connector is STOPPED, so no task writes concurrently.

use std::time::Duration;

use rdkafka::admin::AdminOptions;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use sluice_api::{ConfigMap, ConnectorType, JsonMap};

use super::sink::Subscription;
use super::Worker;

/// One partition's offset, as in `GET /connectors/{c}/offsets`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConnectorOffset {
    /// Source partition, or `{"kafka_topic","kafka_partition"}` for sinks.
    pub partition: JsonMap,
    /// Offset, or `{"kafka_offset"}` for sinks; `null` resets the partition (PATCH).
    pub offset: Option<JsonMap>,
}

/// `{"offsets":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConnectorOffsets {
    /// Entries.
    pub offsets: Vec<ConnectorOffset>,
}

/// Why an offsets operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    /// The request is invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// Kafka or the store failed (500).
    #[error("{0}")]
    Failed(String),
}

const TIMEOUT: Duration = Duration::from_secs(15);

impl Worker {
    fn group_consumer(&self, connector: &str) -> Result<BaseConsumer, OffsetsError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.config.bootstrap_servers())
            .set("group.id", format!("connect-{connector}"))
            .set("enable.auto.commit", "false");
        for (k, v) in self.config.client_overrides("consumer.") {
            c.set(k, v);
        }
        c.create().map_err(|e| OffsetsError::Failed(format!("cannot create a consumer for connect-{connector}: {e}")))
    }

    /// The partitions a sink subscribes to (its `topics` or `topics.regex`, parsed as the sink task does).
    fn sink_partitions(&self, consumer: &BaseConsumer, config: &ConfigMap) -> Result<Vec<(String, i32)>, OffsetsError> {
        let parsed =
            crate::config::sink_connector_def().parse(config).map_err(|e| OffsetsError::BadRequest(e.to_string()))?;
        let subscription = Subscription::from_config(&parsed).map_err(|e| OffsetsError::BadRequest(e.to_string()))?;
        let wanted = subscription.matcher();
        let metadata = consumer
            .fetch_metadata(None, TIMEOUT)
            .map_err(|e| OffsetsError::Failed(format!("cannot read topic metadata: {e}")))?;
        let mut out: Vec<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| wanted(t.name()))
            .flat_map(|t| t.partitions().iter().map(|p| (t.name().to_string(), p.id())))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The connector's committed offsets.
    pub async fn read_offsets(
        &self,
        connector: &str,
        connector_type: ConnectorType,
        config: &ConfigMap,
    ) -> Result<ConnectorOffsets, OffsetsError> {
        if connector_type == ConnectorType::Source {
            let offsets = self
                .offsets
                .connector_offsets(connector)
                .into_iter()
                .map(|(partition, offset)| ConnectorOffset { partition, offset: Some(offset) })
                .collect();
            return Ok(ConnectorOffsets { offsets });
        }
        let consumer = self.group_consumer(connector)?;
        let partitions = self.sink_partitions(&consumer, config)?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &partitions {
            tpl.add_partition(t, *p);
        }
        let committed = tokio::task::spawn_blocking(move || consumer.committed_offsets(tpl, TIMEOUT))
            .await
            .map_err(|e| OffsetsError::Failed(e.to_string()))?
            .map_err(|e| {
                OffsetsError::Failed(format!("cannot read the committed offsets of connect-{connector}: {e}"))
            })?;
        let offsets = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(ConnectorOffset {
                    partition: sink_partition(e.topic(), e.partition()),
                    offset: json!({ "kafka_offset": o }).as_object().cloned(),
                }),
                _ => None,
            })
            .collect();
        Ok(ConnectorOffsets { offsets })
    }

    /// Writes the given offsets (`null` resets one source partition).
    pub async fn alter_offsets(
        &self,
        connector: &str,
        connector_type: ConnectorType,
        offsets: ConnectorOffsets,
    ) -> Result<(), OffsetsError> {
        if offsets.offsets.is_empty() {
            return Err(OffsetsError::BadRequest("The offsets to be altered must not be empty".into()));
        }
        if connector_type == ConnectorType::Source {
            for o in &offsets.offsets {
                if o.partition.is_empty() {
                    return Err(OffsetsError::BadRequest("Source partitions must not be empty".into()));
                }
            }
            let entries = offsets.offsets.into_iter().map(|o| (o.partition, o.offset)).collect();
            return self
                .offsets
                .set(connector, entries)
                .await
                .map_err(|e| OffsetsError::Failed(format!("cannot write the offsets of {connector}: {e}")));
        }
        let mut tpl = TopicPartitionList::new();
        for o in &offsets.offsets {
            let topic = o.partition.get("kafka_topic").and_then(|v| v.as_str()).ok_or_else(|| {
                OffsetsError::BadRequest("Kafka partitions must contain a string \"kafka_topic\"".into())
            })?;
            let partition = o
                .partition
                .get("kafka_partition")
                .and_then(|v| v.as_i64())
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| {
                    OffsetsError::BadRequest("Kafka partitions must contain an integer \"kafka_partition\"".into())
                })?;
            let offset = match &o.offset {
                None => {
                    return Err(OffsetsError::BadRequest(format!(
                        "resetting a single sink partition ({topic}-{partition}) is not supported; DELETE the connector's offsets to reset them all"
                    )))
                }
                Some(m) => m.get("kafka_offset").and_then(|v| v.as_i64()).filter(|o| *o >= 0).ok_or_else(|| {
                    OffsetsError::BadRequest("Kafka offsets must contain a non-negative integer \"kafka_offset\"".into())
                })?,
            };
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| OffsetsError::BadRequest(e.to_string()))?;
        }
        let consumer = self.group_consumer(connector)?;
        let name = connector.to_string();
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| OffsetsError::Failed(e.to_string()))?
            .map_err(|e| OffsetsError::Failed(format!("cannot commit offsets for connect-{name}: {e}")))
    }

    /// Removes every committed offset of the connector.
    pub async fn reset_offsets(&self, connector: &str, connector_type: ConnectorType) -> Result<(), OffsetsError> {
        if connector_type == ConnectorType::Source {
            let entries: Vec<(JsonMap, Option<JsonMap>)> =
                self.offsets.connector_offsets(connector).into_iter().map(|(p, _)| (p, None)).collect();
            if entries.is_empty() {
                return Ok(());
            }
            return self
                .offsets
                .set(connector, entries)
                .await
                .map_err(|e| OffsetsError::Failed(format!("cannot reset the offsets of {connector}: {e}")));
        }
        let group = format!("connect-{connector}");
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self
            .clients
            .admin
            .delete_groups(&[group.as_str()], &opts)
            .await
            .map_err(|e| OffsetsError::Failed(format!("cannot delete consumer group {group}: {e}")))?;
        for r in results {
            match r {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((_, code)) => {
                    return Err(OffsetsError::Failed(format!("cannot delete consumer group {group}: {code}")))
                }
            }
        }
        Ok(())
    }
}

fn sink_partition(topic: &str, partition: i32) -> JsonMap {
    let mut m = JsonMap::new();
    m.insert("kafka_topic".into(), json!(topic));
    m.insert("kafka_partition".into(), json!(partition));
    m
}
