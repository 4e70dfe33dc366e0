//! The collector's counters, served as Prometheus text on `GET /metrics` of its own listener.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::server::{inflight_bytes, Shared};

/// Upper bounds of the request latency histogram, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Statuses counted on their own; others are counted as `other`.
const STATUSES: [u16; 13] = [200, 204, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503, 0];

/// Counters of one task's HTTP server.
#[derive(Debug)]
pub struct Metrics {
    labels: String,
    by_status: [AtomicU64; STATUSES.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Events acknowledged by Kafka.
    pub accepted: AtomicU64,
    /// Events of requests answered 503 after submission (timeout, partial failure, stop).
    pub failed: AtomicU64,
    /// Request body bytes received (before gzip decoding).
    pub bytes: AtomicU64,
    /// Requests refused for lack of in-flight room (429).
    pub backpressured: AtomicU64,
}

impl Metrics {
    /// Counters labelled with the connector and task.
    pub fn new(connector: &str, task: u32) -> Metrics {
        let connector = connector.replace('\\', "\\\\").replace('"', "\\\"");
        Metrics {
            labels: format!("connector=\"{connector}\",task=\"{task}\""),
            by_status: Default::default(),
            buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            backpressured: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let i = STATUSES.iter().position(|s| *s == status).unwrap_or(STATUSES.len() - 1);
        self.by_status[i].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, shared: &Shared) -> String {
        let l = &self.labels;
        let mut out = String::with_capacity(4096);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP sluice_tracking_requests_total HTTP requests answered, by status.\n# TYPE sluice_tracking_requests_total counter\n");
        for (i, s) in STATUSES.iter().enumerate() {
            let status = if *s == 0 { "other".to_string() } else { s.to_string() };
            let _ =
                writeln!(out, "sluice_tracking_requests_total{{{l},status=\"{status}\"}} {}", get(&self.by_status[i]));
        }
        for (name, help, v) in [
            ("sluice_tracking_events_accepted_total", "Events acknowledged by Kafka and answered 200.", &self.accepted),
            (
                "sluice_tracking_events_failed_total",
                "Events answered 503 after they were submitted (not acknowledged in time, or failed).",
                &self.failed,
            ),
            ("sluice_tracking_request_bytes_total", "Request body bytes received, before gzip decoding.", &self.bytes),
            (
                "sluice_tracking_backpressure_rejections_total",
                "Requests answered 429 because the in-flight bound was reached.",
                &self.backpressured,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {}", get(v));
        }
        let _ = writeln!(
            out,
            "# HELP sluice_tracking_inflight_bytes Bytes of events accepted but not yet acknowledged by Kafka.\n# TYPE sluice_tracking_inflight_bytes gauge\nsluice_tracking_inflight_bytes{{{l}}} {}",
            inflight_bytes(shared)
        );
        let _ = writeln!(
            out,
            "# HELP sluice_tracking_inflight_bytes_max The in-flight bound (http.max.inflight.bytes).\n# TYPE sluice_tracking_inflight_bytes_max gauge\nsluice_tracking_inflight_bytes_max{{{l}}} {}",
            shared.config.max_inflight_bytes
        );
        out.push_str("# HELP sluice_tracking_request_duration_seconds Time from request to answer.\n# TYPE sluice_tracking_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += get(&self.buckets[i]);
            let _ = writeln!(out, "sluice_tracking_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}");
        }
        let count = get(&self.latency_count);
        let _ = writeln!(out, "sluice_tracking_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "sluice_tracking_request_duration_seconds_sum{{{l}}} {}",
            get(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "sluice_tracking_request_duration_seconds_count{{{l}}} {count}");
        out
    }
}
