//! Redis sink, as Redis Inc's `com.redis.kafka.connect.RedisSinkConnector`: records become hashes,
//! strings or stream entries; a tombstone deletes the key.
//!
//! Delivery: **exactly-once for the cache**. Each `put` batch is one pipeline: `MULTI`, the
//! records' commands in Kafka order, the next offset of every partition in the batch
//! (`SET com.redis.kafka.connect.sink.offset.<connector>.<topic>.<partition> {"topic","partition","offset"}`,
//! where `offset` is the next one to read), `EXEC`. Data and offsets land together or not at all;
//! on partition assignment the task reads those keys back and the worker seeks there, so a batch
//! that reached Redis is never applied again, even if the worker died before committing to Kafka.
//! HASH writes replace the key whole (`DEL` then `HSET`), so an update that nulls a column removes
//! that field.
//!
//! `put` returns once the batch's `EXEC` is confirmed. If the connection breaks with a batch
//! unconfirmed, the task reconnects and reads the stored offsets: the batch is sent again only if
//! its `EXEC` did not run. (Letting a batch be confirmed later, while the worker fetches the next,
//! was 60 % faster, but a batch still in flight at a rebalance could land after the partition's
//! new owner read the stored offsets; that needs batches made conditional on the stored offsets
//! inside Redis first.)

mod config;
mod resp;

use async_trait::async_trait;
use sluice_api::{
    ConfigConnector, ConfigMap, ConnectError, ConnectorInstance, ConnectorType, Offsets, PluginInfo, SinkRecord,
    SinkTask, SinkTaskContext, TaskSplit, TopicPartition, Value,
};

pub use config::{RedisSinkConfig, RedisType};
use resp::{encode, Conn, Reply};

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

/// Writes batches in MULTI/EXEC with their offsets.
#[derive(Default)]
pub struct RedisSinkTask {
    config: Option<RedisSinkConfig>,
    conn: Option<Conn>,
    /// The batch sent whose replies are not read yet.
    unconfirmed: Option<Batch>,
    /// `CLIENT SETNAME` of the connection: `sluice:<connector>:<task>`.
    client_name: String,
    /// The next offset per partition that Redis is known to hold (stored or confirmed).
    confirmed: Offsets,
    /// The connector's name, part of the offset keys.
    connector: String,
}

