//! `sluice`: the command line. Wiring only: the runtime, connectors and REST API live in their crates.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use sluice_api::ConfigMap;
use sluice_runtime::config::{parse_properties, WorkerConfig};
use sluice_runtime::herder::{Herder, StandaloneHerder};
use sluice_runtime::storage::{FileOffsetStore, MemoryOffsetStore, MemoryStatusStore, OffsetStore};
use sluice_runtime::worker::Worker;

mod logging;

const USAGE: &str = "\
sluice — a Kafka Connect-compatible connector and CDC platform

USAGE:
    sluice standalone <worker.properties> [<connector.properties|connector.json>...]
    sluice distributed <worker.properties>
    sluice --version

Worker and connector keys are Kafka Connect's (see README.md). Logs go to stderr; set RUST_LOG to
change the level (default: info).";

/// mimalloc: faster than glibc malloc for the many small, short-lived allocations of records and
/// less fragmentation under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process (what `MIMALLOC_ALLOW_THP=0` does; setting that
/// variable to 1 keeps them). A sink's batches are allocated and freed over and over, and with
/// huge pages each fresh 2 MiB page is zeroed on first touch: measured in the Delta benchmark,
/// the kernel's page clearing took 17 % of the sink's CPU, and peak RSS was 355 MiB against
/// 217 MiB without (BENCHMARKS.md, Parquet and Delta Lake sinks).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var("MIMALLOC_ALLOW_THP").map_or(true, |v| v.trim() == "0") {
        if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
            eprintln!("warning: could not turn transparent huge pages off: {e}");
        }
    }
}

