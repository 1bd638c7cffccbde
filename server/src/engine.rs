//! The durable workflow: requests enqueue jobs in the store; workers lease them (with a
//! heartbeat), run them through the same planner and applier as the CLI, and record status,
//! resources, outputs and logs. A job whose worker died is leased again after its lease
//! expires and re-run: plan/apply converge from the state the dead worker left.

use crate::dbstate::DbStateBackend;
use crate::deploy::{self, TemplateSettings};
use crate::present;
use crate::store::{DeploymentRow, JobRow, ResourceRow, Store};
use crate::wire::{self, Status};
use planner::plan::{Plan, PlanMode};
use planner::{ApplyOptions, Event, Observer, PlanRequest, Registry};
use serde_json::{json, Map, Value};
use state::{StateBackend, StateDoc, StateWriter};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

/// What changed, for `GET /deployments/{id}/events` (Server-Sent Events).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub deployment: String,
    /// `status` (the deployment's status), `resource` (a resource row's state: `resource` is its
    /// uuid) or `progress` (an applier step: `address` is the instance, `state` `done`/`failed`).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Change {
    /// A deployment status change.
    pub fn status(deployment: impl Into<String>, status: &str, message: Option<String>) -> Change {
        Change { deployment: deployment.into(), kind: "status", status: Some(status.to_string()), resource: None, address: None, state: None, message }
    }
}

pub struct EngineSettings {
    pub templates: TemplateSettings,
    /// Where the local provider keeps each deployment's sandboxes (`<data>/deployments/<id>`).
    pub data_dir: PathBuf,
    pub lease: Duration,
    pub workers: usize,
    pub parallelism: usize,
    pub provider_types: Vec<(String, String)>,
    /// Provider for node types not mapped (`local` by default).
    pub default_provider: String,
    /// Providers of the configured sites (shared by every deployment), by name.
    pub sites: Vec<(String, Arc<dyn providers::Provider>)>,
    pub operation_timeout: Duration,
    /// How long a stopping server waits for running jobs before handing them back.
    pub grace: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            templates: TemplateSettings::default(),
            data_dir: PathBuf::from(".rosca-server"),
            lease: Duration::from_secs(30),
            workers: 4,
            parallelism: 10,
            provider_types: Vec::new(),
            default_provider: "local".to_string(),
            sites: Vec::new(),
            operation_timeout: Duration::from_secs(600),
            grace: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub settings: Arc<EngineSettings>,
    pub events: broadcast::Sender<Change>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    http: reqwest::Client,
    worker_id: String,
}

impl Engine {
    pub fn new(store: Store, settings: EngineSettings) -> Engine {
        let (events, _) = broadcast::channel(1024);
        let (stop, _) = watch::channel(false);
        Engine {
            store,
            settings: Arc::new(settings),
            events,
            wake: Arc::new(Notify::new()),
            stop,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
            worker_id: format!("{}-{}", hostname(), wire::new_uuid()),
        }
    }

    /// A new job is queued: wake an idle worker now instead of at its next poll.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// The providers for one deployment (the local provider keeps its sandboxes in the
    /// deployment's own directory, and finds them there after a crash).
    pub fn registry(&self, deployment: &str) -> Registry {
        let mut r = Registry::new(self.settings.default_provider.clone());
        r.add("local", Arc::new(providers::local::LocalProvider::with_workdir(self.workdir(deployment))) as Arc<dyn providers::Provider>);
        for (name, p) in &self.settings.sites {
            r.add(name.clone(), p.clone());
        }
        for (t, p) in &self.settings.provider_types {
            r.map_type(t.clone(), p.clone());
        }
        r
    }

    pub fn publish(&self, change: Change) {
        let _ = self.events.send(change);
    }

