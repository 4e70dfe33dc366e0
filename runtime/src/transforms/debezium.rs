//! Debezium's `io.debezium.transforms.ExtractNewRecordState`: a change event's envelope
//! `{before, after, source, op, ts_ms}` becomes the row state (`after`), with deletes and
//! tombstones handled as configured and metadata fields added on request.

use std::sync::Arc;

use sluice_api::{ConfigErrors, Schema, SchemaRef, Struct, Value};

use super::{struct_schema, Parts, Props, Transform};

/// What happens to a delete event (`delete.handling.mode` / `delete.tombstone.handling.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletes {
    /// Dropped.
    Drop,
    /// Passed on with a null value (a tombstone).
    Tombstone,
    /// The `before` state with `__deleted: "true"` (and `"false"` on every other event).
    Rewrite,
}

/// The transform.
pub struct ExtractNewRecordState {
    drop_tombstones: bool,
    deletes: Deletes,
    add_fields: Vec<String>,
    fields_prefix: String,
    add_headers: Vec<String>,
    headers_prefix: String,
}

impl ExtractNewRecordState {
    /// Reads Debezium's keys.
    pub fn configure(p: &Props<'_>) -> Result<ExtractNewRecordState, ConfigErrors> {
        let mut drop_tombstones = p.boolean("drop.tombstones", true)?;
        let mut deletes = match p.get("delete.handling.mode").map(str::to_ascii_lowercase).as_deref() {
            None | Some("drop") => Deletes::Drop,
            Some("none") => Deletes::Tombstone,
            Some("rewrite") => Deletes::Rewrite,
            Some(other) => return Err(p.invalid("delete.handling.mode", other, "one of drop, rewrite, none")),
        };
        // The newer single key (Debezium 2.5+) wins when set.
        if let Some(mode) = p.get("delete.tombstone.handling.mode") {
            (deletes, drop_tombstones) = match mode.to_ascii_lowercase().as_str() {
                "drop" => (Deletes::Drop, true),
                "tombstone" => (Deletes::Tombstone, false),
                "rewrite" => (Deletes::Rewrite, true),
                "rewrite-with-tombstone" => (Deletes::Rewrite, false),
                other => {
                    return Err(p.invalid(
                        "delete.tombstone.handling.mode",
                        other,
                        "one of drop, tombstone, rewrite, rewrite-with-tombstone",
                    ))
                }
            };
        }
        Ok(ExtractNewRecordState {
            drop_tombstones,
            deletes,
            add_fields: p.list("add.fields"),
            fields_prefix: p.get("add.fields.prefix").unwrap_or("__").to_string(),
            add_headers: p.list("add.headers"),
            headers_prefix: p.get("add.headers.prefix").unwrap_or("__").to_string(),
        })
    }

    /// A metadata field of the envelope: `op`, `ts_ms` from the envelope, `source.x` or a bare
    /// source field name (`table`, `db`, ...) from `source`.
    fn metadata(envelope: &Struct, name: &str) -> Option<(SchemaRef, Value)> {
        let get = |st: &Struct, f: &str| st.schema.field(f).map(|fd| (fd.schema.clone(), st.values[fd.index].clone()));
        let source = || match envelope.get("source") {
            Some(Value::Struct(s)) => Some(s.clone()),
            _ => None,
        };
        match name.split_once('.') {
            Some(("source", f)) => source().and_then(|s| get(&s, f)),
            Some(_) => None,
            None => get(envelope, name).or_else(|| source().and_then(|s| get(&s, name))),
        }
    }
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, mut r: Parts) -> Result<Option<Parts>, String> {
        let envelope = match &r.value {
            Value::Null => return Ok(if self.drop_tombstones { None } else { Some(r) }),
            Value::Struct(st) if st.schema.field("op").is_some() && st.schema.field("after").is_some() => st.clone(),
            // Not a change event (schema change, heartbeat): passed on unchanged, as Debezium.
            _ => return Ok(Some(r)),
        };
        let op = match envelope.get("op") {
            Some(Value::String(op)) => op.clone(),
            _ => String::new(),
        };
        let is_delete = op == "d";
        if is_delete && self.deletes == Deletes::Drop {
            return Ok(None);
        }
        if is_delete && self.deletes == Deletes::Tombstone {
            r.value = Value::Null;
            return Ok(Some(r));
        }
        let side = if is_delete { "before" } else { "after" };
        let field = envelope.schema.field(side).ok_or_else(|| format!("the envelope has no {side} field"))?;
        let state = envelope.values[field.index].clone();
        let Value::Struct(row) = state else {
            return Err(format!("the envelope's {side} is {}, not a struct", state.type_name()));
        };
        let row_schema: &Schema = &row.schema;
        let mut fields: Vec<(String, SchemaRef)> =
            row_schema.fields.iter().map(|f| (f.name.clone(), f.schema.clone())).collect();
        let mut values = row.values.clone();
        for name in &self.add_fields {
            let (schema, value) =
                Self::metadata(&envelope, name).unwrap_or_else(|| (Arc::new(Schema::string().optional()), Value::Null));
            let out = format!("{}{}", self.fields_prefix, name.replace('.', "_"));
            let schema =
                if schema.optional { schema } else { Arc::new(Schema { optional: true, ..(*schema).clone() }) };
            fields.push((out, schema));
            values.push(value);
        }
        if self.deletes == Deletes::Rewrite {
            fields.push(("__deleted".to_string(), Arc::new(Schema::string().optional())));
            values.push(Value::String(is_delete.to_string()));
        }
        for name in &self.add_headers {
            if let Some((schema, value)) = Self::metadata(&envelope, name) {
                r.headers.push(sluice_api::Header {
                    key: format!("{}{}", self.headers_prefix, name.replace('.', "_")),
                    schema: Some(schema),
                    value,
                });
            }
        }
        let schema = Arc::new(struct_schema(Some(row_schema), fields));
        r.value_schema = Some(schema.clone());
        r.value = Value::Struct(Struct { schema, values });
        Ok(Some(r))
    }
}
