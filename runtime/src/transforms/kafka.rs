//! Kafka Connect's own transforms and predicates (`org.apache.kafka.connect.transforms.*`).

use std::sync::Arc;

use sluice_api::{ConfigErrors, Schema, SchemaRef, Struct, Value};

use super::{struct_schema, Parts, Predicate, Props, Transform};

/// `$Key` or `$Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Key,
    Value,
}

impl Side {
    fn of(name: &str) -> Option<(&str, Side)> {
        if let Some(base) = name.strip_suffix("$Key") {
            Some((base, Side::Key))
        } else {
            name.strip_suffix("$Value").map(|base| (base, Side::Value))
        }
    }

    pub(super) fn take(self, r: &mut Parts) -> (Option<SchemaRef>, Value) {
        match self {
            Side::Key => (r.key_schema.take(), std::mem::replace(&mut r.key, Value::Null)),
            Side::Value => (r.value_schema.take(), std::mem::replace(&mut r.value, Value::Null)),
        }
    }

    pub(super) fn put(self, r: &mut Parts, schema: Option<SchemaRef>, value: Value) {
        match self {
            Side::Key => {
                r.key_schema = schema;
                r.key = value;
            }
            Side::Value => {
                r.value_schema = schema;
                r.value = value;
            }
        }
    }
}

/// Builds a Kafka transform by simple class name; `None` when the name is not one of them.
pub(super) fn create(name: &str, p: &Props<'_>) -> Result<Option<Box<dyn Transform>>, ConfigErrors> {
    let (base, side) = match Side::of(name) {
        Some((base, side)) => (base, Some(side)),
        None => (name, None),
    };
    if let Some(t) = super::reshape::create(base, side, p)? {
        return Ok(Some(t));
    }
    if let Some((base, side)) = Side::of(name) {
        let t: Box<dyn Transform> = match base {
            "InsertField" => Box::new(InsertField::configure(side, p)?),
            "ReplaceField" => Box::new(ReplaceField::configure(side, p)?),
            "ExtractField" => Box::new(ExtractField { side, field: p.required("field")?.to_string() }),
            "HoistField" => Box::new(HoistField { side, field: p.required("field")?.to_string() }),
            _ => return Ok(None),
        };
        return Ok(Some(t));
    }
    Ok(Some(match name {
        "ValueToKey" => {
            let fields = p.list("fields");
            if fields.is_empty() {
                return Err(p.invalid("fields", "", "at least one field is required"));
            }
            Box::new(ValueToKey { fields })
        }
        "RegexRouter" => Box::new(RegexRouter {
            regex: p.regex("regex")?,
            replacement: java_replacement(p.required("replacement")?),
        }),
        "Filter" => Box::new(Filter),
        "DropHeaders" => Box::new(DropHeaders { names: p.list("headers") }),
        _ => return Ok(None),
    }))
}

/// Java's `$1` group references to the `regex` crate's `${1}`.
fn java_replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

fn require_struct_or_map(what: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Struct(_) | Value::Map(_) => Ok(()),
        other => Err(format!("{what} requires a struct or a map, got {}", other.type_name())),
    }
}

/// Fields of a struct as (name, schema, value), or entries of a map (schemaless).
fn field_of<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Struct(s) => s.get(name),
        Value::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v),
        _ => None,
    }
}

/// `InsertField$Key|$Value`: `topic.field`, `partition.field`, `offset.field`, `timestamp.field`,
/// `static.field` + `static.value`; a trailing `!` makes the field required, `?` optional (default).
struct InsertField {
    side: Side,
    topic: Option<(String, bool)>,
    partition: Option<(String, bool)>,
    offset: Option<(String, bool)>,
    timestamp: Option<(String, bool)>,
    static_field: Option<(String, bool, String)>,
}

fn field_spec(p: &Props<'_>, k: &str) -> Option<(String, bool)> {
    p.get(k).map(|f| match f.strip_suffix('!') {
        Some(name) => (name.to_string(), false),
        None => (f.trim_end_matches('?').to_string(), true),
    })
}

impl InsertField {
    fn configure(side: Side, p: &Props<'_>) -> Result<InsertField, ConfigErrors> {
        let static_field = match field_spec(p, "static.field") {
            Some((name, optional)) => Some((name, optional, p.required("static.value")?.to_string())),
            None => None,
        };
        Ok(InsertField {
            side,
            topic: field_spec(p, "topic.field"),
            partition: field_spec(p, "partition.field"),
            offset: field_spec(p, "offset.field"),
            timestamp: field_spec(p, "timestamp.field"),
            static_field,
        })
    }

