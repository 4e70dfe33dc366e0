//! Kafka's value-reshaping transforms: `MaskField`, `Cast`, `Flatten`, `TimestampConverter`
//! (each `$Key`/`$Value`), and the routing/header ones: `TimestampRouter`, `InsertHeader`,
//! `HeaderFrom`.

use std::sync::Arc;

use sluice_api::time::DatePattern;
use sluice_api::{ConfigErrors, Header, Schema, SchemaRef, SchemaType, Struct, Value};

use super::kafka::Side;
use super::{struct_schema, Parts, Props, Transform};

/// Builds one of these transforms by simple name (`base` without `$Key`/`$Value`).
pub(super) fn create(
    base: &str,
    side: Option<Side>,
    p: &Props<'_>,
) -> Result<Option<Box<dyn Transform>>, ConfigErrors> {
    Ok(Some(match (base, side) {
        ("MaskField", Some(side)) => {
            let fields = p.list("fields");
            if fields.is_empty() {
                return Err(p.invalid("fields", "", "at least one field is required"));
            }
            Box::new(MaskField { side, fields, replacement: p.get("replacement").map(String::from) })
        }
        ("Cast", Some(side)) => Box::new(Cast::configure(side, p)?),
        ("Flatten", Some(side)) => Box::new(Flatten { side, delimiter: p.get("delimiter").unwrap_or(".").to_string() }),
        ("TimestampConverter", Some(side)) => Box::new(TimestampConverter::configure(side, p)?),
        ("HeaderFrom", Some(side)) => {
            let (fields, headers) = (p.list("fields"), p.list("headers"));
            if fields.is_empty() || fields.len() != headers.len() {
                return Err(p.invalid(
                    "headers",
                    &headers.join(","),
                    "needs exactly one header name per field in 'fields'",
                ));
            }
            let copy = match p.get("operation").map(str::to_ascii_lowercase).as_deref() {
                Some("copy") => true,
                Some("move") => false,
                other => return Err(p.invalid("operation", other.unwrap_or(""), "one of move, copy")),
            };
            Box::new(HeaderFrom { side, pairs: fields.into_iter().zip(headers).collect(), copy })
        }
        ("TimestampRouter", None) => {
            let ts = p.get("timestamp.format").unwrap_or("yyyyMMdd");
            Box::new(TimestampRouter {
                topic_format: p.get("topic.format").unwrap_or("${topic}-${timestamp}").to_string(),
                pattern: DatePattern::parse(ts).map_err(|e| p.invalid("timestamp.format", ts, &e))?,
            })
        }
        ("InsertHeader", None) => Box::new(InsertHeader {
            header: p.required("header")?.to_string(),
            value: p.required("value.literal")?.to_string(),
        }),
        _ => return Ok(None),
    }))
}

fn map_struct(
    value: Value,
    schema: Option<SchemaRef>,
    f: impl Fn(&str, &SchemaRef, Value) -> Result<(SchemaRef, Value), String>,
) -> Result<(Option<SchemaRef>, Value), String> {
    match value {
        Value::Struct(st) => {
            let base = schema.unwrap_or_else(|| st.schema.clone());
            let mut fields = Vec::with_capacity(base.fields.len());
            let mut values = Vec::with_capacity(base.fields.len());
            for (fd, v) in base.fields.iter().zip(st.values) {
                let (s, v) = f(&fd.name, &fd.schema, v)?;
                fields.push((fd.name.clone(), s));
                values.push(v);
            }
            let schema = Arc::new(struct_schema(Some(&base), fields));
            Ok((Some(schema.clone()), Value::Struct(Struct { schema, values })))
        }
        Value::Map(entries) => {
            let any = Arc::new(Schema::string().optional());
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let name = k.as_str().unwrap_or("").to_string();
                let (_, v) = f(&name, &any, v)?;
                out.push((k, v));
            }
            Ok((None, Value::Map(out)))
        }
        other => Ok((schema, other)),
    }
}

