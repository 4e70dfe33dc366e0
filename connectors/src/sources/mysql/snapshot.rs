//! The initial snapshot's table readers and its progress.
//!
//! `snapshot.max.threads` readers, each on its own connection inside a consistent-snapshot
//! transaction started at the same point, take tables in `db.table` order from a shared list and
//! read each in primary-key chunks, decoding the rows into records. One merger (the reader's
//! snapshot loop) takes their chunks as they come and gives every record the offset of the
//! snapshot's progress at that record: the first table not done (`table`, `key`), the last table
//! handed out (`through`), and the tables in between not done with their last keys (`others`). A
//! restart resumes each table after its last row Kafka acknowledged and skips the tables done.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use sluice_api::{ConnectError, SourceRecord, Value};
use tokio::sync::mpsc;

use super::catalog;
use super::config::MySqlConfig;
use super::event::{self, Position, SnapshotProgress, SourceInfo};
use super::schema::Table;

/// Primary-key values as text.
pub type Key = Vec<Option<String>>;

/// One table to read, after `after` (from its start when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Index in the snapshot's sorted table list.
    pub index: usize,
    /// The last key read before an interruption.
    pub after: Option<Key>,
}

/// The tables to read (indexes into the sorted `ids`), given an interrupted snapshot's progress.
pub fn plan(ids: &[String], progress: Option<&SnapshotProgress>) -> Vec<Job> {
    let Some(p) = progress.filter(|p| !p.table.is_empty()) else {
        return (0..ids.len()).map(|index| Job { index, after: None }).collect();
    };
    let mut jobs = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let after = if *id < p.table {
            continue;
        } else if *id == p.table {
            p.key.clone()
        } else if p.through.as_ref().is_some_and(|t| id <= t) {
            match p.others.iter().find(|(t, _)| t == id) {
                Some((_, key)) => key.clone(),
                None => continue,
            }
        } else {
            None
        };
        jobs.push(Job { index, after });
    }
    jobs
}

/// The merger's view of the snapshot's progress.
pub struct Tracker {
    ids: Vec<String>,
    done: Vec<bool>,
    keys: Vec<Option<Key>>,
    /// First table not done.
    low: usize,
    /// One past the last table a reader was seen on.
    next: usize,
}

impl Tracker {
    /// Tables not in `jobs` are done; jobs resume at their keys.
    pub fn new(ids: Vec<String>, jobs: &[Job]) -> Tracker {
        let n = ids.len();
        let mut done = vec![true; n];
        let mut keys = vec![None; n];
        for j in jobs {
            done[j.index] = false;
            keys[j.index] = j.after.clone();
        }
        let low = done.iter().position(|d| !d).unwrap_or(n);
        let next = jobs.iter().filter(|j| j.after.is_some()).map(|j| j.index + 1).max().unwrap_or(0).max(low + 1);
        Tracker { ids, done, keys, low, next }
    }

    /// A row of table `index` with key `key` was queued.
    pub fn row(&mut self, index: usize, key: Option<Key>) {
        self.keys[index] = key;
        self.next = self.next.max(index + 1);
    }

    /// Table `index` was read to its end.
    pub fn finish(&mut self, index: usize) {
        self.done[index] = true;
        self.next = self.next.max(index + 1);
        while self.low < self.done.len() && self.done[self.low] {
            self.low += 1;
        }
    }

    /// The first table not read to its end, if any.
    pub fn pending(&self) -> Option<&str> {
        self.ids.get(self.low).map(String::as_str)
    }

    /// The progress to store with the record just queued.
    pub fn progress(&self) -> SnapshotProgress {
        let Some(table) = self.ids.get(self.low) else {
            return SnapshotProgress { table: String::new(), key: None, through: None, others: Vec::new() };
        };
        let last = self.next.min(self.ids.len());
        let (through, others) = if last > self.low + 1 {
            let others = (self.low + 1..last)
                .filter(|&i| !self.done[i])
                .map(|i| (self.ids[i].clone(), self.keys[i].clone()))
                .collect();
            (Some(self.ids[last - 1].clone()), others)
        } else {
            (None, Vec::new())
        };
        SnapshotProgress { table: table.clone(), key: self.keys[self.low].clone(), through, others }
    }
}

/// Rows of one table, decoded into records (their offsets are the merger's to set).
pub struct Chunk {
    /// Table index.
    pub index: usize,
    /// Records with their primary-key text (`None` without a primary key).
    pub records: Vec<(SourceRecord, Option<Key>)>,
    /// The table's last chunk.
    pub end: bool,
}

/// What the readers share.
pub struct Shared {
    /// Connector settings.
    pub config: Arc<MySqlConfig>,
    /// The sorted tables.
    pub tables: Vec<Arc<Table>>,
    /// Tables left to read, in order.
    pub jobs: Mutex<VecDeque<Job>>,
    /// The snapshot's binlog position (in every record's `source`).
    pub position: Position,
}

