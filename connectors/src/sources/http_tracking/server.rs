//! The collector's HTTP server: routes, body limits and gzip, CORS, backpressure, and the wait for
//! Kafka's acknowledgement before answering.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Buf;
use futures::{Stream, StreamExt};
use serde_json::json;
use sluice_api::{Header, JsonMap, Schema, SchemaRef, SourceRecord, Value};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use warp::http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use warp::hyper::body::Bytes;

use super::config::TrackingConfig;
use super::event::{Endpoint, Parser, RequestMeta};
use super::metrics::Metrics;
use super::time::format_millis;

/// A 1×1 transparent GIF (43 bytes).
pub const PIXEL_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Records of one request on their way to the task, with the handle that answers the request.
pub struct Submission {
    /// The records, in request order.
    pub records: Vec<SourceRecord>,
    /// Counts the acknowledgements down; answers the request at zero.
    pub ack: Arc<Ack>,
}

/// The acknowledgement state of one request. Dropping the last reference releases the request's
/// in-flight bytes; dropping it before every record was acknowledged answers the request with 503.
pub struct Ack {
    remaining: AtomicUsize,
    failed: Mutex<Vec<usize>>,
    reply: Mutex<Option<oneshot::Sender<Vec<usize>>>>,
    _permit: OwnedSemaphorePermit,
}

impl Ack {
    fn new(n: usize, permit: OwnedSemaphorePermit) -> (Arc<Ack>, oneshot::Receiver<Vec<usize>>) {
        let (tx, rx) = oneshot::channel();
        let ack = Ack {
            remaining: AtomicUsize::new(n),
            failed: Mutex::new(Vec::new()),
            reply: Mutex::new(Some(tx)),
            _permit: permit,
        };
        (Arc::new(ack), rx)
    }

    /// Record `index` of the request was written (`ok`) or given up on.
    pub fn record_done(&self, index: usize, ok: bool) {
        if !ok {
            if let Ok(mut failed) = self.failed.lock() {
                failed.push(index);
            }
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let failed = self.failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
            if let Some(tx) = self.reply.lock().ok().and_then(|mut r| r.take()) {
                let _ = tx.send(failed);
            }
        }
    }
}

/// What the handlers share with the task.
pub struct Shared {
    /// The connector's config.
    pub config: Arc<TrackingConfig>,
    /// Body → events.
    pub parser: Parser,
    /// In-flight byte budget.
    pub budget: Arc<Semaphore>,
    /// To the task's `poll`.
    pub tx: mpsc::UnboundedSender<Submission>,
    /// Milliseconds since `epoch` (plus one) when the oldest unacknowledged record was handed to
    /// Kafka; 0 when nothing is waiting.
    pub waiting_since: AtomicU64,
    /// Reference point of `waiting_since`.
    pub epoch: Instant,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Key schema (optional STRING).
    pub key_schema: SchemaRef,
}

impl Shared {
    /// How long Kafka has left records unacknowledged, if any are waiting.
    pub fn stalled_for(&self) -> Option<Duration> {
        match self.waiting_since.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                Some(Duration::from_millis(now.saturating_sub(since - 1)))
            }
        }
    }

    fn unavailable(&self) -> bool {
        self.stalled_for().is_some_and(|d| d >= self.config.unavailable_after)
    }
}

type Reply = Response<Bytes>;

