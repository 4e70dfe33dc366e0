//! The leader's incremental cooperative assignment (Kafka Connect's KIP-415 assignor, simplified):
//! - work keeps running where it runs; only what must move is revoked;
//! - a move takes two rounds: revoke from the overloaded member, then assign once it has stopped;
//! - work of a member that left waits `scheduled.rebalance.max.delay.ms` for it to come back before
//!   it is given to others (members are told to rejoin when the delay ends);
//! - connectors and tasks are balanced separately, by count.

use std::collections::{BTreeMap, BTreeSet};

use super::protocol::Work;

/// A member as the leader sees it at a rebalance.
#[derive(Debug, Clone)]
pub struct MemberState {
    /// Member id.
    pub id: String,
    /// What it runs now (from its join metadata).
    pub owned: BTreeSet<Work>,
}

/// What the leader remembers between rebalances.
#[derive(Debug, Clone, Default)]
pub struct AssignorMemory {
    /// Owner of each piece of work after the last assignment.
    previous: BTreeMap<Work, String>,
    /// Work whose owner left, and when that was noticed (ms).
    lost_since: BTreeMap<Work, u64>,
}

/// One member's part of the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberPlan {
    /// Everything it should run after this round.
    pub assigned: BTreeSet<Work>,
    /// What it must stop now.
    pub revoked: BTreeSet<Work>,
}

/// The result of one rebalance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per member id.
    pub members: BTreeMap<String, MemberPlan>,
    /// When > 0, members rejoin after this many ms (held work becomes assignable).
    pub delay_ms: u64,
}

fn is_connector(w: &Work) -> bool {
    matches!(w, Work::Connector(_))
}

