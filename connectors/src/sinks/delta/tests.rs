//! The task against tables in a local directory (the S3 path is covered by tests/delta_sink.rs).

use super::*;
use arrow_array::{Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_api::{ErrorKind, Schema, Struct};

const HOUR: i64 = 3_600_000;
// 2024-03-10T22:00:00Z
const BASE: i64 = 1_710_108_000_000;

fn schema(extra: bool) -> Arc<Schema> {
    let mut fields = vec![("seq", Schema::int64()), ("ts", Schema::timestamp()), ("kind", Schema::string())];
    if extra {
        fields.push(("country", Schema::string().optional()));
    }
    Arc::new(Schema::struct_of(fields))
}

fn rec(partition: i32, offset: i64, ts: i64, s: &Arc<Schema>) -> SinkRecord {
    let mut values = vec![Value::Int64(offset), Value::Timestamp(ts), Value::String(format!("k{}", offset % 3))];
    if s.fields.len() == 4 {
        values.push(Value::String("NL".into()));
    }
    SinkRecord {
        topic: "events".into(),
        original_topic: None,
        kafka_partition: partition,
        kafka_offset: offset,
        timestamp: Some(ts),
        timestamp_type: Default::default(),
        key_schema: None,
        key: Value::Null,
        value_schema: Some(s.clone()),
        value: Value::Struct(Struct { schema: s.clone(), values }),
        headers: vec![],
    }
}

async fn task(dir: &std::path::Path, extra: &[(&str, &str)], parts: &[i32]) -> (DeltaSinkTask, Offsets) {
    task_with(dir, extra, parts, None).await
}

async fn task_with(
    dir: &std::path::Path,
    extra: &[(&str, &str)],
    parts: &[i32],
    errant: Option<ErrantRecordReporter>,
) -> (DeltaSinkTask, Offsets) {
    let location = format!("{}/${{topic}}", dir.display());
    let mut m: ConfigMap = [
        ("delta.table.location", location.as_str()),
        ("delta.partition.by", "date,hour"),
        ("timestamp.extractor", "RecordField"),
        ("timestamp.field", "ts"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    m.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut t = DeltaSinkTask::default();
    t.start(&m, SinkTaskContext { connector: "lake".into(), task: 0, errant }).await.expect("start");
    let tps: Vec<TopicPartition> = parts.iter().map(|p| TopicPartition::new("events", *p)).collect();
    let resume = t.open(&tps).await.expect("open");
    (t, resume)
}

/// The table's rows: (seq, date, hour), sorted, read from the files of its current version.
async fn rows(dir: &std::path::Path) -> Vec<(i64, String, String)> {
    let table = table::open(&format!("{}/events", dir.display()), &HashMap::new()).await.expect("table");
    let mut out = Vec::new();
    for uri in table.get_file_uris().expect("files") {
        let path = uri.strip_prefix("file://").unwrap_or(&uri).to_string();
        // Partition values are in the path (Hive style), not in the file.
        let date = path.split("date=").nth(1).and_then(|s| s.split('/').next()).unwrap_or_default().to_string();
        let hour = path.split("hour=").nth(1).and_then(|s| s.split('/').next()).unwrap_or_default().to_string();
        let f = std::fs::File::open(&path).expect("data file");
        for b in ParquetRecordBatchReaderBuilder::try_new(f).expect("parquet").build().expect("reader") {
            let b = b.expect("batch");
            let seq =
                b.column_by_name("seq").expect("seq").as_any().downcast_ref::<Int64Array>().expect("int64").clone();
            for i in 0..b.num_rows() {
                out.push((seq.value(i), date.clone(), hour.clone()));
            }
        }
    }
    out.sort();
    out
}

async fn txn(dir: &std::path::Path, partition: i32) -> Option<i64> {
    let table = table::open(&format!("{}/events", dir.display()), &HashMap::new()).await.expect("table");
    table
        .snapshot()
        .expect("state")
        .transaction_version(table.log_store().as_ref(), format!("lake-events-{partition}"))
        .await
        .expect("txn")
}

#[tokio::test]
async fn commits_with_txn_offsets_and_resumes_after_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, resume) = task(dir.path(), &[("flush.size", "4")], &[0, 1]).await;
    assert!(resume.is_empty(), "no table yet: {resume:?}");
    let s = schema(false);
    // Partition 0: offsets 0..6 alternating 22:xx and 23:xx; partition 1: offsets 0..2.
    let mut recs: Vec<SinkRecord> = (0..6).map(|o| rec(0, o, BASE + (o % 2) * HOUR + o, &s)).collect();
    recs.extend((0..2).map(|o| rec(1, o, BASE + o, &s)));
    t.put(&recs).await.expect("put");
    // 8 records >= flush.size: committed in put.
    assert_eq!(txn(dir.path(), 0).await, Some(5));
    assert_eq!(txn(dir.path(), 1).await, Some(1));
    let got = rows(dir.path()).await;
    assert_eq!(got.len(), 8);
    assert!(got.contains(&(1, "2024-03-10".into(), "23".into())), "{got:?}");
    assert!(got.contains(&(2, "2024-03-10".into(), "22".into())), "{got:?}");

    // Two more records stay uncommitted: Kafka may commit only up to them.
    t.put(&[rec(0, 6, BASE, &s), rec(0, 7, BASE, &s)]).await.expect("put");
    let tp0 = TopicPartition::new("events", 0);
    let tp1 = TopicPartition::new("events", 1);
    let safe = t.pre_commit(&[(tp0.clone(), 8), (tp1.clone(), 2)].into()).await.expect("pre_commit");
    assert_eq!(safe.get(&tp0), Some(&6));
    assert_eq!(safe.get(&tp1), Some(&2));
    // A crash here loses the window; a new task resumes after the table's offsets.
    drop(t);
    let (mut t, resume) = task(dir.path(), &[("flush.size", "4")], &[0, 1]).await;
    assert_eq!(resume.get(&tp0), Some(&6));
    assert_eq!(resume.get(&tp1), Some(&2));
    // Replayed records at or below the table's offsets are dropped.
    let replay: Vec<SinkRecord> = (4..10).map(|o| rec(0, o, BASE, &s)).collect();
    t.put(&replay).await.expect("put");
    t.stop().await.expect("stop commits");
    let seqs: Vec<i64> = rows(dir.path()).await.into_iter().filter(|r| r.0 >= 4).map(|r| r.0).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7, 8, 9], "partition 0's 4 and 5 once, 1's 0 and 1 do not reach 4");
    assert_eq!(txn(dir.path(), 0).await, Some(9));
}

