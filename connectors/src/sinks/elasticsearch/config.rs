//! Confluent's Elasticsearch sink keys (`io.confluent.connect.elasticsearch.ElasticsearchSinkConnector`),
//! parsed without I/O.

use std::collections::HashSet;
use std::time::Duration;

use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

/// `write.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// Index requests: the document is replaced whole, versioned by the Kafka offset.
    Insert,
    /// Update requests with `doc_as_upsert`: fields are merged into the stored document.
    Upsert,
}

/// `behavior.on.null.values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullValues {
    /// Skip tombstones.
    Ignore,
    /// Delete the document whose id is the record key.
    Delete,
    /// Fail the task.
    Fail,
}

/// `behavior.on.malformed.documents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Skip the document (counted, logged at debug).
    Ignore,
    /// Skip the document with a warning naming the record and the server's reason.
    Warn,
    /// Fail the task.
    Fail,
}

/// One `connection.url` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://host:port` with any path prefix, without a trailing slash.
    pub base: String,
}

/// The parsed config.
#[derive(Debug, Clone)]
pub struct EsSinkConfig {
    /// `connection.url`: tried in turn, the next one on a connection failure.
    pub endpoints: Vec<Endpoint>,
    /// `connection.username`.
    pub username: Option<String>,
    /// `connection.password`.
    pub password: Option<String>,
    /// `key.ignore`.
    pub key_ignore: bool,
    /// `topic.key.ignore`.
    pub topic_key_ignore: HashSet<String>,
    /// `schema.ignore`.
    pub schema_ignore: bool,
    /// `topic.schema.ignore`.
    pub topic_schema_ignore: HashSet<String>,
    /// `compact.map.entries`.
    pub compact_map_entries: bool,
    /// `write.method`.
    pub write_method: WriteMethod,
    /// `behavior.on.null.values`.
    pub null_values: NullValues,
    /// `behavior.on.malformed.documents`.
    pub malformed: Malformed,
    /// `drop.invalid.message`.
    pub drop_invalid_message: bool,
    /// `batch.size`: actions per `_bulk` request.
    pub batch_size: usize,
    /// `bulk.size.bytes`: body bytes per `_bulk` request.
    pub bulk_size_bytes: usize,
    /// `max.in.flight.requests`: concurrent `_bulk` requests.
    pub max_in_flight: usize,
    /// `max.buffered.records`: records turned into documents at once.
    pub max_buffered_records: usize,
    /// `flush.timeout.ms`: bound on writing one batch, retries included.
    pub flush_timeout: Duration,
    /// `max.retries`.
    pub max_retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `connection.timeout.ms`.
    pub connect_timeout: Duration,
    /// `read.timeout.ms`.
    pub read_timeout: Duration,
    /// `connection.compression`: gzip request bodies.
    pub compression: bool,
    /// `index.name.template`: `${topic}` is replaced by the record's topic; lower-cased.
    pub index_template: String,
    /// `elastic.https.ssl.truststore.location`: PEM CAs for https:// nodes (the system's when unset).
    pub truststore: Option<String>,
    /// `elastic.https.ssl.keystore.location`: PEM key and chain of the client certificate.
    pub keystore: Option<String>,
}

impl EsSinkConfig {
    /// Whether the record key is ignored for this topic (id = `topic+partition+offset`).
    pub fn ignore_key(&self, topic: &str) -> bool {
        self.key_ignore || self.topic_key_ignore.contains(topic)
    }

    /// Whether the mapping is left to the server for this topic.
    pub fn ignore_schema(&self, topic: &str) -> bool {
        self.schema_ignore || self.topic_schema_ignore.contains(topic)
    }

    /// The index for a topic.
    pub fn index_for(&self, topic: &str) -> String {
        self.index_template.replace("${topic}", topic).to_lowercase()
    }

