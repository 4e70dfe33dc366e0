//! sluice's connectors: one folder per external system, each behind a cargo feature.
//!
//! [`plugins`] is the explicit registry the binary hands to the runtime: one line per connector.

use sluice_api::PluginInfo;

pub mod sinks;
pub mod sources;
#[cfg(feature = "tls")]
mod tls;

/// Every connector compiled into this build.
#[allow(clippy::vec_init_then_push)]
pub fn plugins() -> Vec<PluginInfo> {
    #[allow(unused_mut)]
    let mut plugins = Vec::new();
    #[cfg(feature = "file")]
    plugins.push(sources::file::PLUGIN);
    #[cfg(feature = "file")]
    plugins.push(sinks::file::PLUGIN);
    #[cfg(feature = "verifiable")]
    plugins.push(sources::verifiable::PLUGIN);
    #[cfg(feature = "mysql")]
    plugins.push(sources::mysql::PLUGIN);
    #[cfg(feature = "http-tracking")]
    plugins.push(sources::http_tracking::PLUGIN);
    #[cfg(feature = "redis")]
    plugins.push(sinks::redis::PLUGIN);
    #[cfg(feature = "elasticsearch")]
    plugins.push(sinks::elasticsearch::PLUGIN);
    #[cfg(feature = "parquet")]
    plugins.push(sinks::parquet::PLUGIN);
    #[cfg(feature = "delta")]
    plugins.push(sinks::delta::PLUGIN);
    plugins
}
