//! Group membership through Kafka's group coordinator (protocol type `connect`): join, let the
//! leader assign, sync, heartbeat, rejoin, leave.
//!
//! Guarantees: revoked work is stopped (the [`GroupMember::revoke`] call returns) before this
//! member rejoins, so nobody else is given it while it still runs; a member that loses its
//! membership (unknown member, or no successful heartbeat for a session timeout) stops all its
//! work, and others only receive lost work after `scheduled.rebalance.max.delay.ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::GroupId;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::assignor::{assign, AssignorMemory, MemberState};
use super::client::{Connection, ProtocolError};
use super::protocol::{ConnectAssignment, Work, WorkerMetadata, COMPATIBLE, CONFIG_MISMATCH, NO_ERROR, PROTOCOL_TYPE};

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Settings of the membership (worker keys of the same names).
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// Brokers to find the coordinator through.
    pub bootstrap: Vec<String>,
    /// `group.id`.
    pub group_id: String,
    /// This worker's REST URL.
    pub url: String,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `rebalance.timeout.ms`.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `scheduled.rebalance.max.delay.ms`.
    pub max_delay: Duration,
}

/// The worker side of the membership.
#[async_trait]
pub trait GroupMember: Send + Sync {
    /// How far this worker has read the config topic, and all connectors and tasks it knows.
    fn config_state(&self) -> (i64, BTreeSet<Work>);
    /// Stops work. Returns once it is stopped.
    async fn revoke(&self, work: &BTreeSet<Work>);
    /// A new assignment for `generation`: start what is not running yet.
    async fn assigned(&self, generation: i32, assignment: &ConnectAssignment);
}

/// What the group looks like from here.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    /// Current generation (-1 before the first join).
    pub generation: i32,
    /// This member's id.
    pub member_id: String,
    /// Leader's member id.
    pub leader: String,
    /// Leader's REST URL.
    pub leader_url: String,
    /// Whether this member leads.
    pub is_leader: bool,
    /// Completed rebalances.
    pub rebalances: u64,
    /// Duration of the last rebalance.
    pub last_rebalance: Option<Duration>,
    /// When the last rebalance completed.
    pub last_rebalance_at: Option<Instant>,
    /// This member's work.
    pub assignment: BTreeSet<Work>,
    /// Assignment per member, as last computed by this member when it led.
    pub members: BTreeMap<String, BTreeSet<Work>>,
}

/// A running membership.
pub struct Membership {
    rejoin: Arc<Notify>,
    cancel: CancellationToken,
    status: watch::Receiver<GroupStatus>,
    handle: JoinHandle<()>,
}

impl Membership {
    /// Starts joining the group.
    pub fn start(config: MembershipConfig, member: Arc<dyn GroupMember>) -> Membership {
        let rejoin = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let (tx, status) = watch::channel(GroupStatus { generation: -1, ..GroupStatus::default() });
        let state = Loop {
            config,
            member,
            rejoin: rejoin.clone(),
            cancel: cancel.clone(),
            status: tx,
            conn: None,
            member_id: String::new(),
            owned: BTreeSet::new(),
            last: ConnectAssignment::default(),
            memory: AssignorMemory::default(),
            started: Instant::now(),
        };
        let handle = tokio::spawn(state.run());
        Membership { rejoin, cancel, status, handle }
    }

    /// Asks for a rebalance (e.g. connectors or tasks changed and the leader must assign them).
    pub fn request_rejoin(&self) {
        self.rejoin.notify_one();
    }

    /// The latest status.
    pub fn status(&self) -> watch::Receiver<GroupStatus> {
        self.status.clone()
    }

    /// Leaves the group (LeaveGroup) after stopping this member's work.
    pub async fn leave(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
    }

    /// Stops without LeaveGroup and without stopping work (simulates a crash in tests).
    pub fn abort(self) {
        self.handle.abort();
    }
}

struct Loop {
    config: MembershipConfig,
    member: Arc<dyn GroupMember>,
    rejoin: Arc<Notify>,
    cancel: CancellationToken,
    status: watch::Sender<GroupStatus>,
    conn: Option<Connection>,
    member_id: String,
    owned: BTreeSet<Work>,
    /// The last assignment received (sent back as this member's allocation, as Kafka Connect does).
    last: ConnectAssignment,
    memory: AssignorMemory,
    started: Instant,
}