    /// The documented keys.
    pub fn def() -> ConfigDef {
        let group = "Connector";
        ConfigDef::new()
            .define(
                ConfigKey::new("connection.url", ConfigType::List)
                    .importance(Importance::High)
                    .group(group)
                    .validator(Validator::Custom(|v| parse_urls(v).map(|_| ())))
                    .doc("Comma-separated http:// or https:// URLs of the cluster's nodes (e.g. https://es1:9200,https://es2:9200). Requests go to one; on a connection failure, to the next."),
            )
            .define(
                ConfigKey::new("elastic.security.protocol", ConfigType::String)
                    .default("PLAINTEXT")
                    .importance(Importance::Medium)
                    .group("Security")
                    .validator(Validator::OneOf(vec!["PLAINTEXT", "SSL"]))
                    .doc("SSL: the nodes are https:// (checked); PLAINTEXT: as the URLs say."),
            )
            .define(
                ConfigKey::new("elastic.https.ssl.truststore.location", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .group("Security")
                    .doc("PEM file of the CAs trusted for the nodes' certificates; empty: the system's CAs."),
            )
            .define(
                ConfigKey::new("elastic.https.ssl.truststore.type", ConfigType::String)
                    .default("PEM")
                    .importance(Importance::Low)
                    .group("Security")
                    .validator(Validator::Custom(|v| {
                        pem_only(v, "keytool -exportcert -rfc -keystore truststore.jks -alias <ca> -file ca.pem")
                    }))
                    .doc("Format of the truststore: PEM."),
            )
            .define(
                ConfigKey::new("elastic.https.ssl.keystore.location", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .group("Security")
                    .doc("PEM file with the client certificate's private key and its chain, presented to nodes that authenticate clients by certificate; empty: none."),
            )
            .define(
                ConfigKey::new("elastic.https.ssl.keystore.type", ConfigType::String)
                    .default("PEM")
                    .importance(Importance::Low)
                    .group("Security")
                    .validator(Validator::Custom(|v| {
                        pem_only(v, "openssl pkcs12 -in keystore.p12 -nodes -out client.pem; from a JKS, first keytool -importkeystore -srckeystore keystore.jks -destkeystore keystore.p12 -deststoretype PKCS12")
                    }))
                    .doc("Format of the keystore: PEM."),
            )
            .define(
                ConfigKey::new("elastic.https.ssl.keystore.password", ConfigType::Password)
                    .default("")
                    .importance(Importance::Low)
                    .group("Security")
                    .doc("Not used with a PEM keystore (accepted so that converted configs load)."),
            )
            .define(
                ConfigKey::new("elastic.https.ssl.key.password", ConfigType::Password)
                    .default("")
                    .importance(Importance::Low)
                    .group("Security")
                    .validator(Validator::Custom(crate::tls::refuse_key_password))
                    .doc("Not supported (encrypted keys are refused): leave empty."),
            )
            .define(
                ConfigKey::new("connection.username", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .group(group)
                    .doc("HTTP basic auth user."),
            )
            .define(
                ConfigKey::new("connection.password", ConfigType::Password)
                    .default("")
                    .importance(Importance::Medium)
                    .group(group)
                    .doc("HTTP basic auth password."),
            )
            .define(
                ConfigKey::new("key.ignore", ConfigType::Boolean)
                    .default("false")
                    .importance(Importance::High)
                    .group("Data Conversion")
                    .doc("true: the document id is topic+partition+offset (each record a new document). false: the id is the record key (an update replaces the document; a struct key of one field uses that field, of several their values joined with '+')."),
            )
            .define(
                ConfigKey::new("topic.key.ignore", ConfigType::List)
                    .default("")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .doc("Topics for which key.ignore=true."),
            )
            .define(
                ConfigKey::new("schema.ignore", ConfigType::Boolean)
                    .default("false")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .doc("false: a missing index is created with a mapping built from the record's Connect schema. true (or a record without a schema): the server infers the mapping."),
            )
            .define(
                ConfigKey::new("topic.schema.ignore", ConfigType::List)
                    .default("")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .doc("Topics for which schema.ignore=true."),
            )
            .define(
                ConfigKey::new("compact.map.entries", ConfigType::Boolean)
                    .default("true")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .doc("true: maps with string keys become objects. false (or other keys): arrays of {\"key\",\"value\"} documents."),
            )
            .define(
                ConfigKey::new("write.method", ConfigType::String)
                    .default("INSERT")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .validator(Validator::OneOf(vec!["INSERT", "UPSERT"]))
                    .doc("INSERT: index requests replacing the document, with version = Kafka offset (external versioning) so a replay never overwrites newer data. UPSERT: update requests merging fields (doc_as_upsert), unversioned."),
            )
            .define(
                ConfigKey::new("behavior.on.null.values", ConfigType::String)
                    .default("FAIL")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .validator(Validator::OneOf(vec!["IGNORE", "DELETE", "FAIL"]))
                    .doc("Tombstones: IGNORE skips them, DELETE deletes the document with the key's id, FAIL fails the task."),
            )
            .define(
                ConfigKey::new("behavior.on.malformed.documents", ConfigType::String)
                    .default("FAIL")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .validator(Validator::OneOf(vec!["IGNORE", "WARN", "FAIL"]))
                    .doc("Documents the server rejects as malformed (mapper_parsing, strict_dynamic_mapping, illegal_argument, action_request_validation, document_parsing exceptions): IGNORE skips them, WARN skips them with a warning, FAIL fails the task."),
            )
            .define(
                ConfigKey::new("drop.invalid.message", ConfigType::Boolean)
                    .default("false")
                    .importance(Importance::Low)
                    .group("Data Conversion")
                    .doc("true: a record that cannot become a document (e.g. a null key with key.ignore=false) is skipped with a warning; false: the task fails."),
            )
            .define(
                ConfigKey::new("batch.size", ConfigType::Int)
                    .default("2000")
                    .importance(Importance::Medium)
                    .group(group)
                    .validator(Validator::Range { min: Some(1.0), max: Some(1_000_000.0) })
                    .doc("Actions per _bulk request."),
            )
            .define(
                ConfigKey::new("bulk.size.bytes", ConfigType::Long)
                    .default("5242880")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(1024.0), max: Some(2_147_483_647.0) })
                    .doc("Body bytes per _bulk request."),
            )
            .define(
                ConfigKey::new("max.in.flight.requests", ConfigType::Int)
                    .default("5")
                    .importance(Importance::Medium)
                    .group(group)
                    .validator(Validator::Range { min: Some(1.0), max: Some(1000.0) })
                    .doc("_bulk requests sent concurrently. Documents are spread over them by id, so the actions on one document stay in order in one request stream."),
            )
            .define(
                ConfigKey::new("max.buffered.records", ConfigType::Int)
                    .default("20000")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(1.0), max: None })
                    .doc("Records turned into documents and written at once; a larger batch from the worker is written in slices of this size."),
            )
            .define(
                ConfigKey::new("linger.ms", ConfigType::Long)
                    .default("1")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(0.0), max: Some(604_800_000.0) })
                    .doc("Accepted for compatibility: batches are formed by the worker's fetches (it waits up to 50 ms to fill one)."),
            )
            .define(
                ConfigKey::new("flush.timeout.ms", ConfigType::Long)
                    .default("180000")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(1.0), max: None })
                    .doc("Time allowed to write one batch, retries included; past it the batch is retried by the worker."),
            )
            .define(
                ConfigKey::new("max.retries", ConfigType::Int)
                    .default("5")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(0.0), max: Some(100.0) })
                    .doc("Retries of documents answered 429 or 5xx (and of unreachable servers) within one batch; then the batch goes back to the worker, which retries it with its own, slower back-off (errors.retry.delay.max.ms)."),
            )
            .define(
                ConfigKey::new("retry.backoff.ms", ConfigType::Long)
                    .default("100")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(0.0), max: Some(86_400_000.0) })
                    .doc("First retry wait; each later wait is random up to twice the previous bound (full jitter)."),
            )
            .define(
                ConfigKey::new("connection.timeout.ms", ConfigType::Int)
                    .default("1000")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(1.0), max: None })
                    .doc("TCP connect timeout."),
            )
            .define(
                ConfigKey::new("read.timeout.ms", ConfigType::Int)
                    .default("3000")
                    .importance(Importance::Low)
                    .group(group)
                    .validator(Validator::Range { min: Some(1.0), max: None })
                    .doc("Time allowed for one request's answer."),
            )
            .define(
                ConfigKey::new("connection.compression", ConfigType::Boolean)
                    .default("false")
                    .importance(Importance::Low)
                    .group(group)
                    .doc("gzip the _bulk request bodies."),
            )
            .define(
                ConfigKey::new("index.name.template", ConfigType::String)
                    .default("${topic}")
                    .importance(Importance::Medium)
                    .group("Data Conversion")
                    .validator(Validator::NonEmpty)
                    .doc("The index written to; ${topic} is the record's topic. Lower-cased, as index names must be."),
            )
            .define(
                ConfigKey::new("data.stream.type", ConfigType::String)
                    .default("NONE")
                    .importance(Importance::Low)
                    .group("Data Stream")
                    .validator(Validator::Custom(|v| {
                        if v.trim().eq_ignore_ascii_case("none") {
                            Ok(())
                        } else {
                            Err("data streams are not supported yet; use NONE".to_string())
                        }
                    }))
                    .doc("Only NONE (indices) is supported."),
            )
    }

    /// Parses and validates.
    pub fn parse(config: &ConfigMap) -> Result<EsSinkConfig, ConfigErrors> {
        let p = Self::def().parse(config)?;
        let raw_urls = p.list("connection.url").join(",");
        let endpoints = parse_urls(&raw_urls).map_err(|e| ConfigErrors::one("connection.url", e))?;
        if p.string("elastic.security.protocol").eq_ignore_ascii_case("SSL") {
            if let Some(e) = endpoints.iter().find(|e| !e.base.starts_with("https://")) {
                return Err(ConfigErrors::one(
                    "connection.url",
                    format!("{}: elastic.security.protocol=SSL needs https:// URLs", e.base),
                ));
            }
        }
        let upper = |k: &str| p.string(k).to_ascii_uppercase();
        let set = |k: &str| p.list(k).into_iter().collect::<HashSet<_>>();
        let username = p.non_empty_string("connection.username");
        let password = p.non_empty_string("connection.password");
        if password.is_some() && username.is_none() {
            return Err(ConfigErrors::one(
                "connection.username",
                "connection.password is set but connection.username is not",
            ));
        }
        let ms = |k: &str| Duration::from_millis(p.long(k).max(0) as u64);
        Ok(EsSinkConfig {
            endpoints,
            username,
            password,
            key_ignore: p.boolean("key.ignore"),
            topic_key_ignore: set("topic.key.ignore"),
            schema_ignore: p.boolean("schema.ignore"),
            topic_schema_ignore: set("topic.schema.ignore"),
            compact_map_entries: p.boolean("compact.map.entries"),
            write_method: if upper("write.method") == "UPSERT" { WriteMethod::Upsert } else { WriteMethod::Insert },
            null_values: match upper("behavior.on.null.values").as_str() {
                "IGNORE" => NullValues::Ignore,
                "DELETE" => NullValues::Delete,
                _ => NullValues::Fail,
            },
            malformed: match upper("behavior.on.malformed.documents").as_str() {
                "IGNORE" => Malformed::Ignore,
                "WARN" => Malformed::Warn,
                _ => Malformed::Fail,
            },
            drop_invalid_message: p.boolean("drop.invalid.message"),
            batch_size: p.int("batch.size").max(1) as usize,
            bulk_size_bytes: p.long("bulk.size.bytes").max(1024) as usize,
            max_in_flight: p.int("max.in.flight.requests").max(1) as usize,
            max_buffered_records: p.int("max.buffered.records").max(1) as usize,
            flush_timeout: ms("flush.timeout.ms"),
            max_retries: p.int("max.retries").max(0) as u32,
            retry_backoff: ms("retry.backoff.ms"),
            connect_timeout: ms("connection.timeout.ms"),
            read_timeout: ms("read.timeout.ms"),
            compression: p.boolean("connection.compression"),
            index_template: p.string("index.name.template"),
            truststore: p.non_empty_string("elastic.https.ssl.truststore.location"),
            keystore: p.non_empty_string("elastic.https.ssl.keystore.location"),
        })
    }
}