fn json_reply(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn error_reply(status: StatusCode, message: impl Into<String>) -> Reply {
    json_reply(status, json!({"success": false, "message": message.into()}))
}

fn retry_after(mut r: Reply, seconds: u64) -> Reply {
    r.headers_mut().insert("retry-after", HeaderValue::from(seconds));
    r
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use warp::Filter;
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .then(move |method: Method, path: warp::path::FullPath, query: String, headers: HeaderMap, remote, body| {
            let shared = shared.clone();
            async move { handle(shared, method, path.as_str().to_string(), query, headers, remote, body).await }
        });
    warp::serve(route).incoming(listener).graceful(shutdown).run().await;
}

/// Binds `addr` with `SO_REUSEPORT`, so several tasks on one worker can share the port.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

const SEGMENT_PATHS: [(&str, &str); 6] = [
    ("/v1/track", "track"),
    ("/v1/page", "page"),
    ("/v1/screen", "screen"),
    ("/v1/identify", "identify"),
    ("/v1/group", "group"),
    ("/v1/alias", "alias"),
];

fn route(path: &str) -> Option<(Method, Endpoint)> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    if let Some((_, kind)) = SEGMENT_PATHS.iter().find(|(p, _)| *p == path) {
        return Some((Method::POST, Endpoint::Single(kind)));
    }
    match path {
        "/v1/batch" | "/v1/import" => Some((Method::POST, Endpoint::Batch)),
        "/v1/events" => Some((Method::POST, Endpoint::Events)),
        "/v1/pixel.gif" | "/v1/pixel" | "/v1/p.gif" => Some((Method::GET, Endpoint::Pixel(None))),
        _ => {
            let kind = path.strip_prefix("/v1/pixel/")?;
            let kind = super::event::SEGMENT_TYPES.iter().copied().find(|k| *k == kind)?;
            Some((Method::GET, Endpoint::Pixel(Some(kind))))
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send + Unpin,
) -> Reply {
    let started = Instant::now();
    let origin = headers.get("origin").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut reply = if method == Method::OPTIONS {
        preflight(&shared.config, &headers)
    } else {
        dispatch(&shared, &method, &path, &query, &headers, remote, body).await
    };
    cors(&shared.config, origin.as_deref(), &mut reply);
    shared.metrics.observe(reply.status().as_u16(), started.elapsed());
    reply
}

async fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send + Unpin,
) -> Reply {
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/health") => {
            return match shared.stalled_for().filter(|d| *d >= shared.config.unavailable_after) {
                Some(d) => json_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "DOWN", "reason": format!("Kafka has acknowledged nothing for {} ms", d.as_millis())}),
                ),
                None => json_reply(StatusCode::OK, json!({"status": "UP"})),
            }
        }
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Bytes::from(shared.metrics.render(shared)));
            r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
            return r;
        }
        _ => {}
    }
    let Some((expected, endpoint)) = route(path) else {
        return error_reply(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"));
    };
    let is_pixel = matches!(endpoint, Endpoint::Pixel(_));
    if method != expected && !(is_pixel && method == Method::HEAD) {
        let mut r = error_reply(StatusCode::METHOD_NOT_ALLOWED, format!("{path} accepts {expected} only"));
        r.headers_mut().insert("allow", HeaderValue::from_static(if is_pixel { "GET, HEAD" } else { "POST" }));
        return r;
    }
    let mut reply = accept(shared, endpoint, headers, query, remote, body).await;
    if is_pixel && reply.status() == StatusCode::OK {
        let mut r = Response::new(Bytes::from_static(&PIXEL_GIF));
        r.headers_mut().insert("content-type", HeaderValue::from_static("image/gif"));
        r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, no-store, must-revalidate"));
        reply = r;
    }
    reply
}