/// Computes the assignment for `members` given all current work.
pub fn assign(
    members: &[MemberState],
    all_work: &BTreeSet<Work>,
    memory: &mut AssignorMemory,
    now_ms: u64,
    max_delay_ms: u64,
) -> Plan {
    let mut plan = Plan::default();
    if members.is_empty() {
        return plan;
    }
    let present: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let mut owner: BTreeMap<Work, String> = BTreeMap::new();
    let mut load: BTreeMap<String, BTreeSet<Work>> = members.iter().map(|m| (m.id.clone(), BTreeSet::new())).collect();
    for m in members {
        let member_plan = plan.members.entry(m.id.clone()).or_default();
        for w in &m.owned {
            // Deleted work, or work claimed twice, is revoked.
            if !all_work.contains(w) || owner.contains_key(w) {
                member_plan.revoked.insert(w.clone());
                continue;
            }
            owner.insert(w.clone(), m.id.clone());
            load.entry(m.id.clone()).or_default().insert(w.clone());
        }
    }

    // Unowned work: new, or lost with a member that left.
    let mut to_assign = Vec::new();
    let mut hold_until = 0u64;
    memory.lost_since.retain(|w, _| all_work.contains(w) && !owner.contains_key(w));
    for w in all_work.iter().filter(|w| !owner.contains_key(*w)) {
        let lost = memory.previous.get(w).is_some_and(|prev| !present.contains(prev.as_str()));
        if lost || memory.lost_since.contains_key(w) {
            let since = *memory.lost_since.entry(w.clone()).or_insert(now_ms);
            if now_ms < since + max_delay_ms {
                hold_until = hold_until.max(since + max_delay_ms);
                continue;
            }
        }
        memory.lost_since.remove(w);
        to_assign.push(w.clone());
    }
    plan.delay_ms = hold_until.saturating_sub(now_ms);

    // Balance connectors and tasks separately. Each member's target is floor or ceil of its share;
    // the ceil slots go to the members that already hold the most, so the fewest items move. Only
    // what exceeds a target is revoked (it is assigned elsewhere in the next round).
    let n = members.len();
    for connectors in [true, false] {
        let kind = |w: &Work| is_connector(w) == connectors;
        let count = |id: &str, load: &BTreeMap<String, BTreeSet<Work>>| {
            load.get(id).map_or(0, |s| s.iter().filter(|w| kind(w)).count())
        };
        let total =
            members.iter().map(|m| count(&m.id, &load)).sum::<usize>() + to_assign.iter().filter(|w| kind(w)).count();
        let (floor, extra) = (total / n, total % n);
        let mut order: Vec<&MemberState> = members.iter().collect();
        order.sort_by_key(|m| (std::cmp::Reverse(count(&m.id, &load)), m.id.clone()));
        for (i, m) in order.into_iter().enumerate() {
            let target = floor + usize::from(i < extra);
            while count(&m.id, &load) > target {
                let Some(victim) = load.get(&m.id).and_then(|s| s.iter().rev().find(|w| kind(w)).cloned()) else {
                    break;
                };
                if let Some(set) = load.get_mut(&m.id) {
                    set.remove(&victim);
                }
                owner.remove(&victim);
                plan.members.entry(m.id.clone()).or_default().revoked.insert(victim);
            }
        }
    }

    // Assign: each item to the member with the least work of its kind (ties: fewest overall, then id).
    for w in to_assign {
        let connectors = is_connector(&w);
        let target = members
            .iter()
            .min_by_key(|m| {
                let set = load.get(&m.id);
                let same = set.map_or(0, |s| s.iter().filter(|x| is_connector(x) == connectors).count());
                (same, set.map_or(0, BTreeSet::len), m.id.clone())
            })
            .map(|m| m.id.clone());
        if let Some(id) = target {
            load.entry(id.clone()).or_default().insert(w.clone());
            owner.insert(w, id);
        }
    }

    for (id, work) in load {
        plan.members.entry(id).or_default().assigned = work;
    }
    memory.previous = owner;
    // Revoked work is remembered as the revoking member's, so it is not treated as lost.
    for (id, p) in &plan.members {
        for w in &p.revoked {
            if all_work.contains(w) {
                memory.previous.entry(w.clone()).or_insert_with(|| id.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector_with_tasks(name: &str, tasks: u32) -> BTreeSet<Work> {
        std::iter::once(Work::Connector(name.into())).chain((0..tasks).map(|t| Work::Task(name.into(), t))).collect()
    }

    fn member(id: &str, owned: &BTreeSet<Work>) -> MemberState {
        MemberState { id: id.into(), owned: owned.clone() }
    }

    fn tasks(p: &MemberPlan) -> usize {
        p.assigned.iter().filter(|w| !is_connector(w)).count()
    }

    #[test]
    fn spreads_six_tasks_over_three_workers() {
        let work = connector_with_tasks("c", 6);
        let mut memory = AssignorMemory::default();
        let empty = BTreeSet::new();
        let plan =
            assign(&[member("a", &empty), member("b", &empty), member("c", &empty)], &work, &mut memory, 0, 5000);
        let counts: Vec<usize> = plan.members.values().map(tasks).collect();
        assert_eq!(counts, vec![2, 2, 2]);
        assert_eq!(plan.members.values().map(|p| p.assigned.len()).sum::<usize>(), 7);
        assert_eq!(plan.delay_ms, 0);
    }

    #[test]
    fn lost_work_waits_for_the_delay_and_others_keep_theirs() {
        let work = connector_with_tasks("c", 6);
        let mut memory = AssignorMemory::default();
        let empty = BTreeSet::new();
        let first =
            assign(&[member("a", &empty), member("b", &empty), member("c", &empty)], &work, &mut memory, 0, 5000);
        let a = first.members["a"].assigned.clone();
        let b = first.members["b"].assigned.clone();
        // c dies: its work is held, a and b are untouched.
        let held = assign(&[member("a", &a), member("b", &b)], &work, &mut memory, 1000, 5000);
        assert_eq!(held.delay_ms, 5000);
        assert_eq!(held.members["a"].assigned, a);
        assert!(held.members["a"].revoked.is_empty() && held.members["b"].revoked.is_empty());
        // After the delay it is spread over the survivors, still without revoking anything.
        let moved = assign(&[member("a", &a), member("b", &b)], &work, &mut memory, 6000, 5000);
        assert_eq!(moved.delay_ms, 0);
        assert!(moved.members["a"].assigned.is_superset(&a) && moved.members["b"].assigned.is_superset(&b));
        assert_eq!(moved.members.values().map(|p| p.assigned.len()).sum::<usize>(), 7);
        assert_eq!(moved.members.values().map(tasks).collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn a_returning_member_gets_its_work_back_within_the_delay() {
        let work = connector_with_tasks("c", 2);
        let mut memory = AssignorMemory::default();
        let empty = BTreeSet::new();
        let first = assign(&[member("a", &empty), member("b", &empty)], &work, &mut memory, 0, 5000);
        let a = first.members["a"].assigned.clone();
        let held = assign(&[member("a", &a)], &work, &mut memory, 100, 5000);
        assert!(held.delay_ms > 0);
        // "b" comes back (new member id, nothing owned) before the delay: held work goes to it.
        let back = assign(&[member("a", &a), member("b2", &empty)], &work, &mut memory, 4000, 5000);
        assert!(back.delay_ms > 0, "still held until the delay ends");
        let after = assign(&[member("a", &a), member("b2", &empty)], &work, &mut memory, 5200, 5000);
        assert_eq!(after.members["a"].assigned, a, "a keeps its work");
        assert_eq!(after.members["b2"].assigned.len(), 3 - a.len());
    }

    #[test]
    fn a_new_member_takes_its_share_in_two_rounds_without_stopping_the_rest() {
        let work = connector_with_tasks("c", 6);
        let mut memory = AssignorMemory::default();
        let empty = BTreeSet::new();
        let first = assign(&[member("a", &empty), member("b", &empty)], &work, &mut memory, 0, 5000);
        let (a, b) = (first.members["a"].assigned.clone(), first.members["b"].assigned.clone());
        let round1 = assign(&[member("a", &a), member("b", &b), member("d", &empty)], &work, &mut memory, 10, 5000);
        let revoked: BTreeSet<Work> = round1.members.values().flat_map(|p| p.revoked.clone()).collect();
        assert_eq!(revoked.iter().filter(|w| !is_connector(w)).count(), 2, "two tasks move: {revoked:?}");
        assert!(round1.members["d"].assigned.is_empty(), "nothing is assigned before it was stopped elsewhere");
        let a2 = round1.members["a"].assigned.clone();
        let b2 = round1.members["b"].assigned.clone();
        assert!(a.is_superset(&a2) && b.is_superset(&b2), "what stays never stopped");
        let round2 = assign(&[member("a", &a2), member("b", &b2), member("d", &empty)], &work, &mut memory, 20, 5000);
        assert_eq!(round2.members.values().map(tasks).collect::<Vec<_>>(), vec![2, 2, 2]);
        assert!(round2.members.values().all(|p| p.revoked.is_empty()));
        assert_eq!(round2.delay_ms, 0, "revoked work is not mistaken for lost work");
    }

    #[test]
    fn deleted_work_is_revoked() {
        let mut memory = AssignorMemory::default();
        let owned = connector_with_tasks("gone", 1);
        let plan = assign(&[member("a", &owned)], &BTreeSet::new(), &mut memory, 0, 5000);
        assert_eq!(plan.members["a"].revoked, owned);
        assert!(plan.members["a"].assigned.is_empty());
    }
}
