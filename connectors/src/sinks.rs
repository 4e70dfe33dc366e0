//! Sink connectors.

#[cfg(feature = "file")]
pub mod file;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;

#[cfg(feature = "parquet")]
pub mod parquet;

#[cfg(feature = "delta")]
pub mod delta;
