//! Debezium's schema history topic (`schema.history.internal.kafka.topic`).
//!
//! Each DDL on a captured table is recorded with the binlog position after it and the table
//! definitions it leaves, in Debezium's record format:
//! `{"source":{"server"},"position":{offset},"ts_ms","databaseName","ddl","tableChanges":[{"type",
//! "id","table":{"defaultCharsetName","primaryKeyColumnNames","columns":[...]}}]}`. The snapshot
//! records every captured table's `CREATE TABLE` at its position.
//!
//! On restart the definitions in force at the stored position are the changes recorded at or
//! before it, in topic order; a DDL the stream reaches again is applied from its record (the
//! definition as it was then), never from today's `information_schema`, and is not recorded twice.
//! Only where table maps carry no column metadata (`binlog_row_metadata` not FULL) do rows depend
//! on it: with FULL metadata every row is decoded from its own table map.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use sluice_api::{ConnectError, StateTopics};

use super::config::MySqlConfig;
use super::event::{self, Position};
use super::schema::{Column, ColumnKind, Table};

/// What a DDL did to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The table appeared.
    Create,
    /// The table changed.
    Alter,
    /// The table is gone.
    Drop,
}

impl ChangeKind {
    /// Debezium's name.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Create => "CREATE",
            ChangeKind::Alter => "ALTER",
            ChangeKind::Drop => "DROP",
        }
    }
}

/// One table change of a history record: the definition after it (`None` for a drop).
#[derive(Debug, Clone)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Columns and primary-key indexes after the change.
    pub def: Option<(Vec<Column>, Vec<usize>)>,
}

impl Change {
    /// The change that leaves `table` as it is (`kind` Create or Alter).
    pub fn of(kind: ChangeKind, table: &Table) -> Change {
        Change {
            kind,
            db: table.db.clone(),
            table: table.name.clone(),
            def: Some((table.columns.clone(), table.primary_key.clone())),
        }
    }

    /// The table this change leaves, with the current configuration's schemas.
    pub fn build(&self, config: &MySqlConfig) -> Option<Table> {
        let (columns, pk) = self.def.as_ref()?;
        let mut columns = columns.clone();
        for c in &mut columns {
            c.captured = config.captures_column(&self.db, &self.table, &c.name);
        }
        Some(Table::new(&self.db, &self.table, columns, pk.clone(), config))
    }
}

struct Record {
    position: Position,
    changes: Vec<Change>,
}

/// The history topic, read at start and appended to as DDL streams by.
pub struct History {
    topic: String,
    prefix: String,
    state: Arc<dyn StateTopics>,
    records: Vec<Record>,
}

