//! Each transform against Kafka Connect's and Debezium's documented behaviour.

use std::sync::Arc;

use sluice_api::{ConfigMap, Header, Schema, SchemaRef, SchemaType, Struct, Value};

use super::kafka::schema_type;
use super::{Parts, TransformChain};

fn chain(pairs: &[(&str, &str)]) -> TransformChain {
    let map: ConfigMap = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match TransformChain::from_config(&map) {
        Ok(c) => c,
        Err(e) => panic!("config: {e:?}"),
    }
}

fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
    let map: ConfigMap = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match TransformChain::from_config(&map) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| format!("{}: {}", e.key, e.message)).collect(),
    }
}

fn row_schema() -> SchemaRef {
    Arc::new(
        Schema::struct_of([("id", Schema::int32()), ("status", Schema::string().optional())])
            .named("shop.orders.Value"),
    )
}

fn row(id: i32, status: &str) -> Value {
    Value::Struct(Struct { schema: row_schema(), values: vec![Value::Int32(id), Value::String(status.into())] })
}

fn parts(value_schema: Option<SchemaRef>, value: Value) -> Parts {
    Parts {
        topic: "db.shop.orders".into(),
        kafka_partition: Some(3),
        kafka_offset: Some(42),
        key_schema: None,
        key: Value::Null,
        value_schema,
        value,
        timestamp: Some(1_700_000_000_000),
        headers: vec![Header::string("h1", "x")],
    }
}

fn envelope(op: &str, before: Option<Value>, after: Option<Value>) -> (SchemaRef, Value) {
    let source = Arc::new(Schema::struct_of([
        ("db", Schema::string()),
        ("table", Schema::string()),
        ("ts_ms", Schema::int64()),
    ]));
    let schema = Arc::new(Schema::struct_of([
        ("before", (*row_schema()).clone().optional()),
        ("after", (*row_schema()).clone().optional()),
        ("source", (*source).clone()),
        ("op", Schema::string()),
        ("ts_ms", Schema::int64().optional()),
    ]));
    let src = Value::Struct(Struct {
        schema: source,
        values: vec![Value::String("shop".into()), Value::String("orders".into()), Value::Int64(1_699_999_999_000)],
    });
    let v = Value::Struct(Struct {
        schema: schema.clone(),
        values: vec![
            before.unwrap_or(Value::Null),
            after.unwrap_or(Value::Null),
            src,
            Value::String(op.into()),
            Value::Int64(1_700_000_000_001),
        ],
    });
    (schema, v)
}

fn field(v: &Value, name: &str) -> Value {
    match v {
        Value::Struct(s) => s.get(name).cloned().unwrap_or(Value::Null),
        Value::Map(m) => {
            m.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v.clone()).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

#[test]
fn extract_new_record_state_defaults() {
    let c =
        chain(&[("transforms", "unwrap"), ("transforms.unwrap.type", "io.debezium.transforms.ExtractNewRecordState")]);
    let (s, v) = envelope("u", Some(row(1, "new")), Some(row(1, "paid")));
    let out = c.apply(parts(Some(s), v)).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "status"), Value::String("paid".into()));
    assert_eq!(out.value_schema.as_ref().and_then(|s| s.name.clone()).as_deref(), Some("shop.orders.Value"));
    let (s, v) = envelope("d", Some(row(1, "paid")), None);
    assert_eq!(c.apply(parts(Some(s), v)).expect("ok"), None, "deletes dropped by default");
    assert_eq!(c.apply(parts(None, Value::Null)).expect("ok"), None, "tombstones dropped by default");
    // Not an envelope: passed on as it is.
    let plain = parts(Some(row_schema()), row(2, "x"));
    assert_eq!(c.apply(plain.clone()).expect("ok"), Some(plain));
}

