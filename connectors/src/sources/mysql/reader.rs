//! The background reader: snapshot, then the binlog stream, into a queue bounded in records and
//! bytes that the task's `poll` drains. Reconnects with backoff on connection loss and resumes at
//! the last event it queued, so a database restart neither loses nor repeats rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Row};
use sluice_api::{ConnectError, ErrorKind, SourceRecord, Value};
use tokio::sync::{mpsc, Semaphore};

use super::catalog::{self, quote_ident, quote_literal, Catalog, ServerInfo};
use super::config::{MySqlConfig, SnapshotMode};
use super::event::{self, Position, SnapshotProgress, SourceInfo, TxnMeta};
use super::history::{self, Change, ChangeKind, History};
use super::schema::{from_binlog, from_text, Table};
use super::snapshot;
use super::tablemap::table_from_map;

/// A batch and the queue bytes it holds.
pub type Batch = (Vec<SourceRecord>, u32);

/// The sending half of the read-ahead queue.
pub struct Queue {
    tx: mpsc::Sender<Result<Batch, ConnectError>>,
    bytes: Arc<Semaphore>,
    max_bytes: u32,
}

impl Queue {
    /// A queue of at most `max_records` records (in batches of `batch`) and `max_bytes` bytes.
    pub fn new(
        max_records: usize,
        batch: usize,
        max_bytes: usize,
    ) -> (Queue, mpsc::Receiver<Result<Batch, ConnectError>>, Arc<Semaphore>) {
        let slots = (max_records / batch.max(1)).max(2);
        let (tx, rx) = mpsc::channel(slots);
        let max_bytes = max_bytes.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize) as u32;
        let bytes = Arc::new(Semaphore::new(max_bytes as usize));
        (Queue { tx, bytes: bytes.clone(), max_bytes }, rx, bytes)
    }

    /// Queues a batch, waiting while the queue is full (backpressure reaches the binlog reader).
    /// `Err` means the task is gone.
    async fn send(&self, records: Vec<SourceRecord>) -> Result<(), ()> {
        if records.is_empty() {
            return Ok(());
        }
        let size: usize = records.iter().map(SourceRecord::approx_size).sum();
        let permits = (size.min(self.max_bytes as usize) as u32).max(1);
        let permit = self.bytes.acquire_many(permits).await.map_err(|_| ())?;
        permit.forget();
        self.tx.send(Ok((records, permits))).await.map_err(|_| ())
    }

    async fn fail(&self, error: ConnectError) {
        let _ = self.tx.send(Err(error)).await;
    }
}

/// Where the reader starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Snapshot (resuming `progress` when set) at a consistent point, then stream from there
    /// (or from `position` when the snapshot resumes one that was interrupted).
    Snapshot { resume: Option<(Position, SnapshotProgress)> },
    /// Stream from a stored position.
    Stream(Position),
    /// Stream from the oldest binlog file on the server (`snapshot.mode=never` without an offset).
    StreamFromBeginning,
}

/// Reads the database into the queue until the queue's receiver is dropped.
pub struct Reader {
    config: Arc<MySqlConfig>,
    queue: Queue,
    catalog: Catalog,
    /// Schemas from table-map metadata, by table id, with the event bytes they were built from.
    maps: HashMap<u64, (Vec<u8>, Arc<Table>)>,
    /// Where to resume after a reconnect.
    start: Start,
    /// The schema history topic, when configured.
    history: Option<History>,
}

/// Events on the server that carry no data change and can be passed over.
fn ignorable(raw_type: u8) -> bool {
    const MARIADB_ANNOTATE_ROWS: u8 = 0xa0;
    const MARIADB_BINLOG_CHECKPOINT: u8 = 0xa1;
    const MARIADB_GTID_LIST: u8 = 0xa3;
    matches!(raw_type, MARIADB_ANNOTATE_ROWS | MARIADB_BINLOG_CHECKPOINT | MARIADB_GTID_LIST)
}

const MARIADB_GTID: u8 = 0xa2;

impl Reader {
    /// A reader that starts at `start`.
    pub fn new(config: Arc<MySqlConfig>, queue: Queue, start: Start, history: Option<History>) -> Reader {
        Reader { config, queue, catalog: Catalog::default(), maps: HashMap::new(), start, history }
    }

