//! Table schemas read from the binlog itself: with `binlog_row_metadata=FULL` (MariaDB 10.5+,
//! MySQL 8.0.1+) every table-map event carries column names, signedness, character sets, ENUM/SET
//! values and the primary key, so rows are decoded with the schema in force at their position,
//! whatever DDL ran on the server since. Without that metadata, `information_schema` is used.

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;

use super::config::MySqlConfig;
use super::schema::{Column, ColumnKind, Table};

/// Character set ids of latin1 collations.
fn is_latin1(collation: u16) -> bool {
    matches!(collation, 5 | 8 | 15 | 31 | 47 | 48 | 49 | 94)
}

/// The `binary` character set.
const BINARY: u16 = 63;

fn is_numeric(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
    )
}

fn is_character(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
    )
}

/// The table described by a table-map event, or `None` when the event carries no column names.
pub fn table_from_map(tme: &TableMapEvent<'_>, config: &MySqlConfig) -> Option<Table> {
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).ok()?;
    let names: Vec<String> =
        meta.iter_column_name().map(|n| n.map(|n| n.name().into_owned())).collect::<Result<_, _>>().ok()?;
    let count = tme.columns_count() as usize;
    if names.len() != count {
        return None;
    }
    let mut enums: Vec<Vec<String>> = Vec::new();
    let mut sets: Vec<Vec<String>> = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.ok()? {
            OptionalMetadataField::EnumStrValue(v) => {
                for column in v.iter_values() {
                    enums.push(column.ok()?.values().iter().map(|s| s.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(v) => {
                for column in v.iter_values() {
                    sets.push(column.ok()?.values().iter().map(|s| s.value().into_owned()).collect());
                }
            }
            _ => {}
        }
    }
    let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
    let mut unsigned = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let nullable = tme.null_bitmask();
    let db = tme.database_name().into_owned();
    let table = tme.table_name().into_owned();
    let mut columns = Vec::with_capacity(count);
    for (i, name) in names.into_iter().enumerate() {
        let t = tme.get_column_type(i).ok()??;
        let m = tme.get_column_metadata(i).unwrap_or(&[]);
        let byte = |k: usize| u32::from(m.get(k).copied().unwrap_or(0));
        let is_unsigned = if is_numeric(t) { unsigned.next().unwrap_or(false) } else { false };
        let charset = if is_character(t) { charsets.next().and_then(Result::ok) } else { None };
        use ColumnType::*;
        let kind = match t {
            MYSQL_TYPE_TINY => ColumnKind::Integer { bytes: 1, unsigned: is_unsigned },
            MYSQL_TYPE_SHORT => ColumnKind::Integer { bytes: 2, unsigned: is_unsigned },
            MYSQL_TYPE_INT24 => ColumnKind::Integer { bytes: 3, unsigned: is_unsigned },
            MYSQL_TYPE_LONG => ColumnKind::Integer { bytes: 4, unsigned: is_unsigned },
            MYSQL_TYPE_LONGLONG => ColumnKind::Integer { bytes: 8, unsigned: is_unsigned },
            MYSQL_TYPE_FLOAT => ColumnKind::Float,
            MYSQL_TYPE_DOUBLE => ColumnKind::Double,
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => ColumnKind::Decimal { precision: byte(0), scale: byte(1) },
            MYSQL_TYPE_BIT => ColumnKind::Bit { length: byte(1) * 8 + byte(0) },
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnKind::Date,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => ColumnKind::Time { fsp: byte(0) },
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => ColumnKind::DateTime { fsp: byte(0) },
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => ColumnKind::Timestamp { fsp: byte(0) },
            MYSQL_TYPE_YEAR => ColumnKind::Year,
            MYSQL_TYPE_ENUM => ColumnKind::Enum { values: enums.next().unwrap_or_default() },
            MYSQL_TYPE_SET => ColumnKind::Set { values: sets.next().unwrap_or_default() },
            MYSQL_TYPE_JSON => ColumnKind::Json,
            MYSQL_TYPE_STRING if charset == Some(BINARY) => {
                // CHAR/BINARY length: the high bits of byte 0 extend byte 1 (see mysql_common).
                let (b0, b1) = (byte(0) as usize, byte(1) as usize);
                let len = if (b0 & 0x30) != 0x30 { b1 | (((b0 & 0x30) ^ 0x30) << 4) } else { b1 };
                ColumnKind::Binary { pad_to: Some(len) }
            }
            _ if is_character(t) && charset == Some(BINARY) => ColumnKind::Binary { pad_to: None },
            _ if is_character(t) => ColumnKind::Text { latin1: charset.is_some_and(is_latin1) },
            other => ColumnKind::Unsupported { type_name: format!("{other:?}") },
        };
        columns.push(Column {
            captured: config.captures_column(&db, &table, &name),
            nullable: nullable.get(i).is_some_and(|b| *b),
            kind,
            name,
        });
    }
    let primary_key: Vec<usize> =
        meta.iter_primary_key().filter_map(Result::ok).map(|i| i as usize).filter(|&i| i < count).collect();
    Some(Table::new(&db, &table, columns, primary_key, config))
}
