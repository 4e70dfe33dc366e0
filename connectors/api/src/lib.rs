//! The sluice connector API.
//!
//! Modelled on Kafka Connect's `connect-api`, made async and batch-first:
//! - [`schema`] and [`value`]: Kafka Connect's data model (all schema types, optional and default
//!   values, struct/array/map, the logical types Decimal, Date, Time and Timestamp);
//! - [`record`]: [`SourceRecord`] and [`SinkRecord`] with headers and timestamps;
//! - [`connector`]: the [`SourceConnector`]/[`SinkConnector`]/[`SourceTask`]/[`SinkTask`] traits;
//! - [`config`]: typed config definitions that document themselves and validate purely;
//! - [`error`]: errors that carry a kind (Config / Retriable / Fatal).
//!
//! This crate depends on no other crate of ours and on nothing heavy.

pub mod config;
pub mod connector;
pub mod error;
pub mod json;
pub mod plugin;
pub mod record;
pub mod schema;
pub mod time;
pub mod value;

pub use config::{
    ConfigDef, ConfigError, ConfigErrors, ConfigKey, ConfigMap, ConfigType, ConfigValue, Importance, ParsedConfig,
    Validator,
};
pub use connector::{
    ConfigConnector, Connector, ConnectorContext, ConnectorType, ErrantRecordReporter, OffsetStorageReader, Offsets,
    SinkConnector, SinkTask, SinkTaskContext, SourceConnector, SourceTask, SourceTaskContext, StateTopics, TaskSplit,
};
pub use error::{error_chain, ConnectError, ErrorKind};
pub use plugin::{ConnectorInstance, PluginInfo};
pub use record::{Header, JsonMap, RecordMetadata, SinkRecord, SourceRecord, TimestampType, TopicPartition};
pub use schema::{Field, Schema, SchemaRef, SchemaType};
pub use value::{Decimal, Struct, Value};