    /// Runs until the task stops; retriable failures reconnect with backoff, fatal ones are queued
    /// for `poll` to return.
    pub async fn run(mut self) {
        const FIRST_BACKOFF: Duration = Duration::from_millis(500);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let began = tokio::time::Instant::now();
            match self.run_once().await {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::Retriable => {
                    // A connection that worked for a while starts the backoff over.
                    if began.elapsed() > Duration::from_secs(60) {
                        backoff = FIRST_BACKOFF;
                    }
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "mysql reader failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    if self.queue.tx.is_closed() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "mysql reader stopped");
                    self.queue.fail(e).await;
                    return;
                }
            }
        }
    }

    async fn run_once(&mut self) -> Result<(), ConnectError> {
        let mut conn = catalog::connect(&self.config).await?;
        let server = catalog::check_server(&mut conn, &self.config).await?;
        let position = match self.start.clone() {
            Start::Snapshot { resume } => {
                let Some(position) = self.snapshot(&mut conn, &server, resume).await? else { return Ok(()) };
                if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                    tracing::info!("snapshot.mode=initial_only: snapshot complete, not streaming");
                    return Ok(());
                }
                position
            }
            Start::Stream(p) => {
                let files = catalog::binlog_files(&mut conn).await?;
                if !files.contains(&p.file) && self.config.snapshot_mode == SnapshotMode::WhenNeeded {
                    tracing::warn!(file = %p.file, "stored binlog position was purged; snapshot.mode=when_needed takes a new snapshot");
                    self.start = Start::Snapshot { resume: None };
                    return Box::pin(self.run_once()).await;
                }
                p
            }
            Start::StreamFromBeginning => {
                let files = catalog::binlog_files(&mut conn).await?;
                let file =
                    files.first().cloned().ok_or_else(|| ConnectError::fatal("the server lists no binary logs"))?;
                Position { file, pos: 4, ..Position::default() }
            }
        };
        self.start = Start::Stream(position.clone());
        self.stream(conn, &server, position).await
    }

    /// Reads every captured table at one consistent point; returns the binlog position to stream
    /// from, or `None` when the task went away. `snapshot.max.threads` connections read tables
    /// in parallel (see `snapshot`); their records are queued as they come, each with the offset
    /// of the snapshot's progress.
    async fn snapshot(
        &mut self,
        conn: &mut Conn,
        server: &ServerInfo,
        resume: Option<(Position, SnapshotProgress)>,
    ) -> Result<Option<Position>, ConnectError> {
        let db = |e| catalog::db_error("snapshot", e);
        let threads = self.config.snapshot_threads.max(1);
        let mut readers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let mut c = catalog::connect(&self.config).await?;
            prepare_snapshot_session(&mut c).await?;
            readers.push(c);
        }
        prepare_snapshot_session(conn).await?;
        let snapshot_status = |rows: Vec<(String, String)>| {
            let get = |k: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
            let file = get("binlog_snapshot_file").unwrap_or_default();
            let pos = get("binlog_snapshot_position").and_then(|p| p.parse().ok()).unwrap_or(4);
            Position { file, pos, ..Position::default() }
        };
        // The captured tables and their definitions, read at the snapshot point: under the lock
        // where one is taken (a DDL right after the point must not be taken for the definition
        // at it), else right after the snapshot started.
        let mut definitions: Option<Result<Vec<Arc<Table>>, ConnectError>> = None;
        let position = if server.mariadb && threads == 1 {
            // MariaDB reports the binlog position of a consistent snapshot without any lock.
            let r = &mut readers[0];
            r.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.map_err(db)?;
            snapshot_status(r.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(db)?)
        } else {
            // Several connections (or MySQL): a global read lock only while the snapshots start
            // and the position is read, so they all see the same point.
            // FTWRL waits for running queries and meanwhile blocks every write: give up after 10 s.
            conn.query_drop("SET SESSION lock_wait_timeout = 10").await.map_err(db)?;
            conn.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(|e| {
                catalog::db_error(
                    "the snapshot's global read lock (FLUSH TABLES WITH READ LOCK, needs the RELOAD privilege; \
                     snapshot.max.threads=1 on MariaDB needs no lock)",
                    e,
                )
            })?;
            let started = async {
                for r in readers.iter_mut() {
                    r.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
                }
                if server.mariadb {
                    Ok(Some(snapshot_status(readers[0].query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?)))
                } else {
                    let row: Option<Row> = conn.query_first("SHOW MASTER STATUS").await?;
                    Ok(row.map(|mut row| Position {
                        file: row.take(0).unwrap_or_default(),
                        pos: row.take(1).unwrap_or(4),
                        ..Position::default()
                    }))
                }
            }
            .await;
            if started.is_ok() {
                definitions = Some(self.load_definitions(conn).await);
            }
            let unlocked = conn.query_drop("UNLOCK TABLES").await;
            let started = started.map_err(db)?;
            unlocked.map_err(db)?;
            started.ok_or_else(|| ConnectError::fatal("SHOW MASTER STATUS returned nothing"))?
        };
        if position.file.is_empty() {
            return Err(ConnectError::fatal(
                "the server reported no binlog position for the snapshot; is the binary log on?",
            ));
        }
        // A resumed snapshot keeps the original position: streaming from it covers every change
        // made since, so rows read later at a newer point are still followed by their changes.
        let (position, progress) = match resume {
            Some((p, progress)) if !p.file.is_empty() => (p, Some(progress)),
            _ => (position, None),
        };
        let loaded = match definitions {
            Some(d) => d?,
            None => self.load_definitions(conn).await?,
        };
        tracing::info!(tables = loaded.len(), threads, file = %position.file, pos = position.pos, resumed = progress.is_some(), "snapshot starting");
        // The history gets every captured table's definition at the snapshot position (a resumed
        // snapshot recorded them on its first attempt), before any row of the snapshot is queued.
        if self.history.as_ref().is_some_and(|h| progress.is_none() || h.is_empty()) {
            self.record_definitions(conn, &loaded, &position).await?;
        }
        for table in &loaded {
            self.catalog.insert(table.clone());
        }
        let ids: Vec<String> = loaded.iter().map(|t| t.id()).collect();
        let jobs = match self.config.snapshot_mode {
            SnapshotMode::NoData => Vec::new(),
            _ => snapshot::plan(&ids, progress.as_ref()),
        };
        let mut tracker = snapshot::Tracker::new(ids, &jobs);
        let shared = Arc::new(snapshot::Shared {
            config: self.config.clone(),
            tables: loaded,
            jobs: std::sync::Mutex::new(jobs.into()),
            position: position.clone(),
        });
        let (tx, mut rx) = mpsc::channel(threads);
        let _readers = snapshot::Readers(
            readers.into_iter().map(|c| tokio::spawn(snapshot::read_tables(c, shared.clone(), tx.clone()))).collect(),
        );
        drop(tx);
        let offset_position = Position { server_id: 0, ..position.clone() };
        let mut held: Option<SourceRecord> = None;
        let mut batch: Vec<SourceRecord> = Vec::new();
        let mut rows = 0u64;
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk?;
            for (mut record, key) in chunk.records {
                tracker.row(chunk.index, key);
                record.source_offset = event::offset(&offset_position, Some(&tracker.progress()));
                if rows == 0 {
                    snapshot::set_marker(&mut record, "first");
                }
                rows += 1;
                if let Some(h) = held.replace(record) {
                    batch.push(h);
                }
            }
            if chunk.end {
                tracker.finish(chunk.index);
                tracing::info!(table = %shared.tables[chunk.index].id(), "snapshot of table done");
            }
            if batch.len() >= self.config.max_batch_size && self.queue.send(std::mem::take(&mut batch)).await.is_err() {
                return Ok(None);
            }
        }
        // Every reader ended; one that panicked ends without an error: never take its tables
        // for done.
        if let Some(table) = tracker.pending() {
            return Err(ConnectError::retriable(format!(
                "a snapshot reader ended before finishing {table}; the snapshot resumes from its stored progress"
            )));
        }
        if let Some(mut record) = held.take() {
            // The last row carries the streaming offset, so a restart after it does not redo the snapshot.
            snapshot::set_marker(&mut record, "last");
            record.source_offset = event::offset(&position, None);
            batch.push(record);
        }
        if self.queue.send(batch).await.is_err() {
            return Ok(None);
        }
        tracing::info!(file = %position.file, pos = position.pos, rows, "snapshot complete");
        Ok(Some(position))
    }

    /// Streams the binlog from `position` until the task stops or the connection fails.
    async fn stream(&mut self, mut conn: Conn, server: &ServerInfo, position: Position) -> Result<(), ConnectError> {
        // MariaDB: an offset with a GTID state is resumed by GTID (as Debezium's MariaDB
        // connector does), so it survives a failover to a server whose binlog files and positions
        // differ; the file and position then only say where the state was recorded.
        let gtid_start = position
            .gtids
            .clone()
            .filter(|g| server.mariadb && !g.trim().is_empty() && !self.config.no_gtid_positioning);
        let files = catalog::binlog_files(&mut conn).await?;
        // The GTID state must name every domain the server has: a domain left out would be sent
        // again from its first transaction on a GTID resume. Where the position is on this
        // server, the domains the offset lacks (idle since the connector started, or an offset
        // written without them) are taken from BINLOG_GTID_POS at that position.
        let mut position = position;
        if server.mariadb && files.contains(&position.file) {
            let at = format!("SELECT BINLOG_GTID_POS({}, {})", quote_literal(&position.file), position.pos);
            let full: Option<Option<String>> =
                conn.query_first(at).await.map_err(|e| catalog::db_error("BINLOG_GTID_POS", e))?;
            if let Some(full) = full.flatten().filter(|f| !f.trim().is_empty()) {
                position.gtids = Some(merge_gtid_state(position.gtids.as_deref(), &full));
            }
        }
        let gtid_start = gtid_start.and(position.gtids.clone());
        if gtid_start.is_none() && !files.contains(&position.file) {
            return Err(ConnectError::fatal(format!(
                "binlog file {} (offset position {}) is no longer on the server (oldest is {}); the events since were purged. \
                 Set snapshot.mode=when_needed to take a new snapshot, or reset the connector's offsets",
                position.file,
                position.pos,
                files.first().map_or("none", String::as_str)
            )));
        }
        let mut meta = catalog::connect(&self.config).await?;
        let db = |e| catalog::db_error("starting the binlog stream", e);
        if server.mariadb {
            conn.query_drop("SET @mariadb_slave_capability = 4").await.map_err(db)?;
        }
        // Server heartbeats every 5 s, so a dead connection is noticed.
        conn.query_drop("SET @master_heartbeat_period = 5000000000").await.map_err(db)?;
        tracing::info!(file = %position.file, pos = position.pos, event = position.event, row = position.row, gtids = ?gtid_start, "binlog stream starting");
        let request = match &gtid_start {
            Some(gtids) => {
                conn.query_drop(format!("SET @slave_connect_state = {}", quote_literal(gtids))).await.map_err(db)?;
                conn.query_drop("SET @slave_gtid_strict_mode = 0").await.map_err(db)?;
                conn.query_drop("SET @slave_gtid_ignore_duplicates = 0").await.map_err(db)?;
                // The server starts at the first transaction after that state; name and position
                // are ignored.
                BinlogStreamRequest::new(self.config.server_id)
            }
            None => BinlogStreamRequest::new(self.config.server_id)
                .with_filename(position.file.as_bytes())
                .with_pos(position.pos),
        };
        let mut stream = conn.get_binlog_stream(request).await.map_err(db)?;
        let reading = match &gtid_start {
            Some(g) => format!(
                "reading the binlog from GTID state {g} (recorded at {}:{}; if the server no longer has it, set snapshot.mode=when_needed or reset the connector's offsets)",
                position.file, position.pos
            ),
            None => "reading the binlog".to_string(),
        };
        if let Some(history) = &self.history {
            if history.is_empty() {
                // Offsets without a history (snapshot.mode=recovery, or FULL table-map metadata):
                // the current definitions, recorded at the stored position.
                tracing::warn!(topic = history.topic(), file = %position.file, pos = position.pos, "schema history is empty: recording the current table definitions at the stored position");
                let tables = self.load_definitions(&mut meta).await?;
                self.record_definitions(&mut meta, &tables, &position).await?;
                for table in tables {
                    self.catalog.insert(table);
                }
            } else {
                self.catalog = Catalog::default();
                for table in history.tables_at(&position, &self.config) {
                    self.catalog.insert(Arc::new(table));
                }
            }
        }
        let mut s = StreamState::new(position);
        s.checksum =
            catalog::variable(&mut meta, "binlog_checksum").await?.is_some_and(|v| !v.eq_ignore_ascii_case("NONE"));
        let heartbeat =
            (self.config.heartbeat_interval_ms > 0).then(|| Duration::from_millis(self.config.heartbeat_interval_ms));
        let mut next_heartbeat = heartbeat.map(|d| tokio::time::Instant::now() + d);
        let mut batch: Vec<SourceRecord> = Vec::new();
        let idle = Duration::from_secs(30);
        loop {
            let next = if batch.is_empty() {
                let hb = async {
                    match next_heartbeat {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ev = tokio::time::timeout(idle, stream.next()) => match ev {
                        Ok(ev) => ev,
                        Err(_) => return Err(ConnectError::retriable("no binlog event or server heartbeat for 30 s")),
                    },
                    _ = hb => {
                        if let Some(d) = heartbeat {
                            next_heartbeat = Some(tokio::time::Instant::now() + d);
                        }
                        if !s.in_txn {
                            let offset = event::offset(&s.committed, None);
                            batch.push(event::heartbeat_record(&self.config.heartbeat_topic_prefix, &self.config.topic_prefix, offset));
                        }
                        continue;
                    }
                }
            } else {
                match stream.next().now_or_never() {
                    Some(ev) if batch.len() < self.config.max_batch_size => ev,
                    Some(ev) => {
                        if self.queue.send(std::mem::take(&mut batch)).await.is_err() {
                            return Ok(());
                        }
                        ev
                    }
                    None => {
                        if self.queue.send(std::mem::take(&mut batch)).await.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                }
            };
            let Some(ev) = next else {
                return Err(ConnectError::retriable("the server closed the binlog stream"));
            };
            let ev = ev.map_err(|e| catalog::db_error(&reading, e))?;
            self.on_event(&mut s, &ev, &stream, &mut meta, &mut batch).await?;
            // Resume here after a reconnect.
            self.start = Start::Stream(s.resume.clone());
        }
    }

    async fn on_event(
        &mut self,
        s: &mut StreamState,
        ev: &mysql_async::binlog::events::Event,
        stream: &mysql_async::BinlogStream,
        meta: &mut Conn,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ConnectError> {
        let header = ev.header();
        let raw_type = header.event_type_raw();
        let end = u64::from(header.log_pos());
        let start = end.saturating_sub(u64::from(header.event_size()));
        let fake = header.log_pos() == 0;
        s.ts_sec = i64::from(header.timestamp());
        let position_here = |s: &StreamState| format!("{}:{}", s.file, start);
        if raw_type == MARIADB_GTID {
            let data = ev.data();
            if data.len() >= 13 {
                let seq = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
                let domain = u32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
                let flags = data[12];
                s.begin_txn(start, Some(format!("{domain}-{}-{seq}", header.server_id())), flags & 1 == 0);
            }
            s.count_event();
            return Ok(());
        }
        if ignorable(raw_type) {
            if !fake {
                s.count_event();
            }
            return Ok(());
        }
        if !fake {
            s.server_id = header.server_id();
        }
        let data = ev.read_data().map_err(|e| {
            ConnectError::fatal(format!("binlog event at {} could not be parsed: {e}", position_here(s)))
        })?;
        match data {
            Some(EventData::RotateEvent(r)) => {
                // The first (fake) rotate arrives before the format description, so the reader
                // cannot strip its checksum: the name then ends with the 4 checksum bytes.
                let raw = r.name_raw();
                let with_crc = s.checksum && raw.len() > 4 && header.event_size() as usize == 19 + 8 + raw.len();
                let raw = if with_crc { &raw[..raw.len() - 4] } else { raw };
                s.file = String::from_utf8_lossy(raw).into_owned();
                s.committed.file = s.file.clone();
                s.committed.pos = r.position();
                // Not while restarting inside a transaction: the resume point keeps the rows to
                // skip (a reconnect before the next record would otherwise send them again).
                if !s.in_txn && s.skip_events == 0 && s.skip_rows == 0 {
                    s.resume = s.committed.clone();
                    s.resume.event = 0;
                    s.resume.row = 0;
                }
            }
            Some(EventData::FormatDescriptionEvent(_)) | Some(EventData::HeartbeatEvent) => {}
            Some(EventData::GtidEvent(g)) => {
                let sid = g.sid();
                let uuid = sid.iter().map(|b| format!("{b:02x}")).collect::<String>();
                let gtid = format!(
                    "{}-{}-{}-{}-{}:{}",
                    &uuid[0..8],
                    &uuid[8..12],
                    &uuid[12..16],
                    &uuid[16..20],
                    &uuid[20..32],
                    g.gno()
                );
                s.begin_txn(start, Some(gtid), false);
                s.count_event();
            }
            Some(EventData::AnonymousGtidEvent(_)) | Some(EventData::PreviousGtidsEvent(_)) => {
                if !fake {
                    s.count_event();
                }
            }
            Some(EventData::QueryEvent(q)) => {
                let sql = q.query();
                let trimmed = sql.trim_start();
                let upper: String = trimmed.chars().take(16).collect::<String>().to_ascii_uppercase();
                s.thread = Some(i64::from(q.thread_id()));
                if upper.starts_with("BEGIN") || upper.starts_with("XA START") {
                    if !s.in_txn {
                        s.begin_txn(start, s.pending_gtid.clone(), true);
                    }
                    s.in_txn = true;
                    s.count_event();
                } else if upper.starts_with("COMMIT") || upper.starts_with("XA COMMIT") || upper.starts_with("ROLLBACK") {
                    self.commit(s, end, batch);
                } else {
                    s.count_event();
                    self.on_statement(s, meta, &q.schema(), trimmed, q.thread_id(), start, end, batch).await?;
                    if !s.in_txn {
                        self.commit(s, end, batch);
                    }
                }
            }
            Some(EventData::XidEvent(_)) => self.commit(s, end, batch),
            Some(EventData::TableMapEvent(t)) => {
                s.count_event();
                let id = t.table_id();
                let known = self.maps.get(&id).is_some_and(|(bytes, _)| bytes.as_slice() == ev.data());
                if !known && self.config.captures_table(&t.database_name(), &t.table_name()) {
                    match table_from_map(&t, &self.config) {
                        Some(table) => {
                            self.maps.insert(id, (ev.data().to_vec(), Arc::new(table)));
                        }
                        None => {
                            self.maps.remove(&id);
                        }
                    }
                }
            }
            Some(EventData::RowsEvent(rows)) => {
                self.on_rows(s, &rows, stream, meta, start, batch).await?;
                s.count_event();
                if !s.in_txn {
                    self.commit(s, end, batch);
                }
            }
            Some(EventData::TransactionPayloadEvent(_)) => {
                return Err(ConnectError::fatal(format!(
                    "compressed transaction payload at {}: set binlog_transaction_compression=OFF on the server",
                    position_here(s)
                )))
            }
            Some(EventData::IntvarEvent(_) | EventData::RandEvent(_) | EventData::UserVarEvent(_) | EventData::RowsQueryEvent(_) | EventData::IgnorableEvent(_)) => {
                s.count_event();
            }
            Some(EventData::StopEvent) => {}
            Some(other) => {
                return Err(ConnectError::fatal(format!(
                    "unsupported binlog event {:?} at {}; stopping rather than skipping it",
                    event_name(&other),
                    position_here(s)
                )))
            }
            None => {
                return Err(ConnectError::fatal(format!(
                    "unknown binlog event type 0x{raw_type:02x} at {} (compressed or encrypted binlog?); stopping rather than skipping it",
                    position_here(s)
                )))
            }
        }
        Ok(())
    }

    /// A transaction (or a statement outside one) ended at `end`; with transaction metadata, its
    /// END event follows its change events.
    fn commit(&self, s: &mut StreamState, end: u64, batch: &mut Vec<SourceRecord>) {
        let meta = s.txn_meta.take();
        s.commit(end);
        if let (Some(topic), Some(meta)) = (&self.config.transaction_topic, meta) {
            batch.push(event::transaction_record(
                topic,
                &self.config.topic_prefix,
                &meta,
                true,
                s.ts_sec * 1000,
                event::offset(&s.committed, None),
            ));
        }
    }

    /// A statement outside row events: DDL refreshes schemas (and is published when configured);
    /// statement-based DML cannot be captured and stops the task.
    #[allow(clippy::too_many_arguments)]
    async fn on_statement(
        &mut self,
        s: &mut StreamState,
        meta: &mut Conn,
        schema: &str,
        sql: &str,
        thread: u32,
        start: u64,
        end: u64,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ConnectError> {
        let body = strip_leading_comments(sql);
        let word = body.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match word.as_str() {
            "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE" => {
                let target = ddl_target(body, schema);
                // TRUNCATE keeps the table's schema: look it up before the cache is dropped.
                let truncated = match (&target, word.as_str()) {
                    (Some((d, t)), "TRUNCATE") if !t.is_empty() && self.config.captures_table(d, t) => {
                        self.catalog.get(meta, &self.config, d, t).await?
                    }
                    _ => None,
                };
                if self.history.is_none() {
                    self.catalog.invalidate();
                }
                let db = target.as_ref().map_or(schema.to_string(), |(d, _)| d.clone());
                // Any captured table the statement names (`RENAME TABLE other TO captured`,
                // `DROP TABLE other, captured`) makes it ours.
                let table_captured = target.as_ref().is_none_or(|(d, t)| t.is_empty() || self.config.captures_table(d, t))
                    || matches!(ddl_tables(body, schema), DdlNames::Tables(names) if names.iter().any(|(d, t)| self.config.captures_table(d, t)));
                if !self.config.captures_database(&db) || !table_captured {
                    return Ok(());
                }
                // After the statement: its own GTID counts as done, or a GTID resume from this
                // offset would run it (and emit its records) again.
                let mut position = s.committed.clone();
                position.pos = end;
                position.event = 0;
                position.row = 0;
                position.gtids = s.gtids_after();
                let changes = match (&truncated, self.history.is_some()) {
                    (Some(table), _) => vec![Change::of(ChangeKind::Alter, table)],
                    (None, true) => self.track_ddl(meta, sql, schema, &db, &position).await?,
                    (None, false) if self.config.include_schema_changes => self.ddl_changes(meta, sql, schema).await?,
                    (None, false) => Vec::new(),
                };
                let info = SourceInfo {
                    name: &self.config.topic_prefix,
                    ts_ms: s.ts_sec * 1000,
                    snapshot: "false",
                    db: &db,
                    table: target.as_ref().map(|(_, t)| t.as_str()).filter(|t| !t.is_empty()),
                    server_id: s.committed.server_id,
                    gtid: s.gtid.as_deref(),
                    file: &s.file,
                    pos: start,
                    row: 0,
                    thread: Some(i64::from(thread)),
                };
                if let Some(table) = truncated.filter(|_| !self.config.skipped.truncate) {
                    let mut r = event::change_record(
                        &table,
                        "t",
                        Value::Null,
                        None,
                        None,
                        event::source_struct(&info),
                        event::offset(&position, None),
                        &self.config.topic_prefix,
                    );
                    r.key_schema = None;
                    batch.push(r);
                }
                if self.config.include_schema_changes {
                    let changes: Vec<serde_json::Value> = changes.iter().map(history::change_json).collect();
                    batch.push(event::schema_change_record(
                        &self.config.topic_prefix,
                        &db,
                        sql,
                        &changes,
                        event::source_struct(&info),
                        event::offset(&position, None),
                    ));
                }
                Ok(())
            }
            "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD" if self.config.captures_database(schema) || schema.is_empty() => {
                Err(ConnectError::fatal(format!(
                    "statement-based change at {}:{start} cannot be captured (binlog_format must be ROW for every session): {}",
                    s.file,
                    sql.chars().take(200).collect::<String>()
                )))
            }
            _ => Ok(()),
        }
    }

    async fn on_rows(
        &mut self,
        s: &mut StreamState,
        rows: &RowsEventData<'_>,
        stream: &mysql_async::BinlogStream,
        meta: &mut Conn,
        start: u64,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ConnectError> {
        let event_index = s.events_in_txn;
        if event_index < s.skip_events {
            return Ok(());
        }
        let skip_rows = if event_index == s.skip_events { s.skip_rows } else { 0 };
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Err(ConnectError::fatal(format!("rows event at {}:{start} has no table map", s.file)));
        };
        let (db, name) = (tme.database_name().into_owned(), tme.table_name().into_owned());
        if !self.config.captures_table(&db, &name) {
            return Ok(());
        }
        let op = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => "c",
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => "u",
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => "d",
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(ConnectError::fatal(format!(
                    "partial JSON update at {}:{start} on {db}.{name}: set binlog_row_value_options='' on the server",
                    s.file
                )))
            }
        };
        let skipped = match op {
            "c" => self.config.skipped.create,
            "u" => self.config.skipped.update,
            _ => self.config.skipped.delete,
        };
        let columns = tme.columns_count() as usize;
        if let Some((_, table)) = self.maps.get(&rows.table_id()) {
            let table = table.clone();
            return self.emit_rows(s, rows, tme, &table, op, skipped, skip_rows, event_index, start, batch);
        }
        let mut table = self.catalog.get(meta, &self.config, &db, &name).await?;
        if table.as_ref().is_some_and(|t| t.columns.len() != columns) {
            self.catalog.forget(&db, &name);
            table = self.catalog.get(meta, &self.config, &db, &name).await?;
        }
        let Some(table) = table else {
            return Err(ConnectError::fatal(format!(
                "rows event at {}:{start} for {db}.{name}, which no longer exists",
                s.file
            )));
        };
        if table.columns.len() != columns {
            return Err(ConnectError::fatal(format!(
                "rows event at {}:{start} for {db}.{name} has {columns} columns but the table now has {}: \
                 the table changed after this event; restart from a newer position or a new snapshot",
                s.file,
                table.columns.len()
            )));
        }
        self.emit_rows(s, rows, tme, &table, op, skipped, skip_rows, event_index, start, batch)
    }

    /// Records the definitions of `tables` in the history at `position`, each with its
    /// `SHOW CREATE TABLE` as DDL.
    async fn record_definitions(
        &mut self,
        conn: &mut Conn,
        tables: &[Arc<Table>],
        position: &Position,
    ) -> Result<(), ConnectError> {
        let mut entries = Vec::with_capacity(tables.len());
        for table in tables {
            let ddl = catalog::show_create_table(conn, &table.db, &table.name).await?;
            entries.push((table.db.clone(), ddl, vec![Change::of(ChangeKind::Create, table)]));
        }
        if let Some(history) = self.history.as_mut() {
            history.record(position, entries).await?;
        }
        Ok(())
    }

    /// The captured tables (sorted) with their current definitions.
    async fn load_definitions(&self, conn: &mut Conn) -> Result<Vec<Arc<Table>>, ConnectError> {
        let tables = catalog::captured_tables(conn, &self.config).await?;
        let mut loaded = Vec::with_capacity(tables.len());
        for (db, name) in &tables {
            if let Some(table) = catalog::load_table(conn, &self.config, db, name).await? {
                loaded.push(Arc::new(table));
            }
        }
        Ok(loaded)
    }

    /// Brings the catalog past a DDL statement on a captured database and records it in the
    /// history: a DDL recorded before (the stream replays it after a restart) is applied from its
    /// record; a new one from the definitions the server has now.
    async fn track_ddl(
        &mut self,
        meta: &mut Conn,
        sql: &str,
        default_db: &str,
        db: &str,
        position: &Position,
    ) -> Result<Vec<Change>, ConnectError> {
        let Some(history) = self.history.as_ref() else { return Ok(Vec::new()) };
        if let Some(changes) = history.recorded_at(position) {
            for change in &changes {
                match change.build(&self.config) {
                    Some(table) => self.catalog.insert(Arc::new(table)),
                    None => self.catalog.forget(&change.db, &change.table),
                }
            }
            return Ok(changes);
        }
        let changes = self.ddl_changes(meta, sql, default_db).await?;
        if let Some(history) = self.history.as_mut() {
            history.record(position, vec![(db.to_string(), sql.to_string(), changes.clone())]).await?;
        }
        Ok(changes)
    }

    /// The captured tables a DDL statement changed, with the definitions the server has now,
    /// brought into the catalog.
    async fn ddl_changes(&mut self, meta: &mut Conn, sql: &str, default_db: &str) -> Result<Vec<Change>, ConnectError> {
        let sql = strip_leading_comments(sql);
        let names = match ddl_tables(sql, default_db) {
            DdlNames::Tables(names) => names,
            DdlNames::Database(d) => self.catalog.tables_of(&d),
        };
        let mut changes = Vec::new();
        for (d, t) in names.into_iter().filter(|(d, t)| self.config.captures_table(d, t)) {
            // Without a history the catalog was emptied before the statement: an ALTER's table
            // is then known to have existed.
            let known = self.catalog.contains(&d, &t)
                || (self.history.is_none()
                    && sql.trim_start().get(..5).is_some_and(|w| w.eq_ignore_ascii_case("ALTER")));
            match catalog::load_table(meta, &self.config, &d, &t).await? {
                Some(table) => {
                    changes.push(Change::of(if known { ChangeKind::Alter } else { ChangeKind::Create }, &table));
                    self.catalog.insert(Arc::new(table));
                }
                None => {
                    changes.push(Change { kind: ChangeKind::Drop, db: d.clone(), table: t.clone(), def: None });
                    self.catalog.forget(&d, &t);
                }
            }
        }
        Ok(changes)
    }

    /// Turns the rows of one rows event into change records (and tombstones).
    #[allow(clippy::too_many_arguments)]
    fn emit_rows(
        &self,
        s: &mut StreamState,
        rows: &RowsEventData<'_>,
        tme: &mysql_async::binlog::events::TableMapEvent<'_>,
        table: &Arc<Table>,
        op: &str,
        skipped: bool,
        skip_rows: u64,
        event_index: u64,
        start: u64,
        batch: &mut Vec<SourceRecord>,
    ) -> Result<(), ConnectError> {
        let (db, name) = (table.db.as_str(), table.name.as_str());
        let position_of = |row: u64, s: &StreamState| Position { event: event_index, row, ..s.resume_base() };
        for (i, pair) in rows.rows(tme).enumerate() {
            let (before, after) = pair.map_err(|e| {
                ConnectError::fatal(format!(
                    "rows event at {}:{start} for {db}.{name} could not be decoded: {e}",
                    s.file
                ))
            })?;
            let row_no = i as u64;
            if row_no < skip_rows || skipped {
                continue;
            }
            let decode = |row: &mysql_async::binlog::row::BinlogRow| -> Result<Vec<Value>, ConnectError> {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(c, col)| {
                        from_binlog(col, &self.config, row.as_ref(c))
                            .map_err(|e| ConnectError::fatal(format!("{db}.{name} at {}:{start}: {e}", s.file)))
                    })
                    .collect()
            };
            let mut before = before.as_ref().map(decode).transpose()?;
            let mut after = after.as_ref().map(decode).transpose()?;
            for row in before.iter_mut().chain(after.iter_mut()) {
                table.shape(row);
            }
            if op == "u" && self.config.skip_unchanged {
                if let (Some(b), Some(a)) = (&before, &after) {
                    let captured = |row: &Vec<Value>| -> Vec<Value> {
                        row.iter().zip(&table.columns).filter(|(_, c)| c.captured).map(|(v, _)| v.clone()).collect()
                    };
                    if captured(b) == captured(a) {
                        continue;
                    }
                }
            }
            let key = table.key(after.as_deref().or(before.as_deref()).unwrap_or(&[]));
            // Transaction metadata: a BEGIN event before the transaction's first change event,
            // its counts in each change event and in the offset (a restart goes on counting).
            let mut block = None;
            if let Some(topic) = &self.config.transaction_topic {
                if s.txn_meta.is_none() {
                    let base = s.resume_base();
                    let id = s.gtid.clone().unwrap_or_else(|| format!("{}:{}", base.file, base.pos));
                    let meta = TxnMeta { id, per_collection: Vec::new() };
                    let at = Position { txn: Some(meta.clone()), ..position_of(row_no, s) };
                    batch.push(event::transaction_record(
                        topic,
                        &self.config.topic_prefix,
                        &meta,
                        false,
                        s.ts_sec * 1000,
                        event::offset(&at, None),
                    ));
                    s.txn_meta = Some(meta);
                }
                if let Some(meta) = s.txn_meta.as_mut() {
                    let (total, order) = meta.count(&table.id());
                    block = Some((meta.id.clone(), total, order));
                }
            }
            let position = Position { txn: s.txn_meta.clone(), ..position_of(row_no + 1, s) };
            let info = SourceInfo {
                name: &self.config.topic_prefix,
                ts_ms: s.ts_sec * 1000,
                snapshot: "false",
                db,
                table: Some(name),
                server_id: s.server_id,
                gtid: s.gtid.as_deref(),
                file: &s.file,
                pos: start,
                row: i as i32,
                thread: s.thread,
            };
            let mut record = event::change_record(
                table,
                op,
                key,
                before.map(|b| table.row_struct(b)),
                after.map(|a| table.row_struct(a)),
                event::source_struct(&info),
                event::offset(&position, None),
                &self.config.topic_prefix,
            );
            if let Some((id, total, order)) = &block {
                event::set_transaction(&mut record, id, *total, *order);
            }
            let tombstone = (op == "d" && self.config.tombstones_on_delete).then(|| event::tombstone(&record));
            batch.push(record);
            batch.extend(tombstone);
            s.resume = position;
        }
        Ok(())
    }
}

