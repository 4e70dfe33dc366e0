//! Distributed mode: every worker reads the config, offset and status topics; the group leader
//! assigns connectors and tasks (incremental cooperative); each worker runs what it is assigned.
//!
//! Config writes go straight to the config topic from the worker that receives them (one
//! partition, so every worker applies them in the same order); the worker that runs a connector
//! writes its task configs and their commit record, then asks for a rebalance so the leader
//! assigns the new tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};

use async_trait::async_trait;
use sluice_api::{ConfigMap, ConnectError, ConnectorContext, ConnectorInstance, PluginInfo};
use tokio::sync::Mutex;

use super::{
    apply_name, find_plugin, validate_connector_config, ConnectorInfo, ConnectorOffsets, ConnectorStateInfo, Herder,
    HerderError, RestartPlan, StateInfo, TaskInfo, TaskRef, TaskStateInfo,
};
use crate::config::{mask_secrets, resolve_secrets};
use crate::distributed::membership::{GroupMember, GroupStatus, Membership, MembershipConfig};
use crate::distributed::protocol::{ConnectAssignment, Work};
use crate::storage::{ConfigStore, ConfigUpdate, ConnectorState, Status, TargetState};
use crate::worker::{TaskId, Worker};

/// Runs the work the group assigns to this worker.
pub struct DistributedHerder {
    worker: Arc<Worker>,
    plugins: Vec<PluginInfo>,
    configs: Arc<dyn ConfigStore>,
    membership: StdMutex<Option<Membership>>,
    me: Weak<DistributedHerder>,
    /// Connector instances running here.
    connectors: Mutex<BTreeMap<String, ConnectorInstance>>,
    /// Tasks running here, with the config they run with.
    tasks: Mutex<BTreeMap<(String, u32), ConfigMap>>,
    generation: StdMutex<i32>,
    cluster_id: OnceLock<Option<String>>,
    /// Serializes config writes made through the API, so a check-then-write (create if absent)
    /// cannot interleave with another on this worker (followers forward these to the leader).
    writes: Mutex<()>,
    /// Cluster-wide log levels read from the config topic after start (KIP-976: levels written
    /// before this worker started are not applied), as `(namespace, level)`.
    logger_levels: tokio::sync::broadcast::Sender<(String, String)>,
}

struct Context {
    name: String,
    herder: Weak<DistributedHerder>,
}

impl ConnectorContext for Context {
    fn request_task_reconfiguration(&self) {
        if let Some(h) = self.herder.upgrade() {
            let name = self.name.clone();
            tokio::spawn(async move { h.regenerate_tasks(&name).await });
        }
    }
    fn raise_error(&self, error: ConnectError) {
        if let Some(h) = self.herder.upgrade() {
            h.put_connector_status(&self.name, ConnectorState::Failed, Some(error.trace()));
        }
    }
}

impl DistributedHerder {
    /// Starts the herder and joins the group.
    pub fn start(
        worker: Arc<Worker>,
        plugins: Vec<PluginInfo>,
        configs: Arc<dyn ConfigStore>,
        membership: MembershipConfig,
    ) -> Arc<DistributedHerder> {
        let herder = Arc::new_cyclic(|me| DistributedHerder {
            worker,
            plugins,
            configs: configs.clone(),
            membership: StdMutex::new(None),
            me: me.clone(),
            connectors: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(BTreeMap::new()),
            generation: StdMutex::new(-1),
            cluster_id: OnceLock::new(),
            writes: Mutex::new(()),
            logger_levels: tokio::sync::broadcast::channel(64).0,
        });
        // React to config changes: restart what changed here, and let the leader reassign.
        let mut updates = configs.subscribe();
        let weak = Arc::downgrade(&herder);
        tokio::spawn(async move {
            loop {
                let update = match updates.recv().await {
                    Ok(u) => u,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                };
                let Some(h) = weak.upgrade() else { break };
                h.on_config_update(update).await;
            }
        });
        let member: Arc<dyn GroupMember> = herder.clone();
        if let Ok(mut m) = herder.membership.lock() {
            *m = Some(Membership::start(membership, member));
        }
        herder
    }

    /// Cluster-wide log levels as they are read from the config topic, `(namespace, level)`.
    pub fn logger_levels(&self) -> tokio::sync::broadcast::Receiver<(String, String)> {
        self.logger_levels.subscribe()
    }

