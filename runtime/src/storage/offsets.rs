//! Source offsets: key `["<connector>",{source partition}]`, value the offset map, as Kafka Connect.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value as Json};
use sluice_api::{JsonMap, OffsetStorageReader};

use super::StoreError;

/// The offset-store key of a connector's source partition, Kafka Connect's `["<c>",{partition}]`.
pub fn offset_key(connector: &str, partition: &JsonMap) -> String {
    json!([connector, partition]).to_string()
}

/// Parses an offsets-topic record: key `["<connector>",{partition}]`, value the offset map (`None`
/// or JSON `null`: the partition's offset was reset). `None` when either is unreadable.
pub fn parse_offset_record(key: &[u8], value: Option<&[u8]>) -> Option<(String, JsonMap, Option<JsonMap>)> {
    let k: Json = serde_json::from_slice(key).ok()?;
    let (connector, partition) = (k.get(0)?.as_str()?.to_string(), k.get(1)?.as_object()?.clone());
    let offset = match value {
        None => None,
        Some(v) => match serde_json::from_slice::<Json>(v).ok()? {
            Json::Object(o) => Some(o),
            Json::Null => None,
            _ => return None,
        },
    };
    Some((connector, partition, offset))
}

/// Where source offsets live.
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// The committed offset of one source partition.
    fn get(&self, connector: &str, partition: &JsonMap) -> Option<JsonMap>;
    /// Every committed partition and offset of a connector.
    fn connector_offsets(&self, connector: &str) -> Vec<(JsonMap, JsonMap)>;
    /// Durably writes offsets (`None` removes a partition). Returns once they are safe.
    async fn set(&self, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) -> Result<(), StoreError>;
}

pub(super) type Entries = BTreeMap<String, (String, JsonMap, JsonMap)>;

pub(super) fn apply(entries: &mut Entries, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) {
    for (partition, offset) in offsets {
        let key = offset_key(connector, &partition);
        match offset {
            Some(o) => {
                entries.insert(key, (connector.to_string(), partition, o));
            }
            None => {
                entries.remove(&key);
            }
        }
    }
}

pub(super) fn lookup(entries: &Entries, connector: &str, partition: &JsonMap) -> Option<JsonMap> {
    entries.get(&offset_key(connector, partition)).map(|(_, _, o)| o.clone())
}

pub(super) fn for_connector(entries: &Entries, connector: &str) -> Vec<(JsonMap, JsonMap)> {
    entries.values().filter(|(c, _, _)| c == connector).map(|(_, p, o)| (p.clone(), o.clone())).collect()
}

/// In-memory offsets (tests, and connectors that keep offsets elsewhere).
#[derive(Default)]
pub struct MemoryOffsetStore {
    entries: Mutex<Entries>,
}

#[async_trait]
impl OffsetStore for MemoryOffsetStore {
    fn get(&self, connector: &str, partition: &JsonMap) -> Option<JsonMap> {
        self.entries.lock().ok().and_then(|e| lookup(&e, connector, partition))
    }
    fn connector_offsets(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        self.entries.lock().map(|e| for_connector(&e, connector)).unwrap_or_default()
    }
    async fn set(&self, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) -> Result<(), StoreError> {
        if let Ok(mut e) = self.entries.lock() {
            apply(&mut e, connector, offsets);
        }
        Ok(())
    }
}

/// Offsets in a local JSON file (`offset.storage.file.filename`), rewritten atomically on every
/// flush: write a temp file, fsync it, rename it over the old one, fsync the directory. A crash at
/// any point leaves either the old or the new file, never a torn one.
///
/// Format: `{"version":1,"offsets":[{"key":["<c>",{partition}],"value":{offset}}...]}` — the key is
/// Kafka Connect's offset-topic key, so entries can be replayed into an offsets topic as they are.
pub struct FileOffsetStore {
    path: PathBuf,
    entries: Mutex<Entries>,
    write_lock: tokio::sync::Mutex<()>,
}

