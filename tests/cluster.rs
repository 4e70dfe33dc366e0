//! A cluster of `sluice distributed` processes running the verifiable source (6 tasks) on the real
//! broker: spread, kill -9 failover, a joining worker that takes its share without stopping the
//! rest, a rolling restart, a whole-cluster restart from Kafka alone, and leader death. Loss is
//! checked per task: every seqno up to the highest one must be in the topic.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::producer::Producer;

const TASKS: usize = 6;

fn verifiable(name: &str, topic: &str, tasks: usize, throughput: u32) -> String {
    format!(
        r#"{{"name":"{name}","config":{{"connector.class":"VerifiableSource","tasks.max":"{tasks}","topic":"{topic}","throughput":"{throughput}"}}}}"#
    )
}

fn start_worker(dir: &Path, kafka: &str, group: &str, port: u16) -> Sluice {
    Sluice::distributed(&distributed_properties(dir, kafka, group, port), port, &dir.join(format!("w{port}.log")))
}

fn wait_running(port: u16, connector: &str, n: usize, what: &str) -> HashMap<u64, String> {
    let mut out = None;
    wait_until(Duration::from_secs(120), what, || {
        out = running_tasks(port, connector, n);
        out.is_some()
    });
    out.unwrap_or_default()
}

/// How many times each task of `connector` was started, from the workers' logs.
fn task_starts(dir: &Path, connector: &str) -> HashMap<u32, usize> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
                if !line.contains("source task started") {
                    continue;
                }
                for t in 0..TASKS as u32 {
                    if line.contains(&format!("task={connector}-{t} "))
                        || line.ends_with(&format!("task={connector}-{t}"))
                    {
                        *out.entry(t).or_insert(0) += 1;
                    }
                }
            }
        }
    }
    out
}

