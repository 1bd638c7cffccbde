//! A `rosca.nodes.hpc.BatchJob` node's config → [`JobSpec`]. Pure: every property is checked
//! here, and a wrong one is named by its config path.

use super::job::JobSpec;
use super::values::{self, kind};
use crate::units;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The job of a BatchJob node. `name` is the default job name (the instance address).
pub fn batch_job(config: &Value, name: &str) -> Result<JobSpec, String> {
    let empty = Map::new();
    let props = config.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let artifact = config.get("artifacts").and_then(|a| a.get("job_script")).and_then(Value::as_str);
    let script = opt_string(props, "script")?;
    let executable = opt_string(props, "executable")?;
    let given = [script.is_some(), artifact.is_some(), executable.is_some()].iter().filter(|b| **b).count();
    if given != 1 {
        return Err(format!(
            "give exactly one of `properties.script`, a `job_script` artifact and `properties.executable` ({} given)",
            if given == 0 { "none".to_string() } else { given.to_string() }
        ));
    }
    let script = script.or_else(|| artifact.map(str::to_string)).map(|s| with_interpreter(&s));
    Ok(JobSpec {
        name: opt_string(props, "job_name")?.unwrap_or_else(|| name.to_string()),
        script,
        executable,
        arguments: string_list(props, "arguments")?,
        environment: string_map(props, "environment")?,
        working_directory: opt_string(props, "working_directory")?,
        nodes: count(props, "nodes")?,
        tasks: count(props, "tasks")?,
        cpus_per_task: count(props, "cpus_per_task")?,
        memory_mib: match props.get("memory") {
            None | Some(Value::Null) => None,
            Some(v) => Some(positive(units::size_bytes(v), "memory", "a size such as 2 GiB")?.div_ceil(1024 * 1024)),
        },
        time_limit_minutes: match props.get("time_limit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(positive(units::seconds(v), "time_limit", "a time such as 30 m")?.div_ceil(60)),
        },
        partition: opt_string(props, "partition")?,
        account: opt_string(props, "account")?,
        stdout: opt_string(props, "stdout")?,
        stderr: opt_string(props, "stderr")?,
        after_ok: Vec::new(),
        extensions: Map::new(),
    })
}

/// Whether the provider waits for the job to finish (`wait`, default true).
pub fn waits(config: &Value) -> bool {
    config.get("properties").and_then(|p| p.get("wait")).and_then(Value::as_bool).unwrap_or(true)
}

/// Slurm runs a batch script only with an interpreter line.
fn with_interpreter(script: &str) -> String {
    if script.starts_with("#!") {
        script.to_string()
    } else {
        format!("#!/bin/sh\n{script}")
    }
}

fn opt_string(props: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("`properties.{key}` must be a string, not {}", kind(v))),
    }
}

fn count(props: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!("`properties.{key}` must be a whole number of at least 1, found {v}")),
        },
    }
}

fn positive(v: Option<f64>, key: &str, example: &str) -> Result<u64, String> {
    match v {
        Some(x) if x.is_finite() && x > 0.0 && x < 1e18 => Ok(x.ceil() as u64),
        _ => Err(format!("`properties.{key}` must be {example}")),
    }
}

fn string_list(props: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => values::string_list(&format!("properties.{key}"), v),
    }
}

/// Environment variables: a map of strings whose names a shell can set.
fn string_map(props: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    let map = match props.get(key) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(v) => values::string_map(&format!("properties.{key}"), v, true)?,
    };
    if let Some(bad) = map.keys().find(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
        return Err(format!("`properties.{key}`: {bad:?} is not a valid environment variable name"));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_property_maps_to_its_field() {
        let config = json!({"properties": {
            "script": "echo hi", "arguments": ["a", 2], "environment": {"A": "1", "N": 3},
            "working_directory": "/scratch", "nodes": 1, "tasks": 2, "cpus_per_task": 4,
            "memory": "1.5 GiB", "time_limit": "90 s", "partition": "debug", "account": "proj",
            "job_name": "sim", "stdout": "/tmp/%j.out", "stderr": "/tmp/%j.err", "wait": false
        }});
        let j = batch_job(&config, "sim[0]").unwrap();
        assert_eq!(j.script.as_deref(), Some("#!/bin/sh\necho hi"));
        assert_eq!(j.arguments, vec!["a", "2"]);
        assert_eq!(j.environment.get("N").map(String::as_str), Some("3"));
        assert_eq!((j.nodes, j.tasks, j.cpus_per_task), (Some(1), Some(2), Some(4)));
        assert_eq!(j.memory_mib, Some(1536));
        assert_eq!(j.time_limit_minutes, Some(2), "90 s rounds up to 2 minutes");
        assert_eq!(j.name, "sim");
        assert!(!waits(&config));
    }

    #[test]
    fn the_script_comes_from_exactly_one_place() {
        let j = batch_job(&json!({"artifacts": {"job_script": "#!/bin/bash\nexit 0\n"}}), "j").unwrap();
        assert_eq!(j.script.as_deref(), Some("#!/bin/bash\nexit 0\n"));
        assert_eq!(j.name, "j");
        let e = batch_job(&json!({"properties": {}}), "j").unwrap_err();
        assert!(e.contains("none given"), "{e}");
        let e = batch_job(&json!({"properties": {"script": "x", "executable": "/bin/true"}}), "j").unwrap_err();
        assert!(e.contains("2 given"), "{e}");
    }

    #[test]
    fn wrong_values_are_named_by_path() {
        let bad = |props: Value| batch_job(&json!({"properties": props}), "j").unwrap_err();
        assert_eq!(bad(json!({"executable": "x", "nodes": 0})), "`properties.nodes` must be a whole number of at least 1, found 0");
        assert_eq!(bad(json!({"executable": "x", "arguments": [{"a": 1}]})), "`properties.arguments[0]` must be a string, not a map");
        assert_eq!(bad(json!({"executable": "x", "environment": {"A=B": "1"}})), "`properties.environment`: \"A=B\" is not a valid environment variable name");
        assert_eq!(bad(json!({"executable": "x", "time_limit": "soon"})), "`properties.time_limit` must be a time such as 30 m");
        assert_eq!(bad(json!({"executable": 3})), "`properties.executable` must be a string, not the number 3");
    }
}
