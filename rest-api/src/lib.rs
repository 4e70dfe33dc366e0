//! Kafka Connect's REST API on warp, over the [`Herder`] interface. Handlers only translate: every
//! domain error is a reply with Kafka Connect's `{"error_code","message"}` body, and one `recover`
//! gives transport rejections the same shape.

mod auth;
mod body;
mod connectors;
mod error;
mod forward;
mod lifecycle;
mod loggers;
mod offsets;
pub mod openapi;
mod plugins;
mod root;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use sluice_runtime::herder::Herder;
use tokio::net::TcpListener;
use warp::Filter;

pub use auth::Auth;
pub use error::ApiError;
pub use loggers::{LogLevels, LoggerLevel};
pub use tls::{ClientAuth, Tls, TlsError, TlsSettings};

/// Shared handle the routes use.
pub type SharedHerder = Arc<dyn Herder>;

/// What the API serves besides the herder: authentication and log levels.
#[derive(Clone, Default)]
pub struct RestOptions {
    /// Authentication of every request but `GET /health`.
    pub auth: Auth,
    /// `/admin/loggers`; without it the API reports no loggers and changes none.
    pub loggers: Option<Arc<dyn LogLevels>>,
    /// HTTPS: the server side for `https://` listeners, the client side for forwarding.
    pub tls: Option<Tls>,
}

/// Log levels of a process whose logging cannot be changed.
struct FixedLevels;

impl LogLevels for FixedLevels {
    fn loggers(&self) -> std::collections::BTreeMap<String, LoggerLevel> {
        Default::default()
    }
    fn set(&self, _name: &str, _level: &str) -> Result<Vec<String>, String> {
        Err("log levels cannot be changed in this process".to_string())
    }
}

/// Every route.
pub fn routes(
    herder: SharedHerder,
    options: RestOptions,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let levels: Arc<dyn LogLevels> = options.loggers.unwrap_or_else(|| Arc::new(FixedLevels));
    let api = root::routes(herder.clone())
        .or(connectors::routes(herder.clone()))
        .unify()
        .or(lifecycle::routes(herder.clone()))
        .unify()
        .or(offsets::routes(herder.clone()))
        .unify()
        .or(plugins::routes(herder.clone()))
        .unify()
        .or(loggers::routes(levels, herder.clone()))
        .unify()
        .or(warp::path!("openapi.json")
            .and(warp::get())
            .map(|| error::json(warp::http::StatusCode::OK, &openapi::document())))
        .unify();
    let leader_tls = options.tls.as_ref().map(|t| t.client.clone()).or_else(tls::default_client);
    let api = forward::filter(herder, leader_tls).or(api).unify();
    options.auth.filter().and(api).recover(error::recover).unify().with(warp::log::custom(request_log))
}

/// One line per request, through `tracing` (target `sluice::rest`, so `/admin/loggers` controls it).
fn request_log(info: warp::log::Info<'_>) {
    tracing::info!(
        target: "sluice::rest",
        remote = ?info.remote_addr(),
        method = %info.method(),
        path = info.path(),
        status = info.status().as_u16(),
        elapsed_ms = info.elapsed().as_secs_f64() * 1e3,
        "request"
    );
}

/// Serves the API over HTTP on an already bound listener (bind first, so the worker id can carry
/// the real port, and port 0 works in tests) until `shutdown` completes.
pub async fn serve(
    herder: SharedHerder,
    listener: TcpListener,
    options: RestOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(herder, options)).incoming(listener).graceful(shutdown).run().await
}

/// Serves the API over HTTPS (`options.tls`, which must be set) until `shutdown` completes; then
/// waits for the connections in flight, as [`serve`] does.
pub async fn serve_https(
    herder: SharedHerder,
    listener: TcpListener,
    options: RestOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TlsError> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    /// Longest a client may take to complete its handshake.
    const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

    let tls = options.tls.clone().ok_or_else(|| TlsError("an https listener needs ssl.keystore.* settings".into()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server);
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
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::info!(target: "sluice::rest", %remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(target: "sluice::rest", %remote, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(service);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(target: "sluice::rest", %remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
