//! Config values that reference secrets: `${env:NAME}` and `${file:/path:key}` (a `.properties`
//! file), as Kafka's `EnvVarConfigProvider` and `FileConfigProvider`. Resolved values never reach
//! REST output or logs: [`mask_secrets`] shows the reference instead.

use sluice_api::{ConfigErrors, ConfigMap, ConfigType, PluginInfo};

use super::properties::parse_properties;

/// Replaces every `${env:..}` / `${file:..:..}` reference; unknown providers are left as they are.
pub fn resolve_secrets(config: &ConfigMap) -> Result<ConfigMap, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut out = ConfigMap::new();
    for (key, value) in config {
        match resolve_value(value) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(e) => errors.0.push(sluice_api::ConfigError::new(key, e)),
        }
    }
    errors.into_result().map(|_| out)
}

fn resolve_value(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else { break };
        let reference = &rest[start + 2..start + end];
        out.push_str(&rest[..start]);
        match reference.split_once(':') {
            Some(("env", name)) => {
                let v = std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
                out.push_str(&v);
            }
            Some(("file", path_key)) => {
                let (path, key) = path_key
                    .rsplit_once(':')
                    .ok_or_else(|| format!("${{file:..}} needs a path and a key: ${{{reference}}}"))?;
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("cannot read secrets file {path}: {e}"))?;
                let props = parse_properties(&text).map_err(|e| format!("secrets file {path}: {e}"))?;
                let v = props.get(key).ok_or_else(|| format!("key {key} not found in secrets file {path}"))?;
                out.push_str(v);
            }
            _ => out.push_str(&rest[start..start + end + 1]),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Key names that hold secrets even when written in clear.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "sasl.jaas.config", "access.key", "token", "credentials"].iter().any(|s| k.contains(s))
}

/// Keys the connector named by `config`'s `connector.class` declares as PASSWORD.
fn password_keys(config: &ConfigMap, plugins: &[PluginInfo]) -> Vec<String> {
    let Some(plugin) = config.get("connector.class").and_then(|c| plugins.iter().find(|p| p.matches(c.trim()))) else {
        return Vec::new();
    };
    let connector = (plugin.create)();
    connector
        .as_connector()
        .config_def()
        .keys()
        .iter()
        .filter(|k| k.config_type == ConfigType::Password)
        .map(|k| k.name.clone())
        .collect()
}

/// A copy safe to show: PASSWORD-typed keys of the connector and secret-looking keys are replaced
/// by `[hidden]` unless they are references.
pub fn mask_secrets(config: &ConfigMap, plugins: &[PluginInfo]) -> ConfigMap {
    let passwords = password_keys(config, plugins);
    config
        .iter()
        .map(|(k, v)| {
            let secret = is_secret_key(k) || passwords.iter().any(|p| p == k);
            let shown =
                if secret && !v.starts_with("${") && !v.is_empty() { "[hidden]".to_string() } else { v.clone() };
            (k.clone(), shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_references() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("s.properties");
        std::fs::write(&file, "db.password=s3cr3t\n").expect("write");
        let path = file.to_string_lossy();
        let config: ConfigMap = [
            ("a".to_string(), "${env:PATH}".to_string()),
            ("b".to_string(), format!("pre-${{file:{path}:db.password}}-post")),
            ("c".to_string(), "${vault:x}".to_string()),
        ]
        .into_iter()
        .collect();
        let resolved = resolve_secrets(&config).expect("resolves");
        assert_eq!(resolved["a"], std::env::var("PATH").expect("PATH"));
        assert_eq!(resolved["b"], "pre-s3cr3t-post");
        assert_eq!(resolved["c"], "${vault:x}");
        let missing: ConfigMap =
            [("x".to_string(), "${env:SLUICE_SURELY_UNSET_VAR}".to_string())].into_iter().collect();
        let err = resolve_secrets(&missing).expect_err("unset");
        assert_eq!(err.0[0].key, "x");
    }

    #[test]
    fn masks_clear_text_secrets_only() {
        let config: ConfigMap = [
            ("database.password".to_string(), "hunter2".to_string()),
            ("s3.secret".to_string(), "${env:S}".to_string()),
            ("topic".to_string(), "t".to_string()),
        ]
        .into_iter()
        .collect();
        let masked = mask_secrets(&config, &[]);
        assert_eq!(masked["database.password"], "[hidden]");
        assert_eq!(masked["s3.secret"], "${env:S}");
        assert_eq!(masked["topic"], "t");
    }
}
