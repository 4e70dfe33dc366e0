use std::collections::BTreeMap;
use std::convert::Infallible;

use serde::Deserialize;
use serde_json::{json, Value as Json};
use sluice_api::ConfigMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use sluice_runtime::storage::TargetState;

use crate::error::{json, respond, ApiError};
use crate::SharedHerder;

#[derive(Deserialize)]
struct CreateRequest {
    name: Option<String>,
    config: Option<BTreeMap<String, Json>>,
    initial_state: Option<String>,
}

pub(crate) fn routes(herder: SharedHerder) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || herder.clone());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let list = warp::path!("connectors").and(warp::get()).and(raw_query).and(with.clone()).and_then(list);
    let create =
        warp::path!("connectors").and(warp::post()).and(crate::body::json()).and(with.clone()).and_then(create);
    let info = warp::path!("connectors" / String).and(warp::get()).and(with.clone()).and_then(info);
    let delete = warp::path!("connectors" / String).and(warp::delete()).and(with.clone()).and_then(delete);
    let config = warp::path!("connectors" / String / "config").and(warp::get()).and(with.clone()).and_then(config);
    let put_config = warp::path!("connectors" / String / "config")
        .and(warp::put())
        .and(crate::body::json())
        .and(with.clone())
        .and_then(put_config);
    let patch_config = warp::path!("connectors" / String / "config")
        .and(warp::patch())
        .and(crate::body::json())
        .and(with.clone())
        .and_then(patch_config);
    let status = warp::path!("connectors" / String / "status").and(warp::get()).and(with.clone()).and_then(status);
    let task_status = warp::path!("connectors" / String / "tasks" / u32 / "status")
        .and(warp::get())
        .and(with.clone())
        .and_then(task_status);
    let tasks = warp::path!("connectors" / String / "tasks").and(warp::get()).and(with.clone()).and_then(tasks);
    let tasks_config =
        warp::path!("connectors" / String / "tasks-config").and(warp::get()).and(with.clone()).and_then(tasks_config);
    let topics = warp::path!("connectors" / String / "topics").and(warp::get()).and(with.clone()).and_then(topics);
    let reset_topics =
        warp::path!("connectors" / String / "topics" / "reset").and(warp::put()).and(with).and_then(reset_topics);
    list.or(create)
        .unify()
        .or(tasks_config)
        .unify()
        .or(info)
        .unify()
        .or(delete)
        .unify()
        .or(config)
        .unify()
        .or(put_config)
        .unify()
        .or(patch_config)
        .unify()
        .or(task_status)
        .unify()
        .or(status)
        .unify()
        .or(tasks)
        .unify()
        .or(topics)
        .unify()
        .or(reset_topics)
        .unify()
}

/// Config values may arrive as JSON strings, numbers or booleans; Kafka Connect stores strings.
fn flatten_config(config: BTreeMap<String, Json>) -> Result<ConfigMap, ApiError> {
    config.into_iter().map(|(k, v)| config_value(&k, v).map(|v| (k, v))).collect()
}

fn config_value(k: &str, v: Json) -> Result<String, ApiError> {
    match v {
        Json::String(s) => Ok(s),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Null => Err(ApiError::new(400, format!("Config value of {k} must not be null"))),
        other => Err(ApiError::new(400, format!("Config value of {k} must be a string, not {other}"))),
    }
}

async fn list(query: String, herder: SharedHerder) -> Result<Response, Infallible> {
    let expand: Vec<&str> = query.split('&').filter_map(|kv| kv.strip_prefix("expand=")).collect();
    let names = herder.connectors().await;
    if expand.is_empty() {
        return respond(Ok(json(StatusCode::OK, &names)));
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut entry = serde_json::Map::new();
        if expand.contains(&"status") {
            if let Ok(s) = herder.connector_status(&name).await {
                entry.insert("status".into(), json!(s));
            }
        }
        if expand.contains(&"info") {
            if let Ok(i) = herder.connector_info(&name).await {
                entry.insert("info".into(), json!(i));
            }
        }
        out.insert(name, Json::Object(entry));
    }
    respond(Ok(json(StatusCode::OK, &out)))
}

