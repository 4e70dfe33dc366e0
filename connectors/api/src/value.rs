//! Kafka Connect values, including the four built-in logical types.

use std::fmt;

use crate::schema::SchemaRef;

/// A Kafka Connect value. Logical types have their own variants so sinks can map them to native types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// null.
    Null,
    /// INT8.
    Int8(i8),
    /// INT16.
    Int16(i16),
    /// INT32.
    Int32(i32),
    /// INT64.
    Int64(i64),
    /// FLOAT32.
    Float32(f32),
    /// FLOAT64.
    Float64(f64),
    /// BOOLEAN.
    Boolean(bool),
    /// STRING.
    String(String),
    /// BYTES.
    Bytes(Vec<u8>),
    /// ARRAY.
    Array(Vec<Value>),
    /// MAP, as ordered entries (keys need not be strings).
    Map(Vec<(Value, Value)>),
    /// STRUCT.
    Struct(Struct),
    /// Decimal logical type.
    Decimal(Decimal),
    /// Date logical type: days since 1970-01-01.
    Date(i32),
    /// Time logical type: milliseconds since midnight.
    Time(i32),
    /// Timestamp logical type: milliseconds since the epoch.
    Timestamp(i64),
    /// A schemaless JSON document, already serialized: valid UTF-8 JSON text. Converters write it
    /// as the JSON it is (the JSON converter verbatim, as the payload; the String and ByteArray
    /// converters as its text), so a source that receives JSON and passes it on (the HTTP
    /// collector) need not build a value tree only to serialize it again. Never carries a schema.
    Json(String),
}

impl Value {
    /// As a JSON value: structs and maps as objects (keys as text), Decimal as a string, bytes
    /// as (lossy) UTF-8 text, logical types as their numbers.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Boolean(b) => J::Bool(*b),
            Value::Int8(n) => J::from(*n),
            Value::Int16(n) => J::from(*n),
            Value::Int32(n) | Value::Date(n) | Value::Time(n) => J::from(*n),
            Value::Int64(n) | Value::Timestamp(n) => J::from(*n),
            Value::Float32(f) => J::from(f64::from(*f)),
            Value::Float64(f) => J::from(*f),
            Value::String(s) => J::String(s.clone()),
            Value::Json(s) => serde_json::from_str(s).unwrap_or(J::Null),
            Value::Decimal(d) => J::String(d.to_string()),
            Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Value::String(s) | Value::Json(s) => s.clone(),
                            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                            Value::Array(_) | Value::Map(_) | Value::Struct(_) => k.to_json().to_string(),
                            other => other.to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
            Value::Struct(s) => {
                J::Object(s.schema.fields.iter().zip(&s.values).map(|(f, v)| (f.name.clone(), v.to_json())).collect())
            }
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int8(_) => "int8",
            Value::Int16(_) => "int16",
            Value::Int32(_) => "int32",
            Value::Int64(_) => "int64",
            Value::Float32(_) => "float32",
            Value::Float64(_) => "float64",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
            Value::Decimal(_) => "decimal",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::Json(_) => "json",
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if this is a STRING.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The approximate heap and inline bytes this value occupies, used to bound buffers: the value
    /// itself, its heap blocks, and about 16 bytes of allocator overhead per block.
    pub fn approx_size(&self) -> usize {
        const ALLOC: usize = 16;
        std::mem::size_of::<Value>()
            + match self {
                Value::String(s) | Value::Json(s) => s.len() + ALLOC,
                Value::Bytes(b) => b.len() + ALLOC,
                Value::Array(items) => items.iter().map(Value::approx_size).sum::<usize>() + ALLOC,
                Value::Map(entries) => {
                    entries.iter().map(|(k, v)| k.approx_size() + v.approx_size()).sum::<usize>() + ALLOC
                }
                Value::Struct(s) => s.values.iter().map(Value::approx_size).sum::<usize>() + ALLOC,
                Value::Decimal(d) => d.unscaled.len() + ALLOC,
                _ => 0,
            }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}

/// Renders like Java's `toString` of the Kafka Connect value (what `FileStreamSink` writes).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int8(v) => write!(f, "{v}"),
            Value::Int16(v) => write!(f, "{v}"),
            Value::Int32(v) | Value::Date(v) | Value::Time(v) => write!(f, "{v}"),
            Value::Int64(v) | Value::Timestamp(v) => write!(f, "{v}"),
            Value::Float32(v) => write!(f, "{v:?}"),
            Value::Float64(v) => write!(f, "{v:?}"),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::String(s) | Value::Json(s) => f.write_str(s),
            Value::Bytes(b) => write!(f, "{}", String::from_utf8_lossy(b)),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(s) => write!(f, "{s}"),
        }
    }
}

