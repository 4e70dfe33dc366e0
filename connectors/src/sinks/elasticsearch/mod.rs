//! Elasticsearch / OpenSearch sink, as Confluent's `ElasticsearchSinkConnector`: each record
//! becomes an index (or upsert, or delete) action in `_bulk` requests.
//!
//! Delivery: **at-least-once, applied exactly once in effect.** `put` returns only when every
//! action of the batch is acknowledged item by item, so the worker commits only offsets whose
//! documents are written. A replay after a crash is harmless: with record keys as ids, every
//! index and delete carries `version = Kafka offset` (`version_type=external`), so the server
//! refuses an older write (a 409 this sink ignores) and never overwrites newer data. With
//! `key.ignore=true` the id is `topic+partition+offset`, so a replay rewrites the same document.
//! (`write.method=UPSERT` merges unversioned: a replay re-applies the same merges in order.)
//!
//! Order: actions are spread over `max.in.flight.requests` concurrent request streams by document
//! id, so the actions on one document keep their Kafka order. In INSERT mode only the last action
//! per document of a batch is sent: the result is the same, with fewer writes.
//!
//! Failures: items answered 429 or 5xx (and unreachable nodes) are retried with full-jitter
//! back-off up to `max.retries`, then the batch goes back to the worker, which retries it with its
//! own slower back-off: the task survives a cluster restart. Mapping errors follow
//! `behavior.on.malformed.documents`; other refusals (auth, a read-only index) fail the task with
//! the server's reason.

mod bulk;
mod client;
mod config;
mod doc;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hyper::Method;
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, PluginInfo, Schema, SinkRecord,
    SinkTask, SinkTaskContext, TaskSplit,
};

use bulk::{Action, Op, Outcome};
use client::{Answer, EsClient};
pub use config::{EsSinkConfig, Malformed, NullValues, WriteMethod};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "io.confluent.connect.elasticsearch.ElasticsearchSinkConnector",
    aliases: &["elasticsearch", "ElasticsearchSinkConnector", "opensearch"],
    connector_type: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    create: || {
        ConnectorInstance::Sink(Box::new(ConfigConnector::<dyn SinkTask>::new(
            EsSinkConfig::def,
            |c| EsSinkConfig::parse(c).map(|_| ()),
            TaskSplit::UpToMax,
            || Box::new(ElasticsearchSinkTask::default()),
        )))
    },
};

/// Writes batches as `_bulk` requests.
#[derive(Default)]
pub struct ElasticsearchSinkTask {
    config: Option<Arc<EsSinkConfig>>,
    client: Option<Arc<EsClient>>,
    /// Index per (routed) topic.
    indices: HashMap<String, Arc<str>>,
    /// Indices known to exist.
    created: HashSet<Arc<str>>,
    name: String,
}

/// Why a record has no action.
enum Invalid {
    /// Skippable with `drop.invalid.message`.
    Record(String),
    /// A tombstone under `behavior.on.null.values=FAIL`.
    Null,
}

impl ElasticsearchSinkTask {
    fn parts(&self) -> Result<(Arc<EsSinkConfig>, Arc<EsClient>), ConnectError> {
        match (&self.config, &self.client) {
            (Some(c), Some(h)) => Ok((c.clone(), h.clone())),
            _ => Err(ConnectError::fatal("elasticsearch sink used before start")),
        }
    }

    fn index_of(&mut self, config: &EsSinkConfig, topic: &str) -> Arc<str> {
        if let Some(i) = self.indices.get(topic) {
            return i.clone();
        }
        let index: Arc<str> = config.index_for(topic).into();
        self.indices.insert(topic.to_string(), index.clone());
        index
    }

    /// The action for one record; `Ok(None)` when it is skipped by configuration.
    fn op_for(&self, config: &EsSinkConfig, index: Arc<str>, r: &SinkRecord) -> Result<Option<Op>, Invalid> {
        let origin = || format!("{}-{}@{}", r.topic_partition().topic, r.kafka_partition, r.kafka_offset);
        let ignore_key = config.ignore_key(&r.topic);
        let id = if ignore_key {
            format!("{}+{}+{}", r.topic, r.kafka_partition, r.kafka_offset)
        } else {
            doc::doc_id(&r.key).map_err(Invalid::Record)?
        };
        let versioned = config.write_method == WriteMethod::Insert && !ignore_key;
        let version = versioned.then_some(r.kafka_offset);
        if r.value.is_null() {
            return match config.null_values {
                NullValues::Ignore => Ok(None),
                NullValues::Fail => Err(Invalid::Null),
                // Nothing to delete: every record of an ignored key is its own document.
                NullValues::Delete if ignore_key => Ok(None),
                NullValues::Delete => {
                    Ok(Some(Op { action: Action::Delete, index, id, version, doc: String::new(), origin: origin() }))
                }
            };
        }
        let mut body = String::with_capacity(r.value.approx_size() + 16);
        doc::write_doc(&mut body, r.value_schema.as_deref(), &r.value, config.compact_map_entries);
        let action = match config.write_method {
            WriteMethod::Insert => Action::Index,
            WriteMethod::Upsert => Action::Update,
        };
        Ok(Some(Op { action, index, id, version, doc: body, origin: origin() }))
    }

