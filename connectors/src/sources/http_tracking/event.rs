//! Request bodies to events: Segment's tracking API shapes, free-form JSON/NDJSON and pixel query
//! strings, validated and enriched as Segment does. Pure: no I/O.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::borrow::Cow;
use std::fmt;

use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use sluice_api::{Schema, SchemaRef, Struct, Value};

use super::config::{KeyField, TrackingConfig, ValueSchema};
use super::obj::{quote, Kind, Obj, Raw};
use super::time::{format_millis, parse_millis};

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/<type>` for one Segment call of that type.
    Single(&'static str),
    /// `POST /v1/batch` (also `/v1/import`).
    Batch,
    /// `POST /v1/events`: a JSON array, one object, or NDJSON of free-form events.
    Events,
    /// `GET /v1/pixel.gif?...` or `/v1/pixel/<type>?...`: query parameters (or `data=<base64 JSON>`).
    Pixel(Option<&'static str>),
}

/// Segment's call types.
pub const SEGMENT_TYPES: [&str; 6] = ["track", "page", "screen", "identify", "group", "alias"];

/// Facts about the request that enrich its events.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// Server time of receipt, epoch milliseconds.
    pub received_at: i64,
    /// Client IP (after trusted-proxy resolution).
    pub ip: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Write key from HTTP basic auth (the username).
    pub write_key: Option<String>,
}

/// A request refused, with what to tell the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// HTTP status: 400, 401 or 413.
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
    /// Index of the offending event within the request, when one is to blame.
    pub index: Option<usize>,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
}

impl Rejection {
    fn bad(message: impl Into<String>) -> Rejection {
        Rejection { status: 400, message: message.into(), index: None, field: None }
    }

    fn event(index: usize, field: &str, message: impl Into<String>) -> Rejection {
        let field = (!field.is_empty()).then(|| field.to_string());
        Rejection { status: 400, message: message.into(), index: Some(index), field }
    }
}

/// One accepted event, ready to become a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: Option<String>,
    /// Event time (skew-corrected), epoch milliseconds: the Kafka record timestamp.
    pub timestamp: i64,
    /// The enriched event as JSON text.
    pub json: String,
}

/// Unique enough message ids for events that came without one (UUID v4 text).
#[derive(Debug)]
pub struct IdGen {
    seed: u64,
    counter: AtomicU64,
}

impl Default for IdGen {
    fn default() -> IdGen {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
        );
        IdGen { seed: h.finish(), counter: AtomicU64::new(0) }
    }
}

impl IdGen {
    fn mix(mut z: u64) -> u64 {
        // splitmix64
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A new id.
    pub fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = Self::mix(self.seed ^ n.rotate_left(17));
        let lo = Self::mix(hi ^ n);
        let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x4000;
        let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

/// What the batch envelope contributes to each of its events.
#[derive(Default)]
struct Envelope<'a> {
    context: Option<Obj<'a>>,
    integrations: Option<Raw<'a>>,
    sent_at: Option<i64>,
}

/// Turns request bodies into events according to the connector's config.
pub struct Parser {
    config: Arc<TrackingConfig>,
    ids: IdGen,
    schema: SchemaRef,
}

/// The value schema of `value.schema=segment`.
pub fn segment_schema() -> SchemaRef {
    let s = || Schema::string().optional();
    Arc::new(
        Schema::struct_of([
            ("type", Schema::string()),
            ("messageId", Schema::string()),
            ("userId", s()),
            ("anonymousId", s()),
            ("event", s()),
            ("name", s()),
            ("groupId", s()),
            ("previousId", s()),
            ("timestamp", Schema::string()),
            ("originalTimestamp", s()),
            ("sentAt", s()),
            ("receivedAt", Schema::string()),
            ("sourceName", s()),
            ("context", s()),
            ("properties", s()),
            ("traits", s()),
            ("integrations", s()),
            ("extra", s()),
        ])
        .named("sluice.tracking.Event")
        .version(1),
    )
}

fn malformed(e: impl fmt::Display) -> Rejection {
    Rejection::bad(format!("malformed JSON: {e}"))
}

impl Parser {
    /// A parser for this config.
    pub fn new(config: Arc<TrackingConfig>) -> Parser {
        Parser { config, ids: IdGen::default(), schema: segment_schema() }
    }

    /// The record value schema (`None` for schemaless JSON).
    pub fn value_schema(&self) -> Option<SchemaRef> {
        (self.config.value_schema == ValueSchema::Segment).then(|| self.schema.clone())
    }

    /// Parses a request body (already gzip-decoded; `query` for the pixel). Every event is checked
    /// before any is accepted: a request is taken whole or refused whole.
    pub fn parse(
        &self,
        endpoint: Endpoint,
        body: &[u8],
        query: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<Event>, Rejection> {
        let text = std::str::from_utf8(body).map_err(|e| Rejection::bad(format!("the body is not UTF-8: {e}")))?;
        match endpoint {
            Endpoint::Single(kind) => {
                let obj = Obj::parse(text).map_err(malformed)?;
                self.check_size(0, body.len())?;
                let source = self.write_key(meta, obj.string("writeKey").as_deref())?;
                Ok(vec![self.segment_event(0, Some(kind), obj, &Envelope::default(), meta, source.as_deref())?])
            }
            Endpoint::Batch => {
                let envelope = Obj::parse(text).map_err(malformed)?;
                let items: Vec<&RawValue> = match envelope.kind("batch") {
                    Some(Kind::Array) => {
                        serde_json::from_str(envelope.get("batch").unwrap_or("[]")).map_err(malformed)?
                    }
                    _ => {
                        return Err(Rejection {
                            field: Some("batch".into()),
                            ..Rejection::bad("the body has no \"batch\" array")
                        })
                    }
                };
                self.check_count(items.len())?;
                let source = self.write_key(meta, envelope.string("writeKey").as_deref())?;
                let context = match envelope.kind("context") {
                    None | Some(Kind::Null) => None,
                    Some(Kind::Object) => Some(Obj::parse(envelope.get("context").unwrap_or("{}")).map_err(malformed)?),
                    Some(_) => {
                        return Err(Rejection {
                            field: Some("context".into()),
                            ..Rejection::bad("context must be an object")
                        })
                    }
                };
                let sent_at = match timestamp_field(&envelope, "sentAt") {
                    Ok(t) => t,
                    Err(message) => return Err(Rejection { field: Some("sentAt".into()), ..Rejection::bad(message) }),
                };
                let integrations = envelope.get("integrations").filter(|t| Kind::of(t) == Kind::Object);
                let env = Envelope { context, integrations: integrations.map(|t| Raw::Owned(t.to_string())), sent_at };
                let mut events = Vec::with_capacity(items.len());
                for (i, raw) in items.iter().enumerate() {
                    self.check_size(i, raw.get().len())?;
                    let obj =
                        Obj::parse(raw.get()).map_err(|e| Rejection::event(i, "batch", format!("event {i}: {e}")))?;
                    events.push(self.segment_event(i, None, obj, &env, meta, source.as_deref())?);
                }
                Ok(events)
            }
            Endpoint::Events => {
                let source = self.write_key(meta, None)?;
                let trimmed = text.trim_start();
                let raws: Vec<&str> = if trimmed.starts_with('[') {
                    let items: Vec<&RawValue> = serde_json::from_str(trimmed).map_err(malformed)?;
                    items.into_iter().map(RawValue::get).collect()
                } else {
                    text.split('\n').filter(|l| !l.trim().is_empty()).collect()
                };
                if raws.is_empty() {
                    return Err(Rejection::bad("no events in the body"));
                }
                self.check_count(raws.len())?;
                let mut events = Vec::with_capacity(raws.len());
                for (i, raw) in raws.into_iter().enumerate() {
                    self.check_size(i, raw.len())?;
                    let obj = Obj::parse(raw).map_err(|e| Rejection::event(i, "", format!("event {i}: {e}")))?;
                    events.push(self.free_event(i, obj, meta, source.as_deref())?);
                }
                Ok(events)
            }
            Endpoint::Pixel(kind) => {
                let json = Json::Object(pixel_object(query).map_err(Rejection::bad)?).to_string();
                self.check_size(0, query.len())?;
                let obj = Obj::parse(&json).map_err(malformed)?;
                let source = self.write_key(meta, obj.string("writeKey").as_deref())?;
                let kind = match kind {
                    Some(k) => Some(k),
                    None => {
                        let default = if obj.has("event") { "track" } else { "page" };
                        let t = obj.string("type");
                        let t = t.as_deref().unwrap_or(default);
                        SEGMENT_TYPES.iter().copied().find(|k| *k == t)
                    }
                };
                let Some(kind) = kind else {
                    return Err(Rejection::event(
                        0,
                        "type",
                        "type must be one of track, page, screen, identify, group, alias",
                    ));
                };
                Ok(vec![self.segment_event(0, Some(kind), obj, &Envelope::default(), meta, source.as_deref())?])
            }
        }
    }

    fn check_count(&self, n: usize) -> Result<(), Rejection> {
        if n > self.config.max_batch_events {
            return Err(Rejection::bad(format!(
                "{n} events in one request; at most {} are accepted (http.max.batch.events)",
                self.config.max_batch_events
            )));
        }
        Ok(())
    }

    fn check_size(&self, index: usize, len: usize) -> Result<(), Rejection> {
        if len > self.config.max_event_bytes {
            return Err(Rejection::event(
                index,
                "",
                format!(
                    "event {index} is {len} bytes; the limit is {} (http.max.event.bytes)",
                    self.config.max_event_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The source name of the request's write key (basic auth wins over the body); the key is
    /// checked when keys are configured, and ignored otherwise.
    fn write_key(&self, meta: &RequestMeta, body_key: Option<&str>) -> Result<Option<String>, Rejection> {
        if self.config.write_keys.is_empty() {
            return Ok(None);
        }
        let key = meta.write_key.as_deref().or(body_key);
        let unauthorized =
            |m: &str| Rejection { status: 401, message: m.to_string(), index: None, field: Some("writeKey".into()) };
        match key {
            None => Err(unauthorized(
                "a write key is required: send it as the HTTP basic-auth username or as writeKey in the body",
            )),
            Some(k) => match self.config.write_keys.get(k) {
                Some(source) => Ok(Some(source.clone())),
                None => Err(unauthorized("unknown write key")),
            },
        }
    }

    fn segment_event<'a>(
        &self,
        i: usize,
        kind: Option<&'static str>,
        mut obj: Obj<'a>,
        env: &Envelope<'a>,
        meta: &RequestMeta,
        source: Option<&str>,
    ) -> Result<Event, Rejection> {
        let kind: &'static str = match kind {
            Some(k) => k,
            None => match obj.string("type") {
                Some(t) => SEGMENT_TYPES.iter().copied().find(|k| *k == t).ok_or_else(|| {
                    Rejection::event(
                        i,
                        "type",
                        format!("event {i}: type {t:?} is not one of track, page, screen, identify, group, alias"),
                    )
                })?,
                None => return Err(Rejection::event(i, "type", format!("event {i}: type is required"))),
            },
        };
        if obj.string("type").as_deref() != Some(kind) {
            obj.set_string("type", kind);
        }
        obj.remove("writeKey");
        for field in ["userId", "anonymousId", "previousId", "groupId"] {
            identity(&mut obj, i, field)?;
        }
        match kind {
            "alias" => {
                for f in ["userId", "previousId"] {
                    if !obj.has(f) {
                        return Err(Rejection::event(i, f, format!("event {i}: alias requires {f}")));
                    }
                }
            }
            _ if !obj.has("userId") && !obj.has("anonymousId") => {
                return Err(Rejection::event(i, "userId", format!("event {i}: userId or anonymousId is required")));
            }
            _ => {}
        }
        match kind {
            "track" if obj.string("event").is_none_or(|e| e.trim().is_empty()) => {
                return Err(Rejection::event(i, "event", format!("event {i}: track requires a non-empty event name")))
            }
            "group" if !obj.has("groupId") => {
                return Err(Rejection::event(i, "groupId", format!("event {i}: group requires groupId")))
            }
            _ => {}
        }
        for f in ["name", "event", "category"] {
            if obj.kind(f).is_some_and(|k| k != Kind::Null && k != Kind::String) {
                return Err(Rejection::event(i, f, format!("event {i}: {f} must be a string")));
            }
        }
        for f in ["properties", "traits", "context", "integrations"] {
            if obj.kind(f).is_some_and(|k| k != Kind::Null && k != Kind::Object) {
                return Err(Rejection::event(i, f, format!("event {i}: {f} must be an object")));
            }
        }
        if let Some(integrations) = &env.integrations {
            obj.set_default("integrations", integrations.clone());
        }
        self.enrich(i, kind, obj, env, meta, source)
    }

    fn free_event(
        &self,
        i: usize,
        mut obj: Obj<'_>,
        meta: &RequestMeta,
        source: Option<&str>,
    ) -> Result<Event, Rejection> {
        obj.remove("writeKey");
        let kind = match obj.string("type") {
            Some(t) if !t.is_empty() && is_topic_safe(&t) => t.into_owned(),
            _ => "event".to_string(),
        };
        if obj.kind("context").is_some_and(|k| k != Kind::Null && k != Kind::Object) {
            return Err(Rejection::event(i, "context", format!("event {i}: context must be an object")));
        }
        if self.config.value_schema == ValueSchema::Segment && !obj.has("type") {
            obj.set_string("type", &kind);
        }
        self.enrich(i, &kind, obj, &Envelope::default(), meta, source)
    }

    /// Adds messageId, receivedAt, the skew-corrected timestamp, context.ip/userAgent and the
    /// source name; picks topic and key; writes the JSON.
    fn enrich<'a>(
        &self,
        i: usize,
        kind: &str,
        mut obj: Obj<'a>,
        env: &Envelope<'a>,
        meta: &RequestMeta,
        source: Option<&str>,
    ) -> Result<Event, Rejection> {
        match obj.kind("messageId") {
            Some(Kind::String) if obj.string("messageId").is_some_and(|s| !s.is_empty() && s.len() <= 256) => {}
            None | Some(Kind::Null) => obj.set_string("messageId", &self.ids.next()),
            Some(Kind::Number) => {
                let text = obj.get("messageId").unwrap_or("0").to_string();
                obj.set_string("messageId", &text);
            }
            Some(_) => {
                return Err(Rejection::event(
                    i,
                    "messageId",
                    format!("event {i}: messageId must be a string of 1 to 256 characters"),
                ))
            }
        }
        let field = |obj: &Obj<'_>, f: &str| {
            timestamp_field(obj, f).map_err(|message| Rejection::event(i, f, format!("event {i}: {message}")))
        };
        let ts = field(&obj, "timestamp")?;
        let sent_at = field(&obj, "sentAt")?.or(env.sent_at);
        let original = field(&obj, "originalTimestamp")?.or(ts);
        let received = meta.received_at;
        // Segment: timestamp = receivedAt - (sentAt - originalTimestamp) corrects the device clock.
        let timestamp = match (original, sent_at) {
            (Some(o), Some(s)) => received - (s - o),
            (Some(o), None) => o,
            (None, _) => received,
        };
        if let Some(o) = original {
            obj.set_string("originalTimestamp", &format_millis(o));
        }
        if let Some(s) = sent_at {
            obj.set_string("sentAt", &format_millis(s));
        }
        obj.set_string("timestamp", &format_millis(timestamp));
        obj.set_string("receivedAt", &format_millis(received));
        if let Some(source) = source {
            obj.set_string("sourceName", source);
        }
        // Context: the event's own keys win over the batch's; ip and userAgent only when absent.
        let own = obj.get("context").filter(|t| Kind::of(t) == Kind::Object).map(str::to_string);
        let mut context = match &own {
            Some(text) => Obj::parse(text).map_err(|e| Rejection::event(i, "context", format!("event {i}: {e}")))?,
            None => Obj::default(),
        };
        if let Some(batch_ctx) = &env.context {
            for (k, v) in batch_ctx.entries() {
                context.set_default(k, v.clone());
            }
        }
        if let Some(ip) = &meta.ip {
            context.set_default("ip", Raw::Owned(quote(ip)));
        }
        if let Some(ua) = &meta.user_agent {
            context.set_default("userAgent", Raw::Owned(quote(ua)));
        }
        obj.set("context", context.to_json());

        let key = {
            let get = |f: &str| obj.string(f).filter(|s| !s.is_empty()).map(Cow::into_owned);
            match self.config.key_field {
                KeyField::UserId => get("userId").or_else(|| get("anonymousId")),
                KeyField::AnonymousId => get("anonymousId").or_else(|| get("userId")),
                KeyField::MessageId => get("messageId"),
                KeyField::None => None,
            }
        };
        let topic = if self.config.topic.contains("${") {
            self.config.topic.replace("${type}", kind).replace("${source}", source.unwrap_or("default"))
        } else {
            self.config.topic.clone()
        };
        Ok(Event { topic, key, timestamp, json: obj.to_json() })
    }

    /// The record value of an event, per `value.schema`.
    pub fn value_of(&self, event: Event) -> Value {
        match self.config.value_schema {
            // Written once, by `enrich`; the converter writes the text as it is.
            ValueSchema::None => Value::Json(event.json),
            ValueSchema::Segment => {
                let mut body = match serde_json::from_str::<Json>(&event.json) {
                    Ok(Json::Object(m)) => m,
                    _ => Map::new(),
                };
                let mut st = Struct::new(self.schema.clone());
                for field in &self.schema.fields {
                    let v = match field.name.as_str() {
                        "extra" => continue,
                        name => body.remove(name),
                    };
                    st.values[field.index] = match v {
                        None | Some(Json::Null) => Value::Null,
                        Some(Json::String(s)) => Value::String(s),
                        Some(other) => Value::String(other.to_string()),
                    };
                }
                if !body.is_empty() {
                    if let Some(f) = self.schema.field("extra") {
                        st.values[f.index] = Value::String(Json::Object(body).to_string());
                    }
                }
                Value::Struct(st)
            }
        }
    }
}

fn is_topic_safe(s: &str) -> bool {
    s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A timestamp field: absent or null is `None`; anything but an ISO 8601 string is an error.
fn timestamp_field(obj: &Obj<'_>, f: &str) -> Result<Option<i64>, String> {
    match obj.kind(f) {
        None | Some(Kind::Null) => Ok(None),
        Some(Kind::String) => match obj.string(f).as_deref().and_then(parse_millis) {
            Some(t) => Ok(Some(t)),
            None => Err(format!("{f} {} is not an ISO 8601 timestamp", obj.get(f).unwrap_or(""))),
        },
        Some(_) => Err(format!("{f} {} is not an ISO 8601 timestamp", obj.get(f).unwrap_or(""))),
    }
}

/// Identity fields are strings; numbers are accepted and turned into strings, as Segment does.
fn identity(obj: &mut Obj<'_>, i: usize, field: &str) -> Result<(), Rejection> {
    match obj.kind(field) {
        None | Some(Kind::Null) => Ok(()),
        Some(Kind::String) => {
            if obj.get(field) == Some("\"\"") {
                obj.remove(field);
            }
            Ok(())
        }
        Some(Kind::Number) => {
            let text = obj.get(field).unwrap_or("0").to_string();
            obj.set_string(field, &text);
            Ok(())
        }
        Some(other) => {
            Err(Rejection::event(i, field, format!("event {i}: {field} must be a string, not {}", other.article())))
        }
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| format!("bad percent-encoding in the query string near {:?}", &s[i..]))?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the query string is not UTF-8".to_string())
}

/// A pixel's query string as an event object: `data=<base64 JSON>` (Segment's pixel API), or
/// parameters: known top-level fields stay top-level, `context.x`/`properties.x`/`traits.x` go into
/// those objects, anything else into `properties`.
fn pixel_object(query: &str) -> Result<Map<String, Json>, String> {
    use base64::Engine;
    let mut obj = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k)?, percent_decode(v)?);
        if k == "data" {
            let engine = base64::engine::general_purpose::STANDARD;
            let raw = engine
                .decode(v.trim_end_matches('='))
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(v.trim_end_matches('=')))
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')))
                .map_err(|_| "data is not base64".to_string())?;
            let data = match serde_json::from_slice::<Json>(&raw) {
                Ok(Json::Object(m)) => m,
                Ok(_) => return Err("data is not a base64 JSON object".to_string()),
                Err(e) => return Err(format!("data is not a base64 JSON object: {e}")),
            };
            for (dk, dv) in data {
                obj.insert(dk, dv);
            }
            continue;
        }
        const TOP: [&str; 11] = [
            "type",
            "event",
            "name",
            "category",
            "userId",
            "anonymousId",
            "messageId",
            "timestamp",
            "writeKey",
            "groupId",
            "previousId",
        ];
        let (target, field) = match k.split_once('.') {
            Some((t @ ("context" | "properties" | "traits"), f)) if !f.is_empty() => (Some(t), f.to_string()),
            _ if TOP.contains(&k.as_str()) => (None, k),
            _ => (Some("properties"), k),
        };
        match target {
            None => {
                obj.insert(field, Json::String(v));
            }
            Some(t) => {
                let entry = obj.entry(t).or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(m) = entry {
                    m.insert(field, Json::String(v));
                }
            }
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_api::ConfigMap;

    fn parser(pairs: &[(&str, &str)]) -> Parser {
        let map: ConfigMap = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Parser::new(Arc::new(TrackingConfig::parse(&map).expect("config")))
    }

    fn doc(e: &Event) -> Json {
        serde_json::from_str(&e.json).expect("valid JSON")
    }

    fn meta() -> RequestMeta {
        RequestMeta {
            received_at: parse_millis("2026-11-22T10:00:10.000Z").expect("ts"),
            ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8".into()),
            write_key: None,
        }
    }

    fn one(p: &Parser, endpoint: Endpoint, body: Json) -> Event {
        let mut events = p.parse(endpoint, body.to_string().as_bytes(), "", &meta()).expect("accepted");
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn track_is_enriched_and_skew_corrected() {
        let p = parser(&[]);
        let e = one(
            &p,
            Endpoint::Single("track"),
            json!({"userId": "u1", "event": "Order Completed", "properties": {"total": 9.5},
                   "timestamp": "2026-11-22T11:00:00+01:00", "sentAt": "2026-11-22T10:00:05Z",
                   "context": {"ip": "10.0.0.1"}, "writeKey": "secret"}),
        );
        assert_eq!(e.topic, "tracking.events");
        assert_eq!(e.key.as_deref(), Some("u1"));
        let b = &doc(&e);
        assert_eq!(b["type"], "track");
        assert_eq!(b["originalTimestamp"], "2026-11-22T10:00:00.000Z");
        // The device clock was 5 s behind the send: receivedAt - 5 s.
        assert_eq!(b["timestamp"], "2026-11-22T10:00:05.000Z");
        assert_eq!(e.timestamp, parse_millis("2026-11-22T10:00:05Z").expect("ts"));
        assert_eq!(b["receivedAt"], "2026-11-22T10:00:10.000Z");
        assert_eq!(b["sentAt"], "2026-11-22T10:00:05.000Z");
        assert_eq!(b["context"]["ip"], "10.0.0.1", "a client-provided ip is kept");
        assert_eq!(b["context"]["userAgent"], "curl/8");
        assert!(b.get("writeKey").is_none(), "the write key never reaches Kafka");
        assert_eq!(b["messageId"].as_str().map(str::len), Some(36));
    }

    #[test]
    fn batch_envelope_context_and_sent_at_apply_to_each_event() {
        let p = parser(&[("topic", "tracking.${type}"), ("write.keys", "k1:web")]);
        let body = json!({"batch": [
            {"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"}, "timestamp": "2026-11-22T10:00:00Z"},
            {"type": "page", "userId": 42, "name": "Home", "context": {"locale": "de"}, "messageId": "m-2"}],
            "context": {"locale": "en", "library": {"name": "analytics.js"}}, "sentAt": "2026-11-22T10:00:02Z", "writeKey": "k1"});
        let events = p.parse(Endpoint::Batch, body.to_string().as_bytes(), "", &meta()).expect("accepted");
        assert_eq!(events.iter().map(|e| e.topic.as_str()).collect::<Vec<_>>(), ["tracking.identify", "tracking.page"]);
        assert_eq!(events[0].key.as_deref(), Some("a1"));
        assert_eq!(events[1].key.as_deref(), Some("42"), "numeric userId becomes a string");
        assert_eq!(doc(&events[0])["timestamp"], "2026-11-22T10:00:08.000Z");
        assert_eq!(doc(&events[0])["context"]["locale"], "en");
        assert_eq!(doc(&events[1])["context"]["locale"], "de", "the event's own context wins");
        assert_eq!(doc(&events[1])["context"]["library"]["name"], "analytics.js");
        assert_eq!(doc(&events[1])["messageId"], "m-2");
        assert_eq!(doc(&events[1])["sourceName"], "web");
        assert_eq!(doc(&events[1])["timestamp"], "2026-11-22T10:00:10.000Z", "no timestamp: receivedAt");
    }

    #[test]
    fn every_bad_event_names_its_index_and_field() {
        let p = parser(&[("http.max.event.bytes", "200")]);
        let cases: Vec<(Endpoint, String, Option<usize>, &str)> = vec![
            (Endpoint::Single("track"), json!({"event": "x"}).to_string(), Some(0), "userId"),
            (Endpoint::Single("track"), json!({"userId": "u"}).to_string(), Some(0), "event"),
            (Endpoint::Single("group"), json!({"userId": "u"}).to_string(), Some(0), "groupId"),
            (Endpoint::Single("alias"), json!({"userId": "u"}).to_string(), Some(0), "previousId"),
            (Endpoint::Single("identify"), json!({"userId": ["u"]}).to_string(), Some(0), "userId"),
            (
                Endpoint::Single("track"),
                json!({"userId": "u", "event": "e", "timestamp": "noon"}).to_string(),
                Some(0),
                "timestamp",
            ),
            (
                Endpoint::Single("track"),
                json!({"userId": "u", "event": "e", "properties": [1]}).to_string(),
                Some(0),
                "properties",
            ),
            (
                Endpoint::Batch,
                json!({"batch": [{"type": "track", "userId": "u", "event": "e"}, {"type": "click", "userId": "u"}]})
                    .to_string(),
                Some(1),
                "type",
            ),
            (
                Endpoint::Batch,
                json!({"batch": [{"type": "page", "userId": "u"}, {"userId": "u"}]}).to_string(),
                Some(1),
                "type",
            ),
            (
                Endpoint::Batch,
                json!({"batch": [{"type": "page", "userId": "u", "name": "x".repeat(300)}]}).to_string(),
                Some(0),
                "",
            ),
            (Endpoint::Batch, json!({"batch": [1]}).to_string(), Some(0), "batch"),
            (Endpoint::Events, "{\"a\":1}\n{\"b\":2,\"timestamp\":\"soon\"}\n".to_string(), Some(1), "timestamp"),
            (Endpoint::Events, "[{\"a\":1}, 3]".to_string(), Some(1), ""),
        ];
        for (endpoint, body, index, field) in cases {
            let r = p.parse(endpoint, body.as_bytes(), "", &meta()).expect_err(&body);
            assert_eq!(r.status, 400, "{body}");
            assert_eq!(r.index, index, "{body}: {r:?}");
            assert_eq!(r.field.as_deref().unwrap_or(""), field, "{body}: {r:?}");
            if let Some(i) = index {
                assert!(r.message.contains(&format!("event {i}")), "{body}: {}", r.message);
            }
        }
        for body in ["{", "[]", "\"str\"", "{\"batch\": 3}", ""] {
            let endpoint = if body == "[]" || body.is_empty() { Endpoint::Events } else { Endpoint::Batch };
            let r = p.parse(endpoint, body.as_bytes(), "", &meta()).expect_err(body);
            assert_eq!(r.status, 400, "{body}: {r:?}");
        }
    }

    #[test]
    fn write_keys_are_enforced_when_configured() {
        let p = parser(&[("write.keys", "k1:web")]);
        let body = json!({"userId": "u", "event": "e"}).to_string();
        let r = p.parse(Endpoint::Single("track"), body.as_bytes(), "", &meta()).expect_err("no key");
        assert_eq!(r.status, 401);
        let m = RequestMeta { write_key: Some("nope".into()), ..meta() };
        assert_eq!(p.parse(Endpoint::Single("track"), body.as_bytes(), "", &m).expect_err("bad key").status, 401);
        let m = RequestMeta { write_key: Some("k1".into()), ..meta() };
        let e = p.parse(Endpoint::Single("track"), body.as_bytes(), "", &m).expect("good key");
        assert_eq!(doc(&e[0])["sourceName"], "web");
    }

    #[test]
    fn ndjson_and_arrays_of_free_form_events() {
        let p = parser(&[("key.field", "messageId")]);
        let nd = "{\"type\":\"click\",\"x\":1}\n\n{\"y\":2,\"messageId\":\"m7\"}\n";
        let events = p.parse(Endpoint::Events, nd.as_bytes(), "", &meta()).expect("ndjson");
        assert_eq!(events.len(), 2);
        assert_eq!(doc(&events[0])["x"], 1);
        assert_eq!(events[1].key.as_deref(), Some("m7"));
        let arr = "[{\"a\":1},{\"b\":true}]";
        assert_eq!(p.parse(Endpoint::Events, arr.as_bytes(), "", &meta()).expect("array").len(), 2);
    }

    #[test]
    fn too_many_events_are_refused() {
        let p = parser(&[("http.max.batch.events", "2")]);
        let r = p.parse(Endpoint::Events, b"{}\n{}\n{}\n", "", &meta()).expect_err("3 > 2");
        assert!(r.message.contains("http.max.batch.events"), "{}", r.message);
    }

    #[test]
    fn pixel_query_becomes_an_event() {
        use base64::Engine;
        let p = parser(&[]);
        let e = p
            .parse(
                Endpoint::Pixel(None),
                b"",
                "event=Email%20Opened&userId=u9&campaign=fall+sale&context.locale=fr",
                &meta(),
            )
            .expect("pixel");
        let b = &doc(&e[0]);
        assert_eq!(b["type"], "track");
        assert_eq!(b["event"], "Email Opened");
        assert_eq!(b["properties"]["campaign"], "fall sale");
        assert_eq!(b["context"]["locale"], "fr");
        let data =
            base64::engine::general_purpose::STANDARD.encode(json!({"userId": "u1", "name": "Home"}).to_string());
        let e = p.parse(Endpoint::Pixel(Some("page")), b"", &format!("data={data}"), &meta()).expect("data pixel");
        assert_eq!(doc(&e[0])["type"], "page");
        assert_eq!(doc(&e[0])["name"], "Home");
        assert!(p.parse(Endpoint::Pixel(None), b"", "name=x", &meta()).is_err(), "no identity");
        assert!(p.parse(Endpoint::Pixel(None), b"", "userId=%zz", &meta()).is_err());
    }

    #[test]
    fn segment_schema_values() {
        let p = parser(&[("value.schema", "segment")]);
        let e = one(
            &p,
            Endpoint::Single("track"),
            json!({"userId": "u1", "event": "E", "properties": {"a": 1}, "custom": true}),
        );
        let Value::Struct(st) = p.value_of(e) else { panic!("struct expected") };
        assert_eq!(st.get("userId"), Some(&Value::String("u1".into())));
        assert_eq!(st.get("properties"), Some(&Value::String("{\"a\":1}".into())));
        assert_eq!(st.get("extra"), Some(&Value::String("{\"custom\":true}".into())));
        assert_eq!(st.get("anonymousId"), Some(&Value::Null));
        st.schema.validate_value(&Value::Struct(st.clone())).expect("valid against its schema");
    }

    #[test]
    fn ids_are_unique_uuid_text() {
        let ids = IdGen::default();
        let a: std::collections::HashSet<String> = (0..10_000).map(|_| ids.next()).collect();
        assert_eq!(a.len(), 10_000);
        let one = ids.next();
        assert_eq!(one.len(), 36);
        assert_eq!(&one[14..15], "4");
    }
}
