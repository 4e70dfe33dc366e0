//! Table schemas (read from `information_schema`) and Debezium's column type mapping: Connect schema
//! per column, and values from snapshot text rows and from binlog rows.

use std::sync::Arc;

use base64::Engine;
use mysql_async::binlog::value::BinlogValue;
use sluice_api::{Decimal, Schema, SchemaRef, Struct, Value};

use super::config::{BigintUnsignedMode, BinaryMode, DecimalMode, MySqlConfig, Shape, TimeMode};

/// Debezium's temporal and data schema names.
pub mod names {
    /// Days since the epoch (INT32).
    pub const DATE: &str = "io.debezium.time.Date";
    /// Milliseconds since the epoch (INT64).
    pub const TIMESTAMP: &str = "io.debezium.time.Timestamp";
    /// Microseconds since the epoch (INT64).
    pub const MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
    /// Microseconds past midnight (INT64).
    pub const MICRO_TIME: &str = "io.debezium.time.MicroTime";
    /// ISO-8601 text with offset (STRING).
    pub const ZONED_TIMESTAMP: &str = "io.debezium.time.ZonedTimestamp";
    /// Year (INT32).
    pub const YEAR: &str = "io.debezium.time.Year";
    /// ENUM value (STRING).
    pub const ENUM: &str = "io.debezium.data.Enum";
    /// SET value (STRING).
    pub const ENUM_SET: &str = "io.debezium.data.EnumSet";
    /// JSON document (STRING).
    pub const JSON: &str = "io.debezium.data.Json";
    /// BIT(n>1) (BYTES, little-endian).
    pub const BITS: &str = "io.debezium.data.Bits";
}

/// The MySQL type of a column, as far as the mapping needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// TINYINT..BIGINT; `bytes` is the storage size (1, 2, 3, 4, 8).
    Integer { bytes: u8, unsigned: bool },
    /// BIT(n).
    Bit { length: u32 },
    /// FLOAT.
    Float,
    /// DOUBLE / REAL.
    Double,
    /// DECIMAL / NUMERIC.
    Decimal { precision: u32, scale: u32 },
    /// DATE.
    Date,
    /// TIME(fsp).
    Time { fsp: u32 },
    /// DATETIME(fsp).
    DateTime { fsp: u32 },
    /// TIMESTAMP(fsp).
    Timestamp { fsp: u32 },
    /// YEAR.
    Year,
    /// CHAR/VARCHAR/TEXT; `latin1` when the bytes are ISO-8859-1 rather than UTF-8.
    Text { latin1: bool },
    /// BINARY/VARBINARY/BLOB; `pad_to` is BINARY(n)'s n (the binlog strips trailing zero bytes).
    Binary { pad_to: Option<usize> },
    /// ENUM with its values in order.
    Enum { values: Vec<String> },
    /// SET with its values in order.
    Set { values: Vec<String> },
    /// JSON (MySQL's binary JSON; MariaDB's JSON is LONGTEXT).
    Json,
    /// GEOMETRY and other types we do not decode.
    Unsupported { type_name: String },
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: ColumnKind,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Whether the connector publishes it (`column.include/exclude.list`).
    pub captured: bool,
}

/// One table with its Connect schemas.
#[derive(Debug, Clone)]
pub struct Table {
    /// Database.
    pub db: String,
    /// Table.
    pub name: String,
    /// Every column, in table order (binlog rows carry all of them).
    pub columns: Vec<Column>,
    /// Indexes of the primary-key columns, in key order.
    pub primary_key: Vec<usize>,
    /// Key struct schema; `None` without a primary key (null keys).
    pub key_schema: Option<SchemaRef>,
    /// Row struct schema (`<prefix>.<db>.<table>.Value`).
    pub value_schema: SchemaRef,
    /// Envelope schema (`<prefix>.<db>.<table>.Envelope`).
    pub envelope_schema: SchemaRef,
    /// Output topic.
    pub topic: String,
    /// Shaping of character columns (`column.mask.with.N.chars`, `column.truncate.to.N.chars`):
    /// column index and rule, the first matching rule of each column.
    pub shapes: Vec<(usize, Shape)>,
}

/// A conversion problem, named for its column.
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ValueError {
    /// The column.
    pub column: String,
    /// What went wrong.
    pub message: String,
}