/// One MULTI/EXEC pipeline, kept until Redis confirmed it.
struct Batch {
    pipeline: Vec<u8>,
    replies: usize,
    /// The next offset per partition, as the batch stores them.
    next: std::collections::BTreeMap<TopicPartition, i64>,
    what: String,
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
                true => Some(
                    crate::tls::client_config(config.truststore.as_deref())
                        .map_err(|e| ConnectError::fatal(format!("redis.ssl.truststore.location: {e}")))?,
                ),
            };
            let mut conn = Conn::connect(&uri.addr, tls.map(|c| (c, uri.host()))).await.map_err(|e| {
                let message = format!("cannot reach redis at {}: {e}", uri.addr);
                ConnectError::retriable_from(message, e)
            })?;
            if let Some(password) = &uri.password {
                let reply = match &uri.user {
                    Some(user) => conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()]).await,
                    None => conn.call(&[b"AUTH", password.as_bytes()]).await,
                }
                .map_err(|e| ConnectError::retriable_from("redis AUTH", e))?;
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
            match conn.call(&[b"PING"]).await.map_err(|e| ConnectError::retriable_from("redis PING", e))? {
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

    /// Reads the replies of the unconfirmed batch. After a broken connection, reconnects and sends
    /// the batch again unless the stored offsets show its EXEC ran. On an error the batch stays
    /// unconfirmed, so the next call (or the worker's retry) tries again.
    async fn settle(&mut self) -> Result<(), ConnectError> {
        let Some(batch) = self.unconfirmed.take() else { return Ok(()) };
        let result = self.confirm(&batch).await;
        match &result {
            Ok(()) => {
                for (tp, next) in &batch.next {
                    let c = self.confirmed.entry(tp.clone()).or_insert(*next);
                    *c = (*c).max(*next);
                }
            }
            Err(e) if e.kind() == sluice_api::ErrorKind::Retriable => self.unconfirmed = Some(batch),
            Err(_) => {}
        }
        result
    }

    async fn confirm(&mut self, batch: &Batch) -> Result<(), ConnectError> {
        if self.conn.is_some() {
            let replies = self.conn().await?.replies(batch.replies).await;
            match replies {
                Ok(replies) => return check_exec(replies.last(), &batch.what),
                Err(e) => {
                    tracing::warn!(error = %e, batch = %batch.what, "redis connection lost with a batch unconfirmed");
                    self.conn = None;
                }
            }
        }
        // Reconnected: did the EXEC run?
        let stored = self.stored_offsets(&batch.next.keys().cloned().collect::<Vec<_>>()).await?;
        if batch.next.iter().all(|(tp, next)| stored.get(tp).is_some_and(|s| s >= next)) {
            return Ok(());
        }
        let replies = match self.conn().await?.pipeline(&batch.pipeline, batch.replies).await {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(ConnectError::retriable_from(format!("redis: writing the batch {}", batch.what), e));
            }
        };
        check_exec(replies.last(), &batch.what)
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

    /// One MULTI/EXEC of these records and their next offsets, confirmed before returning.
    async fn write_batch(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        // A batch left unconfirmed by an error is settled first. When the worker retries a batch,
        // what Redis already holds (confirmed offsets) is not sent again: re-applying it after a
        // later part would put older values over newer ones.
        self.settle().await?;
        let records: Vec<&SinkRecord> = records
            .iter()
            .filter(|r| self.confirmed.get(&r.topic_partition()).is_none_or(|c| r.kafka_offset >= *c))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let mut next: std::collections::BTreeMap<TopicPartition, i64> = Default::default();
        for r in &records {
            next.insert(r.topic_partition(), r.kafka_offset + 1);
        }
        // Commands go out in chunks as they are encoded, so Redis queues the first ones while the
        // rest are being encoded; MULTI keeps them from taking effect before EXEC.
        const CHUNK: usize = 256 * 1024;
        let mut pipeline = Vec::with_capacity(records.len() * 160);
        encode(&[b"MULTI"], &mut pipeline);
        let mut queued = 0;
        let mut sent = 0;
        let mut broken = self.conn().await.is_err();
        for r in &records {
            queued += self.commands(r, &mut pipeline)?;
            if !broken && pipeline.len() - sent >= CHUNK {
                broken = self.conn().await?.send(&pipeline[sent..]).await.is_err();
                sent = pipeline.len();
            }
        }
        for (tp, offset) in &next {
            let value = serde_json::json!({"topic": tp.topic, "partition": tp.partition, "offset": offset}).to_string();
            encode(&[b"SET", offset_key(&self.connector, tp).as_bytes(), value.as_bytes()], &mut pipeline);
            queued += 1;
        }
        encode(&[b"EXEC"], &mut pipeline);
        if !broken {
            broken = self.conn().await?.send(&pipeline[sent..]).await.is_err();
        }
        if broken {
            // Unknown whether Redis got it: settle() finds out from the stored offsets.
            self.conn = None;
        }
        let what = format!(
            "{}-{} offsets {}..{}",
            records[0].topic,
            records[0].kafka_partition,
            records[0].kafka_offset,
            records[records.len() - 1].kafka_offset
        );
        self.unconfirmed = Some(Batch { pipeline, replies: queued + 2, next, what });
        // Confirmed before returning: a batch still in flight when the worker polls could be
        // applied after its partition moved to another task that read the stored offsets first.
        self.settle().await
    }

    /// Appends one record's commands; returns how many.
    fn commands(&self, r: &SinkRecord, out: &mut Vec<u8>) -> Result<usize, ConnectError> {
        let config = self.config()?;
        let ttl = (config.ttl > 0).then(|| config.ttl.to_string());
        match config.redis_type {
            RedisType::Stream => {
                if r.value.is_null() {
                    return Ok(0);
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
                encode(&args, out);
                Ok(1)
            }
            RedisType::String => {
                let key = self.key_of(r)?;
                if r.value.is_null() {
                    encode(&[b"DEL", key.as_bytes()], out);
                    return Ok(1);
                }
                let text = text_of(&r.value);
                match &ttl {
                    Some(t) => encode(&[b"SET", key.as_bytes(), text.as_bytes(), b"EX", t.as_bytes()], out),
                    None => encode(&[b"SET", key.as_bytes(), text.as_bytes()], out),
                }
                Ok(1)
            }
            RedisType::List | RedisType::Set | RedisType::Zset => {
                // Collections: the keyspace is the one key, record keys are the members.
                let collection = config.keyspace.replace("${topic}", &r.topic);
                let member = self.member_of(r)?;
                let (m, c) = (member.as_bytes(), collection.as_bytes());
                match (config.redis_type, r.value.is_null()) {
                    (RedisType::List, false) => encode(&[b"RPUSH", c, m], out),
                    (RedisType::List, true) => encode(&[b"LREM", c, b"0", m], out),
                    (RedisType::Set, false) => encode(&[b"SADD", c, m], out),
                    (RedisType::Set, true) => encode(&[b"SREM", c, m], out),
                    (_, true) => encode(&[b"ZREM", c, m], out),
                    (_, false) => {
                        let score = score_of(&r.value).ok_or_else(|| {
                            ConnectError::fatal(format!(
                                "the record at {}-{} offset {}: redis.type ZSET needs a number as the value (the score), got {}",
                                r.topic, r.kafka_partition, r.kafka_offset, text_of(&r.value)
                            ))
                        })?;
                        encode(&[b"ZADD", c, score.to_string().as_bytes(), m], out)
                    }
                }
                Ok(1)
            }
            RedisType::Json => {
                let key = self.key_of(r)?;
                if r.value.is_null() {
                    encode(&[b"DEL", key.as_bytes()], out);
                    return Ok(1);
                }
                let text = Value::to_json(&r.value).to_string();
                encode(&[b"JSON.SET", key.as_bytes(), b"$", text.as_bytes()], out);
                if let Some(t) = &ttl {
                    encode(&[b"EXPIRE", key.as_bytes(), t.as_bytes()], out);
                    return Ok(2);
                }
                Ok(1)
            }
            RedisType::Hash => {
                let key = self.key_of(r)?;
                encode(&[b"DEL", key.as_bytes()], out);
                let fields = if r.value.is_null() { Vec::new() } else { fields_of(&r.value) };
                if fields.is_empty() {
                    return Ok(1);
                }
                let mut args: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
                for (k, v) in &fields {
                    args.push(k.as_bytes());
                    args.push(v.as_bytes());
                }
                encode(&args, out);
                if let Some(t) = &ttl {
                    encode(&[b"EXPIRE", key.as_bytes(), t.as_bytes()], out);
                    return Ok(3);
                }
                Ok(2)
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
            self.confirmed.remove(tp);
        }
        self.confirmed.extend(out.iter().map(|(tp, o)| (tp.clone(), *o)));
        for (tp, offset) in &out {
            tracing::info!(partition = %tp, offset, "redis sink resumes from the offset stored in redis");
        }
        Ok(out)
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let size = self.config()?.batch_size;
        for chunk in records.chunks(size) {
            self.write_batch(chunk).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, _offsets: &Offsets) -> Result<(), ConnectError> {
        self.settle().await
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let settled = self.settle().await;
        for tp in partitions {
            self.confirmed.remove(tp);
        }
        settled
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // Best effort: the worker flushed before stopping; a batch still unconfirmed here is found
        // (or not) in the stored offsets on the next start.
        let settled = self.settle().await;
        self.conn = None;
        settled
    }
}

/// Checks a batch's EXEC reply.
fn check_exec(exec: Option<&Reply>, what: &str) -> Result<(), ConnectError> {
    match exec {
        Some(Reply::Array(Some(results))) => match results.iter().find(|r| matches!(r, Reply::Error(_))) {
            Some(Reply::Error(e)) => {
                Err(ConnectError::fatal(format!("redis rejected a command of the batch ({what}): {e}")))
            }
            _ => Ok(()),
        },
        Some(Reply::Error(e)) => Err(ConnectError::fatal(format!("redis refused the batch ({what}): {e}"))),
        other => Err(ConnectError::fatal(format!("redis: unexpected EXEC reply {other:?} ({what})"))),
    }
}
