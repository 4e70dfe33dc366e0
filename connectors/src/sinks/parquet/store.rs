//! The object store (S3, local directory, HDFS) and conditional file uploads.
//!
//! A file is created only if its name is free: a file smaller than one part goes in one
//! `PUT` with `If-None-Match: *` (S3) or an exclusive create (local); a larger one is streamed
//! part by part into a multipart upload under `<topics.dir>/+tmp/`, completed, and then moved to its
//! name with copy-if-not-exists (S3: a multipart copy completed with `If-None-Match: *`; local:
//! a hard link). Either way an existing file is never replaced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use parquet::file::metadata::ParquetMetaDataReader;
use sluice_api::ConnectError;

use super::config::{Location, ParquetSinkConfig};

/// Key-value metadata in every file: the Kafka offsets it holds.
pub const META_TOPIC: &str = "kafka.topic";
/// Kafka partition of the file's records.
pub const META_PARTITION: &str = "kafka.partition";
/// First offset in the file.
pub const META_START: &str = "kafka.offset.start";
/// Last offset in the file.
pub const META_END: &str = "kafka.offset.end";

/// Builds the store for the config's location.
pub fn open_store(c: &ParquetSinkConfig) -> Result<Arc<dyn ObjectStore>, ConnectError> {
    match &c.location {
        Location::Local(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConnectError::fatal_from(format!("cannot create the directory {dir}"), e))?;
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| ConnectError::fatal_from(format!("cannot use the directory {dir}"), e))?;
            Ok(Arc::new(fs))
        }
        Location::S3 { bucket, endpoint, region, path_style } => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(region)
                .with_virtual_hosted_style_request(!path_style)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
            }
            if let Some((id, secret)) = &c.aws_credentials {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            // object_store draws each wait between the first and twice the last (jitter): the
            // range must not be empty, so the first wait is at least 1 ms and at most the cap.
            let init_backoff = Duration::from_millis(c.s3_retry_backoff_ms.max(1));
            let backoff =
                BackoffConfig { init_backoff, max_backoff: init_backoff.max(Duration::from_secs(30)), base: 2.0 };
            b = b.with_retry(RetryConfig {
                backoff,
                max_retries: c.s3_retries,
                retry_timeout: Duration::from_secs(180),
            });
            let s3 =
                b.build().map_err(|e| ConnectError::fatal_from(format!("cannot use the S3 bucket {bucket}"), e))?;
            Ok(Arc::new(s3))
        }
        #[cfg(feature = "hdfs")]
        Location::Hdfs(url) => {
            // The namenode part goes to the client; a path after it prefixes every file.
            let (namenode, prefix) = split_hdfs_url(url);
            let hdfs = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
                .with_url(namenode.as_str())
                .build()
                .map_err(|e| ConnectError::fatal_from(format!("cannot use HDFS at {namenode}"), e))?;
            if prefix.is_empty() {
                Ok(Arc::new(hdfs))
            } else {
                Ok(Arc::new(object_store::prefix::PrefixStore::new(hdfs, prefix)))
            }
        }
        #[cfg(not(feature = "hdfs"))]
        Location::Hdfs(url) => Err(ConnectError::fatal(format!(
            "{url}: this binary was built without the `hdfs` feature; write to S3 or a local directory"
        ))),
    }
}

/// `hdfs://nn:8020/data/lake` -> (`hdfs://nn:8020`, `data/lake`): the namenode (or nameservice)
/// URL, and the path under which the sink writes.
#[cfg(any(feature = "hdfs", test))]
pub fn split_hdfs_url(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("hdfs", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    (format!("{scheme}://{authority}"), path.trim_matches('/').to_string())
}

pub(crate) fn store_err(what: String, e: object_store::Error) -> ConnectError {
    match e {
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. } => {
            ConnectError::fatal_from(
                format!(
                    "{what}: access refused (check aws.access.key.id / aws.secret.access.key and the bucket policy)"
                ),
                e,
            )
        }
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
            ConnectError::fatal_from(format!("{what}: the store does not support it"), e)
        }
        _ => ConnectError::retriable_from(what, e),
    }
}

/// How a finished upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The file was created.
    Created,
    /// A file of that name already existed and was left as it is.
    Exists,
}

/// A file being written: bytes are sent part by part once they reach the part size.
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    staging: Path,
    part_size: usize,
    buf: Vec<u8>,
    multipart: Option<Box<dyn MultipartUpload>>,
}

