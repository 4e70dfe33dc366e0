//! Worker and connector configuration: Java `.properties` files, `${provider:...}` secrets, the
//! worker keys of Kafka Connect and the keys every connector shares.

mod connector;
mod properties;
mod secrets;
mod worker;

pub use connector::{common_connector_def, sink_connector_def, source_connector_def, ErrorTolerance};
pub use properties::{parse_properties, PropertiesError};
pub use secrets::{mask_secrets, resolve_secrets};
pub use worker::WorkerConfig;
