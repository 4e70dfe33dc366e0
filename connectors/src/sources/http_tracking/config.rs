//! The collector's keys, parsed and checked without binding anything.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sluice_api::{ConfigDef, ConfigError, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

/// Which field becomes the Kafka record key (`key.field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// `userId`, else `anonymousId` (Segment's identity): one user's events stay on one partition.
    UserId,
    /// `anonymousId`, else `userId`.
    AnonymousId,
    /// `messageId`: spreads events evenly, no per-user order.
    MessageId,
    /// No key.
    None,
}

/// How the record value is shaped (`value.schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSchema {
    /// The enriched event as schemaless JSON (use `value.converter.schemas.enable=false`).
    None,
    /// A Connect struct with Segment's fixed fields; `context`, `properties`, `traits` and any
    /// other fields as JSON text.
    Segment,
}

/// A network of trusted proxies (`http.trusted.proxies` entries: an address or `addr/bits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1` or `127.0.0.1`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => {
                b.trim().parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?
            }
            None => max,
        };
        Ok(Cidr { addr, bits })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        (a[full] & mask) == (b[full] & mask)
    }
}

/// The parsed config of the `http-tracking` connector.
#[derive(Debug, Clone)]
pub struct TrackingConfig {
    /// `http.listener`: address the task's HTTP server binds (with `SO_REUSEPORT`).
    pub listener: SocketAddr,
    /// `topic`: the topic, or a template with `${type}` and `${source}`.
    pub topic: String,
    /// `key.field`.
    pub key_field: KeyField,
    /// `value.schema`.
    pub value_schema: ValueSchema,
    /// `write.keys`: write key → source name; empty means no write key is required.
    pub write_keys: HashMap<String, String>,
    /// `http.max.request.bytes`: the largest request body (after gzip decoding).
    pub max_request_bytes: usize,
    /// `http.max.event.bytes`: the largest single event.
    pub max_event_bytes: usize,
    /// `http.max.batch.events`: most events in one request.
    pub max_batch_events: usize,
    /// `http.max.inflight.bytes`: memory bound of accepted but unacknowledged events.
    pub max_inflight_bytes: usize,
    /// `http.request.timeout.ms`: how long a request waits for Kafka's acknowledgement.
    pub request_timeout: Duration,
    /// `http.backpressure.wait.ms`: how long a request waits for room before 429.
    pub backpressure_wait: Duration,
    /// `http.unavailable.after.ms`: after this long without progress from Kafka, new requests get
    /// 503 at once instead of waiting out their timeout.
    pub unavailable_after: Duration,
    /// `http.cors.allowed.origins`: `*`, a list of origins, or empty for no CORS headers.
    pub cors_origins: Vec<String>,
    /// `http.trusted.proxies`: proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `max.batch.size`: most records one poll returns.
    pub max_batch_size: usize,
    /// `errors.deadletterqueue.topic.name`: malformed payloads are written here (raw), if set.
    pub dead_letter_topic: Option<String>,
}