impl Upload {
    /// A new upload to `path`, staged (when larger than one part) at `staging`.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, staging: Path, part_size: usize) -> Upload {
        Upload { store, path, staging, part_size, buf: Vec::new(), multipart: None }
    }

    /// Bytes held in memory.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes, uploading a part when a part's worth is held.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnectError> {
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.put_part(part).await?;
        }
        Ok(())
    }

    async fn put_part(&mut self, part: Vec<u8>) -> Result<(), ConnectError> {
        if self.multipart.is_none() {
            let mp = self
                .store
                .put_multipart(&self.staging)
                .await
                .map_err(|e| store_err(format!("cannot start the upload of {}", self.path), e))?;
            self.multipart = Some(mp);
        }
        if let Some(mp) = self.multipart.as_mut() {
            mp.put_part(PutPayload::from(part))
                .await
                .map_err(|e| store_err(format!("cannot upload a part of {}", self.path), e))?;
        }
        Ok(())
    }

    /// Completes the file, never replacing an existing one.
    pub async fn finish(mut self) -> Result<Finished, ConnectError> {
        let what = || format!("cannot create {}", self.path);
        match self.multipart.take() {
            None => {
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match self.store.put_opts(&self.path, PutPayload::from(std::mem::take(&mut self.buf)), opts).await {
                    Ok(_) => Ok(Finished::Created),
                    Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                        Ok(Finished::Exists)
                    }
                    Err(e) => Err(store_err(what(), e)),
                }
            }
            Some(mut mp) => {
                if !self.buf.is_empty() {
                    mp.put_part(PutPayload::from(std::mem::take(&mut self.buf)))
                        .await
                        .map_err(|e| store_err(what(), e))?;
                }
                mp.complete().await.map_err(|e| store_err(what(), e))?;
                let result = match self.store.rename_if_not_exists(&self.staging, &self.path).await {
                    Ok(()) => Finished::Created,
                    Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                        Finished::Exists
                    }
                    Err(e) => return Err(store_err(what(), e)),
                };
                if result == Finished::Exists {
                    let _ = self.store.delete(&self.staging).await;
                }
                Ok(result)
            }
        }
    }

    /// Abandons the upload (best effort: a store's own cleanup removes what is left).
    pub async fn abort(mut self) {
        if let Some(mut mp) = self.multipart.take() {
            let _ = mp.abort().await;
        }
    }
}

/// The offsets recorded in a file's footer: (start, end), read from its key-value metadata, or
/// for a file without it (written by another tool) start from the name and end = start + rows - 1.
pub async fn file_offsets(store: &Arc<dyn ObjectStore>, path: &Path, start: i64) -> Result<(i64, i64), ConnectError> {
    let what = || format!("cannot read the footer of {path}");
    let size = store.head(path).await.map_err(|e| store_err(what(), e))?.size;
    if size < 12 {
        return Err(ConnectError::fatal(format!("{path} is not a Parquet file ({size} bytes)")));
    }
    let tail = store.get_range(path, size - 8..size).await.map_err(|e| store_err(what(), e))?;
    if &tail[4..8] != b"PAR1" {
        return Err(ConnectError::fatal(format!("{path} is not a Parquet file (no PAR1 footer)")));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 8 > size {
        return Err(ConnectError::fatal(format!("{path}: footer length {len} is past the file's start")));
    }
    let meta: Bytes = store.get_range(path, size - 8 - len..size - 8).await.map_err(|e| store_err(what(), e))?;
    let md = ParquetMetaDataReader::decode_metadata(&meta)
        .map_err(|e| ConnectError::fatal_from(format!("{path}: unreadable Parquet footer"), e))?;
    let kv: HashMap<&str, &str> = md
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| kvs.iter().filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?))).collect())
        .unwrap_or_default();
    let get = |k: &str| kv.get(k).and_then(|v| v.parse::<i64>().ok());
    match (get(META_START), get(META_END)) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Ok((start, start + md.file_metadata().num_rows().max(1) - 1)),
    }
}

/// Every file under `prefix` (recursively).
pub async fn list(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Result<Vec<Path>, ConnectError> {
    let mut out = Vec::new();
    let mut stream = store.list(Some(prefix));
    while let Some(item) = stream.next().await {
        match item {
            Ok(meta) => out.push(meta.location),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(store_err(format!("cannot list {prefix}"), e)),
        }
    }
    Ok(out)
}

/// Deletes a file, ignoring one already gone.
pub async fn delete(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<(), ConnectError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_err(format!("cannot delete {path}"), e)),
    }
}
