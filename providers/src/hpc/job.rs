//! A batch job as the HPC provider sees it, whatever the scheduler: what to run ([`JobSpec`]),
//! where it is ([`JobStatus`], [`Phase`]) and the one trait every scheduler client implements
//! ([`Scheduler`]). Plain data, no IO: the Slurm and QCG modules translate to and from their
//! wire formats.

use crate::api::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What to run and with which resources. Fields a scheduler cannot express are refused by its
/// `submit` with a message naming the property, never silently dropped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The scheduler's job name (Slurm `--job-name`); Rosca uses the instance address.
    pub name: String,
    /// A batch script (with or without a `#!` line). Exactly one of `script` and `executable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    /// Memory per node, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Wall-clock limit, in minutes (Slurm's unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_minutes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Paths for the job's stdout and stderr (Slurm patterns such as `%j` allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Job ids that must complete successfully before this one starts, enforced by the
    /// scheduler (Slurm `afterok`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_ok: Vec<String>,
    /// Scheduler-specific properties of the node that have no common field (QCG's `schema`,
    /// `note`, remove conditions, ...), as written in the template.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

/// Where a job is in its life, in the terms the provider acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Accepted, not yet running (Slurm PENDING, QCG FRESH/QUEUED).
    Queued,
    Running,
    /// Finished successfully (Slurm COMPLETED, QCG SUCCESS).
    Succeeded,
    /// Finished otherwise: failed, timed out, out of memory, node failure.
    Failed,
    Cancelled,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }
}

/// One look at a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    /// The scheduler's own state name (`COMPLETED`, `OUT_OF_MEMORY`, `SUCCESS`), shown to users.
    pub state: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why the job is in this state, as the scheduler says it (Slurm `state_reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// Why a scheduler call failed. `message` is the scheduler's own words (Slurm's error list, QCG's
/// message), never a token.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SchedulerError {
    pub kind: SchedulerErrorKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerErrorKind {
    /// No answer, 5xx, 429: retried already, still failing.
    Transient,
    /// The token was refused (and renewing it did not help).
    Auth,
    /// The scheduler refused the request (bad partition, invalid script, ...).
    Rejected,
    /// Configuration: no endpoint, no API version in common, no credentials.
    Setup,
}

impl SchedulerError {
    pub fn new(kind: SchedulerErrorKind, message: impl Into<String>) -> SchedulerError {
        SchedulerError { kind, message: message.into() }
    }
}

/// A batch system reached over REST. Object-safe, so the provider holds `Arc<dyn Scheduler>` and
/// tests can swap one in.
pub trait Scheduler: Send + Sync {
    /// `slurm` or `qcg`, for messages.
    fn kind(&self) -> &'static str;

    /// Where it is (`http://127.0.0.1:6820, API v0.0.38`), for messages and state.
    fn endpoint(&self) -> String;

    /// Checks reachability and credentials before an apply.
    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), SchedulerError>>;

    /// Submits and returns the job id.
    fn submit<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<String, SchedulerError>>;

    /// The job's status; `None` when the scheduler no longer knows the id (purged).
    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>, SchedulerError>>;

    /// Cancels a queued or running job. Cancelling a finished or unknown job succeeds.
    fn cancel<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), SchedulerError>>;
}