impl TrackingConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        let group = "HTTP";
        ConfigDef::new()
            .define(
                ConfigKey::new("http.listener", ConfigType::String)
                    .default("0.0.0.0:8090")
                    .importance(Importance::High)
                    .group(group)
                    .validator(Validator::Custom(|v| parse_listener(v).map(|_| ())))
                    .doc("Address (host:port) the collector's HTTP server listens on, on the worker running the task. Several tasks on one worker share the port through SO_REUSEPORT."),
            )
            .define(
                ConfigKey::new("topic", ConfigType::String)
                    .default("tracking.events")
                    .importance(Importance::High)
                    .validator(Validator::Custom(check_topic_template))
                    .doc("Destination topic, or a template: ${type} is the event type (track, page, ...), ${source} the write key's source name."),
            )
            .define(
                ConfigKey::new("key.field", ConfigType::String)
                    .default("userId")
                    .importance(Importance::Medium)
                    .validator(Validator::OneOf(vec!["userId", "anonymousId", "messageId", "none"]))
                    .doc("Record key: userId (else anonymousId) keeps each user's events in order on one partition; anonymousId (else userId); messageId; none."),
            )
            .define(
                ConfigKey::new("value.schema", ConfigType::String)
                    .default("none")
                    .importance(Importance::Medium)
                    .validator(Validator::OneOf(vec!["none", "segment"]))
                    .doc("none: the enriched event as schemaless JSON. segment: a Connect struct of Segment's fixed fields, with context, properties, traits and other fields as JSON text."),
            )
            .define(
                ConfigKey::new("write.keys", ConfigType::Password)
                    .default("")
                    .importance(Importance::High)
                    .group(group)
                    .validator(Validator::Custom(|v| parse_write_keys(v).map(|_| ())))
                    .doc("Accepted write keys as key:sourceName pairs, comma-separated. The key comes as the HTTP basic-auth username or a writeKey body field. Empty: no key required."),
            )
            .define(
                ConfigKey::new("http.max.request.bytes", ConfigType::Int)
                    .default("512000")
                    .validator(Validator::between(1024, 64 * 1024 * 1024))
                    .group(group)
                    .importance(Importance::Medium)
                    .doc("Largest request body in bytes (after gzip decoding); larger requests get 413."),
            )
            .define(
                ConfigKey::new("http.max.event.bytes", ConfigType::Int)
                    .default("32768")
                    .validator(Validator::between(64, 16 * 1024 * 1024))
                    .group(group)
                    .importance(Importance::Medium)
                    .doc("Largest single event in bytes; a larger one rejects its request with 400."),
            )
            .define(
                ConfigKey::new("http.max.batch.events", ConfigType::Int)
                    .default("2500")
                    .validator(Validator::at_least(1))
                    .group(group)
                    .importance(Importance::Low)
                    .doc("Most events in one request."),
            )
            .define(
                ConfigKey::new("http.max.inflight.bytes", ConfigType::Long)
                    .default("67108864")
                    .validator(Validator::at_least(65536))
                    .group(group)
                    .importance(Importance::Medium)
                    .doc("Memory bound for events accepted but not yet acknowledged by Kafka; past it requests wait http.backpressure.wait.ms, then get 429 with Retry-After."),
            )
            .define(
                ConfigKey::new("http.request.timeout.ms", ConfigType::Int)
                    .default("10000")
                    .validator(Validator::at_least(100))
                    .group(group)
                    .importance(Importance::Medium)
                    .doc("How long a request waits for Kafka to acknowledge its events before it gets 503 with Retry-After."),
            )
            .define(
                ConfigKey::new("http.backpressure.wait.ms", ConfigType::Int)
                    .default("1000")
                    .validator(Validator::at_least(0))
                    .group(group)
                    .importance(Importance::Low)
                    .doc("How long a request waits for in-flight room before it gets 429."),
            )
            .define(
                ConfigKey::new("http.unavailable.after.ms", ConfigType::Int)
                    .default("5000")
                    .validator(Validator::at_least(100))
                    .group(group)
                    .importance(Importance::Low)
                    .doc("When Kafka has acknowledged nothing for this long while events wait, new requests get 503 at once."),
            )
            .define(
                ConfigKey::new("http.cors.allowed.origins", ConfigType::List)
                    .default("*")
                    .group(group)
                    .importance(Importance::Low)
                    .doc("Origins allowed by CORS: * for any, a list, or empty to send no CORS headers."),
            )
            .define(
                ConfigKey::new("http.trusted.proxies", ConfigType::List)
                    .default("")
                    .group(group)
                    .importance(Importance::Low)
                    .validator(Validator::Custom(|v| {
                        v.split(',').map(str::trim).filter(|s| !s.is_empty()).try_for_each(|s| Cidr::parse(s).map(|_| ()))
                    }))
                    .doc("Addresses or networks (CIDR) of proxies whose X-Forwarded-For header is believed for the client IP."),
            )
            .define(
                ConfigKey::new("max.batch.size", ConfigType::Int)
                    .default("4096")
                    .validator(Validator::at_least(1))
                    .importance(Importance::Low)
                    .doc("Most records handed to the producer per poll."),
            )
            .define(
                ConfigKey::new("errors.deadletterqueue.topic.name", ConfigType::String)
                    .default("")
                    .importance(Importance::Medium)
                    .doc("If set, the raw body of every rejected request (400) is written to this topic, with the reason in headers."),
            )
    }

    /// Parses and validates.
    pub fn parse(config: &ConfigMap) -> Result<TrackingConfig, ConfigErrors> {
        let p = Self::def().parse(config)?;
        let int = |k: &str| usize::try_from(p.int(k)).unwrap_or(0);
        let ms = |k: &str| Duration::from_millis(u64::try_from(p.int(k)).unwrap_or(0));
        let listener = parse_listener(&p.string("http.listener")).map_err(|e| ConfigErrors::one("http.listener", e))?;
        let write_keys = parse_write_keys(&p.string("write.keys")).map_err(|e| ConfigErrors::one("write.keys", e))?;
        let mut trusted = Vec::new();
        for s in p.list("http.trusted.proxies") {
            trusted.push(Cidr::parse(&s).map_err(|e| ConfigErrors::one("http.trusted.proxies", e))?);
        }
        let key_field = match p.string("key.field").to_ascii_lowercase().as_str() {
            "anonymousid" => KeyField::AnonymousId,
            "messageid" => KeyField::MessageId,
            "none" => KeyField::None,
            _ => KeyField::UserId,
        };
        let value_schema = if p.string("value.schema").eq_ignore_ascii_case("segment") {
            ValueSchema::Segment
        } else {
            ValueSchema::None
        };
        let max_request_bytes = int("http.max.request.bytes");
        let max_inflight_bytes = usize::try_from(p.long("http.max.inflight.bytes")).unwrap_or(usize::MAX);
        let mut errors = ConfigErrors(Vec::new());
        if max_inflight_bytes < max_request_bytes * 2 {
            errors.0.push(ConfigError::new(
                "http.max.inflight.bytes",
                format!("must be at least twice http.max.request.bytes ({max_request_bytes}), or no request of the largest size could ever be accepted"),
            ));
        }
        errors.into_result()?;
        Ok(TrackingConfig {
            listener,
            topic: p.string("topic"),
            key_field,
            value_schema,
            write_keys,
            max_request_bytes,
            max_event_bytes: int("http.max.event.bytes"),
            max_batch_events: int("http.max.batch.events"),
            max_inflight_bytes,
            request_timeout: ms("http.request.timeout.ms"),
            backpressure_wait: ms("http.backpressure.wait.ms"),
            unavailable_after: ms("http.unavailable.after.ms"),
            cors_origins: p.list("http.cors.allowed.origins"),
            trusted_proxies: trusted,
            max_batch_size: int("max.batch.size").max(1),
            dead_letter_topic: p.non_empty_string("errors.deadletterqueue.topic.name"),
        })
    }
}

