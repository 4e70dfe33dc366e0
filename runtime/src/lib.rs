//! The sluice runtime: worker, task loops, herders, stores and converters. It never names a
//! concrete connector: the binary hands it the plugin registry.

pub mod config;
pub mod converters;
pub mod distributed;
pub mod herder;
pub mod metrics;
pub mod storage;
pub mod transforms;
pub mod worker;