/// Reads tables from the shared list until none is left, then commits its transaction. An error
/// is sent to the merger, which stops the snapshot.
pub async fn read_tables(mut conn: Conn, shared: Arc<Shared>, tx: mpsc::Sender<Result<Chunk, ConnectError>>) {
    let result = async {
        loop {
            let Some(job) = shared.jobs.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { break };
            let table = &shared.tables[job.index];
            let id = table.id();
            let mut after = job.after;
            let fetch = shared.config.snapshot_fetch_size;
            loop {
                let sql = super::reader::chunk_query(table, after.as_ref(), fetch);
                let rows: Vec<Row> =
                    conn.query(sql).await.map_err(|e| catalog::db_error(&format!("snapshot of {id}"), e))?;
                let end = rows.len() < fetch || table.primary_key.is_empty();
                let mut records = Vec::with_capacity(rows.len());
                for row in rows {
                    let values = super::reader::snapshot_values(table, &shared.config, &row)?;
                    let key: Key = table
                        .primary_key
                        .iter()
                        .map(|&i| row.as_ref(i).and_then(|v| super::reader::key_text(&table.columns[i], v)))
                        .collect();
                    let record = snapshot_record(&shared.config, table, values, &shared.position, "true");
                    let keyed = (!table.primary_key.is_empty()).then(|| key.clone());
                    after = Some(key);
                    records.push((record, keyed));
                }
                if end {
                    if let Some((last, _)) = records.last_mut() {
                        set_marker(last, "last_in_data_collection");
                    }
                }
                if tx.send(Ok(Chunk { index: job.index, records, end })).await.is_err() {
                    return Ok(());
                }
                if end {
                    break;
                }
            }
        }
        conn.query_drop("COMMIT").await.map_err(|e| catalog::db_error("snapshot commit", e))
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
}

/// A snapshot row's record (`op:"r"`), its offset left empty.
pub fn snapshot_record(
    config: &MySqlConfig,
    table: &Table,
    values: Vec<Value>,
    position: &Position,
    marker: &str,
) -> SourceRecord {
    let info = SourceInfo {
        name: &config.topic_prefix,
        ts_ms: event::now_ms(),
        snapshot: marker,
        db: &table.db,
        table: Some(&table.name),
        server_id: 0,
        gtid: None,
        file: &position.file,
        pos: position.pos,
        row: 0,
        thread: None,
    };
    let key = table.key(&values);
    let after = table.row_struct(values);
    event::change_record(
        table,
        "r",
        key,
        None,
        Some(after),
        event::source_struct(&info),
        sluice_api::JsonMap::new(),
        &config.topic_prefix,
    )
}

/// Sets `source.snapshot` of a snapshot record (`first`, `last`...).
pub fn set_marker(record: &mut SourceRecord, marker: &str) {
    let Value::Struct(envelope) = &mut record.value else { return };
    let Some(i) = envelope.schema.fields.iter().position(|f| f.name == "source") else { return };
    let Some(Value::Struct(source)) = envelope.values.get_mut(i) else { return };
    let Some(j) = source.schema.fields.iter().position(|f| f.name == "snapshot") else { return };
    if let Some(v) = source.values.get_mut(j) {
        *v = Value::String(marker.to_string());
    }
}

/// Aborts the readers when the snapshot ends early (error, task stop).
pub struct Readers(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        ["s.a", "s.b", "s.c", "s.d", "s.e"].iter().map(|s| s.to_string()).collect()
    }

    fn key(k: &str) -> Option<Key> {
        Some(vec![Some(k.to_string())])
    }

    #[test]
    fn progress_names_the_tables_in_flight_and_resumes_each() {
        let ids = ids();
        let mut t = Tracker::new(ids.clone(), &plan(&ids, None));
        // Three readers: a, b and c in flight; c finishes first, then a gets past row 7.
        t.row(0, key("5"));
        t.row(1, key("2"));
        t.row(2, key("9"));
        t.finish(2);
        t.row(0, key("7"));
        let p = t.progress();
        assert_eq!((p.table.as_str(), p.key.clone()), ("s.a", key("7")));
        assert_eq!(p.through.as_deref(), Some("s.c"));
        assert_eq!(p.others, vec![("s.b".to_string(), key("2"))]);
        // Resuming: a after 7, b after 2, c done, d and e from the start.
        let jobs = plan(&ids, Some(&p));
        assert_eq!(
            jobs,
            vec![
                Job { index: 0, after: key("7") },
                Job { index: 1, after: key("2") },
                Job { index: 3, after: None },
                Job { index: 4, after: None },
            ]
        );
        // The resumed tracker reports the same progress before any new row.
        let again = Tracker::new(ids.clone(), &jobs).progress();
        assert_eq!((again.table, again.key, again.others.len()), ("s.a".to_string(), key("7"), 1));
        // a finishes: b is the first table not done; d was handed out meanwhile.
        t.finish(0);
        t.row(3, None);
        let p = t.progress();
        assert_eq!((p.table.as_str(), p.key.clone(), p.through.as_deref()), ("s.b", key("2"), Some("s.d")));
        assert_eq!(p.others, vec![("s.d".to_string(), None)]);
        assert_eq!(plan(&ids, Some(&p)).iter().map(|j| j.index).collect::<Vec<_>>(), vec![1, 3, 4]);
    }

    #[test]
    fn a_sequential_snapshot_offset_still_resumes() {
        let ids = ids();
        let old = SnapshotProgress { table: "s.c".into(), key: key("4"), through: None, others: Vec::new() };
        let jobs = plan(&ids, Some(&old));
        assert_eq!(jobs.iter().map(|j| j.index).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(jobs[0].after, key("4"));
        assert_eq!(jobs[1].after, None);
    }
}