    fn additions(&self, r: &Parts) -> Vec<(String, bool, Schema, Value)> {
        let mut out = Vec::new();
        if let Some((f, opt)) = &self.topic {
            out.push((f.clone(), *opt, Schema::string(), Value::String(r.topic.clone())));
        }
        if let Some((f, opt)) = &self.partition {
            out.push((f.clone(), *opt, Schema::int32(), r.kafka_partition.map_or(Value::Null, Value::Int32)));
        }
        if let Some((f, opt)) = &self.offset {
            out.push((f.clone(), *opt, Schema::int64(), r.kafka_offset.map_or(Value::Null, Value::Int64)));
        }
        if let Some((f, opt)) = &self.timestamp {
            out.push((f.clone(), *opt, Schema::timestamp(), r.timestamp.map_or(Value::Null, Value::Timestamp)));
        }
        if let Some((f, opt, v)) = &self.static_field {
            out.push((f.clone(), *opt, Schema::string(), Value::String(v.clone())));
        }
        out
    }
}

impl Transform for InsertField {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let additions = self.additions(&r);
        let (schema, value) = self.side.take(&mut r);
        if value.is_null() {
            self.side.put(&mut r, schema, value);
            return Ok(Some(r));
        }
        require_struct_or_map("InsertField", &value)?;
        match value {
            Value::Struct(st) => {
                let base = schema.as_deref().unwrap_or(&st.schema);
                let mut fields: Vec<(String, SchemaRef)> =
                    base.fields.iter().map(|f| (f.name.clone(), f.schema.clone())).collect();
                let mut values = st.values;
                for (name, optional, s, v) in additions {
                    if !optional && v.is_null() {
                        return Err(format!("InsertField: required field {name} has no value for this record"));
                    }
                    fields.push((name, Arc::new(if optional { s.optional() } else { s })));
                    values.push(v);
                }
                let schema = Arc::new(struct_schema(Some(base), fields));
                self.side.put(&mut r, Some(schema.clone()), Value::Struct(Struct { schema, values }));
            }
            Value::Map(mut entries) => {
                for (name, _, _, v) in additions {
                    entries.push((Value::String(name), v));
                }
                self.side.put(&mut r, None, Value::Map(entries));
            }
            _ => {}
        }
        Ok(Some(r))
    }
}

/// `ReplaceField$Key|$Value`: `include` (or `whitelist`), `exclude` (or `blacklist`), `renames`
/// (`old:new,...`).
struct ReplaceField {
    side: Side,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: Vec<(String, String)>,
}

impl ReplaceField {
    fn configure(side: Side, p: &Props<'_>) -> Result<ReplaceField, ConfigErrors> {
        let mut renames = Vec::new();
        for r in p.list("renames") {
            match r.split_once(':') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() => renames.push((a.to_string(), b.to_string())),
                _ => return Err(p.invalid("renames", &r, "Invalid rename mapping: expected old:new")),
            }
        }
        let mut include = p.list("include");
        include.extend(p.list("whitelist"));
        let mut exclude = p.list("exclude");
        exclude.extend(p.list("blacklist"));
        Ok(ReplaceField { side, include, exclude, renames })
    }

    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name) && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.iter().find(|(a, _)| a == name).map_or(name, |(_, b)| b.as_str())
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        match value {
            Value::Struct(st) => {
                let base = schema.as_deref().unwrap_or(&st.schema);
                let mut fields = Vec::new();
                let mut values = Vec::new();
                for (f, v) in base.fields.iter().zip(st.values) {
                    if self.keep(&f.name) {
                        fields.push((self.renamed(&f.name).to_string(), f.schema.clone()));
                        values.push(v);
                    }
                }
                let schema = Arc::new(struct_schema(Some(base), fields));
                self.side.put(&mut r, Some(schema.clone()), Value::Struct(Struct { schema, values }));
            }
            Value::Map(entries) => {
                let kept = entries
                    .into_iter()
                    .filter(|(k, _)| k.as_str().is_none_or(|k| self.keep(k)))
                    .map(|(k, v)| match k.as_str() {
                        Some(name) => (Value::String(self.renamed(name).to_string()), v),
                        None => (k, v),
                    })
                    .collect();
                self.side.put(&mut r, None, Value::Map(kept));
            }
            Value::Null => self.side.put(&mut r, schema, Value::Null),
            other => return Err(format!("ReplaceField requires a struct or a map, got {}", other.type_name())),
        }
        Ok(Some(r))
    }
}

/// `ExtractField$Key|$Value`: replaces the key or value with one of its fields.
struct ExtractField {
    side: Side,
    field: String,
}