impl History {
    /// Reads the whole topic (empty when it does not exist).
    pub async fn load(topic: &str, prefix: &str, state: Arc<dyn StateTopics>) -> Result<History, ConnectError> {
        let values = state.read_all(topic).await?.unwrap_or_default();
        let mut records = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            // Records of other connectors sharing the topic are not ours, readable or not.
            let server =
                serde_json::from_slice::<Json>(v).ok().and_then(|j| j["source"]["server"].as_str().map(String::from));
            if server.as_deref().is_some_and(|s| s != prefix) {
                continue;
            }
            let record = parse_record(v).map_err(|e| {
                ConnectError::fatal(format!(
                    "schema history topic {topic}: record {i} cannot be read ({e}); \
                     set snapshot.mode=recovery with a new schema.history.internal.kafka.topic to rebuild it"
                ))
            })?;
            records.push(record.1);
        }
        tracing::info!(topic, records = records.len(), "schema history read");
        Ok(History { topic: topic.to_string(), prefix: prefix.to_string(), state, records })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The tables in force at `position`: every change recorded at or before it, in topic order.
    pub fn tables_at(&self, position: &Position, config: &MySqlConfig) -> Vec<Table> {
        let mut tables: Vec<((String, String), Option<Table>)> = Vec::new();
        for r in self.records.iter().filter(|r| compare(&r.position, position) != Ordering::Greater) {
            for c in &r.changes {
                let key = (c.db.clone(), c.table.clone());
                let built = c.build(config);
                match tables.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = built,
                    None => tables.push((key, built)),
                }
            }
        }
        tables.into_iter().filter_map(|(_, t)| t).collect()
    }

    /// The changes recorded for the DDL that ends at `position`, when the stream reaches a DDL
    /// it recorded before (a restart from an earlier offset).
    pub fn recorded_at(&self, position: &Position) -> Option<Vec<Change>> {
        let mut found = self.records.iter().filter(|r| compare(&r.position, position) == Ordering::Equal).peekable();
        found.peek()?;
        Some(found.flat_map(|r| r.changes.iter().cloned()).collect())
    }

    /// Appends records `(database, ddl, changes)` at `position`; returns once Kafka acknowledged them.
    pub async fn record(
        &mut self,
        position: &Position,
        entries: Vec<(String, String, Vec<Change>)>,
    ) -> Result<(), ConnectError> {
        if entries.is_empty() {
            return Ok(());
        }
        let offset = event::offset(position, None);
        let values = entries
            .iter()
            .map(|(db, ddl, changes)| {
                let value = json!({
                    "source": {"server": self.prefix},
                    "position": offset,
                    "ts_ms": event::now_ms(),
                    "databaseName": db,
                    "ddl": ddl,
                    "tableChanges": changes.iter().map(change_json).collect::<Vec<_>>(),
                });
                serde_json::to_vec(&value).unwrap_or_default()
            })
            .collect();
        self.state.append(&self.topic, values).await?;
        for (_, _, changes) in entries {
            self.records.push(Record { position: position.clone(), changes });
        }
        Ok(())
    }
}

/// Orders positions by binlog file (numeric suffix) then position.
fn compare(a: &Position, b: &Position) -> Ordering {
    let seq = |f: &str| f.rsplit_once('.').and_then(|(_, n)| n.parse::<u64>().ok());
    let by_file = match (seq(&a.file), seq(&b.file)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.file.cmp(&b.file),
    };
    by_file.then(a.pos.cmp(&b.pos))
}

/// `"db"."table"`, Debezium's table id.
fn table_id(db: &str, table: &str) -> String {
    format!("\"{db}\".\"{table}\"")
}

/// A change in Debezium's `tableChanges` form (a dropped table with no columns).
pub fn change_json(change: &Change) -> Json {
    const NONE: &(Vec<Column>, Vec<usize>) = &(Vec::new(), Vec::new());
    let (columns, pk) = change.def.as_ref().unwrap_or(NONE);
    let table = {
        let charset = columns.iter().find_map(|c| match c.kind {
            ColumnKind::Text { latin1 } => Some(if latin1 { "latin1" } else { "utf8mb4" }),
            _ => None,
        });
        json!({
            "defaultCharsetName": charset,
            "primaryKeyColumnNames": pk.iter().filter_map(|&i| columns.get(i)).map(|c| c.name.clone()).collect::<Vec<_>>(),
            "columns": columns.iter().enumerate().map(|(i, c)| column_json(i, c)).collect::<Vec<_>>(),
            "attributes": [],
        })
    };
    json!({"type": change.kind.name(), "id": table_id(&change.db, &change.table), "table": table, "comment": null})
}

/// `typeName`, `jdbcType`, `length`, `scale`, `charsetName`, `enumValues`.
type DebeziumType<'a> = (String, i32, Option<u64>, Option<u32>, Option<&'a str>, &'a [String]);