/// A store type other than PEM is refused, with the command that converts it.
fn pem_only(v: &str, convert: &str) -> Result<(), String> {
    if v.trim().eq_ignore_ascii_case("PEM") {
        Ok(())
    } else {
        Err(format!("{v} is not supported: use PEM (e.g. `{convert}`)"))
    }
}

fn parse_urls(raw: &str) -> Result<Vec<Endpoint>, String> {
    let mut out = Vec::new();
    for url in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("{url}: the URL must start with http:// or https://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.contains('@') {
            return Err(format!(
                "{url}: expected http(s)://host[:port][/path] (credentials go in connection.username/password)"
            ));
        }
        out.push(Endpoint { base: url.trim_end_matches('/').to_string() });
    }
    if out.is_empty() {
        return Err("at least one URL is required".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_follow_confluent() {
        let c = EsSinkConfig::parse(&map(&[("connection.url", "http://a:9200/, http://b:9200")])).expect("valid");
        assert_eq!(c.endpoints.iter().map(|e| e.base.as_str()).collect::<Vec<_>>(), ["http://a:9200", "http://b:9200"]);
        assert_eq!((c.batch_size, c.max_in_flight, c.max_retries), (2000, 5, 5));
        assert_eq!(c.write_method, WriteMethod::Insert);
        assert_eq!(c.null_values, NullValues::Fail);
        assert_eq!(c.malformed, Malformed::Fail);
        assert!(c.compact_map_entries && !c.key_ignore && !c.schema_ignore);
        assert_eq!(c.index_for("Shop.Orders"), "shop.orders");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = EsSinkConfig::parse(&map(&[
            ("connection.url", "ftp://x"),
            ("write.method", "merge"),
            ("batch.size", "0"),
            ("data.stream.type", "LOGS"),
        ]))
        .expect_err("invalid");
        for key in ["connection.url", "write.method", "batch.size", "data.stream.type"] {
            assert!(!err.for_key(key).is_empty(), "{key}: {err}");
        }
        let tls = EsSinkConfig::parse(&map(&[("connection.url", "https://x:9200")])).expect("tls");
        assert_eq!(tls.endpoints[0].base, "https://x:9200");
        let err =
            EsSinkConfig::parse(&map(&[("connection.url", "http://x:9200"), ("elastic.security.protocol", "SSL")]))
                .expect_err("SSL needs https");
        assert!(err.for_key("connection.url")[0].contains("https"));
        let err = EsSinkConfig::parse(&map(&[
            ("connection.url", "https://x:9200"),
            ("elastic.https.ssl.truststore.type", "JKS"),
        ]))
        .expect_err("JKS");
        assert!(err.for_key("elastic.https.ssl.truststore.type")[0].contains("use PEM"));
        let err = EsSinkConfig::parse(&map(&[
            ("connection.url", "https://x:9200"),
            ("elastic.https.ssl.keystore.type", "PKCS12"),
            ("elastic.https.ssl.key.password", "secret"),
        ]))
        .expect_err("PEM keystores only, unencrypted");
        assert!(err.for_key("elastic.https.ssl.keystore.type")[0].contains("openssl pkcs12"));
        assert!(err.for_key("elastic.https.ssl.key.password")[0].contains("openssl pkey"));
        let c = EsSinkConfig::parse(&map(&[
            ("connection.url", "https://x:9200"),
            ("elastic.https.ssl.keystore.location", "/client.pem"),
            ("elastic.https.ssl.keystore.password", "ignored"),
        ]))
        .expect("ok");
        assert_eq!(c.keystore.as_deref(), Some("/client.pem"));
        let err = EsSinkConfig::parse(&map(&[("connection.url", "http://x"), ("connection.password", "p")]))
            .expect_err("user");
        assert!(!err.for_key("connection.username").is_empty());
        assert!(EsSinkConfig::parse(&map(&[])).is_err());
    }

    #[test]
    fn per_topic_overrides() {
        let c = EsSinkConfig::parse(&map(&[
            ("connection.url", "http://a"),
            ("topic.key.ignore", "logs"),
            ("topic.schema.ignore", "raw"),
            ("index.name.template", "idx-${topic}"),
        ]))
        .expect("valid");
        assert!(c.ignore_key("logs") && !c.ignore_key("orders"));
        assert!(c.ignore_schema("raw") && !c.ignore_schema("orders"));
        assert_eq!(c.index_for("orders"), "idx-orders");
    }
}
