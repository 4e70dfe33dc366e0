//! Plugin descriptors: how the runtime finds a connector by class name or alias.

use crate::connector::{ConnectorType, SinkConnector, SourceConnector};

/// A fresh connector instance of either kind.
pub enum ConnectorInstance {
    /// A source connector.
    Source(Box<dyn SourceConnector>),
    /// A sink connector.
    Sink(Box<dyn SinkConnector>),
}

impl ConnectorInstance {
    /// Source or sink.
    pub fn connector_type(&self) -> ConnectorType {
        match self {
            ConnectorInstance::Source(_) => ConnectorType::Source,
            ConnectorInstance::Sink(_) => ConnectorType::Sink,
        }
    }

    /// The shared connector interface, mutably (start, stop).
    pub fn as_connector_mut(&mut self) -> &mut dyn crate::Connector {
        match self {
            ConnectorInstance::Source(c) => c.as_mut(),
            ConnectorInstance::Sink(c) => c.as_mut(),
        }
    }

    /// The shared connector interface.
    pub fn as_connector(&self) -> &dyn crate::Connector {
        match self {
            ConnectorInstance::Source(c) => c.as_ref(),
            ConnectorInstance::Sink(c) => c.as_ref(),
        }
    }
}

/// Describes one connector plugin.
#[derive(Clone, Copy)]
pub struct PluginInfo {
    /// Canonical class name, shown by `GET /connector-plugins`.
    pub class: &'static str,
    /// Other names accepted in `connector.class` (short names, the class names of the tools we replace).
    pub aliases: &'static [&'static str],
    /// Source or sink.
    pub connector_type: ConnectorType,
    /// Plugin version.
    pub version: &'static str,
    /// Creates an unstarted instance.
    pub create: fn() -> ConnectorInstance,
}

impl PluginInfo {
    /// True when `name` is the class name or one of the aliases (class names match exactly, short
    /// names ignore case).
    pub fn matches(&self, name: &str) -> bool {
        self.class == name || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Debug for PluginInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInfo").field("class", &self.class).field("type", &self.connector_type).finish()
    }
}
