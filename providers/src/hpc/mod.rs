//! Batch jobs on HPC sites (issue 7): TOSCA job nodes planned and applied like any other node,
//! submitted through a scheduler's REST gateway. `job` is the scheduler-neutral model and the
//! [`Scheduler`] trait; `http` the retrying JSON client the gateways share; `spec` reads a
//! node's config into a [`JobSpec`]; `slurm` speaks slurmrestd; `site` reads `[sites.NAME]`.
//!
//! Lifecycle: create = submit, then (unless `wait: false`) poll until the job ends; a job that
//! does not succeed fails the action with its state, exit code and reason, and stays in state
//! as tainted. read = the job's status (a job the controller purged keeps its last recorded
//! status). delete = cancel when still queued or running. Every property change re-submits.

pub mod http;
pub mod job;
pub mod qcg;
pub mod site;
pub mod slurm;
pub mod spec;
pub mod values;

pub use job::{JobSpec, JobStatus, Phase, Scheduler, SchedulerError, SchedulerErrorKind};

use crate::api::{ApplyRequest, BoxFuture, Provider, ProviderError, ProviderSchema, Realized, ResourceSchema};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rosca's batch job type (tosca/types/rosca.yaml).
pub const BATCH_JOB: &str = "rosca.nodes.hpc.BatchJob";

/// The INDIGO-DataCloud job type (indigo-dc/tosca-types `custom_types.yaml`), mapped to a job
/// as the INDIGO orchestrator's QCG provider does ([`qcg::indigo_job`]).
pub const QCG_JOB: &str = "tosca.nodes.indigo.Qcg.Job";

/// Every job type, most specific first.
pub const JOB_TYPES: &[&str] = &[QCG_JOB, BATCH_JOB];

/// How often a running job is looked at: from `first`, growing by half each time up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
}

impl Default for PollPolicy {
    fn default() -> PollPolicy {
        PollPolicy { first: Duration::from_millis(500), max: Duration::from_secs(10) }
    }
}

pub struct HpcProvider {
    site: String,
    scheduler: Arc<dyn Scheduler>,
    schema: ProviderSchema,
    poll: PollPolicy,
}

impl HpcProvider {
    pub fn new(site: &str, scheduler: Arc<dyn Scheduler>, poll: PollPolicy) -> HpcProvider {
        HpcProvider { site: site.to_string(), schema: schema(site), scheduler, poll }
    }

    /// The job of this request: its spec from the node's config, plus the scheduler-side
    /// dependencies on jobs it requires that were left running (`wait: false`).
    fn job(&self, req: &ApplyRequest) -> Result<JobSpec, ProviderError> {
        let mut job = if req.types.iter().any(|t| t == QCG_JOB) {
            let empty = Map::new();
            let props = req.config.get("properties").and_then(Value::as_object).unwrap_or(&empty);
            qcg::indigo_job(props, &req.address).map_err(ProviderError::new)?
        } else if req.types.iter().any(|t| t == BATCH_JOB) {
            spec::batch_job(&req.config, &req.address).map_err(|m| ProviderError::new(format!("{}: {m}", req.address)))?
        } else {
            return Err(ProviderError::new(format!(
                "the {} site {} runs {} nodes only, not {}; map this node type to another provider in [providers] of rosca.toml",
                self.scheduler.kind(),
                self.site,
                JOB_TYPES.join(" and "),
                req.types.first().map(String::as_str).unwrap_or("this node")
            )));
        };
        for rel in &req.relationships {
            let attrs = &rel.target_attributes;
            let id = attrs.get("job_id").and_then(Value::as_str);
            // A job it requires that has not ended was left to the scheduler to order.
            let running = attrs.get("end_time").is_none_or(Value::is_null);
            if let (Some(id), true) = (id, running) {
                if !job.after_ok.iter().any(|j| j == id) {
                    job.after_ok.push(id.to_string());
                }
            }
        }
        Ok(job)
    }

    fn realized(&self, req_node: &str, status: &JobStatus) -> Realized {
        Realized {
            id: status.id.clone(),
            attributes: attributes(req_node, status),
            outputs: Default::default(),
            private: json!({"kind": "hpc-job", "scheduler": self.scheduler.kind(), "endpoint": self.scheduler.endpoint(), "job_id": status.id, "status": status}),
            observed: None, tainted: None,
        }
    }

