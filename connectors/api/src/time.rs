//! Calendar arithmetic (proleptic Gregorian, UTC) and Java `SimpleDateFormat`-style patterns, for
//! connectors and transforms that read or write dates without a time-zone database.

/// Days since 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days in a month.
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// One piece of a date pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Year(usize),
    Month(usize),
    Day(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    Millis(usize),
    Literal(String),
}

/// A Java `SimpleDateFormat` pattern of the numeric fields `yyyy MM dd HH mm ss SSS` (any widths)
/// and quoted or punctuation literals, in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatePattern(Vec<Token>);

impl DatePattern {
    /// Parses a pattern; letters other than `y M d H m s S` are refused.
    pub fn parse(pattern: &str) -> Result<DatePattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let end = chars[i + 1..].iter().position(|x| *x == '\'').ok_or("unclosed quote in the date pattern")?;
                let lit: String = chars[i + 1..i + 1 + end].iter().collect();
                tokens.push(Token::Literal(if lit.is_empty() { "'".into() } else { lit }));
                i += end + 2;
                continue;
            }
            let run = chars[i..].iter().take_while(|x| **x == c).count();
            let t = match c {
                'y' | 'Y' => Token::Year(run),
                'M' => Token::Month(run),
                'd' => Token::Day(run),
                'H' => Token::Hour(run),
                'm' => Token::Minute(run),
                's' => Token::Second(run),
                'S' => Token::Millis(run),
                c if c.is_ascii_alphabetic() => {
                    return Err(format!("the date pattern letter '{c}' is not supported (y M d H m s S are)"))
                }
                c => Token::Literal(c.to_string().repeat(run)),
            };
            tokens.push(t);
            i += run;
        }
        Ok(DatePattern(tokens))
    }

    /// Formats epoch milliseconds (UTC).
    pub fn format(&self, millis: i64) -> String {
        let secs = millis.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, mo, d) = civil_from_days(days);
        let mut out = String::new();
        for t in &self.0 {
            let (v, w) = match t {
                Token::Year(w) => (if *w == 2 { y % 100 } else { y }, *w),
                Token::Month(w) => (mo, *w),
                Token::Day(w) => (d, *w),
                Token::Hour(w) => (rem / 3600, *w),
                Token::Minute(w) => (rem % 3600 / 60, *w),
                Token::Second(w) => (rem % 60, *w),
                Token::Millis(w) => (millis.rem_euclid(1000), *w),
                Token::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
            };
            out.push_str(&format!("{v:0w$}"));
        }
        out
    }

    /// Parses text in this pattern into epoch milliseconds (UTC); fields absent from the pattern
    /// are zero (January 1st for the date).
    pub fn parse_millis(&self, text: &str) -> Result<i64, String> {
        let b = text.as_bytes();
        let mut i = 0;
        let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) = (1970, 1, 1, 0, 0, 0, 0);
        for (n, t) in self.0.iter().enumerate() {
            if let Token::Literal(l) = t {
                if !text[i..].starts_with(l.as_str()) {
                    return Err(format!("{text:?} does not match the pattern at {i}"));
                }
                i += l.len();
                continue;
            }
            // A number: its width, or up to the next literal when the next token is one.
            let next_is_literal = matches!(self.0.get(n + 1), None | Some(Token::Literal(_)));
            let start = i;
            let width = match t {
                Token::Year(w)
                | Token::Month(w)
                | Token::Day(w)
                | Token::Hour(w)
                | Token::Minute(w)
                | Token::Second(w)
                | Token::Millis(w) => *w,
                Token::Literal(_) => 0,
            };
            while i < b.len() && b[i].is_ascii_digit() && (next_is_literal || i - start < width) {
                i += 1;
            }
            let v: i64 =
                text[start..i].parse().map_err(|_| format!("{text:?} does not match the pattern at {start}"))?;
            match t {
                Token::Year(_) => y = v,
                Token::Month(_) => mo = v,
                Token::Day(_) => d = v,
                Token::Hour(_) => h = v,
                Token::Minute(_) => mi = v,
                Token::Second(_) => s = v,
                Token::Millis(_) => ms = v,
                Token::Literal(_) => {}
            }
        }
        if i != b.len() || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
            return Err(format!("{text:?} is not a valid date for the pattern"));
        }
        Ok(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_format_and_parse() {
        let t = 1_795_342_530_123; // 2026-11-22T10:15:30.123Z
        let p = DatePattern::parse("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").expect("pattern");
        assert_eq!(p.format(t), "2026-11-22T10:15:30.123Z");
        assert_eq!(p.parse_millis("2026-11-22T10:15:30.123Z"), Ok(t));
        let day = DatePattern::parse("yyyyMMdd").expect("pattern");
        assert_eq!(day.format(t), "20261122");
        assert_eq!(day.parse_millis("20261122"), Ok(t - t.rem_euclid(86_400_000)));
        assert!(DatePattern::parse("EEE").is_err());
        assert!(day.parse_millis("20261322").is_err());
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