/// Reads, parses and submits one request, and waits for Kafka.
async fn accept(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    query: &str,
    remote: Option<SocketAddr>,
    mut body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send + Unpin,
) -> Reply {
    let config = &shared.config;
    let deadline = Instant::now() + config.request_timeout;
    if shared.unavailable() {
        return retry_after(
            error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "Kafka is not acknowledging writes; nothing of this request was accepted, retry later",
            ),
            5,
        );
    }
    let limit = config.max_request_bytes;
    let declared =
        headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {} bytes; the limit is {limit} (http.max.request.bytes)", declared.unwrap_or(0)),
        );
    }
    // Room in the in-flight budget first, so a burst of big requests cannot outgrow it while the
    // bodies are read. The estimate is corrected once the events are parsed.
    let estimate = declared.unwrap_or(limit).max(query.len()).max(1);
    let mut permit = match acquire(&shared.budget, estimate, config.backpressure_wait).await {
        Some(p) => p,
        None => {
            shared.metrics.backpressured.fetch_add(1, Ordering::Relaxed);
            return retry_after(
                error_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "the collector is at its in-flight limit ({} bytes, http.max.inflight.bytes); retry later",
                        config.max_inflight_bytes
                    ),
                ),
                1,
            );
        }
    };
    let mut raw = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    loop {
        // A client that trickles its body must not hold in-flight room past the request timeout.
        let chunk = match tokio::time::timeout_at(deadline.into(), body.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                return error_reply(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} ms (http.request.timeout.ms)",
                        config.request_timeout.as_millis()
                    ),
                )
            }
        };
        let mut chunk = match chunk {
            Ok(c) => c,
            Err(e) => return error_reply(StatusCode::BAD_REQUEST, format!("could not read the body: {e}")),
        };
        if raw.len() + chunk.remaining() > limit {
            return error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over the limit of {limit} bytes (http.max.request.bytes)"),
            );
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            raw.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    shared.metrics.bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
    let encoding =
        headers.get("content-encoding").and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "x-gzip" => match gunzip(&raw, limit) {
            Ok(d) => d,
            Err((status, message)) => {
                return refuse(
                    shared,
                    status,
                    json!({"success": false, "message": message}),
                    &raw,
                    query,
                    permit,
                    deadline,
                )
                .await
            }
        },
        other => {
            return error_reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?} is not supported (gzip is)"),
            )
        }
    };
    let meta = RequestMeta {
        received_at: now_millis(),
        ip: client_ip(config, headers, remote),
        user_agent: headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_string),
        write_key: basic_auth_user(headers),
    };
    let events = match shared.parser.parse(endpoint, &decoded, query, &meta) {
        Ok(events) => events,
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut body = json!({"success": false, "message": rejection.message});
            if let Some(i) = rejection.index {
                body["index"] = json!(i);
            }
            if let Some(f) = &rejection.field {
                body["field"] = json!(f);
            }
            return refuse(shared, status, body, &decoded, query, permit, deadline).await;
        }
    };
    drop(decoded);
    let n = events.len();
    let value_schema = shared.parser.value_schema();
    let mut records = Vec::with_capacity(n);
    let mut size = 0;
    for event in events {
        let key = event.key.clone().map_or(Value::Null, Value::String);
        let topic = event.topic.clone();
        let timestamp = event.timestamp;
        let record = SourceRecord {
            source_partition: JsonMap::new(),
            source_offset: JsonMap::new(),
            topic,
            kafka_partition: None,
            key_schema: Some(shared.key_schema.clone()),
            key,
            value_schema: value_schema.clone(),
            value: shared.parser.value_of(event),
            timestamp: Some(timestamp),
            headers: Vec::new(),
        };
        size += record.approx_size();
        records.push(record);
    }
    // Correct the estimate: hold what the records really take.
    if size > estimate {
        let remaining = deadline.saturating_duration_since(Instant::now()).min(config.backpressure_wait);
        match acquire(&shared.budget, size - estimate, remaining).await {
            Some(more) => permit.merge(more),
            None => {
                shared.metrics.backpressured.fetch_add(1, Ordering::Relaxed);
                return retry_after(
                    error_reply(StatusCode::TOO_MANY_REQUESTS, "the collector is at its in-flight limit; retry later"),
                    1,
                );
            }
        }
    } else if estimate > size {
        drop(permit.split(estimate - size));
    }
    let (ack, reply) = Ack::new(n, permit);
    if shared.tx.send(Submission { records, ack }).is_err() {
        return retry_after(error_reply(StatusCode::SERVICE_UNAVAILABLE, "the collector is stopping"), 5);
    }
    match tokio::time::timeout_at(deadline.into(), reply).await {
        Ok(Ok(failed)) if failed.is_empty() => {
            shared.metrics.accepted.fetch_add(n as u64, Ordering::Relaxed);
            json_reply(StatusCode::OK, json!({"success": true, "accepted": n}))
        }
        Ok(Ok(failed)) => {
            shared.metrics.accepted.fetch_add((n - failed.len()) as u64, Ordering::Relaxed);
            shared.metrics.failed.fetch_add(failed.len() as u64, Ordering::Relaxed);
            retry_after(
                json_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"success": false, "accepted": n - failed.len(), "failed": failed,
                           "message": format!("{} of {n} events could not be written to Kafka; resend them (messageId lets consumers drop duplicates)", failed.len())}),
                ),
                1,
            )
        }
        Ok(Err(_)) => {
            shared.metrics.failed.fetch_add(n as u64, Ordering::Relaxed);
            retry_after(
                error_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the collector stopped before Kafka acknowledged the events; resend them",
                ),
                5,
            )
        }
        Err(_) => {
            shared.metrics.failed.fetch_add(n as u64, Ordering::Relaxed);
            retry_after(
                error_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "Kafka did not acknowledge the events within {} ms (http.request.timeout.ms); they may still be written: resend them with the same messageId",
                        config.request_timeout.as_millis()
                    ),
                ),
                5,
            )
        }
    }
}

