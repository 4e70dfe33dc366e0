//! Verifiable source, as Kafka's `org.apache.kafka.connect.tools.VerifiableSourceConnector`: each
//! task emits an increasing sequence number, so a reader can check for losses and duplicates.
//!
//! Records: key INT32 task id, value INT64 seqno, on one topic. Offsets: partition `{"id": <task>}`,
//! offset `{"seqno": <n>}`; a restarted task continues at the committed seqno + 1. `throughput`
//! caps records per second per task (negative: unlimited).

mod source;
#[cfg(test)]
mod tests;

pub use source::{VerifiableSourceConfig, VerifiableSourceConnector, VerifiableSourceTask};

use sluice_api::{ConnectorInstance, ConnectorType, PluginInfo};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "org.apache.kafka.connect.tools.VerifiableSourceConnector",
    aliases: &["VerifiableSource", "VerifiableSourceConnector", "verifiable-source"],
    connector_type: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    create: || ConnectorInstance::Source(Box::new(VerifiableSourceConnector::default())),
};
