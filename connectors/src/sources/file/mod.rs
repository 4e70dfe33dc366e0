//! FileStream source, as Kafka Connect's `FileStreamSourceConnector`: each line of a file becomes a
//! STRING record on one topic.
//!
//! Offsets: partition `{"filename": <file>}`, offset `{"position": <byte offset after the line>}`, so
//! a restarted task resumes after the last line Kafka acknowledged (at-least-once).

mod config;
mod source;
#[cfg(test)]
mod tests;

pub use config::FileSourceConfig;
pub use source::{FileSourceConnector, FileSourceTask};

use sluice_api::{ConnectorInstance, ConnectorType, PluginInfo};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
    aliases: &["FileStreamSource", "FileStreamSourceConnector", "file-source"],
    connector_type: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    create: || ConnectorInstance::Source(Box::new(FileSourceConnector::default())),
};
