//! `org.apache.kafka.connect.json.JsonConverter`, byte-compatible with Kafka Connect's.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value as Json;
use sluice_api::schema::logical;
use sluice_api::{ConfigMap, Decimal, Schema, SchemaRef, SchemaType, Struct, Value};

use super::jsonwrite::{java_big_decimal, write_f32, write_f64, write_str};
use super::{Converter, DataError};

/// How Decimals are written (`decimal.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalFormat {
    /// Base64 of the unscaled two's-complement bytes (Kafka's default).
    Base64,
    /// A JSON number.
    Numeric,
}

/// Most schemas whose JSON form is cached (`schemas.cache.size`).
const DEFAULT_CACHE_SIZE: usize = 1000;

/// Kafka Connect's JSON converter: with `schemas.enable=true` (the default) every message is an
/// envelope `{"schema":{..},"payload":..}`; without, the bare payload.
#[derive(Debug)]
pub struct JsonConverter {
    schemas_enable: bool,
    decimal_format: DecimalFormat,
    replace_null_with_default: bool,
    cache_size: usize,
    schema_cache: Mutex<HashMap<usize, (SchemaRef, Arc<str>)>>,
    /// Schemas read from envelopes, by their exact JSON text: a topic's records carry the same
    /// schema text, parsed once (Kafka Connect caches the same way, `schemas.cache.size` entries).
    parsed_cache: Mutex<HashMap<Box<str>, SchemaRef>>,
    /// The schema text of the last envelope decoded and its schema: a record that starts with
    /// exactly `{"schema":<that text>,"payload":` needs neither the schema scanned nor hashed.
    /// Shared, so the lock is held for a clone, not for comparing the text (two threads convert).
    last_schema: Mutex<Option<Arc<KnownSchema>>>,
}

/// A schema's JSON text and the schema read from it.
type KnownSchema = (Box<[u8]>, SchemaRef);

/// The envelope, with both parts left as raw JSON text so the schema can be looked up by its text.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    schema: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
}

impl Default for JsonConverter {
    fn default() -> Self {
        JsonConverter {
            schemas_enable: true,
            decimal_format: DecimalFormat::Base64,
            replace_null_with_default: true,
            cache_size: DEFAULT_CACHE_SIZE,
            schema_cache: Mutex::new(HashMap::new()),
            parsed_cache: Mutex::new(HashMap::new()),
            last_schema: Mutex::new(None),
        }
    }
}

fn parse_bool(props: &ConfigMap, key: &str, default: bool) -> Result<bool, String> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(format!("Invalid value {v} for configuration {key}: Expected value to be either true or false")),
    }
}

impl JsonConverter {
    /// Reads `schemas.enable`, `decimal.format`, `replace.null.with.default` and `schemas.cache.size`.
    pub fn configure(props: &ConfigMap, _is_key: bool) -> Result<JsonConverter, String> {
        let decimal_format = match props.get("decimal.format").map(|v| v.trim().to_ascii_uppercase()) {
            None => DecimalFormat::Base64,
            Some(v) if v == "BASE64" => DecimalFormat::Base64,
            Some(v) if v == "NUMERIC" => DecimalFormat::Numeric,
            Some(v) => {
                return Err(format!(
                    "Invalid value {v} for configuration decimal.format: String must be one of: BASE64, NUMERIC"
                ))
            }
        };
        let cache_size = match props.get("schemas.cache.size") {
            None => DEFAULT_CACHE_SIZE,
            Some(v) => v.trim().parse().map_err(|_| {
                format!("Invalid value {v} for configuration schemas.cache.size: Not a number of type INT")
            })?,
        };
        Ok(JsonConverter {
            schemas_enable: parse_bool(props, "schemas.enable", true)?,
            decimal_format,
            replace_null_with_default: parse_bool(props, "replace.null.with.default", true)?,
            cache_size,
            schema_cache: Mutex::new(HashMap::new()),
            parsed_cache: Mutex::new(HashMap::new()),
            last_schema: Mutex::new(None),
        })
    }