    /// Creates a missing index, with a mapping from the schema when there is one to use.
    async fn ensure_index(
        &mut self,
        client: &EsClient,
        index: &Arc<str>,
        schema: Option<&Schema>,
    ) -> Result<(), ConnectError> {
        if self.created.contains(index) {
            return Ok(());
        }
        // An existing index (or an alias of one) is used as it is, as Confluent's sink does.
        let path = format!("/{}", encode_path(index));
        match client.send(Method::HEAD, &path, None).await {
            Ok(a) if a.status == 200 => {
                self.created.insert(index.clone());
                return Ok(());
            }
            Ok(a) if a.status == 401 => return Err(auth_error(client, &a)),
            _ => {}
        }
        let mapping = schema.and_then(doc::mapping);
        let body = match &mapping {
            Some(m) => serde_json::json!({ "mappings": m }).to_string(),
            None => "{}".to_string(),
        };
        let answer = client
            .send(Method::PUT, &path, Some(("application/json", Bytes::from(body))))
            .await
            .map_err(|e| ConnectError::retriable_from(format!("cannot create index {index}"), e))?;
        match answer.status {
            200 | 201 => {
                tracing::info!(task = %self.name, index = %index, with_mapping = mapping.is_some(), "index created")
            }
            400 if answer.text().contains("resource_already_exists_exception") => {}
            401 => return Err(auth_error(client, &answer)),
            403 => {
                return Err(ConnectError::fatal(format!(
                    "index {index} does not exist and this user may not create it (403): {}; create it, or grant create_index",
                    answer.text()
                )))
            }
            429 | 500.. => {
                return Err(ConnectError::retriable(format!(
                    "cannot create index {index} yet: {} {}",
                    answer.status,
                    answer.text()
                )))
            }
            s => return Err(ConnectError::fatal(format!("cannot create index {index}: {s} {}", answer.text()))),
        }
        self.created.insert(index.clone());
        Ok(())
    }

    async fn write_slice(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let (config, client) = self.parts()?;
        let mut ops = Vec::with_capacity(records.len());
        for r in records {
            let index = self.index_of(&config, &r.topic);
            if !self.created.contains(&index) {
                let schema = if config.ignore_schema(&r.topic) { None } else { r.value_schema.as_deref() };
                self.ensure_index(&client, &index, schema).await?;
            }
            match self.op_for(&config, index, r) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => {}
                Err(Invalid::Null) => {
                    return Err(ConnectError::fatal(format!(
                        "the record at {}-{}@{} has a null value; set behavior.on.null.values to IGNORE or DELETE to accept tombstones",
                        r.topic, r.kafka_partition, r.kafka_offset
                    )))
                }
                Err(Invalid::Record(reason)) if config.drop_invalid_message => {
                    tracing::warn!(task = %self.name, topic = %r.topic, partition = r.kafka_partition, offset = r.kafka_offset, %reason, "record dropped (drop.invalid.message=true)");
                }
                Err(Invalid::Record(reason)) => {
                    return Err(ConnectError::fatal(format!(
                        "the record at {}-{}@{} cannot be written: {reason} (set drop.invalid.message=true to skip such records)",
                        r.topic, r.kafka_partition, r.kafka_offset
                    )))
                }
            }
        }
        // Not when malformed documents are skipped: the dropped action could be the valid one.
        if config.write_method == WriteMethod::Insert && config.malformed == Malformed::Fail {
            keep_last_per_document(&mut ops);
        }
        let lanes = spread(&ops, config.max_in_flight);
        let writes =
            lanes.into_iter().filter(|l| !l.is_empty()).map(|lane| write_lane(&client, &config, &self.name, lane));
        match tokio::time::timeout(config.flush_timeout, futures::future::try_join_all(writes)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(ConnectError::retriable(format!(
                "writing {} actions took longer than flush.timeout.ms ({} ms); the batch is retried",
                ops.len(),
                config.flush_timeout.as_millis()
            ))),
        }
    }
}

