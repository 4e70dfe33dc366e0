//! Standalone mode: one worker runs every connector; configs come from files (and REST), source
//! offsets live in `offset.storage.file.filename`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use sluice_api::{ConfigMap, ConnectError, ConnectorContext, ConnectorInstance, PluginInfo};
use tokio::sync::{mpsc, Mutex};

use super::{
    apply_name, validate_connector_config, ConnectorInfo, ConnectorOffsets, ConnectorStateInfo, Herder, HerderError,
    RestartPlan, StateInfo, TaskInfo, TaskRef, TaskStateInfo,
};
use crate::config::{mask_secrets, resolve_secrets};
use crate::storage::{ConnectorState, Status, TargetState};
use crate::worker::{TaskId, Worker};

struct Entry {
    config: ConfigMap,
    plugin: PluginInfo,
    instance: Option<ConnectorInstance>,
    task_configs: Vec<ConfigMap>,
    target: TargetState,
}

/// Runs every connector on the local worker.
pub struct StandaloneHerder {
    worker: Arc<Worker>,
    plugins: Vec<PluginInfo>,
    connectors: Mutex<BTreeMap<String, Entry>>,
    reconfigure: mpsc::UnboundedSender<String>,
    cluster_id: OnceLock<Option<String>>,
}

struct Context {
    name: String,
    reconfigure: mpsc::UnboundedSender<String>,
    worker: Arc<Worker>,
}

impl ConnectorContext for Context {
    fn request_task_reconfiguration(&self) {
        let _ = self.reconfigure.send(self.name.clone());
    }
    fn raise_error(&self, error: ConnectError) {
        tracing::error!(connector = %self.name, error = %error, "connector failed");
        self.worker.statuses().put_connector(
            &self.name,
            Status {
                state: ConnectorState::Failed,
                trace: Some(error.trace()),
                worker_id: self.worker.worker_id().to_string(),
                generation: 0,
            },
        );
    }
}

impl StandaloneHerder {
    /// A herder over `worker` with the given plugins. Spawns the reconfiguration loop.
    pub fn new(worker: Arc<Worker>, plugins: Vec<PluginInfo>) -> Arc<StandaloneHerder> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let herder = Arc::new(StandaloneHerder {
            worker,
            plugins,
            connectors: Mutex::new(BTreeMap::new()),
            reconfigure: tx,
            cluster_id: OnceLock::new(),
        });
        let weak: Weak<StandaloneHerder> = Arc::downgrade(&herder);
        tokio::spawn(async move {
            while let Some(name) = rx.recv().await {
                let Some(h) = weak.upgrade() else { break };
                h.reconfigure_tasks(&name).await;
            }
        });
        herder
    }

    /// Looks up the Kafka cluster id once (for `GET /`).
    pub async fn fetch_cluster_id(&self) {
        let _ = self.cluster_id.set(self.worker.fetch_cluster_id().await);
    }

    fn status(&self, state: ConnectorState, trace: Option<String>) -> Status {
        Status { state, trace, worker_id: self.worker.worker_id().to_string(), generation: 0 }
    }

    async fn start_connector(&self, name: &str, entry: &mut Entry) {
        let statuses = self.worker.statuses().clone();
        let fail = |e: &dyn std::fmt::Display, trace: String| {
            tracing::error!(connector = name, error = %e, "connector failed to start");
            statuses.put_connector(name, self.status(ConnectorState::Failed, Some(trace)));
        };
        let resolved = match resolve_secrets(&entry.config) {
            Ok(r) => r,
            Err(e) => return fail(&e, ConnectError::from(e.clone()).trace()),
        };
        let max_tasks = resolved.get("tasks.max").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1).max(1);
        let context = Arc::new(Context {
            name: name.to_string(),
            reconfigure: self.reconfigure.clone(),
            worker: self.worker.clone(),
        });
        let mut instance = (entry.plugin.create)();
        let started = instance.as_connector_mut().start(&resolved, context).await;
        if let Err(e) = started {
            return fail(&e, e.trace());
        }
        let task_configs = match instance.as_connector().task_configs(max_tasks) {
            Ok(t) => t,
            Err(e) => return fail(&e, e.trace()),
        };
        let paused = entry.target == TargetState::Paused;
        self.worker.set_paused(name, paused);
        statuses.put_connector(name, self.status(ConnectorState::running(paused), None));
        self.start_tasks(name, &entry.config, &instance, &task_configs);
        entry.task_configs = task_configs;
        entry.instance = Some(instance);
    }

    fn start_tasks(&self, name: &str, config: &ConfigMap, instance: &ConnectorInstance, task_configs: &[ConfigMap]) {
        for (i, tc) in task_configs.iter().enumerate() {
            self.start_task(name, config, instance, i as u32, tc);
        }
    }

    fn start_task(&self, name: &str, config: &ConfigMap, instance: &ConnectorInstance, task: u32, tc: &ConfigMap) {
        let id = TaskId { connector: name.to_string(), task };
        let started = match instance {
            ConnectorInstance::Source(c) => {
                self.worker.start_source_task(id.clone(), config, tc.clone(), c.create_task())
            }
            ConnectorInstance::Sink(c) => self.worker.start_sink_task(id.clone(), config, tc.clone(), c.create_task()),
        };
        if let Err(e) = started {
            tracing::error!(task = %id, error = %e, "task failed to start");
            self.worker.set_task_status(&id, ConnectorState::Failed, Some(ConnectError::fatal(e.to_string()).trace()));
        }
    }

    async fn stop_connector(&self, name: &str, entry: &mut Entry) {
        self.worker.stop_tasks(&self.worker.tasks_of(name)).await;
        if let Some(mut instance) = entry.instance.take() {
            let stopped = instance.as_connector_mut().stop().await;
            if let Err(e) = stopped {
                tracing::warn!(connector = name, error = %e, "connector did not stop cleanly");
            }
        }
    }

    async fn reconfigure_tasks(&self, name: &str) {
        let mut connectors = self.connectors.lock().await;
        let Some(entry) = connectors.get_mut(name) else { return };
        let Some(instance) = &entry.instance else { return };
        let max_tasks = entry.config.get("tasks.max").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1).max(1);
        match instance.as_connector().task_configs(max_tasks) {
            Ok(new) if new != entry.task_configs => {
                tracing::info!(connector = name, tasks = new.len(), "task configs changed; restarting tasks");
                self.worker.stop_tasks(&self.worker.tasks_of(name)).await;
                self.start_tasks(name, &entry.config, instance, &new);
                entry.task_configs = new;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(connector = name, error = %e, "task reconfiguration failed"),
        }
    }

    /// PAUSED ⇄ STARTED for a running connector: tasks pause or resume in place.
    fn set_paused(&self, name: &str, entry: &mut Entry, paused: bool) {
        entry.target = if paused { TargetState::Paused } else { TargetState::Started };
        self.worker.set_paused(name, paused);
        if entry.instance.is_some() {
            self.worker.statuses().put_connector(name, self.status(ConnectorState::running(paused), None));
        }
    }

    /// Stops every connector and task (graceful shutdown).
    pub async fn stop(&self) {
        let mut connectors = self.connectors.lock().await;
        let names: Vec<String> = connectors.keys().cloned().collect();
        let all = self.worker.all_tasks();
        self.worker.stop_tasks(&all).await;
        for name in names {
            if let Some(entry) = connectors.get_mut(&name) {
                self.stop_connector(&name, entry).await;
            }
        }
    }

    fn info(&self, name: &str, entry: &Entry) -> ConnectorInfo {
        ConnectorInfo {
            name: name.to_string(),
            config: mask_secrets(&entry.config, &self.plugins),
            tasks: (0..entry.task_configs.len() as u32)
                .map(|task| TaskRef { connector: name.to_string(), task })
                .collect(),
            connector_type: entry.plugin.connector_type.name(),
        }
    }
}

