//! Typed config definitions that document themselves and validate purely (no I/O).
//!
//! One [`ConfigDef`] feeds validation, the parsed typed values and the REST
//! `/connector-plugins/{p}/config` documentation, so they never drift. Error texts follow Kafka's
//! `ConfigDef` so users recognise them.

use std::collections::BTreeMap;
use std::fmt;

/// The flat string map a connector or worker is configured with.
pub type ConfigMap = BTreeMap<String, String>;

/// Type of a config value, as Kafka's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true`/`false`.
    Boolean,
    /// Any string.
    String,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    /// Floating point.
    Double,
    /// Comma-separated list.
    List,
    /// A class name (a plugin alias here).
    Class,
    /// A secret: never shown in REST output or logs.
    Password,
}

impl ConfigType {
    /// Kafka's upper-case name (`"STRING"`, `"INT"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// How important a key is, as Kafka's `ConfigDef.Importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
}

impl Importance {
    /// Kafka's upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// A constraint on a parsed value.
#[derive(Debug, Clone)]
pub enum Validator {
    /// Numeric range, inclusive; either end open.
    Range {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
    /// One of the given strings (case-insensitive).
    OneOf(Vec<&'static str>),
    /// A non-empty string.
    NonEmpty,
    /// Any check of the raw string; returns the reason on failure.
    Custom(fn(&str) -> Result<(), String>),
}

impl Validator {
    /// At least `min`.
    pub fn at_least(min: impl Into<f64>) -> Validator {
        Validator::Range { min: Some(min.into()), max: None }
    }

    /// Between `min` and `max` inclusive.
    pub fn between(min: impl Into<f64>, max: impl Into<f64>) -> Validator {
        Validator::Range { min: Some(min.into()), max: Some(max.into()) }
    }

    fn check(&self, raw: &str, parsed: &ConfigValue) -> Result<(), String> {
        match self {
            Validator::Range { min, max } => {
                let v = match parsed {
                    ConfigValue::Int(v) => f64::from(*v),
                    ConfigValue::Long(v) => *v as f64,
                    ConfigValue::Double(v) => *v,
                    _ => return Ok(()),
                };
                match (min, max) {
                    (Some(lo), Some(hi)) if v < *lo || v > *hi => {
                        Err(format!("Value must be in the range [{}, {}]", fmt_num(*lo), fmt_num(*hi)))
                    }
                    (Some(lo), None) if v < *lo => Err(format!("Value must be at least {}", fmt_num(*lo))),
                    (None, Some(hi)) if v > *hi => Err(format!("Value must be no more than {}", fmt_num(*hi))),
                    _ => Ok(()),
                }
            }
            Validator::OneOf(options) => {
                if options.iter().any(|o| o.eq_ignore_ascii_case(raw.trim())) {
                    Ok(())
                } else {
                    Err(format!("String must be one of: {}", options.join(", ")))
                }
            }
            Validator::NonEmpty => {
                if raw.trim().is_empty() {
                    Err("String must be non-empty".to_string())
                } else {
                    Ok(())
                }
            }
            Validator::Custom(f) => f(raw),
        }
    }

    /// Allowed values, for REST `recommended_values`.
    pub fn recommended(&self) -> Vec<String> {
        match self {
            Validator::OneOf(options) => options.iter().map(|o| o.to_string()).collect(),
            _ => Vec::new(),
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One documented config key.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    /// Key name.
    pub name: String,
    /// Value type.
    pub config_type: ConfigType,
    /// Default as a string; `None` makes the key required.
    pub default: Option<String>,
    /// Importance.
    pub importance: Importance,
    /// What the key does.
    pub documentation: String,
    /// Display group.
    pub group: Option<String>,
    /// Constraint on the value.
    pub validator: Option<Validator>,
}

impl ConfigKey {
    /// A required key of the given type.
    pub fn new(name: impl Into<String>, config_type: ConfigType) -> ConfigKey {
        ConfigKey {
            name: name.into(),
            config_type,
            default: None,
            importance: Importance::Medium,
            documentation: String::new(),
            group: None,
            validator: None,
        }
    }
    /// Sets the default (the key becomes optional).
    pub fn default(mut self, value: impl Into<String>) -> ConfigKey {
        self.default = Some(value.into());
        self
    }
    /// Sets the documentation.
    pub fn doc(mut self, doc: impl Into<String>) -> ConfigKey {
        self.documentation = doc.into();
        self
    }
    /// Sets the importance.
    pub fn importance(mut self, importance: Importance) -> ConfigKey {
        self.importance = importance;
        self
    }
    /// Sets the group.
    pub fn group(mut self, group: impl Into<String>) -> ConfigKey {
        self.group = Some(group.into());
        self
    }
    /// Sets the validator.
    pub fn validator(mut self, validator: Validator) -> ConfigKey {
        self.validator = Some(validator);
        self
    }
    /// True when the key has no default.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    fn parse_value(&self, raw: &str) -> Result<ConfigValue, String> {
        let trimmed = raw.trim();
        let parsed = match self.config_type {
            ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" => ConfigValue::Boolean(true),
                "false" => ConfigValue::Boolean(false),
                _ => return Err("Expected value to be either true or false".to_string()),
            },
            ConfigType::String | ConfigType::Class => ConfigValue::String(trimmed.to_string()),
            ConfigType::Password => ConfigValue::Password(raw.to_string()),
            ConfigType::Int => ConfigValue::Int(trimmed.parse().map_err(|_| "Not a number of type INT".to_string())?),
            ConfigType::Long => {
                ConfigValue::Long(trimmed.parse().map_err(|_| "Not a number of type LONG".to_string())?)
            }
            ConfigType::Double => {
                ConfigValue::Double(trimmed.parse().map_err(|_| "Not a number of type DOUBLE".to_string())?)
            }
            ConfigType::List => ConfigValue::List(
                trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            ),
        };
        if let Some(validator) = &self.validator {
            validator.check(raw, &parsed)?;
        }
        Ok(parsed)
    }
}

/// A parsed, typed config value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// BOOLEAN.
    Boolean(bool),
    /// STRING or CLASS.
    String(String),
    /// INT.
    Int(i32),
    /// LONG.
    Long(i64),
    /// DOUBLE.
    Double(f64),
    /// LIST.
    List(Vec<String>),
    /// PASSWORD.
    Password(String),
}

/// A set of documented keys.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    /// An empty definition.
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Adds (or replaces) a key.
    pub fn define(mut self, key: ConfigKey) -> ConfigDef {
        self.keys.retain(|k| k.name != key.name);
        self.keys.push(key);
        self
    }

