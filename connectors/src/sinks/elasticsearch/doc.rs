//! Records as Elasticsearch documents: the JSON source, the document id and the index mapping.
//!
//! Values are written as Confluent's sink writes them (schemaless JSON of the Connect value), except
//! where that loses data: a Connect `Date` becomes `"YYYY-MM-DD"` (not a day count, which a `date`
//! field would read as milliseconds), non-finite floats become `null` (not the strings `"NaN"`,
//! which numeric fields refuse), and decimals are JSON numbers.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{json, Map, Value as J};
use sluice_api::json::{write_f32, write_f64, write_str};
use sluice_api::schema::logical;
use sluice_api::{Decimal, Schema, SchemaType, Value};

/// Appends the document for `value` (with its schema, when it has one).
pub fn write_doc(out: &mut String, schema: Option<&Schema>, value: &Value, compact_maps: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int8(n) => push_int(out, i64::from(*n)),
        Value::Int16(n) => push_int(out, i64::from(*n)),
        Value::Int32(n) | Value::Time(n) => push_int(out, i64::from(*n)),
        Value::Int64(n) | Value::Timestamp(n) => push_int(out, *n),
        Value::Float32(f) if f.is_finite() => write_f32(out, *f),
        Value::Float64(f) if f.is_finite() => write_f64(out, *f),
        Value::Float32(_) | Value::Float64(_) => out.push_str("null"),
        Value::String(s) => write_str(out, s),
        Value::Json(text) => out.push_str(text),
        Value::Decimal(d) => out.push_str(&d.to_string()),
        Value::Bytes(b) => match schema.and_then(Schema::decimal_scale) {
            Some(scale) => out.push_str(&Decimal::from_bytes(b, scale).to_string()),
            None => {
                out.push('"');
                out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
                out.push('"');
            }
        },
        Value::Date(days) => {
            let (y, m, d) = sluice_api::time::civil_from_days(i64::from(*days));
            let _ = write!(out, "\"{y:04}-{m:02}-{d:02}\"");
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_doc(out, item_schema, item, compact_maps);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let (ks, vs) = match schema {
                Some(s) => (s.key_schema.as_deref(), s.value_schema.as_deref()),
                None => (None, None),
            };
            let string_keys = match ks {
                Some(k) => k.schema_type == SchemaType::String,
                None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
            };
            if compact_maps && string_keys {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        Value::String(s) => write_str(out, s),
                        other => write_str(out, &other.to_string()),
                    }
                    out.push(':');
                    write_doc(out, vs, v, compact_maps);
                }
                out.push('}');
            } else {
                out.push('[');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"key\":");
                    write_doc(out, ks, k, compact_maps);
                    out.push_str(",\"value\":");
                    write_doc(out, vs, v, compact_maps);
                    out.push('}');
                }
                out.push(']');
            }
        }
        Value::Struct(st) => {
            out.push('{');
            for (i, (field, v)) in st.schema.fields.iter().zip(&st.values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, &field.name);
                out.push(':');
                write_doc(out, Some(&field.schema), v, compact_maps);
            }
            out.push('}');
        }
    }
}

fn push_int(out: &mut String, n: i64) {
    let _ = write!(out, "{n}");
}

/// The document id for a record key: strings and numbers as their text; a struct (or JSON object)
/// of one field as that field; of several, their values joined with `+`. `Err` says why the key
/// cannot be an id.
pub fn doc_id(key: &Value) -> Result<String, String> {
    match key {
        Value::Null => Err("the record has no key, and with key.ignore=false the key is the document id".into()),
        Value::String(s) if s.is_empty() => Err("the record key is an empty string".into()),
        Value::String(s) => Ok(s.clone()),
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) | Value::Boolean(_) => Ok(key.to_string()),
        Value::Float32(_) | Value::Float64(_) | Value::Decimal(_) => Ok(key.to_string()),
        Value::Bytes(b) => {
            String::from_utf8(b.clone()).map_err(|_| "the record key is bytes that are not UTF-8".into())
        }
        Value::Struct(s) => join(s.values.iter().map(doc_id)),
        Value::Map(m) => join(m.iter().map(|(_, v)| doc_id(v))),
        Value::Json(text) => match serde_json::from_str::<J>(text) {
            Ok(j) => json_id(&j),
            Err(e) => Err(format!("the record key is not valid JSON: {e}")),
        },
        Value::Array(_) => Err("an array key cannot be a document id".into()),
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => Ok(key.to_string()),
    }
}

fn json_id(j: &J) -> Result<String, String> {
    match j {
        J::Null => Err("the record key is null, and with key.ignore=false the key is the document id".into()),
        J::String(s) if s.is_empty() => Err("the record key is an empty string".into()),
        J::String(s) => Ok(s.clone()),
        J::Number(n) => Ok(n.to_string()),
        J::Bool(b) => Ok(b.to_string()),
        J::Object(m) => join(m.values().map(json_id)),
        J::Array(_) => Err("an array key cannot be a document id".into()),
    }
}

fn join(parts: impl Iterator<Item = Result<String, String>>) -> Result<String, String> {
    let parts = parts.collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err("the record key has no fields".into());
    }
    Ok(parts.join("+"))
}

