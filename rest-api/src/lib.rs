//! Kafka Connect's REST API on warp, over the [`Herder`] interface. Handlers only translate: every
//! domain error is a reply with Kafka Connect's `{"error_code","message"}` body, and one `recover`
//! gives transport rejections the same shape.

mod auth;
mod connectors;
mod error;
mod forward;
mod lifecycle;
mod loggers;
mod offsets;
pub mod openapi;
mod plugins;
mod root;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use sluice_runtime::herder::Herder;
use tokio::net::TcpListener;
use warp::Filter;

pub use auth::Auth;
pub use error::ApiError;
pub use loggers::{LogLevels, LoggerLevel};

/// Shared handle the routes use.
pub type SharedHerder = Arc<dyn Herder>;

/// What the API serves besides the herder: authentication and log levels.
#[derive(Clone, Default)]
pub struct RestOptions {
    /// Authentication of every request but `GET /health`.
    pub auth: Auth,
    /// `/admin/loggers`; without it the API reports no loggers and changes none.
    pub loggers: Option<Arc<dyn LogLevels>>,
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
        .or(loggers::routes(levels))
        .unify()
        .or(warp::path!("openapi.json")
            .and(warp::get())
            .map(|| error::json(warp::http::StatusCode::OK, &openapi::document())))
        .unify();
    let api = forward::filter(herder).or(api).unify();
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

/// Serves the API on an already bound listener (bind first, so the worker id can carry the real
/// port, and port 0 works in tests) until `shutdown` completes.
pub async fn serve(
    herder: SharedHerder,
    listener: TcpListener,
    options: RestOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(herder, options)).incoming(listener).graceful(shutdown).run().await
}