    /// Adds every key of `other` (replacing keys of the same name).
    pub fn merge(mut self, other: &ConfigDef) -> ConfigDef {
        for key in &other.keys {
            self = self.define(key.clone());
        }
        self
    }

    /// The keys in definition order.
    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// Looks up a key.
    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Parses and validates `config`, returning every problem at once.
    pub fn parse(&self, config: &ConfigMap) -> Result<ParsedConfig, ConfigErrors> {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for key in &self.keys {
            match config.get(&key.name).or(key.default.as_ref()) {
                None => errors.push(ConfigError::new(
                    &key.name,
                    format!("Missing required configuration \"{}\" which has no default value.", key.name),
                )),
                Some(raw) => match key.parse_value(raw) {
                    Ok(v) => {
                        values.insert(key.name.clone(), v);
                    }
                    Err(reason) => {
                        let shown = if key.config_type == ConfigType::Password { "[hidden]" } else { raw.as_str() };
                        errors.push(ConfigError::new(
                            &key.name,
                            format!("Invalid value {shown} for configuration {}: {reason}", key.name),
                        ));
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(ParsedConfig { values, originals: config.clone() })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Keys in `config` that this definition does not know (for warnings, not errors).
    pub fn unknown_keys<'a>(&self, config: &'a ConfigMap) -> Vec<&'a str> {
        config.keys().filter(|k| self.key(k).is_none()).map(String::as_str).collect()
    }
}

/// Typed values after [`ConfigDef::parse`], plus the original strings.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    values: BTreeMap<String, ConfigValue>,
    originals: ConfigMap,
}

impl ParsedConfig {
    /// The typed value of a defined key.
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        self.values.get(name)
    }
    /// A STRING, CLASS or PASSWORD value; empty when undefined.
    pub fn string(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(ConfigValue::String(s) | ConfigValue::Password(s)) => s.clone(),
            _ => String::new(),
        }
    }
    /// A STRING value, `None` when undefined or empty.
    pub fn non_empty_string(&self, name: &str) -> Option<String> {
        Some(self.string(name)).filter(|s| !s.is_empty())
    }
    /// An INT value (0 when undefined).
    pub fn int(&self, name: &str) -> i32 {
        match self.values.get(name) {
            Some(ConfigValue::Int(v)) => *v,
            _ => 0,
        }
    }
    /// A LONG value (0 when undefined).
    pub fn long(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(ConfigValue::Long(v)) => *v,
            Some(ConfigValue::Int(v)) => i64::from(*v),
            _ => 0,
        }
    }
    /// A DOUBLE value (0 when undefined).
    pub fn double(&self, name: &str) -> f64 {
        match self.values.get(name) {
            Some(ConfigValue::Double(v)) => *v,
            _ => 0.0,
        }
    }
    /// A BOOLEAN value (false when undefined).
    pub fn boolean(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(ConfigValue::Boolean(true)))
    }
    /// A LIST value (empty when undefined).
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(ConfigValue::List(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
    /// The original string map.
    pub fn originals(&self) -> &ConfigMap {
        &self.originals
    }
    /// Original keys under `prefix`, with the prefix removed (e.g. `producer.` overrides).
    pub fn originals_with_prefix(&self, prefix: &str) -> ConfigMap {
        self.originals
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|rest| (rest.to_string(), v.clone())))
            .collect()
    }
}

