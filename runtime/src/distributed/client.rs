//! A minimal Kafka protocol client for the group coordinator APIs, on tokio. rdkafka cannot run a
//! custom group protocol, so workers speak FindCoordinator/JoinGroup/SyncGroup/Heartbeat/LeaveGroup
//! themselves, with the `kafka-protocol` crate for the message codecs.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted.
const MAX_RESPONSE: usize = 64 << 20;

/// A protocol-level failure.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Network failure.
    #[error("{addr}: {source}")]
    Io {
        /// Broker address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding failed.
    #[error("{addr}: {message}")]
    Codec {
        /// Broker address.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The broker does not support an API we need.
    #[error("{addr}: broker does not support {api:?} in versions {min}..={max}")]
    Unsupported {
        /// Broker address.
        addr: String,
        /// The API.
        api: ApiKey,
        /// Lowest version we can use.
        min: i16,
        /// Highest version we can use.
        max: i16,
    },
    /// The request timed out.
    #[error("{addr}: {api:?} timed out after {timeout:?}")]
    Timeout {
        /// Broker address.
        addr: String,
        /// The API.
        api: ApiKey,
        /// The timeout.
        timeout: Duration,
    },
}

/// One connection to one broker.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and learns the broker's API versions.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Connection, ProtocolError> {
        let io = |source| ProtocolError::Io { addr: addr.to_string(), source };
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            versions: HashMap::new(),
        };
        let response: ApiVersionsResponse =
            conn.send_version(&ApiVersionsRequest::default(), 0, Duration::from_secs(10)).await?;
        conn.versions = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(conn)
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` with the highest version both sides support, within `min..=max`.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        min: i16,
        max: i16,
        timeout: Duration,
    ) -> Result<(R::Response, i16), ProtocolError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| self.codec("unknown api key"))?;
        let (broker_min, broker_max) = self.versions.get(&R::KEY).copied().unwrap_or((0, -1));
        let version = max.min(broker_max).min(R::VERSIONS.max);
        if version < min.max(broker_min) {
            return Err(ProtocolError::Unsupported { addr: self.addr.clone(), api, min, max });
        }
        Ok((self.send_version(request, version, timeout).await?, version))
    }

    async fn send_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ProtocolError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| self.codec("unknown api key"))?;
        match tokio::time::timeout(timeout, self.round_trip(request, version)).await {
            Ok(r) => r,
            Err(_) => Err(ProtocolError::Timeout { addr: self.addr.clone(), api, timeout }),
        }
    }

    async fn round_trip<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, ProtocolError> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).map_err(|e| self.codec(format!("encode header: {e}")))?;
        request.encode(&mut body, version).map_err(|e| self.codec(format!("encode request: {e}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let addr = self.addr.clone();
        let io = |source| ProtocolError::Io { addr: addr.clone(), source };
        self.stream.write_all(&frame).await.map_err(io)?;
        let len = self.stream.read_i32().await.map_err(io)?;
        let len =
            usize::try_from(len).ok().filter(|l| *l <= MAX_RESPONSE).ok_or_else(|| self.codec("bad response size"))?;
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await.map_err(io)?;
        let mut bytes = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut bytes, R::Response::header_version(version))
            .map_err(|e| self.codec(format!("decode response header: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(self.codec(format!("correlation id {} != {}", header.correlation_id, self.correlation)));
        }
        let response =
            R::Response::decode(&mut bytes, version).map_err(|e| self.codec(format!("decode response: {e}")))?;
        if bytes.has_remaining() {
            tracing::debug!(addr = %self.addr, left = bytes.remaining(), "response had trailing bytes");
        }
        Ok(response)
    }

    fn codec(&self, message: impl Into<String>) -> ProtocolError {
        ProtocolError::Codec { addr: self.addr.clone(), message: message.into() }
    }
}
