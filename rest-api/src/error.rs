use std::convert::Infallible;

use serde::Serialize;
use sluice_runtime::herder::HerderError;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// An error reply: `{"error_code": <status>, "message": "..."}`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// HTTP status.
    pub error_code: u16,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error with a status.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { error_code: status, message: message.into() }
    }
}

impl From<HerderError> for ApiError {
    fn from(e: HerderError) -> ApiError {
        ApiError::new(e.status_code(), e.to_string())
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        warp::reply::with_status(warp::reply::json(&self), status).into_response()
    }
}

/// A JSON body with a status.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Turns a handler result into a response.
pub(crate) fn respond(result: Result<Response, ApiError>) -> Result<Response, Infallible> {
    Ok(result.unwrap_or_else(Reply::into_response))
}

/// Transport rejections in Kafka Connect's error shape (Jersey's messages).
pub(crate) async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    if let Some(u) = rejection.find::<crate::auth::Unauthorized>() {
        let mut reply = ApiError::new(401, u.message).into_response();
        reply.headers_mut().insert("www-authenticate", u.challenge.clone());
        return Ok(reply);
    }
    // Checked first: `find` searches every combined rejection, and a body problem of the route
    // that matched must win over the 404/405 of the routes that did not.
    if let Some(b) = rejection.find::<crate::body::BodyRejection>() {
        return Ok(b.0.clone().into_response());
    }
    let error = if rejection.is_not_found() {
        ApiError::new(404, "HTTP 404 Not Found")
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::new(400, format!("Cannot deserialize the request body: {e}"))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(405, "HTTP 405 Method Not Allowed")
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(415, "HTTP 415 Unsupported Media Type")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(413, "HTTP 413 Request Entity Too Large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(411, "HTTP 411 Length Required")
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::new(500, "Internal server error")
    };
    Ok(error.into_response())
}