/// Position tracking while streaming.
struct StreamState {
    file: String,
    /// The last transaction boundary: where a restart with nothing in flight begins.
    committed: Position,
    /// Where a reconnect resumes: after the last queued record, or `committed`.
    resume: Position,
    in_txn: bool,
    /// Start of the current transaction.
    txn_start: u64,
    /// Events of the current transaction seen so far (its first event counts as 0).
    events_in_txn: u64,
    /// On (re)start inside a transaction: events and rows already delivered.
    skip_events: u64,
    skip_rows: u64,
    gtid: Option<String>,
    pending_gtid: Option<String>,
    /// MariaDB GTID state per domain, as of the last commit.
    gtid_state: Vec<(u32, String)>,
    ts_sec: i64,
    server_id: u32,
    thread: Option<i64>,
    /// Whether events carry a CRC32 (`binlog_checksum`).
    checksum: bool,
    /// `provide.transaction.metadata`: the current transaction's metadata once its BEGIN event
    /// was emitted.
    txn_meta: Option<TxnMeta>,
}

impl StreamState {
    fn new(position: Position) -> StreamState {
        let gtid_state = position
            .gtids
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|g| {
                let g = g.trim();
                let domain = g.split('-').next()?.parse().ok()?;
                Some((domain, g.to_string()))
            })
            .collect();
        StreamState {
            file: position.file.clone(),
            skip_events: position.event,
            skip_rows: position.row,
            committed: Position { event: 0, row: 0, ..position.clone() },
            resume: position.clone(),
            in_txn: false,
            txn_start: position.pos,
            events_in_txn: 0,
            gtid: None,
            pending_gtid: None,
            gtid_state,
            ts_sec: position.ts_sec,
            server_id: position.server_id,
            thread: None,
            checksum: false,
            // Restarting inside a transaction whose BEGIN was emitted: go on counting.
            txn_meta: if position.event > 0 || position.row > 0 { position.txn.clone() } else { None },
        }
    }

    fn gtids(&self) -> Option<String> {
        (!self.gtid_state.is_empty())
            .then(|| self.gtid_state.iter().map(|(_, g)| g.as_str()).collect::<Vec<_>>().join(","))
    }

    /// A transaction starts at `start` (its GTID or BEGIN event).
    fn begin_txn(&mut self, start: u64, gtid: Option<String>, transactional: bool) {
        if !self.in_txn {
            self.txn_start = start;
            self.events_in_txn = 0;
        }
        self.pending_gtid = gtid.clone();
        self.gtid = gtid;
        self.in_txn = transactional || self.in_txn;
    }

    fn count_event(&mut self) {
        self.events_in_txn += 1;
    }

    /// The restart point of the current transaction.
    fn resume_base(&self) -> Position {
        Position {
            file: self.file.clone(),
            pos: if self.in_txn { self.txn_start } else { self.committed.pos },
            event: 0,
            row: 0,
            gtids: self.committed.gtids.clone(),
            ts_sec: self.ts_sec,
            server_id: self.server_id,
            txn: None,
        }
    }

    /// The MariaDB GTID state once the current transaction is done.
    fn gtids_after(&self) -> Option<String> {
        let mut state = self.gtid_state.clone();
        if let Some(g) = &self.gtid {
            apply_gtid(&mut state, g);
        }
        (!state.is_empty()).then(|| state.iter().map(|(_, g)| g.as_str()).collect::<Vec<_>>().join(","))
    }

    /// The transaction ended; the next one starts at `end`.
    fn commit(&mut self, end: u64) {
        if let Some(g) = self.gtid.take() {
            apply_gtid(&mut self.gtid_state, &g);
        }
        self.pending_gtid = None;
        self.in_txn = false;
        self.events_in_txn = 0;
        self.skip_events = 0;
        self.skip_rows = 0;
        self.committed = Position {
            file: self.file.clone(),
            pos: end,
            event: 0,
            row: 0,
            gtids: self.gtids(),
            ts_sec: self.ts_sec,
            server_id: self.server_id,
            txn: None,
        };
        self.txn_meta = None;
        self.resume = self.committed.clone();
    }
}

