//! Redis Inc's sink keys (`com.redis.kafka.connect.RedisSinkConnector`), parsed without I/O.

use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

/// `redis.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisType {
    /// HSET of the value's fields (the key is replaced whole: DEL then HSET).
    Hash,
    /// SET of the value as text (JSON for structs and maps).
    String,
    /// XADD of the value's fields to the keyspace stream.
    Stream,
    /// JSON.SET of the value (needs the RedisJSON module).
    Json,
    /// RPUSH of record keys to the keyspace list (a tombstone: LREM).
    List,
    /// SADD of record keys to the keyspace set (a tombstone: SREM).
    Set,
    /// ZADD of record keys to the keyspace sorted set, score = the value (a tombstone: ZREM).
    Zset,
}

/// Where the server is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUri {
    /// `host:port`.
    pub addr: String,
    /// ACL user.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Database number.
    pub db: u32,
    /// `rediss://`: TLS.
    pub tls: bool,
}

impl RedisUri {
    /// The host name (for TLS server-name checks).
    pub fn host(&self) -> &str {
        let host = self.addr.rsplit_once(':').map_or(self.addr.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// The parsed config.
#[derive(Debug, Clone)]
pub struct RedisSinkConfig {
    /// `redis.uri`.
    pub uri: RedisUri,
    /// `redis.type`.
    pub redis_type: RedisType,
    /// `redis.keyspace` (`${topic}` is replaced by the topic).
    pub keyspace: String,
    /// `redis.separator`.
    pub separator: String,
    /// `redis.key.ttl` seconds (≤ 0: none).
    pub ttl: i64,
    /// `redis.batch.size`: records per MULTI/EXEC.
    pub batch_size: usize,
    /// TLS (`rediss://` or `redis.tls=true`).
    pub tls: bool,
    /// `redis.ssl.truststore.location` (or `redis.cacert`): PEM CAs trusted for the server (the
    /// system's when unset).
    pub truststore: Option<String>,
    /// `redis.key.file`: the client certificate's private key (PEM), when the server asks for one.
    pub client_key: Option<String>,
    /// `redis.key.cert`: the client certificate chain (PEM); `redis.key.file` when unset.
    pub client_cert: Option<String>,
}

impl RedisSinkConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("redis.uri", ConfigType::Password)
                    .default("redis://localhost:6379")
                    .importance(Importance::High)
                    .validator(Validator::Custom(|v| parse_uri(v).map(|_| ())))
                    .doc("redis://[[user]:password@]host:port[/database]; rediss:// for TLS."),
            )
            .define(
                ConfigKey::new("redis.tls", ConfigType::Boolean)
                    .default("false")
                    .importance(Importance::Medium)
                    .doc("Connect over TLS (as rediss:// does)."),
            )
            .define(
                ConfigKey::new("redis.insecure", ConfigType::Boolean)
                    .default("false")
                    .importance(Importance::Low)
                    .validator(Validator::Custom(|v| {
                        if v.trim().eq_ignore_ascii_case("true") {
                            Err("true is not supported: the server's certificate is always verified; trust a private CA with redis.ssl.truststore.location".to_string())
                        } else {
                            Ok(())
                        }
                    }))
                    .doc("Skip certificate checks: not supported (always false)."),
            )
            .define(
                ConfigKey::new("redis.ssl.truststore.location", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .doc("PEM file of the CAs trusted for the server's certificate (TLS); empty: the system's CAs."),
            )
            .define(
                ConfigKey::new("redis.cacert", ConfigType::String)
                    .default("")
                    .importance(Importance::Low)
                    .doc("Redis Inc's name for redis.ssl.truststore.location: PEM file of the CAs trusted for the server."),
            )
            .define(
                ConfigKey::new("redis.key.file", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .doc("PEM file of the private key of the client certificate, for servers that authenticate clients (redis-server's tls-auth-clients); may also hold the chain."),
            )
            .define(
                ConfigKey::new("redis.key.cert", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .doc("PEM file of the client certificate chain (own certificate first); empty: taken from redis.key.file."),
            )
            .define(
                ConfigKey::new("redis.key.password", ConfigType::Password)
                    .default("")
                    .importance(Importance::Low)
                    .validator(Validator::Custom(crate::tls::refuse_key_password))
                    .doc("Not supported (encrypted keys are refused): leave empty."),
            )
            .define(
                ConfigKey::new("redis.type", ConfigType::String)
                    .default("STREAM")
                    .importance(Importance::High)
                    .validator(Validator::Custom(check_type))
                    .doc("HASH (the value's fields; the key is replaced whole), STRING (the value as text, JSON for structs), STREAM (XADD to the keyspace stream), JSON (JSON.SET; needs RedisJSON), LIST / SET / ZSET (record keys as members of the keyspace collection; ZSET score = the value). TIMESERIES: not supported yet."),
            )
            .define(
                ConfigKey::new("redis.keyspace", ConfigType::String)
                    .default("${topic}")
                    .importance(Importance::Medium)
                    .doc("Key prefix (HASH, STRING, JSON) or the one key (STREAM, LIST, SET, ZSET); ${topic} is the record's topic. Empty: the raw record key."),
            )
            .define(
                ConfigKey::new("redis.separator", ConfigType::String)
                    .default(":")
                    .importance(Importance::Low)
                    .doc("Between the keyspace and the record key, and between the fields of a struct key."),
            )
            .define(
                ConfigKey::new("redis.batch.size", ConfigType::Int)
                    .default("10000")
                    .importance(Importance::Low)
                    .validator(Validator::Range { min: Some(1.0), max: None })
                    .doc("Records per MULTI/EXEC transaction (a larger batch from the worker is written as several, each with its offsets)."),
            )
            .define(
                ConfigKey::new("redis.key.ttl", ConfigType::Long)
                    .default("-1")
                    .importance(Importance::Low)
                    .doc("Seconds before a written key expires; -1: never."),
            )
    }

    /// Parses and validates.
    pub fn parse(config: &ConfigMap) -> Result<RedisSinkConfig, ConfigErrors> {
        let p = Self::def().parse(config)?;
        let uri = parse_uri(&p.string("redis.uri")).map_err(|e| ConfigErrors::one("redis.uri", e))?;
        let tls = uri.tls;
        let redis_type = match p.string("redis.type").to_ascii_uppercase().as_str() {
            "HASH" => RedisType::Hash,
            "STRING" => RedisType::String,
            "JSON" => RedisType::Json,
            "LIST" => RedisType::List,
            "SET" => RedisType::Set,
            "ZSET" => RedisType::Zset,
            _ => RedisType::Stream,
        };
        let tls = tls || p.boolean("redis.tls");
        if p.non_empty_string("redis.key.cert").is_some() && p.non_empty_string("redis.key.file").is_none() {
            return Err(ConfigErrors::one(
                "redis.key.cert",
                "a client certificate needs its private key: set redis.key.file too".to_string(),
            ));
        }
        if let (Some(a), Some(b)) =
            (p.non_empty_string("redis.ssl.truststore.location"), p.non_empty_string("redis.cacert"))
        {
            if a != b {
                return Err(ConfigErrors::one(
                    "redis.cacert",
                    format!("conflicts with redis.ssl.truststore.location ({a}): set one of them"),
                ));
            }
        }
        if !tls && p.non_empty_string("redis.key.file").is_some() {
            return Err(ConfigErrors::one(
                "redis.key.file",
                "a client certificate needs TLS: use a rediss:// URI or redis.tls=true".to_string(),
            ));
        }
        Ok(RedisSinkConfig {
            uri,
            redis_type,
            keyspace: p.string("redis.keyspace"),
            separator: p.string("redis.separator"),
            ttl: p.long("redis.key.ttl"),
            batch_size: p.int("redis.batch.size").max(1) as usize,
            tls,
            truststore: p
                .non_empty_string("redis.ssl.truststore.location")
                .or_else(|| p.non_empty_string("redis.cacert")),
            client_key: p.non_empty_string("redis.key.file"),
            client_cert: p.non_empty_string("redis.key.cert"),
        })
    }
}

fn check_type(v: &str) -> Result<(), String> {
    match v.trim().to_ascii_uppercase().as_str() {
        "HASH" | "STRING" | "STREAM" | "JSON" | "LIST" | "SET" | "ZSET" => Ok(()),
        "TIMESERIES" => Err(format!("{v} is not supported yet (HASH, STRING, STREAM, JSON, LIST, SET, ZSET are)")),
        _ => Err("String must be one of: HASH, STRING, STREAM, JSON, LIST, SET, ZSET".to_string()),
    }
}

fn parse_uri(raw: &str) -> Result<RedisUri, String> {
    let raw = raw.trim();
    let (tls, rest) = match (raw.strip_prefix("rediss://"), raw.strip_prefix("redis://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err("the URI must start with redis:// or rediss:// (TLS)".to_string()),
    };
    let (auth, hostpart) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let (hostport, db) = match hostpart.split_once('/') {
        Some((h, d)) if !d.is_empty() => (h, d.parse::<u32>().map_err(|_| format!("database {d:?} is not a number"))?),
        Some((h, _)) => (h, 0),
        None => (hostpart, 0),
    };
    if hostport.is_empty() {
        return Err("the URI has no host".to_string());
    }
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:6379")
    };
    let (user, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
            None => (None, Some(a.to_string())),
        },
    };
    Ok(RedisUri { addr, user, password, db, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = parse_uri("redis://default:s3cret@cache:6380/2").expect("uri");
        assert_eq!(
            u,
            RedisUri {
                addr: "cache:6380".into(),
                user: Some("default".into()),
                password: Some("s3cret".into()),
                db: 2,
                tls: false,
            }
        );
        assert_eq!(parse_uri("redis://:pw@h").expect("uri").password.as_deref(), Some("pw"));
        assert_eq!(parse_uri("redis://h").expect("uri").addr, "h:6379");
        let tls = parse_uri("rediss://cache.internal:6380").expect("tls");
        assert!(tls.tls && tls.host() == "cache.internal");
        assert!(parse_uri("http://h").is_err());
        assert!(parse_uri("redis://h/x").is_err());
    }

    #[test]
    fn types_and_errors() {
        let m = |pairs: &[(&str, &str)]| -> ConfigMap {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(RedisSinkConfig::parse(&m(&[("redis.type", "hash")])).expect("ok").redis_type, RedisType::Hash);
        let err = RedisSinkConfig::parse(&m(&[("redis.type", "TIMESERIES"), ("redis.uri", "x")])).expect_err("bad");
        assert!(err.for_key("redis.type")[0].contains("not supported yet"));
        assert!(!err.for_key("redis.uri").is_empty());
    }

    #[test]
    fn client_certificates() {
        let m = |pairs: &[(&str, &str)]| -> ConfigMap {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let c = RedisSinkConfig::parse(&m(&[
            ("redis.uri", "rediss://cache:6380"),
            ("redis.cacert", "/ca.pem"),
            ("redis.key.file", "/k.pem"),
            ("redis.key.cert", "/c.pem"),
        ]))
        .expect("ok");
        assert_eq!(c.truststore.as_deref(), Some("/ca.pem"), "redis.cacert is the truststore");
        assert_eq!((c.client_key.as_deref(), c.client_cert.as_deref()), (Some("/k.pem"), Some("/c.pem")));
        let err =
            RedisSinkConfig::parse(&m(&[("redis.tls", "true"), ("redis.key.cert", "/c.pem")])).expect_err("no key");
        assert!(err.for_key("redis.key.cert")[0].contains("redis.key.file"));
        let err =
            RedisSinkConfig::parse(&m(&[("redis.cacert", "/a.pem"), ("redis.ssl.truststore.location", "/b.pem")]))
                .expect_err("two CA files");
        assert!(err.for_key("redis.cacert")[0].contains("set one of them"));
        let err = RedisSinkConfig::parse(&m(&[("redis.key.file", "/k.pem")])).expect_err("no TLS");
        assert!(err.for_key("redis.key.file")[0].contains("needs TLS"));
        let err =
            RedisSinkConfig::parse(&m(&[("redis.tls", "true"), ("redis.key.password", "x")])).expect_err("encrypted");
        assert!(err.for_key("redis.key.password")[0].contains("openssl pkey"));
    }
}
