//! Connect schemas and values as Arrow schemas and arrays (which the Parquet writer encodes).
//!
//! | Connect | Arrow / Parquet |
//! |---|---|
//! | int8/16/32/64, float, double, boolean | the same width |
//! | string | Utf8 (STRING) |
//! | bytes | Binary |
//! | Decimal (scale) | Decimal128(precision from `connect.decimal.precision`, else 38; scale) |
//! | Date | Date32 (DATE) |
//! | Time | Time32 milliseconds (TIME(MILLIS)) |
//! | Timestamp | Timestamp milliseconds UTC (TIMESTAMP(MILLIS, UTC)) |
//! | array | List (element field `element`) |
//! | map | Map (`key`, `value`) |
//! | struct | Struct |
//!
//! A value that is not a struct becomes one column named `value`. A record without a value
//! schema (schemaless JSON) becomes one `value` column of JSON text: a schema inferred per file
//! would differ between files whenever a field is absent or null, which breaks readers that scan
//! many files at once; the JSON column is stable and readers can parse it (DuckDB `json_extract`,
//! Spark `from_json`).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, ListArray, MapArray, RecordBatch, StringArray, StructArray,
    Time32MillisecondArray, TimestampMillisecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema as ArrowSchema, TimeUnit};
use sluice_api::schema::logical;
use sluice_api::{Schema, SchemaType, Value};

static NULL: Value = Value::Null;

/// How a record's value becomes a row.
#[derive(Debug, Clone)]
pub enum RowShape {
    /// A struct schema: one column per field.
    Struct(Arc<Schema>),
    /// Any other schema: one column `value`.
    Single(Arc<Schema>),
    /// No schema: one `value` column of JSON text.
    Json,
}

impl RowShape {
    /// The shape of values with this schema (`None`: schemaless).
    pub fn of(schema: Option<&Arc<Schema>>) -> RowShape {
        match schema {
            Some(s) if s.schema_type == SchemaType::Struct => RowShape::Struct(s.clone()),
            Some(s) => RowShape::Single(s.clone()),
            None => RowShape::Json,
        }
    }

    /// Whether two shapes write the same columns (a file holds one shape).
    pub fn same(&self, other: &RowShape) -> bool {
        match (self, other) {
            (RowShape::Struct(a), RowShape::Struct(b)) | (RowShape::Single(a), RowShape::Single(b)) => {
                Arc::ptr_eq(a, b) || a == b
            }
            (RowShape::Json, RowShape::Json) => true,
            _ => false,
        }
    }

    /// The Arrow schema of the rows.
    pub fn arrow_schema(&self) -> Result<Arc<ArrowSchema>, String> {
        let fields: Vec<Field> = match self {
            RowShape::Struct(s) => s.fields.iter().map(|f| field_of(&f.name, &f.schema)).collect::<Result<_, _>>()?,
            RowShape::Single(s) => vec![field_of("value", s)?],
            RowShape::Json => vec![Field::new("value", DataType::Utf8, true)],
        };
        Ok(Arc::new(ArrowSchema::new(fields)))
    }

    /// The rows of `values` (each of this shape) as a batch.
    pub fn batch(&self, schema: &Arc<ArrowSchema>, values: &[&Value]) -> Result<RecordBatch, String> {
        let columns: Vec<ArrayRef> = match self {
            RowShape::Struct(s) => {
                let mut cols = Vec::with_capacity(s.fields.len());
                for (i, f) in s.fields.iter().enumerate() {
                    let child: Vec<&Value> = values
                        .iter()
                        .map(|v| match v {
                            Value::Struct(st) => st.values.get(i).unwrap_or(&NULL),
                            _ => &NULL,
                        })
                        .collect();
                    cols.push(build(&f.schema, &child, &f.name)?);
                }
                cols
            }
            RowShape::Single(s) => vec![build(s, values, "value")?],
            RowShape::Json => {
                let texts: Vec<Option<String>> = values
                    .iter()
                    .map(|v| match v {
                        Value::Null => None,
                        Value::Json(t) => Some(t.clone()),
                        other => Some(other.to_json().to_string()),
                    })
                    .collect();
                vec![Arc::new(StringArray::from(texts))]
            }
        };
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
    }
}

