//! `sluice-bench tracking`: the HTTP collector under `wrk` (Debian's HTTP load generator) with
//! batches of 1, 20 and 100 Segment events at several concurrencies, an open-loop phase at a fixed
//! event rate for latency below saturation, and raw rdkafka produce of records of the same size on
//! the same broker, in the same run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{consumer, create_topic, percentile, raw_produce, unique, SluiceProc};

/// The wrk script: 64 distinct bodies per thread (users vary), every request a batch of `args[1]`.
const WRK_SCRIPT: &str = r#"
local bodies = {}
local n = 0
init = function(args)
  local batch = tonumber(args[1])
  local seed = math.random(1, 100000)
  for b = 1, 64 do
    local events = {}
    for i = 1, batch do
      local uid = "user-" .. ((seed + b * 7919 + i * 31) % 5000)
      events[i] = string.format('{"type":"track","userId":"%s","event":"Product Viewed","properties":{"sku":"SKU-%d","price":%d.99,"category":"shoes","currency":"EUR","list":"search results"},"context":{"page":{"path":"/products/%d","url":"https://shop.example/products/%d","referrer":"https://www.google.com/"},"locale":"de-DE","library":{"name":"analytics.js","version":"4.1.0"}},"timestamp":"2026-11-22T10:00:00.000Z"}', uid, i, i, i, i)
    end
    bodies[b] = '{"batch":[' .. table.concat(events, ",") .. '],"sentAt":"2026-11-22T10:00:00.100Z"}'
  end
end
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/batch", {["Content-Type"] = "application/json"}, bodies[(n % 64) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d non2xx=%d errors=%d duration_us=%d p50=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#;

/// One event as the wrk script sends it (for the open-loop phase).
fn event(user: usize, i: usize) -> String {
    format!(
        r#"{{"type":"track","userId":"user-{user}","event":"Product Viewed","properties":{{"sku":"SKU-{i}","price":{i}.99,"category":"shoes","currency":"EUR","list":"search results"}},"context":{{"page":{{"path":"/products/{i}","url":"https://shop.example/products/{i}","referrer":"https://www.google.com/"}},"locale":"de-DE","library":{{"name":"analytics.js","version":"4.1.0"}}}},"timestamp":"2026-11-22T10:00:00.000Z"}}"#
    )
}

struct WrkResult {
    requests: u64,
    non2xx: u64,
    errors: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

fn run_wrk(script: &Path, port: u16, conns: usize, seconds: u64, batch: usize) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{conns}"), &format!("-d{seconds}s"), "--timeout", "10s", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--", &batch.to_string()])
        .output()
        .context("wrk (Debian package `wrk`; scripts/services.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find(|l| l.starts_with("RESULT ")).ok_or_else(|| anyhow!("wrk printed no result: {text}"))?;
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(WrkResult {
        requests: field("requests") as u64,
        non2xx: field("non2xx") as u64,
        errors: field("errors") as u64,
        seconds: field("duration_us") / 1e6,
        p50_ms: field("p50") / 1e3,
        p99_ms: field("p99") / 1e3,
        p999_ms: field("p999") / 1e3,
    })
}

/// Sends `rate` events/s in batches of `batch` over `conns` keep-alive connections for `seconds`,
/// each request at its scheduled time (open loop); returns latencies in ms and the non-200 count.
async fn open_loop(port: u16, rate: usize, batch: usize, conns: usize, seconds: u64) -> Result<(Vec<f64>, usize)> {
    let per_conn_rps = (rate as f64 / batch as f64) / conns as f64;
    let interval = Duration::from_secs_f64(1.0 / per_conn_rps);
    let total_per_conn = (per_conn_rps * seconds as f64) as usize;
    let mut tasks = Vec::new();
    for c in 0..conns {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            let mut stream = BufReader::new(stream);
            let mut lat = Vec::with_capacity(total_per_conn);
            let mut bad = 0;
            let start = tokio::time::Instant::now();
            for r in 0..total_per_conn {
                let events: Vec<String> = (0..batch).map(|i| event((c * 131 + r * 7 + i) % 5000, i)).collect();
                let body = format!("{{\"batch\":[{}]}}", events.join(","));
                let due = start + interval * r as u32;
                tokio::time::sleep_until(due).await;
                let head = format!(
                    "POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.get_mut().write_all(head.as_bytes()).await?;
                stream.get_mut().write_all(body.as_bytes()).await?;
                let mut status_line = String::new();
                stream.read_line(&mut status_line).await?;
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    stream.read_line(&mut h).await?;
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut buf = vec![0; length];
                stream.read_exact(&mut buf).await?;
                // Latency from the scheduled send time: a late send counts against us.
                lat.push(due.elapsed().as_secs_f64() * 1e3);
                if !status_line.contains(" 200 ") {
                    bad += 1;
                }
            }
            anyhow::Ok((lat, bad))
        }));
    }
    let mut all = Vec::new();
    let mut bad = 0;
    for t in tasks {
        let (lat, b) = t.await??;
        all.extend(lat);
        bad += b;
    }
    all.sort_by(f64::total_cmp);
    Ok((all, bad))
}

