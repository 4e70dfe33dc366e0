//! Kafka Connect's schema model (`org.apache.kafka.connect.data.Schema`).

use std::fmt;
use std::sync::Arc;

use crate::value::Value;

/// Shared, immutable schema. Records and struct values hold schemas by reference count.
pub type SchemaRef = Arc<Schema>;

/// Names of Kafka Connect's built-in logical types.
pub mod logical {
    /// `org.apache.kafka.connect.data.Decimal`: BYTES holding a big-endian two's-complement unscaled integer.
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    /// Schema parameter carrying the scale of a Decimal.
    pub const DECIMAL_SCALE: &str = "scale";
    /// `org.apache.kafka.connect.data.Date`: INT32 days since the Unix epoch.
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    /// `org.apache.kafka.connect.data.Time`: INT32 milliseconds since midnight.
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    /// `org.apache.kafka.connect.data.Timestamp`: INT64 milliseconds since the Unix epoch.
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
}

/// Physical schema types, as Kafka Connect's `Schema.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The lowercase name Kafka Connect uses on the wire (`"int32"`, `"struct"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// Parses a wire name; accepts Kafka Connect's `float`/`double` and the `float32`/`float64` spellings.
    pub fn from_name(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" | "float32" => SchemaType::Float32,
            "double" | "float64" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }

    /// True for the primitive (non-container) types.
    pub fn is_primitive(self) -> bool {
        !matches!(self, SchemaType::Array | SchemaType::Map | SchemaType::Struct)
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A field of a STRUCT schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Position in the struct.
    pub index: usize,
    /// Field schema.
    pub schema: SchemaRef,
}

/// A Kafka Connect schema: a type plus optionality, default, name, version, doc, parameters and,
/// for containers, the schemas of their parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Physical type.
    pub schema_type: SchemaType,
    /// Whether null is a valid value.
    pub optional: bool,
    /// Default value, used for missing fields and (with `replace.null.with.default`) for nulls.
    pub default: Option<Value>,
    /// Schema name; logical types are recognised by name.
    pub name: Option<String>,
    /// Schema version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters in insertion order (e.g. Decimal's `scale`).
    pub parameters: Vec<(String, String)>,
    /// STRUCT fields in order.
    pub fields: Vec<Field>,
    /// MAP key schema.
    pub key_schema: Option<SchemaRef>,
    /// MAP value schema or ARRAY element schema.
    pub value_schema: Option<SchemaRef>,
}

impl Schema {
    /// A required schema of the given type with nothing else set.
    pub fn new(schema_type: SchemaType) -> Schema {
        Schema {
            schema_type,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    /// INT8.
    pub fn int8() -> Schema {
        Schema::new(SchemaType::Int8)
    }
    /// INT16.
    pub fn int16() -> Schema {
        Schema::new(SchemaType::Int16)
    }
    /// INT32.
    pub fn int32() -> Schema {
        Schema::new(SchemaType::Int32)
    }
    /// INT64.
    pub fn int64() -> Schema {
        Schema::new(SchemaType::Int64)
    }
    /// FLOAT32.
    pub fn float32() -> Schema {
        Schema::new(SchemaType::Float32)
    }
    /// FLOAT64.
    pub fn float64() -> Schema {
        Schema::new(SchemaType::Float64)
    }
    /// BOOLEAN.
    pub fn boolean() -> Schema {
        Schema::new(SchemaType::Boolean)
    }
    /// STRING.
    pub fn string() -> Schema {
        Schema::new(SchemaType::String)
    }
    /// BYTES.
    pub fn bytes() -> Schema {
        Schema::new(SchemaType::Bytes)
    }
    /// ARRAY of `items`.
    pub fn array(items: Schema) -> Schema {
        Schema { value_schema: Some(Arc::new(items)), ..Schema::new(SchemaType::Array) }
    }
    /// MAP from `keys` to `values`.
    pub fn map(keys: Schema, values: Schema) -> Schema {
        Schema {
            key_schema: Some(Arc::new(keys)),
            value_schema: Some(Arc::new(values)),
            ..Schema::new(SchemaType::Map)
        }
    }
    /// STRUCT with the given fields in order.
    pub fn struct_of<N: Into<String>>(fields: impl IntoIterator<Item = (N, Schema)>) -> Schema {
        let fields = fields
            .into_iter()
            .enumerate()
            .map(|(index, (name, schema))| Field { name: name.into(), index, schema: Arc::new(schema) })
            .collect();
        Schema { fields, ..Schema::new(SchemaType::Struct) }
    }
    /// Decimal logical type with the given scale.
    pub fn decimal(scale: i32) -> Schema {
        Schema::bytes().named(logical::DECIMAL).version(1).parameter(logical::DECIMAL_SCALE, scale.to_string())
    }
    /// Date logical type (INT32 days since epoch).
    pub fn date() -> Schema {
        Schema::int32().named(logical::DATE).version(1)
    }
    /// Time logical type (INT32 millis since midnight).
    pub fn time() -> Schema {
        Schema::int32().named(logical::TIME).version(1)
    }
    /// Timestamp logical type (INT64 millis since epoch).
    pub fn timestamp() -> Schema {
        Schema::int64().named(logical::TIMESTAMP).version(1)
    }

    /// Marks the schema optional.
    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }
    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Schema {
        self.name = Some(name.into());
        self
    }
    /// Sets the version.
    pub fn version(mut self, version: i32) -> Schema {
        self.version = Some(version);
        self
    }
    /// Sets the doc.
    pub fn doc(mut self, doc: impl Into<String>) -> Schema {
        self.doc = Some(doc.into());
        self
    }
    /// Sets the default value.
    pub fn with_default(mut self, value: Value) -> Schema {
        self.default = Some(value);
        self
    }
    /// Adds a parameter (replacing one of the same key).
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Schema {
        let key = key.into();
        let value = value.into();
        match self.parameters.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.parameters.push((key, value)),
        }
        self
    }

