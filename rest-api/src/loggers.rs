//! `/admin/loggers`: log levels read and changed at runtime, on this worker (`scope=worker`, 200
//! with the loggers changed) or on every worker of the cluster (`scope=cluster`, 204: written to
//! the config topic as `logger-cluster-<name>`, applied by each worker as it reads it; standalone
//! applies it here). An unknown scope is taken as `worker`, as Kafka Connect does. Logger names
//! are Rust targets (`sluice_runtime`, `sluice_connectors::sources::mysql`, `sluice::rest`);
//! `root` is the default level.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::error::{json, respond, ApiError};
use crate::SharedHerder;

/// One logger's level, as Kafka Connect's `LoggerLevel`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoggerLevel {
    /// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `OFF`.
    pub level: String,
    /// When it was last set through the API, epoch milliseconds (`null`: from start-up).
    pub last_modified: Option<i64>,
}

/// The process's log levels, as the binary's logging set-up exposes them.
pub trait LogLevels: Send + Sync {
    /// Every logger with a level of its own, and `root`.
    fn loggers(&self) -> BTreeMap<String, LoggerLevel>;
    /// Sets `name` (and every logger below it) to `level`, a valid upper-case level. Returns the
    /// loggers changed.
    fn set(&self, name: &str, level: &str) -> Result<Vec<String>, String>;
}

/// Kafka Connect's levels; FATAL is taken as ERROR.
const LEVELS: [&str; 7] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"];

#[derive(Deserialize)]
struct LevelRequest {
    level: Option<String>,
}

pub(crate) fn routes(
    levels: Arc<dyn LogLevels>,
    herder: SharedHerder,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || levels.clone());
    let with_herder = warp::any().map(move || herder.clone());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let all = warp::path!("admin" / "loggers")
        .and(warp::get())
        .and(with.clone())
        .map(|l: Arc<dyn LogLevels>| json(StatusCode::OK, &l.loggers()));
    let one = warp::path!("admin" / "loggers" / String).and(warp::get()).and(with.clone()).and_then(one);
    let set = warp::path!("admin" / "loggers" / String)
        .and(warp::put())
        .and(raw_query)
        .and(crate::body::json())
        .and(with)
        .and(with_herder)
        .and_then(set);
    all.or(one).unify().or(set).unify()
}

async fn one(name: String, levels: Arc<dyn LogLevels>) -> Result<Response, Infallible> {
    respond(
        levels
            .loggers()
            .remove(&name)
            .map(|l| json(StatusCode::OK, &l))
            .ok_or_else(|| ApiError::new(404, format!("Logger {name} not found."))),
    )
}

async fn set(
    name: String,
    query: String,
    body: LevelRequest,
    levels: Arc<dyn LogLevels>,
    herder: SharedHerder,
) -> Result<Response, Infallible> {
    let level = match body.level {
        Some(l) => l,
        None => {
            return Ok(ApiError::new(400, "Desired 'level' parameter was not specified in request.").into_response())
        }
    };
    let upper = level.trim().to_ascii_uppercase();
    if !LEVELS.contains(&upper.as_str()) {
        return Ok(ApiError::new(404, format!("invalid log level '{level}'.")).into_response());
    }
    let upper = if upper == "FATAL" { "ERROR".to_string() } else { upper };
    let scope = query.split('&').find_map(|kv| kv.strip_prefix("scope=")).unwrap_or("worker");
    if scope.eq_ignore_ascii_case("cluster") {
        let result = match herder.set_cluster_logger_level(&name, &upper).await {
            Ok(true) => Ok(()),
            // No cluster: this worker is all of it.
            Ok(false) => levels.set(&name, &upper).map(drop).map_err(|e| ApiError::new(400, e)),
            Err(e) => Err(ApiError::from(e)),
        };
        return Ok(match result {
            Ok(()) => warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response(),
            Err(e) => e.into_response(),
        });
    }
    if !scope.eq_ignore_ascii_case("worker") {
        tracing::warn!(target: "sluice::rest", scope, "unknown logger scope; using scope=worker");
    }
    respond(levels.set(&name, &upper).map(|changed| json(StatusCode::OK, &changed)).map_err(|e| ApiError::new(400, e)))
}