#[tokio::test]
async fn a_topic_renamed_by_a_transform_fails_the_task_and_commits_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[], &[0]).await;
    let s = schema(false);
    t.put(&[rec(0, 0, BASE, &s)]).await.expect("put");
    let mut renamed = rec(0, 1, BASE, &s);
    renamed.original_topic = Some("events".into());
    renamed.topic = "events-routed".into();
    let err = t.put(&[renamed]).await.expect_err("renamed topic");
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(err.to_string().contains("renamed the topic to events-routed"), "{err}");
    // The record before it is only buffered: its offset is not safe to commit.
    let tp = TopicPartition::new("events", 0);
    let safe = t.pre_commit(&[(tp.clone(), 2)].into()).await.expect("pre_commit");
    assert!(safe.get(&tp).is_some_and(|o| *o <= 1), "{safe:?}");
}

/// Records `put` took whose write failed before reaching the writer (here: the table cannot be
/// created, a file stands where its log goes) are read again, not skipped by the worker's retry of the
/// batch, and nothing past them is committed meanwhile.
#[tokio::test]
async fn records_whose_table_cannot_be_created_yet_are_read_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[("flush.size", "100")], &[0, 1]).await;
    let blocker = dir.path().join("events").join("_delta_log");
    std::fs::write(&blocker, b"not a log").expect("file");
    // The partitions' value schemas differ, so each record is a run of its own: the run written
    // when the next record comes is not the only record `put` has taken.
    let (s0, s1) = (schema(false), schema(true));
    let recs: Vec<SinkRecord> = (0..3).flat_map(|o| [rec(0, o, BASE + o, &s0), rec(1, o, BASE + o, &s1)]).collect();
    let err = t.put(&recs).await.expect_err("no table can be created");
    assert_eq!(err.kind(), ErrorKind::Retriable, "{err}");
    // The worker retries the same batch: the partitions wait for their rewind.
    t.put(&recs).await.expect("retried put");
    let (tp0, tp1) = (TopicPartition::new("events", 0), TopicPartition::new("events", 1));
    let consumed: Offsets = [(tp0.clone(), 3), (tp1.clone(), 3)].into();
    let safe = t.pre_commit(&consumed).await.expect("pre_commit");
    assert_eq!((safe[&tp0], safe[&tp1]), (0, 0), "nothing is in the table");
    assert_eq!(t.rewind(), consumed.keys().map(|tp| (tp.clone(), 0)).collect::<Offsets>());
    // The way is clear; the worker delivers both partitions again from 0.
    std::fs::remove_file(&blocker).expect("rm");
    t.put(&recs).await.expect("put again");
    t.stop().await.expect("stop commits");
    let seqs: Vec<i64> = rows(dir.path()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![0, 0, 1, 1, 2, 2], "each record of both partitions once");
    assert_eq!((txn(dir.path(), 0).await, txn(dir.path(), 1).await), (Some(2), Some(2)));
}

