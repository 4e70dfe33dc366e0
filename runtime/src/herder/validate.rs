//! Kafka Connect's `ConfigInfos`: what `PUT /connector-plugins/{plugin}/config/validate` answers,
//! and the `ConfigKeyInfo` list of `GET /connector-plugins/{plugin}/config`. Pure: no I/O.

use serde::Serialize;
use sluice_api::{ConfigDef, ConfigKey, ConfigMap, ConfigType, ConnectorType, PluginInfo};

use super::validate_connector_config;

/// One key's definition, as Kafka Connect's `ConfigKeyInfo`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigKeyInfo {
    /// Key name.
    pub name: String,
    /// `STRING`, `INT`, `PASSWORD`, ...
    #[serde(rename = "type")]
    pub config_type: String,
    /// No default.
    pub required: bool,
    /// The default, as a string (`null` when required).
    pub default_value: Option<String>,
    /// `HIGH`, `MEDIUM`, `LOW`.
    pub importance: String,
    /// What the key does.
    pub documentation: String,
    /// Display group (`null` when none).
    pub group: Option<String>,
    /// Position within its group: Kafka Connect writes it as `order` (its getter's name); the
    /// `order_in_group` of its constructor is never written.
    #[serde(rename = "order")]
    pub order_in_group: i32,
    /// Display width (always `NONE`).
    pub width: &'static str,
    /// Display name (the key).
    pub display_name: String,
    /// Keys depending on this one (none).
    pub dependents: Vec<String>,
}

/// One key's value and problems, as Kafka Connect's `ConfigValueInfo`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigValueInfo {
    /// Key name.
    pub name: String,
    /// The value given (or the default); `[hidden]` for a PASSWORD.
    pub value: Option<String>,
    /// Allowed values, when the key has a fixed set.
    pub recommended_values: Vec<String>,
    /// Every problem with the value.
    pub errors: Vec<String>,
    /// Always true.
    pub visible: bool,
}

/// A definition with its value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigInfo {
    /// The key's definition.
    pub definition: ConfigKeyInfo,
    /// The key's value.
    pub value: ConfigValueInfo,
}

/// The whole answer of `config/validate`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigInfos {
    /// The connector class.
    pub name: String,
    /// Number of problems over all keys.
    pub error_count: usize,
    /// Groups, in order of first appearance.
    pub groups: Vec<String>,
    /// Every key: the common connector keys first, then the connector's own.
    pub configs: Vec<ConfigInfo>,
}

/// Group of the common keys.
const COMMON: &str = "Common";

fn key_info(key: &ConfigKey, group: Option<String>, order_in_group: i32) -> ConfigKeyInfo {
    ConfigKeyInfo {
        name: key.name.clone(),
        config_type: key.config_type.name().to_string(),
        required: key.required(),
        default_value: key.default.clone(),
        importance: key.importance.name().to_string(),
        documentation: key.documentation.clone(),
        group,
        order_in_group,
        width: "NONE",
        display_name: key.name.clone(),
        dependents: Vec::new(),
    }
}

/// The connector's own keys as `ConfigKeyInfo`s (what `GET /connector-plugins/{p}/config` lists).
pub fn plugin_config_keys(plugin: &PluginInfo) -> Vec<ConfigKeyInfo> {
    let def = (plugin.create)().as_connector().config_def();
    infos(&[(None, &def)]).into_iter().map(|(k, _)| k).collect()
}

/// Key infos over several definitions; a key without a group takes its definition's.
fn infos<'a>(defs: &[(Option<&str>, &'a ConfigDef)]) -> Vec<(ConfigKeyInfo, &'a ConfigKey)> {
    let mut out = Vec::new();
    let mut in_group: Vec<(Option<String>, i32)> = Vec::new();
    for (default_group, def) in defs {
        for key in def.keys() {
            if out.iter().any(|(k, _): &(ConfigKeyInfo, &ConfigKey)| k.name == key.name) {
                continue;
            }
            let group = key.group.clone().or_else(|| default_group.map(str::to_string));
            let n = match in_group.iter_mut().find(|(g, _)| *g == group) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    in_group.push((group.clone(), 1));
                    1
                }
            };
            out.push((key_info(key, group, n), key));
        }
    }
    out
}

/// Validates `config` for `plugin` and reports every key with its value and problems.
pub fn validate_config_infos(plugins: &[PluginInfo], plugin: &PluginInfo, config: &ConfigMap) -> ConfigInfos {
    let common = match plugin.connector_type {
        ConnectorType::Source => crate::config::source_connector_def(),
        ConnectorType::Sink => crate::config::sink_connector_def(),
    };
    let own = (plugin.create)().as_connector().config_def();
    let keys = infos(&[(Some(COMMON), &common), (None, &own)]);
    let errors = match validate_connector_config(plugins, config) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    };
    let mut configs: Vec<ConfigInfo> = keys
        .iter()
        .map(|(info, key)| {
            let value = config.get(&key.name).cloned().or_else(|| key.default.clone());
            let value = match value {
                Some(v) if key.config_type == ConfigType::Password && !v.is_empty() => Some("[hidden]".to_string()),
                other => other,
            };
            ConfigInfo {
                definition: info.clone(),
                value: ConfigValueInfo {
                    name: key.name.clone(),
                    value,
                    recommended_values: key.validator.as_ref().map(|v| v.recommended()).unwrap_or_default(),
                    errors: errors.iter().filter(|e| e.key == key.name).map(|e| e.message.clone()).collect(),
                    visible: true,
                },
            }
        })
        .collect();
    // Problems with keys no definition lists (e.g. `transforms.*`) are reported too, not lost.
    let undefined: Vec<&sluice_api::ConfigError> =
        errors.iter().filter(|e| !configs.iter().any(|c| c.value.name == e.key)).collect();
    for e in undefined {
        if let Some(c) = configs.iter_mut().find(|c| c.value.name == e.key) {
            c.value.errors.push(e.message.clone());
            continue;
        }
        configs.push(ConfigInfo {
            definition: key_info(&ConfigKey::new(e.key.clone(), ConfigType::String).default(""), None, 0),
            value: ConfigValueInfo {
                name: e.key.clone(),
                value: config.get(&e.key).cloned(),
                recommended_values: Vec::new(),
                errors: vec![e.message.clone()],
                visible: true,
            },
        });
    }
    let mut groups: Vec<String> = Vec::new();
    for c in &configs {
        if let Some(g) = &c.definition.group {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
    }
    ConfigInfos { name: plugin.class.to_string(), error_count: errors.len(), groups, configs }
}
