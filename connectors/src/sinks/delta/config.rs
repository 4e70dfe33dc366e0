//! The Delta Lake sink's keys: kafka-delta-ingest's options named in Connect style, plus the
//! S3 keys of Confluent's S3 sink. Parsed without I/O.

use std::collections::BTreeMap;

use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

use crate::sinks::parquet::{Codec, Extractor, NullValues, Zone};

/// The parsed config.
#[derive(Debug, Clone)]
pub struct DeltaSinkConfig {
    /// `delta.table.location`: the table URL, `${topic}` replaced by the record's topic.
    pub table_location: String,
    /// `delta.app.id`: prefix of the `txn` app ids (empty: the connector name).
    pub app_id: String,
    /// object_store options for the table's store (S3 keys and `delta.storage.*`).
    pub storage: BTreeMap<String, String>,
    /// `flush.size`: records per commit (`None`: no record limit).
    pub flush_size: Option<u64>,
    /// `flush.bytes`: encoded bytes per commit.
    pub flush_bytes: usize,
    /// `allowed.latency.ms`: a commit at most this long after the first uncommitted record.
    pub allowed_latency_ms: u64,
    /// `delta.target.file.size`: a data file is completed at this size within a commit.
    pub target_file_size: u64,
    /// `parquet.row.group.bytes`: a row group is written out at this size.
    pub row_group_bytes: usize,
    /// `delta.checkpoint.interval`: commits between checkpoints, set on tables this sink creates.
    pub checkpoint_interval: u32,
    /// `delta.partition.by`: partition columns of tables this sink creates.
    pub partition_by: Vec<String>,
    /// `timestamp.extractor` / `timestamp.field`: the time of derived date/hour columns.
    pub extractor: Extractor,
    /// `timezone` of the derived columns.
    pub zone: Zone,
    /// `parquet.codec`.
    pub codec: Codec,
    /// `parquet.dictionary=always`: a dictionary on every column (else learned, as the Parquet sink).
    pub dictionary_always: bool,
    /// `behavior.on.null.values`.
    pub null_values: NullValues,
    /// `delta.schema.evolution`: add new nullable columns to the table.
    pub schema_evolution: bool,
    /// `delta.commit.max.retries`: attempts of one commit against concurrent writers.
    pub max_retries: usize,
}

/// Columns a table may be partitioned by that are derived from the record's time when the
/// record has no field of that name.
pub const DERIVED: &[&str] = &["date", "year", "month", "day", "hour"];

fn check_location(v: &str) -> Result<(), String> {
    let v = v.trim();
    if ["s3://", "s3a://", "file:///", "/"].iter().any(|k| v.starts_with(k)) {
        Ok(())
    } else {
        Err(format!("{v}: expected s3://bucket/path/${{topic}}, file:///dir/${{topic}} or an absolute path"))
    }
}

fn check_endpoint(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() || v.starts_with("http://") || v.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{v}: the S3 endpoint is an http(s) URL; the table's place is delta.table.location"))
    }
}

/// The prefix of object_store options passed through as they are.
const STORAGE_PREFIX: &str = "delta.storage.";

