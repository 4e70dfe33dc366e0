//! Group membership through the broker's group coordinator (protocol type `connect`), with
//! in-process members standing in for workers: balanced assignment, failover of a crashed member's
//! work after the session timeout and the scheduled delay, and a joining member taking its share
//! without stopping work that does not move.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use sluice_runtime::distributed::membership::{GroupMember, Membership, MembershipConfig};
use sluice_runtime::distributed::protocol::{ConnectAssignment, Work};

#[derive(Default)]
struct FakeWorker {
    work: BTreeSet<Work>,
    running: Mutex<BTreeSet<Work>>,
    stopped: Mutex<Vec<Work>>,
}

#[async_trait]
impl GroupMember for FakeWorker {
    fn config_state(&self) -> (i64, BTreeSet<Work>) {
        (0, self.work.clone())
    }
    async fn revoke(&self, work: &BTreeSet<Work>) {
        let mut running = self.running.lock().expect("lock");
        for w in work {
            running.remove(w);
            self.stopped.lock().expect("lock").push(w.clone());
        }
    }
    async fn assigned(&self, _generation: i32, assignment: &ConnectAssignment) {
        *self.running.lock().expect("lock") = assignment.assigned.clone();
    }
}

fn all_work() -> BTreeSet<Work> {
    std::iter::once(Work::Connector("src".into())).chain((0..6).map(|t| Work::Task("src".into(), t))).collect()
}

fn config(kafka: &str, group: &str, i: usize) -> MembershipConfig {
    MembershipConfig {
        bootstrap: vec![kafka.to_string()],
        group_id: group.to_string(),
        url: format!("http://worker-{i}:8083/"),
        session_timeout: Duration::from_millis(6000),
        rebalance_timeout: Duration::from_secs(20),
        heartbeat_interval: Duration::from_millis(500),
        max_delay: Duration::from_millis(2000),
    }
}

fn tasks(s: &BTreeSet<Work>) -> usize {
    s.iter().filter(|w| matches!(w, Work::Task(..))).count()
}

/// True when `workers` together run every item exactly once.
fn covered(workers: &[&Arc<FakeWorker>]) -> bool {
    let sets: Vec<BTreeSet<Work>> = workers.iter().map(|w| w.running.lock().expect("lock").clone()).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<Work> = sets.into_iter().flatten().collect();
    total == union.len() && union == all_work()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_share_work_fail_over_and_rebalance_on_join() {
    let kafka = Services::load().kafka();
    let group = unique("connect-group");
    let _ = tracing_subscriber::fmt().with_env_filter("sluice_runtime=info").with_test_writer().try_init();
    let workers: Vec<Arc<FakeWorker>> =
        (0..4).map(|_| Arc::new(FakeWorker { work: all_work(), ..FakeWorker::default() })).collect();
    let mut members: Vec<Option<Membership>> =
        (0..3).map(|i| Some(Membership::start(config(&kafka, &group, i), workers[i].clone()))).collect();

    // 1. Three members: tasks 2/2/2, every item exactly once.
    let balanced = || {
        covered(&[&workers[0], &workers[1], &workers[2]])
            && (0..3).all(|i| tasks(&workers[i].running.lock().expect("lock")) == 2)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !balanced() {
        assert!(
            Instant::now() < deadline,
            "no balanced assignment: {:?}",
            (0..3).map(|i| workers[i].running.lock().expect("lock").clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = members[0].as_ref().map(|m| m.status().borrow().clone()).expect("member");
    assert!(status.generation >= 0 && status.leader_url.starts_with("http://worker-"), "{status:?}");
    assert!(
        (0..3).all(|i| workers[i].stopped.lock().expect("lock").is_empty()),
        "nothing was stopped while spreading new work"
    );

    // 2. Crash the member with the most work (no LeaveGroup): its work moves, the rest keeps running.
    let victim = (0..3).max_by_key(|i| workers[*i].running.lock().expect("lock").len()).expect("a member");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let before: Vec<BTreeSet<Work>> =
        survivors.iter().map(|i| workers[*i].running.lock().expect("lock").clone()).collect();
    let killed_at = Instant::now();
    members[victim].take().expect("member").abort();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !covered(&[&workers[survivors[0]], &workers[survivors[1]]]) {
        assert!(Instant::now() < deadline, "the crashed member's work was not reassigned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failover = killed_at.elapsed();
    for (k, i) in survivors.iter().enumerate() {
        assert!(workers[*i].stopped.lock().expect("lock").is_empty(), "survivor {i} stopped work during failover");
        assert!(workers[*i].running.lock().expect("lock").is_superset(&before[k]));
    }
    eprintln!("failover: every item running again {:.1} s after the crash (session.timeout.ms=6000, scheduled.rebalance.max.delay.ms=2000)", failover.as_secs_f64());

    // 3. A fourth member joins and receives work; only work that moves to it is ever stopped.
    let joined_at = Instant::now();
    members.push(Some(Membership::start(config(&kafka, &group, 3), workers[3].clone())));
    let group_now = [&workers[survivors[0]], &workers[survivors[1]], &workers[3]];
    let deadline = Instant::now() + Duration::from_secs(90);
    while !(covered(&group_now) && tasks(&workers[3].running.lock().expect("lock")) == 2) {
        assert!(Instant::now() < deadline, "the new member got no work");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("join: new member running its share {:.1} s after it started", joined_at.elapsed().as_secs_f64());
    let moved: BTreeSet<Work> = workers[3].running.lock().expect("lock").clone();
    for i in &survivors {
        let stopped: BTreeSet<Work> = workers[*i].stopped.lock().expect("lock").iter().cloned().collect();
        assert!(stopped.is_subset(&moved), "member {i} stopped {stopped:?}, but only {moved:?} moved");
    }

    for m in members.into_iter().flatten() {
        m.leave().await;
    }
}
