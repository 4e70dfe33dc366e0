use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use sluice_api::{ConfigMap, JsonMap, OffsetStorageReader, SourceTask, SourceTaskContext, Value};

use super::*;

#[derive(Default)]
struct Offsets(Mutex<HashMap<String, JsonMap>>);

impl OffsetStorageReader for Offsets {
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap> {
        let key = serde_json::to_string(partition).ok()?;
        self.0.lock().ok()?.get(&key).cloned()
    }
}

fn config(file: &str) -> ConfigMap {
    [("file", file), ("topic", "lines"), ("batch.size", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn context(offsets: Arc<Offsets>) -> SourceTaskContext {
    SourceTaskContext { connector: "c".into(), task: 0, offsets, state: None }
}

async fn poll_all(task: &mut FileSourceTask, want: usize) -> Vec<sluice_api::SourceRecord> {
    let mut out = Vec::new();
    for _ in 0..50 {
        out.extend(task.poll().await.expect("poll"));
        if out.len() >= want {
            break;
        }
    }
    out
}

#[tokio::test]
async fn reads_lines_in_batches_with_byte_positions() {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    write!(f, "a\nbb\r\nccc\ndd\npartial").expect("write");
    let path = f.path().to_string_lossy().into_owned();
    let mut task = FileSourceTask::default();
    task.start(&config(&path), context(Arc::default())).await.expect("start");
    let first = task.poll().await.expect("poll");
    assert_eq!(first.len(), 3, "batch.size caps a poll");
    let records = [first, poll_all(&mut task, 1).await].concat();
    let lines: Vec<&Value> = records.iter().map(|r| &r.value).collect();
    assert_eq!(lines, vec![&Value::from("a"), &Value::from("bb"), &Value::from("ccc"), &Value::from("dd")]);
    let positions: Vec<u64> = records.iter().filter_map(|r| r.source_offset["position"].as_u64()).collect();
    assert_eq!(positions, vec![2, 6, 10, 13]);
    assert_eq!(records[0].source_partition["filename"], json!(path));
    assert_eq!(records[0].topic, "lines");
    // The partial last line is emitted once it is terminated.
    writeln!(f, "-line").expect("write");
    let more = poll_all(&mut task, 1).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].value, Value::from("partial-line"));
}

#[tokio::test]
async fn resumes_from_the_committed_position() {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    write!(f, "one\ntwo\nthree\n").expect("write");
    let path = f.path().to_string_lossy().into_owned();
    let offsets = Arc::new(Offsets::default());
    let mut partition = JsonMap::new();
    partition.insert("filename".into(), json!(path));
    let mut offset = JsonMap::new();
    offset.insert("position".into(), json!(4));
    offsets.0.lock().expect("lock").insert(serde_json::to_string(&partition).expect("json"), offset);
    let mut task = FileSourceTask::default();
    task.start(&config(&path), context(offsets)).await.expect("start");
    let records = poll_all(&mut task, 2).await;
    let lines: Vec<String> = records.iter().map(|r| r.value.to_string()).collect();
    assert_eq!(lines, vec!["two", "three"]);
}

#[test]
fn config_rejects_missing_and_multiple_topics() {
    let mut c = config("/tmp/x");
    c.remove("topic");
    let e = FileSourceConfig::parse(&c).expect_err("missing topic");
    assert_eq!(e.0[0].key, "topic");
    c.insert("topic".into(), "a,b".into());
    c.insert("batch.size".into(), "0".into());
    let e = FileSourceConfig::parse(&c).expect_err("two topics");
    assert_eq!(e.for_key("topic"), vec!["Invalid value a,b for configuration topic: Only a single topic is supported"]);
    assert_eq!(e.for_key("batch.size").len(), 1);
}
