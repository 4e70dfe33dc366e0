//! Debezium's MySQL connector keys, parsed and checked without touching the database.

use regex::Regex;
use sluice_api::{ConfigDef, ConfigError, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot when there is no offset, then stream.
    Initial,
    /// Snapshot when there is no offset, then stop.
    InitialOnly,
    /// Schema only (no rows), then stream from the current position (`schema_only` is the old name).
    NoData,
    /// As `initial`, and also when the stored binlog position is no longer on the server.
    WhenNeeded,
    /// Never snapshot: stream from the stored position or the current end of the binlog.
    Never,
    /// As `initial`, and rebuild a missing or empty schema history topic from the current table
    /// definitions at the stored position (`schema_only_recovery` is the old name).
    Recovery,
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// Connect `Decimal` (bytes).
    Precise,
    /// FLOAT64.
    Double,
    /// The decimal's text.
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMode {
    /// Debezium's `io.debezium.time.*` types, microseconds where the column has them.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's `Date`, `Time`, `Timestamp` (milliseconds).
    Connect,
}

/// `bigint.unsigned.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BigintUnsignedMode {
    /// INT64 (values above 2^63-1 wrap, as Debezium).
    Long,
    /// Connect `Decimal` with scale 0.
    Precise,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryMode {
    /// BYTES.
    Bytes,
    /// Base64 text.
    Base64,
    /// URL-safe base64 text.
    Base64UrlSafe,
    /// Lower-case hex text.
    Hex,
}

/// The operations that can be skipped (`skipped.operations`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// `c`.
    pub create: bool,
    /// `u`.
    pub update: bool,
    /// `d`.
    pub delete: bool,
    /// `t`.
    pub truncate: bool,
}

/// Anchored include/exclude filters (`*.include.list` / `*.exclude.list`).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<Vec<Regex>>,
    exclude: Vec<Regex>,
}

impl Filter {
    /// Whether `name` passes.
    pub fn matches(&self, name: &str) -> bool {
        let included = self.include.as_ref().is_none_or(|inc| inc.iter().any(|r| r.is_match(name)));
        included && !self.exclude.iter().any(|r| r.is_match(name))
    }

    /// Whether an include list is set.
    pub fn has_include(&self) -> bool {
        self.include.is_some()
    }
}

/// A Debezium column shaping rule for character columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `column.mask.with.<N>.chars`: the value becomes N asterisks.
    Mask(usize),
    /// `column.truncate.to.<N>.chars`: the value is cut to its first N characters.
    Truncate(usize),
}

/// The shaping rules of a config: `column.mask.with.<N>.chars` and `column.truncate.to.<N>.chars`,
/// each a list of anchored regular expressions on `db.table.column`.
fn column_shapes(config: &ConfigMap, errors: &mut ConfigErrors) -> Vec<(Shape, Vec<Regex>)> {
    let mut out = Vec::new();
    for (key, value) in config {
        let rule = if let Some(n) = key.strip_prefix("column.mask.with.").and_then(|r| r.strip_suffix(".chars")) {
            n.parse().ok().map(Shape::Mask)
        } else if let Some(n) = key.strip_prefix("column.truncate.to.").and_then(|r| r.strip_suffix(".chars")) {
            n.parse().ok().map(Shape::Truncate)
        } else {
            continue;
        };
        let Some(rule) = rule else {
            errors.0.push(ConfigError::new(
                key,
                "the length in the key must be a whole number of characters, e.g. column.mask.with.8.chars",
            ));
            continue;
        };
        if let Err(e) = check_regex_list(value) {
            errors.0.push(ConfigError::new(key, e));
            continue;
        }
        out.push((rule, regex_list(&split_list(value))));
    }
    out
}

