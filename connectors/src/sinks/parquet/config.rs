//! Confluent's S3 / HDFS sink keys (`io.confluent.connect.s3.S3SinkConnector` and the HDFS 2/3
//! sinks), parsed without I/O.

use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

use super::partitioner::{Extractor, PartitionerKind, Zone};

/// Where files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute path).
    Local(String),
    /// An S3 bucket, with an optional custom endpoint (`store.url`) and key prefix.
    S3 {
        /// `s3.bucket.name`.
        bucket: String,
        /// `store.url` when it is an http(s) endpoint (MinIO, SeaweedFS, Ceph...).
        endpoint: Option<String>,
        /// `s3.region`.
        region: String,
        /// `s3.path.style.access.enabled`.
        path_style: bool,
    },
    /// An HDFS namenode URL (`hdfs.url`).
    Hdfs(String),
}

/// `behavior.on.null.values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullValues {
    /// Fail the task, naming the record.
    Fail,
    /// Skip tombstones (their offsets still count as written).
    Ignore,
}

/// `parquet.codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Snappy (the default, as Confluent's).
    Snappy,
    /// Zstandard.
    Zstd,
    /// Gzip.
    Gzip,
    /// No compression.
    None,
}

impl Codec {
    /// The Parquet compression of this codec.
    pub fn compression(self) -> parquet::basic::Compression {
        use parquet::basic::{Compression, GzipLevel, ZstdLevel};
        match self {
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Codec::Gzip => Compression::GZIP(GzipLevel::default()),
            Codec::None => Compression::UNCOMPRESSED,
        }
    }
}

/// The parsed config.
#[derive(Debug, Clone)]
pub struct ParquetSinkConfig {
    /// Where files go.
    pub location: Location,
    /// `aws.access.key.id` / `aws.secret.access.key` (else the AWS_* environment).
    pub aws_credentials: Option<(String, String)>,
    /// `topics.dir`.
    pub topics_dir: String,
    /// `directory.delim`.
    pub directory_delim: String,
    /// `file.delim`.
    pub file_delim: String,
    /// `filename.offset.zero.pad.width`.
    pub offset_pad: usize,
    /// `parquet.codec`.
    pub codec: Codec,
    /// `parquet.dictionary`: `auto` (false) learns which columns a dictionary pays for;
    /// `always` (true) gives every column one, as Parquet writers do by default.
    pub dictionary_always: bool,
    /// `flush.size`: records per file.
    pub flush_size: u64,
    /// `rotate.interval.ms`: record-time span of a file.
    pub rotate_interval_ms: Option<i64>,
    /// `rotate.schedule.interval.ms`: wall-clock rotation, aligned to the time zone's midnight.
    pub rotate_schedule_ms: Option<i64>,
    /// `partitioner.class` and its keys.
    pub partitioner: PartitionerKind,
    /// `timestamp.extractor` (with `timestamp.field`).
    pub extractor: Extractor,
    /// `behavior.on.null.values`.
    pub null_values: NullValues,
    /// `partitioner.max.open.files`: open files per task before the largest is closed early.
    pub max_open_files: usize,
    /// `buffer.max.bytes`: bytes held by all open files of a task before the largest is closed early.
    pub buffer_max_bytes: usize,
    /// `parquet.row.group.bytes`: a row group is written out when it reaches this size.
    pub row_group_bytes: usize,
    /// `s3.part.size`: bytes per multipart part.
    pub part_size: usize,
    /// `s3.part.retries`: retries of a failed S3 request before the sink sees the error.
    pub s3_retries: usize,
    /// `s3.retry.backoff.ms`: the wait before the first retry (doubling after each).
    pub s3_retry_backoff_ms: u64,
}

const PARQUET_FORMATS: &[&str] = &[
    "io.confluent.connect.s3.format.parquet.ParquetFormat",
    "io.confluent.connect.hdfs.parquet.ParquetFormat",
    "io.confluent.connect.hdfs3.parquet.ParquetFormat",
    "io.confluent.connect.storage.format.parquet.ParquetFormat",
    "parquet",
    "ParquetFormat",
];

