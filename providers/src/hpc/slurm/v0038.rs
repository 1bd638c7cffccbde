//! slurmrestd `v0.0.38` (Slurm 22.05, Debian bookworm). Shapes from the OpenAPI document that
//! server serves (`providers/tests/data/slurm/`): the submit body is `{"script", "job":
//! {..}}` with the environment as a map and `time_limit` in minutes; a job's `exit_code` is the
//! raw wait status (`exit 3` → 768) and times are seconds since the epoch.

use super::super::job::{JobSpec, JobStatus};
use super::{batch_script, dependency, environment, script_arguments, status_of, Dialect, JobFields};
use serde_json::{json, Map, Value};

pub struct V0038;

impl Dialect for V0038 {
    fn version(&self) -> &'static str {
        "v0.0.38"
    }

    fn submit_body(&self, job: &JobSpec) -> Result<Value, String> {
        let mut j = Map::new();
        j.insert("name".into(), json!(job.name));
        j.insert("environment".into(), json!(environment(job)));
        put(&mut j, "current_working_directory", job.working_directory.as_ref().map(|d| json!(d)));
        put(&mut j, "nodes", job.nodes.map(|n| json!([n, n])));
        put(&mut j, "tasks", job.tasks.map(|n| json!(n)));
        put(&mut j, "cpus_per_task", job.cpus_per_task.map(|n| json!(n)));
        put(&mut j, "memory_per_node", job.memory_mib.map(|n| json!(n)));
        put(&mut j, "time_limit", job.time_limit_minutes.map(|n| json!(n)));
        put(&mut j, "partition", job.partition.as_ref().map(|p| json!(p)));
        put(&mut j, "account", job.account.as_ref().map(|a| json!(a)));
        put(&mut j, "standard_output", job.stdout.as_ref().map(|p| json!(p)));
        put(&mut j, "standard_error", job.stderr.as_ref().map(|p| json!(p)));
        put(&mut j, "dependency", dependency(job).map(|d| json!(d)));
        if !job.extensions.is_empty() {
            let keys: Vec<&String> = job.extensions.keys().collect();
            return Err(format!("Slurm has no place for {keys:?} (properties of another scheduler's job type)"));
        }
        Ok(json!({"script": with_arguments(&batch_script(job)?, &script_arguments(job))?, "job": j}))
    }

    fn submitted_id(&self, body: &Value) -> Option<String> {
        body.get("job_id").and_then(Value::as_u64).map(|id| id.to_string())
    }

    fn job_status(&self, id: &str, body: &Value) -> Option<JobStatus> {
        let job = body.get("jobs")?.as_array()?.iter().find(|j| j.get("job_id").and_then(Value::as_u64).map(|n| n.to_string()).as_deref() == Some(id))?;
        let text = |k: &str| job.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let (exit_code, signal) = match job.get("exit_code").and_then(Value::as_i64) {
            Some(w) => wait_status(w),
            None => (None, None),
        };
        Some(status_of(
            id,
            JobFields {
                state: text("job_state")?,
                reason: text("state_reason"),
                exit_code,
                signal,
                start: job.get("start_time").and_then(Value::as_i64),
                end: job.get("end_time").and_then(Value::as_i64),
                cwd: text("current_working_directory"),
                stdout: text("standard_output"),
                stderr: text("standard_error"),
            },
        ))
    }
}

/// slurmrestd 22.05.8 crashes on any `argv` (the connection closes without an answer), so a
/// shell script gets its arguments from a `set --` line after its `#!` line instead.
fn with_arguments(script: &str, args: &[String]) -> Result<String, String> {
    if args.is_empty() {
        return Ok(script.to_string());
    }
    let (first, rest) = script.split_once('\n').unwrap_or((script, ""));
    let interpreter = first.trim_start_matches("#!").split_whitespace().collect::<Vec<_>>();
    let shell = interpreter.iter().any(|w| matches!(w.rsplit('/').next(), Some("sh" | "bash" | "dash" | "ksh" | "zsh")));
    if !shell {
        return Err(format!(
            "slurmrestd 22.05 (API v0.0.38) cannot pass arguments to a script that is not a shell script ({first}); put them in the script, or use executable with arguments"
        ));
    }
    let quoted: Vec<String> = args.iter().map(|a| super::quote(a)).collect();
    Ok(format!("{first}\nset -- {}\n{rest}", quoted.join(" ")))
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.into(), v);
    }
}

