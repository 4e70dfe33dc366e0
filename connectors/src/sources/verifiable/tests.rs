use std::sync::Arc;

use serde_json::json;
use sluice_api::{ConfigMap, Connector, JsonMap, OffsetStorageReader, SourceTask, SourceTaskContext, Value};

use super::*;

struct Committed(Option<JsonMap>);

impl OffsetStorageReader for Committed {
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap> {
        assert_eq!(partition.get("id"), Some(&json!(2)));
        self.0.clone()
    }
}

fn config(throughput: &str) -> ConfigMap {
    [("topic", "seq"), ("throughput", throughput), ("id", "2")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn started(throughput: &str, committed: Option<JsonMap>) -> VerifiableSourceTask {
    let mut task = VerifiableSourceTask::default();
    let context =
        SourceTaskContext { connector: "c".into(), task: 2, offsets: Arc::new(Committed(committed)), state: None };
    task.start(&config(throughput), context).await.expect("start");
    task
}

#[tokio::test]
async fn emits_consecutive_seqnos_keyed_by_task() {
    let mut task = started("-1", None).await;
    let a = task.poll().await.expect("poll");
    let b = task.poll().await.expect("poll");
    let seqnos: Vec<i64> = a
        .iter()
        .chain(&b)
        .map(|r| match r.value {
            Value::Int64(n) => n,
            ref v => panic!("value {v:?}"),
        })
        .collect();
    assert_eq!(seqnos, (0..seqnos.len() as i64).collect::<Vec<_>>());
    assert_eq!(a[0].key, Value::Int32(2));
    assert_eq!(a[5].source_offset.get("seqno"), Some(&json!(5)));
    assert_eq!(a[5].topic, "seq");
}

#[tokio::test]
async fn resumes_after_the_committed_seqno() {
    let mut committed = JsonMap::new();
    committed.insert("seqno".into(), json!(41));
    let mut task = started("-1", Some(committed)).await;
    let first = task.poll().await.expect("poll");
    assert_eq!(first[0].value, Value::Int64(42));
}

#[tokio::test]
async fn throughput_caps_the_rate() {
    let mut task = started("200", None).await;
    let start = std::time::Instant::now();
    let mut n = 0;
    while start.elapsed() < std::time::Duration::from_millis(500) {
        n += task.poll().await.expect("poll").len();
    }
    assert!((60..=140).contains(&n), "{n} records in 0.5 s at 200/s");
}

#[test]
fn tasks_get_their_ids() {
    let connector = VerifiableSourceConnector { config: config("10") };
    let tasks = connector.task_configs(3).expect("tasks");
    let ids: Vec<&str> = tasks.iter().map(|t| t.get("id").map(String::as_str).unwrap_or("")).collect();
    assert_eq!(ids, ["0", "1", "2"]);
}

#[test]
fn missing_topic_is_rejected() {
    let err = VerifiableSourceConfig::parse(&ConfigMap::new()).expect_err("no topic");
    assert!(err.to_string().contains("topic"), "{err}");
}
