//! A JSON writer that produces what Jackson (and so Kafka Connect's JsonConverter) writes: compact,
//! Jackson's string escapes, and Java's `Double.toString`/`Float.toString`/`BigDecimal.toString`
//! number forms.

use std::fmt::Write as _;

/// Appends a JSON string literal with Jackson's escapes (`\uXXXX` in upper-case hex for control
/// characters other than `\b \t \n \f \r`; non-ASCII is written as UTF-8).
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    // Every byte that needs escaping is ASCII, so scanning bytes keeps slices on char boundaries.
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0C => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            _ => {
                let _ = write!(out, "\\u{:04X}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Java's `Double.toString` (shortest round-trip digits): plain between 1e-3 and 1e7, else
/// `d.dddE±n`. NaN and infinities become the strings Jackson writes for them.
pub fn write_f64(out: &mut String, v: f64) {
    if !write_non_finite(out, v) {
        java_float(out, &format!("{v:e}"), v == 0.0, v.is_sign_negative(), v.abs());
    }
}

/// Java's `Float.toString`.
pub fn write_f32(out: &mut String, v: f32) {
    if !write_non_finite(out, f64::from(v)) {
        java_float(out, &format!("{v:e}"), v == 0.0, v.is_sign_negative(), f64::from(v.abs()));
    }
}

/// Writes NaN and the infinities as Jackson does (quoted); false for finite values.
fn write_non_finite(out: &mut String, v: f64) -> bool {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
    } else {
        return false;
    }
    true
}

fn java_float(out: &mut String, sci: &str, zero: bool, negative: bool, abs: f64) {
    if zero {
        out.push_str(if negative { "-0.0" } else { "0.0" });
        return;
    }
    // `sci` is Rust's shortest round-trip form: "-1.2345e4", "5e-324".
    let sci = sci.trim_start_matches('-');
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if negative {
        out.push('-');
    }
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int_part, frac) = padded.split_at(int_len);
            out.push_str(int_part);
            out.push('.');
            out.push_str(if frac.is_empty() { "0" } else { frac });
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        out.push('.');
        out.push_str(if rest.is_empty() { "0" } else { rest });
        let _ = write!(out, "E{exp}");
    }
}

/// Java's `BigDecimal.toString` for an unscaled integer (base 10, with sign) and a scale.
pub fn java_big_decimal(unscaled: &str, scale: i32) -> String {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", unscaled),
    };
    let adjusted = digits.len() as i64 - 1 - i64::from(scale);
    if scale >= 0 && adjusted >= -6 {
        let scale = scale as usize;
        if scale == 0 {
            format!("{sign}{digits}")
        } else if digits.len() > scale {
            let (i, f) = digits.split_at(digits.len() - scale);
            format!("{sign}{i}.{f}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let mut s = format!("{sign}{first}");
        if !rest.is_empty() {
            s.push('.');
            s.push_str(rest);
        }
        s.push('E');
        if adjusted >= 0 {
            s.push('+');
        }
        let _ = write!(s, "{adjusted}");
        s
    }
}
