//! Source connectors.

#[cfg(feature = "file")]
pub mod file;

#[cfg(feature = "verifiable")]
pub mod verifiable;

#[cfg(feature = "mysql")]
pub mod mysql;

#[cfg(feature = "http-tracking")]
pub mod http_tracking;
