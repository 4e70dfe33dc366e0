//! Debezium's change-event envelope, `source` block, offsets, schema-change and heartbeat records.

use std::sync::{Arc, OnceLock};

use serde_json::json;
use sluice_api::{JsonMap, Schema, SchemaRef, SourceRecord, Struct, Value};

use super::schema::Table;

/// Connector name in `source.connector`.
pub const CONNECTOR: &str = "mysql";
/// Version in `source.version`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-sluice");

/// Allowed values of `source.snapshot`.
const SNAPSHOT_ALLOWED: &str = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// `io.debezium.connector.mysql.Source`, field for field as Debezium 2.x.
pub fn source_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(
                Schema::struct_of([
                    ("version", Schema::string()),
                    ("connector", Schema::string()),
                    ("name", Schema::string()),
                    ("ts_ms", Schema::int64()),
                    (
                        "snapshot",
                        Schema::string()
                            .named("io.debezium.data.Enum")
                            .version(1)
                            .parameter("allowed", SNAPSHOT_ALLOWED)
                            .with_default(Value::String("false".into()))
                            .optional(),
                    ),
                    ("db", Schema::string()),
                    ("sequence", Schema::string().optional()),
                    ("ts_us", Schema::int64().optional()),
                    ("ts_ns", Schema::int64().optional()),
                    ("table", Schema::string().optional()),
                    ("server_id", Schema::int64()),
                    ("gtid", Schema::string().optional()),
                    ("file", Schema::string()),
                    ("pos", Schema::int64()),
                    ("row", Schema::int32()),
                    ("thread", Schema::int64().optional()),
                    ("query", Schema::string().optional()),
                ])
                .named("io.debezium.connector.mysql.Source"),
            )
        })
        .clone()
}

fn transaction_schema() -> Schema {
    Schema::struct_of([
        ("id", Schema::string()),
        ("total_order", Schema::int64()),
        ("data_collection_order", Schema::int64()),
    ])
    .named("event.block")
    .version(1)
    .optional()
}

/// `<base>.Envelope` around a row schema.
pub fn envelope_schema(base: &str, row: &SchemaRef) -> Schema {
    Schema::struct_of([
        ("before", (**row).clone()),
        ("after", (**row).clone()),
        ("source", (*source_schema()).clone()),
        ("transaction", transaction_schema()),
        ("op", Schema::string()),
        ("ts_ms", Schema::int64().optional()),
        ("ts_us", Schema::int64().optional()),
        ("ts_ns", Schema::int64().optional()),
    ])
    .named(format!("{base}.Envelope"))
    .version(2)
}

/// Where an event is in the binlog, and how to get back to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// Binlog file.
    pub file: String,
    /// Restart position: the start of the event's transaction (or of the event outside one).
    pub pos: u64,
    /// Rows events of the transaction to skip after `pos` on restart.
    pub event: u64,
    /// Rows of the next rows event to skip on restart.
    pub row: u64,
    /// MariaDB GTID state (`domain-server-seq,...`) before the transaction, when known.
    pub gtids: Option<String>,
    /// Event time (seconds).
    pub ts_sec: i64,
    /// Server id of the event.
    pub server_id: u32,
    /// Transaction metadata so far, when stopped inside a transaction with
    /// `provide.transaction.metadata` (Debezium's `transaction_*` offset keys).
    pub txn: Option<TxnMeta>,
}

/// A transaction's metadata as its events are emitted (`provide.transaction.metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnMeta {
    /// Transaction id: its GTID, else `<binlog file>:<position of its first event>`.
    pub id: String,
    /// Events so far per data collection (`db.table`), in first-seen order.
    pub per_collection: Vec<(String, i64)>,
}

/// Offset key of the transaction id (Debezium's `TransactionContext`).
const OFFSET_TXN_ID: &str = "transaction_id";
/// Offset key prefix of a data collection's event count.
const OFFSET_TXN_ORDER: &str = "transaction_data_collection_order_";

impl TxnMeta {
    /// Counts one more event of `collection`; returns its `total_order` and `data_collection_order`.
    pub fn count(&mut self, collection: &str) -> (i64, i64) {
        let order = match self.per_collection.iter_mut().find(|(c, _)| c == collection) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_collection.push((collection.to_string(), 1));
                1
            }
        };
        (self.total(), order)
    }

    /// Events so far.
    pub fn total(&self) -> i64 {
        self.per_collection.iter().map(|(_, n)| n).sum()
    }

    fn store(&self, o: &mut JsonMap) {
        o.insert(OFFSET_TXN_ID.into(), json!(self.id));
        for (c, n) in &self.per_collection {
            o.insert(format!("{OFFSET_TXN_ORDER}{c}"), json!(n));
        }
    }

    fn load(o: &JsonMap) -> Option<TxnMeta> {
        let id = o.get(OFFSET_TXN_ID)?.as_str()?.to_string();
        let per_collection =
            o.iter().filter_map(|(k, v)| Some((k.strip_prefix(OFFSET_TXN_ORDER)?.to_string(), v.as_i64()?))).collect();
        Some(TxnMeta { id, per_collection })
    }
}

