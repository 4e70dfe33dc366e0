//! Worker keys, as Kafka Connect's `WorkerConfig`/`StandaloneConfig`/`DistributedConfig`.

use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, ParsedConfig, Validator};

/// A parsed worker config. Unknown keys are kept (and logged), never fatal.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    parsed: ParsedConfig,
}

fn key(name: &str, t: ConfigType, default: &str, doc: &str) -> ConfigKey {
    ConfigKey::new(name, t).default(default).doc(doc)
}

impl WorkerConfig {
    /// The documented worker keys.
    pub fn def() -> ConfigDef {
        use ConfigType::*;
        ConfigDef::new()
            .define(
                ConfigKey::new("bootstrap.servers", List)
                    .default("localhost:9092")
                    .importance(Importance::High)
                    .doc("Kafka brokers to connect to, host:port[,host:port]"),
            )
            .define(key("group.id", String, "connect-cluster", "Group of workers this worker joins (distributed mode)"))
            .define(key("config.storage.topic", String, "connect-configs", "Topic holding connector configs"))
            .define(key("offset.storage.topic", String, "connect-offsets", "Topic holding source offsets"))
            .define(key("status.storage.topic", String, "connect-status", "Topic holding connector and task statuses"))
            .define(key("config.storage.replication.factor", Int, "3", "Replication factor of the config topic"))
            .define(key("offset.storage.replication.factor", Int, "3", "Replication factor of the offsets topic"))
            .define(key("status.storage.replication.factor", Int, "3", "Replication factor of the status topic"))
            .define(key("offset.storage.partitions", Int, "25", "Partitions of the offsets topic"))
            .define(key("status.storage.partitions", Int, "5", "Partitions of the status topic"))
            .define(key(
                "offset.storage.file.filename",
                String,
                "",
                "File holding source offsets in standalone mode (written atomically: temp file + rename)",
            ))
            .define(key("listeners", List, "http://0.0.0.0:8083", "REST listeners, e.g. http://127.0.0.1:8083"))
            .define(key(
                "rest.advertised.host.name",
                String,
                "",
                "Host name other workers and clients use for this worker",
            ))
            .define(key("rest.advertised.port", Int, "0", "Port other workers and clients use for this worker"))
            .define(
                key(
                    "rest.advertised.listener",
                    String,
                    "",
                    "Which listener other workers use, http or https (default: the first in listeners)",
                )
                .validator(sluice_api::Validator::OneOf(vec!["", "http", "https"])),
            )
            .define(key(
                "rest.request.timeout.ms",
                Long,
                "90000",
                "Longest a REST request may take before it is answered with a 500 (the operation goes on)",
            ))
            .define(key("ssl.keystore.type", String, "PEM", "Format of the https listener's keystore: PEM"))
            .define(key(
                "ssl.keystore.location",
                String,
                "",
                "PEM file with the https listener's private key and certificate chain",
            ))
            .define(key("ssl.keystore.key", Password, "", "The https listener's private key, inline PEM"))
            .define(key(
                "ssl.keystore.certificate.chain",
                Password,
                "",
                "The https listener's certificate chain, inline PEM (leaf first)",
            ))
            .define(key("ssl.truststore.type", String, "PEM", "Format of the truststore: PEM"))
            .define(key(
                "ssl.truststore.location",
                String,
                "",
                "PEM file of the CAs trusted for client certificates and for forwarding to the leader",
            ))
            .define(key("ssl.truststore.certificates", Password, "", "Trusted CA certificates, inline PEM"))
            .define(
                key(
                    "ssl.client.auth",
                    String,
                    "none",
                    "Client certificates on https listeners: none, requested, required",
                )
                .validator(sluice_api::Validator::OneOf(vec!["none", "requested", "required"])),
            )
            .define(
                key(
                    "rest.auth.type",
                    String,
                    "none",
                    "REST authentication: none, basic or bearer (GET /health stays open)",
                )
                .validator(sluice_api::Validator::OneOf(vec!["none", "basic", "bearer"])),
            )
            .define(key(
                "rest.auth.basic.users",
                Password,
                "",
                "With rest.auth.type=basic: accepted user:password pairs, comma-separated",
            ))
            .define(key(
                "rest.auth.bearer.tokens",
                Password,
                "",
                "With rest.auth.type=bearer: accepted tokens, comma-separated",
            ))
            .define(key("key.converter", Class, "org.apache.kafka.connect.json.JsonConverter", "Default key converter"))
            .define(key(
                "value.converter",
                Class,
                "org.apache.kafka.connect.json.JsonConverter",
                "Default value converter",
            ))
            .define(
                key(
                    "offset.flush.interval.ms",
                    Long,
                    "60000",
                    "How often source offsets and sink consumer offsets are committed",
                )
                .validator(Validator::at_least(1)),
            )
            .define(key(
                "offset.flush.timeout.ms",
                Long,
                "5000",
                "How long an offset flush may wait for outstanding records",
            ))
            .define(key(
                "task.shutdown.graceful.timeout.ms",
                Long,
                "5000",
                "How long tasks get to stop, flush and commit on shutdown",
            ))
            .define(
                key(
                    "exactly.once.source.support",
                    String,
                    "disabled",
                    "Exactly-once source support (distributed mode)",
                )
                .validator(Validator::OneOf(vec!["disabled", "preparing", "enabled"])),
            )
            .define(key(
                "topic.tracking.enable",
                Boolean,
                "true",
                "Record the topics each connector uses (GET /connectors/{c}/topics)",
            ))
            .define(key("topic.tracking.allow.reset", Boolean, "true", "Allow PUT /connectors/{c}/topics/reset"))
            .define(key("session.timeout.ms", Int, "10000", "Group session timeout"))
            .define(key("rebalance.timeout.ms", Int, "60000", "How long members get to rejoin during a rebalance"))
            .define(key("heartbeat.interval.ms", Int, "3000", "Group heartbeat interval"))
            .define(key(
                "scheduled.rebalance.max.delay.ms",
                Int,
                "5000",
                "How long the work of a departed worker waits before it is reassigned (Kafka Connect: 300000)",
            ))
            .define(
                key(
                    "task.buffer.max.bytes",
                    Long,
                    "33554432",
                    "Most bytes a source task may have in flight to the broker, and a sink task may hold in one batch",
                )
                .validator(Validator::at_least(1024)),
            )
    }