    /// The schema of an envelope's raw `schema` text, parsed once per distinct text.
    fn cached_schema(&self, raw: &str) -> Result<Option<SchemaRef>, DataError> {
        if raw == "null" {
            return Ok(None);
        }
        if let Some(schema) = self.parsed_cache.lock().ok().and_then(|c| c.get(raw).cloned()) {
            self.remember(raw, &schema);
            return Ok(Some(schema));
        }
        let json: Json = serde_json::from_str(raw).map_err(|e| {
            DataError::new(format!("Converting byte[] to Kafka Connect data failed due to serialization error: {e}"))
        })?;
        let Some(schema) = self.schema_from_json(&json)?.map(Arc::new) else { return Ok(None) };
        if let Ok(mut cache) = self.parsed_cache.lock() {
            if cache.len() >= self.cache_size.max(1) {
                cache.clear();
            }
            cache.insert(raw.into(), schema.clone());
        }
        self.remember(raw, &schema);
        Ok(Some(schema))
    }

    fn remember(&self, raw: &str, schema: &SchemaRef) {
        if let Ok(mut last) = self.last_schema.lock() {
            if last.as_ref().is_none_or(|known| *known.0 != *raw.as_bytes()) {
                *last = Some(Arc::new((raw.as_bytes().into(), schema.clone())));
            }
        }
    }