/// The parsed connector config.
#[derive(Debug, Clone)]
pub struct MySqlConfig {
    /// `database.hostname`.
    pub hostname: String,
    /// `database.port`.
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: String,
    /// `database.server.id`.
    pub server_id: u32,
    /// `topic.prefix`.
    pub topic_prefix: String,
    /// `database.include.list` / `database.exclude.list`.
    pub databases: Filter,
    /// `table.include.list` / `table.exclude.list` on `db.table`.
    pub tables: Filter,
    /// `column.include.list` / `column.exclude.list` on `db.table.column`.
    pub columns: Filter,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.fetch.size`: rows per snapshot chunk.
    pub snapshot_fetch_size: usize,
    /// `snapshot.max.threads`: tables read at once, each on its own connection.
    pub snapshot_threads: usize,
    /// `include.schema.changes`.
    pub include_schema_changes: bool,
    /// `tombstones.on.delete`.
    pub tombstones_on_delete: bool,
    /// `skipped.operations`.
    pub skipped: Skipped,
    /// `skip.messages.without.change`: an update that changes no captured column is not published.
    pub skip_unchanged: bool,
    /// `decimal.handling.mode`.
    pub decimal_mode: DecimalMode,
    /// `time.precision.mode`.
    pub time_mode: TimeMode,
    /// `bigint.unsigned.handling.mode`.
    pub bigint_unsigned_mode: BigintUnsignedMode,
    /// `binary.handling.mode`.
    pub binary_mode: BinaryMode,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval_ms: u64,
    /// `topic.heartbeat.prefix`.
    pub heartbeat_topic_prefix: String,
    /// `gtid.positioning.enabled=false`: resume MariaDB by binlog file and position even when the
    /// offset holds a GTID state.
    pub no_gtid_positioning: bool,
    /// `schema.history.internal.kafka.topic`: where DDL and the table definitions it leaves are
    /// recorded with their binlog positions (empty: no history topic).
    pub history_topic: String,
    /// `column.mask.with.<N>.chars` / `column.truncate.to.<N>.chars`, in the order found.
    pub column_shapes: Vec<(Shape, Vec<Regex>)>,
    /// `provide.transaction.metadata`: the topic of BEGIN/END events (`<topic.prefix>.<topic.transaction>`).
    pub transaction_topic: Option<String>,
    /// `max.batch.size`: most records one poll returns.
    pub max_batch_size: usize,
    /// `max.queue.size`: most records read ahead of the runtime.
    pub max_queue_size: usize,
    /// `max.queue.size.in.bytes`: most bytes read ahead (0 = no byte bound beyond our default).
    pub max_queue_bytes: usize,
    /// `connect.timeout.ms`.
    pub connect_timeout_ms: u64,
    /// `database.ssl.mode`.
    pub ssl_mode: SslMode,
    /// `database.ssl.truststore`: PEM file of the CAs to trust (instead of the system's).
    pub ssl_truststore: Option<String>,
    /// `database.ssl.keystore`: PEM file with the client's private key and certificate chain.
    pub ssl_keystore: Option<String>,
}

/// `database.ssl.mode`, as Debezium's (MySQL Connector/J's `sslMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connections.
    Disabled,
    /// TLS when the server offers it, certificate unchecked; plain otherwise (the default).
    Preferred,
    /// TLS or fail; certificate unchecked.
    Required,
    /// TLS with the certificate checked against the trusted CAs, not the host name.
    VerifyCa,
    /// TLS with the certificate and the host name checked.
    VerifyIdentity,
}

/// Byte bound of the read-ahead queue when `max.queue.size.in.bytes` is 0.
pub const DEFAULT_QUEUE_BYTES: usize = 32 * 1024 * 1024;

fn check_regex_list(raw: &str) -> Result<(), String> {
    for item in split_list(raw) {
        Regex::new(&format!("^(?:{item})$")).map_err(|e| format!("'{item}' is not a valid regular expression: {e}"))?;
    }
    Ok(())
}

fn check_skipped(raw: &str) -> Result<(), String> {
    for item in split_list(raw) {
        if !matches!(item.as_str(), "c" | "u" | "d" | "t" | "none") {
            return Err(format!("'{item}' is not an operation; use c, u, d, t or none"));
        }
    }
    Ok(())
}

/// Splits a comma-separated list, trimming items and dropping empty ones.
fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn regex_list(items: &[String]) -> Vec<Regex> {
    // Validated by check_regex_list; an invalid item is dropped rather than panicking.
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .filter_map(|i| Regex::new(&format!("^(?:{i})$")).ok())
        .collect()
}

