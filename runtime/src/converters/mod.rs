//! Converters between Kafka bytes and Kafka Connect data, accepted by Kafka Connect's class names.

mod bytearray;
mod json;
mod json_seed;
use sluice_api::json as jsonwrite;
mod string;
#[cfg(test)]
mod tests;

use sluice_api::{ConfigErrors, ConfigMap, Schema, SchemaRef, Value};

pub use bytearray::ByteArrayConverter;
pub use json::{DecimalFormat, JsonConverter};
pub use string::StringConverter;

/// A conversion failed: the data does not fit the schema or the bytes are not what the converter reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

impl DataError {
    pub(crate) fn new(message: impl Into<String>) -> DataError {
        DataError(message.into())
    }
}

/// Converts record keys or values to and from bytes, as Kafka Connect's `Converter`.
pub trait Converter: Send + Sync {
    /// Connect data to bytes; `None` is a Kafka null (e.g. a tombstone).
    fn to_bytes(&self, topic: &str, schema: Option<&SchemaRef>, value: &Value) -> Result<Option<Vec<u8>>, DataError>;
    /// Bytes to Connect data.
    fn to_connect(&self, topic: &str, data: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), DataError>;
}

/// Converter names: Kafka Connect's class names and our short names.
const JSON: &[&str] = &["org.apache.kafka.connect.json.JsonConverter", "json", "JsonConverter"];
const STRING: &[&str] = &["org.apache.kafka.connect.storage.StringConverter", "string", "StringConverter"];
const BYTES: &[&str] =
    &["org.apache.kafka.connect.converters.ByteArrayConverter", "bytes", "bytearray", "ByteArrayConverter"];

/// Builds a converter from its class name and its own properties (prefix already removed).
/// `key` is the config key being resolved (e.g. `value.converter`), for error messages.
pub fn create_converter(
    key: &str,
    class: &str,
    props: &ConfigMap,
    is_key: bool,
) -> Result<Box<dyn Converter>, ConfigErrors> {
    let class = class.trim();
    let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(class));
    if is(JSON) {
        Ok(Box::new(JsonConverter::configure(props, is_key).map_err(|e| ConfigErrors::one(key, e))?))
    } else if is(STRING) {
        Ok(Box::new(StringConverter::configure(props).map_err(|e| ConfigErrors::one(key, e))?))
    } else if is(BYTES) {
        Ok(Box::new(ByteArrayConverter))
    } else {
        Err(ConfigErrors::one(
            key,
            format!(
                "Invalid value {class} for configuration {key}: Class {class} could not be found. Known converters: {}, {}, {}",
                JSON[0], STRING[0], BYTES[0]
            ),
        ))
    }
}

/// The optional STRING schema converters hand out for schemaless text.
pub(crate) fn optional_string_schema() -> SchemaRef {
    static S: std::sync::OnceLock<SchemaRef> = std::sync::OnceLock::new();
    S.get_or_init(|| std::sync::Arc::new(Schema::string().optional())).clone()
}

/// The optional BYTES schema.
pub(crate) fn optional_bytes_schema() -> SchemaRef {
    static S: std::sync::OnceLock<SchemaRef> = std::sync::OnceLock::new();
    S.get_or_init(|| std::sync::Arc::new(Schema::bytes().optional())).clone()
}