/// A snapshot row held back until the next one shows whether it was the last.
/// The session a snapshot reads in: repeatable read, UTC, utf8mb4, backslash escapes on.
async fn prepare_snapshot_session(conn: &mut Conn) -> Result<(), ConnectError> {
    let db = |e| catalog::db_error("snapshot", e);
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(db)?;
    conn.query_drop("SET SESSION time_zone = '+00:00'").await.map_err(db)?;
    conn.query_drop("SET NAMES utf8mb4").await.map_err(db)?;
    conn.query_drop("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')").await.map_err(db)?;
    Ok(())
}

/// Records a MariaDB GTID (`domain-server-seq`) as its domain's latest; MySQL GTIDs are ignored.
fn apply_gtid(state: &mut Vec<(u32, String)>, g: &str) {
    if let Some(domain) = g.split('-').next().and_then(|d| d.parse::<u32>().ok()).filter(|_| !g.contains(':')) {
        match state.iter_mut().find(|(d, _)| *d == domain) {
            Some(slot) => slot.1 = g.to_string(),
            None => state.push((domain, g.to_string())),
        }
    }
}

/// A MariaDB GTID state (`domain-server-seq,...`) with the domains only `full` has added.
fn merge_gtid_state(stored: Option<&str>, full: &str) -> String {
    let domain = |g: &str| g.trim().split('-').next().map(str::to_string);
    let mut out: Vec<String> =
        stored.unwrap_or("").split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect();
    for g in full.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if !out.iter().any(|o| domain(o) == domain(g)) {
            out.push(g.to_string());
        }
    }
    out.join(",")
}