async fn acquire(budget: &Arc<Semaphore>, bytes: usize, wait: Duration) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(bytes).unwrap_or(u32::MAX);
    if let Ok(p) = budget.clone().try_acquire_many_owned(n) {
        return Some(p);
    }
    tokio::time::timeout(wait, budget.clone().acquire_many_owned(n)).await.ok()?.ok()
}

/// Answers a refused request; a 400's raw body also goes to the dead-letter topic, if one is set.
async fn refuse(
    shared: &Arc<Shared>,
    status: StatusCode,
    mut body: serde_json::Value,
    raw: &[u8],
    query: &str,
    permit: OwnedSemaphorePermit,
    deadline: Instant,
) -> Reply {
    if status == StatusCode::BAD_REQUEST {
        if let Some(topic) = &shared.config.dead_letter_topic {
            let reason = body["message"].as_str().unwrap_or("").to_string();
            body["deadLetter"] = json!(dead_letter(shared, topic, raw, query, &reason, permit, deadline).await);
        }
    }
    json_reply(status, body)
}

/// Writes a refused request's raw body to the dead-letter topic and waits for Kafka.
async fn dead_letter(
    shared: &Arc<Shared>,
    topic: &str,
    raw: &[u8],
    query: &str,
    reason: &str,
    permit: OwnedSemaphorePermit,
    deadline: Instant,
) -> bool {
    let payload = if raw.is_empty() { query.to_string() } else { String::from_utf8_lossy(raw).into_owned() };
    let mut record = SourceRecord::new(
        JsonMap::new(),
        JsonMap::new(),
        topic,
        Some(Arc::new(Schema::string())),
        Value::String(payload),
    );
    record.timestamp = Some(now_millis());
    record.headers = vec![
        Header::string("sluice.error.reason", reason),
        Header::string("sluice.received.at", format_millis(now_millis())),
    ];
    let (ack, reply) = Ack::new(1, permit);
    if shared.tx.send(Submission { records: vec![record], ack }).is_err() {
        return false;
    }
    matches!(tokio::time::timeout_at(deadline.into(), reply).await, Ok(Ok(failed)) if failed.is_empty())
}

fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("the gzip body could not be decoded: {e}")))?;
    if out.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the decoded body is over the limit of {limit} bytes (http.max.request.bytes)"),
        ));
    }
    Ok(out)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn basic_auth_user(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, cred) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(cred.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the right-most address
/// in `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(config: &TrackingConfig, headers: &HeaderMap, remote: Option<SocketAddr>) -> Option<String> {
    let peer = remote?.ip();
    let trusted = |ip: IpAddr| config.trusted_proxies.iter().any(|c| c.contains(ip));
    if !trusted(peer) {
        return Some(peer.to_string());
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else { break };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        return Some(ip.to_string());
                    }
                }
                Err(_) => return Some(client.to_string()),
            }
        }
    }
    Some(client.to_string())
}

/// How an origin is allowed: by a listed origin (echoed, with credentials), or by `*` (any
/// origin, no credentials — cookies are never needed to send events).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Listed,
    Any,
}

fn origin_allowed(config: &TrackingConfig, origin: &str) -> Option<Allowed> {
    if config.cors_origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        Some(Allowed::Listed)
    } else if config.cors_origins.iter().any(|o| o == "*") {
        Some(Allowed::Any)
    } else {
        None
    }
}