fn column_json(index: usize, c: &Column) -> Json {
    let (type_name, jdbc, length, scale, charset, enums): DebeziumType<'_> = match &c.kind {
        ColumnKind::Integer { bytes, unsigned } => {
            let (name, jdbc) = match bytes {
                1 => ("TINYINT", -6),
                2 => ("SMALLINT", 5),
                3 => ("MEDIUMINT", 4),
                4 => ("INT", 4),
                _ => ("BIGINT", -5),
            };
            let name = if *unsigned { format!("{name} UNSIGNED") } else { name.to_string() };
            (name, jdbc, None, None, None, &[])
        }
        ColumnKind::Bit { length } => ("BIT".into(), -7, Some(u64::from(*length)), None, None, &[]),
        ColumnKind::Float => ("FLOAT".into(), 6, None, None, None, &[]),
        ColumnKind::Double => ("DOUBLE".into(), 8, None, None, None, &[]),
        ColumnKind::Decimal { precision, scale } => {
            ("DECIMAL".into(), 3, Some(u64::from(*precision)), Some(*scale), None, &[])
        }
        ColumnKind::Date => ("DATE".into(), 91, None, None, None, &[]),
        ColumnKind::Time { fsp } => ("TIME".into(), 92, Some(u64::from(*fsp)), None, None, &[]),
        ColumnKind::DateTime { fsp } => ("DATETIME".into(), 93, Some(u64::from(*fsp)), None, None, &[]),
        ColumnKind::Timestamp { fsp } => ("TIMESTAMP".into(), 2014, Some(u64::from(*fsp)), None, None, &[]),
        ColumnKind::Year => ("YEAR".into(), 4, None, None, None, &[]),
        ColumnKind::Text { latin1 } => {
            ("VARCHAR".into(), 12, None, None, Some(if *latin1 { "latin1" } else { "utf8mb4" }), &[])
        }
        ColumnKind::Binary { pad_to: Some(n) } => ("BINARY".into(), -2, Some(*n as u64), None, None, &[]),
        ColumnKind::Binary { pad_to: None } => ("VARBINARY".into(), -3, None, None, None, &[]),
        ColumnKind::Enum { values } => ("ENUM".into(), 1, None, None, None, values.as_slice()),
        ColumnKind::Set { values } => ("SET".into(), 1, None, None, None, values.as_slice()),
        ColumnKind::Json => ("JSON".into(), 1111, None, None, None, &[]),
        ColumnKind::Unsupported { type_name } => (type_name.to_ascii_uppercase(), 1111, None, None, None, &[]),
    };
    let expression = match (&c.kind, length, scale) {
        (ColumnKind::Decimal { .. }, Some(l), Some(s)) => format!("{type_name}({l},{s})"),
        (ColumnKind::Bit { .. } | ColumnKind::Binary { .. }, Some(l), _) => format!("{type_name}({l})"),
        (ColumnKind::Time { .. } | ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. }, Some(l), _) if l > 0 => {
            format!("{type_name}({l})")
        }
        _ => type_name.clone(),
    };
    json!({
        "name": c.name,
        "jdbcType": jdbc,
        "typeName": type_name,
        "typeExpression": expression,
        "charsetName": charset,
        "length": length,
        "scale": scale,
        "position": index + 1,
        "optional": c.nullable,
        "autoIncremented": false,
        "generated": false,
        "comment": null,
        "hasDefaultValue": false,
        // Quoted as in the DDL, as Debezium's parser keeps them.
        "enumValues": (!enums.is_empty()).then(|| enums.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>()),
    })
}

