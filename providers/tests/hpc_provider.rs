//! The HPC provider's lifecycle (create waits, `wait: false`, dependencies handed to the
//! scheduler, failures kept as partial, purged jobs, cancel on delete, timeouts) against a
//! scripted in-process scheduler, and an INDIGO `Qcg.Job` node end to end against the QCG fake.
//! Slurm itself is exercised through the binary in cli/tests/hpc.rs.

#![cfg(feature = "hpc")]

#[path = "support/qcg_fake.rs"]
mod qcg_fake;


#[path = "support/recorded.rs"]
mod recorded;

use providers::hpc::qcg::{QcgAuth, QcgScheduler};
use providers::hpc::{HpcProvider, JobSpec, JobStatus, Phase, PollPolicy, Scheduler, SchedulerError, BATCH_JOB, QCG_JOB};
use providers::retry::RetryPolicy;
use providers::{ApplyRequest, BoxFuture, Provider, Realized, RelationshipSpec, Resolver};
use serde_json::{json, Map, Value};
use state::ResourceState;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct NoResolve;

impl Resolver for NoResolve {
    fn resolve(&self, value: &Value, _: &Map<String, Value>, _: &BTreeMap<String, Map<String, Value>>) -> Result<Value, String> {
        Ok(value.clone())
    }
}

/// A scheduler whose jobs walk through a scripted list of (state, phase) looks; records what it
/// was asked.
#[derive(Default)]
struct Scripted {
    submitted: Mutex<Vec<JobSpec>>,
    cancelled: Mutex<Vec<String>>,
    /// The looks every job goes through; the last one repeats.
    script: Mutex<Vec<(&'static str, Phase, Option<i64>)>>,
    looks: Mutex<usize>,
    /// When true, the job is unknown to `status` (purged).
    purged: Mutex<bool>,
}

impl Scripted {
    fn with(script: Vec<(&'static str, Phase, Option<i64>)>) -> Arc<Scripted> {
        Arc::new(Scripted { script: Mutex::new(script), ..Default::default() })
    }
}

impl Scheduler for Scripted {
    fn kind(&self) -> &'static str {
        "slurm"
    }
    fn endpoint(&self) -> String {
        "scripted".into()
    }
    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), SchedulerError>> {
        Box::pin(async { Ok(()) })
    }
    fn submit<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<String, SchedulerError>> {
        let mut s = self.submitted.lock().unwrap();
        s.push(job.clone());
        let id = (100 + s.len()).to_string();
        Box::pin(async move { Ok(id) })
    }
    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>, SchedulerError>> {
        let out = if *self.purged.lock().unwrap() {
            None
        } else {
            let script = self.script.lock().unwrap();
            let mut n = self.looks.lock().unwrap();
            let (state, phase, exit) = script[(*n).min(script.len() - 1)];
            *n += 1;
            let done = phase.is_terminal();
            Some(JobStatus {
                id: id.to_string(),
                state: state.into(),
                phase,
                exit_code: exit,
                reason: None,
                start_time: Some("2026-11-22T10:00:00Z".into()),
                end_time: done.then(|| "2026-11-22T10:00:05Z".into()),
                stdout: Some(format!("/scratch/slurm-{id}.out")),
                stderr: None,
            })
        };
        Box::pin(async move { Ok(out) })
    }
    fn cancel<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), SchedulerError>> {
        self.cancelled.lock().unwrap().push(id.to_string());
        *self.script.lock().unwrap() = vec![("CANCELLED", Phase::Cancelled, None)];
        Box::pin(async { Ok(()) })
    }
}

fn fast() -> PollPolicy {
    PollPolicy { first: Duration::from_millis(5), max: Duration::from_millis(10) }
}

fn req(address: &str, types: &[&str], properties: Value) -> ApplyRequest {
    ApplyRequest {
        address: address.into(),
        node: address.split('[').next().unwrap_or(address).into(),
        index: None,
        types: types.iter().map(|t| t.to_string()).collect(),
        config: json!({"properties": properties}),
        operations: BTreeMap::new(),
        relationships: Vec::new(),
        hosts: Vec::new(),
        workdir: std::env::temp_dir(),
        timeout: Duration::from_secs(10),
        resolver: Arc::new(NoResolve),
        status: Default::default(),
    }
}

