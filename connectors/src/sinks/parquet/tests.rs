use super::*;

fn cfg(pairs: &[(&str, &str)]) -> ParquetSinkConfig {
    let m: ConfigMap = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ParquetSinkConfig::parse(&m).expect("valid config")
}

/// Every Parquet file under `dir`, sorted (for the lake sinks' tests).
pub(crate) fn parquet_paths(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    paths
}

#[test]
fn file_names_follow_confluent() {
    let c = cfg(&[("store.url", "/tmp/x"), ("flush.size", "10")]);
    let tp = TopicPartition::new("orders", 3);
    assert_eq!(ParquetSinkTask::file_name(&c, &tp, 42), "orders+3+0000000042.parquet");
    assert_eq!(ParquetSinkTask::topic_dir(&c, "orders"), "topics/orders");
    assert_eq!(
        ParquetSinkTask::parse_name(&c, "my.topic-x+12+0000000042.parquet"),
        Some(("my.topic-x".to_string(), 12, 42))
    );
    assert_eq!(ParquetSinkTask::parse_name(&c, "orders+3+0000000042.parquet.tmp"), None);
    assert_eq!(ParquetSinkTask::parse_name(&c, "orders+x+1.parquet"), None);
    let c = cfg(&[
        ("store.url", "/tmp/x"),
        ("flush.size", "10"),
        ("topics.dir", ""),
        ("filename.offset.zero.pad.width", "0"),
    ]);
    assert_eq!(ParquetSinkTask::file_name(&c, &tp, 42), "orders+3+42.parquet");
    assert_eq!(ParquetSinkTask::staging_prefix(&c, &tp), "+tmp/orders/3");
}

mod local {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use sluice_api::{Schema, Struct};