/// Reads a column written by [`column_json`] (or by Debezium: `typeName`, `length`, `scale`,
/// `charsetName`, `enumValues`).
fn column_from_json(c: &Json) -> Result<Column, String> {
    let name = c["name"].as_str().ok_or("column without a name")?.to_string();
    let type_name = c["typeName"].as_str().ok_or_else(|| format!("column {name} without a typeName"))?;
    let upper = type_name.to_ascii_uppercase();
    let base = upper.split_whitespace().next().unwrap_or("");
    let unsigned = upper.contains("UNSIGNED");
    let length = c["length"].as_u64();
    let scale = c["scale"].as_u64();
    let unquote = |v: &str| match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => v.to_string(),
    };
    let enums = || -> Vec<String> {
        c["enumValues"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(unquote)).collect())
            .unwrap_or_default()
    };
    let kind = match base {
        "TINYINT" | "BOOL" | "BOOLEAN" => ColumnKind::Integer { bytes: 1, unsigned },
        "SMALLINT" => ColumnKind::Integer { bytes: 2, unsigned },
        "MEDIUMINT" => ColumnKind::Integer { bytes: 3, unsigned },
        "INT" | "INTEGER" => ColumnKind::Integer { bytes: 4, unsigned },
        "BIGINT" => ColumnKind::Integer { bytes: 8, unsigned },
        "BIT" => ColumnKind::Bit { length: length.unwrap_or(1) as u32 },
        "FLOAT" => ColumnKind::Float,
        "DOUBLE" | "REAL" => ColumnKind::Double,
        "DECIMAL" | "NUMERIC" => {
            ColumnKind::Decimal { precision: length.unwrap_or(10) as u32, scale: scale.unwrap_or(0) as u32 }
        }
        "DATE" => ColumnKind::Date,
        "TIME" => ColumnKind::Time { fsp: length.unwrap_or(0) as u32 },
        "DATETIME" => ColumnKind::DateTime { fsp: length.unwrap_or(0) as u32 },
        "TIMESTAMP" => ColumnKind::Timestamp { fsp: length.unwrap_or(0) as u32 },
        "YEAR" => ColumnKind::Year,
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" => {
            ColumnKind::Text { latin1: c["charsetName"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("latin1")) }
        }
        "BINARY" => ColumnKind::Binary { pad_to: length.map(|l| l as usize) },
        "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => ColumnKind::Binary { pad_to: None },
        "ENUM" => ColumnKind::Enum { values: enums() },
        "SET" => ColumnKind::Set { values: enums() },
        "JSON" => ColumnKind::Json,
        _ => ColumnKind::Unsupported { type_name: type_name.to_ascii_lowercase() },
    };
    Ok(Column { nullable: c["optional"].as_bool().unwrap_or(true), captured: true, kind, name })
}

fn change_from_json(c: &Json) -> Result<Change, String> {
    let kind = match c["type"].as_str() {
        Some("CREATE") => ChangeKind::Create,
        Some("ALTER") => ChangeKind::Alter,
        Some("DROP") => ChangeKind::Drop,
        other => return Err(format!("table change of type {other:?}")),
    };
    let id = c["id"].as_str().ok_or("table change without an id")?;
    let (db, table) = split_id(id).ok_or_else(|| format!("table id {id}"))?;
    let def = match (&c["table"], kind) {
        (_, ChangeKind::Drop) | (Json::Null, _) => None,
        (t, _) => {
            let columns = t["columns"]
                .as_array()
                .ok_or_else(|| format!("table {id} without columns"))?
                .iter()
                .map(column_from_json)
                .collect::<Result<Vec<_>, _>>()?;
            let pk = t["primaryKeyColumnNames"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str())
                        .filter_map(|n| columns.iter().position(|c| c.name == n))
                        .collect()
                })
                .unwrap_or_default();
            Some((columns, pk))
        }
    };
    Ok(Change { kind, db, table, def })
}

/// `"db"."table"` (or `db.table`) → (db, table).
fn split_id(id: &str) -> Option<(String, String)> {
    if let Some(rest) = id.strip_prefix('"') {
        let (db, rest) = rest.split_once("\".\"")?;
        return Some((db.to_string(), rest.strip_suffix('"')?.to_string()));
    }
    id.split_once('.').map(|(d, t)| (d.to_string(), t.to_string()))
}

