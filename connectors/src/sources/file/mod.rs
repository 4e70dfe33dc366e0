//! FileStream source, as Kafka Connect's `FileStreamSourceConnector`: each line of a file becomes a
//! STRING record on one topic.
//!
//! Offsets: partition `{"filename": <file>}`, offset `{"position": <byte offset after the line>}`, so
//! a restarted task resumes after the last line Kafka acknowledged (at-least-once; exactly-once
//! under `exactly.once.source.support=enabled`, since it re-reads the same lines from an offset).

mod config;
mod source;
#[cfg(test)]
mod tests;

pub use config::FileSourceConfig;
pub use source::FileSourceTask;

use sluice_api::{ConfigConnector, ConnectorInstance, ConnectorType, PluginInfo, SourceTask, TaskSplit};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
    aliases: &["FileStreamSource", "FileStreamSourceConnector", "file-source"],
    connector_type: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    // A file cannot be split: one task, as Kafka Connect's FileStreamSourceConnector.
    create: || {
        ConnectorInstance::Source(Box::new(
            ConfigConnector::<dyn SourceTask>::new(
                FileSourceConfig::def,
                |c| FileSourceConfig::parse(c).map(|_| ()),
                TaskSplit::One,
                || Box::new(FileSourceTask::default()),
            )
            .exactly_once(),
        ))
    },
};
