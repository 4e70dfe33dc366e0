use std::convert::Infallible;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::error::{json, respond};
use crate::SharedHerder;

pub(crate) fn routes(herder: SharedHerder) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let herder_for_metrics = herder.clone();
    let with = warp::any().map(move || herder.clone());
    let root = warp::path::end().and(warp::get()).and(with.clone()).and_then(server_info);
    // Kafka Connect's `GET /health` (KIP-1017): 200 healthy, 503 while starting.
    let health = warp::path!("health").and(warp::get()).and(with.clone()).map(|h: SharedHerder| match h.health() {
        Ok(()) => json(
            StatusCode::OK,
            &json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}),
        ),
        Err(message) => json(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "starting", "message": message})),
    });
    let cluster = warp::path!("admin" / "cluster")
        .and(warp::get())
        .and(with)
        .map(|h: SharedHerder| json(StatusCode::OK, &h.cluster()));
    let metrics = warp::path!("metrics").and(warp::get()).and(with_metrics(herder_for_metrics)).then(
        |h: SharedHerder| async move {
            let mut reply = Response::new(h.metrics_text().await.into());
            if let Ok(v) = "text/plain; version=0.0.4".parse() {
                reply.headers_mut().insert("content-type", v);
            }
            reply
        },
    );
    root.or(health).unify().or(cluster).unify().or(metrics).unify()
}

/// `GET /`, fields in Kafka Connect's order.
#[derive(serde::Serialize)]
struct ServerInfo {
    version: &'static str,
    commit: &'static str,
    kafka_cluster_id: Option<String>,
}

async fn server_info(herder: SharedHerder) -> Result<Response, Infallible> {
    let info = ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("SLUICE_GIT_COMMIT"),
        kafka_cluster_id: herder.kafka_cluster_id(),
    };
    respond(Ok(json(StatusCode::OK, &info)))
}

fn with_metrics(herder: SharedHerder) -> impl Filter<Extract = (SharedHerder,), Error = Infallible> + Clone {
    warp::any().map(move || herder.clone())
}
