//! Source connectors.

#[cfg(feature = "file")]
pub mod file;