    /// Polls until the job ends, telling the applier's progress line what it waits for.
    async fn wait(&self, req: &ApplyRequest, id: &str) -> Result<JobStatus, ProviderError> {
        let start = Instant::now();
        let mut delay = self.poll.first;
        let mut last: Option<JobStatus> = None;
        loop {
            match self.scheduler.status(id).await {
                Ok(Some(s)) => {
                    let reason = s.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
                    req.status.set(format!("job {id} {}{reason}", s.state));
                    if s.phase.is_terminal() {
                        return Ok(s);
                    }
                    last = Some(s);
                }
                Ok(None) => {
                    let seen = last.as_ref().map(|s| format!(" (last seen {})", s.state)).unwrap_or_default();
                    return Err(self.partial(req, id, last.as_ref(), format!("job {id} disappeared from {}{seen} before it ended", self.scheduler.endpoint())));
                }
                Err(e) => return Err(self.partial(req, id, last.as_ref(), format!("job {id}: {e}"))),
            }
            if start.elapsed() >= req.timeout {
                let state = last.as_ref().map(|s| s.state.as_str()).unwrap_or("unknown");
                return Err(self.partial(
                    req,
                    id,
                    last.as_ref(),
                    format!(
                        "job {id} is still {state} after {} (the timeout: --timeout, or [apply] timeout of rosca.toml); it keeps running on {}, and the node is tainted: the next `rosca apply` cancels and re-submits it, `rosca destroy` cancels it; for jobs this long raise the timeout, or set wait: false to leave the job to the scheduler",
                        humantime::format_duration(Duration::from_secs(req.timeout.as_secs()))
                    , self.site),
                ));
            }
            tokio::time::sleep(delay.min(req.timeout.saturating_sub(start.elapsed())).max(Duration::from_millis(50))).await;
            delay = (delay * 3 / 2).min(self.poll.max);
        }
    }

    /// A failure after the job exists: state keeps it (tainted), so it is cancelled or
    /// re-submitted by the next apply.
    fn partial(&self, req: &ApplyRequest, id: &str, last: Option<&JobStatus>, message: String) -> ProviderError {
        let status = last.cloned().unwrap_or(JobStatus {
            id: id.to_string(),
            state: "SUBMITTED".into(),
            phase: Phase::Queued,
            exit_code: None,
            reason: None,
            start_time: None,
            end_time: None,
            stdout: None,
            stderr: None,
        });
        ProviderError { message: format!("{}: {message}", req.address), retryable: false, partial: Some(Box::new(self.realized(&req.node, &status))) }
    }

    fn failure(&self, e: SchedulerError) -> ProviderError {
        ProviderError { message: e.message, retryable: e.kind == SchedulerErrorKind::Transient, partial: None }
    }
}

/// The attributes of a job node (rosca.yaml's `rosca.nodes.hpc.BatchJob`).
fn attributes(node: &str, s: &JobStatus) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("tosca_id".into(), json!(s.id));
    a.insert("tosca_name".into(), json!(node));
    a.insert("state".into(), json!(s.phase));
    a.insert("job_id".into(), json!(s.id));
    a.insert("job_state".into(), json!(s.state));
    a.insert("exit_code".into(), s.exit_code.map_or(Value::Null, |c| json!(c)));
    a.insert("start_time".into(), s.start_time.as_ref().map_or(Value::Null, |t| json!(t)));
    a.insert("end_time".into(), s.end_time.as_ref().map_or(Value::Null, |t| json!(t)));
    a.insert("stdout".into(), s.stdout.as_ref().map_or(Value::Null, |t| json!(t)));
    a.insert("stderr".into(), s.stderr.as_ref().map_or(Value::Null, |t| json!(t)));
    a
}

fn job_id(prior: &ResourceState) -> Option<String> {
    prior.private.get("job_id").and_then(Value::as_str).map(str::to_string).or_else(|| prior.id.clone())
}

fn schema(site: &str) -> ProviderSchema {
    let attrs = ["tosca_id", "tosca_name", "state", "job_id", "job_state", "exit_code", "start_time", "end_time", "stdout", "stderr"];
    ProviderSchema {
        name: site.to_string(),
        resources: JOB_TYPES
            .iter()
            .map(|ty| ResourceSchema {
                node_type: ty.to_string(),
                // A job runs once: any change means running it again.
                force_replace: vec!["properties".into(), "artifacts".into()],
                update_all: false,
                update_in_place: Vec::new(),
                attributes: attrs.iter().map(|s| s.to_string()).collect(),
                update_notes: Vec::new(),
            })
            .collect(),
    }
}

