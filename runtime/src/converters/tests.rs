//! Golden vectors: the exact bytes Kafka Connect's JsonConverter writes (from its documented JSON
//! forms and its own unit tests), and round trips back to Connect data.

use std::sync::Arc;

use sluice_api::{ConfigMap, Decimal, Schema, SchemaRef, Struct, Value};

use super::jsonwrite::{java_big_decimal, write_f32, write_f64};
use super::*;

fn json(props: &[(&str, &str)]) -> JsonConverter {
    let map: ConfigMap = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    JsonConverter::configure(&map, false).expect("valid config")
}

fn to_json(c: &JsonConverter, schema: Schema, value: Value) -> String {
    let schema: SchemaRef = Arc::new(schema);
    let bytes = c.to_bytes("t", Some(&schema), &value).expect("converts").expect("not null");
    String::from_utf8(bytes).expect("utf8")
}

/// Writes with the default converter, checks the exact bytes, then reads them back.
fn golden(schema: Schema, value: Value, schema_json: &str, payload: &str) {
    let c = json(&[]);
    let out = to_json(&c, schema.clone(), value.clone());
    assert_eq!(out, format!("{{\"schema\":{schema_json},\"payload\":{payload}}}"));
    let (read_schema, read_value) = c.to_connect("t", Some(out.as_bytes())).expect("reads back");
    assert_eq!(read_schema.as_deref(), Some(&schema), "schema round trip of {out}");
    match (&read_value, &value) {
        (Value::Struct(a), Value::Struct(b)) => assert_eq!(a.values, b.values),
        _ => assert_eq!(read_value, value, "value round trip of {out}"),
    }
}