#[async_trait]
impl Herder for StandaloneHerder {
    async fn connectors(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        Ok(self.info(name, entry))
    }

    async fn connector_config(&self, name: &str) -> Result<ConfigMap, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        Ok(mask_secrets(&entry.config, &self.plugins))
    }

    async fn stored_connector_config(&self, name: &str) -> Result<ConfigMap, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        Ok(entry.config.clone())
    }

    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, HerderError> {
        let connector_type = {
            let connectors = self.connectors.lock().await;
            connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?.plugin.connector_type
        };
        let statuses = self.worker.statuses();
        let c = statuses.connector(name).unwrap_or_else(|| self.status(ConnectorState::Unassigned, None));
        Ok(ConnectorStateInfo {
            name: name.to_string(),
            connector: StateInfo { state: c.state.name(), worker_id: c.worker_id, trace: c.trace },
            tasks: statuses
                .tasks(name)
                .into_iter()
                .map(|(id, s)| TaskStateInfo { id, state: s.state.name(), worker_id: s.worker_id, trace: s.trace })
                .collect(),
            connector_type: connector_type.name(),
        })
    }

    async fn task_configs(&self, name: &str) -> Result<Vec<TaskInfo>, HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        Ok(entry
            .task_configs
            .iter()
            .enumerate()
            .map(|(i, c)| TaskInfo {
                id: TaskRef { connector: name.to_string(), task: i as u32 },
                config: mask_secrets(c, &self.plugins),
            })
            .collect())
    }

    async fn put_connector_config(
        &self,
        name: &str,
        mut config: ConfigMap,
        allow_replace: bool,
        initial: Option<TargetState>,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        apply_name(name, &mut config)?;
        let (plugin, _) = validate_connector_config(&self.plugins, &config)?;
        let mut connectors = self.connectors.lock().await;
        let (created, target) = match connectors.get_mut(name) {
            Some(_) if !allow_replace => return Err(HerderError::AlreadyExists(name.to_string())),
            Some(existing) => {
                self.stop_connector(name, existing).await;
                (false, existing.target)
            }
            None => (true, initial.unwrap_or(TargetState::Started)),
        };
        let mut entry = Entry { config, plugin, instance: None, task_configs: Vec::new(), target };
        if target == TargetState::Stopped {
            // Kafka Connect's STOPPED: no connector instance, no tasks.
            self.worker.set_paused(name, false);
            self.worker.statuses().remove(name);
            self.worker.statuses().put_connector(name, self.status(ConnectorState::Stopped, None));
        } else {
            self.start_connector(name, &mut entry).await;
        }
        let info = self.info(name, &entry);
        connectors.insert(name.to_string(), entry);
        tracing::info!(connector = name, created, "connector configured");
        Ok((created, info))
    }

    async fn delete_connector(&self, name: &str) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let mut entry = connectors.remove(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        self.stop_connector(name, &mut entry).await;
        self.worker.statuses().remove(name);
        Ok(())
    }

    async fn pause_connector(&self, name: &str) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        if entry.target == TargetState::Started {
            self.set_paused(name, entry, true);
        }
        Ok(())
    }

    async fn resume_connector(&self, name: &str) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        match entry.target {
            TargetState::Started => {}
            TargetState::Paused => self.set_paused(name, entry, false),
            TargetState::Stopped => {
                entry.target = TargetState::Started;
                self.start_connector(name, entry).await;
            }
        }
        Ok(())
    }

    async fn stop_connector(&self, name: &str) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        if entry.target != TargetState::Stopped {
            StandaloneHerder::stop_connector(self, name, entry).await;
            entry.target = TargetState::Stopped;
            entry.task_configs.clear();
            self.worker.set_paused(name, false);
            self.worker.statuses().remove(name);
            self.worker.statuses().put_connector(name, self.status(ConnectorState::Stopped, None));
        }
        Ok(())
    }

    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, HerderError> {
        let status = self.connector_status(name).await?;
        let plan = RestartPlan::new(&status, include_tasks, only_failed);
        let mut connectors = self.connectors.lock().await;
        let entry = connectors.get_mut(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        if entry.target == TargetState::Stopped {
            return Err(HerderError::Conflict(format!("Connector {name} is stopped; resume it before restarting")));
        }
        if plan.connector {
            // The instance restarts with its tasks (Kafka Connect restarts the instance alone).
            StandaloneHerder::stop_connector(self, name, entry).await;
            self.start_connector(name, entry).await;
        } else if let Some(instance) = &entry.instance {
            let ids: Vec<TaskId> =
                plan.tasks.iter().map(|t| TaskId { connector: name.to_string(), task: *t }).collect();
            self.worker.stop_tasks(&ids).await;
            for t in &plan.tasks {
                if let Some(tc) = entry.task_configs.get(*t as usize) {
                    self.start_task(name, &entry.config, instance, *t, tc);
                }
            }
        }
        Ok((include_tasks || only_failed).then(|| plan.mark(status)))
    }

    async fn restart_task(&self, name: &str, task: u32) -> Result<(), HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        let (Some(instance), Some(tc)) = (&entry.instance, entry.task_configs.get(task as usize)) else {
            return Err(HerderError::task_not_found(name, task));
        };
        self.worker.stop_tasks(&[TaskId { connector: name.to_string(), task }]).await;
        self.start_task(name, &entry.config, instance, task, tc);
        Ok(())
    }

    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, HerderError> {
        let (plugin, config) = {
            let connectors = self.connectors.lock().await;
            let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
            (entry.plugin, resolve_secrets(&entry.config).map_err(|e| HerderError::BadRequest(e.to_string()))?)
        };
        Ok(self.worker.read_offsets(name, plugin.connector_type, &config).await?)
    }

    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<(), HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        if entry.target != TargetState::Stopped {
            return Err(HerderError::not_stopped(name));
        }
        Ok(self.worker.alter_offsets(name, entry.plugin.connector_type, offsets).await?)
    }

    async fn reset_connector_offsets(&self, name: &str) -> Result<(), HerderError> {
        let connectors = self.connectors.lock().await;
        let entry = connectors.get(name).ok_or_else(|| HerderError::connector_not_found(name))?;
        if entry.target != TargetState::Stopped {
            return Err(HerderError::not_stopped(name));
        }
        Ok(self.worker.reset_offsets(name, entry.plugin.connector_type).await?)
    }

    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, HerderError> {
        let exists = self.connectors.lock().await.contains_key(name);
        super::active_topics(&self.worker, name, exists)
    }

    async fn reset_connector_topics(&self, name: &str) -> Result<(), HerderError> {
        let exists = self.connectors.lock().await.contains_key(name);
        super::reset_active_topics(&self.worker, name, exists)
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        self.plugins.clone()
    }

    fn kafka_cluster_id(&self) -> Option<String> {
        self.cluster_id.get().cloned().flatten()
    }

    async fn metrics_text(&self) -> String {
        let connectors = self.connectors.lock().await.len();
        super::render_metrics(&self.worker, connectors, &self.cluster())
    }
}

impl std::fmt::Debug for StandaloneHerder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneHerder").field("worker", &self.worker.worker_id()).finish()
    }
}