async fn create(body: CreateRequest, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        async {
            let name = body
                .name
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| ApiError::new(400, "Connector name must be provided"))?;
            let config =
                flatten_config(body.config.ok_or_else(|| ApiError::new(400, "Connector config must be provided"))?)?;
            // Kafka Connect's `initial_state` (KAFKA-15470): RUNNING (default), PAUSED or STOPPED.
            let initial = match body.initial_state.as_deref().map(str::to_ascii_uppercase).as_deref() {
                None | Some("RUNNING") => None,
                Some("PAUSED") => Some(TargetState::Paused),
                Some("STOPPED") => Some(TargetState::Stopped),
                Some(_) => {
                    return Err(ApiError::new(
                        400,
                        format!(
                            "Invalid initial state {:?}: expected one of RUNNING, PAUSED, STOPPED",
                            body.initial_state.unwrap_or_default()
                        ),
                    ))
                }
            };
            let (_, info) = herder.put_connector_config(&name, config, false, initial).await?;
            let mut reply = json(StatusCode::CREATED, &info);
            if let Ok(loc) = format!("/connectors/{name}").parse() {
                reply.headers_mut().insert("location", loc);
            }
            Ok(reply)
        }
        .await,
    )
}

async fn info(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.connector_info(&name).await.map(|i| json(StatusCode::OK, &i)).map_err(ApiError::from))
}

async fn delete(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        herder.delete_connector(&name).await.map(|_| StatusCode::NO_CONTENT.into_response()).map_err(ApiError::from),
    )
}

async fn config(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.connector_config(&name).await.map(|c| json(StatusCode::OK, &c)).map_err(ApiError::from))
}

async fn put_config(name: String, body: BTreeMap<String, Json>, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        async {
            let config = flatten_config(body)?;
            let (created, info) = herder.put_connector_config(&name, config, true, None).await?;
            Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, &info))
        }
        .await,
    )
}

/// `PATCH /connectors/{c}/config`: a merge patch over the stored config; `null` removes a key.
async fn patch_config(
    name: String,
    body: BTreeMap<String, Json>,
    herder: SharedHerder,
) -> Result<Response, Infallible> {
    respond(
        async {
            let mut config = herder.stored_connector_config(&name).await?;
            for (k, v) in body {
                match v {
                    Json::Null => {
                        config.remove(&k);
                    }
                    other => {
                        let v = config_value(&k, other)?;
                        config.insert(k, v);
                    }
                }
            }
            let (_, info) = herder.put_connector_config(&name, config, true, None).await?;
            Ok(json(StatusCode::OK, &info))
        }
        .await,
    )
}

/// `GET /connectors/{c}/tasks/{t}/status`.
async fn task_status(name: String, task: u32, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        async {
            let status = herder.connector_status(&name).await?;
            let states = serde_json::to_value(&status).unwrap_or_default();
            let found = states["tasks"]
                .as_array()
                .and_then(|tasks| tasks.iter().find(|t| t["id"].as_u64() == Some(u64::from(task))).cloned());
            found
                .map(|t| json(StatusCode::OK, &t))
                .ok_or_else(|| ApiError::new(404, format!("No status found for task {name}-{task}")))
        }
        .await,
    )
}

async fn status(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.connector_status(&name).await.map(|s| json(StatusCode::OK, &s)).map_err(ApiError::from))
}

async fn tasks(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.task_configs(&name).await.map(|t| json(StatusCode::OK, &t)).map_err(ApiError::from))
}

/// `GET /connectors/{c}/tasks-config` (deprecated in Kafka Connect 3.7, gone in 4.0; served for
/// older clients): `{"<c>-<n>": {config}}`.
async fn tasks_config(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        herder
            .task_configs(&name)
            .await
            .map(|tasks| {
                let map: BTreeMap<String, _> =
                    tasks.into_iter().map(|t| (format!("{}-{}", t.id.connector, t.id.task), t.config)).collect();
                json(StatusCode::OK, &map)
            })
            .map_err(ApiError::from),
    )
}

/// `GET /connectors/{c}/topics`: `{"<c>":{"topics":[...]}}`.
async fn topics(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        herder
            .connector_topics(&name)
            .await
            .map(|t| json(StatusCode::OK, &json!({ name.clone(): {"topics": t} })))
            .map_err(ApiError::from),
    )
}

/// `PUT /connectors/{c}/topics/reset`: 202.
async fn reset_topics(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        herder
            .reset_connector_topics(&name)
            .await
            .map(|_| StatusCode::ACCEPTED.into_response())
            .map_err(ApiError::from),
    )
}