    /// The group status (leader, generation, assignment).
    pub fn group_status(&self) -> Option<GroupStatus> {
        self.membership.lock().ok()?.as_ref().map(|m| m.status().borrow().clone())
    }

    /// Looks up the Kafka cluster id once (for `GET /`).
    pub async fn fetch_cluster_id(&self) {
        let _ = self.cluster_id.set(self.worker.fetch_cluster_id().await);
    }

    /// Leaves the group after stopping everything this worker runs (graceful shutdown: tasks flush
    /// and commit).
    pub async fn stop(&self) {
        let membership = self.membership.lock().ok().and_then(|mut m| m.take());
        if let Some(m) = membership {
            m.leave().await;
        }
    }

    fn generation(&self) -> i32 {
        self.generation.lock().map(|g| *g).unwrap_or(-1)
    }

    fn put_connector_status(&self, name: &str, state: ConnectorState, trace: Option<String>) {
        let status =
            Status { state, trace, worker_id: self.worker.worker_id().to_string(), generation: self.generation() };
        self.worker.statuses().put_connector(name, status);
    }

    fn request_rebalance(&self) {
        if let Ok(m) = self.membership.lock() {
            if let Some(m) = m.as_ref() {
                m.request_rejoin();
            }
        }
    }

    async fn on_config_update(&self, update: ConfigUpdate) {
        match update {
            ConfigUpdate::Connector(name) => {
                let running_here = self.connectors.lock().await.contains_key(&name);
                if running_here {
                    self.stop_connector(&name).await;
                    if self.configs.snapshot().connectors.contains_key(&name) {
                        self.start_connector(&name).await;
                    }
                }
                self.request_rebalance();
            }
            ConfigUpdate::Tasks(name) => {
                // New task configs: tasks of this connector running here restart with them.
                let ids: Vec<TaskId> = self
                    .tasks
                    .lock()
                    .await
                    .keys()
                    .filter(|(c, _)| *c == name)
                    .map(|(c, t)| TaskId { connector: c.clone(), task: *t })
                    .collect();
                self.stop_task_ids(&ids).await;
                self.request_rebalance();
            }
            ConfigUpdate::TargetState(name) => {
                let target = self.configs.snapshot().target_state(&name);
                let paused = target == TargetState::Paused;
                self.worker.set_paused(&name, paused);
                if target != TargetState::Stopped && self.connectors.lock().await.contains_key(&name) {
                    self.put_connector_status(&name, ConnectorState::running(paused), None);
                }
                self.request_rebalance();
            }
            ConfigUpdate::Restart { connector, include_tasks, only_failed } => {
                self.apply_restart(&connector, include_tasks, only_failed).await
            }
            ConfigUpdate::LoggerLevel { namespace, level } => {
                tracing::info!(namespace, level, "cluster-wide log level received");
                let _ = self.logger_levels.send((namespace, level));
            }
        }
    }

    /// Restarts what this worker runs of a connector, per a `restart-connector-<c>` record.
    async fn apply_restart(&self, name: &str, include_tasks: bool, only_failed: bool) {
        let Ok(status) = Herder::connector_status(self, name).await else { return };
        let plan = RestartPlan::new(&status, include_tasks, only_failed);
        if plan.connector && self.connectors.lock().await.contains_key(name) {
            tracing::info!(connector = name, "restarting connector");
            self.stop_connector(name).await;
            self.start_connector(name).await;
        }
        let here: Vec<u32> = {
            let tasks = self.tasks.lock().await;
            plan.tasks.iter().copied().filter(|t| tasks.contains_key(&(name.to_string(), *t))).collect()
        };
        for t in here {
            tracing::info!(connector = name, task = t, "restarting task");
            self.stop_task_ids(&[TaskId { connector: name.to_string(), task: t }]).await;
            self.start_task(name, t).await;
        }
    }

    fn connector_exists(&self, name: &str) -> Result<(), HerderError> {
        if self.configs.snapshot().connectors.contains_key(name) {
            Ok(())
        } else {
            Err(HerderError::connector_not_found(name))
        }
    }

    async fn write_target_state(&self, name: &str, state: TargetState) -> Result<(), HerderError> {
        self.connector_exists(name)?;
        self.configs.put_target_state(name, state).await.map_err(|e| HerderError::Internal(e.to_string()))
    }

