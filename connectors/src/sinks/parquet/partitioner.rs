//! Confluent's partitioners (which directory a record's file is in) and timestamp extractors.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use sluice_api::{SinkRecord, Value};

const PREFIX: &str = "io.confluent.connect.storage.partitioner.";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// `partitioner.class` with its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionerKind {
    /// `partition=<kafka partition>`.
    Default,
    /// `<field>=<value>/...` for each `partition.field.name`.
    Field(Vec<String>),
    /// `path.format` of the record time, bucketed by `partition.duration.ms`.
    Time {
        /// The pattern and zone.
        format: TimeFormat,
        /// `partition.duration.ms`.
        duration_ms: i64,
    },
}

impl PartitionerKind {
    fn short(class: &str) -> &str {
        let c = class.trim();
        c.strip_prefix(PREFIX).unwrap_or(c)
    }

    /// Validator of `partitioner.class`.
    pub fn check_class(class: &str) -> Result<(), String> {
        match Self::short(class) {
            "DefaultPartitioner" | "default" | "FieldPartitioner" | "field" | "TimeBasedPartitioner" | "time" | "DailyPartitioner" | "daily"
            | "HourlyPartitioner" | "hourly" => Ok(()),
            other => Err(format!(
                "{other} is not a known partitioner; use DefaultPartitioner, FieldPartitioner, TimeBasedPartitioner, DailyPartitioner or HourlyPartitioner (with or without {PREFIX})"
            )),
        }
    }

    /// Builds the partitioner; an error names the key at fault.
    pub fn parse(
        class: &str,
        fields: &[String],
        path_format: &str,
        duration_ms: i64,
        zone: Zone,
    ) -> Result<PartitionerKind, (&'static str, String)> {
        let time = |pattern: &str, duration_ms: i64| -> Result<PartitionerKind, (&'static str, String)> {
            let format = TimeFormat::new(pattern, zone).map_err(|e| ("path.format", e))?;
            Ok(PartitionerKind::Time { format, duration_ms })
        };
        match Self::short(class) {
            "FieldPartitioner" | "field" => {
                let fields: Vec<String> =
                    fields.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
                if fields.is_empty() {
                    return Err(("partition.field.name", "required by FieldPartitioner".to_string()));
                }
                Ok(PartitionerKind::Field(fields))
            }
            "TimeBasedPartitioner" | "time" => {
                if path_format.trim().is_empty() {
                    return Err((
                        "path.format",
                        "required by TimeBasedPartitioner (e.g. 'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH)".to_string(),
                    ));
                }
                if duration_ms <= 0 {
                    return Err((
                        "partition.duration.ms",
                        "required by TimeBasedPartitioner (e.g. 3600000)".to_string(),
                    ));
                }
                time(path_format, duration_ms)
            }
            "DailyPartitioner" | "daily" => time("'year'=YYYY/'month'=MM/'day'=dd", DAY_MS),
            "HourlyPartitioner" | "hourly" => time("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH", HOUR_MS),
            _ => Ok(PartitionerKind::Default),
        }
    }

    /// The encoded partition (directory below the topic) of a record with time `ts_ms`.
    pub fn encode(&self, record: &SinkRecord, ts_ms: i64) -> Result<String, String> {
        match self {
            PartitionerKind::Default => Ok(format!("partition={}", record.kafka_partition)),
            PartitionerKind::Field(fields) => {
                let mut parts = Vec::with_capacity(fields.len());
                for f in fields {
                    let text = match lookup(&record.value, f).map(Cow::into_owned) {
                        None | Some(Value::Null) => "null".to_string(),
                        Some(
                            v @ (Value::Int8(_)
                            | Value::Int16(_)
                            | Value::Int32(_)
                            | Value::Int64(_)
                            | Value::Boolean(_)
                            | Value::String(_)),
                        ) => match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                        Some(other) => {
                            return Err(format!(
                            "partition field {f} has a {} value; FieldPartitioner takes integers, strings and booleans",
                            kind_name(&other)
                        ))
                        }
                    };
                    if text.contains('/') {
                        return Err(format!("partition field {f} value {text:?} contains '/'"));
                    }
                    parts.push(format!("{f}={text}"));
                }
                Ok(parts.join("/"))
            }
            PartitionerKind::Time { format, duration_ms } => Ok(format.format_bucket(ts_ms, *duration_ms)),
        }
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Float32(_) | Value::Float64(_) => "floating-point",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "array",
        Value::Map(_) | Value::Json(_) => "map",
        Value::Struct(_) => "struct",
        Value::Decimal(_) => "decimal",
        Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => "date/time",
        _ => "scalar",
    }
}