impl Transform for ExtractField {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        match &value {
            Value::Null => self.side.put(&mut r, schema, value),
            Value::Struct(st) => {
                let base = schema.as_deref().unwrap_or(&st.schema);
                let f = base
                    .field(&self.field)
                    .ok_or_else(|| format!("ExtractField: no field {} in the struct", self.field))?;
                let v = st.values.get(f.index).cloned().unwrap_or(Value::Null);
                self.side.put(&mut r, Some(f.schema.clone()), v);
            }
            Value::Map(_) => {
                let v = field_of(&value, &self.field).cloned().unwrap_or(Value::Null);
                self.side.put(&mut r, None, v);
            }
            other => return Err(format!("ExtractField requires a struct or a map, got {}", other.type_name())),
        }
        Ok(Some(r))
    }
}

/// `HoistField$Key|$Value`: wraps the key or value in a struct (or map) of one field.
struct HoistField {
    side: Side,
    field: String,
}

impl Transform for HoistField {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let (schema, value) = self.side.take(&mut r);
        match schema {
            Some(s) => {
                let schema = Arc::new(struct_schema(None, vec![(self.field.clone(), s)]));
                self.side.put(&mut r, Some(schema.clone()), Value::Struct(Struct { schema, values: vec![value] }));
            }
            None => self.side.put(&mut r, None, Value::Map(vec![(Value::String(self.field.clone()), value)])),
        }
        Ok(Some(r))
    }
}

/// `ValueToKey`: the key becomes a struct (or map) of the listed value fields.
struct ValueToKey {
    fields: Vec<String>,
}

impl Transform for ValueToKey {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        match &r.value {
            Value::Struct(st) => {
                let base = r.value_schema.as_deref().unwrap_or(&st.schema);
                let mut fields = Vec::new();
                let mut values = Vec::new();
                for name in &self.fields {
                    let f = base.field(name).ok_or_else(|| format!("ValueToKey: no field {name} in the value"))?;
                    fields.push((name.clone(), f.schema.clone()));
                    values.push(st.values.get(f.index).cloned().unwrap_or(Value::Null));
                }
                let schema = Arc::new(struct_schema(None, fields));
                r.key_schema = Some(schema.clone());
                r.key = Value::Struct(Struct { schema, values });
            }
            Value::Map(_) => {
                let entries = self
                    .fields
                    .iter()
                    .map(|f| (Value::String(f.clone()), field_of(&r.value, f).cloned().unwrap_or(Value::Null)))
                    .collect();
                r.key_schema = None;
                r.key = Value::Map(entries);
            }
            Value::Null => {}
            other => return Err(format!("ValueToKey requires a struct or a map value, got {}", other.type_name())),
        }
        Ok(Some(r))
    }
}

/// `RegexRouter`: the topic, when the regex matches it whole, becomes the replacement.
struct RegexRouter {
    regex: regex::Regex,
    replacement: String,
}

impl Transform for RegexRouter {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        if self.regex.is_match(&r.topic) {
            r.topic = self.regex.replace(&r.topic, self.replacement.as_str()).into_owned();
        }
        Ok(Some(r))
    }
}

/// `Filter`: drops the record (used with a predicate).
struct Filter;

impl Transform for Filter {
    fn apply(&self, _r: Parts) -> Result<Option<Parts>, String> {
        Ok(None)
    }
}

/// `DropHeaders`: removes the named headers.
struct DropHeaders {
    names: Vec<String>,
}

impl Transform for DropHeaders {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        r.headers.retain(|h| !self.names.contains(&h.key));
        Ok(Some(r))
    }
}

/// `TopicNameMatches`.
pub(super) struct TopicNameMatches(pub(super) regex::Regex);

impl Predicate for TopicNameMatches {
    fn test(&self, r: &Parts) -> bool {
        self.0.is_match(&r.topic)
    }
}

/// `HasHeaderKey`.
pub(super) struct HasHeaderKey(pub(super) String);

impl Predicate for HasHeaderKey {
    fn test(&self, r: &Parts) -> bool {
        r.headers.iter().any(|h| h.key == self.0)
    }
}

/// `RecordIsTombstone`.
pub(super) struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, r: &Parts) -> bool {
        r.value.is_null()
    }
}

/// For tests: the schema type of a key or value.
#[cfg(test)]
pub(super) fn schema_type(s: &Option<SchemaRef>) -> Option<sluice_api::SchemaType> {
    s.as_ref().map(|s| s.schema_type)
}

#[cfg(test)]
#[test]
fn java_replacements() {
    assert_eq!(java_replacement("$1-out"), "${1}-out");
    assert_eq!(java_replacement("x$12y"), "x${12}y");
    assert_eq!(java_replacement("cost\\$"), "cost$$");
}
