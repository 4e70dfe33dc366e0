//! Redis sink, as Redis Inc's `com.redis.kafka.connect.RedisSinkConnector`: records become hashes,
//! strings or stream entries; a tombstone deletes the key.
//!
//! Delivery: **exactly-once for the cache**. Each batch is one `MULTI`/`EXEC` holding the
//! records' commands in Kafka order and the next offset of each partition in the batch
//! (`SET com.redis.kafka.connect.sink.offset.<connector>.<topic>.<partition> {"topic","partition","offset"}`,
//! where `offset` is the next one to read). Data and offsets land together or not at all; on
//! partition assignment the task reads those keys back and the worker seeks there, so a batch that
//! reached Redis is never applied again, even if the worker died before committing to Kafka.
//! HASH writes replace the key whole (`DEL` then `HSET`), so an update that nulls a column removes
//! that field.
//!
//! A batch applies only on the offsets it was built on: it is sent as `WATCH` of its offset keys,
//! `MGET` of them, `MULTI`, its commands; the task sends `EXEC` only if the `MGET` shows the offsets
//! it expects (else `DISCARD`), and `WATCH` makes the `EXEC` fail if they change before it runs. So
//! `put` returns with the last batch's `EXEC` still running, and the worker fetches and converts the
//! next records meanwhile: a batch that lands late — after a rebalance gave its partition to a task
//! that read the stored offsets first, or from a worker the group already dropped — is refused
//! whole, never applied over newer data. A refused batch, or batches whose replies a broken
//! connection took, are settled by reading the stored offsets again (the truth of what Redis holds)
//! and asking the worker to read those partitions again from there.
//!
//! A command Redis rejects while running a batch (`WRONGTYPE`: the key holds another type) fails
//! the task, but Redis does not roll back: the rest of that batch, its offsets included, has been
//! applied, so after a restart the rejected record is not written again. (A Lua script doing the check
//! and the writes was measured too: it costs Redis 40 % more CPU per record than `MULTI`.)

mod config;
mod resp;

use std::collections::BTreeMap;

use async_trait::async_trait;
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, Offsets, PluginInfo, SinkRecord,
    SinkTask, SinkTaskContext, TaskSplit, TopicPartition, Value,
};

pub use config::{RedisSinkConfig, RedisType};
use resp::{array, bulk, encode, Conn, Reply};

/// Registry entry.
pub const PLUGIN: PluginInfo = PluginInfo {
    class: "com.redis.kafka.connect.RedisSinkConnector",
    aliases: &["redis", "RedisSinkConnector", "redis-sink"],
    connector_type: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    // `tasks.max` identical tasks; partitions are spread by the consumer group.
    create: || {
        ConnectorInstance::Sink(Box::new(ConfigConnector::<dyn SinkTask>::new(
            RedisSinkConfig::def,
            |c| RedisSinkConfig::parse(c).map(|_| ()),
            TaskSplit::UpToMax,
            || Box::new(RedisSinkTask::default()),
        )))
    },
};

/// Writes batches with their offsets, each one conditional `MULTI`/`EXEC`.
#[derive(Default)]
pub struct RedisSinkTask {
    config: Option<RedisSinkConfig>,
    conn: Option<Conn>,
    /// Batches sent, oldest first, whose replies are not read yet.
    in_flight: std::collections::VecDeque<Batch>,
    /// Per partition, the offset Redis will hold once every batch sent has run (`None`: no offset
    /// stored); the next batch is built on it. Absent: not read yet.
    head: BTreeMap<TopicPartition, Option<i64>>,
    /// Partitions whose batches were refused or lost with the connection, with the first offset
    /// of those batches: settled from the stored offsets before anything else is written.
    lost: BTreeMap<TopicPartition, i64>,
    /// Where the worker must read again from (taken by [`SinkTask::rewind`]); records of these
    /// partitions are not written until it has.
    rewinds: Offsets,
    /// `CLIENT SETNAME` of the connection: `sluice:<connector>:<task>`.
    client_name: String,
    /// The connector's name, part of the offset keys.
    connector: String,
}