fn check_format(v: &str) -> Result<(), String> {
    if PARQUET_FORMATS.iter().any(|f| f.eq_ignore_ascii_case(v.trim())) {
        Ok(())
    } else {
        Err(format!(
            "only Parquet is written by this sink (io.confluent.connect.s3.format.parquet.ParquetFormat, io.confluent.connect.hdfs.parquet.ParquetFormat or parquet); {v} is not supported"
        ))
    }
}

/// The S3 region, URL style and credential keys the Parquet and Delta sinks share (Confluent's
/// names), in the "Storage" group.
pub(crate) fn define_s3_keys(def: ConfigDef) -> ConfigDef {
    let g = |k: ConfigKey| k.group("Storage");
    def.define(g(ConfigKey::new("s3.region", ConfigType::String)
        .default("us-west-2")
        .importance(Importance::Medium)
        .doc("S3 region.")))
        .define(g(ConfigKey::new("s3.path.style.access.enabled", ConfigType::Boolean)
            .default("true")
            .importance(Importance::Low)
            .doc("Path-style S3 URLs (http://endpoint/bucket/key), as MinIO and SeaweedFS need.")))
        .define(g(ConfigKey::new("aws.access.key.id", ConfigType::String)
            .default("")
            .importance(Importance::High)
            .doc("S3 access key; empty: the AWS_ACCESS_KEY_ID environment (or the instance's credentials).")))
        .define(g(ConfigKey::new("aws.secret.access.key", ConfigType::Password)
            .default("")
            .importance(Importance::High)
            .doc("S3 secret key; empty: the AWS_SECRET_ACCESS_KEY environment.")))
}

