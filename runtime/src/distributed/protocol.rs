//! Kafka Connect's group protocol payloads (`ConnectProtocol` / `IncrementalCooperativeConnectProtocol`):
//! protocol type `connect`, sub-protocol `compatible` (version 1).
//!
//! Member metadata: `version:int16, url:string, config-offset:int64, allocation:nullable bytes`
//! (the member's current assignment). Assignment: `version:int16, error:int16, leader:string,
//! leader-url:string, config-offset:int64, assignment:[connector:string, tasks:[int32]],
//! revoked:[...], delay:int32`; task `-1` stands for the connector instance itself.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Protocol type registered with the group coordinator.
pub const PROTOCOL_TYPE: &str = "connect";
/// Incremental cooperative sub-protocol.
pub const COMPATIBLE: &str = "compatible";
/// Assignment error: none.
pub const NO_ERROR: i16 = 0;
/// Assignment error: the leader's config is behind a member's.
pub const CONFIG_MISMATCH: i16 = 1;

/// A unit of work: a connector instance or one of its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// The connector instance.
    Connector(String),
    /// A task.
    Task(String, u32),
}

impl Work {
    /// The connector it belongs to.
    pub fn connector(&self) -> &str {
        match self {
            Work::Connector(c) | Work::Task(c, _) => c,
        }
    }
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Connector(c) => write!(f, "{c}"),
            Work::Task(c, t) => write!(f, "{c}-{t}"),
        }
    }
}

/// What a member says about itself when joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerMetadata {
    /// REST URL.
    pub url: String,
    /// How far it has read the config topic.
    pub config_offset: i64,
    /// Its current assignment.
    pub allocation: Option<ConnectAssignment>,
}

/// What the leader gives each member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectAssignment {
    /// NO_ERROR or CONFIG_MISMATCH.
    pub error: i16,
    /// Leader member id.
    pub leader: String,
    /// Leader REST URL.
    pub leader_url: String,
    /// Config offset the assignment was computed at.
    pub config_offset: i64,
    /// Work this member should run.
    pub assigned: BTreeSet<Work>,
    /// Work this member must stop.
    pub revoked: BTreeSet<Work>,
    /// Rejoin after this many ms (lost work waits for its worker to return).
    pub delay_ms: i32,
}

/// The payload is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed connect protocol payload: {0}")]
pub struct ProtocolDecodeError(pub String);

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn need(buf: &Bytes, n: usize, what: &str) -> Result<(), ProtocolDecodeError> {
    if buf.remaining() < n {
        Err(ProtocolDecodeError(format!("truncated {what}")))
    } else {
        Ok(())
    }
}

fn get_string(buf: &mut Bytes, what: &str) -> Result<String, ProtocolDecodeError> {
    need(buf, 2, what)?;
    let len = buf.get_i16();
    let len = usize::try_from(len).map_err(|_| ProtocolDecodeError(format!("null {what}")))?;
    need(buf, len, what)?;
    let bytes = buf.copy_to_bytes(len);
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtocolDecodeError(format!("{what} is not UTF-8")))
}

fn put_work(buf: &mut BytesMut, work: &BTreeSet<Work>) {
    let mut by_connector: std::collections::BTreeMap<&str, Vec<i32>> = std::collections::BTreeMap::new();
    for w in work {
        let entry = by_connector.entry(w.connector()).or_default();
        match w {
            Work::Connector(_) => entry.push(-1),
            Work::Task(_, t) => entry.push(*t as i32),
        }
    }
    buf.put_i32(by_connector.len() as i32);
    for (connector, tasks) in by_connector {
        put_string(buf, connector);
        buf.put_i32(tasks.len() as i32);
        for t in tasks {
            buf.put_i32(t);
        }
    }
}

fn get_work(buf: &mut Bytes) -> Result<BTreeSet<Work>, ProtocolDecodeError> {
    need(buf, 4, "assignment array")?;
    let n = buf.get_i32();
    let mut out = BTreeSet::new();
    for _ in 0..n.max(0) {
        let connector = get_string(buf, "connector name")?;
        need(buf, 4, "task array")?;
        let tasks = buf.get_i32();
        for _ in 0..tasks.max(0) {
            need(buf, 4, "task id")?;
            match buf.get_i32() {
                -1 => out.insert(Work::Connector(connector.clone())),
                t if t >= 0 => out.insert(Work::Task(connector.clone(), t as u32)),
                t => return Err(ProtocolDecodeError(format!("bad task id {t}"))),
            };
        }
    }
    Ok(out)
}

