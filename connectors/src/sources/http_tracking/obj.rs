//! A JSON object read one level deep: its keys, and each value as raw JSON text borrowed from the
//! request body. Tracking events are mostly `properties` and `context` the collector never looks
//! into; keeping them as text means they are scanned once and copied once, never built into a
//! tree and serialized again.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One value: borrowed from the input, or JSON text made by the collector.
#[derive(Debug, Clone)]
pub enum Raw<'a> {
    /// Raw text from the request.
    Borrowed(&'a RawValue),
    /// JSON text produced here (always valid JSON).
    Owned(String),
}

impl Raw<'_> {
    /// The JSON text.
    pub fn text(&self) -> &str {
        match self {
            Raw::Borrowed(r) => r.get(),
            Raw::Owned(s) => s,
        }
    }
}

/// What kind of JSON value a raw text is (by its first byte; the text is valid JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool,
    /// a number
    Number,
    /// a string
    String,
    /// an array
    Array,
    /// an object
    Object,
}

impl Kind {
    /// Of a valid JSON text.
    pub fn of(text: &str) -> Kind {
        match text.as_bytes().first() {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::String,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    /// "a string", "an object", ... for messages.
    pub fn article(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// A shallow JSON object: keys in input order (a repeated key keeps its last value, as serde).
#[derive(Debug, Clone, Default)]
pub struct Obj<'a>(Vec<(Cow<'a, str>, Raw<'a>)>);

impl<'a> Obj<'a> {
    /// Parses `text`, which must be a JSON object.
    pub fn parse(text: &'a str) -> Result<Obj<'a>, String> {
        match Kind::of(text.trim_start()) {
            Kind::Object => serde_json::from_str(text).map_err(|e| e.to_string()),
            other if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
                Err(format!("expected a JSON object, got {}", other.article()))
            }
            _ => serde_json::from_str::<Obj<'a>>(text).map_err(|e| e.to_string()),
        }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.text())
    }

    /// The kind of `key`'s value; `None` when absent.
    pub fn kind(&self, key: &str) -> Option<Kind> {
        self.get(key).map(Kind::of)
    }

    /// Whether `key` is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.kind(key).is_some_and(|k| k != Kind::Null)
    }

    /// `key`'s value when it is a string.
    pub fn string(&self, key: &str) -> Option<Cow<'_, str>> {
        let text = self.get(key)?;
        if Kind::of(text) != Kind::String {
            return None;
        }
        let inner = &text[1..text.len() - 1];
        if inner.contains('\\') {
            serde_json::from_str::<String>(text).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }

    /// Sets `key` to the JSON text `json` (replacing any value).
    pub fn set(&mut self, key: &str, json: String) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = Raw::Owned(json),
            None => self.0.push((Cow::Owned(key.to_string()), Raw::Owned(json))),
        }
    }

    /// Sets `key` to the JSON string `s`.
    pub fn set_string(&mut self, key: &str, s: &str) {
        self.set(key, quote(s));
    }

    /// Sets `key` only when absent (or null).
    pub fn set_default(&mut self, key: &str, raw: Raw<'a>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) if Kind::of(entry.1.text()) == Kind::Null => entry.1 = raw,
            Some(_) => {}
            None => self.0.push((Cow::Owned(key.to_string()), raw)),
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Entries, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Raw<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Appends the object as JSON text.
    pub fn write(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_quoted(out, k);
            out.push(':');
            out.push_str(v.text());
        }
        out.push('}');
    }

    /// The object as JSON text.
    pub fn to_json(&self) -> String {
        let size = self.0.iter().map(|(k, v)| k.len() + v.text().len() + 4).sum::<usize>() + 2;
        let mut out = String::with_capacity(size);
        self.write(&mut out);
        out
    }
}

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

fn push_quoted(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json's escaping for the rare key or value that needs it.
        out.push_str(&serde_json::Value::String(s.to_string()).to_string());
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Obj<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor;
        impl<'de> Visitor<'de> for ObjVisitor {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Obj<'de>, M::Error> {
                let mut entries: Vec<(Cow<'de, str>, Raw<'de>)> = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = Raw::Borrowed(value),
                        None => entries.push((key, Raw::Borrowed(value))),
                    }
                }
                Ok(Obj(entries))
            }
        }
        deserializer.deserialize_map(ObjVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_raw_text_and_writes_valid_json() {
        let text = r#"{"b": 1, "a": {"x": [1, 2, "y"]}, "s": "q\"uote", "b": 2, "n": null}"#;
        let mut o = Obj::parse(text).expect("object");
        assert_eq!(o.get("a"), Some(r#"{"x": [1, 2, "y"]}"#));
        assert_eq!(o.get("b"), Some("2"), "a repeated key keeps its last value");
        assert_eq!(o.string("s").as_deref(), Some("q\"uote"));
        assert_eq!(o.kind("n"), Some(Kind::Null));
        assert!(!o.has("n") && o.has("a"));
        o.set_string("k\"ey", "v\n");
        o.set_default("n", Raw::Owned("3".into()));
        o.set_default("b", Raw::Owned("9".into()));
        o.remove("s");
        let out = o.to_json();
        let back: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(back, serde_json::json!({"b": 2, "a": {"x": [1, 2, "y"]}, "n": 3, "k\"ey": "v\n"}));
        assert!(out.starts_with(r#"{"b":2,"a":"#), "input order kept: {out}");
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert_eq!(Obj::parse("[1]").expect_err("array"), "expected a JSON object, got an array");
        assert_eq!(Obj::parse(" 3").expect_err("number"), "expected a JSON object, got a number");
        assert!(Obj::parse("{\"a\":").expect_err("truncated").contains("EOF"));
        assert!(Obj::parse("").is_err());
    }
}