fn transaction_key_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(
                Schema::struct_of([("id", Schema::string())])
                    .named("io.debezium.connector.common.TransactionMetadataKey"),
            )
        })
        .clone()
}

fn collection_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::struct_of([("data_collection", Schema::string()), ("event_count", Schema::int64())]))
        })
        .clone()
}

fn transaction_value_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(
                Schema::struct_of([
                    ("status", Schema::string()),
                    ("id", Schema::string()),
                    ("event_count", Schema::int64().optional()),
                    ("data_collections", Schema::array((*collection_schema()).clone()).optional()),
                    ("ts_ms", Schema::int64()),
                ])
                .named("io.debezium.connector.common.TransactionMetadataValue"),
            )
        })
        .clone()
}

/// A BEGIN (`end: false`) or END event of a transaction on the transaction topic: key `{id}`,
/// value `{status, id, event_count, data_collections, ts_ms}` (the counts on END only).
pub fn transaction_record(
    topic: &str,
    prefix: &str,
    meta: &TxnMeta,
    end: bool,
    ts_ms: i64,
    source_offset: JsonMap,
) -> SourceRecord {
    let (status, count, collections) = if end {
        let collections = meta
            .per_collection
            .iter()
            .map(|(c, n)| {
                Value::Struct(Struct {
                    schema: collection_schema(),
                    values: vec![Value::String(c.clone()), Value::Int64(*n)],
                })
            })
            .collect();
        ("END", Value::Int64(meta.total()), Value::Array(collections))
    } else {
        ("BEGIN", Value::Null, Value::Null)
    };
    let value = Struct {
        schema: transaction_value_schema(),
        values: vec![
            Value::String(status.into()),
            Value::String(meta.id.clone()),
            count,
            collections,
            Value::Int64(ts_ms),
        ],
    };
    let mut record = SourceRecord::new(
        partition(prefix),
        source_offset,
        topic,
        Some(transaction_value_schema()),
        Value::Struct(value),
    );
    record.key_schema = Some(transaction_key_schema());
    record.key =
        Value::Struct(Struct { schema: transaction_key_schema(), values: vec![Value::String(meta.id.clone())] });
    record
}

/// Fills a change event's `transaction` block: `{id, total_order, data_collection_order}`.
pub fn set_transaction(record: &mut SourceRecord, id: &str, total_order: i64, data_collection_order: i64) {
    if let Value::Struct(envelope) = &mut record.value {
        let Some(schema) = envelope.schema.field("transaction").map(|f| f.schema.clone()) else { return };
        if let Some(slot) = envelope.values.get_mut(3) {
            *slot = Value::Struct(Struct {
                schema,
                values: vec![Value::String(id.into()), Value::Int64(total_order), Value::Int64(data_collection_order)],
            });
        }
    }
}

/// Progress of an interrupted snapshot, stored in the offset so it resumes after the last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// `db.table` being read; every table sorted before it is done.
    pub table: String,
    /// Primary-key values (as text) of the last row emitted; `None` before the first.
    pub key: Option<Vec<Option<String>>>,
    /// Parallel snapshot: the last table handed to a reader (`snapshot_through`). The tables
    /// after `table` up to it are done unless listed in `others`; the tables after it are not
    /// started. `None`: no table after `table` started.
    pub through: Option<String>,
    /// Tables after `table` (up to `through`) not done, with their last key (`snapshot_others`).
    pub others: Vec<(String, Option<Vec<Option<String>>>)>,
}

/// The offset partition: `{"server": <topic.prefix>}`.
pub fn partition(prefix: &str) -> JsonMap {
    let mut p = JsonMap::new();
    p.insert("server".into(), json!(prefix));
    p
}