/// `MaskField`: listed fields become their type's empty value (0, "", false) or `replacement`.
struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    fn mask(&self, v: &Value) -> Result<Value, String> {
        let r = self.replacement.as_deref();
        let num = |what: &str| -> Result<f64, String> {
            r.map_or(Ok(0.0), |s| s.parse::<f64>().map_err(|_| format!("MaskField: replacement {s:?} is not a {what}")))
        };
        Ok(match v {
            Value::Null => Value::Null,
            Value::String(_) => Value::String(r.unwrap_or("").to_string()),
            Value::Int8(_) => Value::Int8(num("number")? as i8),
            Value::Int16(_) => Value::Int16(num("number")? as i16),
            Value::Int32(_) => Value::Int32(num("number")? as i32),
            Value::Int64(_) => Value::Int64(num("number")? as i64),
            Value::Float32(_) => Value::Float32(num("number")? as f32),
            Value::Float64(_) => Value::Float64(num("number")?),
            Value::Boolean(_) => Value::Boolean(false),
            Value::Bytes(_) => Value::Bytes(Vec::new()),
            Value::Array(_) => Value::Array(Vec::new()),
            Value::Map(_) => Value::Map(Vec::new()),
            other => return Err(format!("MaskField cannot mask a {}", other.type_name())),
        })
    }
}

impl Transform for MaskField {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = map_struct(value, schema, |name, s, v| {
            if self.fields.iter().any(|f| f == name) {
                Ok((s.clone(), self.mask(&v)?))
            } else {
                Ok((s.clone(), v))
            }
        })?;
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// `Cast`: `spec` is `type` (the whole key/value) or `field:type,...`.
struct Cast {
    side: Side,
    whole: Option<SchemaType>,
    fields: Vec<(String, SchemaType)>,
}

fn cast_type(s: &str) -> Option<SchemaType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "int8" => Some(SchemaType::Int8),
        "int16" => Some(SchemaType::Int16),
        "int32" => Some(SchemaType::Int32),
        "int64" => Some(SchemaType::Int64),
        "float32" => Some(SchemaType::Float32),
        "float64" => Some(SchemaType::Float64),
        "boolean" => Some(SchemaType::Boolean),
        "string" => Some(SchemaType::String),
        _ => None,
    }
}

impl Cast {
    fn configure(side: Side, p: &Props<'_>) -> Result<Cast, ConfigErrors> {
        let spec = p.required("spec")?;
        let bad = |s: &str| {
            p.invalid(
                "spec",
                spec,
                &format!("{s} is not a type Cast supports (int8..int64, float32, float64, boolean, string)"),
            )
        };
        if !spec.contains(':') {
            return Ok(Cast { side, whole: Some(cast_type(spec).ok_or_else(|| bad(spec))?), fields: Vec::new() });
        }
        let mut fields = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (f, t) = part.split_once(':').ok_or_else(|| bad(part))?;
            fields.push((f.trim().to_string(), cast_type(t).ok_or_else(|| bad(t))?));
        }
        Ok(Cast { side, whole: None, fields })
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    Some(match v {
        Value::Int8(x) => f64::from(*x),
        Value::Int16(x) => f64::from(*x),
        Value::Int32(x) => f64::from(*x),
        Value::Int64(x) => *x as f64,
        Value::Float32(x) => f64::from(*x),
        Value::Float64(x) => *x,
        Value::Boolean(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    })
}

fn cast_value(v: Value, to: SchemaType) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let n = || as_f64(&v).ok_or_else(|| format!("Cast: {} {v} cannot become {}", v.type_name(), to.name()));
    Ok(match to {
        SchemaType::String => Value::String(v.to_string()),
        SchemaType::Boolean => Value::Boolean(match &v {
            Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
            _ => n()? != 0.0,
        }),
        SchemaType::Int8 => Value::Int8(n()? as i8),
        SchemaType::Int16 => Value::Int16(n()? as i16),
        SchemaType::Int32 => Value::Int32(n()? as i32),
        SchemaType::Int64 => match &v {
            Value::String(s) => Value::Int64(s.trim().parse().map_err(|_| format!("Cast: {s:?} is not an int64"))?),
            _ => Value::Int64(n()? as i64),
        },
        SchemaType::Float32 => Value::Float32(n()? as f32),
        _ => Value::Float64(n()?),
    })
}

fn cast_schema(s: &Schema, to: SchemaType) -> SchemaRef {
    let mut out = Schema::new(to);
    out.optional = s.optional;
    Arc::new(out)
}

