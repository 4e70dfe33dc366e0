//! Reads a topic as a `read_committed` consumer sees it, by applying the log's transaction markers
//! on the client: records of a transaction appear only once its COMMIT marker is read, and never
//! when an ABORT marker (or nothing) follows them.
//!
//! Exactly-once source tasks read their offsets with it after fencing their predecessor, so the
//! offsets they resume from are exactly those committed together with their records. It does not
//! depend on the broker filtering aborted data for `isolation.level=read_committed`: the local
//! broker (tansu 0.6) writes the markers but returns aborted and open transactions to
//! `read_committed` fetches, where Apache Kafka would hide them.
//!
//! Spoken over the Kafka protocol directly (Metadata, Fetch with `read_uncommitted`), because
//! librdkafka hides control records and producer ids.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::{BrokerId, FetchResponse, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::distributed::client::{Connection, ProtocolError};

/// A committed record.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value (`None`: a tombstone).
    pub value: Option<Bytes>,
}

/// The read_committed view of one partition, fed its records in offset order.
///
/// A transactional record waits under its producer id until that producer's next control marker:
/// COMMIT releases every waiting record of the producer, ABORT drops them (as the consumer's
/// aborted-transaction index does; epochs are not compared, so transactions v2's bumped marker
/// epochs work). Non-transactional records pass straight through.
#[derive(Debug, Default)]
pub struct TxnFilter {
    pending: HashMap<i64, Vec<CommittedRecord>>,
    released: Vec<CommittedRecord>,
}

/// What a control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// ABORT (type 0).
    Abort,
    /// COMMIT (type 1).
    Commit,
}

impl Marker {
    /// Parses a control record key: `version: i16, type: i16`.
    pub fn parse(key: Option<&Bytes>) -> Option<Marker> {
        let key = key?;
        if key.len() < 4 {
            return None;
        }
        match i16::from_be_bytes([key[2], key[3]]) {
            0 => Some(Marker::Abort),
            1 => Some(Marker::Commit),
            _ => None,
        }
    }
}

impl TxnFilter {
    /// Feeds one record of `partition`.
    pub fn push(&mut self, partition: i32, record: &Record) {
        if record.control {
            match Marker::parse(record.key.as_ref()) {
                Some(Marker::Commit) => {
                    if let Some(waiting) = self.pending.remove(&record.producer_id) {
                        self.released.extend(waiting);
                    }
                }
                Some(Marker::Abort) => {
                    self.pending.remove(&record.producer_id);
                }
                None => {}
            }
            return;
        }
        let out =
            CommittedRecord { partition, offset: record.offset, key: record.key.clone(), value: record.value.clone() };
        if record.transactional {
            self.pending.entry(record.producer_id).or_default().push(out);
        } else {
            self.released.push(out);
        }
    }

    /// Records committed so far (in the order their commits were read), taken out.
    pub fn take(&mut self) -> Vec<CommittedRecord> {
        std::mem::take(&mut self.released)
    }

    /// Records of transactions not decided yet.
    pub fn undecided(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

/// Splits a Fetch response's record bytes into whole v2 batches (a fetch may end in a partial one)
/// and returns the offset after the last whole batch.
fn feed_batches(partition: i32, mut data: Bytes, filter: &mut TxnFilter, next: &mut i64) -> Result<usize, String> {
    let mut batches = 0;
    // baseOffset(8) batchLength(4) leaderEpoch(4) magic(1) crc(4) attributes(2) lastOffsetDelta(4)
    while data.len() >= 27 {
        let base = i64::from_be_bytes(data[0..8].try_into().map_err(|_| "short batch header")?);
        let length = i32::from_be_bytes(data[8..12].try_into().map_err(|_| "short batch header")?);
        let total = 12 + usize::try_from(length).map_err(|_| format!("bad batch length {length}"))?;
        if data.len() < total {
            break;
        }
        let last_delta = i32::from_be_bytes(data[23..27].try_into().map_err(|_| "short batch header")?);
        let mut batch = data.split_to(total);
        if base + i64::from(last_delta) < *next {
            // A batch the broker returned from before the fetch offset (it starts mid-batch).
            batch.advance(batch.remaining());
        } else {
            let set = RecordBatchDecoder::decode(&mut batch)
                .map_err(|e| format!("partition {partition}: record batch at offset {base}: {e}"))?;
            for r in set.records.iter().filter(|r| r.offset >= *next) {
                filter.push(partition, r);
            }
        }
        *next = (*next).max(base + i64::from(last_delta) + 1);
        batches += 1;
    }
    Ok(batches)
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn codec(addr: &str, message: impl Into<String>) -> ProtocolError {
    ProtocolError::Codec { addr: addr.to_string(), message: message.into() }
}

async fn connect_any(bootstrap: &str, client_id: &str) -> Result<Connection, ProtocolError> {
    let mut last = None;
    for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match Connection::connect(addr, client_id).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| codec(bootstrap, "no bootstrap server")))
}

/// Every committed record of `topic`, read from the start of each partition to its end, with the
/// transaction markers applied as a `read_committed` consumer does. Records of transactions still
/// open at the end are not returned.
pub async fn read_committed(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<CommittedRecord>, ProtocolError> {
    let work = async {
        let mut meta_conn = connect_any(bootstrap, "sluice-committed-reader").await?;
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic))))]));
        let (meta, _): (MetadataResponse, _) = meta_conn.send(&request, 1, 12, Duration::from_secs(10)).await?;
        let brokers: HashMap<BrokerId, String> =
            meta.brokers.iter().map(|b| (b.node_id, format!("{}:{}", b.host.as_str(), b.port))).collect();
        let t = meta
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| codec(meta_conn.addr(), format!("topic {topic} not in metadata")))?;
        if t.error_code != 0 {
            return Err(codec(meta_conn.addr(), format!("topic {topic}: metadata error {}", t.error_code)));
        }
        let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for p in &t.partitions {
            let addr = brokers.get(&p.leader_id).cloned().ok_or_else(|| {
                codec(meta_conn.addr(), format!("partition {} has no known leader", p.partition_index))
            })?;
            by_leader.entry(addr).or_default().push(p.partition_index);
        }
        let mut out = Vec::new();
        for (addr, partitions) in by_leader {
            // The broker that answered the metadata keeps its connection.
            if addr == meta_conn.addr() {
                out.extend(read_partitions(&mut meta_conn, topic, &partitions).await?);
            } else {
                let mut conn = Connection::connect(&addr, "sluice-committed-reader").await?;
                out.extend(read_partitions(&mut conn, topic, &partitions).await?);
            }
        }
        Ok(out)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(codec(bootstrap, format!("reading {topic} took longer than {timeout:?}"))),
    }
}