/// A STRUCT value: a schema and one value per field, in field order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// The STRUCT schema.
    pub schema: SchemaRef,
    /// Field values in schema order.
    pub values: Vec<Value>,
}

impl Struct {
    /// A struct with every field null.
    pub fn new(schema: SchemaRef) -> Struct {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    /// Sets a field by name; an unknown name is an error.
    pub fn put(mut self, name: &str, value: impl Into<Value>) -> Result<Struct, String> {
        let index =
            self.schema.field(name).map(|f| f.index).ok_or_else(|| format!("{name} is not a valid field name"))?;
        self.values[index] = value.into();
        Ok(self)
    }

    /// Gets a field by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.field(name).and_then(|f| self.values.get(f.index))
    }
}

impl fmt::Display for Struct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Struct{")?;
        let mut first = true;
        for (field, value) in self.schema.fields.iter().zip(&self.values) {
            if value.is_null() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={}", field.name, value)?;
        }
        f.write_str("}")
    }
}

/// An arbitrary-precision decimal: the unscaled integer as big-endian two's-complement bytes (Kafka
/// Connect's wire form) and a scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    /// Unscaled value, big-endian two's complement, minimal length (at least one byte).
    pub unscaled: Vec<u8>,
    /// Number of digits after the decimal point.
    pub scale: i32,
}

impl Decimal {
    /// From an unscaled integer and a scale.
    pub fn from_i128(unscaled: i128, scale: i32) -> Decimal {
        Decimal { unscaled: minimal_twos_complement(&unscaled.to_be_bytes()), scale }
    }

    /// From big-endian two's-complement bytes (as read from the wire) and a scale.
    pub fn from_bytes(bytes: &[u8], scale: i32) -> Decimal {
        let unscaled = if bytes.is_empty() { vec![0] } else { minimal_twos_complement(bytes) };
        Decimal { unscaled, scale }
    }

    /// Parses a plain decimal string such as `-12.340` or `1E+3`; the scale is the number of fraction digits.
    pub fn parse(text: &str) -> Result<Decimal, String> {
        let bad = || format!("'{text}' is not a decimal number");
        let t = text.trim();
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
            None => (t, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let all: String = format!("{int_part}{frac_part}");
        if !all.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mut magnitude = vec![0u8];
        for d in all.bytes() {
            mul_add(&mut magnitude, 10, u32::from(d - b'0'));
        }
        let scale = i32::try_from(frac_part.len()).map_err(|_| bad())? - exp;
        Ok(Decimal { unscaled: to_twos_complement(magnitude, negative), scale })
    }

    /// The unscaled value as i128, when it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.unscaled.len() > 16 {
            return None;
        }
        let fill = if self.unscaled.first().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[16 - self.unscaled.len()..].copy_from_slice(&self.unscaled);
        Some(i128::from_be_bytes(buf))
    }

    /// The unscaled integer in base 10, with its sign.
    pub fn unscaled_string(&self) -> String {
        let negative = self.unscaled.first().is_some_and(|b| b & 0x80 != 0);
        let mut magnitude: Vec<u8> = if negative { negate(&self.unscaled) } else { self.unscaled.clone() };
        let mut digits = Vec::new();
        loop {
            let rem = div_small(&mut magnitude, 10);
            digits.push(b'0' + rem as u8);
            if magnitude.iter().all(|&b| b == 0) {
                break;
            }
        }
        if negative {
            digits.push(b'-');
        }
        digits.reverse();
        String::from_utf8(digits).unwrap_or_default()
    }
}