    /// Looks up a parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// Looks up a struct field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// The Decimal scale, when this is a Decimal schema with a valid scale parameter.
    pub fn decimal_scale(&self) -> Option<i32> {
        if self.name.as_deref() == Some(logical::DECIMAL) {
            self.param(logical::DECIMAL_SCALE)?.parse().ok()
        } else {
            None
        }
    }
    /// True when this schema is the named logical type.
    pub fn is_logical(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }

    /// Checks that `value` conforms to this schema (types, required fields, nested parts).
    pub fn validate_value(&self, value: &Value) -> Result<(), String> {
        self.validate_at(value, "")
    }

    fn validate_at(&self, value: &Value, path: &str) -> Result<(), String> {
        let here = || {
            if path.is_empty() {
                "value".to_string()
            } else {
                format!("field {path}")
            }
        };
        if matches!(value, Value::Null) {
            return if self.optional || self.default.is_some() {
                Ok(())
            } else {
                Err(format!("{}: null is not allowed by a required {} schema", here(), self.schema_type))
            };
        }
        let ok = match (self.schema_type, value) {
            (SchemaType::Int8, Value::Int8(_))
            | (SchemaType::Int16, Value::Int16(_))
            | (SchemaType::Int32, Value::Int32(_))
            | (SchemaType::Int64, Value::Int64(_))
            | (SchemaType::Float32, Value::Float32(_))
            | (SchemaType::Float64, Value::Float64(_))
            | (SchemaType::Boolean, Value::Boolean(_))
            | (SchemaType::String, Value::String(_))
            | (SchemaType::Bytes, Value::Bytes(_)) => true,
            (SchemaType::Bytes, Value::Decimal(_)) => self.is_logical(logical::DECIMAL),
            (SchemaType::Int32, Value::Date(_)) => self.is_logical(logical::DATE),
            (SchemaType::Int32, Value::Time(_)) => self.is_logical(logical::TIME),
            (SchemaType::Int64, Value::Timestamp(_)) => self.is_logical(logical::TIMESTAMP),
            (SchemaType::Array, Value::Array(items)) => {
                if let Some(item_schema) = &self.value_schema {
                    for (i, item) in items.iter().enumerate() {
                        item_schema.validate_at(item, &format!("{path}[{i}]"))?;
                    }
                }
                true
            }
            (SchemaType::Map, Value::Map(entries)) => {
                for (k, v) in entries {
                    if let Some(ks) = &self.key_schema {
                        ks.validate_at(k, &format!("{path}.<key>"))?;
                    }
                    if let Some(vs) = &self.value_schema {
                        vs.validate_at(v, &format!("{path}.<value>"))?;
                    }
                }
                true
            }
            (SchemaType::Struct, Value::Struct(s)) => {
                if s.schema.fields.len() != self.fields.len() {
                    return Err(format!("{}: struct has a different schema", here()));
                }
                for field in &self.fields {
                    let v = s.values.get(field.index).unwrap_or(&Value::Null);
                    let p = if path.is_empty() { field.name.clone() } else { format!("{path}.{}", field.name) };
                    field.schema.validate_at(v, &p)?;
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{}: a {} value does not match a {} schema", here(), value.type_name(), self.schema_type))
        }
    }
}
