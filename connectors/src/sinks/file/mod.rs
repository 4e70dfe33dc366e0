//! FileStream sink, as Kafka Connect's `FileStreamSinkConnector`: writes each record's value as a
//! line (Java `toString` form) to a file, or to standard output.
//!
//! Delivery: `flush` (called before every offset commit) writes the buffer and fsyncs the file, so
//! committed offsets only cover lines on disk (at-least-once: after a crash, lines past the last
//! commit are written again).

mod config;
mod sink;
#[cfg(test)]
mod tests;

pub use config::FileSinkConfig;
pub use sink::FileSinkTask;

use sluice_api::{ConfigConnector, ConnectorInstance, ConnectorType, PluginInfo, SinkTask, TaskSplit};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "org.apache.kafka.connect.file.FileStreamSinkConnector",
    aliases: &["FileStreamSink", "FileStreamSinkConnector", "file-sink"],
    connector_type: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    create: || {
        ConnectorInstance::Sink(Box::new(ConfigConnector::<dyn SinkTask>::new(
            FileSinkConfig::def,
            |c| FileSinkConfig::parse(c).map(|_| ()),
            TaskSplit::UpToMax,
            || Box::new(FileSinkTask::default()),
        )))
    },
};