    /// An envelope written compactly (as Kafka Connect writes it) whose schema text is the last
    /// one seen: its schema and payload bytes, found without scanning the schema. The payload is
    /// what lies between `,"payload":` and the final `}`; the caller's parse of it must consume it
    /// whole, so anything else (an extra field, a truncated record) takes the full path.
    fn known_envelope<'b>(&self, bytes: &'b [u8]) -> Option<(SchemaRef, &'b [u8])> {
        let rest = bytes.strip_prefix(b"{\"schema\":")?;
        let last = self.last_schema.lock().ok()?.clone()?;
        let (text, schema) = &*last;
        let rest = rest.strip_prefix(&text[..])?.strip_prefix(b",\"payload\":")?;
        let end = rest.iter().rposition(|b| !b.is_ascii_whitespace())?;
        (rest[end] == b'}').then(|| (schema.clone(), &rest[..end]))
    }

    /// The schema's JSON form, cached per schema instance.
    fn schema_json(&self, schema: &SchemaRef) -> Result<Arc<str>, DataError> {
        let key = Arc::as_ptr(schema) as usize;
        if let Ok(cache) = self.schema_cache.lock() {
            if let Some((_, json)) = cache.get(&key) {
                return Ok(json.clone());
            }
        }
        let mut out = String::new();
        self.write_schema(&mut out, schema, None)?;
        let json: Arc<str> = out.into();
        if let Ok(mut cache) = self.schema_cache.lock() {
            if cache.len() >= self.cache_size.max(1) {
                cache.clear();
            }
            // Holding the SchemaRef keeps the pointer key from being reused by another schema.
            cache.insert(key, (schema.clone(), json.clone()));
        }
        Ok(json)
    }

    fn write_schema(&self, out: &mut String, schema: &Schema, field: Option<&str>) -> Result<(), DataError> {
        out.push_str("{\"type\":\"");
        out.push_str(schema.schema_type.name());
        out.push('"');
        match schema.schema_type {
            SchemaType::Array => {
                out.push_str(",\"items\":");
                self.write_opt_schema(out, schema.value_schema.as_deref())?;
            }
            SchemaType::Map => {
                out.push_str(",\"keys\":");
                self.write_opt_schema(out, schema.key_schema.as_deref())?;
                out.push_str(",\"values\":");
                self.write_opt_schema(out, schema.value_schema.as_deref())?;
            }
            SchemaType::Struct => {
                out.push_str(",\"fields\":[");
                for (i, f) in schema.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_schema(out, &f.schema, Some(&f.name))?;
                }
                out.push(']');
            }
            _ => {}
        }
        out.push_str(",\"optional\":");
        out.push_str(if schema.optional { "true" } else { "false" });
        if let Some(name) = &schema.name {
            out.push_str(",\"name\":");
            write_str(out, name);
        }
        if let Some(version) = schema.version {
            let _ = write!(out, ",\"version\":{version}");
        }
        if let Some(doc) = &schema.doc {
            out.push_str(",\"doc\":");
            write_str(out, doc);
        }
        if !schema.parameters.is_empty() {
            out.push_str(",\"parameters\":{");
            for (i, (k, v)) in schema.parameters.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_str(out, v);
            }
            out.push('}');
        }
        if let Some(default) = &schema.default {
            out.push_str(",\"default\":");
            self.write_value(out, Some(schema), default)?;
        }
        if let Some(name) = field {
            out.push_str(",\"field\":");
            write_str(out, name);
        }
        out.push('}');
        Ok(())
    }

    fn write_opt_schema(&self, out: &mut String, schema: Option<&Schema>) -> Result<(), DataError> {
        match schema {
            Some(s) => self.write_schema(out, s, None),
            None => {
                out.push_str("null");
                Ok(())
            }
        }
    }

    fn write_value(&self, out: &mut String, schema: Option<&Schema>, value: &Value) -> Result<(), DataError> {
        if value.is_null() {
            return match schema {
                None => {
                    out.push_str("null");
                    Ok(())
                }
                Some(s) => match &s.default {
                    Some(d) if self.replace_null_with_default && !d.is_null() => self.write_value(out, Some(s), d),
                    _ if s.optional => {
                        out.push_str("null");
                        Ok(())
                    }
                    Some(_) => {
                        out.push_str("null");
                        Ok(())
                    }
                    None => Err(DataError::new(
                        "Conversion error: null value for field that is required and has no default value",
                    )),
                },
            };
        }
        if let Some(s) = schema {
            self.check_type(s, value)?;
        }
        match value {
            Value::Null => out.push_str("null"),
            Value::Int8(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Int16(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Int32(v) | Value::Date(v) | Value::Time(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Int64(v) | Value::Timestamp(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Float32(v) => write_f32(out, *v),
            Value::Float64(v) => write_f64(out, *v),
            Value::Boolean(v) => out.push_str(if *v { "true" } else { "false" }),
            Value::String(s) => write_str(out, s),
            // Schemaless only: `check_type` above refused it under any schema.
            Value::Json(text) => out.push_str(text),
            Value::Bytes(b) => {
                if let Some(scale) = schema.and_then(Schema::decimal_scale) {
                    self.write_decimal(out, &Decimal::from_bytes(b, scale));
                } else {
                    out.push('"');
                    out.push_str(&B64.encode(b));
                    out.push('"');
                }
            }
            Value::Decimal(d) => {
                let scale = schema.and_then(Schema::decimal_scale).unwrap_or(d.scale);
                if scale != d.scale {
                    return Err(DataError::new(format!(
                        "Decimal value has mismatching scale: the schema says {scale}, the value has {}",
                        d.scale
                    )));
                }
                self.write_decimal(out, d);
            }
            Value::Array(items) => {
                let item_schema = schema.and_then(|s| s.value_schema.as_deref());
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_value(out, item_schema, item)?;
                }
                out.push(']');
            }
            Value::Map(entries) => {
                let (ks, vs) = match schema {
                    Some(s) => (s.key_schema.as_deref(), s.value_schema.as_deref()),
                    None => (None, None),
                };
                let object_mode = match ks {
                    Some(k) => k.schema_type == SchemaType::String,
                    None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
                };
                if object_mode {
                    out.push('{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let key = match k {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        write_str(out, &key);
                        out.push(':');
                        self.write_value(out, vs, v)?;
                    }
                    out.push('}');
                } else {
                    out.push('[');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        self.write_value(out, ks, k)?;
                        out.push(',');
                        self.write_value(out, vs, v)?;
                        out.push(']');
                    }
                    out.push(']');
                }
            }
            Value::Struct(st) => {
                let st_schema: &Schema = schema.unwrap_or(&st.schema);
                if schema.is_some_and(|s| s.fields.len() != st.schema.fields.len()) {
                    return Err(DataError::new("Mismatching schema."));
                }
                out.push('{');
                for (i, field) in st_schema.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, &field.name);
                    out.push(':');
                    let v = st.values.get(field.index).unwrap_or(&Value::Null);
                    self.write_value(out, Some(&field.schema), v)
                        .map_err(|e| DataError::new(format!("{} (field {})", e.0, field.name)))?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    fn write_decimal(&self, out: &mut String, d: &Decimal) {
        match self.decimal_format {
            DecimalFormat::Base64 => {
                out.push('"');
                out.push_str(&B64.encode(&d.unscaled));
                out.push('"');
            }
            DecimalFormat::Numeric => out.push_str(&java_big_decimal(&d.unscaled_string(), d.scale)),
        }
    }

    fn check_type(&self, schema: &Schema, value: &Value) -> Result<(), DataError> {
        let ok = matches!(
            (schema.schema_type, value),
            (SchemaType::Int8, Value::Int8(_))
                | (SchemaType::Int16, Value::Int16(_))
                | (SchemaType::Int32, Value::Int32(_) | Value::Date(_) | Value::Time(_))
                | (SchemaType::Int64, Value::Int64(_) | Value::Timestamp(_))
                | (SchemaType::Float32, Value::Float32(_))
                | (SchemaType::Float64, Value::Float64(_))
                | (SchemaType::Boolean, Value::Boolean(_))
                | (SchemaType::String, Value::String(_))
                | (SchemaType::Bytes, Value::Bytes(_) | Value::Decimal(_))
                | (SchemaType::Array, Value::Array(_))
                | (SchemaType::Map, Value::Map(_))
                | (SchemaType::Struct, Value::Struct(_))
        );
        if ok {
            Ok(())
        } else {
            Err(DataError::new(format!(
                "Invalid type for {}: {}",
                schema.schema_type.name().to_uppercase(),
                value.type_name()
            )))
        }
    }

    /// Parses a JSON schema (Kafka Connect's form).
    pub fn schema_from_json(&self, json: &Json) -> Result<Option<Schema>, DataError> {
        if json.is_null() {
            return Ok(None);
        }
        let obj = json.as_object().ok_or_else(|| DataError::new("Schema must be a JSON object"))?;
        let type_name =
            obj.get("type").and_then(Json::as_str).ok_or_else(|| DataError::new("Schema must contain 'type' field"))?;
        let schema_type = SchemaType::from_name(type_name)
            .filter(|_| type_name != "float32" && type_name != "float64")
            .ok_or_else(|| DataError::new(format!("Unknown schema type: {type_name}")))?;
        let sub = |name: &str, what: &str| -> Result<Schema, DataError> {
            let node = obj.get(name).filter(|n| !n.is_null()).ok_or_else(|| DataError::new(what.to_string()))?;
            self.schema_from_json(node)?.ok_or_else(|| DataError::new(what.to_string()))
        };
        let mut schema = match schema_type {
            SchemaType::Array => Schema::array(sub("items", "Array schema did not specify the element type")?),
            SchemaType::Map => Schema::map(
                sub("keys", "Map schema did not specify the key type")?,
                sub("values", "Map schema did not specify the value type")?,
            ),
            SchemaType::Struct => {
                let fields = obj
                    .get("fields")
                    .and_then(Json::as_array)
                    .ok_or_else(|| DataError::new("Struct schema's \"fields\" argument is not an array."))?;
                let mut parsed = Vec::with_capacity(fields.len());
                for f in fields {
                    let name = f
                        .get("field")
                        .and_then(Json::as_str)
                        .ok_or_else(|| DataError::new("Struct schema's field name not specified properly"))?;
                    // As Kafka Connect's SchemaBuilder: a struct's field names are unique.
                    if parsed.iter().any(|(n, _)| n == name) {
                        return Err(DataError::new(format!(
                            "Cannot create field because of field name duplication {name}"
                        )));
                    }
                    let fs = self
                        .schema_from_json(f)?
                        .ok_or_else(|| DataError::new("Struct schema's field schema is null"))?;
                    parsed.push((name.to_string(), fs));
                }
                Schema::struct_of(parsed)
            }
            t => Schema::new(t),
        };
        schema.optional = obj.get("optional").and_then(Json::as_bool).unwrap_or(false);
        schema.name = obj.get("name").and_then(Json::as_str).map(String::from);
        schema.version = obj.get("version").and_then(Json::as_i64).and_then(|v| i32::try_from(v).ok());
        schema.doc = obj.get("doc").and_then(Json::as_str).map(String::from);
        if let Some(params) = obj.get("parameters").and_then(Json::as_object) {
            for (k, v) in params {
                let v = v.as_str().ok_or_else(|| DataError::new("Schema parameters must have string values."))?;
                schema.parameters.push((k.clone(), v.to_string()));
            }
        }
        if let Some(default) = obj.get("default") {
            let probe = Arc::new(schema.clone());
            schema.default = Some(self.value_from_json(Some(&probe), default)?);
        }
        Ok(Some(schema))
    }

    /// Converts a JSON payload to a value of `schema` (or infers the type when there is none).
    pub fn value_from_json(&self, schema: Option<&SchemaRef>, json: &Json) -> Result<Value, DataError> {
        let Some(schema) = schema else { return Ok(infer(json)) };
        if json.is_null() {
            if let Some(d) = &schema.default {
                return Ok(d.clone());
            }
            if schema.optional {
                return Ok(Value::Null);
            }
            return Err(DataError::new(format!(
                "Invalid null value for required {} field",
                schema.schema_type.name().to_uppercase()
            )));
        }
        let mismatch = || {
            DataError::new(format!("Expected a {} value but found {}", schema.schema_type.name().to_uppercase(), json))
        };
        let int = |min: i64, max: i64| -> Result<i64, DataError> {
            json.as_i64().filter(|v| (min..=max).contains(v)).ok_or_else(mismatch)
        };
        let value = match schema.schema_type {
            SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(mismatch)?),
            SchemaType::Int8 => Value::Int8(int(i8::MIN.into(), i8::MAX.into())? as i8),
            SchemaType::Int16 => Value::Int16(int(i16::MIN.into(), i16::MAX.into())? as i16),
            SchemaType::Int32 => {
                let v = int(i32::MIN.into(), i32::MAX.into())? as i32;
                if schema.is_logical(logical::DATE) {
                    Value::Date(v)
                } else if schema.is_logical(logical::TIME) {
                    Value::Time(v)
                } else {
                    Value::Int32(v)
                }
            }
            SchemaType::Int64 => {
                let v = json.as_i64().ok_or_else(mismatch)?;
                if schema.is_logical(logical::TIMESTAMP) {
                    Value::Timestamp(v)
                } else {
                    Value::Int64(v)
                }
            }
            SchemaType::Float32 => Value::Float32(json_float(json).ok_or_else(mismatch)? as f32),
            SchemaType::Float64 => Value::Float64(json_float(json).ok_or_else(mismatch)?),
            SchemaType::String => Value::String(json.as_str().ok_or_else(mismatch)?.to_string()),
            SchemaType::Bytes => {
                if let Some(scale) = schema.decimal_scale() {
                    match json {
                        Json::String(s) => Value::Decimal(Decimal::from_bytes(&decode_b64(s)?, scale)),
                        Json::Number(n) => {
                            Value::Decimal(rescale(&Decimal::parse(&n.to_string()).map_err(DataError)?, scale)?)
                        }
                        _ => return Err(mismatch()),
                    }
                } else {
                    Value::Bytes(decode_b64(json.as_str().ok_or_else(mismatch)?)?)
                }
            }
            SchemaType::Array => {
                let items = json.as_array().ok_or_else(mismatch)?;
                let item_schema = schema.value_schema.as_ref();
                Value::Array(items.iter().map(|i| self.value_from_json(item_schema, i)).collect::<Result<_, _>>()?)
            }
            SchemaType::Map => {
                let ks = schema.key_schema.as_ref();
                let vs = schema.value_schema.as_ref();
                if ks.is_some_and(|k| k.schema_type == SchemaType::String) {
                    let obj = json.as_object().ok_or_else(mismatch)?;
                    Value::Map(
                        obj.iter()
                            .map(|(k, v)| Ok((Value::String(k.clone()), self.value_from_json(vs, v)?)))
                            .collect::<Result<_, DataError>>()?,
                    )
                } else {
                    let pairs = json.as_array().ok_or_else(mismatch)?;
                    let mut entries = Vec::with_capacity(pairs.len());
                    for pair in pairs {
                        let kv = pair.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                            DataError::new(
                                "Found invalid map entry instead of array tuple: ".to_string() + &pair.to_string(),
                            )
                        })?;
                        entries.push((self.value_from_json(ks, &kv[0])?, self.value_from_json(vs, &kv[1])?));
                    }
                    Value::Map(entries)
                }
            }
            SchemaType::Struct => {
                let obj = json.as_object().ok_or_else(mismatch)?;
                // The struct shares the schema (no copy per record): downstream caches keyed by
                // the schema instance (converters, the Parquet and Delta writers) hit.
                let schema_ref = schema.clone();
                let mut values = Vec::with_capacity(schema.fields.len());
                for field in &schema.fields {
                    let v = obj.get(&field.name).unwrap_or(&Json::Null);
                    values.push(
                        self.value_from_json(Some(&field.schema), v)
                            .map_err(|e| DataError::new(format!("{} (field {})", e.0, field.name)))?,
                    );
                }
                Value::Struct(Struct { schema: schema_ref, values })
            }
        };
        Ok(value)
    }
}

