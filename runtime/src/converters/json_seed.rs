//! The JsonConverter's fast decode: the payload text is read straight into Connect values, guided
//! by the schema, with no `serde_json::Value` tree in between (one allocation per string instead of
//! two, no per-record map of field names).
//!
//! It covers the common shapes (primitives, logical types, strings, base64 bytes and decimals,
//! arrays, string-keyed maps, structs). Anything else, and every error, answers `Err` so the caller
//! decodes the record again the reference way ([`JsonConverter::value_from_json`]), which gives
//! Kafka Connect's exact error messages: the fast path never changes a result, only its cost.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use sluice_api::schema::logical;
use sluice_api::{Decimal, SchemaRef, SchemaType, Struct, Value};

use super::json::JsonConverter;

/// Decodes `payload` (JSON text, consumed whole) as a value of `schema`; `None` when the
/// reference path must decide.
pub(super) fn decode(converter: &JsonConverter, schema: &SchemaRef, payload: &[u8]) -> Option<Value> {
    // One UTF-8 check of the whole payload (SIMD), not one per string.
    let mut de = serde_json::Deserializer::from_str(simdutf8::basic::from_utf8(payload).ok()?);
    let value = Seed { converter, schema }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

#[derive(Clone, Copy)]
struct Seed<'s> {
    converter: &'s JsonConverter,
    schema: &'s SchemaRef,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Any error: the reference path is taken and names it.
fn fallback<E: serde::de::Error>() -> E {
    E::custom("fallback")
}

impl Seed<'_> {
    fn int<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        let s = self.schema;
        let fits = |min: i64, max: i64| if (min..=max).contains(&v) { Ok(v) } else { Err(fallback()) };
        Ok(match s.schema_type {
            SchemaType::Int8 => Value::Int8(fits(i8::MIN.into(), i8::MAX.into())? as i8),
            SchemaType::Int16 => Value::Int16(fits(i16::MIN.into(), i16::MAX.into())? as i16),
            SchemaType::Int32 => {
                let v = fits(i32::MIN.into(), i32::MAX.into())? as i32;
                if s.is_logical(logical::DATE) {
                    Value::Date(v)
                } else if s.is_logical(logical::TIME) {
                    Value::Time(v)
                } else {
                    Value::Int32(v)
                }
            }
            SchemaType::Int64 if s.is_logical(logical::TIMESTAMP) => Value::Timestamp(v),
            SchemaType::Int64 => Value::Int64(v),
            SchemaType::Float32 => Value::Float32(v as f64 as f32),
            SchemaType::Float64 => Value::Float64(v as f64),
            _ => return Err(fallback()),
        })
    }

    fn null<E: serde::de::Error>(self) -> Result<Value, E> {
        self.converter.value_from_json(Some(self.schema), &Json::Null).map_err(|_| fallback())
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} value", self.schema.schema_type.name())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.null()
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.null()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        match self.schema.schema_type {
            SchemaType::Boolean => Ok(Value::Boolean(v)),
            _ => Err(fallback()),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.int(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => match self.schema.schema_type {
                SchemaType::Float32 => Ok(Value::Float32(v as f64 as f32)),
                SchemaType::Float64 => Ok(Value::Float64(v as f64)),
                _ => Err(fallback()),
            },
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        match self.schema.schema_type {
            SchemaType::Float32 => Ok(Value::Float32(v as f32)),
            SchemaType::Float64 => Ok(Value::Float64(v)),
            _ => Err(fallback()),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        match self.schema.schema_type {
            SchemaType::String => Ok(Value::String(v.to_string())),
            SchemaType::Bytes => {
                let bytes = B64.decode(v).map_err(|_| fallback())?;
                Ok(match self.schema.decimal_scale() {
                    Some(scale) => Value::Decimal(Decimal::from_bytes(&bytes, scale)),
                    None if self.schema.name.as_deref() == Some(logical::DECIMAL) => return Err(fallback()),
                    None => Value::Bytes(bytes),
                })
            }
            // "NaN", "Infinity" and the like: the reference path reads them.
            _ => Err(fallback()),
        }
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        match self.schema.schema_type {
            SchemaType::String => Ok(Value::String(v)),
            _ => self.visit_str(&v),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let (SchemaType::Array, Some(items)) = (self.schema.schema_type, self.schema.value_schema.as_ref()) else {
            return Err(fallback());
        };
        let seed = Seed { converter: self.converter, schema: items };
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(seed)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let schema = self.schema;
        match schema.schema_type {
            SchemaType::Struct => {
                let fields = &schema.fields;
                // Fields in schema order (as Kafka Connect writes them) are pushed as they come;
                // any other order (or a repeated field) switches to slots.
                let mut values: Vec<Value> = Vec::with_capacity(fields.len());
                let mut slots: Option<Vec<Option<Value>>> = None;
                let mut next = 0usize;
                while let Some(index) = map.next_key_seed(FieldIndex { schema, hint: next })? {
                    let Some(i) = index else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    let v = map.next_value_seed(Seed { converter: self.converter, schema: &fields[i].schema })?;
                    match slots.as_mut() {
                        None if i == values.len() => values.push(v),
                        Some(slots) => slots[i] = Some(v),
                        None => {
                            let mut s: Vec<Option<Value>> = values.drain(..).map(Some).collect();
                            s.resize(fields.len(), None);
                            s[i] = Some(v);
                            slots = Some(s);
                        }
                    }
                    next = i + 1;
                }
                let missing =
                    |field: &sluice_api::Field| Seed { converter: self.converter, schema: &field.schema }.null();
                match slots {
                    Some(slots) => {
                        for (slot, field) in slots.into_iter().zip(fields) {
                            values.push(match slot {
                                Some(v) => v,
                                None => missing(field)?,
                            });
                        }
                    }
                    None => {
                        for field in &fields[values.len()..] {
                            values.push(missing(field)?);
                        }
                    }
                }
                // The struct shares the schema, as the reference path does.
                Ok(Value::Struct(Struct { schema: schema.clone(), values }))
            }
            SchemaType::Map
                if schema.key_schema.as_ref().is_some_and(|k| k.schema_type == SchemaType::String)
                    && schema.value_schema.is_some() =>
            {
                let Some(vs) = schema.value_schema.as_ref() else { return Err(fallback()) };
                let mut entries: Vec<(Value, Value)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v = map.next_value_seed(Seed { converter: self.converter, schema: vs })?;
                    // A repeated key keeps its last value, as a parsed JSON object does.
                    match entries.iter_mut().find(|(e, _)| matches!(e, Value::String(s) if *s == k)) {
                        Some(e) => e.1 = v,
                        None => entries.push((Value::String(k), v)),
                    }
                }
                // The reference path's map follows a parsed JSON object's key order: sorted, or
                // as written when serde_json keeps the order (its `preserve_order` feature).
                if objects_sort_keys() {
                    entries.sort_by(|a, b| match (&a.0, &b.0) {
                        (Value::String(x), Value::String(y)) => x.cmp(y),
                        _ => std::cmp::Ordering::Equal,
                    });
                }
                Ok(Value::Map(entries))
            }
            _ => Err(fallback()),
        }
    }
}

/// Whether serde_json's objects iterate their keys sorted (rather than as written).
fn objects_sort_keys() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let probe: serde_json::Map<String, Json> = serde_json::from_str(r#"{"b":0,"a":0}"#).unwrap_or_default();
        probe.keys().next().is_none_or(|k| k == "a")
    })
}