/// One batch sent, kept until its replies are read.
struct Batch {
    /// Per partition: the first offset and the next offset the batch stores.
    partitions: BTreeMap<TopicPartition, (i64, i64)>,
    /// The offsets the batch was built on (`None`: none stored), in `partitions` order.
    expected: Vec<Option<i64>>,
    /// Commands queued after `MULTI` (the records' and the offsets' `SET`s).
    queued: usize,
    stage: Stage,
    what: String,
}

/// Where a batch is in its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `WATCH` and `MGET` replies not read yet: neither `EXEC` nor `DISCARD` sent.
    Check,
    /// `EXEC` sent.
    Exec,
    /// `DISCARD` sent: the stored offsets were not those the batch was built on.
    Discard,
}

/// Where this connector's next offset for a partition is kept. Redis Inc's sink uses
/// `com.redis.kafka.connect.sink.offset.<topic>.<partition>`, shared by every connector reading
/// the topic (a second connector would resume where the first one is); the connector's name is
/// added here, and Redis Inc's key is still read when this one is absent, so a connector taking
/// over from Redis Inc's resumes where it stopped.
fn offset_key(connector: &str, tp: &TopicPartition) -> String {
    format!("com.redis.kafka.connect.sink.offset.{connector}.{}.{}", tp.topic, tp.partition)
}

fn legacy_offset_key(tp: &TopicPartition) -> String {
    format!("com.redis.kafka.connect.sink.offset.{}.{}", tp.topic, tp.partition)
}

/// A scalar as text; containers as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => Value::to_json(v).to_string(),
        other => other.to_string(),
    }
}

/// A ZSET score: a number, or text that parses as one.
fn score_of(v: &Value) -> Option<f64> {
    match v {
        Value::Int8(n) => Some(f64::from(*n)),
        Value::Int16(n) => Some(f64::from(*n)),
        Value::Int32(n) => Some(f64::from(*n)),
        Value::Int64(n) => Some(*n as f64),
        Value::Float32(f) => Some(f64::from(*f)),
        Value::Float64(f) => Some(*f),
        Value::Decimal(d) => d.to_string().parse().ok(),
        Value::String(s) | Value::Json(s) => s.trim().parse().ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// The value's fields as (name, text), nulls left out.
fn fields_of(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Struct(s) => s
            .schema
            .fields
            .iter()
            .zip(&s.values)
            .filter(|(_, v)| !v.is_null())
            .map(|(f, v)| (f.name.clone(), text_of(v)))
            .collect(),
        Value::Map(entries) => {
            entries.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (text_of(k), text_of(v))).collect()
        }
        Value::Json(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), String::from)))
                .collect(),
            _ => vec![("value".to_string(), text.clone())],
        },
        other => vec![("value".to_string(), text_of(other))],
    }
}

impl RedisSinkTask {
    fn config(&self) -> Result<&RedisSinkConfig, ConnectError> {
        self.config.as_ref().ok_or_else(|| ConnectError::fatal("redis sink used before start"))
    }