fn json_float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if s == "NaN" => Some(f64::NAN),
        Json::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, DataError> {
    B64.decode(s).map_err(|e| DataError::new(format!("Invalid base64 in a BYTES value: {e}")))
}

/// Brings a parsed decimal to the schema's scale without losing digits.
fn rescale(d: &Decimal, scale: i32) -> Result<Decimal, DataError> {
    if d.scale == scale {
        return Ok(d.clone());
    }
    let digits = d.unscaled_string();
    if d.scale < scale {
        let zeros = "0".repeat((scale - d.scale) as usize);
        return Decimal::parse(&format!("{digits}{zeros}")).map(|x| Decimal { scale, ..x }).map_err(DataError);
    }
    let drop = (d.scale - scale) as usize;
    let (sign, mag) = digits.strip_prefix('-').map_or(("", digits.as_str()), |m| ("-", m));
    if mag.len() <= drop {
        if mag.chars().all(|c| c == '0') {
            return Ok(Decimal::from_i128(0, scale));
        }
    } else if mag[mag.len() - drop..].chars().all(|c| c == '0') {
        return Decimal::parse(&format!("{sign}{}", &mag[..mag.len() - drop]))
            .map(|x| Decimal { scale, ..x })
            .map_err(DataError);
    }
    Err(DataError::new(format!("Decimal {d} does not fit the schema's scale {scale}")))
}

