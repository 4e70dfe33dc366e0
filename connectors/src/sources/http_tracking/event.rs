//! Request bodies to events: Segment's tracking API shapes, free-form JSON/NDJSON and pixel query
//! strings, validated and enriched as Segment does. Pure: no I/O.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use sluice_api::{Schema, SchemaRef, Struct, Value};

use super::config::{KeyField, TrackingConfig, ValueSchema};
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
    /// The enriched event.
    pub body: Map<String, Json>,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    context: Option<Json>,
    #[serde(default)]
    integrations: Option<Json>,
    #[serde(default)]
    sent_at: Option<Json>,
    #[serde(default)]
    write_key: Option<Json>,
}

/// What the batch envelope contributes to each of its events.
#[derive(Default)]
struct Envelope {
    context: Option<Map<String, Json>>,
    integrations: Option<Json>,
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
        match endpoint {
            Endpoint::Single(kind) => {
                let obj = parse_object(body).map_err(|e| Rejection::bad(format!("malformed JSON: {e}")))?;
                self.check_size(0, body.len())?;
                let source = self.write_key(meta, obj.get("writeKey"))?;
                Ok(vec![self.segment_event(0, Some(kind), obj, &Envelope::default(), meta, source.as_deref())?])
            }
            Endpoint::Batch => {
                let parsed: BatchBody<'_> =
                    serde_json::from_slice(body).map_err(|e| Rejection::bad(format!("malformed JSON: {e}")))?;
                let items = parsed.batch.ok_or_else(|| Rejection {
                    field: Some("batch".into()),
                    ..Rejection::bad("the body has no \"batch\" array")
                })?;
                self.check_count(items.len())?;
                let source = self.write_key(meta, parsed.write_key.as_ref())?;
                let context = match parsed.context {
                    None | Some(Json::Null) => None,
                    Some(Json::Object(m)) => Some(m),
                    Some(_) => {
                        return Err(Rejection {
                            field: Some("context".into()),
                            ..Rejection::bad("context must be an object")
                        })
                    }
                };
                let sent_at = match &parsed.sent_at {
                    None | Some(Json::Null) => None,
                    Some(v) => Some(timestamp_of(v).ok_or_else(|| Rejection {
                        field: Some("sentAt".into()),
                        ..Rejection::bad(format!("sentAt {v} is not an ISO 8601 timestamp"))
                    })?),
                };
                let env = Envelope { context, integrations: parsed.integrations, sent_at };
                let mut events = Vec::with_capacity(items.len());
                for (i, raw) in items.iter().enumerate() {
                    self.check_size(i, raw.get().len())?;
                    let obj = parse_object(raw.get().as_bytes())
                        .map_err(|e| Rejection::event(i, "batch", format!("event {i}: {e}")))?;
                    events.push(self.segment_event(i, None, obj, &env, meta, source.as_deref())?);
                }
                Ok(events)
            }
            Endpoint::Events => {
                let source = self.write_key(meta, None)?;
                let trimmed = trim_start(body);
                let raws: Vec<&[u8]> = if trimmed.first() == Some(&b'[') {
                    let items: Vec<&RawValue> =
                        serde_json::from_slice(trimmed).map_err(|e| Rejection::bad(format!("malformed JSON: {e}")))?;
                    items.into_iter().map(|r| r.get().as_bytes()).collect()
                } else {
                    body.split(|b| *b == b'\n').filter(|l| !trim_start(l).is_empty()).collect()
                };
                if raws.is_empty() {
                    return Err(Rejection::bad("no events in the body"));
                }
                self.check_count(raws.len())?;
                let mut events = Vec::with_capacity(raws.len());
                for (i, raw) in raws.into_iter().enumerate() {
                    self.check_size(i, raw.len())?;
                    let obj = parse_object(raw).map_err(|e| Rejection::event(i, "", format!("event {i}: {e}")))?;
                    events.push(self.free_event(i, obj, meta, source.as_deref())?);
                }
                Ok(events)
            }
            Endpoint::Pixel(kind) => {
                let obj = pixel_object(query).map_err(Rejection::bad)?;
                self.check_size(0, query.len())?;
                let source = self.write_key(meta, obj.get("writeKey"))?;
                let kind = kind.or_else(|| {
                    let t = obj.get("type").and_then(Json::as_str).unwrap_or(if obj.contains_key("event") {
                        "track"
                    } else {
                        "page"
                    });
                    SEGMENT_TYPES.iter().copied().find(|k| *k == t)
                });
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
    fn write_key(&self, meta: &RequestMeta, body_key: Option<&Json>) -> Result<Option<String>, Rejection> {
        if self.config.write_keys.is_empty() {
            return Ok(None);
        }
        let key = meta.write_key.clone().or_else(|| body_key.and_then(Json::as_str).map(str::to_string));
        let unauthorized =
            |m: &str| Rejection { status: 401, message: m.to_string(), index: None, field: Some("writeKey".into()) };
        match key {
            None => Err(unauthorized(
                "a write key is required: send it as the HTTP basic-auth username or as writeKey in the body",
            )),
            Some(k) => match self.config.write_keys.get(&k) {
                Some(source) => Ok(Some(source.clone())),
                None => Err(unauthorized("unknown write key")),
            },
        }
    }

    fn segment_event(
        &self,
        i: usize,
        kind: Option<&'static str>,
        mut obj: Map<String, Json>,
        env: &Envelope,
        meta: &RequestMeta,
        source: Option<&str>,
    ) -> Result<Event, Rejection> {
        let kind: &'static str = match kind {
            Some(k) => k,
            None => match obj.get("type") {
                Some(Json::String(t)) => SEGMENT_TYPES.iter().copied().find(|k| k == t).ok_or_else(|| {
                    Rejection::event(
                        i,
                        "type",
                        format!("event {i}: type {t:?} is not one of track, page, screen, identify, group, alias"),
                    )
                })?,
                _ => return Err(Rejection::event(i, "type", format!("event {i}: type is required"))),
            },
        };
        obj.insert("type".into(), Json::String(kind.into()));
        obj.remove("writeKey");
        for field in ["userId", "anonymousId", "previousId", "groupId"] {
            identity(&mut obj, i, field)?;
        }
        let has = |obj: &Map<String, Json>, f: &str| obj.get(f).is_some_and(|v| !v.is_null());
        match kind {
            "alias" => {
                for f in ["userId", "previousId"] {
                    if !has(&obj, f) {
                        return Err(Rejection::event(i, f, format!("event {i}: alias requires {f}")));
                    }
                }
            }
            _ if !has(&obj, "userId") && !has(&obj, "anonymousId") => {
                return Err(Rejection::event(i, "userId", format!("event {i}: userId or anonymousId is required")));
            }
            _ => {}
        }
        match kind {
            "track" => match obj.get("event") {
                Some(Json::String(e)) if !e.trim().is_empty() => {}
                _ => {
                    return Err(Rejection::event(
                        i,
                        "event",
                        format!("event {i}: track requires a non-empty event name"),
                    ))
                }
            },
            "group" if !has(&obj, "groupId") => {
                return Err(Rejection::event(i, "groupId", format!("event {i}: group requires groupId")))
            }
            _ => {}
        }
        for f in ["name", "event", "category"] {
            if obj.get(f).is_some_and(|v| !v.is_null() && !v.is_string()) {
                return Err(Rejection::event(i, f, format!("event {i}: {f} must be a string")));
            }
        }
        for f in ["properties", "traits", "context", "integrations"] {
            if obj.get(f).is_some_and(|v| !v.is_null() && !v.is_object()) {
                return Err(Rejection::event(i, f, format!("event {i}: {f} must be an object")));
            }
        }
        if let Some(envelope_integrations) = &env.integrations {
            obj.entry("integrations").or_insert_with(|| envelope_integrations.clone());
        }
        self.enrich(i, kind, obj, env, meta, source)
    }

    fn free_event(
        &self,
        i: usize,
        mut obj: Map<String, Json>,
        meta: &RequestMeta,
        source: Option<&str>,
    ) -> Result<Event, Rejection> {
        obj.remove("writeKey");
        let kind = match obj.get("type") {
            Some(Json::String(t)) if !t.is_empty() && is_topic_safe(t) => t.clone(),
            _ => "event".to_string(),
        };
        if obj.get("context").is_some_and(|v| !v.is_null() && !v.is_object()) {
            return Err(Rejection::event(i, "context", format!("event {i}: context must be an object")));
        }
        if self.config.value_schema == ValueSchema::Segment {
            obj.entry("type").or_insert_with(|| Json::String(kind.clone()));
        }
        self.enrich(i, &kind, obj, &Envelope::default(), meta, source)
    }

    /// Adds messageId, receivedAt, the skew-corrected timestamp, context.ip/userAgent and the
    /// source name; picks topic and key.
    fn enrich(
        &self,
        i: usize,
        kind: &str,
        mut obj: Map<String, Json>,
        env: &Envelope,
        meta: &RequestMeta,
        source: Option<&str>,
    ) -> Result<Event, Rejection> {
        match obj.get("messageId") {
            Some(Json::String(s)) if !s.is_empty() && s.len() <= 256 => {}
            None | Some(Json::Null) => {
                obj.insert("messageId".into(), Json::String(self.ids.next()));
            }
            Some(Json::Number(n)) => {
                let s = n.to_string();
                obj.insert("messageId".into(), Json::String(s));
            }
            Some(_) => {
                return Err(Rejection::event(
                    i,
                    "messageId",
                    format!("event {i}: messageId must be a string of at most 256 characters"),
                ))
            }
        }
        let ts_field = |obj: &Map<String, Json>, f: &str| -> Result<Option<i64>, Rejection> {
            match obj.get(f) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => timestamp_of(v)
                    .map(Some)
                    .ok_or_else(|| Rejection::event(i, f, format!("event {i}: {f} {v} is not an ISO 8601 timestamp"))),
            }
        };
        let ts = ts_field(&obj, "timestamp")?;
        let sent_at = ts_field(&obj, "sentAt")?.or(env.sent_at);
        let original = ts_field(&obj, "originalTimestamp")?.or(ts);
        let received = meta.received_at;
        // Segment: timestamp = receivedAt - (sentAt - originalTimestamp) corrects the device clock.
        let timestamp = match (original, sent_at) {
            (Some(o), Some(s)) => received - (s - o),
            (Some(o), None) => o,
            (None, _) => received,
        };
        if let Some(o) = original {
            obj.insert("originalTimestamp".into(), Json::String(format_millis(o)));
        }
        if let Some(s) = sent_at {
            obj.insert("sentAt".into(), Json::String(format_millis(s)));
        }
        obj.insert("timestamp".into(), Json::String(format_millis(timestamp)));
        obj.insert("receivedAt".into(), Json::String(format_millis(received)));
        if let Some(source) = source {
            obj.insert("sourceName".into(), Json::String(source.to_string()));
        }
        // Context: the event's own keys win over the batch's; ip and userAgent only when absent.
        let mut context = match obj.remove("context") {
            Some(Json::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(batch_ctx) = &env.context {
            for (k, v) in batch_ctx {
                context.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if let Some(ip) = &meta.ip {
            context.entry("ip").or_insert_with(|| Json::String(ip.clone()));
        }
        if let Some(ua) = &meta.user_agent {
            context.entry("userAgent").or_insert_with(|| Json::String(ua.clone()));
        }
        obj.insert("context".into(), Json::Object(context));

        let key = {
            let get = |f: &str| obj.get(f).and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_string);
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
        Ok(Event { topic, key, timestamp, body: obj })
    }

    /// The record value of an event, per `value.schema`.
    pub fn value_of(&self, event: Event) -> Value {
        match self.config.value_schema {
            // Serialized once, here; the converter writes the text as it is.
            ValueSchema::None => Value::Json(Json::Object(event.body).to_string()),
            ValueSchema::Segment => {
                let mut body = event.body;
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

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn is_topic_safe(s: &str) -> bool {
    s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_object(raw: &[u8]) -> Result<Map<String, Json>, String> {
    match serde_json::from_slice::<Json>(raw) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(other) => Err(format!("expected a JSON object, got {}", kind_of(&other))),
        Err(e) => Err(e.to_string()),
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn timestamp_of(v: &Json) -> Option<i64> {
    v.as_str().and_then(parse_millis)
}

/// Identity fields are strings; numbers are accepted and turned into strings, as Segment does.
fn identity(obj: &mut Map<String, Json>, i: usize, field: &str) -> Result<(), Rejection> {
    match obj.get(field) {
        None | Some(Json::Null) => Ok(()),
        Some(Json::String(s)) if s.is_empty() => {
            obj.remove(field);
            Ok(())
        }
        Some(Json::String(_)) => Ok(()),
        Some(Json::Number(n)) => {
            let s = n.to_string();
            obj.insert(field.to_string(), Json::String(s));
            Ok(())
        }
        Some(other) => {
            Err(Rejection::event(i, field, format!("event {i}: {field} must be a string, not {}", kind_of(other))))
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
            let data = parse_object(&raw).map_err(|e| format!("data is not a base64 JSON object: {e}"))?;
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
        let b = &e.body;
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
        assert_eq!(events[0].body["timestamp"], "2026-11-22T10:00:08.000Z");
        assert_eq!(events[0].body["context"]["locale"], "en");
        assert_eq!(events[1].body["context"]["locale"], "de", "the event's own context wins");
        assert_eq!(events[1].body["context"]["library"]["name"], "analytics.js");
        assert_eq!(events[1].body["messageId"], "m-2");
        assert_eq!(events[1].body["sourceName"], "web");
        assert_eq!(events[1].body["timestamp"], "2026-11-22T10:00:10.000Z", "no timestamp: receivedAt");
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
        assert_eq!(e[0].body["sourceName"], "web");
    }

    #[test]
    fn ndjson_and_arrays_of_free_form_events() {
        let p = parser(&[("key.field", "messageId")]);
        let nd = "{\"type\":\"click\",\"x\":1}\n\n{\"y\":2,\"messageId\":\"m7\"}\n";
        let events = p.parse(Endpoint::Events, nd.as_bytes(), "", &meta()).expect("ndjson");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].body["x"], 1);
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
        let b = &e[0].body;
        assert_eq!(b["type"], "track");
        assert_eq!(b["event"], "Email Opened");
        assert_eq!(b["properties"]["campaign"], "fall sale");
        assert_eq!(b["context"]["locale"], "fr");
        let data =
            base64::engine::general_purpose::STANDARD.encode(json!({"userId": "u1", "name": "Home"}).to_string());
        let e = p.parse(Endpoint::Pixel(Some("page")), b"", &format!("data={data}"), &meta()).expect("data pixel");
        assert_eq!(e[0].body["type"], "page");
        assert_eq!(e[0].body["name"], "Home");
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