/// Records written but not committed hold the partition's commit back even when a later record
/// of it is to be read again: `pre_commit` answers the lower of the two, so no committed offset
/// passes records that are not in the table yet.
#[tokio::test]
async fn buffered_records_hold_the_commit_back_below_a_later_rewind() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[("flush.size", "100"), ("allowed.latency.ms", "600000")], &[0]).await;
    let s = schema(false);
    let first: Vec<SinkRecord> = (0..3).map(|o| rec(0, o, BASE + o, &s)).collect();
    t.put(&first).await.expect("put");
    let tp = TopicPartition::new("events", 0);
    // As after a retriable failure of a later run of the partition (see `unwritten`): record 3 is
    // to be read again while 0..=2 wait in the writer.
    t.read_again(&tp, 3);
    let safe = t.pre_commit(&[(tp.clone(), 6)].into()).await.expect("pre_commit");
    assert_eq!(safe.get(&tp), Some(&0), "offsets 0..=2 are not in the table");
    assert_eq!(t.rewind(), [(tp.clone(), 3)].into());
    // The worker delivers from 3 again; a commit then covers all six.
    let more: Vec<SinkRecord> = (3..6).map(|o| rec(0, o, BASE + o, &s)).collect();
    t.put(&more).await.expect("put again");
    t.stop().await.expect("stop commits");
    let seqs: Vec<i64> = rows(dir.path()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(seqs, (0..6).collect::<Vec<i64>>(), "each record once");
    assert_eq!(txn(dir.path(), 0).await, Some(5));
}

#[tokio::test]
async fn flush_size_is_exact_within_one_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[("flush.size", "3")], &[0]).await;
    let s = schema(false);
    let recs: Vec<SinkRecord> = (0..10).map(|o| rec(0, o, BASE + o, &s)).collect();
    t.put(&recs).await.expect("put");
    // Three commits of three records each; the tenth waits for the next one.
    assert_eq!(txn(dir.path(), 0).await, Some(8));
    let table = table::open(&format!("{}/events", dir.path().display()), &HashMap::new()).await.expect("table");
    assert_eq!(table.version(), Some(3), "create + 3 commits");
    assert_eq!(rows(dir.path()).await.len(), 9);
    let tp = TopicPartition::new("events", 0);
    let safe = t.pre_commit(&[(tp.clone(), 10)].into()).await.expect("pre_commit");
    assert_eq!(safe.get(&tp), Some(&9));
}

