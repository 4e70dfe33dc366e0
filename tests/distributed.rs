//! Three `sluice distributed` processes on the real broker: connectors are created through one
//! worker's REST API and run wherever the leader assigns them; kill -9 of the worker running the
//! source task moves it, and nothing is lost (at-least-once: duplicates are counted).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_cluster_runs_connectors_and_survives_kill_9_of_a_worker() {
    let kafka = Services::load().kafka();
    let dir = tempfile::tempdir().expect("tmp");
    let prefix = unique("cluster");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut workers: Vec<Option<Sluice>> = ports
        .iter()
        .map(|p| {
            Some(Sluice::distributed(
                &distributed_properties(dir.path(), &kafka, &prefix, *p),
                *p,
                &dir.path().join(format!("w{p}.log")),
            ))
        })
        .collect();
    // `GET /health` answers 200 once a worker has joined the group (503 "starting" before).
    wait_until(Duration::from_secs(60), "every worker healthy", || {
        ports.iter().all(|p| {
            http(*p, "GET", "/health", None).is_some_and(|(code, body)| code == 200 && body.contains("\"healthy\""))
        })
    });

    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "").expect("input");
    let topic = format!("{prefix}-lines");
    let source = format!(
        r#"{{"name":"src","config":{{"connector.class":"FileStreamSource","file":"{}","topic":"{topic}"}}}}"#,
        input.display()
    );
    let sink = format!(
        r#"{{"name":"sink","config":{{"connector.class":"FileStreamSink","file":"{}","topics":"{topic}"}}}}"#,
        output.display()
    );
    assert_eq!(http(ports[0], "POST", "/connectors", Some(&source)).map(|r| r.0), Some(201));
    assert_eq!(http(ports[0], "POST", "/connectors", Some(&sink)).map(|r| r.0), Some(201));
    // Every worker sees the configs (they come from the config topic).
    wait_until(Duration::from_secs(30), "connectors listed on every worker", || {
        ports.iter().all(|p| http(*p, "GET", "/connectors", None).map(|r| r.1) == Some(r#"["sink","src"]"#.to_string()))
    });

    let total = 3000;
    let feeder_path = input.clone();
    let feeder = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(feeder_path).expect("open input");
        for i in 0..total {
            writeln!(f, "line-{i:05}").expect("append");
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(150));
            }
        }
    });
    wait_until(Duration::from_secs(120), "the pipeline to deliver lines", || read_lines(&output).len() >= 500);

    // Kill -9 the worker running the source task.
    let st = connector_status(ports[0], "src");
    let owner = st["tasks"][0]["worker_id"].as_str().unwrap_or_default().to_string();
    let victim =
        ports.iter().position(|p| owner.ends_with(&format!(":{p}"))).unwrap_or_else(|| panic!("owner of src-0: {st}"));
    let killed_at = Instant::now();
    workers[victim].take().expect("worker").kill9();
    let survivor = ports[(victim + 1) % 3];
    wait_until(Duration::from_secs(90), "the source task to run on another worker", || {
        let s = connector_status(survivor, "src");
        s["tasks"][0]["state"] == "RUNNING" && s["tasks"][0]["worker_id"].as_str().is_some_and(|w| w != owner)
    });
    let failover = killed_at.elapsed();

    feeder.join().expect("feeder");
    wait_until(Duration::from_secs(120), "every line after the failover", || {
        read_lines(&output).iter().collect::<std::collections::HashSet<_>>().len() >= total
    });
    let lines = read_lines(&output);
    let distinct: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), total, "nothing lost");
    eprintln!(
        "distributed kill -9: source task RUNNING elsewhere {:.1} s after the kill; {total} distinct lines, {} duplicates",
        failover.as_secs_f64(),
        lines.len() - total
    );
    for w in workers.iter_mut().flatten() {
        assert_eq!(w.terminate(), Some(0), "graceful stop; log:\n{}", w.log_text());
    }
}