/// Size of a record as the collector writes it: the first record of `topic`.
async fn sample_record_size(bootstrap: &str, topic: &str) -> Result<usize> {
    let c = consumer(bootstrap, topic)?;
    let m = tokio::time::timeout(Duration::from_secs(30), c.stream().next())
        .await?
        .ok_or_else(|| anyhow!("no record"))??;
    use rdkafka::Message;
    Ok(m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len))
}

/// Runs the benchmark.
pub async fn bench(bootstrap: &str, dir: &Path, seconds: u64, rate: usize) -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed: `apt-get install wrk` (scripts/services.sh installs it)");
    }
    let topic = unique("bench-tracking");
    create_topic(bootstrap, &topic).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let proc = SluiceProc::start_with(
        dir,
        bootstrap,
        "key.converter=string\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter.schemas.enable=false\n",
        &[(
            "tracking",
            format!(
                "name=bench-tracking\nconnector.class=http-tracking\nhttp.listener=127.0.0.1:{port}\ntopic={topic}\n\
                 http.cors.allowed.origins=\n"
            ),
        )],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the collector did not start; see {}/sluice.log", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let script = dir.join("batch.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    println!(
        "sluice-bench tracking: Segment track events (~460 bytes each) to /v1/batch, wrk -t2, {seconds} s per cell, broker {bootstrap} (single partition)\n"
    );
    // Warm-up (topic metadata, connections, allocator), not reported.
    run_wrk(&script, port, 16, 2, 20)?;
    println!(
        "{:>6} {:>6} {:>12} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "batch", "conns", "events/s", "req/s", "p50 ms", "p99 ms", "p999 ms", "non-2xx"
    );
    let mut total_events = 0u64;
    for (batch, conns_list) in [(1usize, [8usize, 32, 128]), (20, [4, 16, 64]), (100, [2, 8, 32])] {
        for conns in conns_list {
            let r = run_wrk(&script, port, conns, seconds, batch)?;
            let ok = r.requests - r.non2xx.min(r.requests);
            total_events += ok * batch as u64;
            println!(
                "{batch:>6} {conns:>6} {:>12.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>8}{}",
                ok as f64 * batch as f64 / r.seconds,
                r.requests as f64 / r.seconds,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.non2xx,
                if r.errors > 0 { format!(" ({} socket errors)", r.errors) } else { String::new() }
            );
        }
    }
    let (lat, bad) = open_loop(port, rate, 20, 64, seconds).await?;
    println!(
        "\nopen loop, {rate} events/s in batches of 20 over 64 connections: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms, {} requests, {bad} not 200",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len()
    );
    let rss = proc.peak_rss_mib();
    proc.stop()?;
    println!("sluice peak RSS {rss:.1} MiB (http.max.inflight.bytes 64 MiB, task.buffer.max.bytes default)");
    let size = sample_record_size(bootstrap, &topic).await?;
    println!("{total_events} events acknowledged in the wrk phases; one record is {size} bytes (key + JSON value)");
    let raw_topic = unique("bench-tracking-raw");
    create_topic(bootstrap, &raw_topic).await?;
    let raw = raw_produce(bootstrap, &raw_topic, 300_000, size).await?;
    println!("raw rdkafka produce (idempotent, acks=all), same record size: {raw}");
    Ok(())
}