fn parse_listener(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("http://").unwrap_or(raw);
    raw.parse::<SocketAddr>().map_err(|_| format!("{raw:?} is not host:port with an IP address (e.g. 0.0.0.0:8090)"))
}

fn parse_write_keys(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut keys = HashMap::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, source) = entry.split_once(':').unwrap_or((entry, entry));
        if key.is_empty() {
            return Err("an entry has an empty write key (expected key:sourceName)".to_string());
        }
        if keys.insert(key.to_string(), source.to_string()).is_some() {
            return Err("a write key is listed twice".to_string());
        }
    }
    Ok(keys)
}

fn check_topic_template(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err("String must be non-empty".to_string());
    }
    let mut rest = raw;
    while let Some(i) = rest.find("${") {
        let tail = &rest[i + 2..];
        let end = tail.find('}').ok_or("unclosed ${ in the topic template")?;
        match &tail[..end] {
            "type" | "source" => {}
            other => return Err(format!("unknown variable ${{{other}}} (known: ${{type}}, ${{source}})")),
        }
        rest = &tail[end + 1..];
    }
    if rest.contains(['/', ' ', ',']) {
        return Err("a topic name cannot contain '/', ' ' or ','".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_parse() {
        let c = TrackingConfig::parse(&config(&[])).expect("defaults are valid");
        assert_eq!(c.listener, "0.0.0.0:8090".parse().expect("addr"));
        assert_eq!(c.topic, "tracking.events");
        assert_eq!(c.key_field, KeyField::UserId);
        assert_eq!(c.max_request_bytes, 512_000);
        assert_eq!(c.cors_origins, vec!["*"]);
        assert!(c.write_keys.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = TrackingConfig::parse(&config(&[
            ("http.listener", "localhost"),
            ("topic", "tracking.${kind}"),
            ("key.field", "email"),
            ("http.trusted.proxies", "10.0.0.0/99"),
        ]))
        .expect_err("invalid");
        for key in ["http.listener", "topic", "key.field", "http.trusted.proxies"] {
            assert!(!err.for_key(key).is_empty(), "no error for {key}: {err:?}");
        }
        assert!(err.for_key("topic")[0].contains("${kind}"), "{err:?}");
    }

    #[test]
    fn write_keys_and_inflight_bound() {
        let c = TrackingConfig::parse(&config(&[("write.keys", "abc:web, def:ios")])).expect("valid");
        assert_eq!(c.write_keys["abc"], "web");
        assert_eq!(c.write_keys["def"], "ios");
        let err = TrackingConfig::parse(&config(&[
            ("http.max.inflight.bytes", "100000"),
            ("http.max.request.bytes", "60000"),
        ]))
        .expect_err("too small");
        assert!(!err.for_key("http.max.inflight.bytes").is_empty());
    }

    #[test]
    fn cidr_matching() {
        let net = Cidr::parse("10.1.0.0/16").expect("cidr");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.0.9".parse().expect("ip")), "v4-mapped v6 matches");
        let one = Cidr::parse("127.0.0.1").expect("ip");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let odd = Cidr::parse("192.168.0.0/23").expect("cidr");
        assert!(odd.contains("192.168.1.255".parse().expect("ip")));
        assert!(!odd.contains("192.168.2.0".parse().expect("ip")));
    }
}
