//! Errors with a kind that drives retry, task state and REST status.

use std::error::Error as StdError;
use std::fmt::Write as _;

use crate::config::ConfigErrors;

/// Boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What the runtime does with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Invalid configuration: reject, never retry.
    Config,
    /// Transient: back off and retry.
    Retriable,
    /// Unrecoverable: the task goes FAILED with the trace.
    Fatal,
}

/// An error raised by a connector or task. Messages say which connector, task, partition, offset or
/// file they concern.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A transient failure; the same call may succeed later.
    #[error("{message}")]
    Retriable {
        /// What failed.
        message: String,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },
    /// A failure retrying will not fix.
    #[error("{message}")]
    Fatal {
        /// What failed.
        message: String,
        /// Underlying cause.
        #[source]
        source: Option<BoxError>,
    },
}

impl ConnectError {
    /// A retriable error.
    pub fn retriable(message: impl Into<String>) -> ConnectError {
        ConnectError::Retriable { message: message.into(), source: None }
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> ConnectError {
        ConnectError::Fatal { message: message.into(), source: None }
    }

    /// A retriable error with a cause.
    pub fn retriable_from(message: impl Into<String>, source: impl Into<BoxError>) -> ConnectError {
        ConnectError::Retriable { message: message.into(), source: Some(source.into()) }
    }

    /// A fatal error with a cause.
    pub fn fatal_from(message: impl Into<String>, source: impl Into<BoxError>) -> ConnectError {
        ConnectError::Fatal { message: message.into(), source: Some(source.into()) }
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::Config(_) => ErrorKind::Config,
            ConnectError::Retriable { .. } => ErrorKind::Retriable,
            ConnectError::Fatal { .. } => ErrorKind::Fatal,
        }
    }

    /// The message and every cause, one per line: what the status API shows as `trace`.
    pub fn trace(&self) -> String {
        let kind = match self.kind() {
            ErrorKind::Config => "ConfigException",
            ErrorKind::Retriable => "RetriableException",
            ErrorKind::Fatal => "ConnectException",
        };
        let mut out = format!("{kind}: {self}");
        let mut source = StdError::source(self);
        while let Some(cause) = source {
            let _ = write!(out, "\nCaused by: {cause}");
            source = cause.source();
        }
        out
    }
}

/// An error and its causes, `: `-separated (hyper's own message is only "client error
/// (Connect)"; the causes say what failed: "tcp connect error: Connection refused").
pub fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lists_causes_and_kind_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = ConnectError::fatal_from("could not open /x", io);
        assert_eq!(e.kind(), ErrorKind::Fatal);
        assert_eq!(e.trace(), "ConnectException: could not open /x\nCaused by: no such file");
        assert_eq!(ConnectError::retriable("later").kind(), ErrorKind::Retriable);
    }
}