impl ParquetSinkConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        let g = |k: ConfigKey, group: &str| k.group(group);
        define_s3_keys(ConfigDef::new())
            .define(g(ConfigKey::new("store.url", ConfigType::String)
                .default("")
                .importance(Importance::High)
                .doc("Where files go when s3.bucket.name is not set: file:///path or /path (a local directory), s3://bucket[/prefix], hdfs://namenode:port. With s3.bucket.name set: the S3 endpoint URL (http://host:port), as Confluent's S3 sink."), "Storage"))
            .define(g(ConfigKey::new("s3.bucket.name", ConfigType::String)
                .default("")
                .importance(Importance::High)
                .doc("S3 bucket."), "Storage"))
            .define(g(ConfigKey::new("s3.part.size", ConfigType::Int)
                .default("26214400")
                .importance(Importance::High)
                .validator(Validator::between(5 * 1024 * 1024, i32::MAX))
                .doc("Bytes per multipart-upload part; a file smaller than this is sent in one conditional PUT."), "Storage"))
            .define(g(ConfigKey::new("s3.part.retries", ConfigType::Int)
                .default("3")
                .importance(Importance::Medium)
                .validator(Validator::at_least(0))
                .doc("Retries of a failed S3 request (as Confluent's S3 sink) before the sink sees the error; then the file's partition is read again from the file's first offset."), "Storage"))
            .define(g(ConfigKey::new("s3.retry.backoff.ms", ConfigType::Long)
                .default("200")
                .importance(Importance::Low)
                .validator(Validator::at_least(0))
                .doc("Wait before the first retry of a failed S3 request; each further retry waits up to twice as long (with jitter; at most 30 s, or this wait when it is longer)."), "Storage"))
            .define(g(ConfigKey::new("hdfs.url", ConfigType::String)
                .default("")
                .importance(Importance::High)
                .doc("HDFS namenode URL (hdfs://host:port, or viewfs://), as Confluent's HDFS sinks; a path after it is where topics.dir goes."), "Storage"))
            .define(g(ConfigKey::new("topics.dir", ConfigType::String)
                .default("topics")
                .importance(Importance::High)
                .doc("Top-level directory (key prefix) of the files."), "Storage"))
            .define(g(ConfigKey::new("directory.delim", ConfigType::String)
                .default("/")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["/"]))
                .doc("Directory delimiter (only / is supported)."), "Storage"))
            .define(g(ConfigKey::new("file.delim", ConfigType::String)
                .default("+")
                .importance(Importance::Low)
                .validator(Validator::NonEmpty)
                .doc("Between topic, partition and offset in file names."), "Storage"))
            .define(g(ConfigKey::new("filename.offset.zero.pad.width", ConfigType::Int)
                .default("10")
                .importance(Importance::Low)
                .validator(Validator::between(0, 19))
                .doc("Width the start offset in file names is zero-padded to."), "Storage"))
            .define(g(ConfigKey::new("format.class", ConfigType::Class)
                .default("io.confluent.connect.s3.format.parquet.ParquetFormat")
                .importance(Importance::High)
                .validator(Validator::Custom(check_format))
                .doc("Output format: Parquet (Confluent's S3 and HDFS ParquetFormat class names are accepted)."), "Format"))
            .define(g(ConfigKey::new("parquet.codec", ConfigType::String)
                .default("snappy")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["snappy", "zstd", "gzip", "none", "uncompressed"]))
                .doc("Parquet compression codec."), "Format"))
            .define(g(ConfigKey::new("parquet.dictionary", ConfigType::String)
                .default("auto")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["auto", "always"]))
                .doc("auto: a column whose values turned out (nearly) all distinct in a file is written without a dictionary in the topic's next files (every 16th file tries again); always: every column gets a dictionary, as Parquet writers do by default."), "Format"))
            .define(g(ConfigKey::new("parquet.row.group.bytes", ConfigType::Int)
                .default("8388608")
                .importance(Importance::Low)
                .validator(Validator::at_least(65536))
                .doc("A row group is encoded and sent on when its data reaches this many bytes; memory per open file is about one row group plus one upload part."), "Format"))
            .define(g(ConfigKey::new("flush.size", ConfigType::Int)
                .importance(Importance::High)
                .validator(Validator::at_least(1))
                .doc("Records per file: a file is completed when it holds this many."), "Rotation"))
            .define(g(ConfigKey::new("rotate.interval.ms", ConfigType::Long)
                .default("-1")
                .importance(Importance::High)
                .doc("A file is completed when a record's timestamp (from timestamp.extractor) is this far past the file's first record. Deterministic, so replays give the same files. -1: off."), "Rotation"))
            .define(g(ConfigKey::new("rotate.schedule.interval.ms", ConfigType::Long)
                .default("-1")
                .importance(Importance::Medium)
                .doc("Files are completed on the wall clock at multiples of this interval from midnight of timezone, even without new records. -1: off."), "Rotation"))
            .define(g(ConfigKey::new("partitioner.class", ConfigType::Class)
                .default("io.confluent.connect.storage.partitioner.DefaultPartitioner")
                .importance(Importance::High)
                .validator(Validator::Custom(PartitionerKind::check_class))
                .doc("DefaultPartitioner (partition=<kafka partition>), FieldPartitioner (partition.field.name), TimeBasedPartitioner (path.format, partition.duration.ms), DailyPartitioner, HourlyPartitioner; Confluent's class names or the short names."), "Partitioner"))
            .define(g(ConfigKey::new("partition.field.name", ConfigType::List)
                .default("")
                .importance(Importance::Medium)
                .doc("FieldPartitioner: the value fields (dotted paths for nested ones) whose values name the directories."), "Partitioner"))
            .define(g(ConfigKey::new("path.format", ConfigType::String)
                .default("")
                .importance(Importance::Medium)
                .doc("TimeBasedPartitioner: a Joda-Time pattern such as 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH."), "Partitioner"))
            .define(g(ConfigKey::new("partition.duration.ms", ConfigType::Long)
                .default("-1")
                .importance(Importance::Medium)
                .doc("TimeBasedPartitioner: width of a time partition."), "Partitioner"))
            .define(g(ConfigKey::new("locale", ConfigType::String)
                .default("en-US")
                .importance(Importance::Low)
                .doc("Locale of path.format (only numeric fields are supported, so the locale does not change paths)."), "Partitioner"))
            .define(g(ConfigKey::new("timezone", ConfigType::String)
                .default("UTC")
                .importance(Importance::Medium)
                .validator(Validator::Custom(|v| Zone::parse(v).map(|_| ())))
                .doc("Time zone of time partitions and scheduled rotation: UTC, GMT, Z, a fixed offset such as +02:00, or a tz database name such as Europe/Paris (daylight saving time followed)."), "Partitioner"))
            .define(g(ConfigKey::new("timestamp.extractor", ConfigType::String)
                .default("Wallclock")
                .importance(Importance::Medium)
                .validator(Validator::Custom(Extractor::check_name))
                .doc("Wallclock, Record (the Kafka timestamp) or RecordField (timestamp.field)."), "Partitioner"))
            .define(g(ConfigKey::new("timestamp.field", ConfigType::String)
                .default("timestamp")
                .importance(Importance::Medium)
                .doc("RecordField: the value field with the time (dotted path for nested fields): Timestamp, int64 epoch milliseconds, or an ISO-8601 / RFC 3339 string."), "Partitioner"))
            .define(g(ConfigKey::new("partitioner.max.open.files", ConfigType::Int)
                .default("256")
                .importance(Importance::Medium)
                .validator(Validator::at_least(1))
                .doc("Open files per task; one more closes the largest early."), "Partitioner"))
            .define(g(ConfigKey::new("buffer.max.bytes", ConfigType::Long)
                .default("268435456")
                .importance(Importance::Medium)
                .validator(Validator::at_least(1024 * 1024))
                .doc("Bytes all open files of a task may hold in memory (row groups being built and parts not yet uploaded); past it the largest files are completed early."), "Partitioner"))
            .define(g(ConfigKey::new("schema.compatibility", ConfigType::String)
                .default("NONE")
                .importance(Importance::Medium)
                .validator(Validator::OneOf(vec!["NONE", "BACKWARD", "FORWARD", "FULL"]))
                .doc("Accepted for compatibility; a file holds records of one schema, so a record with a different schema completes the open file in every mode (records are not projected)."), "Format"))
            .define(g(ConfigKey::new("behavior.on.null.values", ConfigType::String)
                .default("fail")
                .importance(Importance::Low)
                .validator(Validator::OneOf(vec!["fail", "ignore"]))
                .doc("What a tombstone does: fail the task, or be skipped."), "Format"))
    }

    /// Parses and validates, returning every problem at once.
    pub fn parse(config: &ConfigMap) -> Result<ParquetSinkConfig, ConfigErrors> {
        let p = Self::def().parse(config)?;
        let mut errors = ConfigErrors::default();
        let location = match location(
            &p.string("store.url"),
            &p.string("s3.bucket.name"),
            &p.string("hdfs.url"),
            &p.string("s3.region"),
            p.boolean("s3.path.style.access.enabled"),
        ) {
            Ok(l) => Some(l),
            Err((key, e)) => {
                errors.extend(ConfigErrors::one(key, e));
                None
            }
        };
        let zone = Zone::parse(&p.string("timezone")).unwrap_or_default();
        let partitioner = match PartitionerKind::parse(
            &p.string("partitioner.class"),
            &p.list("partition.field.name"),
            &p.string("path.format"),
            p.long("partition.duration.ms"),
            zone,
        ) {
            Ok(k) => Some(k),
            Err((key, e)) => {
                errors.extend(ConfigErrors::one(key, e));
                None
            }
        };
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
        let positive = |k: &str| Some(p.long(k)).filter(|v| *v > 0);
        let (Some(location), Some(partitioner), Some(extractor), true) =
            (location, partitioner, extractor, errors.is_empty())
        else {
            return Err(errors);
        };
        Ok(ParquetSinkConfig {
            location,
            aws_credentials: (!key_id.is_empty()).then_some((key_id, secret)),
            topics_dir: p.string("topics.dir").trim_matches('/').to_string(),
            directory_delim: p.string("directory.delim"),
            file_delim: p.string("file.delim"),
            offset_pad: p.int("filename.offset.zero.pad.width").max(0) as usize,
            codec: match p.string("parquet.codec").to_ascii_lowercase().as_str() {
                "zstd" => Codec::Zstd,
                "gzip" => Codec::Gzip,
                "none" | "uncompressed" => Codec::None,
                _ => Codec::Snappy,
            },
            dictionary_always: p.string("parquet.dictionary").eq_ignore_ascii_case("always"),
            flush_size: p.int("flush.size").max(1) as u64,
            rotate_interval_ms: positive("rotate.interval.ms"),
            rotate_schedule_ms: positive("rotate.schedule.interval.ms"),
            partitioner,
            extractor,
            null_values: if p.string("behavior.on.null.values").eq_ignore_ascii_case("ignore") {
                NullValues::Ignore
            } else {
                NullValues::Fail
            },
            max_open_files: p.int("partitioner.max.open.files").max(1) as usize,
            buffer_max_bytes: p.long("buffer.max.bytes").max(1 << 20) as usize,
            row_group_bytes: p.int("parquet.row.group.bytes").max(65536) as usize,
            part_size: p.int("s3.part.size").max(5 << 20) as usize,
            s3_retries: p.int("s3.part.retries").max(0) as usize,
            s3_retry_backoff_ms: p.long("s3.retry.backoff.ms").max(0) as u64,
        })
    }
}