/// The offset map of a position (and snapshot progress), in Debezium's keys.
pub fn offset(position: &Position, snapshot: Option<&SnapshotProgress>) -> JsonMap {
    let mut o = JsonMap::new();
    o.insert("ts_sec".into(), json!(position.ts_sec));
    o.insert("file".into(), json!(position.file));
    o.insert("pos".into(), json!(position.pos));
    if let Some(g) = &position.gtids {
        o.insert("gtids".into(), json!(g));
    }
    if position.event > 0 {
        o.insert("event".into(), json!(position.event));
    }
    if position.row > 0 {
        o.insert("row".into(), json!(position.row));
    }
    o.insert("server_id".into(), json!(position.server_id));
    if let Some(t) = &position.txn {
        t.store(&mut o);
    }
    if let Some(s) = snapshot {
        o.insert("snapshot".into(), json!(true));
        o.insert("snapshot_table".into(), json!(s.table));
        if let Some(key) = &s.key {
            o.insert("snapshot_key".into(), json!(key));
        }
        if let Some(through) = &s.through {
            o.insert("snapshot_through".into(), json!(through));
            let others: JsonMap = s.others.iter().map(|(t, k)| (t.clone(), json!(k))).collect();
            o.insert("snapshot_others".into(), serde_json::Value::Object(others));
        }
    }
    o
}

/// Reads an offset written by [`offset`] (or by Debezium: `file`, `pos`, `event`, `row`, `gtids`).
pub fn parse_offset(o: &JsonMap) -> Result<(Position, Option<SnapshotProgress>), String> {
    let file = o.get("file").and_then(|v| v.as_str()).ok_or("stored offset has no binlog 'file'")?;
    let int = |k: &str| o.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let pos = int("pos").ok_or("stored offset has no binlog 'pos'")?;
    let position = Position {
        file: file.to_string(),
        pos,
        event: int("event").unwrap_or(0),
        row: int("row").unwrap_or(0),
        gtids: o.get("gtids").and_then(|v| v.as_str()).map(String::from),
        ts_sec: int("ts_sec").unwrap_or(0) as i64,
        server_id: int("server_id").unwrap_or(0) as u32,
        txn: TxnMeta::load(o),
    };
    let in_snapshot = matches!(o.get("snapshot"), Some(serde_json::Value::Bool(true)))
        || o.get("snapshot").and_then(|v| v.as_str()) == Some("true");
    let snapshot = match (in_snapshot, o.get("snapshot_table").and_then(|v| v.as_str())) {
        (true, Some(table)) => Some(SnapshotProgress {
            table: table.to_string(),
            key: o.get("snapshot_key").and_then(|k| serde_json::from_value(k.clone()).ok()),
            through: o.get("snapshot_through").and_then(|v| v.as_str()).map(String::from),
            others: o
                .get("snapshot_others")
                .and_then(|v| v.as_object())
                .map(|m| m.iter().map(|(t, k)| (t.clone(), serde_json::from_value(k.clone()).ok().flatten())).collect())
                .unwrap_or_default(),
        }),
        // A Debezium snapshot interrupted before completion: start it again.
        (true, None) => Some(SnapshotProgress { table: String::new(), key: None, through: None, others: Vec::new() }),
        _ => None,
    };
    Ok((position, snapshot))
}

/// What `source` says about one event.
#[derive(Debug, Clone)]
pub struct SourceInfo<'a> {
    /// `topic.prefix`.
    pub name: &'a str,
    /// Event time in milliseconds.
    pub ts_ms: i64,
    /// `source.snapshot`.
    pub snapshot: &'a str,
    /// Database.
    pub db: &'a str,
    /// Table.
    pub table: Option<&'a str>,
    /// Server id.
    pub server_id: u32,
    /// GTID of the transaction.
    pub gtid: Option<&'a str>,
    /// Binlog file.
    pub file: &'a str,
    /// Position of the event (Debezium: of the rows event).
    pub pos: u64,
    /// Row within the event.
    pub row: i32,
    /// Thread id, when known.
    pub thread: Option<i64>,
}