fn main() {
    disable_transparent_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("--version" | "-V" | "version") => {
            println!("sluice {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("--help" | "-h" | "help") | None => {
            println!("{USAGE}");
            if args.is_empty() {
                2
            } else {
                0
            }
        }
        Some("standalone") if args.len() >= 2 => run(|levels| standalone(args[1].clone(), args[2..].to_vec(), levels)),
        Some("distributed") if args.len() == 2 => run(|levels| distributed(args[1].clone(), levels)),
        Some(other) => {
            eprintln!("error: unexpected arguments starting at '{other}'\n\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

fn run<F: std::future::Future<Output = Result<()>>>(fut: impl FnOnce(Arc<logging::Levels>) -> F) -> i32 {
    let levels = Arc::new(logging::init());
    let fut = fut(levels);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Reads a `.properties` or `.json` file into a config map. JSON may be `{"name":..,"config":{..}}`
/// or a flat map.
fn read_config_file(path: &str) -> Result<ConfigMap> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    if Path::new(path).extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{path} is not valid JSON"))?;
        let (name, config) = match doc.get("config") {
            Some(c) => (doc.get("name").and_then(|n| n.as_str()).map(String::from), c.clone()),
            None => (None, doc),
        };
        let obj = config.as_object().ok_or_else(|| anyhow!("{path}: \"config\" must be an object"))?;
        let mut map = ConfigMap::new();
        for (k, v) in obj {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
                other => bail!("{path}: value of {k} must be a string, not {other}"),
            };
            map.insert(k.clone(), v);
        }
        if let Some(n) = name {
            map.entry("name".into()).or_insert(n);
        }
        Ok(map)
    } else {
        parse_properties(&text).map_err(|e| anyhow!("{path}: {e}"))
    }
}

fn listener_addr(listener: &str) -> Result<SocketAddr> {
    let lower = listener.to_ascii_lowercase();
    let hostport = ["http://", "https://"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| &listener[p.len()..])
        .ok_or_else(|| anyhow!("listener {listener} must start with http:// or https://"))?;
    let hostport = if hostport.starts_with(':') { format!("0.0.0.0{hostport}") } else { hostport.to_string() };
    hostport
        .to_socket_addrs()
        .with_context(|| format!("listener {listener}: bad host or port"))?
        .next()
        .ok_or_else(|| anyhow!("listener {listener}: host does not resolve"))
}

/// The REST listeners, bound (so port 0 works and the worker id carries the real port).
struct Listeners {
    bound: Vec<(tokio::net::TcpListener, bool, String)>,
    /// The bound port of the advertised listener.
    advertised_port: u16,
}

impl Listeners {
    async fn bind(config: &WorkerConfig) -> Result<Listeners> {
        let mut listeners = config.listeners();
        if listeners.is_empty() {
            listeners.push("http://0.0.0.0:8083".into());
        }
        let advertised = config.advertised_listener();
        let mut bound = Vec::new();
        let mut advertised_port = None;
        for listener in listeners {
            let addr = listener_addr(&listener)?;
            let tcp =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {listener}"))?;
            let port = tcp.local_addr()?.port();
            if listener == advertised && advertised_port.is_none() {
                advertised_port = Some(port);
            }
            let https = listener.to_ascii_lowercase().starts_with("https://");
            bound.push((tcp, https, listener));
        }
        let advertised_port =
            advertised_port.or_else(|| bound.first().and_then(|b| b.0.local_addr().ok()).map(|a| a.port()));
        Ok(Listeners { bound, advertised_port: advertised_port.unwrap_or(8083) })
    }

    /// Serves the API on every listener until `shutdown` is cancelled.
    fn serve(
        self,
        herder: sluice_rest::SharedHerder,
        options: sluice_rest::RestOptions,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut servers = Vec::new();
        for (tcp, https, listener) in self.bound {
            let bound = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(listener, %bound, "REST API listening");
            let (herder, options, stop) = (herder.clone(), options.clone(), shutdown.clone());
            let stop = async move { stop.cancelled().await };
            servers.push(tokio::spawn(async move {
                if https {
                    if let Err(e) = sluice_rest::serve_https(herder, tcp, options, stop).await {
                        tracing::error!(listener, error = %e, "the https listener stopped");
                    }
                } else {
                    sluice_rest::serve(herder, tcp, options, stop).await
                }
            }));
        }
        servers
    }
}

async fn standalone(worker_file: String, connector_files: Vec<String>, levels: Arc<logging::Levels>) -> Result<()> {
    let worker_config = load_worker_config(&worker_file)?;
    let rest_options = rest_options(&worker_config, levels)?;
    let connectors: Vec<ConfigMap> = connector_files.iter().map(|f| read_config_file(f)).collect::<Result<_>>()?;

    let offsets: Arc<dyn OffsetStore> = match worker_config.offset_file() {
        Some(path) => Arc::new(FileOffsetStore::open(&path)?),
        None => {
            tracing::warn!("offset.storage.file.filename is not set: source offsets are kept in memory only");
            Arc::new(MemoryOffsetStore::default())
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listeners = Listeners::bind(&worker_config).await?;
    let worker_id = worker_config.worker_id(listeners.advertised_port);
    if worker_config.exactly_once_source_enabled() {
        tracing::warn!("exactly.once.source.support applies to distributed workers only; this standalone worker runs sources at-least-once");
    }
    let worker =
        Arc::new(Worker::new(worker_config, worker_id.clone(), offsets, Arc::new(MemoryStatusStore::default()))?);
    let herder = StandaloneHerder::new(worker, sluice_connectors::plugins());
    herder.fetch_cluster_id().await;
    let servers = listeners.serve(herder.clone(), rest_options, &shutdown);
    tracing::info!(worker_id, "standalone worker started");

    for config in connectors {
        let name = config.get("name").cloned().ok_or_else(|| anyhow!("a connector config has no \"name\""))?;
        herder.put_connector_config(&name, config, true, None).await.map_err(|e| anyhow!("connector {name}: {e}"))?;
    }

    wait_for_signal().await;
    tracing::info!("shutting down: stopping tasks, flushing and committing");
    herder.stop().await;
    shutdown.cancel();
    for server in servers {
        let _ = server.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn distributed(worker_file: String, levels: Arc<logging::Levels>) -> Result<()> {
    use sluice_runtime::distributed::membership::MembershipConfig;
    use sluice_runtime::herder::DistributedHerder;
    use sluice_runtime::storage::{KafkaConfigStore, KafkaOffsetStore, KafkaStatusStore, KafkaStoreConfig, TopicSpec};

    let worker_config = load_worker_config(&worker_file)?;
    let rest_options = rest_options(&worker_config, levels.clone())?;
    let p = worker_config.parsed().clone();
    let listeners = Listeners::bind(&worker_config).await?;
    let worker_id = worker_config.worker_id(listeners.advertised_port);
    let scheme = worker_config.rest_scheme();
    let store = KafkaStoreConfig { bootstrap: worker_config.bootstrap_servers(), overrides: Default::default() };
    let spec = |topic: &str, partitions: &str, replication: &str| TopicSpec {
        name: p.string(topic),
        partitions: if partitions.is_empty() { 1 } else { p.int(partitions) },
        replication: p.int(replication),
    };
    // Every worker reads the three internal topics to the end before it serves.
    let offsets = KafkaOffsetStore::start(
        &store,
        spec("offset.storage.topic", "offset.storage.partitions", "offset.storage.replication.factor"),
    )
    .await?;
    let statuses = KafkaStatusStore::start(
        &store,
        spec("status.storage.topic", "status.storage.partitions", "status.storage.replication.factor"),
    )
    .await?;
    let configs =
        KafkaConfigStore::start(&store, &p.string("config.storage.topic"), p.int("config.storage.replication.factor"))
            .await?;
    let ms = |key: &str| std::time::Duration::from_millis(p.int(key).max(0) as u64);
    let membership = MembershipConfig {
        bootstrap: p.list("bootstrap.servers"),
        group_id: worker_config.group_id(),
        url: format!("{scheme}://{worker_id}/"),
        session_timeout: ms("session.timeout.ms"),
        rebalance_timeout: ms("rebalance.timeout.ms"),
        heartbeat_interval: ms("heartbeat.interval.ms"),
        max_delay: ms("scheduled.rebalance.max.delay.ms"),
    };
    let exactly_once = worker_config.exactly_once_source_enabled();
    if exactly_once {
        tracing::info!(
            "exactly.once.source.support=enabled: source tasks commit records and offsets in Kafka transactions"
        );
    }
    let worker = Arc::new(
        Worker::new(worker_config, worker_id.clone(), Arc::new(offsets), Arc::new(statuses))?
            .with_exactly_once_sources(exactly_once),
    );
    let herder = DistributedHerder::start(worker, sluice_connectors::plugins(), Arc::new(configs), membership);
    // `PUT /admin/loggers/{name}?scope=cluster` on any worker reaches every worker through the
    // config topic.
    let mut cluster_levels = herder.logger_levels();
    tokio::spawn(async move {
        use sluice_rest::LogLevels;
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match cluster_levels.recv().await {
                Ok((namespace, level)) => {
                    if let Err(e) = levels.set(&namespace, &level) {
                        tracing::warn!(namespace, level, error = %e, "cannot apply a cluster-wide log level");
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "cluster-wide log levels were missed"),
                Err(RecvError::Closed) => break,
            }
        }
    });
    herder.fetch_cluster_id().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let servers = listeners.serve(herder.clone(), rest_options, &shutdown);
    tracing::info!(worker_id, "distributed worker started");

    wait_for_signal().await;
    tracing::info!("shutting down: stopping tasks, flushing, committing and leaving the group");
    herder.stop().await;
    shutdown.cancel();
    for server in servers {
        let _ = server.await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn load_worker_config(worker_file: &str) -> Result<WorkerConfig> {
    let worker_props = sluice_runtime::config::resolve_secrets(&read_config_file(worker_file)?).map_err(|e| {
        let lines: Vec<String> = e.0.iter().map(|e| format!("  {}: {}", e.key, e.message)).collect();
        anyhow!("cannot resolve references in {worker_file}:\n{}", lines.join("\n"))
    })?;
    WorkerConfig::parse(&worker_props).map_err(|e| {
        let lines: Vec<String> = e.0.iter().map(|e| format!("  {}: {}", e.key, e.message)).collect();
        anyhow!("invalid worker config {worker_file}:\n{}", lines.join("\n"))
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// REST authentication (`rest.auth.*`) and the log-level control.
fn rest_options(config: &WorkerConfig, levels: Arc<logging::Levels>) -> Result<sluice_rest::RestOptions> {
    let p = config.parsed();
    let list = |key: &str| -> Vec<String> {
        p.string(key).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    };
    let auth = match p.string("rest.auth.type").to_ascii_lowercase().as_str() {
        "basic" => {
            let mut users = Vec::new();
            for entry in list("rest.auth.basic.users") {
                let (user, password) = entry
                    .split_once(':')
                    .ok_or_else(|| anyhow!("rest.auth.basic.users: an entry is not user:password"))?;
                users.push((user.to_string(), password.to_string()));
            }
            if users.is_empty() {
                bail!("rest.auth.type=basic needs rest.auth.basic.users (user:password, comma-separated)");
            }
            sluice_rest::Auth::Basic(users)
        }
        "bearer" => {
            let tokens = list("rest.auth.bearer.tokens");
            if tokens.is_empty() {
                bail!("rest.auth.type=bearer needs rest.auth.bearer.tokens");
            }
            sluice_rest::Auth::Bearer(tokens)
        }
        _ => sluice_rest::Auth::None,
    };
    let tls = match sluice_rest::TlsSettings::from_worker(config).map_err(|e| anyhow!("https listener: {e}"))? {
        Some(settings) => Some(settings.build().map_err(|e| anyhow!("https listener: {e}"))?),
        None => None,
    };
    let request_timeout = Some(std::time::Duration::from_millis(p.long("rest.request.timeout.ms").max(1) as u64));
    Ok(sluice_rest::RestOptions { auth, loggers: Some(levels), tls, request_timeout })
}