/// The index mapping for a value schema, as Confluent's `Mapping.inferMapping` builds it: `None`
/// when the schema is not a struct (the server then infers the mapping).
pub fn mapping(schema: &Schema) -> Option<J> {
    (schema.schema_type == SchemaType::Struct).then(|| field_mapping(schema))
}

fn field_mapping(schema: &Schema) -> J {
    let primitive = |t: &str| json!({ "type": t });
    match schema.name.as_deref() {
        Some(logical::DATE | logical::TIME | logical::TIMESTAMP) => return primitive("date"),
        Some(logical::DECIMAL) => return primitive("double"),
        _ => {}
    }
    match schema.schema_type {
        SchemaType::Boolean => primitive("boolean"),
        SchemaType::Int8 => primitive("byte"),
        SchemaType::Int16 => primitive("short"),
        SchemaType::Int32 => primitive("integer"),
        SchemaType::Int64 => primitive("long"),
        SchemaType::Float32 => primitive("float"),
        SchemaType::Float64 => primitive("double"),
        SchemaType::String => {
            json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}})
        }
        SchemaType::Bytes => primitive("binary"),
        SchemaType::Array => schema.value_schema.as_deref().map_or_else(|| json!({}), field_mapping),
        SchemaType::Map => {
            let string_keys = schema.key_schema.as_deref().is_some_and(|k| k.schema_type == SchemaType::String);
            if string_keys {
                json!({"type": "object"})
            } else {
                let mut props = Map::new();
                if let Some(k) = schema.key_schema.as_deref() {
                    props.insert("key".into(), field_mapping(k));
                }
                if let Some(v) = schema.value_schema.as_deref() {
                    props.insert("value".into(), field_mapping(v));
                }
                json!({ "properties": props })
            }
        }
        SchemaType::Struct => {
            let props: Map<String, J> =
                schema.fields.iter().map(|f| (f.name.clone(), field_mapping(&f.schema))).collect();
            json!({ "properties": props })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_api::{Field, Struct};

    use super::*;

    fn order_schema() -> Arc<Schema> {
        let field = |name: &str, index, schema: Schema| Field { name: name.into(), index, schema: Arc::new(schema) };
        let mut s = Schema::new(SchemaType::Struct);
        s.fields = vec![
            field("id", 0, Schema::new(SchemaType::Int64)),
            field("status", 1, Schema::new(SchemaType::String)),
            field("day", 2, Schema::new(SchemaType::Int32).named(logical::DATE)),
            field("score", 3, Schema::new(SchemaType::Float64)),
        ];
        Arc::new(s)
    }

    #[test]
    fn documents_are_schemaless_json_of_the_value() {
        let schema = order_schema();
        let v = Value::Struct(Struct {
            schema: schema.clone(),
            values: vec![
                Value::Int64(7),
                Value::String("pa\"id".into()),
                Value::Date(19_000),
                Value::Float64(f64::NAN),
            ],
        });
        let mut out = String::new();
        write_doc(&mut out, Some(&schema), &v, true);
        assert_eq!(out, r#"{"id":7,"status":"pa\"id","day":"2022-01-08","score":null}"#);
        let parsed: J = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(parsed["id"], 7);

        let map = Value::Map(vec![(Value::String("a".into()), Value::Int32(1))]);
        let mut out = String::new();
        write_doc(&mut out, None, &map, true);
        assert_eq!(out, r#"{"a":1}"#);
        let mut out = String::new();
        write_doc(&mut out, None, &map, false);
        assert_eq!(out, r#"[{"key":"a","value":1}]"#);
        let mut out = String::new();
        write_doc(&mut out, None, &Value::Decimal(Decimal::parse("12.50").expect("dec")), true);
        assert_eq!(out, "12.50");
    }

    #[test]
    fn ids_from_keys() {
        assert_eq!(doc_id(&Value::String("k1".into())).as_deref(), Ok("k1"));
        assert_eq!(doc_id(&Value::Int64(42)).as_deref(), Ok("42"));
        assert_eq!(doc_id(&Value::Json(r#"{"id":5}"#.into())).as_deref(), Ok("5"));
        assert_eq!(doc_id(&Value::Json(r#""abc""#.into())).as_deref(), Ok("abc"));
        let mut s = Schema::new(SchemaType::Struct);
        s.fields = vec![
            Field { name: "order".into(), index: 0, schema: Arc::new(Schema::new(SchemaType::Int64)) },
            Field { name: "line".into(), index: 1, schema: Arc::new(Schema::new(SchemaType::Int32)) },
        ];
        let key = Value::Struct(Struct { schema: Arc::new(s), values: vec![Value::Int64(12), Value::Int32(3)] });
        assert_eq!(doc_id(&key).as_deref(), Ok("12+3"));
        assert!(doc_id(&Value::Null).expect_err("null").contains("key.ignore"));
        assert!(doc_id(&Value::Json("[1]".into())).is_err());
    }

    #[test]
    fn mapping_follows_confluent() {
        let m = mapping(&order_schema()).expect("struct");
        assert_eq!(m["properties"]["id"]["type"], "long");
        assert_eq!(m["properties"]["status"]["type"], "text");
        assert_eq!(m["properties"]["status"]["fields"]["keyword"]["type"], "keyword");
        assert_eq!(m["properties"]["day"]["type"], "date");
        assert_eq!(m["properties"]["score"]["type"], "double");
        assert!(mapping(&Schema::new(SchemaType::String)).is_none());
    }
}