impl ColumnKind {
    /// Parses `information_schema.COLUMNS` (`DATA_TYPE`, `COLUMN_TYPE`, precision, scale, datetime
    /// precision, character set).
    pub fn from_information_schema(
        data_type: &str,
        column_type: &str,
        numeric_precision: Option<u64>,
        numeric_scale: Option<u64>,
        datetime_precision: Option<u64>,
        charset: Option<&str>,
    ) -> ColumnKind {
        let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
        let fsp = datetime_precision.unwrap_or(0) as u32;
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" => ColumnKind::Integer { bytes: 1, unsigned },
            "smallint" => ColumnKind::Integer { bytes: 2, unsigned },
            "mediumint" => ColumnKind::Integer { bytes: 3, unsigned },
            "int" | "integer" => ColumnKind::Integer { bytes: 4, unsigned },
            "bigint" => ColumnKind::Integer { bytes: 8, unsigned },
            "bit" => ColumnKind::Bit { length: numeric_precision.unwrap_or(1) as u32 },
            "float" if column_type.contains(',') => ColumnKind::Double,
            "float" => ColumnKind::Float,
            "double" | "real" | "double precision" => ColumnKind::Double,
            "decimal" | "numeric" | "dec" | "fixed" => ColumnKind::Decimal {
                precision: numeric_precision.unwrap_or(10) as u32,
                scale: numeric_scale.unwrap_or(0) as u32,
            },
            "date" => ColumnKind::Date,
            "time" => ColumnKind::Time { fsp },
            "datetime" => ColumnKind::DateTime { fsp },
            "timestamp" => ColumnKind::Timestamp { fsp },
            "year" => ColumnKind::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                ColumnKind::Text { latin1: charset.is_some_and(|c| c.eq_ignore_ascii_case("latin1")) }
            }
            "binary" => ColumnKind::Binary { pad_to: type_length(column_type) },
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => ColumnKind::Binary { pad_to: None },
            "enum" => ColumnKind::Enum { values: parse_enum_values(column_type) },
            "set" => ColumnKind::Set { values: parse_enum_values(column_type) },
            "json" => ColumnKind::Json,
            other => ColumnKind::Unsupported { type_name: other.to_string() },
        }
    }
}

/// The `n` of `binary(n)`.
fn type_length(column_type: &str) -> Option<usize> {
    let open = column_type.find('(')?;
    let close = column_type[open..].find(')')? + open;
    column_type[open + 1..close].trim().parse().ok()
}

/// The quoted values of `enum('a','b')` / `set('x','y')`, with `''` unescaped.
pub fn parse_enum_values(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else { return Vec::new() };
    let inner = &column_type[open + 1..column_type.rfind(')').unwrap_or(column_type.len())];
    let mut values = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    value.push('\'');
                } else {
                    break;
                }
            } else if c == '\\' {
                if let Some(escaped) = chars.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        values.push(value);
    }
    values
}