    /// Parses a worker properties map.
    pub fn parse(config: &ConfigMap) -> Result<WorkerConfig, ConfigErrors> {
        let def = Self::def();
        for unknown in def.unknown_keys(config) {
            let passthrough = [
                "producer.",
                "consumer.",
                "admin.",
                "key.converter.",
                "value.converter.",
                "header.converter.",
                "listeners.https.",
            ]
            .iter()
            .any(|p| unknown.starts_with(p));
            if !passthrough {
                tracing::warn!(key = unknown, "unknown worker config key, ignored");
            }
        }
        Ok(WorkerConfig { parsed: def.parse(config)? })
    }

    /// The parsed values.
    pub fn parsed(&self) -> &ParsedConfig {
        &self.parsed
    }
    /// `bootstrap.servers` as librdkafka wants it.
    pub fn bootstrap_servers(&self) -> String {
        self.parsed.list("bootstrap.servers").join(",")
    }
    /// `group.id`.
    pub fn group_id(&self) -> String {
        self.parsed.string("group.id")
    }
    /// Whether `exactly.once.source.support=enabled` (it applies to distributed workers only).
    pub fn exactly_once_source_enabled(&self) -> bool {
        self.parsed.string("exactly.once.source.support").eq_ignore_ascii_case("enabled")
    }
    /// `topic.tracking.enable`.
    pub fn topic_tracking(&self) -> bool {
        self.parsed.boolean("topic.tracking.enable")
    }
    /// `topic.tracking.allow.reset`.
    pub fn topic_tracking_reset(&self) -> bool {
        self.parsed.boolean("topic.tracking.allow.reset")
    }
    /// `offset.storage.topic`.
    pub fn offset_topic(&self) -> String {
        self.parsed.string("offset.storage.topic")
    }
    /// `listeners`.
    pub fn listeners(&self) -> Vec<String> {
        self.parsed.list("listeners")
    }
    /// `offset.storage.file.filename`, when set.
    pub fn offset_file(&self) -> Option<String> {
        self.parsed.non_empty_string("offset.storage.file.filename")
    }
    /// `offset.flush.interval.ms`.
    pub fn offset_flush_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed.long("offset.flush.interval.ms").max(1) as u64)
    }
    /// `task.shutdown.graceful.timeout.ms`.
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.parsed.long("task.shutdown.graceful.timeout.ms").max(0) as u64)
    }
    /// `task.buffer.max.bytes`.
    pub fn task_buffer_max_bytes(&self) -> usize {
        usize::try_from(self.parsed.long("task.buffer.max.bytes")).unwrap_or(usize::MAX)
    }
    /// Client overrides under `producer.`, `consumer.` or `admin.`.
    pub fn client_overrides(&self, prefix: &str) -> ConfigMap {
        self.parsed.originals_with_prefix(prefix)
    }
    /// The listener other workers use: the first whose scheme is `rest.advertised.listener`, else
    /// the first.
    pub fn advertised_listener(&self) -> String {
        let listeners = self.listeners();
        let wanted = self.parsed.string("rest.advertised.listener").to_ascii_lowercase();
        listeners
            .iter()
            .find(|l| !wanted.is_empty() && l.to_ascii_lowercase().starts_with(&format!("{wanted}://")))
            .or_else(|| listeners.first())
            .cloned()
            .unwrap_or_else(|| "http://0.0.0.0:8083".into())
    }
    /// `http` or `https`: the scheme of [`Self::advertised_listener`].
    pub fn rest_scheme(&self) -> &'static str {
        if self.advertised_listener().to_ascii_lowercase().starts_with("https://") {
            "https"
        } else {
            "http"
        }
    }
    /// The worker id: advertised host and port of the REST listener (`bound_port`: the port the
    /// advertised listener is bound to).
    pub fn worker_id(&self, bound_port: u16) -> String {
        let host = self.parsed.non_empty_string("rest.advertised.host.name").unwrap_or_else(|| {
            Some(self.advertised_listener())
                .as_deref()
                .and_then(|l| l.split("://").nth(1))
                .and_then(|hp| hp.rsplit_once(':').map(|(h, _)| h.to_string()))
                .filter(|h| !h.is_empty() && h != "0.0.0.0")
                .unwrap_or_else(|| "127.0.0.1".into())
        });
        let port = match self.parsed.int("rest.advertised.port") {
            p if p > 0 => p as u16,
            _ => bound_port,
        };
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let config: ConfigMap = [
            ("bootstrap.servers", "127.0.0.1:1234, 127.0.0.1:5678"),
            ("producer.linger.ms", "7"),
            ("offset.flush.interval.ms", "1000"),
            ("listeners", "http://127.0.0.1:18083"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let w = WorkerConfig::parse(&config).expect("valid");
        assert_eq!(w.bootstrap_servers(), "127.0.0.1:1234,127.0.0.1:5678");
        assert_eq!(w.client_overrides("producer.")["linger.ms"], "7");
        assert_eq!(w.offset_flush_interval().as_millis(), 1000);
        assert_eq!(w.worker_id(18083), "127.0.0.1:18083");
        assert_eq!(w.rest_scheme(), "http");
        let both: ConfigMap =
            [("listeners", "http://0.0.0.0:8083,https://localhost:8443"), ("rest.advertised.listener", "https")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let both = WorkerConfig::parse(&both).expect("valid");
        assert_eq!(both.advertised_listener(), "https://localhost:8443");
        assert_eq!((both.rest_scheme(), both.worker_id(8443).as_str()), ("https", "localhost:8443"));
        assert_eq!(w.group_id(), "connect-cluster");
        let bad: ConfigMap = [("offset.flush.interval.ms".to_string(), "soon".to_string())].into_iter().collect();
        assert_eq!(WorkerConfig::parse(&bad).expect_err("bad").0[0].key, "offset.flush.interval.ms");
    }
}
