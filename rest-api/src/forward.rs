//! Request forwarding, as Kafka Connect: in a distributed cluster, a request that changes
//! connectors (any non-GET under `/connectors`) received by a follower is sent on to the leader,
//! and the leader's answer is relayed unchanged. One worker decides every create, so two
//! concurrent creates of one name give one 201 and one 409, whichever workers they reach.
//!
//! Hops follow Kafka Connect's `forward` query parameter: a request without it is forwarded with
//! `forward=true`, which may be forwarded once more with `forward=false`; a `forward=false` request
//! that reaches a worker that is not the leader gets Kafka Connect's 409. Without a known leader
//! (before the first join, or mid-rebalance; and in standalone mode) a request is handled where it
//! arrives: every worker can write the config topic, and its single partition orders the writes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use warp::http::{HeaderMap, Method, Request};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ApiError;
use crate::SharedHerder;

/// Longest a forwarded request may take (Kafka Connect's request timeout is 90 s).
const TIMEOUT: Duration = Duration::from_secs(90);
/// Longest a connection to another worker may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forward follows the group to a reachable leader.
const LEADER_WAIT: Duration = Duration::from_secs(60);
/// Request headers passed on to the leader.
const PASSED: [&str; 3] = ["authorization", "content-type", "accept"];
/// Response headers relayed back.
const RELAYED: [&str; 3] = ["content-type", "location", "www-authenticate"];

struct Target {
    /// Path and query, with the next `forward` hop.
    path: String,
    method: Method,
}

enum Hop {
    Forward(Target),
    /// `forward=false` reached a follower.
    Refuse,
}

/// The HTTP client to the leader: `http://` and, with a TLS configuration, `https://` leaders.
#[derive(Clone)]
enum LeaderClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl LeaderClient {
    fn new(tls: Option<Arc<rustls::ClientConfig>>) -> LeaderClient {
        // A leader whose host vanished (packets dropped) fails the connect in seconds and counts as
        // unreachable, so the request follows the group to the next leader.
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(tls.is_none());
        match tls {
            None => LeaderClient::Plain(Client::builder(TokioExecutor::new()).build(http)),
            Some(config) => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*config).clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                LeaderClient::Tls(Client::builder(TokioExecutor::new()).build(connector))
            }
        }
    }

    fn request(&self, request: Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            LeaderClient::Plain(c) => c.request(request),
            LeaderClient::Tls(c) => c.request(request),
        }
    }
}

/// Sends requests on to another worker (the leader, or the owner of a task).
#[derive(Clone)]
pub(crate) struct Forwarder(LeaderClient);

impl Forwarder {
    /// `tls`: the client side for `https://` workers.
    pub(crate) fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Forwarder {
        Forwarder(LeaderClient::new(tls))
    }

    /// Sends a request and relays the answer; a failure is a 500 in Kafka Connect's words.
    pub(crate) async fn send(&self, method: &Method, url: &str, headers: &HeaderMap, body: Bytes) -> Response {
        match forward(&self.0, method, url, headers, body).await {
            Ok(r) => r,
            Err(Failure::Unreachable(e) | Failure::Other(e)) => {
                tracing::warn!(%url, error = %e, "forwarding failed");
                ApiError::new(500, format!("Error trying to forward REST request: {e}")).into_response()
            }
        }
    }
}

/// Kafka Connect's hop rule on a request's query: none → `forward=true` → `forward=false` → no
/// further hop (`None`). Returns the query to send on.
pub(crate) fn next_hop(query: &str) -> Option<String> {
    let mut rest: Vec<&str> = Vec::new();
    let mut hop = None;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("forward", v)) => hop = Some(v.eq_ignore_ascii_case("true")),
            _ => rest.push(kv),
        }
    }
    rest.push(match hop {
        None => "forward=true",
        Some(true) => "forward=false",
        Some(false) => return None,
    });
    Some(rest.join("&"))
}

/// Kafka Connect's answer when the hops are used up.
pub(crate) fn hops_exhausted() -> Response {
    ApiError::new(409, "Cannot complete request because of a conflicting operation (e.g. worker rebalance)")
        .into_response()
}