/// In INSERT mode each action replaces (or deletes) the whole document under an external version,
/// so of a batch's actions on one document only the one with the highest version (the last, within
/// a partition) can win: the others are not sent.
fn keep_last_per_document(ops: &mut Vec<Op>) {
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let slot = last.entry((&op.index, &op.id)).or_insert(i);
        if ops[*slot].version <= op.version {
            *slot = i;
        }
    }
    if last.len() == ops.len() {
        return;
    }
    let keep: Vec<bool> =
        ops.iter().enumerate().map(|(i, op)| last.get(&(&*op.index, op.id.as_str())) == Some(&i)).collect();
    let mut keep = keep.into_iter();
    ops.retain(|_| keep.next().unwrap_or(true));
}

/// Splits actions into `n` streams by document, keeping each document's actions in order.
fn spread(ops: &[Op], n: usize) -> Vec<Vec<&Op>> {
    let mut lanes: Vec<Vec<&Op>> = (0..n).map(|_| Vec::with_capacity(ops.len() / n + 1)).collect();
    for op in ops {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        op.index.hash(&mut h);
        op.id.hash(&mut h);
        lanes[(h.finish() % n as u64) as usize].push(op);
    }
    lanes
}

/// Sends one stream's actions in requests of at most `batch.size` actions and `bulk.size.bytes`.
async fn write_lane(client: &EsClient, config: &EsSinkConfig, task: &str, lane: Vec<&Op>) -> Result<(), ConnectError> {
    let mut start = 0;
    while start < lane.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < lane.len()
            && end - start < config.batch_size
            && (end == start || bytes + lane[end].size() <= config.bulk_size_bytes)
        {
            bytes += lane[end].size();
            end += 1;
        }
        send_bulk(client, config, task, lane[start..end].to_vec()).await?;
        start = end;
    }
    Ok(())
}

