//! Pause, resume, stop and restart: `PUT /connectors/{c}/pause|resume|stop`,
//! `POST /connectors/{c}/restart?includeTasks=&onlyFailed=`, `POST /connectors/{c}/tasks/{t}/restart`.

use std::collections::HashMap;
use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::{json, respond, ApiError};
use crate::SharedHerder;

pub(crate) fn routes(herder: SharedHerder) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || herder.clone());
    let pause = warp::path!("connectors" / String / "pause").and(warp::put()).and(with.clone()).and_then(pause);
    let resume = warp::path!("connectors" / String / "resume").and(warp::put()).and(with.clone()).and_then(resume);
    let stop = warp::path!("connectors" / String / "stop").and(warp::put()).and(with.clone()).and_then(stop);
    let restart = warp::path!("connectors" / String / "restart")
        .and(warp::post())
        .and(warp::query::<HashMap<String, String>>())
        .and(with.clone())
        .and_then(restart);
    let restart_task = warp::path!("connectors" / String / "tasks" / u32 / "restart")
        .and(warp::post())
        .and(with)
        .and_then(restart_task);
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

async fn restart_task(name: String, task: u32, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.restart_task(&name, task).await.map(|_| empty(StatusCode::NO_CONTENT)).map_err(ApiError::from))
}