pub(super) fn text_of(v: &mysql_async::Value) -> Option<String> {
    match v {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// A primary-key value as the snapshot keeps it (offsets, the next chunk's `WHERE`): text, or
/// for binary columns the bytes in hex (text would not survive bytes that are not UTF-8).
pub(super) fn key_text(column: &super::schema::Column, v: &mysql_async::Value) -> Option<String> {
    match (v, &column.kind) {
        (mysql_async::Value::Bytes(b), super::schema::ColumnKind::Binary { .. }) => {
            Some(b.iter().map(|x| format!("{x:02x}")).collect())
        }
        _ => text_of(v),
    }
}

pub(super) fn snapshot_values(table: &Table, config: &MySqlConfig, row: &Row) -> Result<Vec<Value>, ConnectError> {
    let mut values: Vec<Value> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let raw = match row.as_ref(i) {
                None | Some(mysql_async::Value::NULL) => None,
                Some(mysql_async::Value::Bytes(b)) => Some(b.as_slice()),
                Some(other) => {
                    return Err(ConnectError::fatal(format!(
                        "snapshot of {}: column {} came back as {other:?}, not text",
                        table.id(),
                        col.name
                    )))
                }
            };
            from_text(col, config, raw).map_err(|e| ConnectError::fatal(format!("snapshot of {}: {e}", table.id())))
        })
        .collect::<Result<_, _>>()?;
    table.shape(&mut values);
    Ok(values)
}