/// Plain notation, like Java's `BigDecimal.toPlainString`.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.unscaled_string();
        let (sign, digits) = match s.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("", s.as_str()),
        };
        if self.scale <= 0 {
            let zeros = "0".repeat(self.scale.unsigned_abs() as usize);
            let zeros = if digits == "0" { "" } else { zeros.as_str() };
            return write!(f, "{sign}{digits}{zeros}");
        }
        let scale = self.scale as usize;
        if digits.len() > scale {
            let (i, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{i}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

fn mul_add(magnitude: &mut Vec<u8>, mul: u32, add: u32) {
    let mut carry = add;
    for byte in magnitude.iter_mut().rev() {
        let v = u32::from(*byte) * mul + carry;
        *byte = (v & 0xff) as u8;
        carry = v >> 8;
    }
    while carry > 0 {
        magnitude.insert(0, (carry & 0xff) as u8);
        carry >>= 8;
    }
}

fn div_small(magnitude: &mut [u8], div: u32) -> u32 {
    let mut rem = 0u32;
    for byte in magnitude.iter_mut() {
        let v = (rem << 8) | u32::from(*byte);
        *byte = (v / div) as u8;
        rem = v % div;
    }
    rem
}

fn negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for byte in out.iter_mut().rev() {
        let (v, overflow) = byte.overflowing_add(1);
        *byte = v;
        if !overflow {
            break;
        }
    }
    out
}

fn to_twos_complement(mut magnitude: Vec<u8>, negative: bool) -> Vec<u8> {
    magnitude.insert(0, 0);
    let bytes = if negative && magnitude.iter().any(|&b| b != 0) { negate(&magnitude) } else { magnitude };
    minimal_twos_complement(&bytes)
}

fn minimal_twos_complement(bytes: &[u8]) -> Vec<u8> {
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trips_through_bytes_and_text() {
        for (text, unscaled, scale) in [
            ("0", vec![0u8], 0),
            ("1.5", vec![15], 1),
            ("-1.5", vec![0xf1], 1),
            ("128", vec![0x00, 0x80], 0),
            ("-128", vec![0x80], 0),
            ("0.001", vec![1], 3),
            ("-0.01", vec![0xff], 2),
        ] {
            let d = Decimal::parse(text).expect("parses");
            assert_eq!((d.unscaled.clone(), d.scale), (unscaled.clone(), scale), "{text}");
            assert_eq!(d.to_string(), text);
            assert_eq!(Decimal::from_bytes(&unscaled, scale), d);
        }
    }

    #[test]
    fn decimal_beyond_i128_keeps_every_digit() {
        let text = "-12345678901234567890123456789012345678901234567890.123456789";
        let d = Decimal::parse(text).expect("parses");
        assert!(d.to_i128().is_none());
        assert_eq!(d.to_string(), text);
        assert_eq!(Decimal::from_i128(-42, 2).to_string(), "-0.42");
        assert_eq!(Decimal::from_i128(-42, 2).to_i128(), Some(-42));
        assert_eq!(Decimal::parse("1E+3").map(|d| d.to_string()), Ok("1000".to_string()));
        assert!(Decimal::parse("1.2.3").is_err());
        assert!(Decimal::parse("abc").is_err());
    }

    #[test]
    fn display_matches_java_to_string() {
        let schema = std::sync::Arc::new(crate::Schema::struct_of([
            ("id", crate::Schema::int32()),
            ("name", crate::Schema::string().optional()),
        ]));
        let s = Struct::new(schema).put("id", 7).and_then(|s| s.put("name", "x")).expect("fields exist");
        assert_eq!(Value::Struct(s).to_string(), "Struct{id=7,name=x}");
        assert_eq!(Value::Array(vec![1.into(), 2.into()]).to_string(), "[1, 2]");
    }
}
