//! HTTP tracking collector (`http-tracking`): browser and app events in over HTTP, Kafka records
//! out. Speaks Segment's tracking API (`/v1/track|page|screen|identify|group|alias|batch`), a plain
//! JSON/NDJSON endpoint (`/v1/events`) and a 1×1 pixel (`/v1/pixel.gif`).
//!
//! Each task runs its own HTTP server on `http.listener` of the worker it is assigned to; several
//! tasks on one worker share the port through `SO_REUSEPORT` (the kernel spreads connections).
//!
//! Delivery: a request is answered 200 only after Kafka acknowledged every one of its events
//! (`acks=all`, idempotent producer, through the runtime's source path). Any other answer means the
//! client must resend; events of a request answered 503 after a timeout may still be written, so a
//! resend can duplicate them: `messageId` (kept, or generated when absent) lets consumers drop
//! duplicates. No source offsets are kept: an HTTP request cannot be replayed from our side.
//!
//! Memory: events accepted but not yet acknowledged are bounded by `http.max.inflight.bytes`,
//! counted when a request arrives (its declared size) and corrected to the in-memory size of its
//! records once parsed; the bytes are released when Kafka acknowledges. Past the bound a request
//! waits `http.backpressure.wait.ms`, then gets 429 with `Retry-After`. When Kafka has acknowledged
//! nothing for `http.unavailable.after.ms` while events wait, new requests get 503 at once.

mod config;
mod event;
mod metrics;
mod obj;
mod server;
mod time;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, PluginInfo, RecordMetadata, Schema,
    SourceRecord, SourceTask, SourceTaskContext, TaskSplit,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

pub use config::{KeyField, TrackingConfig, ValueSchema};
pub use event::{segment_schema, Endpoint, Event, Parser, Rejection, RequestMeta};
pub use server::PIXEL_GIF;

use server::{Ack, Shared, Submission};

/// How long `poll` waits for new events while records are in flight (bounds the extra latency of
/// an answer, and the spin while Kafka is slow).
const IN_FLIGHT_POLL_WAIT: Duration = Duration::from_millis(2);
/// The same once the oldest record in flight has waited over 100 ms.
const STALLED_POLL_WAIT: Duration = Duration::from_millis(50);

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "io.sluice.connect.tracking.HttpTrackingSourceConnector",
    aliases: &["http-tracking", "HttpTrackingSourceConnector", "HttpTrackingSource"],
    connector_type: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    // `tasks.max` identical tasks, each serving `http.listener`.
    create: || {
        ConnectorInstance::Source(Box::new(ConfigConnector::<dyn SourceTask>::new(
            TrackingConfig::def,
            |c| TrackingConfig::parse(c).map(|_| ()),
            TaskSplit::UpToMax,
            || Box::new(HttpTrackingTask::default()),
        )))
    },
};

/// One record handed to the producer and not yet acknowledged.
struct Pending {
    ack: Arc<Ack>,
    index: usize,
    /// `Shared::waiting_since` encoding of when it was handed over.
    handed: u64,
}

/// The task: an HTTP server feeding `poll`, answering each request when its records are acked.
#[derive(Default)]
pub struct HttpTrackingTask {
    shared: Option<Arc<Shared>>,
    rx: Option<mpsc::UnboundedReceiver<Submission>>,
    pending: VecDeque<Pending>,
    server: Option<JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    max_batch: usize,
}

impl HttpTrackingTask {
    fn take(&mut self, submission: Submission, out: &mut Vec<SourceRecord>, handed: u64) {
        for index in 0..submission.records.len() {
            self.pending.push_back(Pending { ack: submission.ack.clone(), index, handed });
        }
        out.extend(submission.records);
    }
}

#[async_trait]
impl SourceTask for HttpTrackingTask {
    async fn start(&mut self, config: &ConfigMap, context: SourceTaskContext) -> Result<(), ConnectError> {
        let config = Arc::new(TrackingConfig::parse(config)?);
        let listener = server::bind(config.listener).map_err(|e| {
            ConnectError::fatal_from(
                format!("task {}-{} cannot listen on {}", context.connector, context.task, config.listener),
                e,
            )
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            parser: Parser::new(config.clone()),
            budget: Arc::new(Semaphore::new(config.max_inflight_bytes.min(Semaphore::MAX_PERMITS))),
            tx,
            waiting_since: 0.into(),
            epoch: Instant::now(),
            metrics: metrics::Metrics::new(&context.connector, context.task),
            key_schema: Arc::new(Schema::string().optional()),
            config: config.clone(),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        self.server = Some(tokio::spawn(server::serve(shared.clone(), listener, async move {
            let _ = stop_rx.await;
        })));
        tracing::info!(connector = %context.connector, task = context.task, listener = %config.listener, "tracking collector listening");
        self.shutdown = Some(stop_tx);
        self.max_batch = config.max_batch_size;
        self.shared = Some(shared);
        self.rx = Some(rx);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let (Some(rx), Some(shared)) = (self.rx.as_mut(), self.shared.clone()) else {
            return Err(ConnectError::fatal("tracking task polled before start"));
        };
        // The runtime hands acknowledgements to `commit_record` only between polls, and every
        // request waits for its acknowledgements: while records are in flight, come back quickly.
        let now = u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let wait = match self.pending.front() {
            None => Duration::from_secs(1),
            // Kafka is slow or away: no need to spin.
            Some(p) if now.saturating_sub(p.handed) > 100 => STALLED_POLL_WAIT,
            Some(_) => IN_FLIGHT_POLL_WAIT,
        };
        let first = match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(ConnectError::fatal("the tracking collector's HTTP server stopped")),
            Err(_) => return Ok(Vec::new()),
        };
        let handed = u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let mut out = Vec::with_capacity(first.records.len());
        let was_idle = self.pending.is_empty();
        self.take(first, &mut out, handed);
        while out.len() < self.max_batch {
            match self.rx.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(s)) => self.take(s, &mut out, handed),
                _ => break,
            }
        }
        if was_idle {
            shared.waiting_since.store(handed, Ordering::Relaxed);
        }
        Ok(out)
    }

    fn commit_record(&mut self, _record: &SourceRecord, metadata: Option<&RecordMetadata>) {
        if let Some(p) = self.pending.pop_front() {
            p.ack.record_done(p.index, metadata.is_some());
        }
        if let Some(shared) = &self.shared {
            shared.waiting_since.store(self.pending.front().map_or(0, |p| p.handed), Ordering::Relaxed);
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // Whatever was not acknowledged is answered 503 as its handles drop (the runtime has
        // already waited for the acknowledgements it could get).
        self.pending.clear();
        self.rx = None;
        self.shared = None;
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            // Let answers in progress go out; do not wait on idle keep-alive clients.
            if tokio::time::timeout(Duration::from_secs(3), &mut server).await.is_err() {
                server.abort();
            }
        }
        Ok(())
    }
}

impl Drop for HttpTrackingTask {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