/// The Arrow field of a Connect schema.
pub fn field_of(name: &str, s: &Schema) -> Result<Field, String> {
    Ok(Field::new(name, data_type(s)?, s.optional))
}

fn decimal_precision(s: &Schema) -> u8 {
    s.param("connect.decimal.precision")
        .and_then(|p| p.parse::<u8>().ok())
        .filter(|p| (1..=38).contains(p))
        .unwrap_or(38)
}

fn data_type(s: &Schema) -> Result<DataType, String> {
    Ok(match s.schema_type {
        SchemaType::Int8 => DataType::Int8,
        SchemaType::Int16 => DataType::Int16,
        SchemaType::Int32 if s.is_logical(logical::DATE) => DataType::Date32,
        SchemaType::Int32 if s.is_logical(logical::TIME) => DataType::Time32(TimeUnit::Millisecond),
        SchemaType::Int32 => DataType::Int32,
        SchemaType::Int64 if s.is_logical(logical::TIMESTAMP) => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        }
        SchemaType::Int64 => DataType::Int64,
        SchemaType::Float32 => DataType::Float32,
        SchemaType::Float64 => DataType::Float64,
        SchemaType::Boolean => DataType::Boolean,
        SchemaType::String => DataType::Utf8,
        SchemaType::Bytes => match s.decimal_scale() {
            Some(scale) if (0..=38).contains(&scale) => DataType::Decimal128(decimal_precision(s), scale as i8),
            Some(scale) => return Err(format!("Decimal scale {scale} is outside 0..=38")),
            None => DataType::Binary,
        },
        SchemaType::Array => {
            let item = s.value_schema.as_deref().ok_or("array schema without an element schema")?;
            DataType::List(Arc::new(field_of("element", item)?))
        }
        SchemaType::Map => {
            let k = s.key_schema.as_deref().ok_or("map schema without a key schema")?;
            let v = s.value_schema.as_deref().ok_or("map schema without a value schema")?;
            let entries = Fields::from(vec![Field::new("key", data_type(k)?, false), field_of("value", v)?]);
            DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(entries), false)), false)
        }
        SchemaType::Struct => DataType::Struct(
            s.fields.iter().map(|f| field_of(&f.name, &f.schema)).collect::<Result<Vec<_>, _>>()?.into(),
        ),
    })
}

fn nulls_of(values: &[&Value]) -> Option<NullBuffer> {
    values.iter().any(|v| matches!(v, Value::Null)).then(|| values.iter().map(|v| !matches!(v, Value::Null)).collect())
}

fn mismatch(path: &str, s: &Schema, v: &Value) -> String {
    format!("{path}: a {} value does not match its {} schema", v.type_name(), s.schema_type.name())
}

macro_rules! prim {
    ($arr:ty, $s:expr, $values:expr, $path:expr, $pat:pat => $out:expr) => {{
        let mut out = Vec::with_capacity($values.len());
        for v in $values {
            out.push(match v {
                Value::Null => None,
                $pat => Some($out),
                other => return Err(mismatch($path, $s, other)),
            });
        }
        Arc::new(<$arr>::from(out)) as ArrayRef
    }};
}