    /// The connector's type and resolved config, and whether it is STOPPED.
    fn offsets_target(&self, name: &str) -> Result<(sluice_api::ConnectorType, ConfigMap, bool), HerderError> {
        let s = self.configs.snapshot();
        let config = s.connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        let plugin = self.plugin_for(name, config)?;
        let resolved = resolve_secrets(config).map_err(|e| HerderError::BadRequest(e.to_string()))?;
        Ok((plugin.connector_type, resolved, s.target_state(name) == TargetState::Stopped))
    }

    async fn start_connector(&self, name: &str) {
        let snapshot = self.configs.snapshot();
        let Some(config) = snapshot.connectors.get(name).cloned() else { return };
        let Some(plugin) = config.get("connector.class").and_then(|c| find_plugin(&self.plugins, c)).copied() else {
            self.put_connector_status(
                name,
                ConnectorState::Failed,
                Some("ConnectException: unknown connector.class".into()),
            );
            return;
        };
        let resolved = match resolve_secrets(&config) {
            Ok(r) => r,
            Err(e) => {
                return self.put_connector_status(name, ConnectorState::Failed, Some(ConnectError::from(e).trace()))
            }
        };
        let context = Arc::new(Context { name: name.to_string(), herder: self.me.clone() });
        let mut instance = (plugin.create)();
        let started = instance.as_connector_mut().start(&resolved, context).await;
        if let Err(e) = started {
            return self.put_connector_status(name, ConnectorState::Failed, Some(e.trace()));
        }
        let paused = snapshot.target_state(name) == TargetState::Paused;
        self.put_connector_status(name, ConnectorState::running(paused), None);
        self.connectors.lock().await.insert(name.to_string(), instance);
        self.regenerate_tasks(name).await;
    }

    /// Computes task configs and writes them when they changed (the update triggers a rebalance).
    async fn regenerate_tasks(&self, name: &str) {
        let snapshot = self.configs.snapshot();
        let Some(config) = snapshot.connectors.get(name) else { return };
        if snapshot.target_state(name) == TargetState::Stopped {
            return;
        }
        let max_tasks = config.get("tasks.max").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1).max(1);
        let generated = {
            let connectors = self.connectors.lock().await;
            let Some(instance) = connectors.get(name) else { return };
            instance.as_connector().task_configs(max_tasks)
        };
        match generated {
            Ok(new) if snapshot.task_configs.get(name) != Some(&new) => {
                let old = snapshot.task_configs.get(name).map_or(0, Vec::len);
                if self.worker.exactly_once_sources() && new.len() < old {
                    if let Err(e) = self.worker.fence_source_tasks(name, new.len() as u32..old as u32).await {
                        tracing::error!(connector = name, error = %e, "cannot fence removed tasks; task configs not written");
                        self.put_connector_status(name, ConnectorState::Failed, Some(e));
                        return;
                    }
                }
                if let Err(e) = self.configs.put_task_configs(name, &new).await {
                    tracing::error!(connector = name, error = %e, "cannot write task configs");
                }
            }
            Ok(_) => {}
            Err(e) => self.put_connector_status(name, ConnectorState::Failed, Some(e.trace())),
        }
    }

    async fn stop_connector(&self, name: &str) {
        let instance = self.connectors.lock().await.remove(name);
        if let Some(mut instance) = instance {
            let stopped = instance.as_connector_mut().stop().await;
            if let Err(e) = stopped {
                tracing::warn!(connector = name, error = %e, "connector did not stop cleanly");
            }
        }
    }

    async fn start_task(&self, connector: &str, task: u32) {
        let snapshot = self.configs.snapshot();
        let (Some(config), Some(task_config)) = (
            snapshot.connectors.get(connector),
            snapshot.task_configs.get(connector).and_then(|t| t.get(task as usize)),
        ) else {
            return;
        };
        let Some(plugin) = config.get("connector.class").and_then(|c| find_plugin(&self.plugins, c)).copied() else {
            return;
        };
        let id = TaskId { connector: connector.to_string(), task };
        self.worker.set_paused(connector, snapshot.target_state(connector) == TargetState::Paused);
        let started = match (plugin.create)() {
            ConnectorInstance::Source(c) => {
                self.worker.start_source_task(id.clone(), config, task_config.clone(), c.create_task())
            }
            ConnectorInstance::Sink(c) => {
                self.worker.start_sink_task(id.clone(), config, task_config.clone(), c.create_task())
            }
        };
        match started {
            Ok(()) => {
                self.tasks.lock().await.insert((connector.to_string(), task), task_config.clone());
            }
            Err(e) => {
                tracing::error!(task = %id, error = %e, "task failed to start");
                self.worker.set_task_status(
                    &id,
                    ConnectorState::Failed,
                    Some(ConnectError::fatal(e.to_string()).trace()),
                );
            }
        }
    }

    async fn stop_task_ids(&self, ids: &[TaskId]) {
        self.worker.stop_tasks(ids).await;
        let mut tasks = self.tasks.lock().await;
        for id in ids {
            tasks.remove(&(id.connector.clone(), id.task));
        }
    }

    /// The plugin a stored config names (configs were validated when written).
    fn plugin_for(&self, name: &str, config: &ConfigMap) -> Result<&PluginInfo, HerderError> {
        config
            .get("connector.class")
            .and_then(|c| find_plugin(&self.plugins, c))
            .ok_or_else(|| HerderError::Internal(format!("connector {name} has an unknown connector.class")))
    }

    fn info(&self, name: &str, config: &ConfigMap, task_count: usize) -> Result<ConnectorInfo, HerderError> {
        let plugin = self.plugin_for(name, config)?;
        Ok(ConnectorInfo {
            name: name.to_string(),
            config: mask_secrets(config, &self.plugins),
            tasks: (0..task_count as u32).map(|task| TaskRef { connector: name.to_string(), task }).collect(),
            connector_type: plugin.connector_type.name(),
        })
    }
}