impl FileOffsetStore {
    /// Opens (or starts) the file.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileOffsetStore, StoreError> {
        let path = path.into();
        let shown = path.display().to_string();
        let mut entries = Entries::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let doc: Json = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { path: shown.clone(), message: e.to_string() })?;
                let list = doc["offsets"].as_array().ok_or_else(|| StoreError::Corrupt {
                    path: shown.clone(),
                    message: "no \"offsets\" array".into(),
                })?;
                for item in list {
                    let corrupt = |m: &str| StoreError::Corrupt { path: shown.clone(), message: m.to_string() };
                    let connector = item["key"][0].as_str().ok_or_else(|| corrupt("key without connector"))?;
                    let partition = item["key"][1].as_object().ok_or_else(|| corrupt("key without partition"))?;
                    let offset = item["value"].as_object().ok_or_else(|| corrupt("offset is not an object"))?;
                    entries.insert(
                        offset_key(connector, partition),
                        (connector.to_string(), partition.clone(), offset.clone()),
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::Io { path: shown, source }),
        }
        Ok(FileOffsetStore { path, entries: Mutex::new(entries), write_lock: tokio::sync::Mutex::new(()) })
    }

    fn write_file(path: &Path, doc: Vec<u8>) -> Result<(), StoreError> {
        let io = |source| StoreError::Io { path: path.display().to_string(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&doc).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[async_trait]
impl OffsetStore for FileOffsetStore {
    fn get(&self, connector: &str, partition: &JsonMap) -> Option<JsonMap> {
        self.entries.lock().ok().and_then(|e| lookup(&e, connector, partition))
    }
    fn connector_offsets(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        self.entries.lock().map(|e| for_connector(&e, connector)).unwrap_or_default()
    }
    async fn set(&self, connector: &str, offsets: Vec<(JsonMap, Option<JsonMap>)>) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock().await;
        let doc = {
            let mut e = self.entries.lock().map_err(|_| StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: "poisoned lock".into(),
            })?;
            apply(&mut e, connector, offsets);
            let list: Vec<Json> = e.values().map(|(c, p, o)| json!({"key": [c, p], "value": o})).collect();
            serde_json::to_vec(&json!({"version": 1, "offsets": list})).unwrap_or_default()
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || Self::write_file(&path, doc))
            .await
            .map_err(|e| StoreError::Io { path: self.path.display().to_string(), source: std::io::Error::other(e) })?
    }
}

/// The [`OffsetStorageReader`] a connector's tasks get: the store, scoped to one connector.
pub struct ConnectorOffsetReader {
    /// Connector name.
    pub connector: String,
    /// The store.
    pub store: Arc<dyn OffsetStore>,
}

impl OffsetStorageReader for ConnectorOffsetReader {
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap> {
        self.store.get(&self.connector, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Json) -> JsonMap {
        v.as_object().cloned().unwrap_or_default()
    }

    async fn exercise(store: &dyn OffsetStore) {
        let p1 = map(json!({"filename": "/a"}));
        let p2 = map(json!({"filename": "/b"}));
        store.set("c1", vec![(p1.clone(), Some(map(json!({"position": 10}))))]).await.expect("set");
        store
            .set(
                "c1",
                vec![(p1.clone(), Some(map(json!({"position": 20})))), (p2.clone(), Some(map(json!({"position": 1}))))],
            )
            .await
            .expect("set");
        store.set("c2", vec![(p1.clone(), Some(map(json!({"position": 99}))))]).await.expect("set");
        assert_eq!(store.get("c1", &p1), Some(map(json!({"position": 20}))));
        assert_eq!(store.get("c2", &p1), Some(map(json!({"position": 99}))));
        assert_eq!(store.connector_offsets("c1").len(), 2);
        store.set("c1", vec![(p2.clone(), None)]).await.expect("reset");
        assert_eq!(store.get("c1", &p2), None);
    }

    #[tokio::test]
    async fn memory_store() {
        exercise(&MemoryOffsetStore::default()).await;
    }

    #[tokio::test]
    async fn file_store_survives_reopen_and_uses_kafka_connect_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("offsets.json");
        exercise(&FileOffsetStore::open(&path).expect("open")).await;
        let reopened = FileOffsetStore::open(&path).expect("reopen");
        assert_eq!(reopened.get("c1", &map(json!({"filename": "/a"}))), Some(map(json!({"position": 20}))));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(r#"{"key":["c1",{"filename":"/a"}],"value":{"position":20}}"#), "{text}");
        assert!(!path.with_extension("tmp").exists());
        std::fs::write(&path, b"{garbage").expect("write");
        assert!(matches!(FileOffsetStore::open(&path), Err(StoreError::Corrupt { .. })));
    }
}
