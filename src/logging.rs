//! The process's logging: `RUST_LOG`-style directives on stderr, with levels that
//! `PUT /admin/loggers/{name}` changes at runtime through a reloadable filter.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sluice_rest::{LogLevels, LoggerLevel};
use tracing_subscriber::EnvFilter;

type Reload = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The directives in force, by logger, and how to apply new ones.
pub struct Levels {
    state: Mutex<BTreeMap<String, LoggerLevel>>,
    /// Directives we do not model (span filters and the like), kept as they were.
    others: Vec<String>,
    reload: Reload,
}

fn upper(level: &str) -> Option<String> {
    let l = level.trim().to_ascii_uppercase();
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"].contains(&l.as_str()).then_some(l)
}

impl Levels {
    /// Parses `directives` (e.g. `info,librdkafka=warn`).
    fn new(directives: &str, reload: Reload) -> Levels {
        let mut state = BTreeMap::new();
        let mut others = Vec::new();
        for d in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match d.split_once('=') {
                None => match upper(d) {
                    Some(l) => {
                        state.insert("root".to_string(), LoggerLevel { level: l, last_modified: None });
                    }
                    None => others.push(d.to_string()),
                },
                Some((target, level)) if !target.contains(['[', '{']) => match upper(level) {
                    Some(l) => {
                        state.insert(target.to_string(), LoggerLevel { level: l, last_modified: None });
                    }
                    None => others.push(d.to_string()),
                },
                Some(_) => others.push(d.to_string()),
            }
        }
        state.entry("root".to_string()).or_insert(LoggerLevel { level: "ERROR".to_string(), last_modified: None });
        Levels { state: Mutex::new(state), others, reload }
    }

    fn directives(&self, state: &BTreeMap<String, LoggerLevel>) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (name, l) in state {
            let level = l.level.to_ascii_lowercase();
            parts.push(if name == "root" { level } else { format!("{name}={level}") });
        }
        parts.extend(self.others.iter().cloned());
        parts.join(",")
    }
}

impl LogLevels for Levels {
    fn loggers(&self) -> BTreeMap<String, LoggerLevel> {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, name: &str, level: &str) -> Result<Vec<String>, String> {
        let mut state = self.state.lock().map_err(|_| "logging state poisoned".to_string())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut changed = vec![name.to_string()];
        if name != "root" {
            let prefix = format!("{name}::");
            for (other, l) in state.iter_mut().filter(|(k, _)| k.starts_with(&prefix)) {
                l.level = level.to_string();
                l.last_modified = Some(now);
                changed.push(other.clone());
            }
        }
        state.insert(name.to_string(), LoggerLevel { level: level.to_string(), last_modified: Some(now) });
        let directives = self.directives(&state);
        let filter = EnvFilter::try_new(&directives).map_err(|e| format!("invalid logger name {name:?}: {e}"))?;
        (self.reload)(filter)?;
        tracing::info!(logger = name, level, "log level changed");
        changed.sort();
        Ok(changed)
    }
}

/// Installs the stderr logger and returns its level control.
pub fn init() -> Levels {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,librdkafka=warn".to_string());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    Levels::new(&directives, Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_round_trip_and_children_follow() {
        let applied = std::sync::Arc::new(Mutex::new(String::new()));
        let sink = applied.clone();
        let levels = Levels::new(
            "info,librdkafka=warn,sluice_runtime::worker=debug",
            Box::new(move |f| {
                *sink.lock().map_err(|e| e.to_string())? = f.to_string();
                Ok(())
            }),
        );
        let all = levels.loggers();
        assert_eq!(all["root"].level, "INFO");
        assert_eq!(all["librdkafka"].level, "WARN");
        let changed = levels.set("sluice_runtime", "TRACE").expect("set");
        assert_eq!(changed, ["sluice_runtime", "sluice_runtime::worker"]);
        assert_eq!(levels.loggers()["sluice_runtime::worker"].level, "TRACE");
        assert!(levels.loggers()["sluice_runtime"].last_modified.is_some());
        let text = applied.lock().expect("lock").clone();
        assert!(text.contains("sluice_runtime=trace") && text.contains("librdkafka=warn"), "{text}");
    }
}
