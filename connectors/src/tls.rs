//! The TLS client side shared by the sinks that speak TLS (`rediss://` Redis, `https://`
//! Elasticsearch): rustls with ring, trusting a PEM CA file when one is configured, else the
//! system's CAs.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A client configuration trusting the CAs in the PEM file `truststore` (the system's when
/// `None`). The error names the file and says what is wrong with it.
pub(crate) fn client_config(truststore: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match truststore {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{path}: cannot read it: {e}"))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{path}: invalid PEM certificate: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{path}: no certificate found (a PEM file of CA certificates is expected)"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("{path}: unusable certificate: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