/// Forwards connector changes received by a follower to the leader; rejects (not found, the
/// weakest rejection) every other request so the API routes handle it.
pub(crate) fn filter(
    herder: SharedHerder,
    forwarder: Forwarder,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let client = forwarder.0;
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and_then({
            let herder = herder.clone();
            move |method: Method, path: FullPath, query: String| {
            let leader = herder.leader_url();
            async move {
                // A task restart goes to the worker that runs the task, not to the leader (see
                // lifecycle.rs).
                let task_restart = is_task_restart(path.as_str());
                let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
                    && !task_restart
                    && (path.as_str() == "/connectors" || path.as_str().starts_with("/connectors/"));
                if !writes || leader.is_none() {
                    return Err(warp::reject::not_found());
                }
                Ok(match next_hop(&query) {
                    Some(q) => Hop::Forward(Target { path: format!("{}?{q}", path.as_str()), method }),
                    None => Hop::Refuse,
                })
            }
        }})
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |hop: Hop, headers: HeaderMap, body| {
            let client = client.clone();
            let herder = herder.clone();
            async move {
                let target = match hop {
                    Hop::Forward(t) => t,
                    Hop::Refuse => return hops_exhausted(),
                };
                let body = match crate::body::read(body).await {
                    Ok(b) => b,
                    Err(e) => return e.into_response(),
                };
                // The leader may have just died: while it cannot be reached, follow the group to
                // its next leader (possibly this worker, which then handles the request itself).
                let deadline = tokio::time::Instant::now() + LEADER_WAIT;
                loop {
                    let Some(base) = herder.leader_rest_url() else {
                        if tokio::time::Instant::now() >= deadline {
                            return ApiError::new(
                                409,
                                "Cannot complete request momentarily due to no known leader URL, likely because a rebalance was underway.",
                            )
                            .into_response();
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    };
                    let url = format!("{}{}", base.trim_end_matches('/'), target.path);
                    match forward(&client, &target.method, &url, &headers, body.clone()).await {
                        Ok(r) => return r,
                        Err(Failure::Unreachable(e)) if tokio::time::Instant::now() < deadline => {
                            tracing::info!(%url, error = %e, "leader unreachable; waiting for the group to elect another");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(Failure::Unreachable(e) | Failure::Other(e)) => {
                            tracing::warn!(%url, error = %e, "forwarding to the leader failed");
                            return ApiError::new(500, format!("Error trying to forward REST request: {e}"))
                                .into_response();
                        }
                    }
                }
            }
        })
}

/// Why a forward failed.
enum Failure {
    /// Nothing was delivered (connection refused or reset before sending): safe to retry.
    Unreachable(String),
    /// Anything else.
    Other(String),
}

async fn forward(
    client: &LeaderClient,
    method: &Method,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let mut request = Request::builder().method(method.clone()).uri(url);
    for name in PASSED {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v.clone());
        }
    }
    let request = request.body(Full::new(body)).map_err(|e| Failure::Other(format!("bad request to {url}: {e}")))?;
    tracing::info!(%method, %url, "forwarding a connector change to the leader");
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| Failure::Other(format!("the leader did not answer within {TIMEOUT:?}")))?
        .map_err(|e| {
            let text = sluice_api::error_chain(&e);
            if e.is_connect() && unreachable(&e) {
                Failure::Unreachable(text)
            } else {
                Failure::Other(text)
            }
        })?;
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .map_err(|_| Failure::Other(format!("the leader's answer did not arrive within {TIMEOUT:?}")))?
        .map_err(|e| Failure::Other(e.to_string()))?
        .to_bytes();
    let mut reply = Response::new(bytes.into());
    *reply.status_mut() = parts.status;
    for name in RELAYED {
        if let Some(v) = parts.headers.get(name) {
            reply.headers_mut().insert(name, v.clone());
        }
    }
    Ok(reply)
}

/// Nothing reached the leader: the connection was refused, reset or timed out (a TLS handshake
/// failure is a configuration problem, reported at once instead of retried).
fn unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | NotConnected
            );
        }
        source = s.source();
    }
    false
}

/// `/connectors/{c}/tasks/{n}/restart`, segment by segment (a connector named `tasks` is not one).
fn is_task_restart(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["connectors", _, "tasks", n, "restart"] if n.parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_and_task_restarts() {
        assert_eq!(next_hop("").as_deref(), Some("forward=true"));
        assert_eq!(next_hop("a=1&forward=true").as_deref(), Some("a=1&forward=false"));
        assert_eq!(next_hop("forward=false"), None);
        assert!(is_task_restart("/connectors/c/tasks/3/restart"));
        assert!(!is_task_restart("/connectors/tasks/restart"));
        assert!(!is_task_restart("/connectors/c/tasks/x/restart"));
        assert!(!is_task_restart("/connectors/c/restart"));
    }
}
