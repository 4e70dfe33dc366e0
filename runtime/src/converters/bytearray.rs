use sluice_api::{SchemaRef, SchemaType, Value};

use super::{optional_bytes_schema, Converter, DataError};

/// `org.apache.kafka.connect.converters.ByteArrayConverter`: bytes pass through unchanged.
#[derive(Debug, Clone, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn to_bytes(&self, _topic: &str, schema: Option<&SchemaRef>, value: &Value) -> Result<Option<Vec<u8>>, DataError> {
        if let Some(s) = schema {
            if s.schema_type != SchemaType::Bytes {
                return Err(DataError::new(format!("Invalid schema type for ByteArrayConverter: {}", s.schema_type)));
            }
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            Value::Json(text) => Ok(Some(text.as_bytes().to_vec())),
            other => Err(DataError::new(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other.type_name()
            ))),
        }
    }

    fn to_connect(&self, _topic: &str, data: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), DataError> {
        Ok((Some(optional_bytes_schema()), data.map_or(Value::Null, |b| Value::Bytes(b.to_vec()))))
    }
}
