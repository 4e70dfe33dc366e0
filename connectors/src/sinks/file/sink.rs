use std::fmt::Write as _;

use async_trait::async_trait;
use sluice_api::{ConfigMap, ConnectError, Offsets, SinkRecord, SinkTask, SinkTaskContext};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::config::FileSinkConfig;

/// Buffered bytes that trigger a write to the file before the next flush.
const WRITE_THRESHOLD: usize = 1 << 20;

enum Output {
    File(tokio::fs::File),
    Stdout(tokio::io::Stdout),
}

/// Appends one line per record.
#[derive(Default)]
pub struct FileSinkTask {
    path: Option<String>,
    output: Option<Output>,
    buffer: String,
}

impl FileSinkTask {
    async fn write_buffer(&mut self) -> Result<(), ConnectError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let path = self.path.clone().unwrap_or_else(|| "stdout".into());
        let writer: &mut (dyn AsyncWrite + Send + Unpin) = match self.output.as_mut() {
            Some(Output::File(f)) => f,
            Some(Output::Stdout(s)) => s,
            None => return Err(ConnectError::fatal("file sink task used before start")),
        };
        writer
            .write_all(self.buffer.as_bytes())
            .await
            .map_err(|e| ConnectError::retriable_from(format!("cannot write to {path}"), e))?;
        self.buffer.clear();
        Ok(())
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn start(&mut self, config: &ConfigMap, _context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = FileSinkConfig::parse(config)?;
        self.output = Some(match &config.file {
            Some(path) => Output::File(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| ConnectError::fatal_from(format!("cannot open {path} for appending"), e))?,
            ),
            None => Output::Stdout(tokio::io::stdout()),
        });
        self.path = config.file;
        Ok(())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        for record in records {
            let _ = writeln!(self.buffer, "{}", record.value);
        }
        if self.buffer.len() >= WRITE_THRESHOLD {
            self.write_buffer().await?;
        }
        Ok(())
    }

    async fn flush(&mut self, _offsets: &Offsets) -> Result<(), ConnectError> {
        self.write_buffer().await?;
        let path = self.path.clone().unwrap_or_default();
        match self.output.as_mut() {
            Some(Output::File(f)) => {
                f.flush().await.map_err(|e| ConnectError::retriable_from(format!("cannot flush {path}"), e))?;
                f.sync_data().await.map_err(|e| ConnectError::retriable_from(format!("cannot fsync {path}"), e))
            }
            Some(Output::Stdout(s)) => {
                s.flush().await.map_err(|e| ConnectError::retriable_from("cannot flush stdout", e))
            }
            None => Ok(()),
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // Buffered lines not yet flushed are not covered by a commit; they are re-delivered.
        self.buffer.clear();
        self.output = None;
        Ok(())
    }
}
