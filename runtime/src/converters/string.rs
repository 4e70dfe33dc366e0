use sluice_api::{ConfigMap, SchemaRef, Value};

use super::{optional_string_schema, Converter, DataError};

/// `org.apache.kafka.connect.storage.StringConverter`: UTF-8 text; other values are written in their
/// `toString` form.
#[derive(Debug, Clone, Default)]
pub struct StringConverter;

impl StringConverter {
    /// Accepts `converter.encoding` (only UTF-8 is supported).
    pub fn configure(props: &ConfigMap) -> Result<StringConverter, String> {
        match props.get("converter.encoding").map(|s| s.to_ascii_uppercase()) {
            None => Ok(StringConverter),
            Some(e) if e == "UTF-8" || e == "UTF8" => Ok(StringConverter),
            Some(e) => Err(format!("converter.encoding {e} is not supported; only UTF-8 is")),
        }
    }
}

impl Converter for StringConverter {
    fn to_bytes(&self, _topic: &str, _schema: Option<&SchemaRef>, value: &Value) -> Result<Option<Vec<u8>>, DataError> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        })
    }

    fn to_connect(&self, _topic: &str, data: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), DataError> {
        let value = match data {
            None => Value::Null,
            Some(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        };
        Ok((Some(optional_string_schema()), value))
    }
}
