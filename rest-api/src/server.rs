//! The HTTP(S) server: an accept loop over hyper with the API's routes as one service, a request
//! timeout (Kafka Connect's 90 s, then a 500: the API never waits on a stuck operation for
//! ever), one log line per request, and graceful shutdown (connections in flight finish).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower_service::Service;
use warp::reply::Response;
use warp::Reply;

use crate::error::ApiError;
use crate::{routes, RestOptions, SharedHerder, TlsError};

/// Kafka Connect's request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest a client may take to complete its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Longest the server waits for open connections at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves the API over HTTP on an already bound listener (bind first, so the worker id can carry
/// the real port, and port 0 works in tests) until `shutdown` completes; then waits for the
/// requests in flight.
pub async fn serve(
    herder: SharedHerder,
    listener: TcpListener,
    options: RestOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    run(herder, listener, options, None, shutdown).await
}

/// Serves the API over HTTPS (`options.tls`, which must be set), as [`serve`].
pub async fn serve_https(
    herder: SharedHerder,
    listener: TcpListener,
    options: RestOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TlsError> {
    let tls = options.tls.clone().ok_or_else(|| TlsError("an https listener needs ssl.keystore.* settings".into()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server);
    run(herder, listener, options, Some(acceptor), shutdown).await;
    Ok(())
}

async fn run(
    herder: SharedHerder,
    listener: TcpListener,
    options: RestOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let timeout = options.request_timeout.unwrap_or(REQUEST_TIMEOUT);
    let service = warp::service(routes(herder, options));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return connection(tcp, service, timeout, remote, watcher).await;
            };
            match tokio::time::timeout(HANDSHAKE, tls.accept(tcp)).await {
                Ok(Ok(stream)) => connection(stream, service, timeout, remote, watcher).await,
                Ok(Err(e)) => tracing::info!(target: "sluice::rest", %remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::info!(target: "sluice::rest", %remote, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    // Requests in flight finish; a client that stops reading does not hold the exit for ever.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("REST connections still open after {SHUTDOWN_GRACE:?}; closing them");
    }
}

/// Serves one connection's requests.
async fn connection<IO, S>(
    io: IO,
    service: S,
    timeout: Duration,
    remote: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<hyper::body::Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let service = hyper::service::service_fn(move |request| handle(service.clone(), request, timeout, Some(remote)));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(target: "sluice::rest", %remote, error = %e, "connection ended with an error");
    }
}

/// One request through the routes, bounded by `timeout`, logged.
async fn handle<S, B>(
    mut service: S,
    request: http::Request<B>,
    timeout: Duration,
    remote: Option<SocketAddr>,
) -> Result<Response, Infallible>
where
    S: Service<http::Request<B>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    let started = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    // Spawned, so a timeout answers the client without cancelling the operation half-way (a
    // delete or reconfiguration runs to its end, as the message says).
    let mut call = tokio::spawn(service.call(request));
    let response = match tokio::time::timeout(timeout, &mut call).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(never))) => match never {},
        Ok(Err(e)) => {
            tracing::error!(target: "sluice::rest", %method, path, error = %e, "request handler failed");
            ApiError::new(500, "Internal server error").into_response()
        }
        Err(_) => {
            tracing::warn!(target: "sluice::rest", %method, path, timeout_ms = timeout.as_millis() as u64, "request timed out");
            ApiError::new(
                500,
                format!(
                    "Request timed out after {} ms. The operation may still complete: check the connector's status.",
                    timeout.as_millis()
                ),
            )
            .into_response()
        }
    };
    // Target `sluice::rest`, so `/admin/loggers` controls it.
    tracing::info!(
        target: "sluice::rest",
        remote = ?remote,
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use warp::Filter;

    fn request(path: &str) -> http::Request<Full<Bytes>> {
        http::Request::builder().uri(path).body(Full::new(Bytes::new())).expect("request")
    }

    #[tokio::test]
    async fn a_slow_request_is_answered_with_a_500_after_the_timeout() {
        let slow = warp::path!("slow").then(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            warp::reply().into_response()
        });
        let fast = warp::path!("fast").map(|| warp::reply().into_response());
        let service = warp::service(slow.or(fast).unify());
        let started = Instant::now();
        let response = handle(service, request("/slow"), Duration::from_millis(200), None).await.expect("infallible");
        assert_eq!(response.status(), 500);
        assert!(started.elapsed() < Duration::from_secs(5), "answered at the timeout");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error_code"], 500);
        assert!(body["message"].as_str().is_some_and(|m| m.starts_with("Request timed out")), "{body}");
        let response = handle(service, request("/fast"), Duration::from_millis(200), None).await.expect("infallible");
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn a_timed_out_operation_runs_to_its_end() {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let slow = warp::path!("slow").then(move || {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                warp::reply().into_response()
            }
        });
        let response =
            handle(warp::service(slow), request("/slow"), Duration::from_millis(100), None).await.expect("infallible");
        assert_eq!(response.status(), 500);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst), "the handler was not cancelled");
    }
}