/// The Connect schema of a column, as Debezium maps it.
pub fn column_schema(column: &Column, config: &MySqlConfig) -> Schema {
    let adaptive = config.time_mode == TimeMode::AdaptiveTimeMicroseconds;
    let schema = match &column.kind {
        ColumnKind::Integer { bytes, unsigned } => match (bytes, unsigned) {
            (1, _) => Schema::int16(),
            (2, false) => Schema::int16(),
            (2, true) | (3, _) => Schema::int32(),
            (4, false) => Schema::int32(),
            (4, true) => Schema::int64(),
            (_, true) if config.bigint_unsigned_mode == BigintUnsignedMode::Precise => {
                Schema::decimal(0).parameter("connect.decimal.precision", "20")
            }
            _ => Schema::int64(),
        },
        ColumnKind::Bit { length: 1 } => Schema::boolean(),
        ColumnKind::Bit { length } => {
            Schema::bytes().named(names::BITS).version(1).parameter("length", length.to_string())
        }
        ColumnKind::Float => Schema::float32(),
        ColumnKind::Double => Schema::float64(),
        ColumnKind::Decimal { precision, scale } => match config.decimal_mode {
            DecimalMode::Precise => {
                Schema::decimal(*scale as i32).parameter("connect.decimal.precision", precision.to_string())
            }
            DecimalMode::Double => Schema::float64(),
            DecimalMode::String => Schema::string(),
        },
        ColumnKind::Date if adaptive => Schema::int32().named(names::DATE).version(1),
        ColumnKind::Date => Schema::date(),
        ColumnKind::Time { .. } if adaptive => Schema::int64().named(names::MICRO_TIME).version(1),
        ColumnKind::Time { .. } => Schema::time(),
        ColumnKind::DateTime { fsp } if adaptive && *fsp > 3 => {
            Schema::int64().named(names::MICRO_TIMESTAMP).version(1)
        }
        ColumnKind::DateTime { .. } if adaptive => Schema::int64().named(names::TIMESTAMP).version(1),
        ColumnKind::DateTime { .. } => Schema::timestamp(),
        ColumnKind::Timestamp { .. } => Schema::string().named(names::ZONED_TIMESTAMP).version(1),
        ColumnKind::Year => Schema::int32().named(names::YEAR).version(1),
        ColumnKind::Text { .. } => Schema::string(),
        ColumnKind::Binary { .. } => match config.binary_mode {
            BinaryMode::Bytes => Schema::bytes(),
            _ => Schema::string(),
        },
        ColumnKind::Enum { values } => {
            Schema::string().named(names::ENUM).version(1).parameter("allowed", values.join(","))
        }
        ColumnKind::Set { values } => {
            Schema::string().named(names::ENUM_SET).version(1).parameter("allowed", values.join(","))
        }
        ColumnKind::Json => Schema::string().named(names::JSON).version(1),
        ColumnKind::Unsupported { .. } => Schema::bytes(),
    };
    if column.nullable {
        schema.optional()
    } else {
        schema
    }
}

impl Table {
    /// Builds the table and its schemas.
    pub fn new(db: &str, name: &str, columns: Vec<Column>, primary_key: Vec<usize>, config: &MySqlConfig) -> Table {
        let base = format!("{}.{}.{}", config.topic_prefix, db, name);
        let captured = columns.iter().filter(|c| c.captured);
        let value_schema = Arc::new(
            Schema::struct_of(captured.map(|c| (c.name.clone(), column_schema(c, config))))
                .named(format!("{base}.Value"))
                .optional(),
        );
        let key_schema = (!primary_key.is_empty()).then(|| {
            Arc::new(
                Schema::struct_of(
                    primary_key.iter().map(|&i| (columns[i].name.clone(), column_schema(&columns[i], config))),
                )
                .named(format!("{base}.Key")),
            )
        });
        let envelope_schema = Arc::new(super::event::envelope_schema(&base, &value_schema));
        let shapes = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let full = format!("{db}.{name}.{}", c.name);
                config.column_shapes.iter().find(|(_, rs)| rs.iter().any(|r| r.is_match(&full))).map(|(s, _)| (i, *s))
            })
            .collect();
        Table {
            db: db.to_string(),
            name: name.to_string(),
            columns,
            primary_key,
            key_schema,
            value_schema,
            envelope_schema,
            topic: base,
            shapes,
        }
    }

    /// Applies the shaping rules to a decoded row (all columns, table order), before its key and
    /// value are built. Only text values are shaped; NULL stays NULL.
    pub fn shape(&self, row: &mut [Value]) {
        for (i, shape) in &self.shapes {
            if let Some(Value::String(text)) = row.get_mut(*i) {
                match shape {
                    Shape::Mask(n) => *text = "*".repeat(*n),
                    Shape::Truncate(n) => {
                        if let Some((cut, _)) = text.char_indices().nth(*n) {
                            text.truncate(cut);
                        }
                    }
                }
            }
        }
    }

    /// `db.table`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }

    /// The key struct of a full row (all columns in table order); `Null` without a primary key.
    pub fn key(&self, row: &[Value]) -> Value {
        match &self.key_schema {
            Some(schema) => Value::Struct(Struct {
                schema: schema.clone(),
                values: self.primary_key.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect(),
            }),
            None => Value::Null,
        }
    }

    /// The row struct of the captured columns of a full row.
    pub fn row_struct(&self, row: Vec<Value>) -> Value {
        let values = row.into_iter().zip(&self.columns).filter(|(_, c)| c.captured).map(|(v, _)| v).collect::<Vec<_>>();
        Value::Struct(Struct { schema: self.value_schema.clone(), values })
    }
}