/// A wait status → (exit code, signal).
fn wait_status(w: i64) -> (Option<i64>, Option<i64>) {
    let signal = w & 0x7f;
    if signal != 0 {
        (None, Some(signal))
    } else {
        (Some((w >> 8) & 0xff), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpc::job::Phase;

    #[test]
    fn a_full_job_becomes_the_22_05_submit_body() {
        let job = JobSpec {
            name: "sim".into(),
            script: Some("#!/bin/sh\necho $1\n".into()),
            arguments: vec!["x".into()],
            working_directory: Some("/scratch".into()),
            nodes: Some(1),
            tasks: Some(2),
            cpus_per_task: Some(1),
            memory_mib: Some(512),
            time_limit_minutes: Some(5),
            partition: Some("debug".into()),
            stdout: Some("/tmp/%j.out".into()),
            after_ok: vec!["7".into()],
            ..Default::default()
        };
        let body = V0038.submit_body(&job).unwrap();
        assert_eq!(
            body,
            json!({"script": "#!/bin/sh\nset -- 'x'\necho $1\n", "job": {
                "name": "sim", "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
                "current_working_directory": "/scratch", "nodes": [1, 1], "tasks": 2, "cpus_per_task": 1,
                "memory_per_node": 512, "time_limit": 5, "partition": "debug",
                "standard_output": "/tmp/%j.out", "dependency": "afterok:7"}})
        );
    }

    #[test]
    fn arguments_of_a_non_shell_script_are_refused_rather_than_crashing_slurmrestd() {
        let job = JobSpec { script: Some("#!/usr/bin/env python3\nimport sys\n".into()), arguments: vec!["x".into()], ..Default::default() };
        let e = V0038.submit_body(&job).unwrap_err();
        assert!(e.contains("cannot pass arguments"), "{e}");
        let job = JobSpec { script: Some("#!/usr/bin/env bash\necho \"$@\"\n".into()), arguments: vec!["a b".into()], ..Default::default() };
        assert_eq!(V0038.submit_body(&job).unwrap()["script"], json!("#!/usr/bin/env bash\nset -- 'a b'\necho \"$@\"\n"));
    }

    #[test]
    fn a_failed_job_reports_its_exit_code_not_the_wait_status() {
        // As slurmrestd 22.05.8 answered for `exit 3`.
        let body = json!({"jobs": [{"job_id": 4, "job_state": "FAILED", "exit_code": 768, "state_reason": "NonZeroExitCode",
            "start_time": 1795343636, "end_time": 1795343637, "standard_output": "", "current_working_directory": "/tmp"}], "errors": []});
        let s = V0038.job_status("4", &body).unwrap();
        assert_eq!((s.phase, s.exit_code, s.reason.as_deref()), (Phase::Failed, Some(3), Some("NonZeroExitCode")));
        assert_eq!(s.stdout.as_deref(), Some("/tmp/slurm-4.out"));
        assert_eq!(s.end_time.as_deref(), Some("2026-11-22T10:33:57Z"));
        assert_eq!(V0038.job_status("5", &body), None, "another job's answer is not this job");
    }

    #[test]
    fn a_pending_job_has_no_times_and_a_signal_is_not_an_exit_code() {
        let body = json!({"jobs": [{"job_id": 9, "job_state": "PENDING", "state_reason": "Resources", "start_time": 1795343636, "end_time": 1795350000, "exit_code": 0}]});
        let s = V0038.job_status("9", &body).unwrap();
        assert_eq!((s.phase, s.start_time, s.end_time, s.exit_code), (Phase::Queued, None, None, None));
        let body = json!({"jobs": [{"job_id": 9, "job_state": "CANCELLED", "state_reason": "None", "exit_code": 9, "end_time": 1}]});
        let s = V0038.job_status("9", &body).unwrap();
        assert_eq!((s.exit_code, s.reason.as_deref()), (None, Some("killed by signal 9")));
    }
}