/// A value inside a struct, map or schemaless JSON document by dotted path.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<Cow<'a, Value>> {
    if let Value::Json(text) = value {
        let root: serde_json::Value = serde_json::from_str(text).ok()?;
        let mut cur = &root;
        for part in path.split('.') {
            cur = cur.get(part)?;
        }
        return Some(Cow::Owned(from_json(cur)));
    }
    let mut cur = value;
    for part in path.split('.') {
        cur = match cur {
            Value::Struct(s) => s.get(part)?,
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(k, Value::String(s) if s == part)).map(|(_, v)| v)?
            }
            _ => return None,
        };
    }
    Some(Cow::Borrowed(cur))
}

fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        other => Value::Json(other.to_string()),
    }
}

/// `timestamp.extractor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extractor {
    /// The worker's clock when the record is written.
    Wallclock,
    /// The Kafka record's timestamp.
    Record,
    /// A value field (dotted path).
    RecordField(String),
}

impl Extractor {
    /// Validator of `timestamp.extractor`.
    pub fn check_name(v: &str) -> Result<(), String> {
        Self::parse(v, "timestamp").map(|_| ())
    }

    /// From `timestamp.extractor` and `timestamp.field`.
    pub fn parse(name: &str, field: &str) -> Result<Extractor, String> {
        let short = name.trim().rsplit('.').next().unwrap_or_default();
        match short {
            "Wallclock" | "WallclockTimestampExtractor" => Ok(Extractor::Wallclock),
            "Record" | "RecordTimestampExtractor" => Ok(Extractor::Record),
            "RecordField" | "RecordFieldTimestampExtractor" => {
                if field.trim().is_empty() {
                    Err("RecordField needs timestamp.field".to_string())
                } else {
                    Ok(Extractor::RecordField(field.trim().to_string()))
                }
            }
            _ => Err(format!("{name}: use Wallclock, Record or RecordField")),
        }
    }

    /// The record's time in epoch milliseconds.
    pub fn extract(&self, record: &SinkRecord, now_ms: i64) -> Result<i64, String> {
        match self {
            Extractor::Wallclock => Ok(now_ms),
            Extractor::Record => record
                .timestamp
                .filter(|t| *t >= 0)
                .ok_or_else(|| "the record has no Kafka timestamp (timestamp.extractor=Record)".to_string()),
            Extractor::RecordField(path) => match lookup(&record.value, path).map(Cow::into_owned) {
                Some(Value::Timestamp(ms) | Value::Int64(ms)) => Ok(ms),
                Some(Value::Int32(n)) => Ok(i64::from(n)),
                Some(Value::String(s)) => {
                    parse_time(&s).ok_or_else(|| format!("timestamp field {path} is {s:?}, not an ISO-8601 date-time"))
                }
                Some(Value::Null) | None => Err(format!("timestamp field {path} is missing or null")),
                Some(other) => Err(format!("timestamp field {path} is a {} value, not a time", kind_name(&other))),
            },
        }
    }
}

/// RFC 3339 (or an ISO-8601 date-time without zone, taken as UTC) to epoch milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    None
}

/// The `timezone` of time partitions: a fixed offset, or a named (IANA) zone whose offset follows
/// daylight saving time, as Joda's `DateTimeZone.forID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Seconds east of UTC.
    Fixed(i32),
    /// A tz database zone such as `Europe/Paris` or `America/Los_Angeles`.
    Named(chrono_tz::Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Fixed(0)
    }
}

impl Zone {
    /// Parses `timezone`: UTC, GMT, Z, a fixed offset (+02:00, -0530, UTC+1) or a tz database name.
    pub fn parse(v: &str) -> Result<Zone, String> {
        match TimeFormat::parse_zone(v) {
            Ok(s) => Ok(Zone::Fixed(s)),
            Err(_) => v.trim().parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
                format!("{v}: not a time zone (UTC, a fixed offset such as +02:00, or a tz database name such as Europe/Paris)")
            }),
        }
    }

    /// The zone's offset from UTC at the instant `utc_ms`, in seconds.
    pub fn offset_s(&self, utc_ms: i64) -> i32 {
        use chrono::Offset;
        match self {
            Zone::Fixed(s) => *s,
            Zone::Named(tz) => chrono::DateTime::from_timestamp_millis(utc_ms)
                .map(|t| t.with_timezone(tz).offset().fix().local_minus_utc())
                .unwrap_or(0),
        }
    }
}

/// A Joda-Time pattern compiled for numeric fields, in a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    parts: Vec<Part>,
    /// The zone its fields are in.
    pub zone: Zone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// Field letter and count.
    Field(char, usize),
}