#[test]
fn primitives() {
    golden(Schema::boolean(), Value::Boolean(true), r#"{"type":"boolean","optional":false}"#, "true");
    golden(Schema::int8(), Value::Int8(12), r#"{"type":"int8","optional":false}"#, "12");
    golden(Schema::int16(), Value::Int16(-12), r#"{"type":"int16","optional":false}"#, "-12");
    golden(Schema::int32(), Value::Int32(12), r#"{"type":"int32","optional":false}"#, "12");
    golden(Schema::int64(), Value::Int64(4398046511104), r#"{"type":"int64","optional":false}"#, "4398046511104");
    golden(Schema::float32(), Value::Float32(12.34), r#"{"type":"float","optional":false}"#, "12.34");
    golden(Schema::float64(), Value::Float64(12.34), r#"{"type":"double","optional":false}"#, "12.34");
    golden(
        Schema::bytes(),
        Value::Bytes(b"test-string".to_vec()),
        r#"{"type":"bytes","optional":false}"#,
        r#""dGVzdC1zdHJpbmc=""#,
    );
    golden(Schema::string(), "test-string".into(), r#"{"type":"string","optional":false}"#, r#""test-string""#);
    golden(Schema::string().optional(), Value::Null, r#"{"type":"string","optional":true}"#, "null");
}

#[test]
fn containers() {
    golden(
        Schema::array(Schema::int32()),
        Value::Array(vec![1.into(), 2.into(), 3.into()]),
        r#"{"type":"array","items":{"type":"int32","optional":false},"optional":false}"#,
        "[1,2,3]",
    );
    golden(
        Schema::map(Schema::string(), Schema::int32()),
        Value::Map(vec![("key1".into(), 12.into()), ("key2".into(), 15.into())]),
        r#"{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"int32","optional":false},"optional":false}"#,
        r#"{"key1":12,"key2":15}"#,
    );
    golden(
        Schema::map(Schema::int32(), Schema::int32()),
        Value::Map(vec![(1.into(), 12.into()), (2.into(), 15.into())]),
        r#"{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"int32","optional":false},"optional":false}"#,
        "[[1,12],[2,15]]",
    );
    let schema = Schema::struct_of([
        ("field1", Schema::boolean()),
        ("field2", Schema::string()),
        ("field3", Schema::string()),
        ("field4", Schema::boolean()),
    ]);
    let value = Struct::new(Arc::new(schema.clone()))
        .put("field1", true)
        .and_then(|s| s.put("field2", "string2"))
        .and_then(|s| s.put("field3", "string3"))
        .and_then(|s| s.put("field4", false))
        .expect("fields");
    golden(
        schema,
        Value::Struct(value),
        r#"{"type":"struct","fields":[{"type":"boolean","optional":false,"field":"field1"},{"type":"string","optional":false,"field":"field2"},{"type":"string","optional":false,"field":"field3"},{"type":"boolean","optional":false,"field":"field4"}],"optional":false}"#,
        r#"{"field1":true,"field2":"string2","field3":"string3","field4":false}"#,
    );
}

#[test]
fn logical_types() {
    golden(
        Schema::decimal(2),
        Value::Decimal(Decimal::from_i128(156, 2)),
        r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}}"#,
        r#""AJw=""#,
    );
    golden(
        Schema::date(),
        Value::Date(10000),
        r#"{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1}"#,
        "10000",
    );
    golden(
        Schema::time(),
        Value::Time(14_400_000),
        r#"{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Time","version":1}"#,
        "14400000",
    );
    golden(
        Schema::timestamp(),
        Value::Timestamp(4_000_000_000),
        r#"{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1}"#,
        "4000000000",
    );
}

#[test]
fn decimal_numeric_format() {
    let c = json(&[("decimal.format", "NUMERIC")]);
    let out = to_json(&c, Schema::decimal(2), Value::Decimal(Decimal::from_i128(156, 2)));
    assert!(out.ends_with(r#""payload":1.56}"#), "{out}");
    let (_, v) = c.to_connect("t", Some(out.as_bytes())).expect("reads");
    assert_eq!(v, Value::Decimal(Decimal::from_i128(156, 2)));
    assert_eq!(java_big_decimal("1", 7), "1E-7");
    assert_eq!(java_big_decimal("-123", -2), "-1.23E+4");
    assert_eq!(java_big_decimal("123", 6), "0.000123");
}

#[test]
fn schema_metadata_defaults_and_nulls() {
    let schema =
        Schema::int32().optional().named("my.int").version(3).doc("d\"oc").parameter("k", "v").with_default(42.into());
    let c = json(&[]);
    let out = to_json(&c, schema.clone(), Value::Null);
    assert_eq!(
        out,
        r#"{"schema":{"type":"int32","optional":true,"name":"my.int","version":3,"doc":"d\"oc","parameters":{"k":"v"},"default":42},"payload":42}"#
    );
    let keep_null = json(&[("replace.null.with.default", "false")]);
    assert!(to_json(&keep_null, schema, Value::Null).ends_with(r#""payload":null}"#));
    let required = Arc::new(Schema::string());
    let err = c.to_bytes("t", Some(&required), &Value::Null).expect_err("required null");
    assert!(err.0.contains("null value for field that is required"), "{err}");
}

#[test]
fn schemaless_and_null_handling() {
    let c = json(&[("schemas.enable", "false")]);
    let value = Value::Map(vec![("a".into(), Value::Int64(1)), ("b".into(), Value::Array(vec![Value::Boolean(true)]))]);
    let out = c.to_bytes("t", None, &value).expect("ok").expect("bytes");
    assert_eq!(out, br#"{"a":1,"b":[true]}"#);
    assert_eq!(c.to_connect("t", Some(&out)).expect("reads"), (None, value));
    assert_eq!(c.to_bytes("t", None, &Value::Null).expect("ok"), None, "null stays a Kafka null (tombstone)");
    let with_schemas = json(&[]);
    let out = with_schemas.to_bytes("t", None, &Value::Boolean(true)).expect("ok").expect("bytes");
    assert_eq!(out, br#"{"schema":null,"payload":true}"#);
    assert_eq!(with_schemas.to_connect("t", None).expect("null"), (None, Value::Null));
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let c = json(&[]);
    let err = c.to_connect("t", Some(br#"{"a":1}"#)).expect_err("no envelope");
    assert!(err.0.contains("schemas.enable requires \"schema\" and \"payload\""), "{err}");
    assert!(c.to_connect("t", Some(b"{not json")).is_err());
    let err = c
        .to_connect("t", Some(br#"{"schema":{"type":"int8","optional":false},"payload":300}"#))
        .expect_err("out of range");
    assert!(err.0.contains("INT8"), "{err}");
    let err = c.to_connect("t", Some(br#"{"schema":{"type":"nope"},"payload":1}"#)).expect_err("bad type");
    assert_eq!(err.0, "Unknown schema type: nope");
    let int32 = Arc::new(Schema::int32());
    assert!(c.to_bytes("t", Some(&int32), &"x".into()).is_err());
}

#[test]
fn an_envelope_schema_is_parsed_once_per_distinct_text() {
    let c = json(&[("schemas.cache.size", "2")]);
    let rec = |v: i32| {
        format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"field":"a","type":"int32"}}],"optional":false}},"payload":{{"a":{v}}}}}"#
        )
    };
    let (s1, v1) = c.to_connect("t", Some(rec(1).as_bytes())).expect("first");
    let (s2, v2) = c.to_connect("t", Some(rec(2).as_bytes())).expect("second");
    let (s1, s2) = (s1.expect("schema"), s2.expect("schema"));
    assert!(Arc::ptr_eq(&s1, &s2), "the same schema text gives the same schema instance");
    assert_ne!(v1, v2);
    // Other texts still parse, beyond the cache's size, each to its own schema.
    for t in ["int32", "int64", "string"] {
        let other = format!(r#"{{"schema":{{"type":"{t}","optional":true}},"payload":null}}"#);
        let (s, v) = c.to_connect("t", Some(other.as_bytes())).expect("other");
        assert_eq!(s.expect("schema").schema_type.name(), t);
        assert_eq!(v, Value::Null);
    }
    // A schema of null, or an envelope with a third field, takes the full path.
    assert_eq!(c.to_connect("t", Some(br#"{"schema":null,"payload":5}"#)).expect("null schema").0, None);
    let err = c.to_connect("t", Some(br#"{"schema":null,"payload":5,"x":1}"#)).expect_err("extra field");
    assert!(err.0.contains("may not contain additional fields"), "{err}");
}

#[test]
fn an_envelope_with_the_last_schema_text_decodes_as_any_other() {
    let c = json(&[]);
    let schema = r#"{"type":"struct","fields":[{"field":"a","type":"int32"},{"field":"s","type":"string","optional":true}],"optional":false}"#;
    let rec = |payload: &str| format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
    let (first, v1) = c.to_connect("t", Some(rec(r#"{"a":1}"#).as_bytes())).expect("first");
    // The same schema text again: the schema instance is shared and values decode alike.
    let (again, v2) = c.to_connect("t", Some(rec(r#"{"s":"x","a":2}"#).as_bytes())).expect("second");
    assert!(Arc::ptr_eq(&first.expect("schema"), &again.expect("schema")));
    match (v1, v2) {
        (Value::Struct(a), Value::Struct(b)) => {
            assert_eq!(a.values, vec![Value::Int32(1), Value::Null]);
            assert_eq!(b.values, vec![Value::Int32(2), Value::String("x".into())]);
        }
        other => panic!("{other:?}"),
    }
    // Whitespace after the payload is fine; anything else after it, a truncated record or a bad
    // value gets the full path's error.
    let spaced = format!("{} \n", rec(r#"{"a":3}"#));
    assert!(c.to_connect("t", Some(spaced.as_bytes())).is_ok());
    let extra = format!(r#"{{"schema":{schema},"payload":{{"a":1}},"x":1}}"#);
    let err = c.to_connect("t", Some(extra.as_bytes())).expect_err("extra field");
    assert!(err.0.contains("may not contain additional fields"), "{err}");
    let truncated = format!(r#"{{"schema":{schema},"payload":{{"a":1}}"#);
    assert!(c.to_connect("t", Some(truncated.as_bytes())).is_err());
    let doubled = format!("{}}}", rec(r#"{"a":1}"#));
    assert!(c.to_connect("t", Some(doubled.as_bytes())).is_err());
    let err = c.to_connect("t", Some(rec(r#"{"a":"one"}"#).as_bytes())).expect_err("bad value");
    assert!(err.0.contains("Expected a INT32 value"), "{err}");
    let err = c.to_connect("t", Some(rec(r#"{"s":"x"}"#).as_bytes())).expect_err("missing required");
    assert!(err.0.contains("Invalid null value for required INT32 field"), "{err}");
}

#[test]
fn strings_escape_like_jackson() {
    let c = json(&[("schemas.enable", "false")]);
    let out = c.to_bytes("t", None, &Value::String("a\"b\\c\n\u{1}é/".into())).expect("ok").expect("bytes");
    assert_eq!(String::from_utf8(out).expect("utf8"), "\"a\\\"b\\\\c\\n\\u0001é/\"");
}

#[test]
fn floats_print_like_java() {
    let f64s = |v: f64| {
        let mut s = String::new();
        write_f64(&mut s, v);
        s
    };
    assert_eq!(f64s(1.0), "1.0");
    assert_eq!(f64s(0.001), "0.001");
    assert_eq!(f64s(0.0001), "1.0E-4");
    assert_eq!(f64s(1234567.0), "1234567.0");
    assert_eq!(f64s(12345678.0), "1.2345678E7");
    assert_eq!(f64s(-1.5e300), "-1.5E300");
    assert_eq!(f64s(0.0), "0.0");
    assert_eq!(f64s(f64::NAN), "\"NaN\"");
    let mut s = String::new();
    write_f32(&mut s, 0.1);
    assert_eq!(s, "0.1");
}

#[test]
fn string_and_bytearray_converters() {
    let s = StringConverter;
    assert_eq!(s.to_bytes("t", None, &"héllo".into()).expect("ok"), Some("héllo".as_bytes().to_vec()));
    assert_eq!(s.to_bytes("t", None, &Value::Int32(5)).expect("ok"), Some(b"5".to_vec()));
    assert_eq!(s.to_bytes("t", None, &Value::Null).expect("ok"), None);
    let (schema, v) = s.to_connect("t", Some(b"abc")).expect("ok");
    assert_eq!((schema.as_deref(), v), (Some(&Schema::string().optional()), Value::from("abc")));
    let b = ByteArrayConverter;
    assert_eq!(b.to_bytes("t", None, &Value::Bytes(vec![0, 255])).expect("ok"), Some(vec![0, 255]));
    let string_schema = Arc::new(Schema::string());
    assert!(b.to_bytes("t", Some(&string_schema), &"x".into()).is_err());
    assert_eq!(b.to_connect("t", Some(&[1, 2])).expect("ok").1, Value::Bytes(vec![1, 2]));
}

#[test]
fn converters_are_found_by_kafka_class_name() {
    let empty = ConfigMap::new();
    for class in [
        "org.apache.kafka.connect.json.JsonConverter",
        "org.apache.kafka.connect.storage.StringConverter",
        "org.apache.kafka.connect.converters.ByteArrayConverter",
        "json",
        "string",
    ] {
        assert!(create_converter("value.converter", class, &empty, false).is_ok(), "{class}");
    }
    let err = create_converter("value.converter", "com.example.Nope", &empty, false).err().expect("unknown");
    assert_eq!(err.0[0].key, "value.converter");
    let bad: ConfigMap = [("schemas.enable".to_string(), "maybe".to_string())].into_iter().collect();
    assert!(create_converter("key.converter", "json", &bad, true).is_err());
}

#[test]
fn pre_serialized_json_is_written_as_the_json_it_is() {
    let doc = r#"{"properties":{"n":1.5,"s":"a\"b"},"type":"track"}"#;
    let value = Value::Json(doc.to_string());
    let schemaless = json(&[("schemas.enable", "false")]);
    let out = schemaless.to_bytes("t", None, &value).expect("converts").expect("not null");
    assert_eq!(String::from_utf8(out).expect("utf8"), doc);
    let enveloped = json(&[]).to_bytes("t", None, &value).expect("converts").expect("not null");
    assert_eq!(String::from_utf8(enveloped).expect("utf8"), format!("{{\"schema\":null,\"payload\":{doc}}}"));
    // The same bytes as the value tree the document stands for.
    let (_, tree) = schemaless.to_connect("t", Some(doc.as_bytes())).expect("reads");
    let from_tree = schemaless.to_bytes("t", None, &tree).expect("converts").expect("not null");
    assert_eq!(String::from_utf8(from_tree).expect("utf8"), doc);
    // Never under a schema.
    let schema: SchemaRef = Arc::new(Schema::string());
    assert!(json(&[]).to_bytes("t", Some(&schema), &value).is_err());
    assert_eq!(StringConverter.to_bytes("t", None, &value).expect("string").as_deref(), Some(doc.as_bytes()));
    assert_eq!(ByteArrayConverter.to_bytes("t", None, &value).expect("bytes").as_deref(), Some(doc.as_bytes()));
}

#[test]
fn a_struct_schema_with_a_repeated_field_name_is_refused() {
    // As Kafka Connect's SchemaBuilder; taking it would make a field's value depend on the path.
    let c = json(&[]);
    let record = r#"{"schema":{"type":"struct","fields":[{"field":"a","type":"int32"},{"field":"a","type":"int32","optional":true}]},"payload":{"a":1}}"#;
    let e = c.to_connect("t", Some(record.as_bytes())).expect_err("duplicate field");
    assert!(e.to_string().contains("field name duplication a"), "{e}");
}