#[async_trait]
impl GroupMember for DistributedHerder {
    fn config_state(&self) -> (i64, BTreeSet<Work>) {
        let s = self.configs.snapshot();
        let mut work = BTreeSet::new();
        for name in s.connectors.keys() {
            if s.target_state(name) == TargetState::Stopped {
                continue;
            }
            work.insert(Work::Connector(name.clone()));
            for t in 0..s.task_configs.get(name).map_or(0, Vec::len) {
                work.insert(Work::Task(name.clone(), t as u32));
            }
        }
        (s.offset, work)
    }

    async fn revoke(&self, work: &BTreeSet<Work>) {
        let ids: Vec<TaskId> = work
            .iter()
            .filter_map(|w| match w {
                Work::Task(c, t) => Some(TaskId { connector: c.clone(), task: *t }),
                Work::Connector(_) => None,
            })
            .collect();
        self.stop_task_ids(&ids).await;
        for w in work {
            if let Work::Connector(c) = w {
                self.stop_connector(c).await;
            }
        }
    }

    async fn assigned(&self, generation: i32, assignment: &ConnectAssignment) {
        if let Ok(mut g) = self.generation.lock() {
            *g = generation;
        }
        let running_connectors: BTreeSet<String> = self.connectors.lock().await.keys().cloned().collect();
        let running_tasks: BTreeSet<(String, u32)> = self.tasks.lock().await.keys().cloned().collect();
        // Tasks first: connectors may write new task configs, which causes another round anyway.
        for w in &assignment.assigned {
            if let Work::Task(c, t) = w {
                if !running_tasks.contains(&(c.clone(), *t)) {
                    self.start_task(c, *t).await;
                }
            }
        }
        for w in &assignment.assigned {
            if let Work::Connector(c) = w {
                if !running_connectors.contains(c) {
                    self.start_connector(c).await;
                }
            }
        }
    }
}