impl Provider for HpcProvider {
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }

    fn preflight<'a>(&'a self) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { self.scheduler.check().await.map_err(|e| self.failure(e)) })
    }

    fn create<'a>(&'a self, req: &'a ApplyRequest) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(async move {
            let job = self.job(req)?;
            let id = self.scheduler.submit(&job).await.map_err(|e| ProviderError {
                message: format!("{}: {}", req.address, e.message),
                retryable: false,
                partial: None,
            })?;
            req.status.set(format!("job {id} submitted"));
            tracing::info!(address = %req.address, job = %id, "submitted to {}", self.scheduler.endpoint());
            if !spec::waits(&req.config) {
                // Left to the scheduler: report what it is now, best effort.
                let status = match self.scheduler.status(&id).await {
                    Ok(Some(s)) => s,
                    _ => return Ok(self.realized(&req.node, &JobStatus { id: id.clone(), state: "SUBMITTED".into(), phase: Phase::Queued, exit_code: None, reason: None, start_time: None, end_time: None, stdout: None, stderr: None })),
                };
                if status.phase.is_terminal() && status.phase != Phase::Succeeded {
                    return Err(self.partial(req, &id, Some(&status), ended(&status)));
                }
                return Ok(self.realized(&req.node, &status));
            }
            let status = self.wait(req, &id).await?;
            if status.phase == Phase::Succeeded {
                Ok(self.realized(&req.node, &status))
            } else {
                if status.phase == Phase::Failed && status.state == "PENDING" {
                    // Never runnable (a job it depends on failed): do not leave it queued.
                    let _ = self.scheduler.cancel(&id).await;
                }
                Err(self.partial(req, &id, Some(&status), ended(&status)))
            }
        })
    }

    fn update<'a>(&'a self, _prior: &'a ResourceState, req: &'a ApplyRequest, _operations: &'a [String]) -> BoxFuture<'a, Result<Realized, ProviderError>> {
        Box::pin(async move { Err(ProviderError::new(format!("{}: a batch job cannot change in place; it is re-submitted (the plan replaces it)", req.address))) })
    }

    fn read<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<Option<Realized>, ProviderError>> {
        Box::pin(async move {
            let Some(id) = job_id(prior) else { return Ok(None) };
            match self.scheduler.status(&id).await.map_err(|e| self.failure(e))? {
                Some(s) => {
                    let mut r = self.realized(&prior.node, &s);
                    // A job left to the scheduler (`wait: false`) that did not succeed was
                    // never seen failing by an apply: taint it so the next plan re-submits it.
                    if s.phase.is_terminal() && s.phase != Phase::Succeeded && !spec::waits(&prior.config) {
                        r.tainted = Some(ended(&s));
                    }
                    Ok(Some(r))
                }
                // Purged by the controller (MinJobAge): what was recorded stays true.
                None => Ok(Some(Realized { id, attributes: prior.attributes.clone(), outputs: prior.outputs.clone(), private: prior.private.clone(), observed: None, tainted: None })),
            }
        })
    }

    fn delete<'a>(&'a self, prior: &'a ResourceState) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let Some(id) = job_id(prior) else { return Ok(()) };
            let Some(status) = self.scheduler.status(&id).await.map_err(|e| self.failure(e))? else { return Ok(()) };
            if !in_queue(&status) {
                return Ok(());
            }
            self.scheduler.cancel(&id).await.map_err(|e| self.failure(e))?;
            // Cancelled means gone from the queue: wait until the scheduler says it ended.
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut delay = self.poll.first;
            loop {
                match self.scheduler.status(&id).await.map_err(|e| self.failure(e))? {
                    None => return Ok(()),
                    Some(s) if !in_queue(&s) => return Ok(()),
                    Some(s) if Instant::now() >= deadline => {
                        return Err(ProviderError::new(format!("{}: job {id} is still {} 120 s after it was cancelled; check the site", prior.address, s.state)))
                    }
                    Some(_) => {}
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 3 / 2).min(self.poll.max);
            }
        })
    }
}

/// Whether the job still sits in the scheduler's queue. A Slurm job whose afterok dependency
/// failed counts as failed (it can never run) but stays PENDING until cancelled.
fn in_queue(s: &JobStatus) -> bool {
    !s.phase.is_terminal() || (s.phase == Phase::Failed && s.state == "PENDING")
}

/// Why a finished job counts as failed, in the scheduler's words.
fn ended(s: &JobStatus) -> String {
    let mut m = format!("job {} ended {}", s.id, s.state);
    if let Some(c) = s.exit_code {
        m.push_str(&format!(" with exit code {c}"));
    }
    if let Some(r) = &s.reason {
        m.push_str(&format!(" (reason: {r})"));
    }
    if let Some(out) = &s.stdout {
        m.push_str(&format!("; its output is in {out} on the site"));
    }
    m
}