fn err(column: &Column, message: impl Into<String>) -> ValueError {
    ValueError { column: column.name.clone(), message: message.into() }
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// ISO-8601 UTC text of epoch seconds and microseconds, as Debezium's ZonedTimestamp: fraction digits
/// as the column defines them (`fsp`), `Z` suffix.
pub fn zoned_timestamp(secs: i64, micros: u32, fsp: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if fsp > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(&frac[..fsp.min(6) as usize]);
    }
    out.push('Z');
    out
}

/// Parsed pieces of a DATE / DATETIME / TIMESTAMP text value.
fn parse_datetime_text(s: &str) -> Option<(i64, u32, u32, u32, u32, u32, u32)> {
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.splitn(3, '-');
    let y = dp.next()?.parse().ok()?;
    let mo = dp.next()?.parse().ok()?;
    let d = dp.next()?.parse().ok()?;
    let (mut h, mut mi, mut sec, mut us) = (0, 0, 0, 0);
    if let Some(t) = time {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let mut tp = hms.splitn(3, ':');
        h = tp.next()?.parse().ok()?;
        mi = tp.next()?.parse().ok()?;
        sec = tp.next()?.parse().ok()?;
        us = parse_fraction_micros(frac)?;
    }
    Some((y, mo, d, h, mi, sec, us))
}

fn parse_fraction_micros(frac: &str) -> Option<u32> {
    if frac.is_empty() {
        return Some(0);
    }
    let digits: String = frac.chars().take(6).collect();
    let n: u32 = digits.parse().ok()?;
    Some(n * 10u32.pow(6 - digits.len() as u32))
}

/// Microseconds of a TIME text value such as `-838:59:59.000000`.
fn parse_time_text(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut tp = hms.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let m: i64 = tp.next()?.parse().ok()?;
    let sec: i64 = tp.next()?.parse().ok()?;
    let micros = ((h * 60 + m) * 60 + sec) * 1_000_000 + i64::from(parse_fraction_micros(frac)?);
    Some(if neg { -micros } else { micros })
}

/// Value of a date: days, or null for MySQL's zero date (Debezium emits null or the epoch; we emit null
/// when the column allows it, else the epoch).
fn date_value(column: &Column, config: &MySqlConfig, y: i64, m: u32, d: u32) -> Value {
    if m == 0 || d == 0 {
        return zero_date(column);
    }
    let days = days_from_civil(y, m, d) as i32;
    match config.time_mode {
        TimeMode::AdaptiveTimeMicroseconds => Value::Int32(days),
        TimeMode::Connect => Value::Date(days),
    }
}

fn zero_date(column: &Column) -> Value {
    if column.nullable {
        Value::Null
    } else {
        Value::Int32(0)
    }
}