/// One `_bulk` request and the retries of its failed items.
async fn send_bulk(
    client: &EsClient,
    config: &EsSinkConfig,
    task: &str,
    mut pending: Vec<&Op>,
) -> Result<(), ConnectError> {
    let retry_on_conflict = config.max_in_flight.min(5);
    let mut bound = config.retry_backoff;
    let mut attempt = 0;
    loop {
        let mut body = String::with_capacity(pending.iter().map(|op| op.size()).sum());
        for op in &pending {
            op.write(&mut body, retry_on_conflict);
        }
        let mut retry: Vec<&Op> = Vec::new();
        let mut reason = String::new();
        match client.send(Method::POST, "/_bulk", Some(("application/x-ndjson", Bytes::from(body)))).await {
            Err(e) => {
                reason = format!("cannot reach Elasticsearch: {e}");
                retry = pending;
            }
            Ok(answer) if answer.status == 200 => {
                let outcomes = bulk::outcomes(&answer.body, &pending).map_err(ConnectError::retriable)?;
                let mut stale = 0usize;
                for (op, outcome) in pending.iter().zip(outcomes) {
                    match outcome {
                        Outcome::Done => {}
                        Outcome::Stale => stale += 1,
                        Outcome::Retry(r) => {
                            reason = r;
                            retry.push(op);
                        }
                        Outcome::Malformed(r) => match config.malformed {
                            Malformed::Ignore => tracing::debug!(task, origin = %op.origin, id = %op.id, reason = %r, "malformed document skipped"),
                            Malformed::Warn => tracing::warn!(task, origin = %op.origin, id = %op.id, index = %op.index, reason = %r, "malformed document skipped (behavior.on.malformed.documents=WARN)"),
                            Malformed::Fail => {
                                return Err(ConnectError::fatal(format!(
                                    "index {} refused the document {} from {}: {r} (behavior.on.malformed.documents=FAIL; WARN or IGNORE skip such documents)",
                                    op.index, op.id, op.origin
                                )))
                            }
                        },
                        Outcome::Failed(r) => {
                            return Err(ConnectError::fatal(format!(
                                "index {} refused the {:?} of document {} from {}: {r}",
                                op.index, op.action, op.id, op.origin
                            )))
                        }
                    }
                }
                if stale > 0 {
                    tracing::debug!(task, stale, "actions older than the stored documents were ignored (a replay)");
                }
            }
            Ok(answer) if answer.status == 429 || answer.status >= 500 => {
                reason = format!("_bulk answered {}: {}", answer.status, answer.text());
                retry = pending;
            }
            Ok(answer) if answer.status == 401 || answer.status == 403 => return Err(auth_error(client, &answer)),
            Ok(answer) if answer.status == 413 => {
                return Err(ConnectError::fatal(format!(
                    "_bulk request too large for the server (413); lower bulk.size.bytes or batch.size: {}",
                    answer.text()
                )))
            }
            Ok(answer) => {
                return Err(ConnectError::fatal(format!("_bulk answered {}: {}", answer.status, answer.text())));
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        if attempt >= config.max_retries {
            return Err(ConnectError::retriable(format!(
                "{} actions still failing after {} retries (max.retries): {reason}",
                retry.len(),
                config.max_retries
            )));
        }
        attempt += 1;
        let wait = jitter(bound);
        tracing::debug!(task, attempt, actions = retry.len(), wait_ms = wait.as_millis() as u64, %reason, "retrying");
        tokio::time::sleep(wait).await;
        bound = (bound * 2).min(Duration::from_secs(60));
        pending = retry;
    }
}

fn auth_error(client: &EsClient, answer: &Answer) -> ConnectError {
    ConnectError::fatal(format!(
        "{} refused the credentials ({}): check connection.username and connection.password: {}",
        client.first_url(),
        answer.status,
        answer.text()
    ))
}

/// A random wait in `[0, bound]` (full jitter), so retrying tasks do not hit the cluster together.
fn jitter(bound: Duration) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let millis = bound.as_millis() as u64;
    Duration::from_millis(if millis == 0 { 0 } else { x % (millis + 1) })
}

/// Index names are plain, but a template could put anything in them.
fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl SinkTask for ElasticsearchSinkTask {
    async fn start(&mut self, config: &ConfigMap, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = EsSinkConfig::parse(config)?;
        let client = EsClient::new(&config).map_err(ConnectError::fatal)?;
        self.name = format!("{}-{}", context.connector, context.task);
        // A cluster that is down now may be up by the first batch (writes retry); bad credentials
        // will not fix themselves.
        match client.send(Method::GET, "/", None).await {
            Ok(answer) if answer.status == 401 || answer.status == 403 => return Err(auth_error(&client, &answer)),
            Ok(answer) => {
                tracing::info!(task = %self.name, url = client.first_url(), status = answer.status, "connected to the search cluster")
            }
            Err(e) => {
                tracing::warn!(task = %self.name, error = %e, "the search cluster is not reachable yet; writes will retry")
            }
        }
        self.config = Some(Arc::new(config));
        self.client = Some(Arc::new(client));
        Ok(())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let slice = self.config.as_ref().map_or(records.len(), |c| c.max_buffered_records).max(1);
        for chunk in records.chunks(slice) {
            self.write_slice(chunk).await?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.client = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str, version: i64) -> Op {
        Op {
            action: Action::Index,
            index: "i".into(),
            id: id.into(),
            version: Some(version),
            doc: String::new(),
            origin: String::new(),
        }
    }

    #[test]
    fn only_the_last_action_per_document_is_sent_in_insert_mode() {
        let mut ops = vec![op("a", 1), op("b", 2), op("a", 3), op("c", 4), op("b", 5), op("c", 0)];
        keep_last_per_document(&mut ops);
        let left: Vec<(String, Option<i64>)> = ops.iter().map(|o| (o.id.clone(), o.version)).collect();
        // c@0 (from another partition) loses to c@4, as the server would decide.
        assert_eq!(left, vec![("a".into(), Some(3)), ("c".into(), Some(4)), ("b".into(), Some(5))]);
    }

    #[test]
    fn a_document_stays_in_one_stream_in_order() {
        let ops: Vec<Op> = (0..100).map(|i| op(&(i % 7).to_string(), i)).collect();
        let lanes = spread(&ops, 3);
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 100);
        for id in 0..7 {
            let holding: Vec<_> = lanes.iter().filter(|l| l.iter().any(|o| o.id == id.to_string())).collect();
            assert_eq!(holding.len(), 1, "document {id} in one stream");
            let versions: Vec<i64> =
                holding[0].iter().filter(|o| o.id == id.to_string()).filter_map(|o| o.version).collect();
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "in order");
        }
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        assert_eq!(encode_path("logs-2024.01/x"), "logs-2024.01%2Fx");
    }
}