/// One invalid key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// The reason, in Kafka's words.
    pub message: String,
}

impl ConfigError {
    /// Builds an error for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { key: key.into(), message: message.into() }
    }
}

/// Every problem found in a config, all at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error.
    pub fn one(key: impl Into<String>, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors(vec![ConfigError::new(key, message)])
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds the errors of `other`.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }
    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
    /// Errors for one key.
    pub fn for_key(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|e| e.key == key).map(|e| e.message.as_str()).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connector configuration is invalid and contains the following {} error(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n{}", e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(ConfigKey::new("file", ConfigType::String).doc("path"))
            .define(ConfigKey::new("batch.size", ConfigType::Int).default("2000").validator(Validator::at_least(1)))
            .define(ConfigKey::new("mode", ConfigType::String).default("a").validator(Validator::OneOf(vec!["a", "b"])))
            .define(ConfigKey::new("topics", ConfigType::List).default(""))
            .define(ConfigKey::new("enabled", ConfigType::Boolean).default("false"))
            .define(ConfigKey::new("secret", ConfigType::Password).default(""))
    }

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_typed_values_and_defaults() {
        let parsed =
            def().parse(&map(&[("file", "/tmp/x"), ("topics", "a, b,,c"), ("enabled", "TRUE")])).expect("valid");
        assert_eq!(parsed.string("file"), "/tmp/x");
        assert_eq!(parsed.int("batch.size"), 2000);
        assert_eq!(parsed.list("topics"), vec!["a", "b", "c"]);
        assert!(parsed.boolean("enabled"));
    }

    #[test]
    fn reports_every_error_at_once_with_key_and_reason() {
        let errors = def()
            .parse(&map(&[("batch.size", "0"), ("mode", "z"), ("enabled", "yes"), ("secret", "s3cr3t")]))
            .expect_err("invalid");
        let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["file", "batch.size", "mode", "enabled"]);
        assert_eq!(errors.for_key("file"), vec!["Missing required configuration \"file\" which has no default value."]);
        assert_eq!(
            errors.for_key("batch.size"),
            vec!["Invalid value 0 for configuration batch.size: Value must be at least 1"]
        );
        assert_eq!(errors.for_key("mode"), vec!["Invalid value z for configuration mode: String must be one of: a, b"]);
        assert!(errors
            .to_string()
            .starts_with("Connector configuration is invalid and contains the following 4 error(s):"));
        let bad_int = def().parse(&map(&[("file", "f"), ("batch.size", "ten")])).expect_err("invalid");
        assert_eq!(
            bad_int.for_key("batch.size"),
            vec!["Invalid value ten for configuration batch.size: Not a number of type INT"]
        );
    }

    #[test]
    fn passwords_are_never_echoed() {
        let d = ConfigDef::new()
            .define(ConfigKey::new("p", ConfigType::Password).validator(Validator::Custom(|_| Err("bad".into()))));
        let errors = d.parse(&map(&[("p", "hunter2")])).expect_err("invalid");
        assert!(!errors.to_string().contains("hunter2"));
    }

    #[test]
    fn unknown_keys_are_listed() {
        let m = map(&[("file", "x"), ("flie", "typo")]);
        assert_eq!(def().unknown_keys(&m), vec!["flie"]);
    }
}
