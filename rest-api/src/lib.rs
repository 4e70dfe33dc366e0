//! Kafka Connect's REST API on warp, over the [`Herder`] interface. Handlers only translate: every
//! domain error is a reply with Kafka Connect's `{"error_code","message"}` body, and one `recover`
//! gives transport rejections the same shape.

mod connectors;
mod error;
mod lifecycle;
mod offsets;
mod plugins;
mod root;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use sluice_runtime::herder::Herder;
use tokio::net::TcpListener;
use warp::Filter;

pub use error::ApiError;

/// Shared handle the routes use.
pub type SharedHerder = Arc<dyn Herder>;

/// Every route.
pub fn routes(herder: SharedHerder) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    root::routes(herder.clone())
        .or(connectors::routes(herder.clone()))
        .unify()
        .or(lifecycle::routes(herder.clone()))
        .unify()
        .or(offsets::routes(herder.clone()))
        .unify()
        .or(plugins::routes(herder))
        .unify()
        .recover(error::recover)
        .unify()
        .with(warp::log("sluice::rest"))
}

/// Serves the API on an already bound listener (bind first, so the worker id can carry the real
/// port, and port 0 works in tests) until `shutdown` completes.
pub async fn serve(herder: SharedHerder, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    warp::serve(routes(herder)).incoming(listener).graceful(shutdown).run().await
}