fn infer(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(infer).collect()),
        Json::Object(obj) => Value::Map(obj.iter().map(|(k, v)| (Value::String(k.clone()), infer(v))).collect()),
    }
}

impl Converter for JsonConverter {
    fn to_bytes(&self, _topic: &str, schema: Option<&SchemaRef>, value: &Value) -> Result<Option<Vec<u8>>, DataError> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let mut out = String::with_capacity(128);
        if self.schemas_enable {
            out.push_str("{\"schema\":");
            match schema {
                Some(s) => out.push_str(&self.schema_json(s)?),
                None => out.push_str("null"),
            }
            out.push_str(",\"payload\":");
        }
        self.write_value(&mut out, schema.map(|s| s.as_ref()), value)?;
        if self.schemas_enable {
            out.push('}');
        }
        Ok(Some(out.into_bytes()))
    }

    fn to_connect(&self, _topic: &str, data: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), DataError> {
        let Some(bytes) = data else { return Ok((None, Value::Null)) };
        if self.schemas_enable {
            // Fastest path: the schema text is the last one seen; only the payload is read.
            if let Some((schema, payload)) = self.known_envelope(bytes) {
                if let Some(value) = super::json_seed::decode(self, &schema, payload) {
                    return Ok((Some(schema), value));
                }
            }
            // Fast path: the schema text is looked up, only the payload is parsed. Anything that is
            // not exactly an envelope takes the full path below, which names the problem.
            if let Ok(envelope) = serde_json::from_slice::<RawEnvelope<'_>>(bytes) {
                let schema = self.cached_schema(envelope.schema.get())?;
                if let Some(value) =
                    schema.as_ref().and_then(|s| super::json_seed::decode(self, s, envelope.payload.get().as_bytes()))
                {
                    return Ok((schema, value));
                }
                let payload: Json = serde_json::from_str(envelope.payload.get()).map_err(|e| {
                    DataError::new(format!(
                        "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
                    ))
                })?;
                let value = self.value_from_json(schema.as_ref(), &payload)?;
                return Ok((schema, value));
            }
        }
        let json: Json = serde_json::from_slice(bytes).map_err(|e| {
            DataError::new(format!("Converting byte[] to Kafka Connect data failed due to serialization error: {e}"))
        })?;
        if !self.schemas_enable {
            return Ok((None, infer(&json)));
        }
        let envelope = json
            .as_object()
            .filter(|o| o.len() == 2 && o.contains_key("schema") && o.contains_key("payload"))
            .ok_or_else(|| {
                DataError::new(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.",
                )
            })?;
        let schema = self.schema_from_json(&envelope["schema"])?.map(Arc::new);
        let value = self.value_from_json(schema.as_ref(), &envelope["payload"])?;
        Ok((schema, value))
    }
}
