//! ISO 8601 / RFC 3339 timestamps as tracking SDKs send them, to and from epoch milliseconds.

use sluice_api::time::{civil_from_days, days_from_civil, days_in_month};

fn digits(s: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))
}

/// Parses `2026-11-22T10:15:30.123Z`, `2026-11-22T11:15:30+01:00`, `2026-11-22 10:15:30` (UTC),
/// or `2026-11-22` (midnight UTC) into epoch milliseconds. Fractions beyond milliseconds are
/// truncated.
pub fn parse_millis(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    let (y, m, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') || !(1..=12).contains(&m) {
        return None;
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if s.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) || s.get(13) != Some(&b':') || s.get(16) != Some(&b':') {
        return None;
    }
    let (hh, mi, ss) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if s.get(i) == Some(&b'.') || s.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match s.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == s.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(s, i + 1, 2)?;
            let om = match s.len() - (i + 3) {
                0 => 0,
                3 if s[i + 3] == b':' => digits(s, i + 4, 2)?,
                2 => digits(s, i + 3, 2)?,
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let total = oh * 60 + om;
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let seconds = days * 86_400 + hh * 3600 + mi * 60 + ss - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds: `2026-11-22T10:15:30.123Z`.
pub fn format_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60);
    }
    // Every event gets three of these: digits by hand, no formatter.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    put(20, 3, ms);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_sdks_send() {
        let t = 1_795_342_530_123; // 2026-11-22T10:15:30.123Z
        assert_eq!(format_millis(t), "2026-11-22T10:15:30.123Z");
        assert_eq!(parse_millis("2026-11-22T10:15:30.123Z"), Some(t));
        assert_eq!(parse_millis("2026-11-22T11:15:30.123+01:00"), Some(t));
        assert_eq!(parse_millis("2026-11-22T05:15:30.123-0500"), Some(t));
        assert_eq!(parse_millis("2026-11-22T10:15:30.123456789Z"), Some(t));
        assert_eq!(parse_millis("2026-11-22 10:15:30.1"), Some(t - 23));
        assert_eq!(parse_millis("2026-11-22T10:15:30Z"), Some(t - 123));
        assert_eq!(parse_millis("2026-11-22"), Some(t - (10 * 3600 + 15 * 60 + 30) * 1000 - 123));
        assert_eq!(parse_millis("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            parse_millis("2024-02-29T00:00:00Z").map(format_millis).as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:15Z",
            "2026-11-22T10:15:30.Z",
            "2026-11-22T10:15:30+1",
            "2026-11-22T10:15:30Zjunk",
            "1795342530123",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad:?} was accepted");
        }
    }

    #[test]
    fn round_trips_across_years() {
        for t in [0i64, 951_782_400_000, 4_102_444_800_000, 1_795_342_530_123, -86_400_000 * 365] {
            assert_eq!(parse_millis(&format_millis(t)), Some(t), "{t}");
        }
    }
}