impl Transform for Cast {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match self.whole {
            Some(to) => (schema.map(|s| cast_schema(&s, to)), cast_value(value, to)?),
            None => map_struct(value, schema, |name, s, v| match self.fields.iter().find(|(f, _)| f == name) {
                Some((_, to)) => Ok((cast_schema(s, *to), cast_value(v, *to)?)),
                None => Ok((s.clone(), v)),
            })?,
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// `Flatten`: nested structs (or maps) become top-level fields joined by `delimiter`.
struct Flatten {
    side: Side,
    delimiter: String,
}

impl Flatten {
    fn flatten_struct(
        &self,
        prefix: &str,
        schema: &Schema,
        values: Vec<Value>,
        out: &mut Vec<(String, SchemaRef, Value)>,
    ) {
        for (f, v) in schema.fields.iter().zip(values) {
            let name = if prefix.is_empty() { f.name.clone() } else { format!("{prefix}{}{}", self.delimiter, f.name) };
            match v {
                Value::Struct(inner) if f.schema.schema_type == SchemaType::Struct => {
                    let s = f.schema.clone();
                    self.flatten_struct(&name, &s, inner.values, out)
                }
                Value::Null if f.schema.schema_type == SchemaType::Struct => {
                    let nulls = vec![Value::Null; f.schema.fields.len()];
                    let s = Arc::new(Schema {
                        fields: f
                            .schema
                            .fields
                            .iter()
                            .map(|fd| sluice_api::Field {
                                schema: Arc::new(Schema { optional: true, ..(*fd.schema).clone() }),
                                ..fd.clone()
                            })
                            .collect(),
                        ..(*f.schema).clone()
                    });
                    self.flatten_struct(&name, &s, nulls, out)
                }
                v => out.push((name, f.schema.clone(), v)),
            }
        }
    }