#[tokio::test]
async fn new_fields_become_columns_and_a_type_change_names_the_column() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[("flush.size", "1000")], &[0]).await;
    let old = schema(false);
    let new = schema(true);
    t.put(&[rec(0, 0, BASE, &old), rec(0, 1, BASE, &new), rec(0, 2, BASE, &old)]).await.expect("put");
    t.stop().await.expect("stop");
    let table = table::open(&format!("{}/events", dir.path().display()), &HashMap::new()).await.expect("table");
    let cols: Vec<String> = table.snapshot().expect("state").schema().fields().map(|f| f.name().clone()).collect();
    assert_eq!(cols, vec!["seq", "ts", "kind", "date", "hour", "country"]);
    assert_eq!(rows(dir.path()).await.len(), 3);
    assert_eq!(txn(dir.path(), 0).await, Some(2));
    // Offset 1 has the country; 0 and 2 have it null.
    let mut countries = Vec::new();
    for uri in table.get_file_uris().expect("files") {
        let f = std::fs::File::open(uri.strip_prefix("file://").unwrap_or(&uri)).expect("file");
        for b in ParquetRecordBatchReaderBuilder::try_new(f).expect("parquet").build().expect("reader") {
            let b = b.expect("batch");
            if let Some(c) = b.column_by_name("country") {
                let c = c.as_any().downcast_ref::<StringArray>().expect("utf8");
                countries.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())));
            } else {
                countries.extend((0..b.num_rows()).map(|_| None));
            }
        }
    }
    countries.sort();
    assert_eq!(countries, vec![None, None, Some("NL".to_string())]);

    // `seq` as a string: the task fails and says which column.
    let (mut t, _) = task(dir.path(), &[], &[0]).await;
    let bad = Arc::new(Schema::struct_of([("seq", Schema::string()), ("ts", Schema::timestamp())]));
    let r = SinkRecord {
        value: Value::Struct(Struct {
            schema: bad.clone(),
            values: vec![Value::String("x".into()), Value::Timestamp(BASE)],
        }),
        value_schema: Some(bad),
        ..rec(0, 3, BASE, &old)
    };
    let err = t.put(&[r]).await.expect_err("incompatible");
    assert!(err.to_string().contains("column seq"), "{err}");
    assert_eq!(err.kind(), sluice_api::ErrorKind::Fatal);
}

#[tokio::test]
async fn latency_commits_on_pre_commit_and_checkpoints_follow_the_interval() {
    let dir = tempfile::tempdir().expect("tmp");
    let extra = [("allowed.latency.ms", "1"), ("delta.checkpoint.interval", "2")];
    let (mut t, _) = task(dir.path(), &extra, &[0]).await;
    let s = schema(false);
    let tp = TopicPartition::new("events", 0);
    for o in 0..4 {
        t.put(&[rec(0, o, BASE, &s)]).await.expect("put");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let safe = t.pre_commit(&[(tp.clone(), o + 1)].into()).await.expect("pre_commit");
        assert_eq!(safe.get(&tp), Some(&(o + 1)), "committed within the latency");
    }
    assert_eq!(txn(dir.path(), 0).await, Some(3));
    let log = dir.path().join("events/_delta_log");
    let checkpoints: Vec<String> = std::fs::read_dir(&log)
        .expect("log")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".checkpoint."))
        .collect();
    assert!(!checkpoints.is_empty(), "a checkpoint every 2 commits: {checkpoints:?}");
}

#[tokio::test]
async fn bad_configs_and_partition_columns_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[("delta.partition.by", "region")], &[0]).await;
    let err = t.put(&[rec(0, 0, BASE, &schema(false))]).await.expect_err("no such column");
    assert!(err.to_string().contains("partition column region"), "{err}");
}

