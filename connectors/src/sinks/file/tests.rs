use sluice_api::{Offsets, SinkRecord, SinkTask, SinkTaskContext, TimestampType, Value};

use super::*;

fn record(offset: i64, value: Value) -> SinkRecord {
    SinkRecord {
        topic: "t".into(),
        original_topic: None,
        kafka_partition: 0,
        kafka_offset: offset,
        timestamp: None,
        timestamp_type: TimestampType::CreateTime,
        key_schema: None,
        key: Value::Null,
        value_schema: None,
        value,
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn appends_values_as_lines_and_flush_makes_them_visible() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "existing\n").expect("seed");
    let config = [("file".to_string(), path.to_string_lossy().into_owned())].into_iter().collect();
    let mut task = FileSinkTask::default();
    task.start(&config, SinkTaskContext { connector: "c".into(), task: 0, errant: None }).await.expect("start");
    task.put(&[record(0, "a".into()), record(1, Value::Int32(5)), record(2, Value::Null)]).await.expect("put");
    let offsets = Offsets::new();
    let committed = task.pre_commit(&offsets).await.expect("pre_commit");
    assert_eq!(committed, offsets);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "existing\na\n5\nnull\n");
}
