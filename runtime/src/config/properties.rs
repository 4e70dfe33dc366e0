//! Java `.properties` parsing, as `java.util.Properties.load`: `key=value`, `key: value` or
//! `key value`; `#`/`!` comments; `\` line continuations; `\t \n \r \f \uXXXX` escapes.

use sluice_api::ConfigMap;

/// A `.properties` file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PropertiesError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `.properties` text into a map; later keys win, as in Java.
pub fn parse_properties(text: &str) -> Result<ConfigMap, PropertiesError> {
    let mut map = ConfigMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((idx, raw)) = lines.next() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = String::from(trimmed);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|m| PropertiesError { line: idx + 1, message: m })?;
        let value = unescape(value).map_err(|m| PropertiesError { line: idx + 1, message: m })?;
        map.insert(key, value);
    }
    Ok(map)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let key_end = i.min(bytes.len());
    let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (&line[..key_end], rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("malformed \\uXXXX escape: \\u{hex}"))?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_properties() {
        let text = "# comment\n! other\nname=local-file-source\nconnector.class : FileStreamSource\n\
                    tasks.max 1\nfile=/tmp/a\\\n    b.txt\nkey\\=with\\:sep = v\\u00e9\nempty=\n  spaced.key   =   value  \n";
        let map = parse_properties(text).expect("valid");
        assert_eq!(map["name"], "local-file-source");
        assert_eq!(map["connector.class"], "FileStreamSource");
        assert_eq!(map["tasks.max"], "1");
        assert_eq!(map["file"], "/tmp/ab.txt");
        assert_eq!(map["key=with:sep"], "vé");
        assert_eq!(map["empty"], "");
        assert_eq!(map["spaced.key"], "value  ");
        assert_eq!(map.len(), 7);
    }

    #[test]
    fn malformed_unicode_escape_names_the_line() {
        let err = parse_properties("a=1\nb=\\uZZZZ\n").expect_err("bad escape");
        assert_eq!(err.line, 2);
    }
}