/// A record's server (`source.server`) and content.
fn parse_record(bytes: &[u8]) -> Result<(Option<String>, Record), String> {
    let v: Json = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let server = v["source"]["server"].as_str().map(String::from);
    let position = v["position"].as_object().ok_or("no position")?;
    let (position, _) = event::parse_offset(position)?;
    let changes = match v["tableChanges"].as_array() {
        Some(a) => a.iter().map(change_from_json).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok((server, Record { position, changes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: ColumnKind, nullable: bool) -> Column {
        Column { name: name.into(), kind, nullable, captured: true }
    }

    #[test]
    fn every_column_kind_survives_the_history_format() {
        let kinds = vec![
            ColumnKind::Integer { bytes: 1, unsigned: false },
            ColumnKind::Integer { bytes: 2, unsigned: true },
            ColumnKind::Integer { bytes: 3, unsigned: false },
            ColumnKind::Integer { bytes: 4, unsigned: true },
            ColumnKind::Integer { bytes: 8, unsigned: true },
            ColumnKind::Bit { length: 13 },
            ColumnKind::Float,
            ColumnKind::Double,
            ColumnKind::Decimal { precision: 12, scale: 3 },
            ColumnKind::Date,
            ColumnKind::Time { fsp: 3 },
            ColumnKind::DateTime { fsp: 6 },
            ColumnKind::Timestamp { fsp: 0 },
            ColumnKind::Year,
            ColumnKind::Text { latin1: true },
            ColumnKind::Text { latin1: false },
            ColumnKind::Binary { pad_to: Some(16) },
            ColumnKind::Binary { pad_to: None },
            ColumnKind::Enum { values: vec!["a".into(), "it's".into()] },
            ColumnKind::Set { values: vec!["x".into(), "y".into()] },
            ColumnKind::Json,
            ColumnKind::Unsupported { type_name: "geometry".into() },
        ];
        let columns: Vec<Column> =
            kinds.into_iter().enumerate().map(|(i, k)| col(&format!("c{i}"), k, i % 2 == 0)).collect();
        let change = Change { kind: ChangeKind::Create, db: "shop".into(), table: "or\"ders".into(), def: None };
        let change = Change { def: Some((columns.clone(), vec![3, 1])), ..change };
        let json = change_json(&change);
        assert_eq!(json["table"]["primaryKeyColumnNames"], json!(["c3", "c1"]));
        assert_eq!(json["table"]["columns"][4]["typeName"], "BIGINT UNSIGNED");
        assert_eq!(json["table"]["columns"][8]["typeExpression"], "DECIMAL(12,3)");
        let back = change_from_json(&json).expect("parses");
        assert_eq!(back.kind, ChangeKind::Create);
        let (cols, pk) = back.def.expect("definition");
        assert_eq!(cols, columns);
        assert_eq!(pk, vec![3, 1]);
    }

    #[test]
    fn positions_order_by_file_number_then_position() {
        let p = |f: &str, pos| Position { file: f.into(), pos, ..Position::default() };
        assert_eq!(compare(&p("bin.000009", 900), &p("bin.000010", 4)), Ordering::Less);
        assert_eq!(compare(&p("bin.000010", 4), &p("bin.000010", 4)), Ordering::Equal);
        assert_eq!(compare(&p("bin.000010", 500), &p("bin.000010", 4)), Ordering::Greater);
    }

    #[test]
    fn a_debezium_record_is_read() {
        let record = br#"{"source":{"server":"dbserver1"},"position":{"ts_sec":1,"file":"mysql-bin.000003","pos":154,"snapshot":true},
            "databaseName":"inventory","ddl":"CREATE TABLE addresses ...","tableChanges":[{"type":"CREATE","id":"\"inventory\".\"addresses\"",
            "table":{"defaultCharsetName":"utf8mb4","primaryKeyColumnNames":["id"],"columns":[
              {"name":"id","jdbcType":4,"typeName":"INT","typeExpression":"INT","charsetName":null,"length":11,"position":1,"optional":false,"autoIncremented":true,"generated":true},
              {"name":"street","jdbcType":12,"typeName":"VARCHAR","typeExpression":"VARCHAR","charsetName":"utf8mb4","length":255,"position":2,"optional":false},
              {"name":"type","jdbcType":1,"typeName":"ENUM","typeExpression":"ENUM","charsetName":"utf8mb4","length":1,"position":3,"optional":false,"enumValues":["'SHIPPING'","'BILLING'"]}]}}]}"#;
        let (server, r) = parse_record(record).expect("parses");
        assert_eq!(server.as_deref(), Some("dbserver1"));
        assert_eq!((r.position.file.as_str(), r.position.pos), ("mysql-bin.000003", 154));
        let (cols, pk) = r.changes[0].def.clone().expect("definition");
        assert_eq!(r.changes[0].table, "addresses");
        assert_eq!(pk, vec![0]);
        assert_eq!(cols[0].kind, ColumnKind::Integer { bytes: 4, unsigned: false });
        assert!(!cols[1].nullable);
        assert_eq!(cols[2].kind, ColumnKind::Enum { values: vec!["SHIPPING".into(), "BILLING".into()] });
    }
}