    const HOUR: i64 = 3_600_000;
    // 2024-03-10T22:00:00Z
    const BASE: i64 = 1_710_108_000_000;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::struct_of([("seq", Schema::int64()), ("ts", Schema::timestamp())]))
    }

    fn rec(offset: i64, ts: i64) -> SinkRecord {
        let s = schema();
        SinkRecord {
            topic: "events".into(),
            original_topic: None,
            kafka_partition: 0,
            kafka_offset: offset,
            timestamp: Some(ts),
            timestamp_type: Default::default(),
            key_schema: None,
            key: Value::Null,
            value_schema: Some(s.clone()),
            value: Value::Struct(Struct { schema: s, values: vec![Value::Int64(offset), Value::Timestamp(ts)] }),
            headers: vec![],
        }
    }

    async fn task(dir: &std::path::Path, extra: &[(&str, &str)]) -> ParquetSinkTask {
        let url = format!("file://{}", dir.display());
        let mut m: ConfigMap = [
            ("store.url", url.as_str()),
            ("partitioner.class", "HourlyPartitioner"),
            ("timestamp.extractor", "RecordField"),
            ("timestamp.field", "ts"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        m.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut t = ParquetSinkTask::default();
        t.start(&m, SinkTaskContext { connector: "lake".into(), task: 0, errant: None }).await.expect("start");
        t.open(&[TopicPartition::new("events", 0)]).await.expect("open");
        t
    }

    /// Every file under `dir`: (path relative to dir, seq values).
    fn files(dir: &std::path::Path) -> Vec<(String, Vec<i64>)> {
        let mut out = Vec::new();
        for p in parquet_paths(dir) {
            let f = std::fs::File::open(&p).expect("open");
            let reader = ParquetRecordBatchReaderBuilder::try_new(f).expect("parquet").build().expect("reader");
            let mut seqs = Vec::new();
            for b in reader {
                let b = b.expect("batch");
                let col = b.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().expect("int64");
                seqs.extend(col.values().iter().copied());
            }
            out.push((p.strip_prefix(dir).expect("rel").display().to_string(), seqs));
        }
        out.sort();
        out
    }

    /// Per file under `dir` (sorted by path): whether its `seq` column chunks have a dictionary.
    fn seq_dictionaries(dir: &std::path::Path) -> Vec<bool> {
        parquet_paths(dir)
            .iter()
            .map(|p| {
                let f = std::fs::File::open(p).expect("open");
                let meta = ParquetRecordBatchReaderBuilder::try_new(f).expect("parquet").metadata().clone();
                meta.row_groups().iter().all(|rg| rg.column(0).dictionary_page_offset().is_some())
            })
            .collect()
    }

    #[tokio::test]
    async fn distinct_columns_lose_their_dictionary_after_the_first_file_unless_always() {
        for (mode, expected) in [("auto", vec![true, false, false]), ("always", vec![true, true, true])] {
            let dir = tempfile::tempdir().expect("tmp");
            let mut t = task(dir.path(), &[("flush.size", "2000"), ("parquet.dictionary", mode)]).await;
            let recs: Vec<SinkRecord> = (0..6000).map(|o| rec(o, BASE + o)).collect();
            t.put(&recs).await.expect("put");
            assert_eq!(seq_dictionaries(dir.path()), expected, "parquet.dictionary={mode}");
            let got: Vec<i64> = files(dir.path()).into_iter().flat_map(|(_, seqs)| seqs).collect();
            assert_eq!(got, (0..6000).collect::<Vec<i64>>(), "every value, either encoding");
        }
    }

    #[tokio::test]
    async fn size_rotation_hourly_out_of_order_and_commit_points() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = task(dir.path(), &[("flush.size", "3")]).await;
        // Offsets 0..8 alternate between 22:xx and 23:xx.
        let recs: Vec<SinkRecord> = (0..8).map(|o| rec(o, BASE + (o % 2) * HOUR + o * 1000)).collect();
        t.put(&recs).await.expect("put");
        let got = files(dir.path());
        assert_eq!(
            got,
            vec![
                ("topics/events/year=2024/month=03/day=10/hour=22/events+0+0000000000.parquet".into(), vec![0, 2, 4]),
                ("topics/events/year=2024/month=03/day=10/hour=23/events+0+0000000001.parquet".into(), vec![1, 3, 5]),
            ]
        );
        // 6 and 7 are in open files: Kafka may commit up to 6 only.
        let safe = t.pre_commit(&[(TopicPartition::new("events", 0), 8)].into()).await.expect("pre_commit");
        assert_eq!(safe[&TopicPartition::new("events", 0)], 6);
    }

    #[tokio::test]
    async fn replay_after_a_crash_writes_no_duplicates() {
        let dir = tempfile::tempdir().expect("tmp");
        let recs: Vec<SinkRecord> = (0..8).map(|o| rec(o, BASE + (o % 2) * HOUR + o * 1000)).collect();
        {
            let mut t = task(dir.path(), &[("flush.size", "3")]).await;
            t.put(&recs).await.expect("put");
            // Crash: nothing committed to Kafka, open files lost.
        }
        // A task with a different flush size replays from offset 0.
        let mut t = task(dir.path(), &[("flush.size", "2")]).await;
        t.put(&recs).await.expect("put again");
        let seqs = |dir: &std::path::Path| {
            let mut all: Vec<i64> = files(dir).into_iter().flat_map(|(_, s)| s).collect();
            all.sort();
            all
        };
        // 0..5 were in the lake and are not written again; 6 and 7 wait in open files.
        assert_eq!(seqs(dir.path()), vec![0, 1, 2, 3, 4, 5], "{:?}", files(dir.path()));
        let safe = t.pre_commit(&[(TopicPartition::new("events", 0), 8)].into()).await.expect("pre_commit");
        assert_eq!(safe[&TopicPartition::new("events", 0)], 6);
        let more: Vec<SinkRecord> = (8..10).map(|o| rec(o, BASE + (o % 2) * HOUR + o * 1000)).collect();
        t.put(&more).await.expect("put more");
        assert_eq!(seqs(dir.path()), (0..10).collect::<Vec<_>>(), "{:?}", files(dir.path()));
    }

    #[tokio::test]
    async fn record_time_rotation_and_schema_change() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = task(dir.path(), &[("flush.size", "100"), ("rotate.interval.ms", "10000")]).await;
        // Same hour: 0s, 5s, 12s (rotates before 12s), 13s.
        let recs: Vec<SinkRecord> =
            [0, 5_000, 12_000, 13_000].iter().enumerate().map(|(o, d)| rec(o as i64, BASE + d)).collect();
        t.put(&recs).await.expect("put");
        assert_eq!(files(dir.path()).len(), 1);
        // A record with another schema completes the open file.
        let mut other = rec(4, BASE + 14_000);
        let s2 = Arc::new(Schema::struct_of([
            ("seq", Schema::int64()),
            ("ts", Schema::timestamp()),
            ("x", Schema::string().optional()),
        ]));
        other.value = Value::Struct(Struct {
            schema: s2.clone(),
            values: vec![Value::Int64(4), Value::Timestamp(BASE + 14_000), Value::Null],
        });
        other.value_schema = Some(s2);
        t.put(&[other]).await.expect("put");
        let got: Vec<Vec<i64>> = files(dir.path()).into_iter().map(|(_, s)| s).collect();
        assert_eq!(got, vec![vec![0, 1], vec![2, 3]]);
    }

    #[tokio::test]
    async fn a_taken_name_with_fewer_records_reads_the_partition_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let recs: Vec<SinkRecord> = (0..4).map(|o| rec(o, BASE + o)).collect();
        // Another writer completed hour 22 from offset 0 with only two records.
        {
            let mut other = task(dir.path(), &[("flush.size", "2")]).await;
            other.put(&recs[..2]).await.expect("put");
        }
        // This task did not list that file (it started before), so it writes 0..3 under the same name.
        let mut t = task(dir.path(), &[("flush.size", "4")]).await;
        t.marks.clear();
        t.put(&recs).await.expect("put");
        assert_eq!(t.rewind(), [(TopicPartition::new("events", 0), 2)].into());
        // The worker delivers again from 2.
        t.put(&recs[2..]).await.expect("put");
        let mut all: Vec<i64> = files(dir.path()).into_iter().flat_map(|(_, s)| s).collect();
        all.sort();
        assert!(all.len() == 2, "0 and 1 only so far (2, 3 wait in an open file): {all:?}");
        let safe = t.pre_commit(&[(TopicPartition::new("events", 0), 4)].into()).await.expect("pre_commit");
        assert_eq!(safe[&TopicPartition::new("events", 0)], 2);
    }

    #[tokio::test]
    async fn memory_cap_completes_the_largest_files_early() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = task(dir.path(), &[("flush.size", "1000000"), ("partitioner.max.open.files", "4")]).await;
        // Records in 10 different hours: at most 4 files open at once.
        let recs: Vec<SinkRecord> = (0..100).map(|o| rec(o, BASE + (o % 10) * HOUR)).collect();
        t.put(&recs).await.expect("put");
        assert!(t.files.len() <= 4, "{} open", t.files.len());
        assert!(files(dir.path()).len() >= 6);
    }

    /// The local store, except that uploads fail while `fail` is set: starting a multipart upload
    /// (a file larger than one part) and a single put (a smaller file's only request).
    #[derive(Debug)]
    struct FailingStore {
        inner: Arc<dyn ObjectStore>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl FailingStore {
        fn check(&self) -> object_store::Result<()> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(object_store::Error::Generic {
                    store: "failing",
                    source: "injected upload failure".into(),
                });
            }
            Ok(())
        }
    }

    impl std::fmt::Display for FailingStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "FailingStore({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for FailingStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.check()?;
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.check()?;
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }

        async fn rename_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::RenameOptions,
        ) -> object_store::Result<()> {
            self.inner.rename_opts(from, to, options).await
        }
    }

    /// A file completed outside a put of records (an empty put or `pre_commit` completing it on
    /// schedule) whose last part cannot be uploaded (after the store's own retries): its records
    /// are in no file, so they are read again and nothing past them is committed meanwhile; the
    /// lake then holds each record once. (A failing put of records reads its partitions again
    /// in `put`.)
    #[tokio::test]
    async fn a_file_that_fails_to_upload_outside_a_put_is_read_again() {
        let tp = TopicPartition::new("events", 0);
        let cases = [
            ("an empty put, the last part of a multipart upload", true),
            ("pre_commit, the last part of a multipart upload", true),
            ("an empty put, a file sent in one request", false),
        ];
        for (case, multipart) in cases {
            let dir = tempfile::tempdir().expect("tmp");
            let mut t = task(dir.path(), &[("flush.size", "100")]).await;
            let store = Arc::new(FailingStore { inner: t.store().expect("store"), fail: false.into() });
            t.store = Some(store.clone());
            if multipart {
                // Parts of 64 bytes: the file is a multipart upload, its last part sent on completing.
                t.config.as_mut().expect("started").part_size = 64;
            }
            let recs: Vec<SinkRecord> = (0..3).map(|o| rec(o, BASE + o)).collect();
            t.put(&recs).await.expect("put");
            let all: Offsets = [(tp.clone(), 3)].into();
            store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
            // The file is due (as rotate.schedule.interval.ms would make it).
            t.files.values_mut().for_each(|f| f.deadline = Some(0));
            let e = if case.starts_with("pre_commit") {
                t.pre_commit(&all).await.expect_err(case)
            } else {
                t.put(&[]).await.expect_err(case)
            };
            assert_eq!(e.kind(), sluice_api::ErrorKind::Retriable, "{case}: {e}");
            let safe = t.pre_commit(&all).await.expect("pre_commit");
            assert_eq!(safe[&tp], 0, "{case}: nothing may be committed past the lost file");
            assert_eq!(t.rewind(), [(tp.clone(), 0)].into(), "{case}");
            // The store is back; the worker delivers the partition again from 0.
            store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
            t.put(&recs).await.expect("put again");
            t.files.values_mut().for_each(|f| f.deadline = Some(0));
            t.put(&[]).await.expect("empty put");
            let got: Vec<Vec<i64>> = files(dir.path()).into_iter().map(|(_, s)| s).collect();
            assert_eq!(got, vec![vec![0, 1, 2]], "{case}");
            assert_eq!(t.pre_commit(&all).await.expect("pre_commit")[&tp], 3, "{case}");
        }
    }

    #[tokio::test]
    async fn lake_files_lists_complete_files_with_their_footer_offsets() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = task(dir.path(), &[("flush.size", "3")]).await;
        t.put(&(0..7).map(|o| rec(o, BASE)).collect::<Vec<_>>()).await.expect("put");
        let config: ConfigMap = [("store.url", format!("file://{}", dir.path().display())), ("flush.size", "3".into())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let files = lake_files(&config, "events").await.expect("list");
        let spans: Vec<(i64, i64)> = files.iter().map(|(_, a, b)| (*a, *b)).collect();
        assert_eq!(spans, vec![(0, 2), (3, 5)], "{files:?}");
        assert!(files[0].0.ends_with("events+0+0000000000.parquet"), "{files:?}");
    }

    #[tokio::test]
    async fn tombstones_fail_or_are_skipped() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = task(dir.path(), &[("flush.size", "2")]).await;
        let mut tomb = rec(0, BASE);
        tomb.value = Value::Null;
        let err = t.put(&[tomb.clone()]).await.expect_err("fail");
        assert!(err.to_string().contains("behavior.on.null.values"), "{err}");
        let mut t = task(dir.path(), &[("flush.size", "2"), ("behavior.on.null.values", "ignore")]).await;
        t.put(&[tomb.clone(), rec(1, BASE), rec(2, BASE)]).await.expect("put");
        assert_eq!(files(dir.path()).len(), 1);
        // With errors.tolerance=all the runtime gives a reporter: the tombstone is reported, the
        // rest written.
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = task(dir.path(), &[("flush.size", "2")]).await;
        let errant = ErrantRecordReporter::default();
        t.errant = Some(errant.clone());
        tomb.kafka_offset = 1;
        t.put(&[rec(0, BASE), tomb, rec(2, BASE)]).await.expect("put goes on");
        let reported: Vec<i64> = errant.take().iter().map(|(r, _)| r.kafka_offset).collect();
        assert_eq!(reported, vec![1]);
        assert_eq!(files(dir.path()).iter().map(|(_, seqs)| seqs.clone()).collect::<Vec<_>>(), vec![vec![0, 2]]);
    }
}