impl MySqlConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        let key = |name: &str, t: ConfigType, group: &str| ConfigKey::new(name, t).group(group);
        ConfigDef::new()
            .define(
                key("database.hostname", ConfigType::String, "Connection")
                    .importance(Importance::High)
                    .validator(Validator::NonEmpty)
                    .doc("Resolvable hostname or IP address of the database server."),
            )
            .define(
                key("database.port", ConfigType::Int, "Connection")
                    .default("3306")
                    .validator(Validator::between(1, 65535))
                    .importance(Importance::High)
                    .doc("Port of the database server."),
            )
            .define(
                key("database.user", ConfigType::String, "Connection")
                    .importance(Importance::High)
                    .validator(Validator::NonEmpty)
                    .doc("Name of the database user (needs SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT)."),
            )
            .define(
                key("database.password", ConfigType::Password, "Connection")
                    .default("")
                    .importance(Importance::High)
                    .doc("Password of the database user."),
            )
            .define(
                key("database.ssl.mode", ConfigType::String, "Connection")
                    .default("preferred")
                    .validator(Validator::OneOf(vec!["disabled", "preferred", "required", "verify_ca", "verify_identity"]))
                    .importance(Importance::Medium)
                    .doc("TLS to the database: disabled; preferred (TLS when offered, certificate unchecked); required (TLS, certificate unchecked); verify_ca (certificate checked against the trusted CAs); verify_identity (and the host name)."),
            )
            .define(
                key("database.ssl.truststore", ConfigType::String, "Connection")
                    .default("")
                    .importance(Importance::Medium)
                    .doc("PEM file of the CAs to trust for the database's certificate (instead of the system's). JKS and PKCS#12 stores are refused with the command that converts them."),
            )
            .define(
                key("database.ssl.truststore.password", ConfigType::Password, "Connection")
                    .default("")
                    .importance(Importance::Low)
                    .doc("Only for JKS/PKCS#12 stores, which are refused: a PEM truststore has no password."),
            )
            .define(
                key("database.ssl.keystore", ConfigType::String, "Connection")
                    .default("")
                    .importance(Importance::Medium)
                    .doc("PEM file with the client's private key (unencrypted) and certificate chain, for servers that require client certificates."),
            )
            .define(
                key("database.ssl.keystore.password", ConfigType::Password, "Connection")
                    .default("")
                    .importance(Importance::Low)
                    .doc("Refused: encrypted keys and JKS/PKCS#12 stores are not read; convert them to an unencrypted PEM file."),
            )
            .define(
                key("database.server.id", ConfigType::Long, "Connection")
                    .default("0")
                    .validator(Validator::between(0, f64::from(u32::MAX)))
                    .importance(Importance::High)
                    .doc("Numeric id of this replica; unique among the server's replicas. 0 derives one from topic.prefix."),
            )
            .define(
                key("connect.timeout.ms", ConfigType::Long, "Connection")
                    .default("30000")
                    .validator(Validator::at_least(1))
                    .importance(Importance::Low)
                    .doc("How long to wait for a connection to the database."),
            )
            .define(
                key("topic.prefix", ConfigType::String, "Connector")
                    .importance(Importance::High)
                    .validator(Validator::Custom(|v| {
                        if v.is_empty() {
                            Err("String must be non-empty".into())
                        } else if !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                            Err("Topic prefix may contain only ASCII letters, digits, '.', '_' and '-'".into())
                        } else {
                            Ok(())
                        }
                    }))
                    .doc("Prefix of every topic this connector writes; names the logical server. Never change it."),
            )
            .define(regex_key("database.include.list", "Databases to capture (anchored regular expressions)."))
            .define(regex_key("database.exclude.list", "Databases not to capture."))
            .define(regex_key("table.include.list", "Tables to capture, as db.table (anchored regular expressions)."))
            .define(regex_key("table.exclude.list", "Tables not to capture, as db.table."))
            .define(regex_key("column.include.list", "Columns to capture, as db.table.column."))
            .define(regex_key("column.exclude.list", "Columns not to capture, as db.table.column."))
            .define(
                key("snapshot.mode", ConfigType::String, "Snapshot")
                    .default("initial")
                    .validator(Validator::OneOf(vec![
                        "initial",
                        "initial_only",
                        "no_data",
                        "schema_only",
                        "when_needed",
                        "never",
                        "recovery",
                        "schema_only_recovery",
                    ]))
                    .importance(Importance::Low)
                    .doc("When to take a snapshot of the captured tables."),
            )
            .define(
                key("snapshot.fetch.size", ConfigType::Int, "Snapshot")
                    .default("10000")
                    .validator(Validator::at_least(1))
                    .importance(Importance::Medium)
                    .doc("Rows per snapshot chunk (the snapshot resumes after the last completed row)."),
            )
            .define(
                key("snapshot.max.threads", ConfigType::Int, "Snapshot")
                    .default("1")
                    .validator(Validator::at_least(1))
                    .importance(Importance::Medium)
                    .doc("Tables the snapshot reads at once, each on its own connection; above 1, the connections start their consistent snapshots under a brief global read lock (FLUSH TABLES WITH READ LOCK, needs RELOAD)."),
            )
            .define(bool_key("include.schema.changes", "true", "Whether to publish DDL on the <topic.prefix> topic."))
            .define(bool_key("tombstones.on.delete", "true", "Whether a delete event is followed by a tombstone."))
            .define(bool_key(
                "skip.messages.without.change",
                "false",
                "Skip an update that changes none of the captured columns (column.include.list / column.exclude.list).",
            ))
            .define(
                key("skipped.operations", ConfigType::List, "Events")
                    .default("t")
                    .validator(Validator::Custom(check_skipped))
                    .importance(Importance::Low)
                    .doc("Operations not to publish: c, u, d, t, or none."),
            )
            .define(
                key("decimal.handling.mode", ConfigType::String, "Types")
                    .default("precise")
                    .validator(Validator::OneOf(vec!["precise", "double", "string"]))
                    .importance(Importance::Medium)
                    .doc("How DECIMAL and NUMERIC columns are represented."),
            )
            .define(
                key("time.precision.mode", ConfigType::String, "Types")
                    .default("adaptive_time_microseconds")
                    .validator(Validator::OneOf(vec!["adaptive_time_microseconds", "connect"]))
                    .importance(Importance::Medium)
                    .doc("How temporal columns are represented."),
            )
            .define(
                key("bigint.unsigned.handling.mode", ConfigType::String, "Types")
                    .default("long")
                    .validator(Validator::OneOf(vec!["long", "precise"]))
                    .importance(Importance::Medium)
                    .doc("How BIGINT UNSIGNED columns are represented."),
            )
            .define(
                key("binary.handling.mode", ConfigType::String, "Types")
                    .default("bytes")
                    .validator(Validator::OneOf(vec!["bytes", "base64", "base64-url-safe", "hex"]))
                    .importance(Importance::Low)
                    .doc("How binary columns are represented."),
            )
            .define(
                key("heartbeat.interval.ms", ConfigType::Int, "Events")
                    .default("0")
                    .validator(Validator::at_least(0))
                    .importance(Importance::Medium)
                    .doc("How often to emit a heartbeat record (0 = never)."),
            )
            .define(
                key("topic.heartbeat.prefix", ConfigType::String, "Events")
                    .default("__debezium-heartbeat")
                    .importance(Importance::Low)
                    .doc("Prefix of the heartbeat topic."),
            )
            .define(
                key("max.batch.size", ConfigType::Int, "Queue")
                    .default("2048")
                    .validator(Validator::at_least(1))
                    .importance(Importance::Medium)
                    .doc("Most events one poll returns."),
            )
            .define(
                key("max.queue.size", ConfigType::Int, "Queue")
                    .default("8192")
                    .validator(Validator::at_least(1))
                    .importance(Importance::Medium)
                    .doc("Most events read ahead of Kafka."),
            )
            .define(
                key("max.queue.size.in.bytes", ConfigType::Long, "Queue")
                    .default("0")
                    .validator(Validator::at_least(0))
                    .importance(Importance::Medium)
                    .doc("Most bytes read ahead of Kafka (0 = 32 MiB)."),
            )
            .define(
                key("schema.history.internal.kafka.topic", ConfigType::String, "History")
                    .default("")
                    .importance(Importance::Low)
                    .doc("The schema history topic: every DDL on a captured table with its binlog position and the table definitions it leaves (Debezium's records, tableChanges included). Rows are decoded with the definitions in force at their position when the server's table maps carry no column metadata (binlog_row_metadata not FULL). Created with 1 partition, cleanup.policy=delete and infinite retention."),
            )
            .define(
                key("schema.history.internal.kafka.bootstrap.servers", ConfigType::String, "History")
                    .default("")
                    .importance(Importance::Low)
                    .doc("Accepted for compatibility; the history topic is on the worker's Kafka cluster."),
            )
            .define(
                key("provide.transaction.metadata", ConfigType::Boolean, "Events")
                    .default("false")
                    .importance(Importance::Low)
                    .doc("BEGIN and END events of each transaction on <topic.prefix>.<topic.transaction>, and a transaction block {id, total_order, data_collection_order} in each change event."),
            )
            .define(
                key("gtid.positioning.enabled", ConfigType::Boolean, "Binlog")
                    .default("true")
                    .importance(Importance::Low)
                    .doc("MariaDB: resume from the GTID state stored in the offset (survives a failover to another server of the replication group); false: from the binlog file and position."),
            )
            .define(
                key("topic.transaction", ConfigType::String, "Events")
                    .default("transaction")
                    .importance(Importance::Low)
                    .doc("Suffix of the transaction-metadata topic: <topic.prefix>.<topic.transaction>."),
            )
    }

    /// Parses and validates; every problem is reported at once.
    pub fn parse(config: &ConfigMap) -> Result<MySqlConfig, ConfigErrors> {
        let parsed = Self::def().parse(config)?;
        let mut errors = ConfigErrors::default();
        for (include, exclude) in [
            ("database.include.list", "database.exclude.list"),
            ("table.include.list", "table.exclude.list"),
            ("column.include.list", "column.exclude.list"),
        ] {
            if !parsed.list(include).is_empty() && !parsed.list(exclude).is_empty() {
                errors.0.push(ConfigError::new(exclude, format!("{include} and {exclude} cannot both be set")));
            }
        }
        let column_shapes = column_shapes(config, &mut errors);
        for store in ["database.ssl.truststore", "database.ssl.keystore"] {
            let path = parsed.string(store);
            let password = parsed.string(&format!("{store}.password"));
            let binary = [".jks", ".p12", ".pfx", ".keystore"].iter().any(|e| path.to_ascii_lowercase().ends_with(e));
            if binary || !password.is_empty() {
                let convert = if store.ends_with("truststore") {
                    "keytool -exportcert -rfc -alias <alias> -keystore <store> > ca.pem"
                } else {
                    "openssl pkcs12 -in <store>.p12 -nodes > client.pem (keytool -importkeystore converts JKS to PKCS#12 first)"
                };
                let key = if binary { store.to_string() } else { format!("{store}.password") };
                let message = format!(
                    "{key}: only unencrypted PEM files are read (no JKS or PKCS#12 store, no password); convert it: {convert}"
                );
                errors.0.push(ConfigError::new(key, message));
            }
        }
        errors.into_result()?;
        let filter = |include: &str, exclude: &str| Filter {
            include: Some(parsed.list(include)).filter(|l| !l.is_empty()).map(|l| regex_list(&l)),
            exclude: regex_list(&parsed.list(exclude)),
        };
        let topic_prefix = parsed.string("topic.prefix");
        let mut server_id = parsed.long("database.server.id") as u32;
        if server_id == 0 {
            // Debezium 1.x picked a random id in 5400..6400; derive one from the prefix so it is stable.
            let h = topic_prefix.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            server_id = 5400 + h % 1000;
        }
        let mut skipped = Skipped::default();
        for op in parsed.list("skipped.operations") {
            match op.as_str() {
                "c" => skipped.create = true,
                "u" => skipped.update = true,
                "d" => skipped.delete = true,
                "t" => skipped.truncate = true,
                _ => {}
            }
        }
        let lower = |k: &str| parsed.string(k).trim().to_ascii_lowercase();
        Ok(MySqlConfig {
            hostname: parsed.string("database.hostname"),
            port: parsed.int("database.port") as u16,
            user: parsed.string("database.user"),
            password: parsed.string("database.password"),
            server_id,
            databases: filter("database.include.list", "database.exclude.list"),
            tables: filter("table.include.list", "table.exclude.list"),
            columns: filter("column.include.list", "column.exclude.list"),
            topic_prefix,
            snapshot_mode: match lower("snapshot.mode").as_str() {
                "initial_only" => SnapshotMode::InitialOnly,
                "no_data" | "schema_only" => SnapshotMode::NoData,
                "when_needed" => SnapshotMode::WhenNeeded,
                "never" => SnapshotMode::Never,
                "recovery" | "schema_only_recovery" => SnapshotMode::Recovery,
                _ => SnapshotMode::Initial,
            },
            snapshot_fetch_size: parsed.int("snapshot.fetch.size") as usize,
            snapshot_threads: parsed.int("snapshot.max.threads").clamp(1, 64) as usize,
            include_schema_changes: parsed.boolean("include.schema.changes"),
            tombstones_on_delete: parsed.boolean("tombstones.on.delete"),
            skipped,
            decimal_mode: match lower("decimal.handling.mode").as_str() {
                "double" => DecimalMode::Double,
                "string" => DecimalMode::String,
                _ => DecimalMode::Precise,
            },
            time_mode: match lower("time.precision.mode").as_str() {
                "connect" => TimeMode::Connect,
                _ => TimeMode::AdaptiveTimeMicroseconds,
            },
            bigint_unsigned_mode: match lower("bigint.unsigned.handling.mode").as_str() {
                "precise" => BigintUnsignedMode::Precise,
                _ => BigintUnsignedMode::Long,
            },
            binary_mode: match lower("binary.handling.mode").as_str() {
                "base64" => BinaryMode::Base64,
                "base64-url-safe" => BinaryMode::Base64UrlSafe,
                "hex" => BinaryMode::Hex,
                _ => BinaryMode::Bytes,
            },
            heartbeat_interval_ms: parsed.int("heartbeat.interval.ms") as u64,
            heartbeat_topic_prefix: parsed.string("topic.heartbeat.prefix"),
            no_gtid_positioning: !parsed.boolean("gtid.positioning.enabled"),
            history_topic: parsed.string("schema.history.internal.kafka.topic").trim().to_string(),
            skip_unchanged: parsed.boolean("skip.messages.without.change"),
            column_shapes,
            transaction_topic: parsed
                .boolean("provide.transaction.metadata")
                .then(|| format!("{}.{}", parsed.string("topic.prefix"), parsed.string("topic.transaction"))),
            max_batch_size: parsed.int("max.batch.size") as usize,
            max_queue_size: parsed.int("max.queue.size") as usize,
            max_queue_bytes: match parsed.long("max.queue.size.in.bytes") {
                0 => DEFAULT_QUEUE_BYTES,
                n => n as usize,
            },
            connect_timeout_ms: parsed.long("connect.timeout.ms") as u64,
            ssl_mode: match lower("database.ssl.mode").as_str() {
                "disabled" => SslMode::Disabled,
                "required" => SslMode::Required,
                "verify_ca" => SslMode::VerifyCa,
                "verify_identity" => SslMode::VerifyIdentity,
                _ => SslMode::Preferred,
            },
            ssl_truststore: Some(parsed.string("database.ssl.truststore")).filter(|p| !p.trim().is_empty()),
            ssl_keystore: Some(parsed.string("database.ssl.keystore")).filter(|p| !p.trim().is_empty()),
        })
    }

    /// Whether a database is captured.
    pub fn captures_database(&self, db: &str) -> bool {
        !is_system_database(db) && self.databases.matches(db)
    }

    /// Whether a table is captured.
    pub fn captures_table(&self, db: &str, table: &str) -> bool {
        self.captures_database(db) && self.tables.matches(&format!("{db}.{table}"))
    }

    /// Whether a column is captured.
    pub fn captures_column(&self, db: &str, table: &str, column: &str) -> bool {
        self.columns.matches(&format!("{db}.{table}.{column}"))
    }
}