fn port_of(worker_id: &str) -> u16 {
    worker_id.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn assert_nothing_lost(kafka: &str, topic: &str) -> (usize, usize) {
    let seqnos = read_seqnos(kafka, topic, Duration::from_secs(4));
    let checked = check_seqnos(&seqnos);
    assert_eq!(checked.len(), TASKS, "records from every task: {checked:?}");
    for (task, (_, _, gap)) in &checked {
        assert_eq!(*gap, None, "task {task} lost seqno {gap:?}");
    }
    (checked.values().map(|c| c.0).sum(), checked.values().map(|c| c.1).sum())
}

#[test]
fn six_tasks_spread_fail_over_rebalance_and_roll() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let group = unique("six");
    let topic = format!("{group}-seq");
    let mut ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut workers: HashMap<u16, Sluice> =
        ports.iter().map(|p| (*p, start_worker(dir.path(), &kafka, &group, *p))).collect();
    let created = http(ports[0], "POST", "/connectors", Some(&verifiable("verif", &topic, TASKS, 300)));
    assert_eq!(created.map(|r| r.0), Some(201));

    // 2/2/2.
    let mut spread = HashMap::new();
    wait_until(Duration::from_secs(120), "6 tasks spread 2/2/2", || {
        let Some(tasks) = running_tasks(ports[1], "verif", TASKS) else { return false };
        spread = HashMap::new();
        for w in tasks.values() {
            *spread.entry(w.clone()).or_insert(0) += 1;
        }
        spread.len() == 3 && spread.values().all(|n| *n == 2)
    });

    // kill -9 the worker holding the most tasks (all hold 2: the first one).
    let victim = port_of(spread.keys().next().expect("a worker"));
    let killed_at = Instant::now();
    workers.remove(&victim).expect("victim").kill9();
    ports.retain(|p| *p != victim);
    wait_until(Duration::from_secs(120), "every task RUNNING on the survivors", || {
        running_tasks(ports[0], "verif", TASKS).is_some_and(|t| t.values().all(|w| port_of(w) != victim))
    });
    let failover = killed_at.elapsed();

    // A new worker joins: it takes a share; tasks that stay where they were never stop.
    let before = wait_running(ports[0], "verif", TASKS, "steady state before the join");
    let starts_before = task_starts(dir.path(), "verif");
    let joiner = free_port();
    let join_started = Instant::now();
    workers.insert(joiner, start_worker(dir.path(), &kafka, &group, joiner));
    ports.push(joiner);
    let mut after = HashMap::new();
    wait_until(Duration::from_secs(120), "the new worker to run tasks", || {
        after = running_tasks(ports[0], "verif", TASKS).unwrap_or_default();
        after.values().any(|w| port_of(w) == joiner)
    });
    let join_rebalance = join_started.elapsed();
    let starts_after = task_starts(dir.path(), "verif");
    let mut unmoved = 0;
    for (task, worker) in &before {
        if after.get(task) == Some(worker) {
            unmoved += 1;
            let t = *task as u32;
            assert_eq!(starts_before.get(&t), starts_after.get(&t), "task {t} did not move but was restarted");
        }
    }
    assert!(unmoved > 0, "some tasks stay put: before {before:?} after {after:?}");

    // Rolling restart: SIGTERM and restart each worker in turn while the source runs.
    for port in ports.clone() {
        let mut w = workers.remove(&port).expect("worker");
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
        wait_running(ports.iter().copied().find(|p| *p != port).unwrap_or(port), "verif", TASKS, "tasks moved off");
        workers.insert(port, start_worker(dir.path(), &kafka, &group, port));
        wait_running(port, "verif", TASKS, "tasks RUNNING after a worker's restart");
    }
    let final_status = connector_status(ports[0], "verif");
    assert_eq!(final_status["connector"]["state"], "RUNNING", "{final_status}");

    // Stop the connector (tasks flush their offsets), then count.
    assert_eq!(http(ports[0], "PUT", "/connectors/verif/stop", None).map(|r| r.0), Some(204));
    wait_until(Duration::from_secs(60), "the connector STOPPED with no tasks", || {
        let s = connector_status(ports[0], "verif");
        s["connector"]["state"] == "STOPPED" && s["tasks"].as_array().is_some_and(|t| t.is_empty())
    });
    // The reader waits until no record arrived for 4 s, so the stopped tasks' last records are in.
    let (distinct, duplicates) = assert_nothing_lost(&kafka, &topic);
    eprintln!(
        "cluster: kill -9 → all {TASKS} tasks RUNNING elsewhere in {:.1} s; join → new worker running tasks in {:.1} s \
         ({unmoved} tasks unmoved, never restarted); rolling restart done; {distinct} distinct records, {duplicates} duplicates",
        failover.as_secs_f64(),
        join_rebalance.as_secs_f64()
    );
    for w in workers.values_mut() {
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
    }
}

