//! Connector offsets (KIP-875): `GET|PATCH|DELETE /connectors/{c}/offsets`.

use std::convert::Infallible;

use serde_json::json;
use sluice_runtime::herder::ConnectorOffsets;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::error::{json, respond, ApiError};
use crate::SharedHerder;

pub(crate) fn routes(herder: SharedHerder) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with = warp::any().map(move || herder.clone());
    let get = warp::path!("connectors" / String / "offsets").and(warp::get()).and(with.clone()).and_then(get);
    let alter = warp::path!("connectors" / String / "offsets")
        .and(warp::patch())
        .and(crate::body::json())
        .and(with.clone())
        .and_then(alter);
    let reset = warp::path!("connectors" / String / "offsets").and(warp::delete()).and(with).and_then(reset);
    get.or(alter).unify().or(reset).unify()
}

async fn get(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(herder.connector_offsets(&name).await.map(|o| json(StatusCode::OK, &o)).map_err(ApiError::from))
}

async fn alter(name: String, body: ConnectorOffsets, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        herder
            .alter_connector_offsets(&name, body)
            .await
            .map(|_| {
                json(
                    StatusCode::OK,
                    &json!({"message": "The offsets for this connector have been altered successfully"}),
                )
            })
            .map_err(ApiError::from),
    )
}

async fn reset(name: String, herder: SharedHerder) -> Result<Response, Infallible> {
    respond(
        herder
            .reset_connector_offsets(&name)
            .await
            .map(|_| {
                json(StatusCode::OK, &json!({"message": "The offsets for this connector have been reset successfully"}))
            })
            .map_err(ApiError::from),
    )
}
