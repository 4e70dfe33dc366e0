//! Distributed mode: workers form a group through Kafka's group coordinator and the leader assigns
//! connectors and tasks with Kafka Connect's incremental cooperative protocol.

pub mod assignor;
pub mod client;
pub mod membership;
pub mod protocol;