fn state_of(req: &ApplyRequest, r: &Realized) -> ResourceState {
    recorded::recorded(req, r, "hpc")
}

const JOB: &[&str] = &[BATCH_JOB, "tosca.nodes.Root"];

#[tokio::test]
async fn create_waits_until_the_job_completed_and_reports_its_attributes() {
    let s = Scripted::with(vec![("PENDING", Phase::Queued, None), ("RUNNING", Phase::Running, None), ("COMPLETED", Phase::Succeeded, Some(0))]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let r = req("sim", JOB, json!({"script": "echo hi"}));
    let out = p.create(&r).await.unwrap();
    assert_eq!(out.id, "101");
    assert_eq!(out.attributes["job_state"], json!("COMPLETED"));
    assert_eq!(out.attributes["exit_code"], json!(0));
    assert_eq!(out.attributes["stdout"], json!("/scratch/slurm-101.out"));
    assert_eq!(*s.looks.lock().unwrap(), 3, "looked until the job ended");
    assert_eq!(r.status.get().as_deref(), Some("job 101 COMPLETED"), "the progress line says what it waited for");
    assert_eq!(s.submitted.lock().unwrap()[0].script.as_deref(), Some("#!/bin/sh\necho hi"));
}

#[tokio::test]
async fn a_failed_job_fails_the_action_and_is_kept_as_partial() {
    let s = Scripted::with(vec![("RUNNING", Phase::Running, None), ("FAILED", Phase::Failed, Some(3))]);
    let p = HpcProvider::new("hpc", s, fast());
    let e = p.create(&req("sim", JOB, json!({"executable": "/bin/false"}))).await.unwrap_err();
    assert!(e.message.contains("job 101 ended FAILED with exit code 3"), "{}", e.message);
    let partial = e.partial.expect("the job exists: state keeps it");
    assert_eq!((partial.id.as_str(), &partial.attributes["exit_code"]), ("101", &json!(3)));
}

#[tokio::test]
async fn wait_false_returns_once_queued_and_dependents_are_ordered_by_the_scheduler() {
    let s = Scripted::with(vec![("PENDING", Phase::Queued, None)]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let first = p.create(&req("first", JOB, json!({"script": "sleep 60", "wait": false}))).await.unwrap();
    assert_eq!(first.attributes["job_state"], json!("PENDING"));
    assert_eq!(first.attributes["end_time"], Value::Null);

    let mut second = req("second", JOB, json!({"script": "true", "wait": false}));
    second.relationships = vec![RelationshipSpec {
        requirement: "dependency".into(),
        type_name: "tosca.relationships.DependsOn".into(),
        target: "first".into(),
        target_attributes: first.attributes.clone(),
        ..Default::default()
    }];
    p.create(&second).await.unwrap();
    // A dependency that already ended is not handed to the scheduler.
    let mut done = first.attributes.clone();
    done.insert("end_time".into(), json!("2026-11-22T10:00:05Z"));
    let mut third = req("third", JOB, json!({"script": "true", "wait": false}));
    third.relationships = vec![RelationshipSpec { target: "first".into(), target_attributes: done, ..Default::default() }];
    p.create(&third).await.unwrap();
    let submitted = s.submitted.lock().unwrap();
    assert_eq!(submitted[1].after_ok, vec!["101".to_string()]);
    assert!(submitted[2].after_ok.is_empty());
}

#[tokio::test]
async fn a_timeout_leaves_the_job_running_and_in_state() {
    let s = Scripted::with(vec![("RUNNING", Phase::Running, None)]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let mut r = req("long", JOB, json!({"script": "sleep 600"}));
    r.timeout = Duration::from_millis(60);
    let e = p.create(&r).await.unwrap_err();
    assert!(e.message.contains("still RUNNING") && e.message.contains("--timeout"), "{}", e.message);
    assert!(e.partial.is_some());
    assert!(s.cancelled.lock().unwrap().is_empty(), "a timeout does not cancel the job");
}

#[tokio::test]
async fn delete_cancels_a_running_job_and_leaves_a_finished_one_alone() {
    let s = Scripted::with(vec![("COMPLETED", Phase::Succeeded, Some(0))]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let r = req("sim", JOB, json!({"script": "true"}));
    let done = p.create(&r).await.unwrap();
    p.delete(&state_of(&r, &done)).await.unwrap();
    assert!(s.cancelled.lock().unwrap().is_empty());

    *s.script.lock().unwrap() = vec![("RUNNING", Phase::Running, None)];
    p.delete(&state_of(&r, &done)).await.unwrap();
    assert_eq!(*s.cancelled.lock().unwrap(), vec!["101".to_string()]);
}

#[tokio::test]
async fn a_job_left_to_the_scheduler_that_failed_reads_as_tainted() {
    let s = Scripted::with(vec![("PENDING", Phase::Queued, None)]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let r = req("later", JOB, json!({"script": "exit 3", "wait": false}));
    let queued = p.create(&r).await.unwrap();
    assert_eq!(p.read(&state_of(&r, &queued)).await.unwrap().unwrap().tainted, None, "still queued");
    *s.script.lock().unwrap() = vec![("FAILED", Phase::Failed, Some(3))];
    let read = p.read(&state_of(&r, &queued)).await.unwrap().unwrap();
    assert!(read.tainted.as_deref().is_some_and(|t| t.contains("ended FAILED with exit code 3")), "{read:?}");
    // A job Rosca waited for and saw succeed is never tainted by a read.
    let waited = req("sim", JOB, json!({"script": "true"}));
    *s.script.lock().unwrap() = vec![("COMPLETED", Phase::Succeeded, Some(0))];
    let done = p.create(&waited).await.unwrap();
    assert_eq!(p.read(&state_of(&waited, &done)).await.unwrap().unwrap().tainted, None);
}

#[tokio::test]
async fn a_purged_job_keeps_its_last_recorded_state() {
    let s = Scripted::with(vec![("COMPLETED", Phase::Succeeded, Some(0))]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let r = req("sim", JOB, json!({"script": "true"}));
    let done = p.create(&r).await.unwrap();
    *s.purged.lock().unwrap() = true;
    let read = p.read(&state_of(&r, &done)).await.unwrap().expect("still there as far as Rosca knows");
    assert_eq!(read.attributes, done.attributes);
    p.delete(&state_of(&r, &done)).await.unwrap();
}

#[tokio::test]
async fn a_node_that_is_not_a_job_or_has_a_bad_property_is_refused_before_submitting() {
    let s = Scripted::with(vec![("COMPLETED", Phase::Succeeded, Some(0))]);
    let p = HpcProvider::new("hpc", s.clone(), fast());
    let e = p.create(&req("vm", &["tosca.nodes.Compute", "tosca.nodes.Root"], json!({}))).await.unwrap_err();
    assert!(e.message.contains("runs tosca.nodes.indigo.Qcg.Job and rosca.nodes.hpc.BatchJob nodes only"), "{}", e.message);
    let e = p.create(&req("sim", JOB, json!({"script": "x", "nodes": 0}))).await.unwrap_err();
    assert_eq!(e.message, "sim: `properties.nodes` must be a whole number of at least 1, found 0");
    assert!(s.submitted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_indigo_qcg_job_runs_on_qcg_computing() {
    let fake = qcg_fake::QcgFake::start("tok-provider").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-provider\n").unwrap();
    let retry = RetryPolicy { attempts: 3, base: Duration::from_millis(5), max: Duration::from_millis(10) };
    let qcg = QcgScheduler::new(&fake.url(), QcgAuth::from_file(&token), retry, Duration::from_secs(5)).unwrap();
    let p = HpcProvider::new("qcg", Arc::new(qcg), fast());
    let types = &[QCG_JOB, "tosca.nodes.indigo.Batch.Job", "tosca.nodes.Root"];
    let ok = req("hello", types, json!({"executable": "/bin/echo", "arguments": ["hi"], "directory": "/home/u"}));
    let done = p.create(&ok).await.unwrap();
    assert_eq!(done.attributes["job_state"], json!("FINISHED"));
    let sent = fake.job(&done.id).expect("the fake has the job").description;
    assert_eq!(sent["execution"]["executable"], json!("/bin/echo"), "{sent}");

    let e = p.create(&req("bad", types, json!({"executable": "/bin/false"}))).await.unwrap_err();
    assert!(e.message.contains("FAILED") && e.message.contains("exit code 1"), "{}", e.message);
    assert!(e.partial.is_some());
}
