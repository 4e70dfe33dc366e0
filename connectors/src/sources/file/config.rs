use sluice_api::{ConfigDef, ConfigErrors, ConfigKey, ConfigMap, ConfigType, Importance, Validator};

/// Config of the FileStream source (keys as Kafka Connect's).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSourceConfig {
    /// `file`: the file to read; empty reads standard input (no offsets are kept then).
    pub file: Option<String>,
    /// `topic`: the topic to write to.
    pub topic: String,
    /// `batch.size`: most lines returned by one poll.
    pub batch_size: usize,
}

impl FileSourceConfig {
    /// The documented keys.
    pub fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("file", ConfigType::String)
                    .default("")
                    .importance(Importance::High)
                    .doc("Source filename. If not specified, the standard input will be used"),
            )
            .define(
                ConfigKey::new("topic", ConfigType::String)
                    .importance(Importance::High)
                    .validator(Validator::Custom(single_topic))
                    .doc("The topic to publish data to"),
            )
            .define(
                ConfigKey::new("batch.size", ConfigType::Int)
                    .default("2000")
                    .validator(Validator::at_least(1.0))
                    .importance(Importance::Low)
                    .doc("The maximum number of records the source task can read from the file each time it is polled"),
            )
    }

    /// Parses and validates.
    pub fn parse(config: &ConfigMap) -> Result<FileSourceConfig, ConfigErrors> {
        let parsed = Self::def().parse(config)?;
        Ok(FileSourceConfig {
            file: parsed.non_empty_string("file"),
            topic: parsed.string("topic"),
            batch_size: usize::try_from(parsed.int("batch.size")).unwrap_or(1),
        })
    }
}

fn single_topic(raw: &str) -> Result<(), String> {
    let topics: Vec<&str> = raw.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    match topics.len() {
        1 => Ok(()),
        0 => Err("String must be non-empty".to_string()),
        _ => Err("Only a single topic is supported".to_string()),
    }
}
