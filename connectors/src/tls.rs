//! The TLS client side shared by the sinks that speak TLS (`rediss://` Redis, `https://`
//! Elasticsearch): rustls with ring, trusting a PEM CA file when one is configured, else the
//! system's CAs, and presenting a client certificate when one is configured (servers that require
//! client authentication, such as `redis-server` with its default `tls-auth-clients yes`).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// A client certificate: where its private key and its certificate chain are (PEM; one file
/// may hold both).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key: &'a str,
    /// PEM file with the certificate chain, the client's own certificate first.
    pub certs: &'a str,
}

/// Validator of the key-password settings (`elastic.https.ssl.key.password`,
/// `redis.key.password`): encrypted private keys are not supported.
pub(crate) fn refuse_key_password(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Ok(())
    } else {
        Err("encrypted private keys are not supported; decrypt the key (`openssl pkey -in key.pem -out plain.pem`), keep the file private and leave this empty".to_string())
    }
}

/// Reads a client certificate. The error names the file and says what is wrong with it.
fn load_identity(id: Identity<'_>) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: cannot read it: {e}"));
    let key_pem = read(id.key)?;
    if String::from_utf8_lossy(&key_pem).contains("ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{}: encrypted private keys are not supported; decrypt it (`openssl pkey -in {} -out plain.pem`) and keep the file private",
            id.key, id.key
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", id.key))?;
    let cert_pem = if id.certs == id.key { key_pem } else { read(id.certs)? };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: invalid PEM certificate: {e}", id.certs))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found (the client's certificate chain in PEM is expected)", id.certs));
    }
    Ok((certs, key))
}

/// A client configuration trusting the CAs in the PEM file `truststore` (the system's when
/// `None`), presenting `identity` when the server asks for a certificate. The error names the
/// file and says what is wrong with it.
pub(crate) fn client_config(
    truststore: Option<&str>,
    identity: Option<Identity<'_>>,
) -> Result<Arc<ClientConfig>, String> {
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
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let (certs, key) = load_identity(id)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("{}: the key does not fit the certificate: {e}", id.key))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_errors_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let missing = path("missing.pem");
        let e = client_config(None, Some(Identity { key: &missing, certs: &missing })).err().unwrap_or_default();
        assert!(e.contains("missing.pem") && e.contains("cannot read"), "{e}");
        let encrypted = path("enc.pem");
        std::fs::write(
            &encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .expect("write");
        let e = client_config(None, Some(Identity { key: &encrypted, certs: &encrypted })).err().unwrap_or_default();
        assert!(e.contains("encrypted private keys are not supported") && e.contains("openssl pkey"), "{e}");
        let empty = path("empty.pem");
        std::fs::write(&empty, "nothing here").expect("write");
        let e = client_config(None, Some(Identity { key: &empty, certs: &empty })).err().unwrap_or_default();
        assert!(e.contains("no usable PEM private key"), "{e}");
    }
}
