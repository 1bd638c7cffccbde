//! Batch jobs on HPC sites (issue 7): TOSCA job nodes planned and applied like any other node,
//! submitted through a scheduler's REST gateway. `job` is the scheduler-neutral model and the
//! [`Scheduler`] trait; `http` the retrying JSON client the gateways share.

pub mod http;
pub mod job;
pub mod qcg;

pub use job::{JobSpec, JobStatus, Phase, Scheduler, SchedulerError, SchedulerErrorKind};