impl TimeFormat {
    /// Compiles `pattern`; letters other than the numeric date fields are refused.
    pub fn new(pattern: &str, zone: Zone) -> Result<TimeFormat, String> {
        let mut parts = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        let mut lit = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    lit.push('\'');
                    i += 2;
                    continue;
                }
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == '\'')
                    .ok_or_else(|| format!("{pattern}: unterminated quote"))?;
                lit.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            } else if c.is_ascii_alphabetic() {
                let n = chars[i..].iter().take_while(|&&x| x == c).count();
                if !"yYMdHmsSDkhx".contains(c) || (c == 'M' && n > 2) {
                    return Err(format!(
                        "{pattern}: pattern letter {} is not supported (numeric fields only: YYYY/yyyy, MM, dd, HH, mm, ss, SSS, DDD; quote literal text as 'year')",
                        c.to_string().repeat(n)
                    ));
                }
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                parts.push(Part::Field(c, n));
                i += n;
            } else {
                lit.push(c);
                i += 1;
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(TimeFormat { parts, zone })
    }

    /// Parses a fixed zone: UTC, GMT, Z, or an offset (+02:00, -0530, UTC+1); see [`Zone::parse`]
    /// for named zones.
    pub fn parse_zone(v: &str) -> Result<i32, String> {
        let t = v.trim();
        let rest = t.strip_prefix("UTC").or_else(|| t.strip_prefix("GMT")).unwrap_or(t);
        if rest.is_empty() || rest == "Z" {
            return Ok(0);
        }
        let bad = || format!("{v}: not UTC or a fixed offset such as +02:00");
        let (sign, digits) = match rest.as_bytes().first() {
            Some(b'+') => (1, &rest[1..]),
            Some(b'-') => (-1, &rest[1..]),
            _ => return Err(bad()),
        };
        let digits: String = digits.chars().filter(|c| *c != ':').collect();
        let (h, m) = match digits.len() {
            1 | 2 => (digits.parse::<i32>().map_err(|_| bad())?, 0),
            4 => (digits[..2].parse::<i32>().map_err(|_| bad())?, digits[2..].parse::<i32>().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        if h > 18 || m > 59 {
            return Err(bad());
        }
        Ok(sign * (h * 3600 + m * 60))
    }

    /// The directory of the bucket of width `duration_ms` that contains `ts_ms`, as Confluent's
    /// TimeBasedPartitioner: the bucket starts at a multiple of the duration in local time.
    pub fn format_bucket(&self, ts_ms: i64, duration_ms: i64) -> String {
        let local = ts_ms + i64::from(self.zone.offset_s(ts_ms)) * 1000;
        let bucket = local.div_euclid(duration_ms) * duration_ms;
        self.format_local(bucket)
    }

    /// Formats local epoch milliseconds.
    pub fn format_local(&self, local_ms: i64) -> String {
        let t = DateTime::from_timestamp_millis(local_ms).unwrap_or_default().naive_utc();
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Field(c, n) => {
                    let v: i64 = match c {
                        'y' | 'Y' | 'x' => {
                            if *n == 2 {
                                i64::from(t.year().rem_euclid(100))
                            } else {
                                i64::from(t.year())
                            }
                        }
                        'M' => i64::from(t.month()),
                        'd' => i64::from(t.day()),
                        'D' => i64::from(t.ordinal()),
                        'H' => i64::from(t.hour()),
                        'k' => i64::from(if t.hour() == 0 { 24 } else { t.hour() }),
                        'h' => i64::from(if t.hour().is_multiple_of(12) { 12 } else { t.hour() % 12 }),
                        'm' => i64::from(t.minute()),
                        's' => i64::from(t.second()),
                        _ => i64::from(t.nanosecond() / 1_000_000),
                    };
                    out.push_str(&format!("{v:0width$}", width = *n));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{Schema, Struct};
    use std::sync::Arc;

    fn rec(value: Value, ts: Option<i64>) -> SinkRecord {
        SinkRecord {
            topic: "t".into(),
            original_topic: None,
            kafka_partition: 3,
            kafka_offset: 7,
            timestamp: ts,
            timestamp_type: Default::default(),
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value,
            headers: vec![],
        }
    }

    #[test]
    fn hourly_paths_and_buckets() {
        let p = PartitionerKind::parse(
            "io.confluent.connect.storage.partitioner.HourlyPartitioner",
            &[],
            "",
            -1,
            Zone::Fixed(0),
        )
        .expect("ok");
        // 2024-03-10T23:59:59.999Z and the next millisecond.
        let r = rec(Value::Null, None);
        assert_eq!(p.encode(&r, 1_710_115_199_999).expect("ok"), "year=2024/month=03/day=10/hour=23");
        assert_eq!(p.encode(&r, 1_710_115_200_000).expect("ok"), "year=2024/month=03/day=11/hour=00");
        let p = PartitionerKind::parse(
            "TimeBasedPartitioner",
            &[],
            "YYYY-MM-dd'T'HH'h'",
            4 * HOUR_MS,
            Zone::Fixed(2 * 3600),
        )
        .expect("ok");
        // 21:30Z is 23:30 at +02:00, in the 20:00-24:00 local bucket.
        assert_eq!(p.encode(&r, 1_710_106_200_000).expect("ok"), "2024-03-10T20h");
        assert!(TimeFormat::new("'year'=YYYY/MMM", Zone::Fixed(0)).is_err());
        assert!(TimeFormat::new("'year=YYYY", Zone::Fixed(0)).is_err());
    }

    #[test]
    fn zones() {
        assert_eq!(TimeFormat::parse_zone("UTC").expect("ok"), 0);
        assert_eq!(TimeFormat::parse_zone("+02:00").expect("ok"), 7200);
        assert_eq!(TimeFormat::parse_zone("GMT-0530").expect("ok"), -(5 * 3600 + 30 * 60));
        assert!(TimeFormat::parse_zone("Europe/Paris").is_err(), "a fixed offset only");
        assert!(Zone::parse("Mars/Olympus").expect_err("unknown").contains("tz database"));
        assert_eq!(Zone::parse("+02:00").expect("ok"), Zone::Fixed(7200));
        // Europe/Paris: +01:00 in winter, +02:00 in summer (DST from 2024-03-31 01:00 UTC).
        let paris = Zone::parse("Europe/Paris").expect("named");
        assert_eq!(paris.offset_s(1_711_846_799_000), 3600, "2024-03-31T00:59:59Z");
        assert_eq!(paris.offset_s(1_711_846_800_000), 7200, "2024-03-31T01:00:00Z");
        // Hourly directories across the change: 00:30Z is 01h Paris, 01:30Z is 03h Paris (02h skipped).
        let hourly = PartitionerKind::parse("HourlyPartitioner", &[], "", -1, paris).expect("ok");
        let r = rec(Value::Null, None);
        assert_eq!(
            hourly.encode(&r, 1_711_845_000_000).expect("ok"),
            "year=2024/month=03/day=31/hour=01",
            "2024-03-31T00:30:00Z"
        );
        assert_eq!(
            hourly.encode(&r, 1_711_848_600_000).expect("ok"),
            "year=2024/month=03/day=31/hour=03",
            "2024-03-31T01:30:00Z"
        );
        // Daily directories follow local midnight: 22:30Z on 2024-07-01 is already the 2nd in Paris.
        let daily = PartitionerKind::parse("DailyPartitioner", &[], "", -1, paris).expect("ok");
        assert_eq!(daily.encode(&r, 1_719_873_000_000).expect("ok"), "year=2024/month=07/day=02");
    }

    #[test]
    fn field_partitioner_and_extractors() {
        let schema = Arc::new(Schema::struct_of([
            ("region", Schema::string()),
            ("meta", Schema::struct_of([("ts", Schema::timestamp())])),
        ]));
        let meta = Struct { schema: schema.fields[1].schema.clone(), values: vec![Value::Timestamp(1_000)] };
        let s = Struct { schema: schema.clone(), values: vec![Value::String("eu".into()), Value::Struct(meta)] };
        let r = rec(Value::Struct(s), Some(5));
        let p = PartitionerKind::parse("FieldPartitioner", &["region".into()], "", -1, Zone::Fixed(0)).expect("ok");
        assert_eq!(p.encode(&r, 0).expect("ok"), "region=eu");
        assert_eq!(Extractor::parse("RecordField", "meta.ts").expect("ok").extract(&r, 9).expect("ok"), 1_000);
        assert_eq!(Extractor::Record.extract(&r, 9).expect("ok"), 5);
        assert_eq!(Extractor::Wallclock.extract(&r, 9).expect("ok"), 9);
        let j = rec(Value::Json(r#"{"ctx":{"at":"2024-03-10T23:00:00.250+01:00"},"n":1.5}"#.into()), None);
        assert_eq!(Extractor::RecordField("ctx.at".into()).extract(&j, 0).expect("ok"), 1_710_108_000_250);
        assert!(Extractor::RecordField("n".into()).extract(&j, 0).is_err());
        assert!(Extractor::Record.extract(&j, 0).is_err());
        let p = PartitionerKind::parse("FieldPartitioner", &["n".into(), "missing".into()], "", -1, Zone::Fixed(0))
            .expect("ok");
        assert!(p.encode(&j, 0).is_err());
    }
}