/// `SELECT` of the next chunk after `after` (primary-key order), or the whole table without a key.
pub(super) fn chunk_query(table: &Table, after: Option<&Vec<Option<String>>>, limit: usize) -> String {
    let cols = table.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
    let from = format!("{}.{}", quote_ident(&table.db), quote_ident(&table.name));
    if table.primary_key.is_empty() {
        return format!("SELECT {cols} FROM {from}");
    }
    let pk: Vec<String> = table.primary_key.iter().map(|&i| quote_ident(&table.columns[i].name)).collect();
    let mut sql = format!("SELECT {cols} FROM {from}");
    if let Some(key) = after {
        // (a > x) OR (a = x AND b > y) OR ...: a range the primary key index serves.
        let lit = |j: usize, v: &Option<String>| match v.as_deref() {
            None => "NULL".to_string(),
            Some(hex)
                if matches!(table.columns[table.primary_key[j]].kind, super::schema::ColumnKind::Binary { .. }) =>
            {
                format!("X{}", quote_literal(hex))
            }
            Some(text) => quote_literal(text),
        };
        let mut ors = Vec::new();
        for i in 0..pk.len().min(key.len()) {
            let mut ands: Vec<String> = (0..i).map(|j| format!("{} = {}", pk[j], lit(j, &key[j]))).collect();
            ands.push(format!("{} > {}", pk[i], lit(i, &key[i])));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        sql.push_str(&format!(" WHERE {}", ors.join(" OR ")));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", pk.join(", ")));
    sql
}

/// The `(db, table)` a DDL statement names first, best effort (`table` empty for
/// database-level statements).
fn ddl_target(sql: &str, default_db: &str) -> Option<(String, String)> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let t = upper.iter().position(|w| w == "TABLE" || w == "DATABASE" || w == "SCHEMA")?;
    let mut i = t + 1;
    while i < upper.len() && matches!(upper[i].as_str(), "IF" | "NOT" | "EXISTS") {
        i += 1;
    }
    let name = words.get(i)?.trim_end_matches([';', '(', ',']);
    let unquote = |s: &str| s.trim_matches('`').to_string();
    if upper[t] != "TABLE" {
        return Some((unquote(name), String::new()));
    }
    match name.split_once('.') {
        Some((d, n)) => Some((unquote(d), unquote(n))),
        None => Some((default_db.to_string(), unquote(name))),
    }
}

/// The statement after any leading comments (`/* ... */`, `# ...`, `-- ...`).
fn strip_leading_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("/*") {
            match after.find("*/") {
                Some(end) => rest = after[end + 2..].trim_start(),
                None => return "",
            }
        } else if rest.starts_with('#') || rest.starts_with("-- ") {
            match rest.find('\n') {
                Some(end) => rest = rest[end + 1..].trim_start(),
                None => return "",
            }
        } else {
            return rest;
        }
    }
}