/// Chooses the store from `store.url`, `s3.bucket.name` and `hdfs.url`.
fn location(
    store_url: &str,
    bucket: &str,
    hdfs_url: &str,
    region: &str,
    path_style: bool,
) -> Result<Location, (&'static str, String)> {
    let store_url = store_url.trim();
    let s3 = |bucket: &str, endpoint: Option<String>| Location::S3 {
        bucket: bucket.to_string(),
        endpoint,
        region: region.to_string(),
        path_style,
    };
    if !bucket.trim().is_empty() {
        let bucket = bucket.trim();
        return match store_url {
            "" => Ok(s3(bucket, None)),
            u if u.starts_with("http://") || u.starts_with("https://") => {
                Ok(s3(bucket, Some(u.trim_end_matches('/').to_string())))
            }
            u => Err((
                "store.url",
                format!("with s3.bucket.name set, store.url is the S3 endpoint (http://host:port); {u} is not"),
            )),
        };
    }
    if !hdfs_url.trim().is_empty() {
        let u = hdfs_url.trim();
        return if u.starts_with("hdfs://") || u.starts_with("viewfs://") {
            Ok(Location::Hdfs(u.trim_end_matches('/').to_string()))
        } else {
            Err(("hdfs.url", format!("{u}: expected hdfs://namenode:port")))
        };
    }
    if let Some(rest) = store_url.strip_prefix("s3://").or_else(|| store_url.strip_prefix("s3a://")) {
        let bucket = rest.split('/').next().unwrap_or_default();
        if bucket.is_empty() {
            return Err(("store.url", format!("{store_url}: expected s3://bucket")));
        }
        if rest.trim_end_matches('/') != bucket {
            return Err((
                "store.url",
                format!("{store_url}: a key prefix after the bucket is not supported; use topics.dir for it"),
            ));
        }
        return Ok(s3(bucket, None));
    }
    if store_url.starts_with("hdfs://") {
        return Ok(Location::Hdfs(store_url.trim_end_matches('/').to_string()));
    }
    let path = store_url.strip_prefix("file://").unwrap_or(store_url);
    if path.starts_with('/') {
        return Ok(Location::Local(path.trim_end_matches('/').to_string()));
    }
    if store_url.is_empty() {
        Err((
            "store.url",
            "set store.url (file:///dir, s3://bucket, hdfs://namenode:port) or s3.bucket.name".to_string(),
        ))
    } else {
        Err(("store.url", format!("{store_url}: expected file:///absolute/dir, s3://bucket or hdfs://namenode:port")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn confluent_s3_config_parses() {
        let c = ParquetSinkConfig::parse(&m(&[
            ("s3.bucket.name", "lake"),
            ("store.url", "http://127.0.0.1:8333"),
            ("flush.size", "1000"),
            ("format.class", "io.confluent.connect.s3.format.parquet.ParquetFormat"),
            ("partitioner.class", "io.confluent.connect.storage.partitioner.HourlyPartitioner"),
            ("timestamp.extractor", "RecordField"),
            ("timestamp.field", "meta.ts"),
            ("aws.access.key.id", "a"),
            ("aws.secret.access.key", "b"),
        ]))
        .expect("valid");
        assert!(
            matches!(c.location, Location::S3 { ref bucket, endpoint: Some(ref e), .. } if bucket == "lake" && e == "http://127.0.0.1:8333")
        );
        assert_eq!(c.flush_size, 1000);
        assert_eq!(c.codec, Codec::Snappy);
        assert_eq!(c.topics_dir, "topics");
        assert_eq!(c.aws_credentials, Some(("a".into(), "b".into())));
        // Confluent's retry defaults, and the keys honoured.
        assert_eq!((c.s3_retries, c.s3_retry_backoff_ms), (3, 200));
        let c = ParquetSinkConfig::parse(&m(&[
            ("store.url", "s3://lake"),
            ("flush.size", "10"),
            ("s3.part.retries", "0"),
            ("s3.retry.backoff.ms", "50"),
        ]))
        .expect("valid");
        assert_eq!((c.s3_retries, c.s3_retry_backoff_ms), (0, 50));
        let err = ParquetSinkConfig::parse(&m(&[
            ("store.url", "s3://lake"),
            ("flush.size", "10"),
            ("s3.part.retries", "-1"),
        ]))
        .expect_err("negative retries");
        assert!(err.to_string().contains("s3.part.retries"), "{err}");
    }

    #[test]
    fn every_problem_at_once() {
        let err = ParquetSinkConfig::parse(&m(&[
            ("store.url", "relative/dir"),
            ("format.class", "io.confluent.connect.s3.format.avro.AvroFormat"),
            ("partitioner.class", "io.confluent.connect.storage.partitioner.TimeBasedPartitioner"),
        ]))
        .expect_err("invalid");
        assert!(!err.for_key("flush.size").is_empty(), "{err:?}");
        assert!(err.for_key("format.class")[0].contains("only Parquet"), "{err:?}");
        let err = ParquetSinkConfig::parse(&m(&[
            ("store.url", "relative/dir"),
            ("flush.size", "3"),
            ("partitioner.class", "io.confluent.connect.storage.partitioner.TimeBasedPartitioner"),
        ]))
        .expect_err("invalid");
        assert!(err.for_key("store.url")[0].contains("absolute"), "{err:?}");
        assert!(err.for_key("path.format")[0].contains("required"), "{err:?}");
    }

    #[test]
    fn locations() {
        let l = |url: &str| location(url, "", "", "r", true);
        assert_eq!(l("file:///data/lake/").expect("ok"), Location::Local("/data/lake".into()));
        assert_eq!(l("/data").expect("ok"), Location::Local("/data".into()));
        assert!(matches!(l("s3://b").expect("ok"), Location::S3 { bucket, endpoint: None, .. } if bucket == "b"));
        assert!(l("s3://b/prefix").is_err());
        assert_eq!(l("hdfs://nn:8020").expect("ok"), Location::Hdfs("hdfs://nn:8020".into()));
        assert!(l("").is_err());
        assert!(location("s3://x", "b", "", "r", true).is_err());
        assert_eq!(
            location("", "", "hdfs://nn:9000/", "r", true).expect("ok"),
            Location::Hdfs("hdfs://nn:9000".into())
        );
        use super::super::store::split_hdfs_url;
        assert_eq!(split_hdfs_url("hdfs://nn:8020"), ("hdfs://nn:8020".into(), String::new()));
        assert_eq!(split_hdfs_url("hdfs://nn:8020/data/lake"), ("hdfs://nn:8020".into(), "data/lake".into()));
        assert_eq!(split_hdfs_url("viewfs://cluster/a/"), ("viewfs://cluster".into(), "a".into()));
    }

    /// With no namenode listening, a write is a retriable error naming the file, not a panic or a
    /// hang.
    #[cfg(feature = "hdfs")]
    #[tokio::test]
    async fn an_unreachable_namenode_is_a_retriable_error() {
        let c = ParquetSinkConfig::parse(&m(&[("hdfs.url", "hdfs://127.0.0.1:1/lake"), ("flush.size", "10")]))
            .expect("config");
        let store = super::super::store::open_store(&c).expect("a client, not yet a connection");
        let path = object_store::path::Path::from("topics/x");
        let put = object_store::ObjectStoreExt::put(&store, &path, bytes::Bytes::from_static(b"x").into());
        let result = tokio::time::timeout(std::time::Duration::from_secs(60), put).await.expect("no hang");
        let err = result.expect_err("nothing listens on port 1");
        let err = super::super::store::store_err("cannot write topics/x".into(), err);
        assert_eq!(err.kind(), sluice_api::ErrorKind::Retriable, "{err}");
    }
}