/// One column of `values` (all of schema `s`; nulls allowed where the schema is optional).
fn build(s: &Schema, values: &[&Value], path: &str) -> Result<ArrayRef, String> {
    Ok(match data_type(s)? {
        DataType::Int8 => prim!(Int8Array, s, values, path, Value::Int8(n) => *n),
        DataType::Int16 => prim!(Int16Array, s, values, path, Value::Int16(n) => *n),
        DataType::Int32 => prim!(Int32Array, s, values, path, Value::Int32(n) => *n),
        DataType::Date32 => prim!(Date32Array, s, values, path, Value::Date(n) | Value::Int32(n) => *n),
        DataType::Time32(_) => prim!(Time32MillisecondArray, s, values, path, Value::Time(n) | Value::Int32(n) => *n),
        DataType::Int64 => prim!(Int64Array, s, values, path, Value::Int64(n) => *n),
        DataType::Timestamp(..) => Arc::new(
            {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    out.push(match v {
                        Value::Null => None,
                        Value::Timestamp(n) | Value::Int64(n) => Some(*n),
                        other => return Err(mismatch(path, s, other)),
                    });
                }
                TimestampMillisecondArray::from(out)
            }
            .with_timezone("UTC"),
        ),
        DataType::Float32 => prim!(Float32Array, s, values, path, Value::Float32(n) => *n),
        DataType::Float64 => prim!(Float64Array, s, values, path, Value::Float64(n) => *n),
        DataType::Boolean => prim!(BooleanArray, s, values, path, Value::Boolean(b) => *b),
        DataType::Utf8 => {
            let mut out: Vec<Option<&str>> = Vec::with_capacity(values.len());
            for v in values {
                out.push(match v {
                    Value::Null => None,
                    Value::String(t) | Value::Json(t) => Some(t.as_str()),
                    other => return Err(mismatch(path, s, other)),
                });
            }
            Arc::new(StringArray::from(out))
        }
        DataType::Binary => {
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(values.len());
            for v in values {
                out.push(match v {
                    Value::Null => None,
                    Value::Bytes(b) => Some(b.as_slice()),
                    other => return Err(mismatch(path, s, other)),
                });
            }
            Arc::new(BinaryArray::from(out))
        }
        DataType::Decimal128(precision, scale) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                out.push(match v {
                    Value::Null => None,
                    Value::Decimal(d) if d.scale == i32::from(scale) => Some(
                        unscaled_i128(&d.unscaled)
                            .ok_or_else(|| format!("{path}: decimal {d} has more than 38 digits"))?,
                    ),
                    Value::Decimal(d) => {
                        return Err(format!("{path}: decimal {d} has scale {}, its schema {scale}", d.scale))
                    }
                    other => return Err(mismatch(path, s, other)),
                });
            }
            Arc::new(
                Decimal128Array::from(out)
                    .with_precision_and_scale(precision, scale)
                    .map_err(|e| format!("{path}: {e}"))?,
            )
        }
        DataType::List(item_field) => {
            let item = s.value_schema.as_deref().ok_or("array schema without an element schema")?;
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut items: Vec<&Value> = Vec::new();
            for v in values {
                match v {
                    Value::Null => {}
                    Value::Array(xs) => items.extend(xs.iter()),
                    other => return Err(mismatch(path, s, other)),
                }
                offsets.push(i32::try_from(items.len()).map_err(|_| format!("{path}: array too large"))?);
            }
            let child = build(item, &items, &format!("{path}[]"))?;
            Arc::new(
                ListArray::try_new(item_field, OffsetBuffer::new(offsets.into()), child, nulls_of(values))
                    .map_err(|e| format!("{path}: {e}"))?,
            )
        }
        DataType::Map(entries_field, _) => {
            let (k, vs) = (
                s.key_schema.as_deref().ok_or("map schema without a key schema")?,
                s.value_schema.as_deref().ok_or("map schema without a value schema")?,
            );
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let (mut keys, mut vals): (Vec<&Value>, Vec<&Value>) = (Vec::new(), Vec::new());
            for v in values {
                match v {
                    Value::Null => {}
                    Value::Map(entries) => {
                        for (ek, ev) in entries {
                            if matches!(ek, Value::Null) {
                                return Err(format!("{path}: a map key is null"));
                            }
                            keys.push(ek);
                            vals.push(ev);
                        }
                    }
                    other => return Err(mismatch(path, s, other)),
                }
                offsets.push(i32::try_from(keys.len()).map_err(|_| format!("{path}: map too large"))?);
            }
            let DataType::Struct(entry_fields) = entries_field.data_type().clone() else {
                return Err(format!("{path}: bad map type"));
            };
            let key_col = build(k, &keys, &format!("{path}.key"))?;
            let val_col = build(vs, &vals, &format!("{path}.value"))?;
            let entries =
                StructArray::try_new(entry_fields, vec![key_col, val_col], None).map_err(|e| format!("{path}: {e}"))?;
            Arc::new(
                MapArray::try_new(entries_field, OffsetBuffer::new(offsets.into()), entries, nulls_of(values), false)
                    .map_err(|e| format!("{path}: {e}"))?,
            )
        }
        DataType::Struct(fields) => {
            let mut cols = Vec::with_capacity(s.fields.len());
            for (i, f) in s.fields.iter().enumerate() {
                let mut child = Vec::with_capacity(values.len());
                for v in values {
                    child.push(match v {
                        Value::Struct(st) => st.values.get(i).unwrap_or(&NULL),
                        Value::Null => &NULL,
                        other => return Err(mismatch(path, s, other)),
                    });
                }
                cols.push(build(&f.schema, &child, &format!("{path}.{}", f.name))?);
            }
            Arc::new(StructArray::try_new(fields, cols, nulls_of(values)).map_err(|e| format!("{path}: {e}"))?)
        }
        other => return Err(format!("{path}: unsupported type {other}")),
    })
}

