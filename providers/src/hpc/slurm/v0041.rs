//! slurmrestd `v0.0.41` (Slurm 24.05 and later). Against `v0.0.38`: the script moves into the
//! `job` object, the environment is a list of `NAME=value`, numbers that may be unset or
//! infinite are `{"set", "infinite", "number"}`, `job_state` is a list of flags (base state
//! first), and `exit_code` is decoded (`{"status": [..], "return_code": {..}, "signal": {..}}`).
//! No such server can be installed here; the shapes and their sources are in
//! `providers/tests/data/slurm/v0.0.41-shapes.md`, and tests check this module against them.

use super::super::job::{JobSpec, JobStatus};
use super::{batch_script, dependency, environment, script_arguments, status_of, Dialect, JobFields};
use serde_json::{json, Map, Value};

pub struct V0041;

/// `{"set": true, "infinite": false, "number": n}`.
fn number(n: u64) -> Value {
    json!({"set": true, "infinite": false, "number": n})
}

/// A plain number, or the `{"set", "infinite", "number"}` form (None when unset or infinite).
fn read_number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::Object(m) => {
            let set = m.get("set").and_then(Value::as_bool).unwrap_or(true);
            let infinite = m.get("infinite").and_then(Value::as_bool).unwrap_or(false);
            if set && !infinite {
                m.get("number").and_then(Value::as_i64)
            } else {
                None
            }
        }
        _ => None,
    }
}

impl Dialect for V0041 {
    fn version(&self) -> &'static str {
        "v0.0.41"
    }

    fn ping(&self) -> &'static str {
        "ping/"
    }

    fn submit_body(&self, job: &JobSpec) -> Result<Value, String> {
        if !job.extensions.is_empty() {
            let keys: Vec<&String> = job.extensions.keys().collect();
            return Err(format!("Slurm has no place for {keys:?} (properties of another scheduler's job type)"));
        }
        let script = batch_script(job)?;
        let mut j = Map::new();
        j.insert("script".into(), json!(script));
        j.insert("name".into(), json!(job.name));
        let env: Vec<String> = environment(job).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        j.insert("environment".into(), json!(env));
        let args = script_arguments(job);
        if !args.is_empty() {
            j.insert("argv".into(), json!(args));
        }
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                j.insert(k.into(), v);
            }
        };
        put("current_working_directory", job.working_directory.as_ref().map(|d| json!(d)));
        put("minimum_nodes", job.nodes.map(|n| json!(n)));
        put("maximum_nodes", job.nodes.map(|n| json!(n)));
        put("tasks", job.tasks.map(|n| json!(n)));
        put("cpus_per_task", job.cpus_per_task.map(|n| json!(n)));
        put("memory_per_node", job.memory_mib.map(number));
        put("time_limit", job.time_limit_minutes.map(number));
        put("partition", job.partition.as_ref().map(|p| json!(p)));
        put("account", job.account.as_ref().map(|a| json!(a)));
        put("standard_output", job.stdout.as_ref().map(|p| json!(p)));
        put("standard_error", job.stderr.as_ref().map(|p| json!(p)));
        put("dependency", dependency(job).map(|d| json!(d)));
        // The document marks the top-level `script` deprecated in favour of `job.script`, but
        // slurmrestd's jobs.c of this version still reads it: send both.
        Ok(json!({"script": script, "job": j}))
    }

    fn submitted_id(&self, body: &Value) -> Option<String> {
        let id = body.get("job_id").or_else(|| body.get("result").and_then(|r| r.get("job_id")));
        read_number(id).filter(|n| *n > 0).map(|n| n.to_string())
    }

    fn job_status(&self, id: &str, body: &Value) -> Option<JobStatus> {
        let job = body.get("jobs")?.as_array()?.iter().find(|j| read_number(j.get("job_id")).map(|n| n.to_string()).as_deref() == Some(id))?;
        let text = |k: &str| job.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let state = match job.get("job_state")? {
            Value::String(s) => s.clone(),
            // Base state first, then flags (COMPLETING, REQUEUED, ...).
            Value::Array(flags) => flags.first().and_then(Value::as_str)?.to_string(),
            _ => return None,
        };
        let exit = job.get("exit_code");
        Some(status_of(
            id,
            JobFields {
                state,
                reason: text("state_reason"),
                exit_code: exit.and_then(|e| read_number(e.get("return_code")).or_else(|| read_number(Some(e)))),
                signal: exit.and_then(|e| e.get("signal")).and_then(|s| read_number(s.get("id"))),
                start: read_number(job.get("start_time")),
                end: read_number(job.get("end_time")),
                cwd: text("current_working_directory"),
                stdout: text("standard_output"),
                stderr: text("standard_error"),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpc::job::Phase;

    #[test]
    fn the_script_and_environment_go_inside_the_job() {
        let job = JobSpec {
            name: "sim".into(),
            executable: Some("/bin/true".into()),
            environment: [("A".to_string(), "1".to_string())].into(),
            nodes: Some(2),
            memory_mib: Some(100),
            time_limit_minutes: Some(5),
            after_ok: vec!["7".into()],
            ..Default::default()
        };
        let body = V0041.submit_body(&job).unwrap();
        assert_eq!(
            body,
            json!({"script": "#!/bin/sh\nexec '/bin/true'\n", "job": {"script": "#!/bin/sh\nexec '/bin/true'\n", "name": "sim",
                "environment": ["A=1", "PATH=/usr/local/bin:/usr/bin:/bin"],
                "minimum_nodes": 2, "maximum_nodes": 2,
                "memory_per_node": {"set": true, "infinite": false, "number": 100},
                "time_limit": {"set": true, "infinite": false, "number": 5},
                "dependency": "afterok:7"}})
        );
    }

    #[test]
    fn decoded_exit_codes_list_states_and_set_numbers_are_read() {
        let body = json!({"jobs": [{"job_id": 12, "job_state": ["FAILED"], "state_reason": "NonZeroExitCode",
            "exit_code": {"status": ["ERROR"], "return_code": {"set": true, "infinite": false, "number": 3}, "signal": {"id": {"set": false, "infinite": false, "number": 0}, "name": ""}},
            "start_time": {"set": true, "infinite": false, "number": 1700000000}, "end_time": {"set": true, "infinite": false, "number": 1700000060},
            "standard_output": "/home/u/out-%j.txt", "standard_error": "", "current_working_directory": "/home/u"}]});
        let s = V0041.job_status("12", &body).unwrap();
        assert_eq!((s.state.as_str(), s.phase, s.exit_code), ("FAILED", Phase::Failed, Some(3)));
        assert_eq!(s.stdout.as_deref(), Some("/home/u/out-12.txt"));
        assert_eq!(s.stderr, s.stdout);
        assert_eq!(s.end_time.as_deref(), Some("2023-11-14T22:14:20Z"));
        assert_eq!(V0041.submitted_id(&json!({"job_id": 12, "step_id": "batch", "result": {"job_id": 12}})).as_deref(), Some("12"));
    }

    #[test]
    fn a_signalled_job_has_no_exit_code() {
        let body = json!({"jobs": [{"job_id": 3, "job_state": ["CANCELLED"], "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "number": 0}, "signal": {"id": {"set": true, "infinite": false, "number": 9}, "name": "KILL"}}}]});
        let s = V0041.job_status("3", &body).unwrap();
        assert_eq!((s.phase, s.exit_code, s.reason.as_deref()), (Phase::Cancelled, None, Some("killed by signal 9")));
    }
}