#[tokio::test]
async fn records_the_table_cannot_take_are_reported_and_the_rest_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let errant = ErrantRecordReporter::default();
    let (mut t, _) = task_with(
        dir.path(),
        &[("flush.size", "1000"), ("behavior.on.null.values", "fail")],
        &[0],
        Some(errant.clone()),
    )
    .await;
    let good = schema(false);
    let bad = Arc::new(Schema::struct_of([("seq", Schema::string()), ("ts", Schema::timestamp())]));
    let bad_rec = |offset: i64| SinkRecord {
        value: Value::Struct(Struct {
            schema: bad.clone(),
            values: vec![Value::String("x".into()), Value::Timestamp(BASE)],
        }),
        value_schema: Some(bad.clone()),
        ..rec(0, offset, BASE, &good)
    };
    let tombstone = SinkRecord { value: Value::Null, value_schema: None, ..rec(0, 4, BASE, &good) };
    // A missing `ts` in one record of a run: only that record is reported.
    let no_ts = Arc::new(Schema::struct_of([("seq", Schema::int64()), ("ts", Schema::timestamp().optional())]));
    let partial = |offset: i64, ts: Value| SinkRecord {
        value: Value::Struct(Struct { schema: no_ts.clone(), values: vec![Value::Int64(offset), ts] }),
        value_schema: Some(no_ts.clone()),
        ..rec(0, offset, BASE, &good)
    };
    t.put(&[
        rec(0, 0, BASE, &good),
        bad_rec(1),
        bad_rec(2),
        rec(0, 3, BASE, &good),
        tombstone,
        partial(5, Value::Timestamp(BASE)),
        partial(6, Value::Null),
        partial(7, Value::Timestamp(BASE)),
    ])
    .await
    .expect("put goes on past bad records");
    let tp = TopicPartition::new("events", 0);
    let safe = t.pre_commit(&[(tp.clone(), 8)].into()).await.expect("pre_commit");
    assert_eq!(safe.get(&tp), Some(&0), "written records wait for their commit");
    t.stop().await.expect("stop");
    let reported: Vec<(i64, String)> = errant.take().into_iter().map(|(r, e)| (r.kafka_offset, e)).collect();
    let offsets: Vec<i64> = reported.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![1, 2, 4, 6], "{reported:?}");
    assert!(reported[0].1.contains("column seq"), "{reported:?}");
    assert!(reported[2].1.contains("tombstone"), "{reported:?}");
    let seqs: Vec<i64> = rows(dir.path()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![0, 3, 5, 7]);
    assert_eq!(txn(dir.path(), 0).await, Some(7));
}

#[tokio::test]
async fn schemaless_json_goes_into_the_existing_tables_columns() {
    let dir = tempfile::tempdir().expect("tmp");
    let errant = ErrantRecordReporter::default();
    let (mut t, _) = task_with(dir.path(), &[("flush.size", "1000")], &[0], Some(errant.clone())).await;
    // The table exists (created by records with a schema): seq, ts, kind + date, hour.
    t.put(&[rec(0, 0, BASE, &schema(false))]).await.expect("put");
    let json = |offset: i64, fields: &[(&str, Value)]| SinkRecord {
        value: Value::Map(fields.iter().map(|(k, v)| (Value::String(k.to_string()), v.clone())).collect()),
        value_schema: None,
        ..rec(0, offset, BASE, &schema(false))
    };
    let ts = Value::String("2024-03-10T23:15:00Z".into());
    t.put(&[
        // A field the table lacks is ignored; a missing one is null.
        json(1, &[("seq", Value::Int64(1)), ("ts", ts.clone()), ("kind", "a".into()), ("extra", Value::Boolean(true))]),
        json(2, &[("seq", Value::Int64(2)), ("ts", ts.clone())]),
        // `seq` is not a number: that record alone is reported.
        json(3, &[("seq", "three".into()), ("ts", ts.clone())]),
        json(4, &[("seq", Value::Int64(4)), ("ts", ts)]),
    ])
    .await
    .expect("put");
    t.stop().await.expect("stop");
    let reported: Vec<(i64, String)> = errant.take().into_iter().map(|(r, e)| (r.kafka_offset, e)).collect();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].0, 3);
    assert!(reported[0].1.contains("does not fit the table"), "{reported:?}");
    let got = rows(dir.path()).await;
    assert_eq!(
        got,
        vec![
            (0, "2024-03-10".into(), "22".into()),
            (1, "2024-03-10".into(), "23".into()),
            (2, "2024-03-10".into(), "23".into()),
            (4, "2024-03-10".into(), "23".into())
        ]
    );
    let table = table::open(&format!("{}/events", dir.path().display()), &HashMap::new()).await.expect("table");
    let cols: Vec<String> = table.snapshot().expect("state").schema().fields().map(|f| f.name().clone()).collect();
    assert_eq!(cols, vec!["seq", "ts", "kind", "date", "hour"], "no column for `extra`");
    assert_eq!(txn(dir.path(), 0).await, Some(4));
}

