//! Records that flow between connectors and Kafka.

use std::fmt;

use crate::schema::SchemaRef;
use crate::value::Value;

/// A JSON object: source partitions and source offsets are maps of JSON values, as in Kafka Connect.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// A record header: a key and a (possibly schema'd) value.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Schema of the value, when known.
    pub schema: Option<SchemaRef>,
    /// Header value.
    pub value: Value,
}

impl Header {
    /// A STRING header.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Header {
        Header { key: key.into(), schema: None, value: Value::String(value.into()) }
    }
}

/// A record produced by a source task, bound for Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Which part of the source this came from (e.g. `{"filename": ...}` or `{"server": ...}`).
    pub source_partition: JsonMap,
    /// Position within that source partition after this record (e.g. `{"position": 42}`).
    pub source_offset: JsonMap,
    /// Destination topic.
    pub topic: String,
    /// Destination Kafka partition; `None` lets the producer's partitioner choose by key.
    pub kafka_partition: Option<i32>,
    /// Key schema.
    pub key_schema: Option<SchemaRef>,
    /// Key ([`Value::Null`] for none).
    pub key: Value,
    /// Value schema.
    pub value_schema: Option<SchemaRef>,
    /// Value ([`Value::Null`] for a tombstone).
    pub value: Value,
    /// Record timestamp in epoch milliseconds; `None` lets the producer stamp it.
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl SourceRecord {
    /// A record with a value only (no key, no headers, no timestamp).
    pub fn new(
        source_partition: JsonMap,
        source_offset: JsonMap,
        topic: impl Into<String>,
        value_schema: Option<SchemaRef>,
        value: Value,
    ) -> SourceRecord {
        SourceRecord {
            source_partition,
            source_offset,
            topic: topic.into(),
            kafka_partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// A rough in-memory size, for bounding buffers (includes the partition and offset maps).
    pub fn approx_size(&self) -> usize {
        self.topic.len()
            + self.key.approx_size()
            + self.value.approx_size()
            + json_map_size(&self.source_partition)
            + json_map_size(&self.source_offset)
            + self.headers.iter().map(|h| h.key.len() + h.value.approx_size()).sum::<usize>()
            + 96
    }
}

fn json_size(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len() + 32,
        serde_json::Value::Array(a) => a.iter().map(json_size).sum::<usize>() + 32,
        serde_json::Value::Object(m) => json_map_size(m),
        _ => 16,
    }
}

fn json_map_size(m: &JsonMap) -> usize {
    m.iter().map(|(k, v)| k.len() + 48 + json_size(v)).sum::<usize>() + 48
}

/// How a Kafka record's timestamp was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// No timestamp.
    #[default]
    NoTimestampType,
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append.
    LogAppendTime,
}

/// A record read from Kafka, handed to a sink task.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// Topic: the one it was read from, or the one a transform routed it to.
    pub topic: String,
    /// The topic it was read from, when a transform changed `topic` (Kafka's
    /// `SinkRecord.originalTopic()`, KIP-793); offsets are always those of this one.
    pub original_topic: Option<String>,
    /// Kafka partition.
    pub kafka_partition: i32,
    /// Kafka offset.
    pub kafka_offset: i64,
    /// Timestamp in epoch milliseconds.
    pub timestamp: Option<i64>,
    /// Timestamp type.
    pub timestamp_type: TimestampType,
    /// Key schema.
    pub key_schema: Option<SchemaRef>,
    /// Key.
    pub key: Value,
    /// Value schema.
    pub value_schema: Option<SchemaRef>,
    /// Value ([`Value::Null`] for a tombstone).
    pub value: Value,
    /// Headers.
    pub headers: Vec<Header>,
}

impl SinkRecord {
    /// The topic-partition this record was read from (before any routing transform): the one
    /// its offset belongs to.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.original_topic.as_deref().unwrap_or(&self.topic), self.kafka_partition)
    }

    /// A rough in-memory size, for bounding buffers.
    pub fn approx_size(&self) -> usize {
        self.topic.len() + self.key.approx_size() + self.value.approx_size() + 64
    }
}

/// A Kafka topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where the broker stored a produced record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}