/// The `source` struct.
pub fn source_struct(info: &SourceInfo<'_>) -> Value {
    let schema = source_schema();
    Value::Struct(Struct {
        values: vec![
            Value::String(VERSION.into()),
            Value::String(CONNECTOR.into()),
            Value::String(info.name.into()),
            Value::Int64(info.ts_ms),
            Value::String(info.snapshot.into()),
            Value::String(info.db.into()),
            Value::Null,
            Value::Int64(info.ts_ms * 1000),
            Value::Int64(info.ts_ms * 1_000_000),
            info.table.map_or(Value::Null, |t| Value::String(t.into())),
            Value::Int64(i64::from(info.server_id)),
            info.gtid.map_or(Value::Null, |g| Value::String(g.into())),
            Value::String(info.file.into()),
            Value::Int64(info.pos as i64),
            Value::Int32(info.row),
            info.thread.map_or(Value::Null, Value::Int64),
            Value::Null,
        ],
        schema,
    })
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A change event (`op` c, u, d or r).
#[allow(clippy::too_many_arguments)]
pub fn change_record(
    table: &Table,
    op: &str,
    key: Value,
    before: Option<Value>,
    after: Option<Value>,
    source: Value,
    source_offset: JsonMap,
    prefix: &str,
) -> SourceRecord {
    let now = now_ms();
    let envelope = Struct {
        schema: table.envelope_schema.clone(),
        values: vec![
            before.unwrap_or(Value::Null),
            after.unwrap_or(Value::Null),
            source,
            Value::Null,
            Value::String(op.into()),
            Value::Int64(now),
            Value::Int64(now * 1000),
            Value::Int64(now * 1_000_000),
        ],
    };
    let mut record = SourceRecord::new(
        partition(prefix),
        source_offset,
        table.topic.clone(),
        Some(table.envelope_schema.clone()),
        Value::Struct(envelope),
    );
    record.key_schema = table.key_schema.clone();
    record.key = key;
    record
}

/// The tombstone that follows a delete: same key, null value.
pub fn tombstone(delete: &SourceRecord) -> SourceRecord {
    let mut t = delete.clone();
    t.value = Value::Null;
    t.value_schema = None;
    t
}

fn schema_change_key_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(
                Schema::struct_of([("databaseName", Schema::string())])
                    .named("io.debezium.connector.mysql.SchemaChangeKey")
                    .version(1),
            )
        })
        .clone()
}

fn schema_change_value_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            // Debezium's ConnectTableChangeSerializer.
            let column = Schema::struct_of([
                ("name", Schema::string()),
                ("jdbcType", Schema::int32()),
                ("nativeType", Schema::int32().optional()),
                ("typeName", Schema::string()),
                ("typeExpression", Schema::string().optional()),
                ("charsetName", Schema::string().optional()),
                ("length", Schema::int32().optional()),
                ("scale", Schema::int32().optional()),
                ("position", Schema::int32()),
                ("optional", Schema::boolean().optional()),
                ("autoIncremented", Schema::boolean().optional()),
                ("generated", Schema::boolean().optional()),
                ("comment", Schema::string().optional()),
                ("defaultValueExpression", Schema::string().optional()),
                ("enumValues", Schema::array(Schema::string()).optional()),
            ])
            .named("io.debezium.connector.schema.Column");
            let table = Schema::struct_of([
                ("defaultCharsetName", Schema::string().optional()),
                ("primaryKeyColumnNames", Schema::array(Schema::string()).optional()),
                ("columns", Schema::array(column)),
                ("comment", Schema::string().optional()),
            ])
            .named("io.debezium.connector.schema.Table");
            let change = Schema::struct_of([("type", Schema::string()), ("id", Schema::string()), ("table", table)])
                .named("io.debezium.connector.schema.Change");
            Arc::new(
                Schema::struct_of([
                    ("source", (*source_schema()).clone()),
                    ("ts_ms", Schema::int64()),
                    ("databaseName", Schema::string().optional()),
                    ("schemaName", Schema::string().optional()),
                    ("ddl", Schema::string().optional()),
                    ("tableChanges", Schema::array(change)),
                ])
                .named("io.debezium.connector.mysql.SchemaChangeValue")
                .version(1),
            )
        })
        .clone()
}

/// A DDL statement on the public schema-change topic (`<topic.prefix>`).
pub fn schema_change_record(
    prefix: &str,
    db: &str,
    ddl: &str,
    changes: &[serde_json::Value],
    source: Value,
    source_offset: JsonMap,
) -> SourceRecord {
    let key = Struct { schema: schema_change_key_schema(), values: vec![Value::String(db.into())] };
    let change_schema = schema_change_value_schema()
        .field("tableChanges")
        .and_then(|f| f.schema.value_schema.clone())
        .unwrap_or_else(|| Arc::new(Schema::string()));
    let changes = changes.iter().map(|c| from_json(&change_schema, c)).collect();
    let value = Struct {
        schema: schema_change_value_schema(),
        values: vec![
            source,
            Value::Int64(now_ms()),
            Value::String(db.into()),
            Value::Null,
            Value::String(ddl.into()),
            Value::Array(changes),
        ],
    };
    let mut record = SourceRecord::new(
        partition(prefix),
        source_offset,
        prefix,
        Some(schema_change_value_schema()),
        Value::Struct(value),
    );
    record.key_schema = Some(schema_change_key_schema());
    record.key = Value::Struct(key);
    record
}

