//! Sink connectors.

#[cfg(feature = "file")]
pub mod file;

#[cfg(feature = "redis")]
pub mod redis;
