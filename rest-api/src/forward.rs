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

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use warp::http::{HeaderMap, Method, Request};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::ApiError;
use crate::SharedHerder;

/// Longest a forwarded request may take (Kafka Connect's request timeout is 90 s).
const TIMEOUT: Duration = Duration::from_secs(90);
/// Largest forwarded body (as the routes accept).
const MAX_BODY: usize = 1 << 20;
/// Request headers passed on to the leader.
const PASSED: [&str; 3] = ["authorization", "content-type", "accept"];
/// Response headers relayed back.
const RELAYED: [&str; 3] = ["content-type", "location", "www-authenticate"];

struct Target {
    url: String,
    method: Method,
}

enum Hop {
    Forward(Target),
    /// `forward=false` reached a follower.
    Refuse,
}

/// Forwards connector changes received by a follower to the leader; rejects (not found, the
/// weakest rejection) every other request so the API routes handle it.
pub(crate) fn filter(herder: SharedHerder) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and_then(move |method: Method, path: FullPath, query: String| {
            let leader = herder.leader_url();
            async move {
                let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
                    && (path.as_str() == "/connectors" || path.as_str().starts_with("/connectors/"));
                let Some(base) = leader.filter(|_| writes) else { return Err(warp::reject::not_found()) };
                // Kafka Connect's hop rule: none → forward=true → forward=false → 409.
                let mut rest: Vec<&str> = Vec::new();
                let mut hop = None;
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    match kv.split_once('=') {
                        Some(("forward", v)) => hop = Some(v.eq_ignore_ascii_case("true")),
                        _ => rest.push(kv),
                    }
                }
                let next = match hop {
                    None => "forward=true",
                    Some(true) => "forward=false",
                    Some(false) => return Ok(Hop::Refuse),
                };
                rest.push(next);
                let url = format!("{}{}?{}", base.trim_end_matches('/'), path.as_str(), rest.join("&"));
                Ok(Hop::Forward(Target { url, method }))
            }
        })
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |hop: Hop, headers: HeaderMap, body| {
            let client = client.clone();
            async move {
                let target = match hop {
                    Hop::Forward(t) => t,
                    Hop::Refuse => {
                        return ApiError::new(
                            409,
                            "Cannot complete request because of a conflicting operation (e.g. worker rebalance)",
                        )
                        .into_response()
                    }
                };
                let body = match read_body(body).await {
                    Ok(b) => b,
                    Err(e) => return e.into_response(),
                };
                match forward(&client, &target, &headers, body).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(url = %target.url, error = %e, "forwarding to the leader failed");
                        ApiError::new(500, format!("Error trying to forward REST request: {e}")).into_response()
                    }
                }
            }
        })
}

/// The request body, up to `MAX_BODY` (413 past it).
async fn read_body<S, B>(body: S) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    use futures::StreamExt;
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(400, format!("Cannot read the request body: {e}")))?;
        if out.len() + chunk.remaining() > MAX_BODY {
            return Err(ApiError::new(413, "HTTP 413 Request Entity Too Large"));
        }
        bytes::BufMut::put(&mut out, chunk);
    }
    Ok(out.freeze())
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: &Target,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, String> {
    let mut request = Request::builder().method(target.method.clone()).uri(&target.url);
    for name in PASSED {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v.clone());
        }
    }
    let request = request.body(Full::new(body)).map_err(|e| format!("bad request to {}: {e}", target.url))?;
    tracing::info!(method = %target.method, url = %target.url, "forwarding a connector change to the leader");
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("the leader did not answer within {TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .map_err(|_| format!("the leader's answer did not arrive within {TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?
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