/// A JSON value (`tableChanges` as the history writes them) as a Connect value of `schema`:
/// structs by field name (missing fields null), arrays, strings, int32, booleans.
fn from_json(schema: &SchemaRef, json: &serde_json::Value) -> Value {
    use sluice_api::SchemaType;
    match (schema.schema_type, json) {
        (_, serde_json::Value::Null) => Value::Null,
        (SchemaType::Struct, serde_json::Value::Object(o)) => Value::Struct(Struct {
            schema: schema.clone(),
            values: schema
                .fields
                .iter()
                .map(|f| o.get(&f.name).map_or(Value::Null, |v| from_json(&f.schema, v)))
                .collect(),
        }),
        (SchemaType::Array, serde_json::Value::Array(items)) => match &schema.value_schema {
            Some(item) => Value::Array(items.iter().map(|i| from_json(item, i)).collect()),
            None => Value::Null,
        },
        (SchemaType::Int32, v) => v.as_i64().map_or(Value::Null, |n| Value::Int32(n as i32)),
        (SchemaType::Boolean, serde_json::Value::Bool(b)) => Value::Boolean(*b),
        (SchemaType::String, serde_json::Value::String(s)) => Value::String(s.clone()),
        _ => Value::Null,
    }
}

/// A heartbeat on `<topic.heartbeat.prefix>.<topic.prefix>`: key `{serverName}`, value `{ts_ms}`.
pub fn heartbeat_record(topic_prefix: &str, prefix: &str, source_offset: JsonMap) -> SourceRecord {
    static KEY: OnceLock<SchemaRef> = OnceLock::new();
    static VALUE: OnceLock<SchemaRef> = OnceLock::new();
    let key_schema = KEY
        .get_or_init(|| {
            Arc::new(
                Schema::struct_of([("serverName", Schema::string())])
                    .named("io.debezium.connector.common.ServerNameKey"),
            )
        })
        .clone();
    let value_schema = VALUE
        .get_or_init(|| {
            Arc::new(Schema::struct_of([("ts_ms", Schema::int64())]).named("io.debezium.connector.common.Heartbeat"))
        })
        .clone();
    let mut record = SourceRecord::new(
        partition(prefix),
        source_offset,
        format!("{topic_prefix}.{prefix}"),
        Some(value_schema.clone()),
        Value::Struct(Struct { schema: value_schema, values: vec![Value::Int64(now_ms())] }),
    );
    record.key_schema = Some(key_schema.clone());
    record.key = Value::Struct(Struct { schema: key_schema, values: vec![Value::String(prefix.into())] });
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_with_snapshot_progress() {
        let p = Position {
            file: "binlog.000002".into(),
            pos: 1234,
            event: 2,
            row: 3,
            gtids: Some("0-1-42".into()),
            ts_sec: 1_700_000_000,
            server_id: 1,
            // Read back in key order (the offset is a JSON object).
            txn: Some(TxnMeta {
                id: "0-1-42".into(),
                per_collection: vec![("shop.items".into(), 5), ("shop.orders".into(), 2)],
            }),
        };
        let s = SnapshotProgress {
            table: "shop.orders".into(),
            key: Some(vec![Some("17".into()), None]),
            through: None,
            others: Vec::new(),
        };
        let o = offset(&p, Some(&s));
        assert_eq!(parse_offset(&o), Ok((p.clone(), Some(s.clone()))));
        // A parallel snapshot's tables in flight, in table order.
        let s = SnapshotProgress {
            through: Some("shop.users".into()),
            others: vec![("shop.items".into(), Some(vec![Some("3".into())])), ("shop.users".into(), None)],
            ..s
        };
        let o = offset(&p, Some(&s));
        assert_eq!(parse_offset(&o), Ok((p.clone(), Some(s))));
        let o = offset(&p, None);
        assert_eq!(parse_offset(&o), Ok((p, None)));
    }

    #[test]
    fn debezium_offsets_are_read() {
        let o: JsonMap = serde_json::from_str(
            r#"{"ts_sec":1,"file":"mysql-bin.000003","pos":154,"row":1,"event":2,"server_id":223344}"#,
        )
        .expect("json");
        let (p, s) = parse_offset(&o).expect("offset");
        assert_eq!((p.file.as_str(), p.pos, p.event, p.row), ("mysql-bin.000003", 154, 2, 1));
        assert!(s.is_none());
        assert!(parse_offset(&JsonMap::new()).is_err());
    }
}
