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
mod server;
mod tls;

use std::convert::Infallible;
use std::sync::Arc;

use sluice_runtime::herder::Herder;
use warp::Filter;

pub use auth::Auth;
pub use error::ApiError;
pub use loggers::{LogLevels, LoggerLevel};
pub use server::{serve, serve_https};
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
    /// Longest a request may take before it is answered with a 500 (Kafka Connect: 90 s); the
    /// operation itself goes on. `None`: 90 s.
    pub request_timeout: Option<std::time::Duration>,
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
    let forwarder =
        forward::Forwarder::new(options.tls.as_ref().map(|t| t.client.clone()).or_else(tls::default_client));
    let api = root::routes(herder.clone())
        .or(connectors::routes(herder.clone()))
        .unify()
        .or(lifecycle::routes(herder.clone(), forwarder.clone()))
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
    let api = forward::filter(herder, forwarder).or(api).unify();
    options.auth.filter().and(api).recover(error::recover).unify()
}
