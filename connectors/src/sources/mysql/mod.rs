//! MySQL / MariaDB binlog CDC, Debezium-compatible (`io.debezium.connector.mysql.MySqlConnector`).
//!
//! One task. On first start it snapshots the captured tables at a consistent binlog position
//! (MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` reports the position without a lock;
//! MySQL, or several readers with `snapshot.max.threads`: a brief global read lock), chunked by
//! primary key so an interrupted snapshot resumes each table after the last row Kafka acknowledged;
//! then it streams the binlog from that position as a replica.
//!
//! Output is Debezium's: topic `<topic.prefix>.<db>.<table>`, key = primary-key struct, value
//! `{before, after, source, transaction, op, ts_ms, ts_us, ts_ns}`, a tombstone after each delete,
//! offsets `{"server": prefix}` → `{file, pos, event, row, gtids, ts_sec, server_id}` with Debezium's
//! meaning (restart at the transaction start, skip `event` events and `row` rows), so a Debezium
//! offset can be taken over.
//!
//! Delivery: at-least-once. The runtime stores an offset only after Kafka acknowledged its record
//! and every one before it; a restart resumes exactly after the last acknowledged row (no loss, no
//! repeat of acknowledged rows; rows queued but unacknowledged at a crash are sent again).
//! Exactly-once under `exactly.once.source.support=enabled`: rows and their offsets commit in one
//! Kafka transaction, and a restart reproduces the rows after the committed offset.
//!
//! Schemas: with `binlog_row_metadata=FULL` every table-map event carries the table's columns, so
//! each row is decoded with the schema in force at its own position, across any DDL and any restart,
//! with no DDL parser. Without it, schemas come from the schema history topic (`history`: the
//! definitions recorded at or before the stored position, and each replayed DDL's own record) or,
//! without one, from `information_schema`, re-read after DDL; a row whose column count does not
//! match fails the task with a clear error rather than being decoded wrongly.

mod catalog;
mod config;
mod event;
mod history;
mod reader;
mod schema;
mod snapshot;
mod tablemap;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, PluginInfo, SourceRecord, SourceTask,
    SourceTaskContext, TaskSplit,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

pub use config::MySqlConfig;

use config::SnapshotMode;
use history::History;
use reader::{Batch, Queue, Reader, Start};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "io.debezium.connector.mysql.MySqlConnector",
    aliases: &[
        "mysql",
        "MySqlConnector",
        "io.debezium.connector.mariadb.MariaDbConnector",
        "MariaDbConnector",
        "mariadb",
    ],
    connector_type: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    // One task, as Debezium.
    create: || {
        ConnectorInstance::Source(Box::new(
            ConfigConnector::<dyn SourceTask>::new(
                MySqlConfig::def,
                |c| MySqlConfig::parse(c).map(|_| ()),
                TaskSplit::One,
                || Box::new(MySqlSourceTask::default()),
            )
            .exactly_once(),
        ))
    },
};

/// Offsets exist but the schema history topic is missing or empty. With FULL table-map metadata
/// rows never depend on it, so it is rebuilt from the current definitions; otherwise only
/// `snapshot.mode=recovery` may do that, since rows before a later DDL would be decoded with
/// definitions they were not written with.
fn check_lost_history(config: &MySqlConfig, full_metadata: bool) -> Result<(), ConnectError> {
    if full_metadata || config.snapshot_mode == SnapshotMode::Recovery {
        tracing::warn!(topic = %config.history_topic, full_metadata, "schema history topic is missing or empty; it will be rebuilt from the current table definitions");
        return Ok(());
    }
    Err(ConnectError::fatal(format!(
        "the schema history topic '{}' is missing or empty, but offsets exist for topic.prefix '{}', and the server's \
         table maps carry no column metadata (binlog_row_metadata is not FULL), so rows cannot be decoded with the \
         definitions in force at the stored position. Set snapshot.mode=recovery to rebuild the history from the \
         current table definitions (correct when no DDL ran on captured tables since the stored position), or \
         delete the connector's offsets to take a new snapshot; SET GLOBAL binlog_row_metadata=FULL avoids this",
        config.history_topic, config.topic_prefix
    )))
}

/// The task: a background reader fills a bounded queue; `poll` drains it.
#[derive(Default)]
pub struct MySqlSourceTask {
    rx: Option<mpsc::Receiver<Result<Batch, ConnectError>>>,
    bytes: Option<Arc<Semaphore>>,
    reader: Option<JoinHandle<()>>,
}

#[async_trait]
impl SourceTask for MySqlSourceTask {
    async fn start(&mut self, config: &ConfigMap, context: SourceTaskContext) -> Result<(), ConnectError> {
        let config = Arc::new(MySqlConfig::parse(config)?);
        // Check the server now, so a bad setup fails the task with its reason at once.
        let mut conn = catalog::connect(&config).await?;
        let server = catalog::check_server(&mut conn, &config).await?;
        let full_metadata =
            catalog::variable(&mut conn, "binlog_row_metadata").await?.is_some_and(|v| v.eq_ignore_ascii_case("FULL"));
        drop(conn);
        let stored = context.offsets.offset(&event::partition(&config.topic_prefix));
        let history = match (&context.state, config.history_topic.is_empty()) {
            (_, true) => None,
            (None, false) => {
                tracing::warn!(topic = %config.history_topic, "this runtime has no Kafka for the schema history topic; not recording it");
                None
            }
            (Some(state), false) => {
                let history = History::load(&config.history_topic, &config.topic_prefix, state.clone()).await?;
                if history.is_empty() && stored.is_some() {
                    check_lost_history(&config, full_metadata)?;
                }
                Some(history)
            }
        };
        let start = match stored {
            None if config.snapshot_mode == SnapshotMode::Never => Start::StreamFromBeginning,
            None => Start::Snapshot { resume: None },
            Some(offset) => {
                let (position, snapshot) = event::parse_offset(&offset).map_err(ConnectError::fatal)?;
                match snapshot {
                    Some(progress) if config.snapshot_mode != SnapshotMode::Never => {
                        Start::Snapshot { resume: Some((position, progress)) }
                    }
                    _ => Start::Stream(position),
                }
            }
        };
        tracing::info!(server = %server.version, server_id = config.server_id, start = ?start, "mysql source task starting");
        let (queue, rx, bytes) = Queue::new(config.max_queue_size, config.max_batch_size, config.max_queue_bytes);
        self.reader = Some(tokio::spawn(Reader::new(config, queue, start, history).run()));
        self.rx = Some(rx);
        self.bytes = Some(bytes);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(ConnectError::fatal("mysql source task polled before start"));
        };
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Err(_) => Ok(Vec::new()),
            // The reader finished (snapshot.mode=initial_only): nothing more to read.
            Ok(None) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(Vec::new())
            }
            Ok(Some(Err(e))) => Err(e),
            Ok(Some(Ok((records, permits)))) => {
                if let Some(bytes) = &self.bytes {
                    bytes.add_permits(permits as usize);
                }
                Ok(records)
            }
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        self.rx = None;
        Ok(())
    }
}