#[test]
fn the_cluster_restarts_from_kafka_alone_and_survives_leader_death() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let group = unique("restart");
    let topic = format!("{group}-seq");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut workers: Vec<Sluice> = ports.iter().map(|p| start_worker(dir.path(), &kafka, &group, *p)).collect();
    assert_eq!(
        http(ports[0], "POST", "/connectors", Some(&verifiable("main", &topic, TASKS, 300))).map(|r| r.0),
        Some(201)
    );
    let paused_topic = format!("{group}-paused");
    assert_eq!(
        http(ports[1], "POST", "/connectors", Some(&verifiable("idle", &paused_topic, 1, 10))).map(|r| r.0),
        Some(201)
    );
    wait_running(ports[2], "main", TASKS, "main RUNNING");
    assert_eq!(http(ports[2], "PUT", "/connectors/idle/pause", None).map(|r| r.0), Some(202));
    wait_until(Duration::from_secs(60), "idle PAUSED", || {
        let s = connector_status(ports[0], "idle");
        s["connector"]["state"] == "PAUSED" && s["tasks"][0]["state"] == "PAUSED"
    });

    // Whole cluster down, then up again with nothing but the Kafka topics.
    for w in &mut workers {
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
    }
    let offsets_before: serde_json::Value = {
        let restarted = start_worker(dir.path(), &kafka, &group, ports[0]);
        workers = vec![restarted];
        let (code, body) = http(ports[0], "GET", "/connectors/main/offsets", None).expect("offsets");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("offsets json")
    };
    assert_eq!(offsets_before["offsets"].as_array().map(Vec::len), Some(TASKS), "{offsets_before}");
    for p in &ports[1..] {
        workers.push(start_worker(dir.path(), &kafka, &group, *p));
    }
    assert_eq!(http(ports[1], "GET", "/connectors", None).map(|r| r.1), Some(r#"["idle","main"]"#.to_string()));
    wait_running(ports[1], "main", TASKS, "main RUNNING after the cluster restart");
    wait_until(Duration::from_secs(60), "idle still PAUSED after the cluster restart", || {
        let s = connector_status(ports[1], "idle");
        s["connector"]["state"] == "PAUSED" && s["tasks"][0]["state"] == "PAUSED"
    });

    // Leader death: a new leader is elected and config writes work again.
    let cluster = |p: u16| -> serde_json::Value {
        http(p, "GET", "/admin/cluster", None).and_then(|(_, b)| serde_json::from_str(&b).ok()).unwrap_or_default()
    };
    let leader = ports.iter().position(|p| cluster(*p)["is_leader"] == true).expect("a leader");
    let generation = cluster(ports[leader])["generation"].as_i64().unwrap_or(-1);
    workers[leader].kill9();
    let survivor = ports[(leader + 1) % 3];
    let killed_at = Instant::now();
    wait_until(Duration::from_secs(90), "a new leader", || {
        ports.iter().enumerate().any(|(i, p)| {
            let c = cluster(*p);
            i != leader && c["is_leader"] == true && c["generation"].as_i64().unwrap_or(-1) > generation
        })
    });
    let elected = killed_at.elapsed();
    let third = format!("{group}-third");
    assert_eq!(
        http(survivor, "POST", "/connectors", Some(&verifiable("third", &third, 1, 50))).map(|r| r.0),
        Some(201)
    );
    wait_until(Duration::from_secs(90), "the new connector RUNNING", || running_tasks(survivor, "third", 1).is_some());
    assert_eq!(http(survivor, "PUT", "/connectors/idle/resume", None).map(|r| r.0), Some(202));
    wait_until(Duration::from_secs(60), "idle RUNNING after resume", || running_tasks(survivor, "idle", 1).is_some());
    wait_running(survivor, "main", TASKS, "main RUNNING after the leader's death");

    assert_eq!(http(survivor, "PUT", "/connectors/main/stop", None).map(|r| r.0), Some(204));
    wait_until(Duration::from_secs(60), "main STOPPED", || {
        connector_status(survivor, "main")["connector"]["state"] == "STOPPED"
    });
    // The reader waits until no record arrived for 4 s, so the stopped tasks' last records are in.
    let (distinct, duplicates) = assert_nothing_lost(&kafka, &topic);
    eprintln!(
        "cluster restart: configs, PAUSED state and {TASKS} offsets back from Kafka; leader killed → new leader in {:.1} s; \
         {distinct} distinct records, {duplicates} duplicates",
        elected.as_secs_f64()
    );
    for (i, w) in workers.iter_mut().enumerate() {
        if i != leader {
            assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
        }
    }
}

/// Exactly-once sources (`exactly.once.source.support=enabled`): kill -9 a worker while its tasks
/// have transactions open, let the survivor fence them and take over, stop the connector, and read
/// the topic as a read_committed consumer: every task's seqnos are exactly 0..=max, once each.
#[test]
fn exactly_once_sources_lose_and_duplicate_nothing_across_kill_9() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let group = unique("eos");
    let topic = format!("{group}-seq");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let start = |port: u16| {
        let props = distributed_properties(dir.path(), &kafka, &group, port);
        let mut text = std::fs::read_to_string(&props).expect("props");
        text.push_str("exactly.once.source.support=enabled\n");
        std::fs::write(&props, text).expect("props");
        Sluice::distributed(&props, port, &dir.path().join(format!("w{port}.log")))
    };
    let mut workers: HashMap<u16, Sluice> = ports.iter().map(|p| (*p, start(*p))).collect();
    // Long transactions (2 s), so the kill lands inside one.
    let config = format!(
        r#"{{"name":"eos","config":{{"connector.class":"VerifiableSource","tasks.max":"3","topic":"{topic}","throughput":"400","exactly.once.support":"required","transaction.boundary":"interval","transaction.boundary.interval.ms":"2000"}}}}"#
    );
    assert_eq!(http(ports[0], "POST", "/connectors", Some(&config)).map(|r| r.0), Some(201));
    let placed = wait_running(ports[1], "eos", 3, "3 exactly-once tasks RUNNING");
    // Let some transactions commit first.
    wait_until(Duration::from_secs(60), "committed records from every task", || {
        read_committed_seqnos(&kafka, &topic).len() == 3
    });
    std::thread::sleep(Duration::from_millis(700));
    let mut per_worker: HashMap<u16, usize> = HashMap::new();
    for w in placed.values() {
        *per_worker.entry(port_of(w)).or_insert(0) += 1;
    }
    let victim = per_worker.iter().max_by_key(|(_, n)| **n).map(|(p, _)| *p).expect("a worker");
    let survivor = *ports.iter().find(|p| **p != victim).expect("survivor");
    let committed_total = || -> usize { read_committed_seqnos(&kafka, &topic).values().map(Vec::len).sum() };
    let before_kill = committed_total();
    workers.remove(&victim).expect("victim").kill9();
    wait_until(Duration::from_secs(120), "every task RUNNING on the survivor", || {
        running_tasks(survivor, "eos", 3).is_some_and(|t| t.values().all(|w| port_of(w) == survivor))
    });
    // The moved tasks commit after the failover (every task: its seqnos continue).
    let after_failover = wait_for_more(before_kill, &committed_total, "commits after the failover");

    // A zombie of task 2 holds an open transaction (it fences the live task 2, which fails at its
    // next commit); shrinking the connector to 2 tasks fences task 2's producer, so the zombie
    // can no longer commit.
    let zombie = zombie_producer(&kafka, &format!("{group}-eos-2"));
    zombie.begin_transaction().expect("begin");
    zombie.send(rdkafka::producer::BaseRecord::<str, str>::to(&topic).key("zombie").payload("0")).expect("send");
    zombie.flush(Duration::from_secs(10)).expect("flush");
    let two_tasks = format!(
        r#"{{"connector.class":"VerifiableSource","tasks.max":"2","topic":"{topic}","throughput":"400","exactly.once.support":"required","transaction.boundary":"interval","transaction.boundary.interval.ms":"2000"}}"#
    );
    assert_eq!(http(survivor, "PUT", "/connectors/eos/config", Some(&two_tasks)).map(|r| r.0), Some(200));
    wait_running(survivor, "eos", 2, "2 tasks RUNNING after the shrink");
    assert!(
        zombie.commit_transaction(Duration::from_secs(30)).is_err(),
        "the removed task's producer was fenced: its zombie cannot commit"
    );
    let fenced_by_shrink = workers.values().map(|w| w.log_text()).any(|log| {
        log.lines()
            .any(|l| l.contains("fenced the producer of a removed task") && l.contains(&format!("{group}-eos-2")))
    });
    assert!(fenced_by_shrink, "a worker logged fencing task 2");
    wait_for_more(after_failover, &committed_total, "commits after the shrink");
    assert_eq!(http(survivor, "PUT", "/connectors/eos/stop", None).map(|r| r.0), Some(204));
    wait_until(Duration::from_secs(60), "the connector STOPPED with no tasks", || {
        let s = connector_status(survivor, "eos");
        s["connector"]["state"] == "STOPPED" && s["tasks"].as_array().is_some_and(|t| t.is_empty())
    });

    let zombie_visible = committed_values(&kafka, &topic).iter().any(|(k, _)| k == "zombie");
    assert!(!zombie_visible, "the zombie's record is not committed");
    let committed = read_committed_seqnos(&kafka, &topic);
    let checked = check_seqnos(&committed);
    assert_eq!(checked.len(), 3, "records from every task: {checked:?}");
    for (task, (distinct, duplicates, gap)) in &checked {
        assert_eq!(*gap, None, "task {task} lost seqno {gap:?}");
        assert_eq!(*duplicates, 0, "task {task}: {duplicates} duplicates among {distinct} records");
    }
    // What a consumer that ignores transactions would see: the killed tasks' aborted records too.
    let everything: usize = read_seqnos(&kafka, &topic, Duration::from_secs(3)).values().map(Vec::len).sum();
    let distinct: usize = checked.values().map(|c| c.0).sum();
    eprintln!(
        "exactly-once: {distinct} committed records, 0 duplicates, no gaps; {} records of aborted transactions in the log",
        everything.saturating_sub(distinct)
    );
    for w in workers.values_mut() {
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
    }
}