fn cors(config: &TrackingConfig, origin: Option<&str>, reply: &mut Reply) {
    let Some(origin) = origin else { return };
    let h = reply.headers_mut();
    match origin_allowed(config, origin) {
        Some(Allowed::Any) => {
            h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        }
        Some(Allowed::Listed) => {
            if let Ok(v) = HeaderValue::from_str(origin) {
                h.insert("access-control-allow-origin", v);
                h.insert("access-control-allow-credentials", HeaderValue::from_static("true"));
                h.append("vary", HeaderValue::from_static("Origin"));
            }
        }
        None => {}
    }
}

fn preflight(config: &TrackingConfig, headers: &HeaderMap) -> Reply {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    if origin.and_then(|o| origin_allowed(config, o)).is_none() {
        return error_reply(StatusCode::FORBIDDEN, "CORS: this origin is not allowed (http.cors.allowed.origins)");
    }
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert("access-control-allow-methods", HeaderValue::from_static("GET, POST, OPTIONS"));
    let requested = headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type, Content-Encoding, Authorization"));
    h.insert("access-control-allow-headers", requested);
    h.insert("access-control-max-age", HeaderValue::from_static("86400"));
    r
}

/// The shared byte budget's current use.
pub fn inflight_bytes(shared: &Shared) -> usize {
    shared.config.max_inflight_bytes.saturating_sub(shared.budget.available_permits())
}

/// Time for tests: whether the pixel is a valid GIF of the right size.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_is_a_43_byte_gif() {
        assert_eq!(PIXEL_GIF.len(), 43);
        assert_eq!(&PIXEL_GIF[..6], b"GIF89a");
        assert_eq!(PIXEL_GIF[42], 0x3b);
    }

    #[test]
    fn routes() {
        assert_eq!(route("/v1/track"), Some((Method::POST, Endpoint::Single("track"))));
        assert_eq!(route("/v1/track/"), Some((Method::POST, Endpoint::Single("track"))));
        assert_eq!(route("/v1/import"), Some((Method::POST, Endpoint::Batch)));
        assert_eq!(route("/v1/pixel/page"), Some((Method::GET, Endpoint::Pixel(Some("page")))));
        assert_eq!(route("/v1/pixel/click"), None);
        assert_eq!(route("/v2/track"), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let map: sluice_api::ConfigMap =
            [("http.trusted.proxies".to_string(), "10.0.0.0/8".to_string())].into_iter().collect();
        let config = TrackingConfig::parse(&map).expect("config");
        let h = headers(&[("x-forwarded-for", "203.0.113.5, 10.1.1.1")]);
        let proxy: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        let stranger: SocketAddr = "198.51.100.7:5000".parse().expect("addr");
        assert_eq!(client_ip(&config, &h, Some(proxy)).as_deref(), Some("203.0.113.5"));
        assert_eq!(client_ip(&config, &h, Some(stranger)).as_deref(), Some("198.51.100.7"), "spoofed header ignored");
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.5")]);
        assert_eq!(client_ip(&config, &spoof, Some(proxy)).as_deref(), Some("203.0.113.5"), "right-most untrusted hop");
        assert_eq!(client_ip(&config, &HeaderMap::new(), Some(proxy)).as_deref(), Some("10.0.0.2"));
    }

    #[test]
    fn basic_auth_username_is_the_write_key() {
        use base64::Engine;
        let enc = base64::engine::general_purpose::STANDARD.encode("abc123:");
        assert_eq!(basic_auth_user(&headers(&[("authorization", &format!("Basic {enc}"))])).as_deref(), Some("abc123"));
        assert_eq!(basic_auth_user(&headers(&[("authorization", "Bearer x")])), None);
    }

    #[test]
    fn gzip_bodies_are_decoded_within_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'a'; 10_000]).expect("write");
        let gz = enc.finish().expect("gzip");
        assert_eq!(gunzip(&gz, 10_000).expect("fits").len(), 10_000);
        assert_eq!(gunzip(&gz, 9_999).expect_err("bomb").0, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(gunzip(b"not gzip", 100).expect_err("junk").0, StatusCode::BAD_REQUEST);
    }
}
