//! Keys every connector has (Kafka Connect's `ConnectorConfig`, `SourceConnectorConfig`,
//! `SinkConnectorConfig`).

use sluice_api::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};

/// `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorTolerance {
    /// Any error fails the task.
    None,
    /// Bad records are skipped (and sent to the dead-letter topic when one is set).
    All,
}

impl ErrorTolerance {
    /// Parses the config value (already validated).
    pub fn parse(value: &str) -> ErrorTolerance {
        if value.eq_ignore_ascii_case("all") {
            ErrorTolerance::All
        } else {
            ErrorTolerance::None
        }
    }
}

/// Keys shared by sources and sinks.
pub fn common_connector_def() -> ConfigDef {
    use ConfigType::*;
    ConfigDef::new()
        .define(
            ConfigKey::new("name", String)
                .validator(Validator::NonEmpty)
                .importance(Importance::High)
                .doc("Globally unique name of the connector"),
        )
        .define(
            ConfigKey::new("connector.class", String)
                .importance(Importance::High)
                .doc("Connector class name or alias (e.g. org.apache.kafka.connect.file.FileStreamSourceConnector or file-source)"),
        )
        .define(
            ConfigKey::new("tasks.max", Int)
                .default("1")
                .validator(Validator::at_least(1))
                .importance(Importance::High)
                .doc("Most tasks to create for this connector"),
        )
        .define(ConfigKey::new("key.converter", Class).default("").doc("Key converter; the worker's when empty"))
        .define(ConfigKey::new("value.converter", Class).default("").doc("Value converter; the worker's when empty"))
        .define(ConfigKey::new("header.converter", Class).default("").doc("Header converter (simple header converter)"))
        .define(ConfigKey::new("transforms", List).default("").doc("Aliases of the transformations to apply, in order"))
        .define(ConfigKey::new("predicates", List).default("").doc("Aliases of the predicates used by transformations"))
        .define(
            ConfigKey::new("errors.tolerance", String)
                .default("none")
                .validator(Validator::OneOf(vec!["none", "all"]))
                .doc("none: an error fails the task; all: bad records are skipped"),
        )
        .define(ConfigKey::new("errors.retry.timeout", Long).default("0").doc("Total retry time of a failed operation; -1 forever"))
        .define(
            ConfigKey::new("errors.retry.delay.max.ms", Long)
                .default("60000")
                .validator(Validator::at_least(1))
                .doc("Longest backoff between retries"),
        )
        .define(ConfigKey::new("errors.log.enable", Boolean).default("false").doc("Log each error with its context"))
        .define(
            ConfigKey::new("errors.log.include.messages", Boolean)
                .default("false")
                .doc("Include the record key, value and headers in error logs"),
        )
}

/// Keys of every source connector.
pub fn source_connector_def() -> ConfigDef {
    common_connector_def()
        .define(
            ConfigKey::new("topic.creation.default.partitions", ConfigType::Int)
                .default("1")
                .doc("Partitions of topics this connector creates"),
        )
        .define(
            ConfigKey::new("topic.creation.default.replication.factor", ConfigType::Int)
                .default("-1")
                .doc("Replication factor of topics this connector creates (-1: the broker's default)"),
        )
        .define(
            ConfigKey::new("exactly.once.support", ConfigType::String)
                .default("requested")
                .validator(Validator::OneOf(vec!["requested", "required"]))
                .doc("With exactly-once sources enabled on the worker: `required` refuses a connector that does not declare exactly-once support"),
        )
        .define(
            ConfigKey::new("transaction.boundary", ConfigType::String)
                .default("poll")
                .validator(Validator::OneOf(vec!["poll", "interval", "connector"]))
                .doc("Exactly-once sources: one transaction per poll batch (`poll`) or per `transaction.boundary.interval.ms` (`interval`)"),
        )
        .define(
            ConfigKey::new("transaction.boundary.interval.ms", ConfigType::Long)
                .default("-1")
                .doc("Transaction length with transaction.boundary=interval (-1: the worker's offset.flush.interval.ms)"),
        )
}

/// Keys of every sink connector.
pub fn sink_connector_def() -> ConfigDef {
    common_connector_def()
        .define(
            ConfigKey::new("topics", ConfigType::List)
                .default("")
                .importance(Importance::High)
                .doc("Topics to consume"),
        )
        .define(
            ConfigKey::new("topics.regex", ConfigType::String)
                .default("")
                .doc("Regular expression of the topics to consume"),
        )
        .define(
            ConfigKey::new("errors.deadletterqueue.topic.name", ConfigType::String)
                .default("")
                .doc("Dead-letter topic"),
        )
        .define(
            ConfigKey::new("errors.deadletterqueue.topic.replication.factor", ConfigType::Int)
                .default("3")
                .doc("Replication factor of the dead-letter topic"),
        )
        .define(
            ConfigKey::new("errors.deadletterqueue.context.headers.enable", ConfigType::Boolean)
                .default("false")
                .doc("Add __connect.errors.* headers to dead-letter records"),
        )
}