/// MySQL's own schemas, never captured (`table.ignore.builtin`).
pub fn is_system_database(db: &str) -> bool {
    matches!(db, "mysql" | "information_schema" | "performance_schema" | "sys")
}

fn regex_key(name: &str, doc: &str) -> ConfigKey {
    ConfigKey::new(name, ConfigType::List)
        .group("Filters")
        .default("")
        .validator(Validator::Custom(check_regex_list))
        .importance(Importance::High)
        .doc(doc)
}

fn bool_key(name: &str, default: &str, doc: &str) -> ConfigKey {
    ConfigKey::new(name, ConfigType::Boolean).group("Events").default(default).importance(Importance::Low).doc(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        let mut c: ConfigMap = [("database.hostname", "db"), ("database.user", "u"), ("topic.prefix", "shop")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in pairs {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }

    #[test]
    fn columns_are_masked_and_truncated_as_debezium() {
        use super::super::schema::{Column, ColumnKind, Table};
        use sluice_api::Value;
        let c = MySqlConfig::parse(&config(&[
            ("column.mask.with.5.chars", "shop\\.customers\\.(card|ssn)"),
            ("column.truncate.to.3.chars", "shop.customers.note"),
        ]))
        .expect("valid");
        let text = |name: &str| Column {
            name: name.into(),
            kind: ColumnKind::Text { latin1: false },
            nullable: true,
            captured: true,
        };
        let table =
            Table::new("shop", "customers", vec![text("id"), text("card"), text("ssn"), text("note")], vec![0], &c);
        let mut row = vec![
            Value::String("7".into()),
            Value::String("4111-1111".into()),
            Value::Null,
            Value::String("héllo".into()),
        ];
        table.shape(&mut row);
        assert_eq!(
            row,
            [Value::String("7".into()), Value::String("*****".into()), Value::Null, Value::String("hél".into())]
        );
        let bad = MySqlConfig::parse(&config(&[("column.mask.with.x.chars", "a.b.c")])).expect_err("length");
        assert!(!bad.for_key("column.mask.with.x.chars").is_empty());
        let bad = MySqlConfig::parse(&config(&[("column.truncate.to.2.chars", "a.(b")])).expect_err("regex");
        assert!(bad.for_key("column.truncate.to.2.chars")[0].contains("not a valid regular expression"));
    }

    #[test]
    fn filters_are_anchored_regexes() {
        let c = MySqlConfig::parse(&config(&[
            ("database.include.list", "shop,crm_.*"),
            ("table.exclude.list", "shop\\.audit.*"),
        ]))
        .expect("valid");
        assert!(c.captures_database("shop"));
        assert!(c.captures_database("crm_eu"));
        assert!(!c.captures_database("shop2"), "anchored: shop does not match shop2");
        assert!(!c.captures_database("mysql"), "system databases are never captured");
        assert!(c.captures_table("shop", "orders"));
        assert!(!c.captures_table("shop", "audit_log"));
        assert!(!c.captures_table("other", "orders"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let errors = MySqlConfig::parse(&config(&[
            ("snapshot.mode", "sometimes"),
            ("database.port", "0"),
            ("table.include.list", "a("),
            ("skipped.operations", "x"),
        ]))
        .expect_err("invalid");
        for key in ["snapshot.mode", "database.port", "table.include.list", "skipped.operations"] {
            assert!(!errors.for_key(key).is_empty(), "{key}: {errors:?}");
        }
        let both = MySqlConfig::parse(&config(&[("table.include.list", "a.b"), ("table.exclude.list", "c.d")]))
            .expect_err("exclusive");
        assert!(both.for_key("table.exclude.list")[0].contains("cannot both be set"));
    }

    #[test]
    fn defaults_follow_debezium() {
        let c = MySqlConfig::parse(&config(&[])).expect("valid");
        assert_eq!(c.port, 3306);
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert!(c.skipped.truncate && !c.skipped.create);
        assert!(c.tombstones_on_delete);
        assert_eq!((c.max_batch_size, c.max_queue_size), (2048, 8192));
        assert!((5400..6400).contains(&c.server_id));
        let legacy = MySqlConfig::parse(&config(&[("snapshot.mode", "schema_only")])).expect("valid");
        assert_eq!(legacy.snapshot_mode, SnapshotMode::NoData);
    }
}