#[test]
fn extract_new_record_state_rewrite_add_fields_and_tombstones() {
    let c = chain(&[
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", "io.debezium.transforms.ExtractNewRecordState"),
        ("transforms.unwrap.delete.handling.mode", "rewrite"),
        ("transforms.unwrap.drop.tombstones", "false"),
        ("transforms.unwrap.add.fields", "op,table,source.ts_ms"),
        ("transforms.unwrap.add.headers", "db"),
    ]);
    let (s, v) = envelope("d", Some(row(7, "paid")), None);
    let out = c.apply(parts(Some(s), v)).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "id"), Value::Int32(7), "the before state");
    assert_eq!(field(&out.value, "__deleted"), Value::String("true".into()));
    assert_eq!(field(&out.value, "__op"), Value::String("d".into()));
    assert_eq!(field(&out.value, "__table"), Value::String("orders".into()));
    assert_eq!(field(&out.value, "__source_ts_ms"), Value::Int64(1_699_999_999_000));
    assert!(out.headers.iter().any(|h| h.key == "__db" && h.value == Value::String("shop".into())));
    out.value_schema.as_ref().expect("schema").validate_value(&out.value).expect("value fits its schema");
    let (s, v) = envelope("c", None, Some(row(8, "new")));
    let out = c.apply(parts(Some(s), v)).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "__deleted"), Value::String("false".into()));
    let tomb = c.apply(parts(None, Value::Null)).expect("ok").expect("tombstone kept");
    assert_eq!(tomb.value, Value::Null);
    // The newer key: deletes become tombstones.
    let c = chain(&[
        ("transforms", "u"),
        ("transforms.u.type", "io.debezium.transforms.ExtractNewRecordState"),
        ("transforms.u.delete.tombstone.handling.mode", "tombstone"),
    ]);
    let (s, v) = envelope("d", Some(row(7, "paid")), None);
    assert_eq!(c.apply(parts(Some(s), v)).expect("ok").expect("kept").value, Value::Null);
}

#[test]
fn value_to_key_then_extract_field_keys_by_id() {
    let c = chain(&[
        ("transforms", "key,id"),
        ("transforms.key.type", "org.apache.kafka.connect.transforms.ValueToKey"),
        ("transforms.key.fields", "id"),
        ("transforms.id.type", "org.apache.kafka.connect.transforms.ExtractField$Key"),
        ("transforms.id.field", "id"),
    ]);
    let out = c.apply(parts(Some(row_schema()), row(5, "x"))).expect("ok").expect("kept");
    assert_eq!(out.key, Value::Int32(5));
    assert_eq!(schema_type(&out.key_schema), Some(SchemaType::Int32));
    // Schemaless maps work too.
    let map = Value::Map(vec![(Value::String("id".into()), Value::Int64(9)), (Value::String("s".into()), Value::Null)]);
    let out = c.apply(parts(None, map)).expect("ok").expect("kept");
    assert_eq!(out.key, Value::Int64(9));
}

#[test]
fn insert_replace_hoist_fields() {
    let c = chain(&[
        ("transforms", "ins,rep"),
        ("transforms.ins.type", "InsertField$Value"),
        ("transforms.ins.topic.field", "src_topic"),
        ("transforms.ins.offset.field", "off!"),
        ("transforms.ins.static.field", "dc"),
        ("transforms.ins.static.value", "eu-1"),
        ("transforms.rep.type", "org.apache.kafka.connect.transforms.ReplaceField$Value"),
        ("transforms.rep.exclude", "status"),
        ("transforms.rep.renames", "id:order_id"),
    ]);
    let out = c.apply(parts(Some(row_schema()), row(5, "x"))).expect("ok").expect("kept");
    let names: Vec<&str> = out.value_schema.as_ref().expect("schema").fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["order_id", "src_topic", "off", "dc"]);
    assert_eq!(field(&out.value, "src_topic"), Value::String("db.shop.orders".into()));
    assert_eq!(field(&out.value, "off"), Value::Int64(42));
    assert!(
        !out.value_schema.as_ref().expect("schema").field("off").expect("off").schema.optional,
        "! makes it required"
    );
    out.value_schema.as_ref().expect("schema").validate_value(&out.value).expect("fits");
    let c = chain(&[("transforms", "h"), ("transforms.h.type", "HoistField$Value"), ("transforms.h.field", "line")]);
    let out =
        c.apply(parts(Some(Arc::new(Schema::string())), Value::String("hello".into()))).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "line"), Value::String("hello".into()));
}

#[test]
fn router_filter_predicates_and_headers() {
    let c = chain(&[
        ("transforms", "route,drop,noh"),
        ("transforms.route.type", "org.apache.kafka.connect.transforms.RegexRouter"),
        ("transforms.route.regex", "db\\.(.*)\\.(.*)"),
        ("transforms.route.replacement", "cdc-$1-$2"),
        ("transforms.drop.type", "org.apache.kafka.connect.transforms.Filter"),
        ("transforms.drop.predicate", "isTomb"),
        ("transforms.noh.type", "DropHeaders"),
        ("transforms.noh.headers", "h1"),
        ("predicates", "isTomb"),
        ("predicates.isTomb.type", "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"),
    ]);
    let out = c.apply(parts(Some(row_schema()), row(1, "x"))).expect("ok").expect("kept");
    assert_eq!(out.topic, "cdc-shop-orders");
    assert!(out.headers.is_empty());
    assert_eq!(c.apply(parts(None, Value::Null)).expect("ok"), None, "tombstones filtered");
    // negate: filter everything that is NOT on a matching topic.
    let c = chain(&[
        ("transforms", "keep"),
        ("transforms.keep.type", "Filter"),
        ("transforms.keep.predicate", "orders"),
        ("transforms.keep.negate", "true"),
        ("predicates", "orders"),
        ("predicates.orders.type", "TopicNameMatches"),
        ("predicates.orders.pattern", ".*\\.orders"),
    ]);
    assert!(c.apply(parts(None, Value::Null)).expect("ok").is_some(), "db.shop.orders is kept");
    let mut other = parts(None, Value::Null);
    other.topic = "db.shop.items".into();
    assert_eq!(c.apply(other).expect("ok"), None);
    // A regex that only matches part of the topic does not route (Java's matches()).
    let c = chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "RegexRouter"),
        ("transforms.r.regex", "shop"),
        ("transforms.r.replacement", "x"),
    ]);
    assert_eq!(c.apply(parts(None, Value::Null)).expect("ok").expect("kept").topic, "db.shop.orders");
}

