//! `/connector-plugins`: the installed plugins, their config definitions, and validation.

use std::collections::BTreeMap;
use std::convert::Infallible;

use serde_json::{json, Value as Json};
use sluice_api::ConfigMap;
use sluice_runtime::herder::find_plugin;
use sluice_runtime::herder::validate::{plugin_config_keys, validate_config_infos};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::error::{json, respond, ApiError};
use crate::SharedHerder;

/// The converters every build has, with the plugin types Kafka Connect lists them under.
const CONVERTERS: [&str; 3] = [
    "org.apache.kafka.connect.converters.ByteArrayConverter",
    "org.apache.kafka.connect.json.JsonConverter",
    "org.apache.kafka.connect.storage.StringConverter",
];

pub(crate) fn routes(herder: SharedHerder) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || herder.clone());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let list = warp::path!("connector-plugins").and(warp::get()).and(raw_query).and(with.clone()).and_then(list);
    let config =
        warp::path!("connector-plugins" / String / "config").and(warp::get()).and(with.clone()).and_then(config);
    let validate = warp::path!("connector-plugins" / String / "config" / "validate")
        .and(warp::put())
        .and(crate::body::json())
        .and(with)
        .and_then(validate);
    list.or(config).unify().or(validate).unify()
}

/// `GET /connector-plugins[?connectorsOnly=false]`: sorted by class, as Kafka Connect.
async fn list(query: String, herder: SharedHerder) -> Result<Response, Infallible> {
    let connectors_only = !query.split('&').any(|kv| kv.eq_ignore_ascii_case("connectorsOnly=false"));
    let version = env!("CARGO_PKG_VERSION");
    let mut out: Vec<(String, &str, String)> = herder
        .plugins()
        .iter()
        .map(|p| (p.class.to_string(), p.connector_type.name(), p.version.to_string()))
        .collect();
    if !connectors_only {
        for class in CONVERTERS {
            out.push((class.to_string(), "converter", version.to_string()));
            out.push((class.to_string(), "header_converter", version.to_string()));
        }
        for class in sluice_runtime::transforms::TRANSFORM_CLASSES {
            out.push((class.to_string(), "transformation", version.to_string()));
        }
        for class in sluice_runtime::transforms::PREDICATE_CLASSES {
            out.push((class.to_string(), "predicate", version.to_string()));
        }
    }
    out.sort();
    let list: Vec<Json> =
        out.into_iter().map(|(class, kind, v)| json!({"class": class, "type": kind, "version": v})).collect();
    respond(Ok(json(StatusCode::OK, &list)))
}

fn unknown(plugin: &str) -> ApiError {
    ApiError::new(404, format!("Unknown plugin {plugin}."))
}

/// `GET /connector-plugins/{plugin}/config`: the connector's own keys.
async fn config(plugin: String, herder: SharedHerder) -> Result<Response, Infallible> {
    let plugins = herder.plugins();
    respond(
        find_plugin(&plugins, &plugin)
            .map(|p| json(StatusCode::OK, &plugin_config_keys(p)))
            .ok_or_else(|| unknown(&plugin)),
    )
}

/// `PUT /connector-plugins/{plugin}/config/validate`: every key with its value and problems.
async fn validate(plugin: String, body: BTreeMap<String, Json>, herder: SharedHerder) -> Result<Response, Infallible> {
    let plugins = herder.plugins();
    respond((|| {
        let p = find_plugin(&plugins, &plugin).ok_or_else(|| unknown(&plugin))?;
        let mut config = ConfigMap::new();
        for (k, v) in body {
            let v = match v {
                Json::String(s) => s,
                Json::Null => continue,
                other => other.to_string(),
            };
            config.insert(k, v);
        }
        match config.get("connector.class") {
            Some(class) if find_plugin(&plugins, class).map(|q| q.class) != Some(p.class) => {
                return Err(ApiError::new(
                    400,
                    format!("Included connector type {class} does not match request type {plugin}"),
                ))
            }
            Some(_) => {}
            None => {
                config.insert("connector.class".to_string(), p.class.to_string());
            }
        }
        Ok(json(StatusCode::OK, &validate_config_infos(&plugins, p, &config)))
    })())
}