/// Big-endian two's complement to i128 (None when longer than 16 bytes).
fn unscaled_i128(bytes: &[u8]) -> Option<i128> {
    if bytes.len() > 16 {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xffu8; 16] } else { [0u8; 16] };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Decimal, Struct};

    #[test]
    fn nested_struct_list_map_and_logical_types() {
        let inner = Schema::struct_of([("sku", Schema::string()), ("qty", Schema::int32())]);
        let schema = Arc::new(Schema::struct_of([
            ("id", Schema::int64()),
            ("note", Schema::string().optional()),
            ("price", Schema::decimal(2)),
            ("day", Schema::date()),
            ("at", Schema::timestamp()),
            ("items", Schema::array(inner.clone())),
            ("tags", Schema::map(Schema::string(), Schema::int32()).optional()),
            ("blob", Schema::bytes().optional()),
        ]));
        let item = |sku: &str, qty| {
            Value::Struct(Struct {
                schema: Arc::new(inner.clone()),
                values: vec![Value::String(sku.into()), Value::Int32(qty)],
            })
        };
        let row = |id, note: Option<&str>, tags: Value| {
            Value::Struct(Struct {
                schema: schema.clone(),
                values: vec![
                    Value::Int64(id),
                    note.map(|n| Value::String(n.into())).unwrap_or(Value::Null),
                    Value::Decimal(Decimal::from_i128(-12345, 2)),
                    Value::Date(19_000),
                    Value::Timestamp(1_700_000_000_000),
                    Value::Array(vec![item("a", 1), item("b", 2)]),
                    tags,
                    Value::Null,
                ],
            })
        };
        let shape = RowShape::of(Some(&schema));
        let a = shape.arrow_schema().expect("schema");
        assert_eq!(a.field(2).data_type(), &DataType::Decimal128(38, 2));
        let rows = [
            row(1, Some("x"), Value::Map(vec![(Value::String("k".into()), Value::Int32(1))])),
            row(2, None, Value::Null),
        ];
        let refs: Vec<&Value> = rows.iter().collect();
        let b = shape.batch(&a, &refs).expect("batch");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(1).null_count(), 1);
        assert_eq!(b.column(6).null_count(), 1);
        let d = b.column(2).as_any().downcast_ref::<Decimal128Array>().expect("decimal");
        assert_eq!(d.value(0), -12345);

        // A value of the wrong type is an error naming the column.
        let bad = Value::Struct(Struct { schema: schema.clone(), values: vec![Value::String("no".into()); 8] });
        let err = shape.batch(&a, &[&bad]).expect_err("mismatch");
        assert!(err.starts_with("id:"), "{err}");
    }

    #[test]
    fn schemaless_is_one_json_column() {
        let shape = RowShape::of(None);
        let a = shape.arrow_schema().expect("schema");
        let v = Value::Json(r#"{"a":1}"#.into());
        let b = shape.batch(&a, &[&v]).expect("batch");
        let col = b.column(0).as_any().downcast_ref::<StringArray>().expect("utf8");
        assert_eq!(col.value(0), r#"{"a":1}"#);
    }

    #[test]
    fn unscaled_bytes() {
        assert_eq!(unscaled_i128(&[0xff]), Some(-1));
        assert_eq!(unscaled_i128(&[0x01, 0x00]), Some(256));
        assert_eq!(unscaled_i128(&[0; 17]), None);
    }
}