#[test]
fn bad_configs_name_the_key() {
    let errs = errors(&[
        ("transforms", "a,b,c"),
        ("transforms.a.type", "com.example.Nope"),
        ("transforms.b.type", "ExtractField$Value"),
        ("transforms.c.type", "Filter"),
        ("transforms.c.predicate", "missing"),
        ("predicates", "p"),
        ("predicates.p.type", "TopicNameMatches"),
        ("predicates.p.pattern", "(unclosed"),
    ]);
    for key in ["transforms.a.type", "transforms.b.field", "transforms.c.predicate", "predicates.p.pattern"] {
        assert!(errs.iter().any(|e| e.starts_with(key)), "{key} in {errs:?}");
    }
    assert!(errors(&[("transforms", "x")]).iter().any(|e| e.starts_with("transforms.x.type")));
    assert!(errors(&[]).is_empty());
}

#[test]
fn transform_errors_say_which_transform() {
    let c = chain(&[
        ("transforms", "pick"),
        ("transforms.pick.type", "ExtractField$Value"),
        ("transforms.pick.field", "nope"),
    ]);
    let err = c.apply(parts(Some(row_schema()), row(1, "x"))).expect_err("no such field");
    assert!(err.starts_with("transform pick: ") && err.contains("nope"), "{err}");
}

#[test]
fn mask_cast_flatten() {
    let c = chain(&[
        ("transforms", "mask,cast"),
        ("transforms.mask.type", "MaskField$Value"),
        ("transforms.mask.fields", "status"),
        ("transforms.mask.replacement", "***"),
        ("transforms.cast.type", "Cast$Value"),
        ("transforms.cast.spec", "id:string"),
    ]);
    let out = c.apply(parts(Some(row_schema()), row(12, "secret"))).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "status"), Value::String("***".into()));
    assert_eq!(field(&out.value, "id"), Value::String("12".into()));
    assert_eq!(
        out.value_schema.as_ref().and_then(|s| s.field("id")).map(|f| f.schema.schema_type),
        Some(SchemaType::String)
    );
    out.value_schema.as_ref().expect("schema").validate_value(&out.value).expect("fits");
    // Whole-value cast, and masking to the type's empty value.
    let c = chain(&[("transforms", "c"), ("transforms.c.type", "Cast$Value"), ("transforms.c.spec", "int64")]);
    let out = c.apply(parts(Some(Arc::new(Schema::string())), Value::String("42".into()))).expect("ok").expect("kept");
    assert_eq!(out.value, Value::Int64(42));
    let c = chain(&[("transforms", "m"), ("transforms.m.type", "MaskField$Value"), ("transforms.m.fields", "id")]);
    assert_eq!(
        field(&c.apply(parts(Some(row_schema()), row(5, "x"))).expect("ok").expect("kept").value, "id"),
        Value::Int32(0)
    );
    // Flatten nests with the delimiter, structs and maps.
    let (s, v) = envelope("c", None, Some(row(3, "new")));
    let c = chain(&[("transforms", "f"), ("transforms.f.type", "Flatten$Value"), ("transforms.f.delimiter", "_")]);
    let out = c.apply(parts(Some(s), v)).expect("ok").expect("kept");
    let names: Vec<&str> = out.value_schema.as_ref().expect("schema").fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "before_id",
            "before_status",
            "after_id",
            "after_status",
            "source_db",
            "source_table",
            "source_ts_ms",
            "op",
            "ts_ms"
        ]
    );
    assert_eq!(field(&out.value, "after_id"), Value::Int32(3));
    assert_eq!(field(&out.value, "before_id"), Value::Null);
    out.value_schema.as_ref().expect("schema").validate_value(&out.value).expect("fits");
    let nested =
        Value::Map(vec![(Value::String("a".into()), Value::Map(vec![(Value::String("b".into()), Value::Int64(1))]))]);
    let out = c.apply(parts(None, nested)).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "a_b"), Value::Int64(1));
}