/// What a DDL statement names, for the schema history.
#[derive(Debug, PartialEq)]
enum DdlNames {
    /// Tables, as `(db, table)`.
    Tables(Vec<(String, String)>),
    /// A whole database (`CREATE/DROP DATABASE`).
    Database(String),
}

/// Every table a DDL statement names: `DROP TABLE a, b`, both sides of `RENAME TABLE a TO b, c TO
/// d` and of `ALTER TABLE a RENAME TO b`, the table of `CREATE/DROP INDEX ... ON t`.
fn ddl_tables(sql: &str, default_db: &str) -> DdlNames {
    let spaced = sql.replace(',', " , ").replace('(', " ( ").replace(';', " ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let name = |w: &str| -> (String, String) {
        let unquote = |s: &str| s.trim_matches('`').to_string();
        match w.split_once("`.`").or_else(|| w.split_once('.')) {
            Some((d, t)) => (unquote(d), unquote(t)),
            None => (default_db.to_string(), unquote(w)),
        }
    };
    let keyword = |k: &str| upper.iter().position(|w| w == k);
    if let Some(i) = keyword("DATABASE").or_else(|| keyword("SCHEMA")) {
        if i <= 2 {
            let rest = upper[i + 1..].iter().position(|w| !matches!(w.as_str(), "IF" | "NOT" | "EXISTS"));
            let db = rest.and_then(|r| words.get(i + 1 + r)).map(|w| w.trim_matches('`').to_string());
            return DdlNames::Database(db.unwrap_or_else(|| default_db.to_string()));
        }
    }
    let Some(t) = keyword("TABLE") else {
        // CREATE [UNIQUE] INDEX i ON t / DROP INDEX i ON t.
        return match keyword("ON") {
            Some(on) if keyword("INDEX").is_some() => {
                DdlNames::Tables(words.get(on + 1).map(|w| vec![name(w)]).unwrap_or_default())
            }
            _ => DdlNames::Tables(Vec::new()),
        };
    };
    let mut i = t + 1;
    while i < upper.len() && matches!(upper[i].as_str(), "IF" | "NOT" | "EXISTS") {
        i += 1;
    }
    let mut names = Vec::new();
    match upper.first().map(String::as_str) {
        Some("DROP") | Some("RENAME") => {
            // a [TO b] [, c [TO d]]...
            let mut expect_name = true;
            for (w, u) in words[i.min(words.len())..].iter().zip(&upper[i.min(upper.len())..]) {
                match u.as_str() {
                    "," | "TO" => expect_name = true,
                    _ if expect_name => {
                        names.push(name(w));
                        expect_name = false;
                    }
                    _ => break,
                }
            }
        }
        _ => {
            if let Some(w) = words.get(i) {
                names.push(name(w));
            }
            // ALTER TABLE a ... RENAME [TO|AS] b
            if let Some(r) = upper.iter().skip(i + 1).position(|w| w == "RENAME") {
                let mut j = i + 2 + r;
                if matches!(upper.get(j).map(String::as_str), Some("TO") | Some("AS")) {
                    j += 1;
                }
                if let Some(w) = words.get(j).filter(|_| !matches!(upper[j].as_str(), "COLUMN" | "INDEX" | "KEY")) {
                    names.push(name(w));
                }
            }
        }
    }
    DdlNames::Tables(names)
}