    fn flatten_map(&self, prefix: &str, entries: Vec<(Value, Value)>, out: &mut Vec<(Value, Value)>) {
        for (k, v) in entries {
            let key = k.as_str().map(String::from).unwrap_or_else(|| k.to_string());
            let name = if prefix.is_empty() { key } else { format!("{prefix}{}{key}", self.delimiter) };
            match v {
                Value::Map(inner) => self.flatten_map(&name, inner, out),
                v => out.push((Value::String(name), v)),
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        match value {
            Value::Struct(st) => {
                let base = schema.unwrap_or_else(|| st.schema.clone());
                let mut flat = Vec::new();
                self.flatten_struct("", &base, st.values, &mut flat);
                let (fields, values): (Vec<_>, Vec<_>) = flat.into_iter().map(|(n, s, v)| ((n, s), v)).unzip();
                let schema = Arc::new(struct_schema(Some(&base), fields));
                self.side.put(&mut r, Some(schema.clone()), Value::Struct(Struct { schema, values }));
            }
            Value::Map(entries) => {
                let mut flat = Vec::new();
                self.flatten_map("", entries, &mut flat);
                self.side.put(&mut r, None, Value::Map(flat));
            }
            other => self.side.put(&mut r, schema, other),
        }
        Ok(Some(r))
    }
}

/// `TimestampConverter`: `field` (empty: the whole key/value), `target.type` (string, unix, Date,
/// Time, Timestamp), `format` for strings (SimpleDateFormat, UTC), `unix.precision`.
struct TimestampConverter {
    side: Side,
    field: Option<String>,
    target: String,
    pattern: Option<DatePattern>,
    unix_scale: i64,
}

impl TimestampConverter {
    fn configure(side: Side, p: &Props<'_>) -> Result<TimestampConverter, ConfigErrors> {
        let target = p.required("target.type")?.to_string();
        if !["string", "unix", "date", "time", "timestamp"].contains(&target.to_ascii_lowercase().as_str()) {
            return Err(p.invalid("target.type", &target, "one of string, unix, Date, Time, Timestamp"));
        }
        let pattern = match p.get("format") {
            Some(f) => Some(DatePattern::parse(f).map_err(|e| p.invalid("format", f, &e))?),
            None if target.eq_ignore_ascii_case("string") => {
                return Err(p.invalid("format", "", "TimestampConverter requires format when target.type is string"))
            }
            None => None,
        };
        let unix_scale = match p.get("unix.precision").unwrap_or("milliseconds") {
            "seconds" => 1000,
            "milliseconds" => 1,
            other => return Err(p.invalid("unix.precision", other, "seconds or milliseconds are supported")),
        };
        Ok(TimestampConverter {
            side,
            field: p.get("field").map(String::from),
            target: target.to_ascii_lowercase(),
            pattern,
            unix_scale,
        })
    }

    fn millis_of(&self, v: &Value) -> Result<i64, String> {
        match v {
            Value::Timestamp(t) => Ok(*t),
            Value::Date(d) => Ok(i64::from(*d) * 86_400_000),
            Value::Time(t) => Ok(i64::from(*t)),
            Value::Int64(n) => Ok(n * self.unix_scale),
            Value::Int32(n) => Ok(i64::from(*n) * self.unix_scale),
            Value::String(s) => match &self.pattern {
                Some(p) => p.parse_millis(s),
                None => Err("TimestampConverter: a string input needs format".to_string()),
            },
            other => Err(format!("TimestampConverter cannot read a {}", other.type_name())),
        }
    }

    fn convert(&self, v: Value, optional: bool) -> Result<(SchemaRef, Value), String> {
        let opt = |s: Schema| Arc::new(if optional { s.optional() } else { s });
        let t = if v.is_null() { None } else { Some(self.millis_of(&v)?) };
        Ok(match self.target.as_str() {
            "string" => (
                opt(Schema::string()),
                t.map_or(Value::Null, |t| {
                    Value::String(self.pattern.as_ref().map_or_else(|| t.to_string(), |p| p.format(t)))
                }),
            ),
            "unix" => (opt(Schema::int64()), t.map_or(Value::Null, |t| Value::Int64(t / self.unix_scale))),
            "date" => (opt(Schema::date()), t.map_or(Value::Null, |t| Value::Date(t.div_euclid(86_400_000) as i32))),
            "time" => (opt(Schema::time()), t.map_or(Value::Null, |t| Value::Time(t.rem_euclid(86_400_000) as i32))),
            _ => (opt(Schema::timestamp()), t.map_or(Value::Null, Value::Timestamp)),
        })
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) =
            match &self.field {
                None => {
                    let (s, v) = self.convert(value, schema.as_ref().is_some_and(|s| s.optional))?;
                    (schema.map(|_| s), v)
                }
                Some(field) => map_struct(value, schema, |name, s, v| {
                    if name == field {
                        self.convert(v, s.optional)
                    } else {
                        Ok((s.clone(), v))
                    }
                })?,
            };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// `TimestampRouter`: topic from `topic.format` with `${topic}` and `${timestamp}` (the record
/// time in `timestamp.format`).
struct TimestampRouter {
    topic_format: String,
    pattern: DatePattern,
}

impl Transform for TimestampRouter {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let t = r.timestamp.ok_or("TimestampRouter: the record has no timestamp")?;
        r.topic = self.topic_format.replace("${topic}", &r.topic).replace("${timestamp}", &self.pattern.format(t));
        Ok(Some(r))
    }
}

/// `InsertHeader`: adds `header` with the string `value.literal`.
struct InsertHeader {
    header: String,
    value: String,
}

impl Transform for InsertHeader {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        r.headers.push(Header::string(self.header.clone(), self.value.clone()));
        Ok(Some(r))
    }
}

/// `HeaderFrom`: copies or moves fields into headers.
struct HeaderFrom {
    side: Side,
    pairs: Vec<(String, String)>,
    copy: bool,
}

impl Transform for HeaderFrom {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        for (field, header) in &self.pairs {
            let found = match &value {
                Value::Struct(st) => {
                    st.schema.field(field).map(|f| (Some(f.schema.clone()), st.values[f.index].clone()))
                }
                Value::Map(m) => m.iter().find(|(k, _)| k.as_str() == Some(field)).map(|(_, v)| (None, v.clone())),
                _ => None,
            };
            if let Some((schema, v)) = found {
                r.headers.push(Header { key: header.clone(), schema, value: v });
            }
        }
        let (schema, value) = if self.copy {
            (schema, value)
        } else {
            match value {
                Value::Struct(st) => {
                    let base = schema.unwrap_or_else(|| st.schema.clone());
                    let (fields, values): (Vec<_>, Vec<_>) = base
                        .fields
                        .iter()
                        .zip(st.values)
                        .filter(|(f, _)| !self.pairs.iter().any(|(p, _)| *p == f.name))
                        .map(|(f, v)| ((f.name.clone(), f.schema.clone()), v))
                        .unzip();
                    let schema = Arc::new(struct_schema(Some(&base), fields));
                    (Some(schema.clone()), Value::Struct(Struct { schema, values }))
                }
                Value::Map(m) => (
                    None,
                    Value::Map(
                        m.into_iter().filter(|(k, _)| !self.pairs.iter().any(|(p, _)| k.as_str() == Some(p))).collect(),
                    ),
                ),
                other => (schema, other),
            }
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}