#[test]
fn timestamps_and_headers() {
    let schema = Arc::new(Schema::struct_of([("id", Schema::int32()), ("at", Schema::int64())]));
    let v = Value::Struct(Struct {
        schema: schema.clone(),
        values: vec![Value::Int32(1), Value::Int64(1_795_342_530_123)],
    });
    let c = chain(&[
        ("transforms", "ts,route,hdr,from"),
        ("transforms.ts.type", "TimestampConverter$Value"),
        ("transforms.ts.field", "at"),
        ("transforms.ts.target.type", "string"),
        ("transforms.ts.format", "yyyy-MM-dd HH:mm:ss"),
        ("transforms.route.type", "org.apache.kafka.connect.transforms.TimestampRouter"),
        ("transforms.route.topic.format", "${topic}_${timestamp}"),
        ("transforms.route.timestamp.format", "yyyyMM"),
        ("transforms.hdr.type", "InsertHeader"),
        ("transforms.hdr.header", "origin"),
        ("transforms.hdr.value.literal", "sluice"),
        ("transforms.from.type", "HeaderFrom$Value"),
        ("transforms.from.fields", "id"),
        ("transforms.from.headers", "order-id"),
        ("transforms.from.operation", "move"),
    ]);
    let out = c.apply(parts(Some(schema), v)).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "at"), Value::String("2026-11-22 10:15:30".into()));
    assert_eq!(field(&out.value, "id"), Value::Null, "moved to a header");
    assert_eq!(out.value_schema.as_ref().expect("schema").fields.len(), 1);
    assert_eq!(out.topic, "db.shop.orders_202311", "the record timestamp (2023-11-14) picks the topic");
    assert!(out.headers.iter().any(|h| h.key == "origin" && h.value == Value::String("sluice".into())));
    assert!(out.headers.iter().any(|h| h.key == "order-id" && h.value == Value::Int32(1)));
    // And back: a formatted string to a Timestamp.
    let c = chain(&[
        ("transforms", "ts"),
        ("transforms.ts.type", "TimestampConverter$Value"),
        ("transforms.ts.field", "at"),
        ("transforms.ts.target.type", "Timestamp"),
        ("transforms.ts.format", "yyyy-MM-dd HH:mm:ss"),
    ]);
    let out = c.apply(out).expect("ok").expect("kept");
    assert_eq!(field(&out.value, "at"), Value::Timestamp(1_795_342_530_000));
    assert!(errors(&[
        ("transforms", "t"),
        ("transforms.t.type", "TimestampConverter$Value"),
        ("transforms.t.target.type", "string")
    ])
    .iter()
    .any(|e| e.starts_with("transforms.t.format")));
}

#[test]
fn a_routed_sink_record_keeps_the_partition_its_offset_belongs_to() {
    let record = sluice_api::SinkRecord {
        topic: "db.shop.orders".into(),
        original_topic: None,
        kafka_partition: 2,
        kafka_offset: 7,
        timestamp: None,
        timestamp_type: sluice_api::TimestampType::CreateTime,
        key_schema: None,
        key: Value::Null,
        value_schema: None,
        value: Value::Null,
        headers: Vec::new(),
    };
    let c = chain(&[
        ("transforms", "r"),
        ("transforms.r.type", "RegexRouter"),
        ("transforms.r.regex", ".*\\.(.*)"),
        ("transforms.r.replacement", "$1"),
    ]);
    let (p, original) = Parts::of_sink(record);
    let routed = c.apply(p).expect("ok").expect("kept").into_sink(original);
    assert_eq!(routed.topic, "orders");
    assert_eq!(routed.topic_partition(), sluice_api::TopicPartition::new("db.shop.orders", 2));
}

/// The listed classes are the ones the chain builds: none is unknown to it.
#[test]
fn listed_plugin_classes_are_all_known() {
    for class in super::TRANSFORM_CLASSES {
        let errs = errors(&[("transforms", "t"), ("transforms.t.type", class)]);
        assert!(!errs.iter().any(|e| e.contains("could not be found")), "{class}: {errs:?}");
    }
    for class in super::PREDICATE_CLASSES {
        let errs = errors(&[("predicates", "p"), ("predicates.p.type", class)]);
        assert!(!errs.iter().any(|e| e.contains("could not be found")), "{class}: {errs:?}");
    }
    let errs = errors(&[("transforms", "t"), ("transforms.t.type", "org.apache.kafka.connect.transforms.Nope")]);
    assert!(errs.iter().any(|e| e.contains("could not be found")), "the check can fail: {errs:?}");
}