enum Next {
    Rejoin,
    Stop,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Loop {
    async fn run(mut self) {
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            match self.round().await {
                Ok(Next::Rejoin) => {}
                Ok(Next::Stop) => break,
                Err(e) => {
                    tracing::warn!(group = %self.config.group_id, error = %e, "group coordinator error; retrying");
                    self.conn = None;
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        self.leave().await;
    }

    async fn coordinator(&mut self) -> Result<&mut Connection, ProtocolError> {
        if self.conn.is_none() {
            let mut last = None;
            for broker in &self.config.bootstrap {
                match Connection::connect(broker, "sluice-worker").await {
                    Ok(mut c) => {
                        let req =
                            FindCoordinatorRequest::default().with_key(sb(&self.config.group_id)).with_key_type(0);
                        let (resp, _) = c.send(&req, 0, 3, Duration::from_secs(10)).await?;
                        if resp.error_code != 0 {
                            last = Some(ProtocolError::Codec {
                                addr: broker.clone(),
                                message: format!("FindCoordinator error {}", resp.error_code),
                            });
                            continue;
                        }
                        let addr = format!("{}:{}", resp.host.as_str(), resp.port);
                        self.conn = Some(if addr == c.addr() {
                            c
                        } else {
                            Connection::connect(&addr, "sluice-worker").await?
                        });
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.conn.is_none() {
                return Err(last
                    .unwrap_or(ProtocolError::Codec { addr: String::new(), message: "no bootstrap brokers".into() }));
            }
        }
        self.conn.as_mut().ok_or(ProtocolError::Codec { addr: String::new(), message: "no coordinator".into() })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// One join/sync, then heartbeats until a rejoin is needed.
    async fn round(&mut self) -> Result<Next, ProtocolError> {
        let rebalance_started = Instant::now();
        let (config_offset, _) = self.member.config_state();
        let allocation =
            ConnectAssignment { assigned: self.owned.clone(), revoked: BTreeSet::new(), ..self.last.clone() };
        let metadata =
            WorkerMetadata { url: self.config.url.clone(), config_offset, allocation: Some(allocation) }.encode();
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(&self.config.group_id)))
            .with_session_timeout_ms(self.config.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(self.config.rebalance_timeout.as_millis() as i32)
            .with_member_id(sb(&self.member_id))
            .with_protocol_type(sb(PROTOCOL_TYPE))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(sb(COMPATIBLE))
                .with_metadata(metadata)]);
        let timeout = self.config.rebalance_timeout + Duration::from_secs(5);
        let cancel = self.cancel.clone();
        let joined = tokio::select! {
            _ = cancel.cancelled() => return Ok(Next::Stop),
            r = async { self.coordinator().await?.send(&join, 0, 5, timeout).await } => r?.0,
        };
        if joined.error_code != 0 {
            tracing::debug!(group = %self.config.group_id, error_code = joined.error_code, "JoinGroup answered with an error");
        }
        match joined.error_code {
            0 => {}
            MEMBER_ID_REQUIRED => {
                self.member_id = joined.member_id.to_string();
                return Ok(Next::Rejoin);
            }
            UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                self.lose_membership().await;
                return Ok(Next::Rejoin);
            }
            REBALANCE_IN_PROGRESS => return Ok(Next::Rejoin),
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
                self.conn = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(Next::Rejoin);
            }
            code => {
                return Err(ProtocolError::Codec { addr: String::new(), message: format!("JoinGroup error {code}") });
            }
        }
        self.member_id = joined.member_id.to_string();
        let generation = joined.generation_id;
        let is_leader = joined.leader.as_str() == self.member_id;
        let (assignments, members_plan) =
            if is_leader { self.lead(&joined).await } else { (Vec::new(), BTreeMap::new()) };

        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(&self.config.group_id)))
            .with_generation_id(generation)
            .with_member_id(sb(&self.member_id))
            .with_protocol_type(Some(sb(PROTOCOL_TYPE)))
            .with_protocol_name(Some(sb(COMPATIBLE)))
            .with_assignments(assignments);
        let synced = self.coordinator().await?.send(&sync, 0, 5, timeout).await?.0;
        if synced.error_code != 0 {
            tracing::debug!(group = %self.config.group_id, generation, error_code = synced.error_code, "SyncGroup answered with an error");
        }
        match synced.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS => return Ok(Next::Rejoin),
            UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                self.lose_membership().await;
                return Ok(Next::Rejoin);
            }
            code => {
                return Err(ProtocolError::Codec { addr: String::new(), message: format!("SyncGroup error {code}") })
            }
        }
        let assignment = match ConnectAssignment::decode(synced.assignment) {
            Ok(a) => a,
            Err(e) => return Err(ProtocolError::Codec { addr: String::new(), message: e.to_string() }),
        };
        if assignment.error == CONFIG_MISMATCH {
            tracing::info!(generation, "leader's config is behind; rejoining");
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(Next::Rejoin);
        }

        // Stop first, then start: revoked work (and anything no longer assigned) stops here.
        let to_stop: BTreeSet<Work> = self
            .owned
            .iter()
            .filter(|w| !assignment.assigned.contains(*w) || assignment.revoked.contains(*w))
            .cloned()
            .collect();
        if !to_stop.is_empty() {
            self.member.revoke(&to_stop).await;
        }
        self.owned = assignment.assigned.clone();
        self.last = assignment.clone();
        self.member.assigned(generation, &assignment).await;
        let took = rebalance_started.elapsed();
        tracing::info!(
            group = %self.config.group_id, generation, leader = %assignment.leader, leader_url = %assignment.leader_url,
            assigned = ?assignment.assigned.iter().map(ToString::to_string).collect::<Vec<_>>(),
            revoked = ?to_stop.iter().map(ToString::to_string).collect::<Vec<_>>(),
            delay_ms = assignment.delay_ms, took_ms = took.as_millis() as u64, "rebalance completed"
        );
        self.status.send_modify(|s| {
            s.generation = generation;
            s.member_id = self.member_id.clone();
            s.leader = assignment.leader.clone();
            s.leader_url = assignment.leader_url.clone();
            s.is_leader = is_leader;
            s.rebalances += 1;
            s.last_rebalance = Some(took);
            s.last_rebalance_at = Some(Instant::now());
            s.assignment = self.owned.clone();
            if is_leader {
                s.members = members_plan.clone();
            }
        });
        if !assignment.revoked.is_empty() {
            // The leader reassigns what we just stopped in a follow-up round.
            return Ok(Next::Rejoin);
        }
        self.heartbeat(generation, assignment.delay_ms).await
    }

    /// The leader's part: decode members, compute the plan, encode one assignment per member.
    async fn lead(
        &mut self,
        joined: &JoinGroupResponse,
    ) -> (Vec<SyncGroupRequestAssignment>, BTreeMap<String, BTreeSet<Work>>) {
        let mut members = Vec::new();
        let mut max_offset = -1;
        for m in &joined.members {
            let metadata = WorkerMetadata::decode(m.metadata.clone()).unwrap_or_else(|e| {
                tracing::warn!(member = %m.member_id.as_str(), error = %e, "unreadable member metadata; treating as empty");
                WorkerMetadata { url: String::new(), config_offset: -1, allocation: None }
            });
            max_offset = max_offset.max(metadata.config_offset);
            members.push(MemberState {
                id: m.member_id.to_string(),
                owned: metadata.allocation.map(|a| a.assigned).unwrap_or_default(),
            });
        }
        // The leader must have read at least as far as every member; give it a moment to catch up.
        let deadline = Instant::now() + Duration::from_secs(3);
        let (mut offset, mut work) = self.member.config_state();
        while offset < max_offset && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (offset, work) = self.member.config_state();
        }
        let mismatch = offset < max_offset;
        let now_ms = self.now_ms();
        let plan = assign(&members, &work, &mut self.memory, now_ms, self.config.max_delay.as_millis() as u64);
        let mut out = Vec::new();
        let mut summary = BTreeMap::new();
        for m in &members {
            let p = plan.members.get(&m.id).cloned().unwrap_or_default();
            summary.insert(m.id.clone(), p.assigned.clone());
            let a = ConnectAssignment {
                error: if mismatch { CONFIG_MISMATCH } else { NO_ERROR },
                leader: self.member_id.clone(),
                leader_url: self.config.url.clone(),
                config_offset: offset,
                assigned: if mismatch { m.owned.clone() } else { p.assigned },
                revoked: if mismatch { BTreeSet::new() } else { p.revoked },
                delay_ms: plan.delay_ms.min(i32::MAX as u64) as i32,
            };
            out.push(SyncGroupRequestAssignment::default().with_member_id(sb(&m.id)).with_assignment(a.encode()));
        }
        (out, summary)
    }

    async fn heartbeat(&mut self, generation: i32, delay_ms: i32) -> Result<Next, ProtocolError> {
        let delay_until = (delay_ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(delay_ms as u64));
        let mut last_ok = Instant::now();
        loop {
            let rejoin = self.rejoin.clone();
            let cancel = self.cancel.clone();
            tokio::select! {
                _ = cancel.cancelled() => return Ok(Next::Stop),
                _ = rejoin.notified() => return Ok(Next::Rejoin),
                _ = tokio::time::sleep(self.config.heartbeat_interval) => {}
                _ = async { match delay_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    return Ok(Next::Rejoin);
                }
            }
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(sb(&self.config.group_id)))
                .with_generation_id(generation)
                .with_member_id(sb(&self.member_id));
            let session_timeout = self.config.session_timeout;
            let result = async { self.coordinator().await?.send(&request, 0, 4, session_timeout).await }.await;
            match result {
                Ok((resp, _)) => match resp.error_code {
                    0 => last_ok = Instant::now(),
                    REBALANCE_IN_PROGRESS => return Ok(Next::Rejoin),
                    UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION => {
                        self.lose_membership().await;
                        return Ok(Next::Rejoin);
                    }
                    _ => {
                        self.conn = None;
                        return Ok(Next::Rejoin);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    self.conn = None;
                    if last_ok.elapsed() >= self.config.session_timeout {
                        self.lose_membership().await;
                        return Ok(Next::Rejoin);
                    }
                }
            }
        }
    }

    /// Out of the group: stop everything before anyone else can be given it.
    async fn lose_membership(&mut self) {
        if !self.owned.is_empty() {
            tracing::warn!(group = %self.config.group_id, "membership lost; stopping all work");
            let all = std::mem::take(&mut self.owned);
            self.member.revoke(&all).await;
        }
        self.member_id.clear();
        self.status.send_modify(|s| {
            s.assignment.clear();
            s.generation = -1;
        });
    }

    async fn leave(&mut self) {
        let all = std::mem::take(&mut self.owned);
        if !all.is_empty() {
            self.member.revoke(&all).await;
        }
        if self.member_id.is_empty() {
            return;
        }
        if self.status.borrow().is_leader {
            // tansu 0.6 keeps a leader that leaves during a join as the group's leader, and the
            // group never completes another rebalance. The coordinator drops a silent member after
            // session.timeout.ms, so the cost of not leaving is that delay (on any broker).
            tracing::info!(member_id = %self.member_id, "leaving as the group's leader: no LeaveGroup; the coordinator notices within session.timeout.ms");
            return;
        }
        // v0-2 carry the single `member_id`; v3+ name the leaving members in `members` (setting
        // both fails to encode). v0-2 first: tansu 0.6 mishandles a v3 leave that lands during a
        // rebalance (the join then waits for rebalance.timeout.ms); Kafka 4 only has v3+.
        let group = GroupId(sb(&self.config.group_id));
        let batch = LeaveGroupRequest::default()
            .with_group_id(group.clone())
            .with_members(vec![MemberIdentity::default().with_member_id(sb(&self.member_id))]);
        let single = LeaveGroupRequest::default().with_group_id(group).with_member_id(sb(&self.member_id));
        // A fresh connection: the loop may have been cancelled mid-request, leaving a response
        // unread on the old one.
        self.conn = None;
        if let Ok(conn) = self.coordinator().await {
            let sent = match conn.send(&single, 0, 2, Duration::from_secs(5)).await {
                Err(ProtocolError::Unsupported { .. }) => conn.send(&batch, 3, 4, Duration::from_secs(5)).await,
                other => other,
            };
            match sent {
                Ok((r, _)) if r.error_code != 0 => tracing::warn!(error_code = r.error_code, "LeaveGroup refused"),
                Ok(_) => tracing::info!(member_id = %self.member_id, "left the group"),
                Err(e) => tracing::warn!(error = %e, "LeaveGroup failed"),
            }
        }
    }
}