async fn read_partitions(
    conn: &mut Connection,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<CommittedRecord>, ProtocolError> {
    let mut next: BTreeMap<i32, i64> = partitions.iter().map(|p| (*p, 0)).collect();
    let mut filters: BTreeMap<i32, TxnFilter> = partitions.iter().map(|p| (*p, TxnFilter::default())).collect();
    let mut done: BTreeMap<i32, bool> = partitions.iter().map(|p| (*p, false)).collect();
    let mut out = Vec::new();
    while done.values().any(|d| !d) {
        let wanted: Vec<FetchPartition> = next
            .iter()
            .filter(|(p, _)| !done[p])
            .map(|(p, o)| {
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*o)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(4 << 20)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(50)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(TopicName(sb(topic))).with_partitions(wanted)]);
        let (response, _): (FetchResponse, _) = conn.send(&request, 4, 12, Duration::from_secs(30)).await?;
        if response.error_code != 0 {
            return Err(codec(conn.addr(), format!("fetch error {}", response.error_code)));
        }
        for data in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            let p = data.partition_index;
            let Some(offset) = next.get_mut(&p) else { continue };
            match data.error_code {
                0 => {}
                // OFFSET_OUT_OF_RANGE: the log starts later (deleted segments).
                1 if data.log_start_offset > *offset => {
                    *offset = data.log_start_offset;
                    continue;
                }
                code => return Err(codec(conn.addr(), format!("{topic}-{p}: fetch error {code}"))),
            }
            let filter = filters.get_mut(&p).ok_or_else(|| codec(conn.addr(), "unexpected partition"))?;
            let whole = match data.records.clone() {
                Some(bytes) if !bytes.is_empty() => {
                    feed_batches(p, bytes, filter, offset).map_err(|e| codec(conn.addr(), e))?
                }
                _ => 0,
            };
            // The end: nothing more at our offset (the high watermark is not trusted: the local
            // broker under-reports it).
            if whole == 0 {
                done.insert(p, true);
            }
            out.extend(filter.take());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::TimestampType;

    fn rec(offset: i64, pid: i64, transactional: bool, value: &str) -> Record {
        Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: 0,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: IndexMap::new(),
        }
    }

    fn marker(offset: i64, pid: i64, m: Marker) -> Record {
        let mut r = rec(offset, pid, true, "");
        r.control = true;
        r.value = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0]));
        r.key = Some(Bytes::from(vec![0, 0, 0, if m == Marker::Commit { 1 } else { 0 }]));
        r
    }

    fn values(f: &mut TxnFilter) -> Vec<String> {
        f.take().into_iter().map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned()).collect()
    }

    #[test]
    fn commits_release_aborts_drop_and_open_transactions_wait() {
        let mut f = TxnFilter::default();
        f.push(0, &rec(0, 7, true, "a"));
        f.push(0, &rec(1, 9, false, "plain"));
        f.push(0, &rec(2, 8, true, "zombie"));
        assert_eq!(values(&mut f), vec!["plain"]);
        f.push(0, &marker(3, 7, Marker::Commit));
        f.push(0, &rec(4, 7, true, "b"));
        f.push(0, &marker(5, 7, Marker::Abort));
        f.push(0, &marker(6, 8, Marker::Abort));
        assert_eq!(values(&mut f), vec!["a"]);
        f.push(0, &rec(7, 7, true, "c"));
        assert_eq!(f.undecided(), 1);
        assert!(values(&mut f).is_empty(), "an open transaction is not visible");
        f.push(0, &marker(8, 7, Marker::Commit));
        assert_eq!(values(&mut f), vec!["c"]);
        assert_eq!(f.undecided(), 0);
    }

    #[test]
    fn control_keys_parse() {
        assert_eq!(Marker::parse(Some(&Bytes::from_static(&[0, 0, 0, 1]))), Some(Marker::Commit));
        assert_eq!(Marker::parse(Some(&Bytes::from_static(&[0, 0, 0, 0]))), Some(Marker::Abort));
        assert_eq!(Marker::parse(Some(&Bytes::from_static(&[0, 0]))), None);
        assert_eq!(Marker::parse(None), None);
    }
}
