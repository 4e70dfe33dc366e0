//! HTTPS for the REST API, as Kafka Connect's `listeners=https://…`: the key material comes from
//! Kafka's `ssl.*` worker keys (a `listeners.https.`-prefixed key wins over the plain one), in PEM
//! (`ssl.keystore.type=PEM`, Kafka's own PEM support): `ssl.keystore.location` names a file with
//! the private key and its certificate chain, or `ssl.keystore.key` and
//! `ssl.keystore.certificate.chain` hold them inline. `ssl.truststore.location` /
//! `ssl.truststore.certificates` (PEM) are the CAs trusted for client certificates
//! (`ssl.client.auth=requested|required`) and for the leader when this worker forwards a request;
//! without a truststore, forwarding trusts the system's roots.
//!
//! JKS and PKCS12 keystores are refused with a message saying how to convert them: reading them
//! would add a crate for a format `openssl pkcs12 -nodes` turns into PEM once.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sluice_runtime::config::WorkerConfig;

/// Why the TLS settings cannot be used; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// Whether clients must present a certificate (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; verified when presented.
    Requested,
    /// Required and verified.
    Required,
}

/// PEM key material and trust, as read from the worker config.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: Arc<PrivateKeyDer<'static>>,
    /// Trusted CAs (client certificates; the leader when forwarding). Empty: none configured.
    pub trust: Vec<CertificateDer<'static>>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
}

/// The server and client sides built from [`TlsSettings`].
#[derive(Clone)]
pub struct Tls {
    /// For the listener.
    pub server: Arc<ServerConfig>,
    /// For forwarding to another worker (presents this worker's certificate).
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsSettings {
    /// Reads the `ssl.*` keys for the `https` listener. `None` when no listener is `https://`.
    pub fn from_worker(config: &WorkerConfig) -> Result<Option<TlsSettings>, TlsError> {
        if !config.listeners().iter().any(|l| l.trim().to_ascii_lowercase().starts_with("https://")) {
            return Ok(None);
        }
        let originals = config.parsed().originals();
        let get = |key: &str| -> Option<String> {
            originals
                .get(&format!("listeners.https.{key}"))
                .or_else(|| originals.get(key))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let read = |key: &str, path: &str| -> Result<Vec<u8>, TlsError> {
            std::fs::read(path).map_err(|e| TlsError(format!("{key}={path}: cannot read it: {e}")))
        };
        let keystore_type = get("ssl.keystore.type").unwrap_or_else(|| "PEM".into()).to_ascii_uppercase();
        if keystore_type != "PEM" {
            return Err(TlsError(format!(
                "ssl.keystore.type={keystore_type} is not supported: use PEM (e.g. `openssl pkcs12 -in store.p12 -nodes -out store.pem`, \
                 after `keytool -importkeystore -deststoretype PKCS12` for JKS)"
            )));
        }
        if let Some(t) = get("ssl.truststore.type").map(|t| t.to_ascii_uppercase()).filter(|t| t != "PEM") {
            return Err(TlsError(format!("ssl.truststore.type={t} is not supported: use PEM")));
        }
        if get("ssl.key.password").is_some() {
            return Err(TlsError(
                "ssl.key.password: encrypted private keys are not supported; decrypt the key (`openssl pkey -in key.pem -out plain.pem`) and keep the file private".into(),
            ));
        }
        let (key_pem, key_key, chain_pem, chain_key) = match (get("ssl.keystore.key"), get("ssl.keystore.location")) {
            (Some(key), _) => {
                let chain = get("ssl.keystore.certificate.chain").ok_or_else(|| {
                    TlsError("ssl.keystore.key is set without ssl.keystore.certificate.chain".into())
                })?;
                (key.into_bytes(), "ssl.keystore.key", chain.into_bytes(), "ssl.keystore.certificate.chain")
            }
            (None, Some(path)) => {
                let bytes = read("ssl.keystore.location", &path)?;
                (bytes.clone(), "ssl.keystore.location", bytes, "ssl.keystore.location")
            }
            (None, None) => {
                return Err(TlsError(
                    "an https listener needs ssl.keystore.location (PEM with the private key and its certificate chain) or ssl.keystore.key with ssl.keystore.certificate.chain".into(),
                ))
            }
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("{chain_key}: invalid PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError(format!("{chain_key}: no certificate found")));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| TlsError(format!("{key_key}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}")))?;
        let trust = match (get("ssl.truststore.certificates"), get("ssl.truststore.location")) {
            (Some(inline), _) => pem_certs("ssl.truststore.certificates", inline.as_bytes())?,
            (None, Some(path)) => pem_certs("ssl.truststore.location", &read("ssl.truststore.location", &path)?)?,
            (None, None) => Vec::new(),
        };
        let client_auth = match get("ssl.client.auth").unwrap_or_else(|| "none".into()).to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => return Err(TlsError(format!("ssl.client.auth={other}: expected none, requested or required"))),
        };
        if client_auth != ClientAuth::None && trust.is_empty() {
            return Err(TlsError(format!(
                "ssl.client.auth={}: needs ssl.truststore.location (the CAs that sign client certificates)",
                if client_auth == ClientAuth::Required { "required" } else { "requested" }
            )));
        }
        Ok(Some(TlsSettings { certs, key: Arc::new(key), trust, client_auth }))
    }

    /// Builds the server and client configurations (checks that the key matches the chain).
    pub fn build(&self) -> Result<Tls, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider());
                let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
                builder
                    .with_client_cert_verifier(verifier.build().map_err(|e| TlsError(format!("ssl.truststore: {e}")))?)
            }
        };
        let mut server = builder
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError(format!("ssl.keystore: the key does not fit the certificate chain: {e}")))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];

        let roots = if self.trust.is_empty() { native_roots() } else { self.roots()? };
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError(format!("ssl.keystore: {e}")))?;
        Ok(Tls { server: Arc::new(server), client: Arc::new(client) })
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in &self.trust {
            roots.add(cert.clone()).map_err(|e| TlsError(format!("ssl.truststore: unusable certificate: {e}")))?;
        }
        Ok(roots)
    }
}

fn pem_certs(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("{key}: invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{key}: no certificate found")));
    }
    Ok(certs)
}

/// The system's CA certificates (forwarding without a configured truststore).
fn native_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "a system CA certificate could not be loaded");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// A client configuration for forwarding when no listener is https (trusts the system's roots,
/// in case the leader's listener is https). `None` only if the TLS provider is unusable.
pub(crate) fn default_client() -> Option<Arc<ClientConfig>> {
    match ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions() {
        Ok(b) => Some(Arc::new(b.with_root_certificates(native_roots()).with_no_client_auth())),
        Err(e) => {
            tracing::warn!(error = %e, "no TLS client: forwarding to an https leader will fail");
            None
        }
    }
}