/// A struct field's index by name; the field after the previous one is tried first.
struct FieldIndex<'s> {
    schema: &'s SchemaRef,
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        let fields = &self.schema.fields;
        if fields.get(self.hint).is_some_and(|f| f.name == v) {
            return Ok(Some(self.hint));
        }
        Ok(fields.iter().position(|f| f.name == v))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_api::{Schema, Value};

    use super::*;

    fn both(converter: &JsonConverter, schema: &SchemaRef, payload: &str) -> (Option<Value>, Result<Value, String>) {
        let fast = decode(converter, schema, payload.as_bytes());
        let json: Json = serde_json::from_str(payload).expect("json");
        (fast, converter.value_from_json(Some(schema), &json).map_err(|e| e.0))
    }

    #[test]
    fn the_fast_path_agrees_with_the_reference_or_steps_aside() {
        let c = JsonConverter::default();
        let inner = Schema::struct_of([("x", Schema::int32()), ("y", Schema::string().optional())]);
        let schema: SchemaRef = Arc::new(Schema::struct_of([
            ("b", Schema::boolean()),
            ("i8", Schema::int8()),
            ("i64", Schema::int64()),
            ("f", Schema::float64()),
            ("f32", Schema::float32()),
            ("s", Schema::string()),
            ("opt", Schema::string().optional()),
            ("bytes", Schema::bytes().optional()),
            ("arr", Schema::array(Schema::int64()).optional()),
            ("m", Schema::map(Schema::string(), Schema::int32()).optional()),
            ("nested", inner),
        ]));
        let payloads = [
            // Fields out of order, unknown ones, escapes, a missing optional field.
            r#"{"i8":-5,"b":true,"i64":9007199254740993,"f":1.5,"f32":2,"s":"h\u00e9 \"q\"","zz":{"a":[1,2]},
               "bytes":"AQID","arr":[1,2,3],"m":{"z":1,"a":2,"z":3},"nested":{"y":null,"x":7}}"#,
            r#"{"b":false,"i8":127,"i64":-1,"f":-0.0,"f32":1e3,"s":"","opt":"o","nested":{"x":-2147483648}}"#,
            // Every field, in schema order.
            r#"{"b":true,"i8":1,"i64":2,"f":3,"f32":4,"s":"x","opt":null,"bytes":"AQ==","arr":[],"m":{},"nested":{"x":1,"y":"y"}}"#,
            // In schema order, then a field again (the last value wins), optional fields left out.
            r#"{"b":true,"i8":1,"i64":2,"f":3,"f32":4,"s":"x","opt":"o","b":false,"nested":{"x":1,"y":"y"}}"#,
            r#"{"b":true,"i8":1,"i64":2,"f":3,"f32":4,"s":"x","nested":{"x":1}}"#,
        ];
        for p in payloads {
            let (fast, reference) = both(&c, &schema, p);
            assert_eq!(fast.expect("fast path taken"), reference.expect("valid"), "{p}");
        }
        // Invalid or unusual input: the fast path steps aside and the reference path decides.
        let steps_aside = [
            r#"{"b":true,"i8":128,"i64":1,"f":1,"f32":1,"s":"","nested":{"x":1}}"#,
            r#"{"b":true,"i8":1,"i64":1.5,"f":1,"f32":1,"s":"","nested":{"x":1}}"#,
            r#"{"b":true,"i8":1,"i64":1,"f":"NaN","f32":1,"s":"","nested":{"x":1}}"#,
            r#"{"i8":1,"i64":1,"f":1,"f32":1,"s":"","nested":{"x":1}}"#,
            r#"{"b":true,"i8":1,"i64":1,"f":1,"f32":1,"s":5,"nested":{"x":1}}"#,
        ];
        for p in steps_aside {
            assert_eq!(decode(&c, &schema, p.as_bytes()), None, "{p}");
        }
    }
}
