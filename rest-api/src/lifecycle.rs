//! Pause, resume, stop and restart: `PUT /connectors/{c}/pause|resume|stop`,
//! `POST /connectors/{c}/restart?includeTasks=&onlyFailed=`, `POST /connectors/{c}/tasks/{t}/restart`.
//! A task restart is sent on to the worker that runs the task (Kafka Connect's routing, with
//! its `forward` hop rule).

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use sluice_runtime::herder::HerderError;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::{json, respond, ApiError};
use crate::forward::{hops_exhausted, next_hop, Forwarder};
use crate::SharedHerder;

pub(crate) fn routes(
    herder: SharedHerder,
    forwarder: Forwarder,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || herder.clone());
    let pause = warp::path!("connectors" / String / "pause").and(warp::put()).and(with.clone()).and_then(pause);
    let resume = warp::path!("connectors" / String / "resume").and(warp::put()).and(with.clone()).and_then(resume);
    let stop = warp::path!("connectors" / String / "stop").and(warp::put()).and(with.clone()).and_then(stop);
    let restart = warp::path!("connectors" / String / "restart")
        .and(warp::post())
        .and(warp::query::<HashMap<String, String>>())
        .and(with.clone())
        .and_then(restart);
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let restart_task = warp::path!("connectors" / String / "tasks" / u32 / "restart")
        .and(warp::post())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(with)
        .and(warp::any().map(move || forwarder.clone()))
        .then(restart_task);
    pause.or(resume).unify().or(stop).unify().or(restart).unify().or(restart_task).unify()
}

fn empty(status: StatusCode) -> Response {
    status.into_response()
}

async fn pause(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.pause_connector(&name).await.map(|_| empty(StatusCode::ACCEPTED)).map_err(ApiError::from))
}

async fn resume(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.resume_connector(&name).await.map(|_| empty(StatusCode::ACCEPTED)).map_err(ApiError::from))
}

async fn stop(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.stop_connector(&name).await.map(|_| empty(StatusCode::NO_CONTENT)).map_err(ApiError::from))
}

/// Kafka Connect parses these booleans leniently: only "true" (any case) is true.
fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    query.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

async fn restart(name: String, query: HashMap<String, String>, herder: SharedHerder) -> Result<Response, Infallible> {
    let (include_tasks, only_failed) = (flag(&query, "includeTasks"), flag(&query, "onlyFailed"));
    respond(
        herder
            .restart_connector(&name, include_tasks, only_failed)
            .await
            .map(|body| match body {
                Some(status) => json(StatusCode::ACCEPTED, &status),
                None => empty(StatusCode::NO_CONTENT),
            })
            .map_err(ApiError::from),
    )
}

async fn restart_task(
    name: String,
    task: u32,
    query: String,
    headers: HeaderMap,
    herder: SharedHerder,
    forwarder: Forwarder,
) -> Response {
    match herder.restart_task(&name, task).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(HerderError::NotAssigned { worker, .. }) => {
            let Some(query) = next_hop(&query) else { return hops_exhausted() };
            let scheme = herder.leader_rest_url().filter(|u| u.starts_with("https://")).map_or("http", |_| "https");
            let url = format!("{scheme}://{worker}/connectors/{name}/tasks/{task}/restart?{query}");
            tracing::info!(target: "sluice::rest", %url, "sending a task restart to the worker that runs it");
            forwarder.send(&Method::POST, &url, &headers, Bytes::new()).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