/// Waits until `count()` exceeds `than`; returns the new count.
fn wait_for_more(than: usize, count: &dyn Fn() -> usize, what: &str) -> usize {
    let mut now = than;
    wait_until(Duration::from_secs(60), what, || {
        now = count();
        now > than
    });
    now
}

fn zombie_producer(kafka: &str, transactional_id: &str) -> rdkafka::producer::BaseProducer {
    use rdkafka::producer::Producer;
    let p: rdkafka::producer::BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("transactional.id", transactional_id)
        .create()
        .expect("producer");
    p.init_transactions(Duration::from_secs(30)).expect("init_transactions");
    p
}

/// Connector changes that reach a follower are forwarded to the leader (Kafka Connect's request
/// forwarding): concurrent creates of one name spread over both workers give exactly one 201, and
/// the follower's answers are the leader's.
#[test]
fn connector_changes_on_a_follower_are_forwarded_to_the_leader() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let group = unique("fwd");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut workers: HashMap<u16, Sluice> =
        ports.iter().map(|p| (*p, start_worker(dir.path(), &kafka, &group, *p))).collect();
    let (leader, follower) = leader_and_follower(&ports);
    let (leader, follower) = (ports[leader], ports[follower]);

    let topic = format!("{group}-seq");
    let body = verifiable("dup", &topic, 1, 10);
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let port = if i % 2 == 0 { follower } else { leader };
                let body = body.clone();
                s.spawn(move || http(port, "POST", "/connectors", Some(&body)).map_or(0, |r| r.0))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    assert_eq!(answers.iter().filter(|c| **c == 201).count(), 1, "one create wins: {answers:?}");
    assert_eq!(answers.iter().filter(|c| **c == 409).count(), 7, "the others conflict: {answers:?}");
    assert!(
        workers[&follower].log_text().contains("forwarding a connector change to the leader"),
        "the follower forwarded"
    );

    // Kafka Connect's hop rule: a request already forwarded twice (forward=false) that reaches a
    // follower is refused with its 409.
    let (code, text) = http(follower, "PUT", "/connectors/dup/pause?forward=false", None).expect("pause");
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("Cannot complete request because of a conflicting operation"), "{text}");

    // Other changes through the follower: the answers are the leader's.
    let (code, text) = http(follower, "PUT", "/connectors/dup/pause", None).expect("pause");
    assert_eq!(code, 202, "{text}");
    let (code, text) = http(follower, "POST", "/connectors/nope/restart", None).expect("restart");
    assert_eq!(code, 404, "{text}");
    assert!(text.contains("Connector nope not found"), "{text}");
    let (code, _) = http(follower, "DELETE", "/connectors/dup", None).expect("delete");
    assert_eq!(code, 204);
    wait_until(Duration::from_secs(30), "the delete seen by the leader", || {
        http(leader, "GET", "/connectors/dup", None).is_some_and(|r| r.0 == 404)
    });
    // A follower that stops leaves the group (LeaveGroup); the leader does not (see membership.rs).
    let mut follower_worker = workers.remove(&follower).expect("follower");
    assert_eq!(follower_worker.terminate(), Some(0), "graceful stop; log:\n{}", follower_worker.log_text());
    assert!(follower_worker.log_text().contains("left the group"), "LeaveGroup:\n{}", follower_worker.log_text());
    for w in workers.values_mut() {
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
    }
}