impl DeltaSinkConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        let g = |k: ConfigKey, group: &str| k.group(group);
        crate::sinks::parquet::define_s3_keys(ConfigDef::new())
            .define(g(ConfigKey::new("delta.table.location", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::Custom(check_location))
                .doc("Table URL; ${topic} is replaced by the record's topic: s3://bucket/path/${topic}, file:///dir/${topic} or /dir/${topic}. A table that does not exist is created from the first record's schema."), "Table"))
            .define(g(ConfigKey::new("delta.app.id", ConfigType::String)
                .default("")
                .importance(Importance::Medium)
                .doc("The txn app id of partition p of topic t is <delta.app.id>-<t>-<p> (kafka-delta-ingest's app_id); empty: the connector name."), "Table"))
            .define(g(ConfigKey::new("delta.partition.by", ConfigType::List)
                .default("")
                .importance(Importance::High)
                .doc("Partition columns of a table this sink creates: value fields, or date (yyyy-MM-dd), year, month, day, hour derived from the record time (timestamp.extractor) when the value has no such field."), "Table"))
            .define(g(ConfigKey::new("delta.checkpoint.interval", ConfigType::Int)
                .default("10")
                .importance(Importance::Low)
                .validator(Validator::at_least(1))
                .doc("A checkpoint is written every this many commits (delta.checkpointInterval of tables this sink creates; kafka-delta-ingest --checkpoints writes one every 10)."), "Table"))
            .define(g(ConfigKey::new("delta.schema.evolution", ConfigType::Boolean)
                .default("true")
                .importance(Importance::Medium)
                .doc("A record with new fields adds them to the table as nullable columns; false: such a record fails the task. A field whose type differs from its column always fails the task, naming the column."), "Table"))
            .define(g(ConfigKey::new("delta.commit.max.retries", ConfigType::Int)
                .default("15")
                .importance(Importance::Low)
                .validator(Validator::at_least(0))
                .doc("Attempts of one commit when other writers commit first (their appends do not conflict with ours)."), "Table"))
            .define(g(ConfigKey::new("flush.size", ConfigType::Long)
                .default("-1")
                .importance(Importance::High)
                .doc("Records per commit; -1: no record limit (flush.bytes and allowed.latency.ms decide)."), "Commit"))
            .define(g(ConfigKey::new("flush.bytes", ConfigType::Long)
                .default("134217728")
                .importance(Importance::High)
                .validator(Validator::at_least(1024))
                .doc("Encoded bytes per commit (kafka-delta-ingest's min_bytes_per_file)."), "Commit"))
            .define(g(ConfigKey::new("allowed.latency.ms", ConfigType::Long)
                .default("300000")
                .importance(Importance::High)
                .validator(Validator::at_least(1))
                .doc("A commit at most this long after the first uncommitted record (kafka-delta-ingest's allowed_latency); checked on every batch, and every 100 ms while no records arrive."), "Commit"))
            .define(g(ConfigKey::new("delta.target.file.size", ConfigType::Long)
                .default("134217728")
                .importance(Importance::Medium)
                .validator(Validator::at_least(1024 * 1024))
                .doc("A data file is completed at this size and a new one started, within a commit."), "Commit"))
            .define(g(ConfigKey::new("parquet.row.group.bytes", ConfigType::Int)
                .default("16777216")
                .importance(Importance::Low)
                .validator(Validator::at_least(65536))
                .doc("A row group is written out when its data reaches this size: memory per open data file is about one row group and one upload part."), "Commit"))
            .define(g(ConfigKey::new("parquet.codec", ConfigType::String)
                .default("snappy")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["snappy", "zstd", "gzip", "none", "uncompressed"]))
                .doc("Compression of the data files."), "Commit"))
            .define(g(ConfigKey::new("parquet.dictionary", ConfigType::String)
                .default("auto")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["auto", "always"]))
                .doc("auto: a column whose values turned out (nearly) all distinct in a commit's data file is written without a dictionary in the next commits (every 16th tries again); always: every column gets a dictionary."), "Commit"))
            .define(g(ConfigKey::new("timestamp.extractor", ConfigType::String)
                .default("Record")
                .importance(Importance::Medium)
                .validator(Validator::Custom(Extractor::check_name))
                .doc("The time of derived partition columns: Record (the Kafka timestamp), RecordField (timestamp.field) or Wallclock."), "Partitioning"))
            .define(g(ConfigKey::new("timestamp.field", ConfigType::String)
                .default("timestamp")
                .importance(Importance::Medium)
                .doc("RecordField: the value field with the time (dotted path): Timestamp, int64 epoch milliseconds or an ISO-8601 string."), "Partitioning"))
            .define(g(ConfigKey::new("timezone", ConfigType::String)
                .default("UTC")
                .importance(Importance::Medium)
                .validator(Validator::Custom(|v| Zone::parse(v).map(|_| ())))
                .doc("Time zone of derived partition columns: UTC, a fixed offset such as +02:00, or a tz database name such as Europe/Paris."), "Partitioning"))
            .define(g(ConfigKey::new("behavior.on.null.values", ConfigType::String)
                .default("fail")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["fail", "ignore"]))
                .doc("What a tombstone does: fail the task, or be skipped."), "Commit"))
            .define(g(ConfigKey::new("store.url", ConfigType::String)
                .default("")
                .importance(Importance::High)
                .validator(Validator::Custom(check_endpoint))
                .doc("The S3 endpoint of s3:// tables (http://host:port for MinIO, SeaweedFS, Ceph...), as Confluent's S3 sink; empty: AWS."), "Storage"))
    }

    /// Parses and validates, returning every problem at once.
    pub fn parse(config: &ConfigMap) -> Result<DeltaSinkConfig, ConfigErrors> {
        let p = Self::def().parse(config)?;
        let mut errors = ConfigErrors::default();
        let location = p.string("delta.table.location").trim().to_string();
        let extractor = match Extractor::parse(&p.string("timestamp.extractor"), &p.string("timestamp.field")) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.extend(ConfigErrors::one("timestamp.extractor", e));
                None
            }
        };
        let key_id = p.string("aws.access.key.id");
        let secret = p.string("aws.secret.access.key");
        if key_id.is_empty() != secret.is_empty() {
            errors.extend(ConfigErrors::one(
                "aws.secret.access.key",
                "aws.access.key.id and aws.secret.access.key must be set together",
            ));
        }
        let endpoint = p.string("store.url").trim().trim_end_matches('/').to_string();
        let partition_by: Vec<String> =
            p.list("delta.partition.by").into_iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
        let (Some(extractor), true) = (extractor, errors.is_empty()) else {
            return Err(errors);
        };
        // object_store's option names (see AmazonS3ConfigKey); delta.storage.* overrides.
        let mut storage = BTreeMap::new();
        storage.insert("aws_region".to_string(), p.string("s3.region"));
        storage.insert(
            "aws_virtual_hosted_style_request".to_string(),
            (!p.boolean("s3.path.style.access.enabled")).to_string(),
        );
        if !endpoint.is_empty() {
            storage.insert("aws_allow_http".to_string(), endpoint.starts_with("http://").to_string());
            storage.insert("aws_endpoint".to_string(), endpoint);
        }
        if !key_id.is_empty() {
            storage.insert("aws_access_key_id".to_string(), key_id);
            storage.insert("aws_secret_access_key".to_string(), secret);
        }
        for (k, v) in config {
            if let Some(opt) = k.strip_prefix(STORAGE_PREFIX) {
                storage.insert(opt.to_ascii_lowercase(), v.clone());
            }
        }
        let flush_size = Some(p.long("flush.size")).filter(|v| *v > 0).map(|v| v as u64);
        Ok(DeltaSinkConfig {
            table_location: location,
            app_id: p.string("delta.app.id").trim().to_string(),
            storage,
            flush_size,
            flush_bytes: p.long("flush.bytes").max(1024) as usize,
            allowed_latency_ms: p.long("allowed.latency.ms").max(1) as u64,
            target_file_size: p.long("delta.target.file.size").max(1 << 20) as u64,
            row_group_bytes: p.int("parquet.row.group.bytes").max(65536) as usize,
            checkpoint_interval: p.int("delta.checkpoint.interval").max(1) as u32,
            partition_by,
            extractor,
            zone: Zone::parse(&p.string("timezone")).unwrap_or_default(),
            dictionary_always: p.string("parquet.dictionary").eq_ignore_ascii_case("always"),
            codec: match p.string("parquet.codec").to_ascii_lowercase().as_str() {
                "zstd" => Codec::Zstd,
                "gzip" => Codec::Gzip,
                "none" | "uncompressed" => Codec::None,
                _ => Codec::Snappy,
            },
            null_values: if p.string("behavior.on.null.values").eq_ignore_ascii_case("ignore") {
                NullValues::Ignore
            } else {
                NullValues::Fail
            },
            schema_evolution: p.boolean("delta.schema.evolution"),
            max_retries: p.int("delta.commit.max.retries").max(0) as usize,
        })
    }

    /// The table URL of a topic.
    pub fn table_url(&self, topic: &str) -> String {
        self.table_location.replace("${topic}", topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_s3_table_with_endpoint_and_passthrough() {
        let c = DeltaSinkConfig::parse(&m(&[
            ("delta.table.location", "s3://lake/tables/${topic}"),
            ("store.url", "http://127.0.0.1:8333/"),
            ("aws.access.key.id", "a"),
            ("aws.secret.access.key", "b"),
            ("delta.partition.by", "date, hour"),
            ("delta.storage.AWS_S3_ALLOW_UNSAFE_RENAME", "true"),
            ("flush.size", "500"),
        ]))
        .expect("valid");
        assert_eq!(c.table_url("orders"), "s3://lake/tables/orders");
        assert_eq!(c.storage.get("aws_endpoint").map(String::as_str), Some("http://127.0.0.1:8333"));
        assert_eq!(c.storage.get("aws_allow_http").map(String::as_str), Some("true"));
        assert_eq!(c.storage.get("aws_s3_allow_unsafe_rename").map(String::as_str), Some("true"));
        assert_eq!(c.partition_by, vec!["date", "hour"]);
        assert_eq!(c.flush_size, Some(500));
        assert_eq!(c.allowed_latency_ms, 300_000);
        assert_eq!(c.checkpoint_interval, 10);
    }

    #[test]
    fn every_problem_at_once() {
        let err = DeltaSinkConfig::parse(&m(&[
            ("delta.table.location", "relative/${topic}"),
            ("store.url", "s3://lake"),
            ("timestamp.extractor", "Sometimes"),
        ]))
        .expect_err("invalid");
        assert!(err.for_key("delta.table.location")[0].contains("expected s3://"), "{err:?}");
        assert!(err.for_key("store.url")[0].contains("http(s)"), "{err:?}");
        assert!(!err.for_key("timestamp.extractor").is_empty(), "{err:?}");
        let err = DeltaSinkConfig::parse(&m(&[("delta.table.location", "s3://l/t"), ("aws.access.key.id", "a")]))
            .expect_err("half the credentials");
        assert!(!err.for_key("aws.secret.access.key").is_empty(), "{err:?}");
        let err = DeltaSinkConfig::parse(&m(&[])).expect_err("no location");
        assert!(!err.for_key("delta.table.location").is_empty(), "{err:?}");
    }
}