/// A zombie: task A keeps writing a partition after task B took it over. B's commit conflicts
/// with A's `txn` for the same partition; B writes nothing twice and asks to read the partition
/// again after what the table holds.
#[tokio::test]
async fn a_zombie_writers_commit_makes_the_new_owner_rewind_not_duplicate() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = schema(false);
    let (mut a, _) = task(dir.path(), &[("flush.size", "5")], &[0]).await;
    a.put(&(0..5).map(|o| rec(0, o, BASE, &s)).collect::<Vec<_>>()).await.expect("A commits 0..4");
    // B takes the partition over and resumes after the table's offset.
    let (mut b, resume) = task(dir.path(), &[("flush.size", "5")], &[0]).await;
    let tp = TopicPartition::new("events", 0);
    assert_eq!(resume.get(&tp), Some(&5));
    // A, not yet told, commits 5..9; then B commits the same records.
    a.put(&(5..10).map(|o| rec(0, o, BASE, &s)).collect::<Vec<_>>()).await.expect("A commits 5..9");
    let err = b.put(&(5..10).map(|o| rec(0, o, BASE, &s)).collect::<Vec<_>>()).await.expect_err("conflict");
    assert_eq!(err.kind(), sluice_api::ErrorKind::Retriable, "{err}");
    assert!(err.to_string().contains("conflict"), "{err}");
    assert_eq!(b.rewind().get(&tp), Some(&10), "read again after what the table holds");
    let seqs: Vec<i64> = rows(dir.path()).await.into_iter().map(|r| r.0).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "every record once");
    assert_eq!(txn(dir.path(), 0).await, Some(9));
    // B goes on from 10.
    b.put(&(10..15).map(|o| rec(0, o, BASE, &s)).collect::<Vec<_>>()).await.expect("B commits 10..14");
    assert_eq!(txn(dir.path(), 0).await, Some(14));
    assert_eq!(rows(dir.path()).await.len(), 15);
}

/// Whether each data file's `seq` column has a dictionary, by the file's first `seq`.
fn seq_dictionaries(dir: &std::path::Path) -> Vec<(i64, bool)> {
    let mut out = Vec::new();
    for p in crate::sinks::parquet::tests::parquet_paths(&dir.join("events")) {
        let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).expect("open")).expect("pq");
        let seq = b.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.name() == "seq");
        let seq = seq.expect("seq column");
        let dict = b.metadata().row_groups().iter().all(|rg| rg.column(seq).dictionary_page_offset().is_some());
        let first = b.build().expect("reader").next().expect("a batch").expect("batch");
        let first =
            first.column_by_name("seq").expect("seq").as_any().downcast_ref::<Int64Array>().expect("i64").value(0);
        out.push((first, dict));
    }
    out.sort();
    out
}

#[tokio::test]
async fn distinct_columns_lose_their_dictionary_after_the_first_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut t, _) = task(dir.path(), &[("flush.size", "2000")], &[0]).await;
    let s = schema(false);
    // One hour, so one data file per commit; seq and ts distinct, kind three values.
    let recs: Vec<SinkRecord> = (0..6000).map(|o| rec(0, o, BASE + o, &s)).collect();
    for chunk in recs.chunks(2000) {
        t.put(chunk).await.expect("put");
    }
    assert_eq!(txn(dir.path(), 0).await, Some(5999));
    assert_eq!(seq_dictionaries(dir.path()), vec![(0, true), (2000, false), (4000, false)]);
    assert_eq!(rows(dir.path()).await.len(), 6000);
}

#[tokio::test]
async fn a_task_on_an_existing_table_probes_its_first_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = schema(false);
    let recs: Vec<SinkRecord> = (0..6000).map(|o| rec(0, o, BASE + o, &s)).collect();
    let (mut t, _) = task(dir.path(), &[("flush.size", "2000")], &[0]).await;
    t.put(&recs[..2000]).await.expect("put");
    t.stop().await.expect("stop");
    // A new task (a restart, a rebalance) learns again from its own first commit.
    let (mut t, resume) = task(dir.path(), &[("flush.size", "2000")], &[0]).await;
    assert_eq!(resume.get(&TopicPartition::new("events", 0)), Some(&2000));
    for chunk in recs[2000..].chunks(2000) {
        t.put(chunk).await.expect("put");
    }
    assert_eq!(seq_dictionaries(dir.path()), vec![(0, true), (2000, true), (4000, false)]);
}
