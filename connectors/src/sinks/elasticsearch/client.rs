//! HTTP to the cluster: one pooled HTTP/1.1 client (keep-alive), the configured nodes tried in
//! turn, basic auth, optional gzip bodies, a timeout on every request.

use sluice_api::error_chain;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::config::EsSinkConfig;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct TransportError {
    /// The URL tried last.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text, cut to a readable length for error messages.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match text.char_indices().nth(500) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text.into_owned(),
        }
    }
}

/// The cluster client.
pub struct EsClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    bases: Vec<String>,
    next: AtomicUsize,
    auth: Option<HeaderValue>,
    read_timeout: Duration,
    compression: bool,
}

impl EsClient {
    /// A client for the configured nodes (http:// and https://); connects lazily. Fails only on an
    /// unusable truststore or keystore.
    pub fn new(config: &EsSinkConfig) -> Result<EsClient, String> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let identity = config.keystore.as_deref().map(|path| crate::tls::Identity { key: path, certs: path });
        let which = if identity.is_some() {
            "elastic.https.ssl.keystore.location / elastic.https.ssl.truststore.location"
        } else {
            "elastic.https.ssl.truststore.location"
        };
        let tls =
            crate::tls::client_config(config.truststore.as_deref(), identity).map_err(|e| format!("{which}: {e}"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_in_flight.max(1) * 2)
            .build(connector);
        let auth = config.username.as_ref().and_then(|user| {
            let pair = format!("{user}:{}", config.password.as_deref().unwrap_or(""));
            let mut v =
                HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
                    .ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Ok(EsClient {
            http,
            bases: config.endpoints.iter().map(|e| e.base.clone()).collect(),
            next: AtomicUsize::new(0),
            auth,
            read_timeout: config.read_timeout,
            compression: config.compression,
        })
    }

    /// The first node's URL, for messages.
    pub fn first_url(&self) -> &str {
        self.bases.first().map_or("", String::as_str)
    }

    /// Sends one request, to the next node in turn; on a connection failure, to the others.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Answer, TransportError> {
        let (content_type, body) = match body {
            Some((ct, b)) if self.compression && b.len() > 1024 => {
                (Some(ct), gzip(&b).map(|g| (g, true)).unwrap_or((b, false)))
            }
            Some((ct, b)) => (Some(ct), (b, false)),
            None => (None, (Bytes::new(), false)),
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.bases.len() {
            let base = &self.bases[(start + i) % self.bases.len()];
            let url = format!("{base}{path}");
            let mut req = Request::builder().method(method.clone()).uri(&url);
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            if body.1 {
                req = req.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(auth) = &self.auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            let req = match req.body(Full::new(body.0.clone())) {
                Ok(r) => r,
                Err(e) => return Err(TransportError { url, reason: format!("bad request: {e}") }),
            };
            let sent = tokio::time::timeout(self.read_timeout, async {
                // (reason, whether the request never left: only then may another node get it)
                let resp = self.http.request(req).await.map_err(|e| (error_chain(&e), e.is_connect()))?;
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.map_err(|e| (e.to_string(), false))?.to_bytes();
                Ok::<_, (String, bool)>(Answer { status, body })
            })
            .await;
            match sent {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err((reason, true))) => last = Some(TransportError { url, reason }),
                // Sent (perhaps applied): the caller's back-off decides, not an immediate resend.
                Ok(Err((reason, false))) => return Err(TransportError { url, reason }),
                Err(_) => {
                    // A timed-out request may still be applied by the server; the caller retries it,
                    // which external versions make harmless. Do not send it to a second node now.
                    return Err(TransportError {
                        url,
                        reason: format!("no answer within read.timeout.ms ({} ms)", self.read_timeout.as_millis()),
                    });
                }
            }
        }
        Err(last.unwrap_or(TransportError { url: String::new(), reason: "no connection.url".into() }))
    }
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    enc.write_all(body).ok()?;
    enc.finish().ok().map(Bytes::from)
}
