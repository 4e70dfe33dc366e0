//! Request bodies: read with or without `Content-Length` (chunked too, which warp's
//! `content_length_limit` would refuse with a 411), bounded by [`MAX_BODY`] (413 past it), and
//! parsed as JSON (400 with the parser's reason).

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use crate::error::ApiError;

/// Largest accepted request body.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// A body that cannot be read or parsed, answered as its error.
#[derive(Debug)]
pub(crate) struct BodyRejection(pub ApiError);

impl warp::reject::Reject for BodyRejection {}

/// The whole body, up to `MAX_BODY`.
pub(crate) async fn read<S, B>(mut body: S) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(400, format!("Cannot read the request body: {e}")))?;
        if out.len() + chunk.remaining() > MAX_BODY {
            return Err(ApiError::new(413, "HTTP 413 Request Entity Too Large"));
        }
        bytes::BufMut::put(&mut out, chunk);
    }
    Ok(out.freeze())
}

/// The body as JSON of type `T`.
pub(crate) fn json<T: DeserializeOwned + Send + 'static>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::stream().and_then(|body| async move {
        let bytes = read(body).await.map_err(|e| warp::reject::custom(BodyRejection(e)))?;
        serde_json::from_slice::<T>(&bytes).map_err(|e| {
            warp::reject::custom(BodyRejection(ApiError::new(400, format!("Cannot deserialize the request body: {e}"))))
        })
    })
}