fn datetime_value(
    column: &Column,
    config: &MySqlConfig,
    parts: (i64, u32, u32, u32, u32, u32, u32),
    fsp: u32,
) -> Value {
    let (y, mo, d, h, mi, s, us) = parts;
    if mo == 0 || d == 0 {
        return if column.nullable { Value::Null } else { Value::Int64(0) };
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    let micros = secs * 1_000_000 + i64::from(us);
    match config.time_mode {
        TimeMode::AdaptiveTimeMicroseconds if fsp > 3 => Value::Int64(micros),
        TimeMode::AdaptiveTimeMicroseconds => Value::Int64(micros.div_euclid(1000)),
        TimeMode::Connect => Value::Timestamp(micros.div_euclid(1000)),
    }
}

fn time_value(config: &MySqlConfig, micros: i64) -> Value {
    match config.time_mode {
        TimeMode::AdaptiveTimeMicroseconds => Value::Int64(micros),
        TimeMode::Connect => Value::Time((micros.div_euclid(1000)) as i32),
    }
}

fn decimal_value(column: &Column, config: &MySqlConfig, text: &str, scale: u32) -> Result<Value, ValueError> {
    match config.decimal_mode {
        DecimalMode::Precise => {
            let mut d = Decimal::parse(text).map_err(|e| err(column, e))?;
            d = rescale(d, scale as i32).map_err(|e| err(column, e))?;
            Ok(Value::Decimal(d))
        }
        DecimalMode::Double => {
            text.trim().parse().map(Value::Float64).map_err(|_| err(column, format!("'{text}' is not a number")))
        }
        DecimalMode::String => Ok(Value::String(text.trim().to_string())),
    }
}

/// Brings a decimal to the column's scale (MySQL never sends more fraction digits than the scale).
fn rescale(d: Decimal, scale: i32) -> Result<Decimal, String> {
    if d.scale == scale {
        return Ok(d);
    }
    if d.scale > scale {
        return Err(format!("value has scale {} above the column's {}", d.scale, scale));
    }
    let digits = d.unscaled_string();
    let padded = format!("{digits}{}", "0".repeat((scale - d.scale) as usize));
    let mut out = Decimal::parse(&padded)?;
    out.scale = scale;
    Ok(out)
}

fn text_value(kind_latin1: bool, bytes: &[u8]) -> String {
    if kind_latin1 {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn binary_value(config: &MySqlConfig, bytes: Vec<u8>) -> Value {
    match config.binary_mode {
        BinaryMode::Bytes => Value::Bytes(bytes),
        BinaryMode::Base64 => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        BinaryMode::Base64UrlSafe => Value::String(base64::engine::general_purpose::URL_SAFE.encode(bytes)),
        BinaryMode::Hex => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

fn set_text(values: &[String], bits: u64) -> String {
    values.iter().enumerate().filter(|(i, _)| bits >> i & 1 == 1).map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(",")
}

fn integer_value(column: &Column, config: &MySqlConfig, bytes: u8, unsigned: bool, v: i128) -> Value {
    match (bytes, unsigned) {
        (1, _) | (2, false) => Value::Int16(v as i16),
        (2, true) | (3, _) | (4, false) => Value::Int32(v as i32),
        (4, true) => Value::Int64(v as i64),
        (_, true) if config.bigint_unsigned_mode == BigintUnsignedMode::Precise => {
            let _ = column;
            Value::Decimal(Decimal::from_i128(v, 0))
        }
        _ => Value::Int64(v as i64),
    }
}

/// The binlog decoder's signedness need not match the column's (it depends on optional table-map
/// metadata): reinterpret the value's bits as the column's type.
fn normalize_int(v: i128, bytes: u8, unsigned: bool) -> i128 {
    let bits = u32::from(bytes) * 8;
    let modulus = 1i128 << bits;
    let v = v.rem_euclid(modulus);
    if !unsigned && v >= modulus / 2 {
        v - modulus
    } else {
        v
    }
}

/// BIT bytes (big-endian as MySQL stores them) to Debezium's value.
fn bit_value(length: u32, mut bytes: Vec<u8>) -> Value {
    if length == 1 {
        return Value::Boolean(bytes.iter().any(|&b| b != 0));
    }
    // Debezium publishes the bits little-endian, in (length + 7) / 8 bytes.
    let n = length.div_ceil(8) as usize;
    while bytes.len() < n {
        bytes.insert(0, 0);
    }
    bytes.reverse();
    bytes.truncate(n);
    Value::Bytes(bytes)
}

/// A snapshot value, from the text protocol (`None` = SQL NULL). The session's time zone is UTC and
/// its character set utf8mb4.
pub fn from_text(column: &Column, config: &MySqlConfig, raw: Option<&[u8]>) -> Result<Value, ValueError> {
    let Some(raw) = raw else { return Ok(Value::Null) };
    let text = || std::str::from_utf8(raw).map_err(|_| err(column, "value is not valid text"));
    let bad = |what: &str| err(column, format!("'{}' is not a valid {what}", String::from_utf8_lossy(raw)));
    Ok(match &column.kind {
        ColumnKind::Integer { bytes, unsigned } => {
            let v: i128 = text()?.trim().parse().map_err(|_| bad("integer"))?;
            integer_value(column, config, *bytes, *unsigned, v)
        }
        ColumnKind::Bit { length } => bit_value(*length, raw.to_vec()),
        ColumnKind::Float => Value::Float32(text()?.trim().parse().map_err(|_| bad("float"))?),
        ColumnKind::Double => Value::Float64(text()?.trim().parse().map_err(|_| bad("double"))?),
        ColumnKind::Decimal { scale, .. } => decimal_value(column, config, text()?, *scale)?,
        ColumnKind::Date => {
            let (y, m, d, ..) = parse_datetime_text(text()?).ok_or_else(|| bad("date"))?;
            date_value(column, config, y, m, d)
        }
        ColumnKind::Time { .. } => time_value(config, parse_time_text(text()?).ok_or_else(|| bad("time"))?),
        ColumnKind::DateTime { fsp } => {
            datetime_value(column, config, parse_datetime_text(text()?).ok_or_else(|| bad("datetime"))?, *fsp)
        }
        ColumnKind::Timestamp { fsp } => {
            let (y, mo, d, h, mi, s, us) = parse_datetime_text(text()?).ok_or_else(|| bad("timestamp"))?;
            if mo == 0 || d == 0 {
                return Ok(if column.nullable { Value::Null } else { Value::String(zoned_timestamp(0, 0, *fsp)) });
            }
            let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
            Value::String(zoned_timestamp(secs, us, *fsp))
        }
        ColumnKind::Year => Value::Int32(text()?.trim().parse().map_err(|_| bad("year"))?),
        // The text protocol converts to the connection's charset (utf8mb4), whatever the column's.
        ColumnKind::Text { .. } => Value::String(text_value(false, raw)),
        ColumnKind::Binary { .. } | ColumnKind::Unsupported { .. } => binary_value(config, raw.to_vec()),
        ColumnKind::Enum { .. } | ColumnKind::Set { .. } | ColumnKind::Json => Value::String(text()?.to_string()),
    })
}

/// A binlog value (`None` = SQL NULL). Binlog TIMESTAMPs are epoch seconds, so no time zone applies.
pub fn from_binlog(column: &Column, config: &MySqlConfig, raw: Option<&BinlogValue<'_>>) -> Result<Value, ValueError> {
    use mysql_async::Value as My;
    let raw = match raw {
        None | Some(BinlogValue::Value(My::NULL)) => return Ok(Value::Null),
        Some(BinlogValue::Value(v)) => v,
        Some(BinlogValue::Jsonb(j)) => {
            let json = serde_json::Value::try_from(j.clone())
                .map_err(|e| err(column, format!("binary JSON could not be decoded: {e}")))?;
            return Ok(Value::String(json.to_string()));
        }
        Some(BinlogValue::JsonDiff(_)) => {
            return Err(err(
                column,
                "partial JSON update (binlog_row_value_options=PARTIAL_JSON) cannot be decoded; set binlog_row_value_options=''",
            ))
        }
    };
    let unexpected = || err(column, format!("unexpected binlog value {raw:?} for a {:?} column", column.kind));
    Ok(match (&column.kind, raw) {
        (ColumnKind::Integer { bytes, unsigned }, My::Int(v)) => {
            integer_value(column, config, *bytes, *unsigned, normalize_int(i128::from(*v), *bytes, *unsigned))
        }
        (ColumnKind::Integer { bytes, unsigned }, My::UInt(v)) => {
            integer_value(column, config, *bytes, *unsigned, normalize_int(i128::from(*v), *bytes, *unsigned))
        }
        (ColumnKind::Bit { length }, My::Bytes(b)) => bit_value(*length, b.clone()),
        (ColumnKind::Float, My::Float(f)) => Value::Float32(*f),
        (ColumnKind::Float, My::Double(f)) => Value::Float32(*f as f32),
        (ColumnKind::Double, My::Double(f)) => Value::Float64(*f),
        (ColumnKind::Double, My::Float(f)) => Value::Float64(f64::from(*f)),
        (ColumnKind::Decimal { scale, .. }, My::Bytes(b)) => {
            decimal_value(column, config, &String::from_utf8_lossy(b), *scale)?
        }
        (ColumnKind::Date, My::Date(y, m, d, ..)) => {
            date_value(column, config, i64::from(*y), u32::from(*m), u32::from(*d))
        }
        (ColumnKind::DateTime { fsp }, My::Date(y, mo, d, h, mi, s, us)) => datetime_value(
            column,
            config,
            (i64::from(*y), u32::from(*mo), u32::from(*d), u32::from(*h), u32::from(*mi), u32::from(*s), *us),
            *fsp,
        ),
        (ColumnKind::Time { .. }, My::Time(neg, days, h, m, s, us)) => {
            let micros = (((i64::from(*days) * 24 + i64::from(*h)) * 60 + i64::from(*m)) * 60 + i64::from(*s))
                * 1_000_000
                + i64::from(*us);
            time_value(config, if *neg { -micros } else { micros })
        }
        (ColumnKind::Timestamp { fsp }, My::Bytes(b)) => {
            // "<seconds>" or "<seconds>.<micros>" since the epoch.
            let text = String::from_utf8_lossy(b);
            let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
            let secs: i64 = secs.parse().map_err(|_| unexpected())?;
            if secs == 0 && column.nullable {
                Value::Null
            } else {
                Value::String(zoned_timestamp(secs, parse_fraction_micros(frac).unwrap_or(0), *fsp))
            }
        }
        (ColumnKind::Timestamp { fsp }, My::Int(secs)) => Value::String(zoned_timestamp(*secs, 0, *fsp)),
        (ColumnKind::Year, My::Bytes(b)) => {
            let y: i32 = String::from_utf8_lossy(b).parse().map_err(|_| unexpected())?;
            // YEAR 0000 is stored as 0 and decoded as 1900.
            Value::Int32(if y == 1900 { 0 } else { y })
        }
        (ColumnKind::Year, My::Int(y)) => Value::Int32(*y as i32),
        (ColumnKind::Text { latin1 }, My::Bytes(b)) => Value::String(text_value(*latin1, b)),
        (ColumnKind::Json, My::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (ColumnKind::Binary { pad_to }, My::Bytes(b)) => {
            let mut b = b.clone();
            if let Some(n) = pad_to {
                if b.len() < *n {
                    b.resize(*n, 0);
                }
            }
            binary_value(config, b)
        }
        (ColumnKind::Unsupported { .. }, My::Bytes(b)) => binary_value(config, b.clone()),
        (ColumnKind::Enum { values }, My::Int(i)) => {
            // 1-based index; 0 is the '' error value.
            let text = usize::try_from(*i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| values.get(i));
            Value::String(text.cloned().unwrap_or_default())
        }
        (ColumnKind::Set { values }, My::Bytes(b)) => {
            let mut bits = 0u64;
            for (i, byte) in b.iter().enumerate().take(8) {
                bits |= u64::from(*byte) << (8 * i);
            }
            Value::String(set_text(values, bits))
        }
        _ => return Err(unexpected()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for (y, m, d, days) in [(1970, 1, 1, 0), (2000, 3, 1, 11_017), (1969, 12, 31, -1), (2024, 2, 29, 19_782)] {
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(civil_from_days(days), (y, m, d));
        }
    }

    #[test]
    fn zoned_timestamps_use_the_column_precision() {
        assert_eq!(zoned_timestamp(1_700_000_000, 0, 0), "2023-11-14T22:13:20Z");
        assert_eq!(zoned_timestamp(1_700_000_000, 123_400, 3), "2023-11-14T22:13:20.123Z");
        assert_eq!(zoned_timestamp(0, 5, 6), "1970-01-01T00:00:00.000005Z");
    }

    #[test]
    fn enum_values_are_unquoted() {
        assert_eq!(parse_enum_values("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(parse_enum_values("set('x')"), vec!["x"]);
    }

    #[test]
    fn text_times_parse_with_sign_and_fraction() {
        assert_eq!(parse_time_text("-838:59:59.000000"), Some(-3_020_399_000_000));
        assert_eq!(parse_time_text("01:02:03.5"), Some(3_723_500_000));
    }

    #[test]
    fn binlog_integers_take_the_column_signedness() {
        assert_eq!(normalize_int(8_777_216, 3, false), -8_000_000);
        assert_eq!(normalize_int(-6, 1, true), 250);
        assert_eq!(normalize_int(-1, 8, true), 18_446_744_073_709_551_615);
        assert_eq!(normalize_int(18_446_744_073_709_551_615, 8, false), -1);
        assert_eq!(normalize_int(-300, 2, false), -300);
    }

    #[test]
    fn bits_are_published_little_endian() {
        assert_eq!(bit_value(1, vec![1]), Value::Boolean(true));
        assert_eq!(bit_value(16, vec![0x01, 0x02]), Value::Bytes(vec![0x02, 0x01]));
        assert_eq!(bit_value(12, vec![0x0f, 0xff]), Value::Bytes(vec![0xff, 0x0f]));
    }
}