    /// The connection, opened (and logged in) when needed.
    async fn conn(&mut self) -> Result<&mut Conn, ConnectError> {
        if self.conn.is_none() {
            let config = self.config()?;
            let uri = config.uri.clone();
            let tls = match config.tls {
                false => None,
                true => {
                    let identity = config
                        .client_key
                        .as_deref()
                        .map(|key| crate::tls::Identity { key, certs: config.client_cert.as_deref().unwrap_or(key) });
                    let which = if identity.is_some() {
                        "redis.key.file / redis.key.cert / redis.ssl.truststore.location"
                    } else {
                        "redis.ssl.truststore.location"
                    };
                    Some(
                        crate::tls::client_config(config.truststore.as_deref(), identity)
                            .map_err(|e| ConnectError::fatal(format!("{which}: {e}")))?,
                    )
                }
            };
            let mut conn = Conn::connect(&uri.addr, tls.map(|c| (c, uri.host()))).await.map_err(|e| {
                let message = format!("cannot reach redis at {}: {e}", uri.addr);
                match tls_refusal(&e) {
                    Some(hint) => ConnectError::fatal(format!("{message}; {hint}")),
                    None => ConnectError::retriable_from(message, e),
                }
            })?;
            if let Some(password) = &uri.password {
                let reply = match &uri.user {
                    Some(user) => conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()]).await,
                    None => conn.call(&[b"AUTH", password.as_bytes()]).await,
                }
                .map_err(|e| match tls_refusal(&e) {
                    Some(hint) => ConnectError::fatal(format!("redis at {}: {e}; {hint}", uri.addr)),
                    None => ConnectError::retriable_from("redis AUTH", e),
                })?;
                if let Reply::Error(e) = reply {
                    return Err(ConnectError::fatal(format!("redis.uri: authentication to {} failed: {e}", uri.addr)));
                }
            }
            if uri.db != 0 {
                let db = uri.db.to_string();
                if let Reply::Error(e) = conn
                    .call(&[b"SELECT", db.as_bytes()])
                    .await
                    .map_err(|e| ConnectError::retriable_from("redis SELECT", e))?
                {
                    return Err(ConnectError::fatal(format!("redis.uri: cannot select database {db}: {e}")));
                }
            }
            // Under TLS 1.3 a server that refuses the client's certificate says so only now.
            let ping = conn.call(&[b"PING"]).await.map_err(|e| match tls_refusal(&e) {
                Some(hint) => ConnectError::fatal(format!("redis at {}: {e}; {hint}", uri.addr)),
                None => ConnectError::retriable_from("redis PING", e),
            })?;
            match ping {
                Reply::Error(e) if e.starts_with("NOAUTH") => {
                    return Err(ConnectError::fatal(format!("redis.uri: {} needs a password: {e}", uri.addr)))
                }
                Reply::Error(e) => return Err(ConnectError::retriable(format!("redis PING: {e}"))),
                _ => {}
            }
            if !self.client_name.is_empty() {
                // Shows in CLIENT LIST which connection is which task's; a refusal does not matter.
                let _ = conn.call(&[b"CLIENT", b"SETNAME", self.client_name.as_bytes()]).await;
            }
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| ConnectError::fatal("redis connection missing"))
    }

    /// The record key as text (a struct's fields joined by the separator).
    fn member_of(&self, r: &SinkRecord) -> Result<String, ConnectError> {
        let config = self.config()?;
        Ok(match &r.key {
            Value::Null => {
                return Err(ConnectError::fatal(format!(
                    "the record at {}-{} offset {} has no key; redis.type {:?} needs one",
                    r.topic, r.kafka_partition, r.kafka_offset, config.redis_type
                )))
            }
            Value::Struct(s) => s.values.iter().map(text_of).collect::<Vec<_>>().join(&config.separator),
            Value::Map(m) => m.iter().map(|(_, v)| text_of(v)).collect::<Vec<_>>().join(&config.separator),
            other => text_of(other),
        })
    }

    /// The Redis key of a record: keyspace, separator, record key.
    fn key_of(&self, r: &SinkRecord) -> Result<String, ConnectError> {
        let config = self.config()?;
        let key = self.member_of(r)?;
        let space = config.keyspace.replace("${topic}", &r.topic);
        Ok(if space.is_empty() { key } else { format!("{space}{}{key}", config.separator) })
    }

    /// Reads the next replies of the oldest batch: its check (then sends `EXEC` or `DISCARD`), or
    /// its outcome. A broken connection loses the replies of every batch in flight: their
    /// partitions are marked lost, to be settled from the stored offsets.
    async fn settle_one(&mut self) -> Result<(), ConnectError> {
        let Some(stage) = self.in_flight.front().map(|b| b.stage) else { return Ok(()) };
        let step = match stage {
            Stage::Check => self.check_front().await,
            Stage::Exec | Stage::Discard => self.finish_front().await,
        };
        match step {
            Ok(Ok(())) => Ok(()),
            Ok(Err(fatal)) => {
                // Redis refused the batch: the task fails. The connection goes too, so a
                // transaction left open (no EXEC or DISCARD sent) or a batch queued behind this one
                // is discarded by Redis, never run later by a close or stop that reads on.
                self.conn = None;
                self.in_flight.clear();
                Err(fatal)
            }
            Err(e) => {
                let what = self.in_flight.front().map(|b| b.what.clone()).unwrap_or_default();
                tracing::warn!(error = %e, batch = %what, in_flight = self.in_flight.len(), "redis connection lost with batches unconfirmed; settling them from the stored offsets");
                self.conn = None;
                for b in std::mem::take(&mut self.in_flight) {
                    self.mark_lost(&b);
                }
                Ok(())
            }
        }
    }

    /// The oldest batch's `WATCH` and `MGET` replies: `EXEC` if the stored offsets are those it
    /// was built on, else `DISCARD`. The outer error is the connection's.
    async fn check_front(&mut self) -> Result<Result<(), ConnectError>, resp::RespError> {
        let conn = self.conn.as_mut().ok_or_else(not_connected)?;
        let watch = conn.reply().await?;
        let stored = conn.reply().await?;
        let Some(batch) = self.in_flight.front_mut() else { return Ok(Ok(())) };
        if let Reply::Error(e) = &watch {
            return Ok(Err(refused(&batch.what, e)));
        }
        let n = batch.partitions.len();
        let values = match stored {
            Reply::Array(Some(values)) if values.len() == 2 * n => values,
            Reply::Error(e) => return Ok(Err(refused(&batch.what, &e))),
            other => {
                return Ok(Err(ConnectError::fatal(format!("redis: unexpected MGET reply {other:?} ({})", batch.what))))
            }
        };
        let holds: Vec<Option<i64>> =
            (0..n).map(|i| stored_offset(&values[i]).or_else(|| stored_offset(&values[n + i]))).collect();
        let (command, stage): (&[u8], Stage) =
            if holds == batch.expected { (b"EXEC", Stage::Exec) } else { (b"DISCARD", Stage::Discard) };
        if stage == Stage::Discard {
            tracing::warn!(batch = %batch.what, holds = ?holds, built_on = ?batch.expected, "redis holds other offsets than the batch was built on (another task wrote the partition): the batch is discarded and the partition read again from the stored offset");
        }
        batch.stage = stage;
        if stage == Stage::Discard {
            // Its partitions' later records wait until they are read again.
            for (tp, (first, _)) in &batch.partitions {
                let f = self.lost.entry(tp.clone()).or_insert(*first);
                *f = (*f).min(*first);
            }
        }
        let mut buf = Vec::new();
        resp::encode(&[command], &mut buf);
        conn.send(&buf).await?;
        Ok(Ok(()))
    }

    /// The oldest batch's `MULTI` and `QUEUED` replies and its `EXEC` (or `DISCARD`) reply.
    async fn finish_front(&mut self) -> Result<Result<(), ConnectError>, resp::RespError> {
        let conn = self.conn.as_mut().ok_or_else(not_connected)?;
        let Some(queued) = self.in_flight.front().map(|b| b.queued) else { return Ok(Ok(())) };
        // MULTI's +OK, then +QUEUED (or a queueing error, which EXEC then reports) per command.
        let mut queue_error = None;
        for _ in 0..=queued {
            if let Some(e) = conn.skip_status().await? {
                queue_error.get_or_insert(e);
            }
        }
        let last = conn.reply().await?;
        let Some(batch) = self.in_flight.pop_front() else { return Ok(Ok(())) };
        let result = match (batch.stage, last) {
            (Stage::Discard, _) => {
                self.mark_lost(&batch);
                Ok(())
            }
            (_, Reply::Array(None)) => {
                tracing::warn!(batch = %batch.what, "redis refused the batch: its offsets changed before EXEC (another task wrote the partition); reading again from the stored offset");
                self.mark_lost(&batch);
                Ok(())
            }
            (_, Reply::Array(Some(results))) => match results.iter().find_map(|r| match r {
                Reply::Error(e) => Some(e.clone()),
                _ => None,
            }) {
                Some(e) => {
                    Err(ConnectError::fatal(format!("redis rejected a command of the batch ({}): {e}", batch.what)))
                }
                None => Ok(()),
            },
            (_, Reply::Error(e)) => Err(refused(&batch.what, &queue_error.unwrap_or(e))),
            (_, other) => Err(ConnectError::fatal(format!("redis: unexpected EXEC reply {other:?} ({})", batch.what))),
        };
        Ok(result)
    }

    fn mark_lost(&mut self, batch: &Batch) {
        for (tp, (first, _)) in &batch.partitions {
            let f = self.lost.entry(tp.clone()).or_insert(*first);
            *f = (*f).min(*first);
        }
    }

    /// Reads every reply in flight, then settles lost partitions: their head becomes the stored
    /// offset and the worker is asked to read them again from there (from the lost batches' first
    /// offset where nothing is stored).
    async fn settle(&mut self) -> Result<(), ConnectError> {
        while !self.in_flight.is_empty() {
            self.settle_one().await?;
        }
        if self.lost.is_empty() {
            return Ok(());
        }
        let partitions: Vec<TopicPartition> = self.lost.keys().cloned().collect();
        let stored = self.stored_offsets(&partitions).await?;
        for (tp, first) in std::mem::take(&mut self.lost) {
            let at = stored.get(&tp).copied();
            let from = at.unwrap_or(first);
            tracing::info!(partition = %tp, stored = ?at, from, "redis sink reads the partition again from what redis holds");
            self.head.insert(tp.clone(), at);
            self.rewinds.insert(tp, from);
        }
        Ok(())
    }

    /// The offsets stored in Redis for these partitions.
    async fn stored_offsets(&mut self, partitions: &[TopicPartition]) -> Result<Offsets, ConnectError> {
        let mut out = Offsets::new();
        if partitions.is_empty() {
            return Ok(out);
        }
        let keys: Vec<String> = partitions
            .iter()
            .map(|tp| offset_key(&self.connector, tp))
            .chain(partitions.iter().map(legacy_offset_key))
            .collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        // An idle connection the server closed (timeout, CLIENT KILL) fails once: retry on a new one.
        let reply = match self.conn().await?.call(&args).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                match self.conn().await?.call(&args).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.conn = None;
                        return Err(ConnectError::retriable_from("redis: reading stored offsets", e));
                    }
                }
            }
        };
        let offset_in = |v: &Reply| match v {
            Reply::Bulk(Some(bytes)) => {
                serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|j| j["offset"].as_i64())
            }
            _ => None,
        };
        if let Reply::Array(Some(values)) = reply {
            let (own, legacy) = values.split_at(partitions.len().min(values.len()));
            for (i, tp) in partitions.iter().enumerate() {
                if let Some(offset) = own.get(i).and_then(offset_in).or_else(|| legacy.get(i).and_then(offset_in)) {
                    out.insert(tp.clone(), offset);
                }
            }
        }
        Ok(out)
    }

    /// Reads the stored offsets of partitions this task has no head for yet.
    async fn learn_heads(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let mut unknown: Vec<TopicPartition> = Vec::new();
        for r in records {
            let tp = r.topic_partition();
            if !self.head.contains_key(&tp) && !unknown.contains(&tp) {
                unknown.push(tp);
            }
        }
        if !unknown.is_empty() {
            // The connection must carry no replies in flight before a plain call reads its own.
            self.settle().await?;
            let stored = self.stored_offsets(&unknown).await?;
            for tp in unknown {
                let at = stored.get(&tp).copied();
                self.head.insert(tp, at);
            }
        }
        Ok(())
    }

    /// Whether a record goes into the next batch: not sent before (the worker passes a batch again
    /// after an error), and its partition not waiting to be read again.
    fn wanted(&self, r: &SinkRecord) -> bool {
        let tp = r.topic_partition();
        if self.lost.contains_key(&tp) || self.rewinds.contains_key(&tp) {
            return false;
        }
        match self.head.get(&tp) {
            Some(Some(head)) => r.kafka_offset >= *head,
            _ => true,
        }
    }

    /// Sends one batch of up to `redis.batch.size` of these records (`WATCH`, `MGET`, `MULTI`, the
    /// commands; `EXEC` follows its check); returns how many records it took from the front
    /// (written or passed over).
    async fn send_batch(&mut self, records: &[SinkRecord]) -> Result<usize, ConnectError> {
        let size = self.config()?.batch_size;
        let mut body = Vec::with_capacity(records.len().min(size) * 200);
        let mut queued = 0usize;
        let mut partitions: BTreeMap<TopicPartition, (i64, i64)> = BTreeMap::new();
        let mut taken = 0;
        let mut count = 0;
        for r in records {
            if count == size {
                break;
            }
            taken += 1;
            if !self.wanted(r) {
                continue;
            }
            count += 1;
            self.commands(r, &mut body, &mut queued)?;
            partitions
                .entry(r.topic_partition())
                .and_modify(|(_, next)| *next = r.kafka_offset + 1)
                .or_insert((r.kafka_offset, r.kafka_offset + 1));
        }
        if partitions.is_empty() {
            return Ok(taken);
        }
        for (tp, (_, next)) in &partitions {
            let value = serde_json::json!({"topic": tp.topic, "partition": tp.partition, "offset": next}).to_string();
            encode(&[b"SET", offset_key(&self.connector, tp).as_bytes(), value.as_bytes()], &mut body);
            queued += 1;
        }
        let keys: Vec<String> = partitions
            .keys()
            .map(|tp| offset_key(&self.connector, tp))
            .chain(partitions.keys().map(legacy_offset_key))
            .collect();
        let mut call = Vec::with_capacity(body.len() + 64 + keys.len() * 140);
        for command in [&b"WATCH"[..], b"MGET"] {
            array(1 + keys.len(), &mut call);
            bulk(command, &mut call);
            for k in &keys {
                bulk(k.as_bytes(), &mut call);
            }
        }
        encode(&[b"MULTI"], &mut call);
        call.extend_from_slice(&body);
        drop(body);
        let n = partitions.len();
        let what = match partitions.iter().next() {
            Some((tp, (first, next))) if n == 1 => format!("{tp} offsets {first}..{}", next - 1),
            Some((tp, (first, next))) => format!("{tp} offsets {first}..{} and {} more partitions", next - 1, n - 1),
            None => String::new(),
        };
        let expected = partitions.keys().map(|tp| self.head.get(tp).copied().flatten()).collect();
        for (tp, (_, next)) in &partitions {
            self.head.insert(tp.clone(), Some(*next));
        }
        let batch = Batch { partitions, expected, queued, stage: Stage::Check, what };
        let sent = match self.conn().await {
            Ok(conn) => conn.send(&call).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(()) => self.in_flight.push_back(batch),
            Err(e) => {
                // Unknown whether Redis got it, and the replies in flight are gone with the
                // connection: all are settled from the stored offsets.
                tracing::warn!(error = %e, batch = %batch.what, "redis connection lost while sending a batch; settling from the stored offsets");
                self.conn = None;
                self.mark_lost(&batch);
                for b in std::mem::take(&mut self.in_flight) {
                    self.mark_lost(&b);
                }
            }
        }
        Ok(taken)
    }

    /// Reads replies until only the newest batch is left, with its `EXEC` sent: Redis runs it
    /// while the worker fetches the next records.
    async fn settle_but_last(&mut self) -> Result<(), ConnectError> {
        while self.in_flight.len() > 1 || self.in_flight.front().is_some_and(|b| b.stage == Stage::Check) {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Appends one record's commands to a batch; counts them in `n`.
    fn commands(&self, r: &SinkRecord, out: &mut Vec<u8>, n: &mut usize) -> Result<(), ConnectError> {
        let config = self.config()?;
        let ttl = (config.ttl > 0).then(|| config.ttl.to_string());
        match config.redis_type {
            RedisType::Stream => {
                if r.value.is_null() {
                    return Ok(());
                }
                let stream = config.keyspace.replace("${topic}", &r.topic);
                let fields = fields_of(&r.value);
                let mut args: Vec<&[u8]> = vec![b"XADD", stream.as_bytes(), b"*"];
                for (k, v) in &fields {
                    args.push(k.as_bytes());
                    args.push(v.as_bytes());
                }
                if fields.is_empty() {
                    args.extend([&b"value"[..], &b""[..]]);
                }
                encode_counted(&args, out, n);
                Ok(())
            }
            RedisType::String => {
                let key = self.key_of(r)?;
                if r.value.is_null() {
                    encode_counted(&[b"DEL", key.as_bytes()], out, n);
                    return Ok(());
                }
                let text = text_of(&r.value);
                match &ttl {
                    Some(t) => encode_counted(&[b"SET", key.as_bytes(), text.as_bytes(), b"EX", t.as_bytes()], out, n),
                    None => encode_counted(&[b"SET", key.as_bytes(), text.as_bytes()], out, n),
                }
                Ok(())
            }
            RedisType::List | RedisType::Set | RedisType::Zset => {
                // Collections: the keyspace is the one key, record keys are the members.
                let collection = config.keyspace.replace("${topic}", &r.topic);
                let member = self.member_of(r)?;
                let (m, c) = (member.as_bytes(), collection.as_bytes());
                match (config.redis_type, r.value.is_null()) {
                    (RedisType::List, false) => encode_counted(&[b"RPUSH", c, m], out, n),
                    (RedisType::List, true) => encode_counted(&[b"LREM", c, b"0", m], out, n),
                    (RedisType::Set, false) => encode_counted(&[b"SADD", c, m], out, n),
                    (RedisType::Set, true) => encode_counted(&[b"SREM", c, m], out, n),
                    (_, true) => encode_counted(&[b"ZREM", c, m], out, n),
                    (_, false) => {
                        let score = score_of(&r.value).ok_or_else(|| {
                            ConnectError::fatal(format!(
                                "the record at {}-{} offset {}: redis.type ZSET needs a number as the value (the score), got {}",
                                r.topic, r.kafka_partition, r.kafka_offset, text_of(&r.value)
                            ))
                        })?;
                        encode_counted(&[b"ZADD", c, score.to_string().as_bytes(), m], out, n)
                    }
                }
                Ok(())
            }
            RedisType::Json => {
                let key = self.key_of(r)?;
                if r.value.is_null() {
                    encode_counted(&[b"DEL", key.as_bytes()], out, n);
                    return Ok(());
                }
                let text = Value::to_json(&r.value).to_string();
                encode_counted(&[b"JSON.SET", key.as_bytes(), b"$", text.as_bytes()], out, n);
                if let Some(t) = &ttl {
                    encode_counted(&[b"EXPIRE", key.as_bytes(), t.as_bytes()], out, n);
                    return Ok(());
                }
                Ok(())
            }
            RedisType::Hash => {
                let key = self.key_of(r)?;
                encode_counted(&[b"DEL", key.as_bytes()], out, n);
                let fields = if r.value.is_null() { Vec::new() } else { fields_of(&r.value) };
                if fields.is_empty() {
                    return Ok(());
                }
                let mut args: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
                for (k, v) in &fields {
                    args.push(k.as_bytes());
                    args.push(v.as_bytes());
                }
                encode_counted(&args, out, n);
                if let Some(t) = &ttl {
                    encode_counted(&[b"EXPIRE", key.as_bytes(), t.as_bytes()], out, n);
                    return Ok(());
                }
                Ok(())
            }
        }
    }
}

#[async_trait]
impl SinkTask for RedisSinkTask {
    async fn start(&mut self, config: &ConfigMap, context: SinkTaskContext) -> Result<(), ConnectError> {
        self.config = Some(RedisSinkConfig::parse(config)?);
        let safe = |c: char| if c.is_ascii_graphic() { c } else { '-' };
        self.connector = context.connector.clone();
        self.client_name =
            format!("sluice:{}:{}", context.connector.chars().map(safe).collect::<String>(), context.task);
        self.conn().await?;
        if self.config()?.redis_type == RedisType::Json {
            let info = self.conn().await?.call(&[b"COMMAND", b"INFO", b"JSON.SET"]).await;
            let info = info.map_err(|e| ConnectError::retriable_from("redis COMMAND INFO", e))?;
            if matches!(info, Reply::Array(Some(ref items)) if items.iter().all(|i| matches!(i, Reply::Array(None) | Reply::Bulk(None))))
            {
                return Err(ConnectError::fatal(
                    "redis.type JSON needs the RedisJSON module (JSON.SET), which this server does not have; use HASH or STRING",
                ));
            }
        }
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<Offsets, ConnectError> {
        self.settle().await?;
        let out = self.stored_offsets(partitions).await?;
        for tp in partitions {
            self.head.insert(tp.clone(), out.get(tp).copied());
            // The worker seeks to what open returns: an older request to read again is void.
            self.rewinds.remove(tp);
        }
        for (tp, offset) in &out {
            tracing::info!(partition = %tp, offset, "redis sink resumes from the offset stored in redis");
        }
        Ok(out)
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        // Lost partitions from an earlier call are settled first (a retriable error until Redis
        // answers again; the worker then passes this batch again).
        if !self.lost.is_empty() {
            self.settle().await?;
        }
        self.learn_heads(records).await?;
        let mut rest = records;
        while !rest.is_empty() {
            let taken = self.send_batch(rest).await?;
            rest = &rest[taken..];
            self.settle_but_last().await?;
        }
        // A connection lost on the way: settle now, so the worker reads again right after this put.
        if !self.lost.is_empty() {
            self.settle().await?;
        }
        Ok(())
    }

    async fn flush(&mut self, _offsets: &Offsets) -> Result<(), ConnectError> {
        self.settle().await
    }

    async fn pre_commit(&mut self, offsets: &Offsets) -> Result<Offsets, ConnectError> {
        self.settle().await?;
        // Partitions to be read again are behind what the worker consumed: not committed now.
        Ok(offsets.iter().filter(|(tp, _)| !self.rewinds.contains_key(*tp)).map(|(tp, o)| (tp.clone(), *o)).collect())
    }

    fn rewind(&mut self) -> Offsets {
        std::mem::take(&mut self.rewinds)
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let settled = self.settle().await;
        for tp in partitions {
            self.head.remove(tp);
            self.rewinds.remove(tp);
            self.lost.remove(tp);
        }
        settled
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // Best effort: the worker flushed before stopping; a batch still in flight here is found
        // (or not) in the stored offsets on the next start.
        let settled = self.settle().await;
        self.conn = None;
        settled
    }
}

/// A TLS failure that retrying cannot fix (a certificate refused either way), with what to check.
fn tls_refusal(e: &resp::RespError) -> Option<&'static str> {
    let text = e.to_string();
    if text.contains("invalid peer certificate") {
        Some("the server's certificate is not trusted: check redis.ssl.truststore.location / redis.cacert")
    } else if text.contains("received fatal alert") {
        Some("the server refused the TLS session: check redis.key.file / redis.key.cert (a client certificate it trusts)")
    } else {
        None
    }
}

/// Appends one command and counts it.
fn encode_counted(args: &[&[u8]], out: &mut Vec<u8>, n: &mut usize) {
    encode(args, out);
    *n += 1;
}

fn not_connected() -> resp::RespError {
    resp::RespError::Io(std::io::Error::new(std::io::ErrorKind::NotConnected, "not connected"))
}

/// The offset in a stored `{"topic","partition","offset"}` value.
fn stored_offset(v: &Reply) -> Option<i64> {
    match v {
        Reply::Bulk(Some(bytes)) => serde_json::from_slice::<serde_json::Value>(bytes).ok()?["offset"].as_i64(),
        _ => None,
    }
}

/// A batch Redis refused with an error: fails the task with it.
fn refused(what: &str, e: &str) -> ConnectError {
    let hint = if e.starts_with("NOPERM") {
        "; the sink's user needs WATCH, MGET, MULTI, EXEC, DISCARD and the write commands of its redis.type"
    } else {
        ""
    };
    ConnectError::fatal(format!("redis refused the batch ({what}): {e}{hint}"))
}