#[async_trait]
impl Herder for DistributedHerder {
    async fn connectors(&self) -> Vec<String> {
        self.configs.snapshot().connectors.keys().cloned().collect()
    }

    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        let s = self.configs.snapshot();
        let config = s.connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        self.info(name, config, s.task_configs.get(name).map_or(0, Vec::len))
    }

    async fn connector_config(&self, name: &str) -> Result<ConfigMap, HerderError> {
        let s = self.configs.snapshot();
        s.connectors
            .get(name)
            .map(|c| mask_secrets(c, &self.plugins))
            .ok_or_else(|| HerderError::connector_not_found(name))
    }

    async fn stored_connector_config(&self, name: &str) -> Result<ConfigMap, HerderError> {
        let s = self.configs.snapshot();
        s.connectors.get(name).cloned().ok_or_else(|| HerderError::connector_not_found(name))
    }

    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, HerderError> {
        let s = self.configs.snapshot();
        let config = s.connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        let info = self.info(name, config, 0)?;
        let statuses = self.worker.statuses();
        let c = statuses.connector(name).unwrap_or(Status {
            state: ConnectorState::Unassigned,
            trace: None,
            worker_id: String::new(),
            generation: -1,
        });
        let task_count = s.task_configs.get(name).map_or(0, Vec::len) as u32;
        Ok(ConnectorStateInfo {
            name: name.to_string(),
            connector: StateInfo { state: c.state.name(), worker_id: c.worker_id, trace: c.trace },
            tasks: statuses
                .tasks(name)
                .into_iter()
                .filter(|(id, _)| *id < task_count)
                .map(|(id, s)| TaskStateInfo { id, state: s.state.name(), worker_id: s.worker_id, trace: s.trace })
                .collect(),
            connector_type: info.connector_type,
        })
    }

    async fn task_configs(&self, name: &str) -> Result<Vec<TaskInfo>, HerderError> {
        let s = self.configs.snapshot();
        if !s.connectors.contains_key(name) {
            return Err(HerderError::connector_not_found(name));
        }
        Ok(s.task_configs
            .get(name)
            .map(|tasks| {
                tasks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| TaskInfo {
                        id: TaskRef { connector: name.to_string(), task: i as u32 },
                        config: mask_secrets(c, &self.plugins),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn put_connector_config(
        &self,
        name: &str,
        mut config: ConfigMap,
        allow_replace: bool,
        initial: Option<TargetState>,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        apply_name(name, &mut config)?;
        validate_connector_config(&self.plugins, &config)?;
        let _serialized = self.writes.lock().await;
        let existed = self.configs.snapshot().connectors.contains_key(name);
        if existed && !allow_replace {
            return Err(HerderError::AlreadyExists(name.to_string()));
        }
        // The target state goes first (Kafka Connect's order), so the connector never runs when
        // it was created PAUSED or STOPPED; a replaced connector keeps its own.
        self.configs
            .put_connector_config(name, &config, if existed { None } else { initial })
            .await
            .map_err(|e| HerderError::Internal(e.to_string()))?;
        if !existed && initial == Some(TargetState::Stopped) {
            // No worker runs a stopped connector: its status is written here, as by `stop`.
            self.put_connector_status(name, ConnectorState::Stopped, None);
        }
        Ok((!existed, self.info(name, &config, self.configs.snapshot().task_configs.get(name).map_or(0, Vec::len))?))
    }

    async fn delete_connector(&self, name: &str) -> Result<(), HerderError> {
        let _serialized = self.writes.lock().await;
        if !self.configs.snapshot().connectors.contains_key(name) {
            return Err(HerderError::connector_not_found(name));
        }
        self.configs.remove_connector(name).await.map_err(|e| HerderError::Internal(e.to_string()))?;
        self.worker.statuses().remove(name);
        Ok(())
    }

    async fn pause_connector(&self, name: &str) -> Result<(), HerderError> {
        self.write_target_state(name, TargetState::Paused).await
    }

    async fn resume_connector(&self, name: &str) -> Result<(), HerderError> {
        self.write_target_state(name, TargetState::Started).await
    }

    async fn stop_connector(&self, name: &str) -> Result<(), HerderError> {
        self.write_target_state(name, TargetState::Stopped).await?;
        self.configs.put_task_configs(name, &[]).await.map_err(|e| HerderError::Internal(e.to_string()))?;
        self.worker.statuses().remove(name);
        self.put_connector_status(name, ConnectorState::Stopped, None);
        Ok(())
    }

    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, HerderError> {
        let status = Herder::connector_status(self, name).await?;
        if self.configs.snapshot().target_state(name) == TargetState::Stopped {
            return Err(HerderError::Conflict(format!("Connector {name} is stopped; resume it before restarting")));
        }
        let plan = RestartPlan::new(&status, include_tasks, only_failed);
        // The record reaches every worker; each restarts what it runs.
        self.configs
            .request_restart(name, include_tasks, only_failed)
            .await
            .map_err(|e| HerderError::Internal(e.to_string()))?;
        Ok((include_tasks || only_failed).then(|| plan.mark(status)))
    }

    async fn restart_task(&self, name: &str, task: u32) -> Result<(), HerderError> {
        let s = self.configs.snapshot();
        if !s.connectors.contains_key(name) {
            return Err(HerderError::connector_not_found(name));
        }
        if s.task_configs.get(name).is_none_or(|t| task as usize >= t.len()) {
            return Err(HerderError::task_not_found(name, task));
        }
        if !self.tasks.lock().await.contains_key(&(name.to_string(), task)) {
            let owner = self
                .worker
                .statuses()
                .tasks(name)
                .into_iter()
                .find(|(t, _)| *t == task)
                .map(|(_, s)| s.worker_id)
                .unwrap_or_default();
            // The status record can lag a rebalance: naming this worker (or nobody) means the
            // task is between owners.
            if owner.is_empty() || owner == self.worker.worker_id() {
                return Err(HerderError::Conflict(format!(
                    "Task {name}-{task} is not running on any worker yet; retry once the rebalance completes"
                )));
            }
            return Err(HerderError::NotAssigned {
                message: format!(
                    "Cannot restart task {name}-{task}: it runs on worker {owner}, which could not be reached"
                ),
                worker: owner,
            });
        }
        self.stop_task_ids(&[TaskId { connector: name.to_string(), task }]).await;
        self.start_task(name, task).await;
        Ok(())
    }

    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, HerderError> {
        let (kind, config, _) = self.offsets_target(name)?;
        Ok(self.worker.read_offsets(name, kind, &config).await?)
    }

    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<(), HerderError> {
        let (kind, _, stopped) = self.offsets_target(name)?;
        if !stopped {
            return Err(HerderError::not_stopped(name));
        }
        Ok(self.worker.alter_offsets(name, kind, offsets).await?)
    }

    async fn reset_connector_offsets(&self, name: &str) -> Result<(), HerderError> {
        let (kind, _, stopped) = self.offsets_target(name)?;
        if !stopped {
            return Err(HerderError::not_stopped(name));
        }
        Ok(self.worker.reset_offsets(name, kind).await?)
    }

    fn cluster(&self) -> serde_json::Value {
        let Some(g) = self.group_status() else { return serde_json::json!({"mode": "distributed", "joined": false}) };
        let work = |w: &BTreeSet<Work>| {
            let connectors: Vec<&str> = w
                .iter()
                .filter_map(|x| match x {
                    Work::Connector(c) => Some(c.as_str()),
                    Work::Task(..) => None,
                })
                .collect();
            let tasks: Vec<String> = w
                .iter()
                .filter_map(|x| match x {
                    Work::Task(c, t) => Some(format!("{c}-{t}")),
                    Work::Connector(_) => None,
                })
                .collect();
            serde_json::json!({"connectors": connectors, "tasks": tasks})
        };
        serde_json::json!({
            "mode": "distributed",
            "joined": g.generation >= 0,
            "worker_id": self.worker.worker_id(),
            "member_id": g.member_id,
            "generation": g.generation,
            "leader": g.leader,
            "leader_url": g.leader_url,
            "is_leader": g.is_leader,
            "rebalances": g.rebalances,
            "last_rebalance_ms": g.last_rebalance.map(|d| d.as_millis() as u64),
            "since_last_rebalance_ms": g.last_rebalance_at.map(|t| t.elapsed().as_millis() as u64),
            "assignment": work(&g.assignment),
            "members": g.members.iter().map(|(m, w)| (m.clone(), work(w))).collect::<serde_json::Map<_, _>>(),
        })
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        self.plugins.clone()
    }

    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, HerderError> {
        super::active_topics(&self.worker, name, self.configs.snapshot().connectors.contains_key(name))
    }

    async fn reset_connector_topics(&self, name: &str) -> Result<(), HerderError> {
        super::reset_active_topics(&self.worker, name, self.configs.snapshot().connectors.contains_key(name))
    }

    fn leader_rest_url(&self) -> Option<String> {
        let g = self.group_status()?;
        (g.generation >= 0 && !g.leader_url.is_empty()).then_some(g.leader_url)
    }

    fn leader_url(&self) -> Option<String> {
        let g = self.group_status()?;
        (g.generation >= 0 && !g.is_leader && !g.leader_url.is_empty()).then_some(g.leader_url)
    }

    fn kafka_cluster_id(&self) -> Option<String> {
        self.cluster_id.get().cloned().flatten()
    }

    fn health(&self) -> Result<(), String> {
        match self.group_status() {
            Some(g) if g.generation >= 0 => Ok(()),
            _ => Err("Worker is still starting up: it has not joined its group yet.".to_string()),
        }
    }

    async fn metrics_text(&self) -> String {
        let connectors = self.configs.snapshot().connectors.len();
        super::render_metrics(&self.worker, connectors, &self.cluster())
    }

    async fn set_cluster_logger_level(&self, namespace: &str, level: &str) -> Result<bool, HerderError> {
        self.configs.put_logger_level(namespace, level).await.map_err(|e| HerderError::Internal(e.to_string()))?;
        Ok(true)
    }
}