    /// Starts the worker pool; the handles end after `shutdown`.
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.settings.workers.max(1))
            .map(|i| {
                let e = self.clone();
                tokio::spawn(async move { e.worker(i).await })
            })
            .collect()
    }

    /// Stop taking jobs; running ones finish within the grace period or are handed back.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.wake.notify_waiters();
    }

    async fn worker(self, n: usize) {
        let owner = format!("{}#{n}", self.worker_id);
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let job = match self.store.lease_job(&owner, self.settings.lease.as_millis() as i64).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!("leasing a job failed: {e}");
                    None
                }
            };
            match job {
                Some(job) => self.run_leased(job, &owner, &mut stop).await,
                None => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn run_leased(&self, job: JobRow, owner: &str, stop: &mut watch::Receiver<bool>) {
        let lease_ms = self.settings.lease.as_millis() as i64;
        let (lost_tx, mut lost) = watch::channel(false);
        let hb = {
            let store = self.store.clone();
            let id = job.id.clone();
            let owner = owner.to_string();
            let every = self.settings.lease / 3;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store.heartbeat(&id, &owner, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!("heartbeat of job {id} failed: {e}"),
                    }
                }
            })
        };
        let work = self.execute(&job);
        tokio::pin!(work);
        let mut stopping = false;
        let outcome = loop {
            tokio::select! {
                r = &mut work => break Some(r),
                _ = lost.changed() => break None,
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                }
                _ = tokio::time::sleep(self.settings.grace), if stopping => {
                    // Not finished within the grace period: hand it back; whoever takes it
                    // re-plans from the state this run left (dropping `work` kills scripts).
                    hb.abort();
                    let _ = self.store.release_job(&job.id, owner).await;
                    return;
                }
            }
        };
        hb.abort();
        match outcome {
            Some(result) => {
                if let Err(e) = &result {
                    tracing::warn!("job {} ({} of {}) failed: {e}", job.id, job.kind, job.deployment_id);
                }
                let _ = self.store.finish_job(&job.id, owner, if result.is_ok() { "done" } else { "failed" }).await;
            }
            // Cancelled (DELETE while running) or taken over: stop here, change nothing more.
            None => tracing::info!("job {} of {} was cancelled or taken over", job.id, job.deployment_id),
        }
    }

    async fn execute(&self, job: &JobRow) -> Result<(), String> {
        let Some(d) = self.store.deployment(&job.deployment_id).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        match job.kind.as_str() {
            "create" | "update" => self.deploy(&d, job.kind == "update").await,
            "delete" => self.undeploy(&d).await,
            other => Err(format!("unknown job kind {other}")),
        }
    }

    async fn log(&self, id: &str, line: &str) {
        if let Err(e) = self.store.append_log(id, line).await {
            tracing::warn!("cannot append to the log of {id}: {e}");
        }
    }

    async fn set_status(&self, d: &DeploymentRow, status: Status, reason: Option<&str>) -> Result<(), String> {
        self.store.set_status(&d.id, status.as_str(), Some(reason), "NONE").await.map_err(|e| e.to_string())?;
        self.publish(Change::status(&d.id, status.as_str(), reason.map(str::to_string)));
        Ok(())
    }

    /// Upstream's callback: the deployment JSON without links, best effort, bounded timeout.
    async fn callback(&self, id: &str) {
        let Ok(Some(row)) = self.store.deployment(id).await else { return };
        let Some(url) = row.callback.clone() else { return };
        let body = present::deployment(&row, None);
        match self.http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!("callback {url} for {id} answered {}", r.status()),
            Err(e) => tracing::warn!("callback {url} for {id} failed: {e}"),
        }
    }

    fn backend(&self, id: &str) -> Arc<DbStateBackend> {
        Arc::new(DbStateBackend::new(self.store.clone(), id.to_string(), tokio::runtime::Handle::current()))
    }

    pub fn workdir(&self, id: &str) -> PathBuf {
        self.settings.data_dir.join("deployments").join(id)
    }

    async fn read_state(&self, backend: &Arc<DbStateBackend>) -> Result<StateDoc, String> {
        let b = backend.clone();
        tokio::task::spawn_blocking(move || b.read()).await.map_err(|e| e.to_string())?.map(|d| d.unwrap_or_else(|| StateDoc::new(String::new()))).map_err(|e| e.to_string())
    }

    /// The deadline of this run: `timeoutMins`, and `providerTimeoutMins` for the one attempt
    /// (this server has one provider per node type, so the attempt is the run).
    fn deadline(d: &DeploymentRow) -> Option<Duration> {
        let mins = |k: &str| d.options.get(k).and_then(Value::as_u64);
        match (mins("timeoutMins"), mins("providerTimeoutMins")) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|m| Duration::from_secs(m.saturating_mul(60)))
    }

    async fn deploy(&self, d: &DeploymentRow, update: bool) -> Result<(), String> {
        let id = d.id.clone();
        let failed = if update { Status::UpdateFailed } else { Status::CreateFailed };
        let mut topology = match deploy::compile(&d.template, &d.parameters, &self.settings.templates) {
            Ok(t) => t,
            Err(m) => {
                self.set_status(d, failed, Some(&m)).await?;
                self.callback(&id).await;
                return Err(m);
            }
        };
        let backend = self.backend(&id);
        let prior = self.read_state(&backend).await?;
        let (rows, _) = self.store.resources(&id, None, None).await.map_err(|e| e.to_string())?;
        // INDIGO's removal_list names resource uuids: translate them to instance addresses.
        let by_uuid: HashMap<&str, &str> = rows.iter().map(|r| (r.id.as_str(), r.address.as_str())).collect();
        for node in topology.nodes.values_mut() {
            if let Some(s) = node.scaling.as_mut() {
                for entry in s.removal_list.iter_mut() {
                    if let Some(a) = by_uuid.get(entry.as_str()) {
                        *entry = a.to_string();
                    }
                }
            }
        }
        let registry = self.registry(&id);
        let (inputs, _) = planner::planning::inputs_of(&topology);
        let digest = format!("params:{}", serde_json::to_string(&inputs).unwrap_or_default().len());
        let plan = planner::plan(&PlanRequest {
            topology: &topology,
            prior: &prior,
            registry: &registry,
            mode: PlanMode::Normal,
            replace: vec![],
            targets: vec![],
            base_dir: self.workdir(&id),
            template: format!("deployment {id}"),
            digest,
            refreshed: false,
            drift: vec![],
            created: planner::time::now(),
        });
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let m = e.to_string();
                self.set_status(d, failed, Some(&m)).await?;
                self.callback(&id).await;
                return Err(m);
            }
        };
        // Resource rows: new instances appear as CREATING, existing ones are (re)configured.
        self.sync_rows_before(&id, &topology, &prior, &rows, &plan, update).await?;
        let submitted = if update { Status::UpdateInProgress } else { Status::CreateInProgress };
        self.store.set_status(&id, submitted.as_str(), None, "DEPLOYER").await.map_err(|e| e.to_string())?;
        self.publish(Change::status(&id, submitted.as_str(), None));
        self.callback(&id).await;
        let counts = plan.counts();
        self.log(&id, &format!("{} started: {} to add, {} to change, {} to destroy", if update { "update" } else { "deployment" }, counts.add, counts.change, counts.destroy)).await;

        let (report, doc) = self.apply(&id, &plan, backend.clone(), prior, Self::deadline(d)).await;
        let ok = report.as_ref().map(|r| r.ok()).unwrap_or(false);
        let reason = failure_reason(&report);
        if !ok && !update && !d.options.get("keepLastAttempt").and_then(Value::as_bool).unwrap_or(false) {
            // Upstream cleans a failed attempt unless asked to keep it.
            self.log(&id, "the deployment failed: destroying what was created (keepLastAttempt is false)").await;
            let _ = self.destroy_all(&id, backend.clone()).await;
        }
        let doc = self.read_state(&backend).await.unwrap_or(doc);
        self.sync_rows_after(&id, &doc, ok).await?;
        let outputs: Map<String, Value> = doc.outputs.iter().map(|(k, o)| (k.clone(), o.value.clone())).collect();
        // The deployment's own physical id is its state's lineage (one per realized deployment).
        let physical = Some(doc.lineage.clone()).filter(|l| !l.is_empty());
        self.store.set_outputs(&id, &outputs, physical.as_deref(), Some("local")).await.map_err(|e| e.to_string())?;
        if ok {
            self.set_status(d, if update { Status::UpdateComplete } else { Status::CreateComplete }, None).await?;
            self.log(&id, &format!("{} complete", if update { "update" } else { "deployment" })).await;
        } else {
            self.set_status(d, failed, Some(&reason)).await?;
            self.log(&id, &format!("failed: {reason}")).await;
        }
        self.callback(&id).await;
        if ok {
            Ok(())
        } else {
            Err(reason)
        }
    }

    async fn undeploy(&self, d: &DeploymentRow) -> Result<(), String> {
        let id = d.id.clone();
        let backend = self.backend(&id);
        self.store.set_resource_states(&id, "DELETING", &[]).await.map_err(|e| e.to_string())?;
        self.log(&id, "undeployment started").await;
        match self.destroy_all(&id, backend).await {
            Ok(()) => {
                self.store.remove_deployment(&id).await.map_err(|e| e.to_string())?;
                let _ = std::fs::remove_dir_all(self.workdir(&id));
                self.publish(Change::status(&id, "DELETE_COMPLETE", None));
                Ok(())
            }
            Err(reason) => {
                self.set_status(d, Status::DeleteFailed, Some(&reason)).await?;
                self.store.set_resource_states(&id, "ERROR", &[]).await.map_err(|e| e.to_string())?;
                self.log(&id, &format!("undeployment failed: {reason}")).await;
                self.callback(&id).await;
                Err(reason)
            }
        }
    }

    async fn destroy_all(&self, id: &str, backend: Arc<DbStateBackend>) -> Result<(), String> {
        let prior = self.read_state(&backend).await?;
        if prior.resources.is_empty() {
            return Ok(());
        }
        let registry = self.registry(id);
        let empty = tosca::topology::Topology::default();
        let plan = planner::plan(&PlanRequest {
            topology: &empty,
            prior: &prior,
            registry: &registry,
            mode: PlanMode::Destroy,
            replace: vec![],
            targets: vec![],
            base_dir: self.workdir(id),
            template: format!("deployment {id}"),
            digest: String::new(),
            refreshed: false,
            drift: vec![],
            created: planner::time::now(),
        })
        .map_err(|e| e.to_string())?;
        let (report, _) = self.apply(id, &plan, backend, prior, None).await;
        match report {
            Ok(r) if r.ok() => Ok(()),
            other => Err(failure_reason(&other)),
        }
    }

    /// Runs the applier with progress going to the deployment's log and event stream.
    async fn apply(&self, id: &str, plan: &Plan, backend: Arc<DbStateBackend>, prior: StateDoc, deadline: Option<Duration>) -> (Result<planner::ApplyReport, String>, StateDoc) {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let logger = {
            let e = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    e.log(&id, &line).await;
                }
            })
        };
        let observer = Arc::new(LogObserver { tx, engine: self.clone(), deployment: id.to_string() });
        let writer = StateWriter::new(backend as Arc<dyn StateBackend>, prior);
        let registry = self.registry(id);
        let opts = ApplyOptions {
            parallelism: self.settings.parallelism,
            provider_limits: Default::default(),
            workdir: self.workdir(id),
            timeout: self.settings.operation_timeout,
            progress_every: Duration::from_secs(10),
        };
        // The walk runs on its own thread and runtime: the applier's tasks block on the state
        // writer's mutex while a state write is in flight, and they must not block the
        // server's runtime, which serves requests and drives the database IO that write waits
        // for. Dropping this future (cancelled, or the lease lost) stops the walk.
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let (plan, writer2, observer2) = (plan.clone(), writer.clone(), observer.clone() as Arc<dyn Observer>);
        let spawned = std::thread::Builder::new().name(format!("apply-{id}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done_tx.send(Some(Err(format!("cannot start the apply runtime: {e}"))));
                    return;
                }
            };
            let outcome = rt.block_on(async move {
                let walk = planner::apply(&plan, &registry, writer2, &opts, observer2);
                let timed = async move {
                    match deadline {
                        Some(d) => tokio::time::timeout(d, walk).await.map_err(|_| "Timeout: Maximum execution time exceeded.".to_string()),
                        None => Ok(walk.await),
                    }
                };
                tokio::select! {
                    r = timed => Some(r),
                    _ = cancelled => None,
                }
            });
            let _ = done_tx.send(outcome);
        });
        let report = match spawned {
            Ok(_) => match done.await {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => Err("the apply was cancelled".to_string()),
            },
            Err(e) => Err(format!("cannot start the apply thread: {e}")),
        };
        drop(cancel);
        let w = writer.clone();
        let doc = tokio::task::spawn_blocking(move || w.finish()).await.ok().and_then(Result::ok).unwrap_or_else(|| writer.snapshot());
        drop(observer);
        let _ = logger.await;
        (report, doc)
    }

    async fn sync_rows_before(&self, id: &str, topology: &tosca::topology::Topology, prior: &StateDoc, rows: &[ResourceRow], plan: &Plan, update: bool) -> Result<(), String> {
        let known: HashSet<&str> = rows.iter().map(|r| r.address.as_str()).collect();
        let creating: HashSet<&str> = plan.changes.iter().filter(|c| c.action.creates()).map(|c| c.address.as_str()).collect();
        for r in deploy::instance_rows(topology, prior, id, "CREATING") {
            if !known.contains(r.address.as_str()) {
                self.store.put_resource(&r).await.map_err(|e| e.to_string())?;
            }
        }
        let deleting: HashSet<&str> = plan.changes.iter().filter(|c| c.action == planner::Action::Delete).map(|c| c.address.as_str()).collect();
        for r in rows {
            let state = if deleting.contains(r.address.as_str()) {
                "DELETING"
            } else if creating.contains(r.address.as_str()) {
                "CREATING"
            } else if update {
                "CONFIGURING"
            } else {
                "CREATING"
            };
            if r.state != state {
                let mut r2 = r.clone();
                r2.state = state.into();
                r2.updated_at = wire::now_millis();
                self.store.put_resource(&r2).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// After a run: rows follow state (physical ids, STARTED or ERROR); rows of instances no
    /// longer in state are removed.
    async fn sync_rows_after(&self, id: &str, doc: &StateDoc, ok: bool) -> Result<(), String> {
        let (rows, _) = self.store.resources(id, None, None).await.map_err(|e| e.to_string())?;
        for r in rows {
            match doc.resource(&r.address) {
                Some(s) => {
                    let mut r2 = r.clone();
                    r2.physical_id = s.id.clone();
                    r2.state = match (s.status, ok) {
                        (state::ResourceStatus::Created, _) => "STARTED",
                        _ => "ERROR",
                    }
                    .into();
                    r2.metadata = s.attributes.iter().filter(|(k, _)| !k.starts_with('_')).map(|(k, v)| (k.clone(), match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })).collect();
                    for p in &s.sensitive {
                        r2.metadata.remove(p.rsplit('.').next().unwrap_or(p));
                    }
                    r2.updated_at = wire::now_millis();
                    if r2 != r {
                        self.store.put_resource(&r2).await.map_err(|e| e.to_string())?;
                        self.publish(Change { deployment: id.into(), kind: "resource", status: None, resource: Some(r2.id.clone()), address: None, state: Some(r2.state.clone()), message: None });
                    }
                }
                None if ok || r.state == "DELETING" => self.store.delete_resource(&r.id).await.map_err(|e| e.to_string())?,
                None => {
                    let mut r2 = r.clone();
                    r2.state = "ERROR".into();
                    self.store.put_resource(&r2).await.map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}

fn failure_reason(report: &Result<planner::ApplyReport, String>) -> String {
    match report {
        Err(m) => m.clone(),
        Ok(r) => {
            let mut parts: Vec<String> = r.failed.iter().map(|(a, _, m)| format!("{a}: {m}")).collect();
            if let Some(e) = &r.state_error {
                parts.push(e.clone());
            }
            if !r.skipped.is_empty() {
                parts.push(format!("skipped because a dependency failed: {}", r.skipped.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>().join(", ")));
            }
            if parts.is_empty() {
                "the operation did not complete".into()
            } else {
                parts.join("\n")
            }
        }
    }
}

struct LogObserver {
    tx: mpsc::UnboundedSender<String>,
    engine: Engine,
    deployment: String,
}

impl Observer for LogObserver {
    fn event(&self, event: Event) {
        let line = match &event {
            Event::Started { address, phase } => format!("{address}: {}...", phase.verb().0),
            Event::Still { address, phase, elapsed, detail } => {
                format!("{address}: Still {}... [{}s elapsed]{}", phase.verb().0.to_lowercase(), elapsed.as_secs(), detail.as_ref().map(|d| format!(" {d}")).unwrap_or_default())
            }
            Event::Done { address, phase, elapsed, id } => format!("{address}: {} complete after {}s{}", phase.verb().1, elapsed.as_secs(), id.as_ref().map(|i| format!(" [id={i}]")).unwrap_or_default()),
            Event::Failed { address, phase, message } => format!("{address}: {} failed: {message}", phase.verb().1),
            Event::Skipped { address, because, .. } => format!("{address}: skipped because {because} failed"),
        };
        let _ = self.tx.send(line);
        if let Event::Done { address, .. } | Event::Failed { address, .. } = &event {
            self.engine.publish(Change { deployment: self.deployment.clone(), kind: "progress", status: None, resource: None, address: Some(address.clone()), state: Some(if matches!(event, Event::Done { .. }) { "done" } else { "failed" }.into()), message: None });
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "rosca".into())
}

pub fn json_options(req: &crate::wire::DeploymentRequest) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(v) = req.timeout_mins {
        m.insert("timeoutMins".into(), json!(v));
    }
    if let Some(v) = req.provider_timeout_mins {
        m.insert("providerTimeoutMins".into(), json!(v));
    }
    if let Some(v) = req.max_providers_retry {
        m.insert("maxProvidersRetry".into(), json!(v));
    }
    m.insert("keepLastAttempt".into(), json!(req.keep_last_attempt.unwrap_or(false)));
    m
}
