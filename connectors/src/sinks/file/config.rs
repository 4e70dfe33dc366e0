use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance};

/// Config of the FileStream sink (keys as Kafka Connect's; `topics`/`topics.regex` are runtime keys).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSinkConfig {
    /// `file`: destination; empty writes to standard output.
    pub file: Option<String>,
}

impl FileSinkConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new("file", ConfigType::String)
                .default("")
                .importance(Importance::High)
                .doc("Destination filename. If not specified, the standard output will be used"),
        )
    }

    /// Parses and validates.
    pub fn parse(config: &ConfigMap) -> Result<FileSinkConfig, ConfigErrors> {
        let parsed = Self::def().parse(config)?;
        Ok(FileSinkConfig { file: parsed.non_empty_string("file") })
    }
}
