//! Per-task counters with Kafka Connect's metric names (snake_case), rendered as Prometheus text
//! for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::worker::TaskId;

/// One task's counters. Names follow Kafka Connect's `source-task-metrics`,
/// `sink-task-metrics` and `task-error-metrics` groups.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    /// Records returned by `poll` (source).
    pub source_record_poll_total: AtomicU64,
    /// Records acknowledged by Kafka (source).
    pub source_record_write_total: AtomicU64,
    /// Records polled but not yet acknowledged (source).
    pub source_record_active_count: AtomicU64,
    /// Records read from Kafka (sink).
    pub sink_record_read_total: AtomicU64,
    /// Records handed to `put` successfully (sink).
    pub sink_record_send_total: AtomicU64,
    /// Offset commits that succeeded.
    pub offset_commit_success_total: AtomicU64,
    /// Offset commits that failed.
    pub offset_commit_failure_total: AtomicU64,
    /// Records that failed conversion or delivery (any tolerance).
    pub total_record_errors: AtomicU64,
    /// Records skipped under `errors.tolerance=all`.
    pub total_records_skipped: AtomicU64,
    /// Records written to the dead-letter queue.
    pub deadletterqueue_produce_requests: AtomicU64,
}

impl TaskMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge, never below zero.
    pub fn sub(gauge: &AtomicU64, n: usize) {
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n as u64)));
    }
}

/// The counters of every task this worker runs or ran.
#[derive(Debug, Default)]
pub struct Metrics {
    tasks: Mutex<BTreeMap<TaskId, Arc<TaskMetrics>>>,
}

/// (name, help, type, accessor)
type Metric = (&'static str, &'static str, &'static str, fn(&TaskMetrics) -> &AtomicU64);

const METRICS: [Metric; 10] = [
    ("source_record_poll_total", "Records produced by the source task's poll.", "counter", |m| {
        &m.source_record_poll_total
    }),
    ("source_record_write_total", "Records the source task wrote to Kafka (acknowledged).", "counter", |m| {
        &m.source_record_write_total
    }),
    ("source_record_active_count", "Records polled but not yet acknowledged by Kafka.", "gauge", |m| {
        &m.source_record_active_count
    }),
    ("sink_record_read_total", "Records the sink task read from Kafka.", "counter", |m| &m.sink_record_read_total),
    ("sink_record_send_total", "Records the sink task put successfully.", "counter", |m| &m.sink_record_send_total),
    ("offset_commit_success_total", "Offset commits that succeeded.", "counter", |m| &m.offset_commit_success_total),
    ("offset_commit_failure_total", "Offset commits that failed.", "counter", |m| &m.offset_commit_failure_total),
    ("total_record_errors", "Records that failed conversion or delivery.", "counter", |m| &m.total_record_errors),
    ("total_records_skipped", "Records skipped under errors.tolerance=all.", "counter", |m| &m.total_records_skipped),
    ("deadletterqueue_produce_requests", "Records written to the dead-letter queue.", "counter", |m| {
        &m.deadletterqueue_produce_requests
    }),
];

impl Metrics {
    /// The counters of `id` (kept across restarts of the task on this worker).
    pub fn task(&self, id: &TaskId) -> Arc<TaskMetrics> {
        let Ok(mut tasks) = self.tasks.lock() else { return Arc::default() };
        tasks.entry(id.clone()).or_default().clone()
    }

    /// Forgets the counters of a connector's tasks (connector deleted).
    pub fn remove_connector(&self, connector: &str) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|id, _| id.connector != connector);
        }
    }

    /// Prometheus text exposition of every task's counters, prefixed `sluice_`.
    pub fn render(&self, out: &mut String) {
        let tasks: Vec<(TaskId, Arc<TaskMetrics>)> = match self.tasks.lock() {
            Ok(t) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => return,
        };
        for (name, help, kind, get) in METRICS {
            let _ = writeln!(out, "# HELP sluice_{name} {help}\n# TYPE sluice_{name} {kind}");
            for (id, m) in &tasks {
                let connector = id.connector.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "sluice_{name}{{connector=\"{connector}\",task=\"{}\"}} {}",
                    id.task,
                    get(m).load(Ordering::Relaxed)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_task() {
        let m = Metrics::default();
        let t = m.task(&TaskId { connector: "a\"b".into(), task: 2 });
        TaskMetrics::add(&t.source_record_poll_total, 5);
        TaskMetrics::add(&t.source_record_active_count, 3);
        TaskMetrics::sub(&t.source_record_active_count, 7);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("sluice_source_record_poll_total{connector=\"a\\\"b\",task=\"2\"} 5"), "{out}");
        assert!(out.contains("sluice_source_record_active_count{connector=\"a\\\"b\",task=\"2\"} 0"), "{out}");
        assert!(out.contains("# TYPE sluice_source_record_active_count gauge"));
        m.remove_connector("a\"b");
        let mut out = String::new();
        m.render(&mut out);
        assert!(!out.contains("task=\"2\""));
    }
}
