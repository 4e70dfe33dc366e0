use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_api::{
    ConfigMap, ConnectError, JsonMap, Schema, SchemaRef, SourceRecord, SourceTask, SourceTaskContext, Value,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use super::config::FileSourceConfig;

/// How long an idle poll waits before returning nothing.
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// Bytes read from the file per read call.
const READ_CHUNK: usize = 64 * 1024;

type Input = Box<dyn AsyncRead + Send + Unpin>;

/// Reads lines from a file (or stdin), remembering the byte position after each line.
#[derive(Default)]
pub struct FileSourceTask {
    config: Option<FileSourceConfig>,
    input: Option<Input>,
    partition: JsonMap,
    /// Byte position in the file of `buffer[0]`.
    position: u64,
    buffer: Vec<u8>,
    resume_at: u64,
    schema: Option<SchemaRef>,
}

impl FileSourceTask {
    async fn open(&mut self) -> Result<bool, ConnectError> {
        let Some(config) = &self.config else {
            return Err(ConnectError::fatal("file source task polled before start"));
        };
        let Some(path) = &config.file else {
            self.input = Some(Box::new(tokio::io::stdin()));
            return Ok(true);
        };
        match tokio::fs::File::open(path).await {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(self.resume_at))
                    .await
                    .map_err(|e| ConnectError::fatal_from(format!("cannot seek {path} to {}", self.resume_at), e))?;
                self.position = self.resume_at;
                self.input = Some(Box::new(file));
                tracing::info!(file = %path, position = self.resume_at, "file source opened");
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %path, "file not found, waiting for it to appear");
                Ok(false)
            }
            Err(e) => Err(ConnectError::retriable_from(format!("cannot open {path}"), e)),
        }
    }

    fn take_lines(&mut self, max: usize) -> Vec<SourceRecord> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        let mut records = Vec::new();
        let mut consumed = 0;
        while records.len() < max {
            let Some(nl) = self.buffer[consumed..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let end = consumed + nl;
            let line = self.buffer[consumed..end].strip_suffix(b"\r").unwrap_or(&self.buffer[consumed..end]);
            let text = String::from_utf8_lossy(line).into_owned();
            consumed = end + 1;
            let offset = if config.file.is_some() {
                let mut m = JsonMap::new();
                m.insert("position".into(), json!(self.position + consumed as u64));
                m
            } else {
                JsonMap::new()
            };
            records.push(SourceRecord::new(
                self.partition.clone(),
                offset,
                config.topic.clone(),
                self.schema.clone(),
                Value::String(text),
            ));
        }
        self.buffer.drain(..consumed);
        self.position += consumed as u64;
        records
    }
}

#[async_trait]
impl SourceTask for FileSourceTask {
    async fn start(&mut self, config: &ConfigMap, context: SourceTaskContext) -> Result<(), ConnectError> {
        let config = FileSourceConfig::parse(config)?;
        if let Some(file) = &config.file {
            self.partition.insert("filename".into(), json!(file));
            if let Some(offset) = context.offsets.offset(&self.partition) {
                self.resume_at = match offset.get("position") {
                    Some(p) => p.as_u64().ok_or_else(|| {
                        ConnectError::fatal(format!("stored offset for {file} has a bad position: {p}"))
                    })?,
                    None => 0,
                };
            }
        }
        self.schema = Some(Arc::new(Schema::string()));
        self.config = Some(config);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.input.is_none() && !self.open().await? {
            tokio::time::sleep(IDLE_WAIT * 50).await;
            return Ok(Vec::new());
        }
        let batch_size = self.config.as_ref().map_or(1, |c| c.batch_size);
        let records = self.take_lines(batch_size);
        if !records.is_empty() {
            return Ok(records);
        }
        let Some(input) = self.input.as_mut() else {
            return Ok(Vec::new());
        };
        let start = self.buffer.len();
        self.buffer.resize(start + READ_CHUNK, 0);
        let read = input.read(&mut self.buffer[start..]).await;
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.buffer.truncate(start);
                self.input = None;
                return Err(ConnectError::retriable_from("error reading the source file", e));
            }
        };
        self.buffer.truncate(start + n);
        let records = self.take_lines(batch_size);
        if records.is_empty() && n == 0 {
            tokio::time::sleep(IDLE_WAIT).await;
        }
        Ok(records)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.input = None;
        Ok(())
    }
}
