//! Sink connectors.

#[cfg(feature = "file")]
pub mod file;
