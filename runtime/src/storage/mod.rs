//! Backing stores for source offsets and statuses. Each is a trait with file/memory implementations
//! here; the Kafka-topic implementations come with distributed mode.

pub mod committed;
mod config;
pub mod kafka_log;
mod kafka_stores;
mod offsets;
mod status;

pub use config::{ClusterConfigState, ConfigStore, ConfigUpdate, MemoryConfigStore, TargetState};
pub use kafka_log::TopicSpec;
pub use kafka_stores::{KafkaConfigStore, KafkaOffsetStore, KafkaStatusStore, KafkaStoreConfig};
pub use offsets::{
    offset_key, parse_offset_record, ConnectorOffsetReader, FileOffsetStore, MemoryOffsetStore, OffsetStore,
};
pub use status::{ConnectorState, MemoryStatusStore, Status, StatusStore};

/// A store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem failure.
    #[error("offset file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Kafka-backed store failed.
    #[error("internal topic {topic}: {message}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What failed.
        message: String,
    },
    /// The stored data is not what we wrote.
    #[error("offset file {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}