fn event_name(data: &EventData<'_>) -> &'static str {
    match data {
        EventData::LoadEvent(_) | EventData::NewLoadEvent(_) => "LOAD",
        EventData::BeginLoadQueryEvent(_) | EventData::ExecuteLoadQueryEvent(_) => "LOAD DATA",
        EventData::IncidentEvent(_) => "INCIDENT (the source lost events)",
        EventData::ViewChangeEvent(_) => "VIEW_CHANGE",
        EventData::XaPrepareLogEvent(_) => "XA_PREPARE",
        EventData::TransactionContextEvent(_) => "TRANSACTION_CONTEXT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_offset_counts_its_own_gtid_as_done() {
        let mut s = StreamState::new(Position { gtids: Some("0-1-5".into()), ..Position::default() });
        s.gtid = Some("0-1-6".into());
        assert_eq!(s.gtids_after().as_deref(), Some("0-1-6"));
        s.gtid = Some("9-1-2".into());
        assert_eq!(s.gtids_after().as_deref(), Some("0-1-5,9-1-2"));
        s.gtid = Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:23".into());
        assert_eq!(s.gtids_after().as_deref(), Some("0-1-5"), "MySQL GTIDs are not part of the MariaDB state");
    }

    #[test]
    fn gtid_states_gain_the_missing_domains() {
        assert_eq!(merge_gtid_state(Some("0-1-50"), "0-1-40,9-2-7"), "0-1-50,9-2-7");
        assert_eq!(merge_gtid_state(None, "0-1-40"), "0-1-40");
        assert_eq!(merge_gtid_state(Some("0-1-50,3-1-2"), "3-1-1"), "0-1-50,3-1-2");
    }

    #[test]
    fn ddl_targets() {
        assert_eq!(ddl_target("ALTER TABLE orders ADD COLUMN x INT", "shop"), Some(("shop".into(), "orders".into())));
        assert_eq!(ddl_target("CREATE TABLE IF NOT EXISTS `a`.`b` (id int)", "shop"), Some(("a".into(), "b".into())));
        assert_eq!(ddl_target("DROP DATABASE x", ""), Some(("x".into(), String::new())));
    }

    #[test]
    fn leading_comments_are_not_the_statement() {
        assert_eq!(strip_leading_comments("  /* tool */ ALTER TABLE t ADD c INT"), "ALTER TABLE t ADD c INT");
        assert_eq!(strip_leading_comments("# note\n-- more\nDROP TABLE t"), "DROP TABLE t");
        assert_eq!(strip_leading_comments("/* open"), "");
    }

    #[test]
    fn binary_keys_chunk_by_their_bytes() {
        let config = MySqlConfig::parse(
            &[("database.hostname", "h"), ("database.user", "u"), ("topic.prefix", "p"), ("database.server.id", "7")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .expect("config");
        let col = |name: &str, kind| super::super::schema::Column {
            name: name.into(),
            kind,
            nullable: false,
            captured: true,
        };
        let table = Table::new(
            "d",
            "t",
            vec![
                col("k", super::super::schema::ColumnKind::Binary { pad_to: Some(2) }),
                col("n", super::super::schema::ColumnKind::Text { latin1: false }),
            ],
            vec![0, 1],
            &config,
        );
        let k = key_text(&table.columns[0], &mysql_async::Value::Bytes(vec![0xff, 0x00])).expect("key");
        assert_eq!(k, "ff00");
        let sql = chunk_query(&table, Some(&vec![Some(k), Some("it's".into())]), 10);
        assert!(sql.contains("`k` > X'ff00'") && sql.contains("`k` = X'ff00' AND `n` > 'it\\'s'"), "{sql}");
    }

    #[test]
    fn ddl_tables_names_every_table() {
        let t = |pairs: &[(&str, &str)]| {
            DdlNames::Tables(pairs.iter().map(|(d, t)| (d.to_string(), t.to_string())).collect())
        };
        assert_eq!(ddl_tables("ALTER TABLE orders ADD COLUMN x INT", "shop"), t(&[("shop", "orders")]));
        assert_eq!(ddl_tables("CREATE TABLE IF NOT EXISTS `a`.`b`(id int)", "shop"), t(&[("a", "b")]));
        assert_eq!(ddl_tables("DROP TABLE IF EXISTS a, x.b;", "s"), t(&[("s", "a"), ("x", "b")]));
        assert_eq!(
            ddl_tables("RENAME TABLE a TO b, c TO other.d", "s"),
            t(&[("s", "a"), ("s", "b"), ("s", "c"), ("other", "d")])
        );
        assert_eq!(ddl_tables("ALTER TABLE a RENAME TO b", "s"), t(&[("s", "a"), ("s", "b")]));
        assert_eq!(ddl_tables("ALTER TABLE a RENAME COLUMN x TO y", "s"), t(&[("s", "a")]));
        assert_eq!(ddl_tables("CREATE UNIQUE INDEX i ON orders (c)", "s"), t(&[("s", "orders")]));
        assert_eq!(ddl_tables("DROP DATABASE IF EXISTS `shop`", "s"), DdlNames::Database("shop".into()));
    }
}