impl ConnectAssignment {
    /// Encodes as version 1.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        buf.put_i16(self.error);
        put_string(&mut buf, &self.leader);
        put_string(&mut buf, &self.leader_url);
        buf.put_i64(self.config_offset);
        put_work(&mut buf, &self.assigned);
        put_work(&mut buf, &self.revoked);
        buf.put_i32(self.delay_ms);
        buf.freeze()
    }

    /// Decodes versions 0 (eager), 1 and 2.
    pub fn decode(mut buf: Bytes) -> Result<ConnectAssignment, ProtocolDecodeError> {
        need(&buf, 4, "assignment header")?;
        let version = buf.get_i16();
        let error = buf.get_i16();
        let leader = get_string(&mut buf, "leader")?;
        let leader_url = get_string(&mut buf, "leader url")?;
        need(&buf, 8, "config offset")?;
        let config_offset = buf.get_i64();
        let assigned = get_work(&mut buf)?;
        let (revoked, delay_ms) = if version >= 1 && buf.has_remaining() {
            let revoked = get_work(&mut buf)?;
            let delay = if buf.remaining() >= 4 { buf.get_i32() } else { 0 };
            (revoked, delay)
        } else {
            (BTreeSet::new(), 0)
        };
        Ok(ConnectAssignment { error, leader, leader_url, config_offset, assigned, revoked, delay_ms })
    }
}

impl WorkerMetadata {
    /// Encodes as version 1.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        put_string(&mut buf, &self.url);
        buf.put_i64(self.config_offset);
        match &self.allocation {
            Some(a) => {
                let bytes = a.encode();
                buf.put_i32(bytes.len() as i32);
                buf.put_slice(&bytes);
            }
            None => buf.put_i32(-1),
        }
        buf.freeze()
    }

    /// Decodes versions 0, 1 and 2.
    pub fn decode(mut buf: Bytes) -> Result<WorkerMetadata, ProtocolDecodeError> {
        need(&buf, 2, "metadata header")?;
        let version = buf.get_i16();
        let url = get_string(&mut buf, "url")?;
        need(&buf, 8, "config offset")?;
        let config_offset = buf.get_i64();
        let allocation = if version >= 1 && buf.remaining() >= 4 {
            let len = buf.get_i32();
            match usize::try_from(len) {
                Ok(len) => {
                    need(&buf, len, "allocation")?;
                    Some(ConnectAssignment::decode(buf.copy_to_bytes(len))?)
                }
                Err(_) => None,
            }
        } else {
            None
        };
        Ok(WorkerMetadata { url, config_offset, allocation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(items: &[(&str, i32)]) -> BTreeSet<Work> {
        items
            .iter()
            .map(|(c, t)| if *t < 0 { Work::Connector(c.to_string()) } else { Work::Task(c.to_string(), *t as u32) })
            .collect()
    }

    #[test]
    fn assignment_round_trips_in_kafka_connect_layout() {
        let a = ConnectAssignment {
            error: NO_ERROR,
            leader: "w1".into(),
            leader_url: "http://h:8083/".into(),
            config_offset: 42,
            assigned: work(&[("c", -1), ("c", 0), ("c", 3)]),
            revoked: work(&[("d", 1)]),
            delay_ms: 500,
        };
        let bytes = a.encode();
        // version 1, error 0, "w1"
        assert_eq!(&bytes[..8], &[0, 1, 0, 0, 0, 2, b'w', b'1']);
        assert_eq!(ConnectAssignment::decode(bytes).expect("decodes"), a);
    }

    #[test]
    fn metadata_round_trips_and_reads_version_0() {
        let m = WorkerMetadata {
            url: "http://a:1/".into(),
            config_offset: 7,
            allocation: Some(ConnectAssignment::default()),
        };
        assert_eq!(WorkerMetadata::decode(m.encode()).expect("decodes"), m);
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        put_string(&mut v0, "http://b:2/");
        v0.put_i64(3);
        let read = WorkerMetadata::decode(v0.freeze()).expect("v0");
        assert_eq!((read.url.as_str(), read.config_offset, read.allocation), ("http://b:2/", 3, None));
        assert!(
            WorkerMetadata::decode(Bytes::from_static(&[0, 1, 0])).is_err(),
            "truncated input is an error, not a panic"
        );
    }
}
