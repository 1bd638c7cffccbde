//! QCG-Computing, the REST gateway the INDIGO orchestrator's QCG provider submits to: `POST /jobs/`
//! with a job description, `GET /jobs/{id}` to poll, `DELETE /jobs/{id}` to cancel, OIDC bearer
//! auth. The shapes, and where each was read, are in docs/providers/hpc.md ("QCG-Computing: shapes
//! checked, and their sources"); the tests run against `providers/tests/support/qcg_fake.rs`, which
//! enforces them.
//!
//! Also [`indigo_job`]: a `tosca.nodes.indigo.Qcg.Job` node's properties as a [`JobSpec`], the way
//! the orchestrator's `QcgServiceImpl.buildJob` maps them.

use super::http::{Exchange, HttpJson, Method};
use super::job::{JobSpec, JobStatus, Phase, Scheduler, SchedulerError, SchedulerErrorKind};
use super::values::{kind, string_list, string_map};
use crate::api::BoxFuture;
use crate::retry::RetryPolicy;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

const LABEL: &str = "QCG-Computing";

/// How long a token command may take before it is given up on.
const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the OIDC access token comes from. Never from `rosca.toml` text: a variable's name, a
/// file's path or a command is all the configuration holds. Each source is read at first use and
/// read again once when QCG answers 401 (an expired token), so `oidc-token`-style commands and
/// files refreshed by an agent renew it.
#[derive(Clone, Debug)]
pub struct QcgAuth {
    source: TokenSource,
}

#[derive(Clone, Debug)]
enum TokenSource {
    Env(String),
    File(PathBuf),
    Command(Vec<String>),
}

impl QcgAuth {
    /// The token is the value of the environment variable `var`.
    pub fn from_env(var: impl Into<String>) -> QcgAuth {
        QcgAuth { source: TokenSource::Env(var.into()) }
    }

    /// The token is the first line of the file at `path`.
    pub fn from_file(path: impl Into<PathBuf>) -> QcgAuth {
        QcgAuth { source: TokenSource::File(path.into()) }
    }

    /// The token is what `argv` (program and arguments, no shell) prints on stdout.
    pub fn from_command(argv: Vec<String>) -> Result<QcgAuth, SchedulerError> {
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(SchedulerError::new(
                SchedulerErrorKind::Setup,
                "the QCG token command is empty; write it as a list: token_command = [\"oidc-token\", \"my-account\"]",
            ));
        }
        Ok(QcgAuth { source: TokenSource::Command(argv) })
    }

    /// For messages: where the token comes from (never the token).
    pub fn describe(&self) -> String {
        match &self.source {
            TokenSource::Env(v) => format!("environment variable {v}"),
            TokenSource::File(p) => format!("file {}", p.display()),
            TokenSource::Command(argv) => format!("command `{}`", argv.join(" ")),
        }
    }

    async fn fetch(&self) -> Result<Token, SchedulerError> {
        let auth = |m: String| SchedulerError::new(SchedulerErrorKind::Auth, m);
        let raw = match &self.source {
            TokenSource::Env(var) => std::env::var(var).map_err(|_| {
                auth(format!("the QCG-Computing token variable {var} is not set; export it with an OIDC access token"))
            })?,
            TokenSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| auth(format!("cannot read the QCG-Computing token file {}: {e}", path.display())))?,
            TokenSource::Command(argv) => run_token_command(argv).await?,
        };
        let token = raw.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(auth(format!("the QCG-Computing token from {} is empty; provide an OIDC access token", self.describe())));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(auth(format!(
                "what {} gives is not a token (its first line holds spaces); it must print the access token alone",
                self.describe()
            )));
        }
        Ok(Token(token))
    }
}

async fn run_token_command(argv: &[String]) -> Result<String, SchedulerError> {
    let auth = |m: String| SchedulerError::new(SchedulerErrorKind::Auth, m);
    let shown = argv.join(" ");
    let Some((program, args)) = argv.split_first() else {
        return Err(auth("the QCG token command is empty".to_string()));
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| auth(format!("cannot run the QCG token command `{shown}`: {e}; check that it is installed and on PATH")))?;
    let out = tokio::time::timeout(TOKEN_COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| auth(format!("the QCG token command `{shown}` did not finish within {}s", TOKEN_COMMAND_TIMEOUT.as_secs())))?
        .map_err(|e| auth(format!("the QCG token command `{shown}` failed: {e}")))?;
    if !out.status.success() {
        // stderr only: stdout may hold a (partial) token.
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let last: String = last.chars().take(300).collect();
        return Err(auth(format!("the QCG token command `{shown}` exited with {}: {last}", out.status)));
    }
    String::from_utf8(out.stdout).map_err(|_| auth(format!("the QCG token command `{shown}` printed something that is not UTF-8")))
}

/// A bearer token; its `Debug` never shows it.
#[derive(Clone, PartialEq)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A QCG-Computing endpoint with its credentials.
pub struct QcgScheduler {
    http: HttpJson,
    auth: QcgAuth,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl QcgScheduler {
    /// `url` is the API root the orchestrator's CMDB calls `cpEndpoint` (requests go to
    /// `url + "/jobs/"`).
    pub fn new(url: &str, auth: QcgAuth, retry: RetryPolicy, timeout: Duration) -> Result<QcgScheduler, SchedulerError> {
        Ok(QcgScheduler { http: HttpJson::new(url, LABEL, retry, timeout)?, auth, token: tokio::sync::Mutex::new(None) })
    }

    /// One request with the bearer token; on 401 the token is fetched again and the request
    /// repeated once (401 means QCG did not process it, so this holds for a POST too).
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(Exchange, Token), SchedulerError> {
        let mut guard = self.token.lock().await;
        let token = match guard.as_ref() {
            Some(t) => t.clone(),
            None => {
                let t = self.auth.fetch().await?;
                *guard = Some(t.clone());
                t
            }
        };
        drop(guard);
        let first = self.send(method.clone(), path, body, &token).await?;
        if first.status != 401 {
            return Ok((first, token));
        }
        let renewed = {
            let mut guard = self.token.lock().await;
            // Another call may have renewed it meanwhile.
            let current = guard.clone();
            let fresh = match current {
                Some(t) if t != token => t,
                _ => self.auth.fetch().await?,
            };
            *guard = Some(fresh.clone());
            fresh
        };
        if renewed == token {
            return Err(self.refused(&method, path, &first, &token, false));
        }
        let second = self.send(method.clone(), path, body, &renewed).await?;
        if second.status == 401 {
            return Err(self.refused(&method, path, &second, &renewed, true));
        }
        Ok((second, renewed))
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>, token: &Token) -> Result<Exchange, SchedulerError> {
        let headers = [("Authorization", format!("Bearer {}", token.0))];
        self.http.send(method, path, &headers, body).await.map_err(|e| SchedulerError { message: scrub(&e.message, token), ..e })
    }

    fn refused(&self, method: &Method, path: &str, ex: &Exchange, token: &Token, renewed: bool) -> SchedulerError {
        let again = if renewed { ", also after fetching it again" } else { "" };
        let msg = format!(
            "{LABEL} at {} refused the token from {} ({method} {path}: HTTP 401: {}){again}; renew the OIDC access token there",
            self.http.base(),
            self.auth.describe(),
            qcg_message(&ex.body)
        );
        SchedulerError::new(SchedulerErrorKind::Auth, scrub(&msg, token))
    }

    /// An error for an answer that is not a success, in QCG's words.
    fn failure(&self, method: &Method, path: &str, (ex, token): &(Exchange, Token), what_to_do: &str) -> SchedulerError {
        let kind = match ex.status {
            401 | 403 => SchedulerErrorKind::Auth,
            400..=499 => SchedulerErrorKind::Rejected,
            _ => SchedulerErrorKind::Transient,
        };
        let msg = format!(
            "{LABEL} at {} answered {method} {path} with HTTP {}: {}; {what_to_do}",
            self.http.base(),
            ex.status,
            qcg_message(&ex.body)
        );
        SchedulerError::new(kind, scrub(&msg, token))
    }

    async fn get_status(&self, id: &str) -> Result<Option<JobStatus>, SchedulerError> {
        let path = job_path(id)?;
        let answer = self.call(Method::GET, &path, None).await?;
        let ex = &answer.0;
        if ex.status == 404 {
            return Ok(None);
        }
        if !ex.ok() {
            return Err(self.failure(&Method::GET, &path, &answer, "check the job id and the site's URL"));
        }
        job_status(id, &ex.body)
            .map(Some)
            .map_err(|m| SchedulerError::new(SchedulerErrorKind::Rejected, format!("{LABEL} at {}: job {id}: {m}", self.http.base())))
    }
}

impl Scheduler for QcgScheduler {
    fn kind(&self) -> &'static str {
        "qcg"
    }

    fn endpoint(&self) -> String {
        format!("{} ({LABEL})", self.http.base())
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), SchedulerError>> {
        Box::pin(async move {
            let path = "/jobs?page=1&page_size=1";
            let answer = self.call(Method::GET, path, None).await?;
            if answer.0.ok() {
                return Ok(());
            }
            let mut e = self.failure(&Method::GET, path, &answer, "check the site's url: it is the QCG-Computing API root, the one whose /jobs/ lists jobs");
            if answer.0.status == 404 {
                e.kind = SchedulerErrorKind::Setup;
            }
            Err(e)
        })
    }

    fn submit<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<String, SchedulerError>> {
        Box::pin(async move {
            let desc = description(job).map_err(|m| SchedulerError::new(SchedulerErrorKind::Rejected, format!("job {}: {m}", job.name)))?;
            let path = "/jobs/";
            let answer = self.call(Method::POST, path, Some(&desc)).await?;
            let ex = &answer.0;
            if !ex.ok() {
                return Err(self.failure(&Method::POST, path, &answer, &format!("fix the properties of job {} it names", job.name)));
            }
            match ex.body.get("id") {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(SchedulerError::new(
                    SchedulerErrorKind::Rejected,
                    format!(
                        "{LABEL} at {} accepted job {} (HTTP {}) but its answer has no job id; look for the job in QCG before applying again",
                        self.http.base(),
                        job.name,
                        ex.status
                    ),
                )),
            }
        })
    }

    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>, SchedulerError>> {
        Box::pin(self.get_status(id))
    }

    fn cancel<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), SchedulerError>> {
        Box::pin(async move {
            let path = job_path(id)?;
            let answer = self.call(Method::DELETE, &path, None).await?;
            let ex = &answer.0;
            if ex.ok() || ex.status == 404 {
                return Ok(());
            }
            // QCG answers 400 for a job it cannot cancel because it already ended (the
            // orchestrator takes every 400 as that); look, so that other 400s are not hidden.
            if matches!(ex.status, 400 | 409) {
                match self.get_status(id).await? {
                    None => return Ok(()),
                    Some(s) if s.phase.is_terminal() => return Ok(()),
                    Some(_) => {}
                }
            }
            Err(self.failure(&Method::DELETE, &path, &answer, "cancel the job on the site by hand if it is still queued or running"))
        })
    }
}

fn scrub(message: &str, token: &Token) -> String {
    if token.0.len() >= 4 {
        message.replace(token.0.as_str(), "***")
    } else {
        message.to_string()
    }
}

/// `/jobs/{id}` with the id percent-encoded, so that no id can reach another path.
fn job_path(id: &str) -> Result<String, SchedulerError> {
    if id.is_empty() {
        return Err(SchedulerError::new(SchedulerErrorKind::Rejected, "empty QCG job id"));
    }
    let mut p = String::from("/jobs/");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            p.push(b as char);
        } else {
            p.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(p)
}

/// QCG's own words from an error body: Django REST framework's `{"detail": "..."}`, or its
/// per-field `{"execution": {"args": ["..."]}}`, or a plain text body.
pub fn qcg_message(body: &Value) -> String {
    fn fields(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    fields(&p, v, out);
                }
            }
            Value::Array(a) => {
                let texts: Vec<String> = a.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect();
                out.push(if prefix.is_empty() { texts.join("; ") } else { format!("{prefix}: {}", texts.join("; ")) });
            }
            Value::String(s) => out.push(if prefix.is_empty() { s.clone() } else { format!("{prefix}: {s}") }),
            Value::Null => {}
            other => out.push(format!("{prefix}: {other}")),
        }
    }
    let text = match body {
        Value::Object(m) => {
            if let Some(Value::String(d)) = ["detail", "message", "error", "errors"].iter().find_map(|k| m.get(*k)) {
                d.clone()
            } else {
                let mut out = Vec::new();
                fields("", body, &mut out);
                out.join("; ")
            }
        }
        Value::String(s) => s.trim().to_string(),
        Value::Null => String::new(),
        other => {
            let mut out = Vec::new();
            fields("", other, &mut out);
            out.join("; ")
        }
    };
    if text.is_empty() {
        return "no message".to_string();
    }
    let mut t: String = text.chars().take(1000).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t
}

// ---------------------------------------------------------------------------------------------
// JobSpec → job description

/// `JobSpec.extensions` QCG understands, with their JSON type.
const EXTENSIONS: &[&str] = &[
    "schema",
    "note",
    "attributes",
    "stdin",
    "std_outerr",
    "wall_clock",
    "total_cores",
    "cores_per_node",
    "memory_per_core",
    "gpus",
    "batch_system_options",
    "directory_policy",
];

/// The job description `POST /jobs/` takes. Fails, naming the field, on what QCG cannot express.
pub fn description(job: &JobSpec) -> Result<Value, String> {
    if job.account.is_some() {
        return Err("`account` cannot be sent to QCG-Computing: its job description has no account; remove it (QCG charges the token's user)".into());
    }
    if !job.after_ok.is_empty() {
        return Err("`after_ok` cannot be sent to QCG-Computing: its job description has no dependency field; let Rosca order the jobs (leave the dependency to Rosca)".into());
    }
    for key in job.extensions.keys() {
        if !EXTENSIONS.contains(&key.as_str()) {
            return Err(format!("`{key}` is not a QCG-Computing job property; known ones are {}", EXTENSIONS.join(", ")));
        }
    }
    let ext = &job.extensions;
    let schema = ext_string(ext, "schema")?;

    let (executable, args) = match (&job.script, &job.executable) {
        (Some(_), Some(_)) => return Err("both `script` and `executable` are set; keep one".into()),
        (Some(script), None) => {
            let shell = script_shell(script)?;
            let mut args = vec!["-c".to_string(), script.clone(), job.name.clone()];
            args.extend(job.arguments.iter().cloned());
            (Some(shell), args)
        }
        (None, Some(e)) => {
            let e = e.trim();
            if e.is_empty() {
                return Err("`executable` must not be an empty string".into());
            }
            (Some(e.to_string()), job.arguments.clone())
        }
        (None, None) if schema.is_some() => {
            if !job.arguments.is_empty() {
                return Err("`arguments` without `executable`: name the executable the arguments are for".into());
            }
            (None, Vec::new())
        }
        (None, None) => return Err("no `executable` (or `script`): QCG-Computing needs the program to run, or a `schema` that names it".into()),
    };

    let mut execution = Map::new();
    if let Some(e) = executable {
        execution.insert("executable".into(), Value::String(e));
    }
    if !args.is_empty() {
        execution.insert("args".into(), json!(args));
    }
    if !job.environment.is_empty() {
        execution.insert("environment".into(), json!(job.environment));
    }
    if let Some(d) = &job.working_directory {
        execution.insert("directory".into(), Value::String(d.clone()));
    }
    for (field, value) in [("stdout", job.stdout.clone()), ("stderr", job.stderr.clone()), ("stdin", ext_string(ext, "stdin")?), ("std_outerr", ext_string(ext, "std_outerr")?)] {
        if let Some(v) = value {
            if has_slurm_pattern(&v) {
                return Err(format!(
                    "`{field}` is {v:?}: QCG-Computing does not expand Slurm's %-patterns (%j, %x, ...), the file would be named literally; write a plain file name (relative names are in the job's working directory)"
                ));
            }
            execution.insert(field.into(), Value::String(v));
        }
    }
    let policy = match ext.get("directory_policy") {
        None | Some(Value::Null) => json!({"create": "OVERWRITE", "remove": "NEVER"}),
        Some(v) => directory_policy(v)?,
    };
    execution.insert("directory_policy".into(), policy);

    let mut component = Map::new();
    if let Some(n) = job.nodes {
        component.insert("total_nodes".into(), json!(n));
    }
    let explicit_cores = ext_int(ext, "total_cores")?.map(|c| c as u64);
    let derived_cores = match (job.tasks, job.cpus_per_task) {
        (None, None) => None,
        (t, c) => Some(u64::from(t.unwrap_or(1)) * u64::from(c.unwrap_or(1))),
    };
    match (explicit_cores, derived_cores) {
        (Some(_), Some(_)) => return Err("`total_cores` together with `tasks`/`cpus_per_task`: QCG takes one core count; keep one".into()),
        (Some(c), None) | (None, Some(c)) => {
            component.insert("total_cores".into(), json!(fits_i32("total_cores", c)?));
        }
        (None, None) => {}
    }
    if let Some(c) = ext_int(ext, "cores_per_node")? {
        component.insert("cores_per_node".into(), json!(c));
    }
    if let Some(m) = job.memory_mib {
        component.insert("memory_per_node".into(), json!(fits_i32("memory", m)?));
    }
    if let Some(m) = ext_int(ext, "memory_per_core")? {
        component.insert("memory_per_core".into(), json!(m));
    }
    let mut native = Vec::new();
    if let Some(g) = ext_int(ext, "gpus")? {
        if g > 0 {
            native.push(format!("--gres=gpu:{g}"));
        }
    }
    if let Some(opts) = ext.get("batch_system_options") {
        native.extend(string_list("batch_system_options", opts)?);
    }
    if !native.is_empty() {
        component.insert("native".into(), json!(native));
    }

    let mut resources = Map::new();
    resources.insert("components".into(), json!([Value::Object(component)]));
    if let Some(q) = &job.partition {
        resources.insert("queue".into(), Value::String(q.clone()));
    }
    match (ext_string(ext, "wall_clock")?, job.time_limit_minutes) {
        (Some(_), Some(_)) => return Err("`wall_clock` together with `time_limit`: keep one".into()),
        (Some(w), None) => {
            resources.insert("wall_clock".into(), Value::String(w));
        }
        (None, Some(m)) => {
            resources.insert("wall_clock".into(), Value::String(format!("{:02}:{:02}:00", m / 60, m % 60)));
        }
        (None, None) => {}
    }

    let mut desc = Map::new();
    // QCG has no job name; the note is its short description.
    let note = ext_string(ext, "note")?.unwrap_or_else(|| job.name.clone());
    if !note.is_empty() {
        desc.insert("note".into(), Value::String(note));
    }
    if let Some(s) = schema {
        desc.insert("schema".into(), Value::String(s));
    }
    if let Some(a) = ext.get("attributes") {
        if !a.is_null() {
            desc.insert("attributes".into(), json!(string_map("attributes", a, false)?));
        }
    }
    desc.insert("execution".into(), Value::Object(execution));
    desc.insert("resources".into(), Value::Object(resources));
    Ok(Value::Object(desc))
}

/// `%j`, `%x`, `%%`... as in Slurm's `--output`: letters after `%`, optionally with a width.
fn has_slurm_pattern(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().enumerate().any(|(i, c)| {
        *c == b'%' && {
            let rest = &b[i + 1..];
            let digits = rest.iter().take_while(|d| d.is_ascii_digit()).count();
            rest.get(digits).is_some_and(|n| n.is_ascii_alphabetic() || *n == b'%')
        }
    })
}

/// The shell that runs a batch script: QCG runs an executable, so a script becomes
/// `SHELL -c SCRIPT`, which keeps its meaning only for a shell script.
fn script_shell(script: &str) -> Result<String, String> {
    let first = script.lines().next().unwrap_or("");
    let Some(line) = first.strip_prefix("#!") else {
        return Ok("/bin/sh".into());
    };
    let mut words = line.split_whitespace();
    let mut program = words.next().unwrap_or("");
    if program.ends_with("/env") {
        program = words.next().unwrap_or("");
    }
    let base = program.rsplit('/').next().unwrap_or("");
    match base {
        "sh" | "bash" | "dash" | "ksh" | "zsh" => Ok(if program.starts_with('/') { program.to_string() } else { format!("/bin/{base}") }),
        _ => Err(format!(
            "`script` starts with `#!{}`: QCG-Computing runs an executable, and only a shell script can be passed to it (as `sh -c`); use `executable` and `arguments` for this interpreter",
            line.trim()
        )),
    }
}

fn ext_string(ext: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match ext.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{key}` must be a string, not {}", kind(other))),
    }
}

fn ext_int(ext: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match ext.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => integer(key, v).map(Some),
    }
}

fn fits_i32(key: &str, n: u64) -> Result<i64, String> {
    if n > i32::MAX as u64 {
        return Err(format!("`{key}` is {n}, more than QCG-Computing takes ({})", i32::MAX));
    }
    Ok(n as i64)
}

/// A non-negative integer that fits QCG's 32-bit fields; numbers written as strings (`"2"`)
/// are taken, as INDIGO templates quote them.
fn integer(key: &str, v: &Value) -> Result<i64, String> {
    let n = match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else {
                n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64)
            }
        }
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(i) if (0..=i64::from(i32::MAX)).contains(&i) => Ok(i),
        Some(i) => Err(format!("`{key}` is {i}; it must be between 0 and {}", i32::MAX)),
        None => Err(format!("`{key}` must be an integer, not {}", kind(v))),
    }
}

/// The working-directory policy and its remove conditions, checked against QCG's enums.
fn directory_policy(v: &Value) -> Result<Value, String> {
    let Value::Object(m) = v else {
        return Err(format!("`directory_policy` must be a map (create, remove, remove_custom), not {}", kind(v)));
    };
    let one_of = |field: &str, x: &Value, allowed: &[&str]| -> Result<Value, String> {
        match x.as_str() {
            Some(s) if allowed.contains(&s) => Ok(Value::String(s.to_string())),
            _ => Err(format!("`{field}` must be one of {}", allowed.join(", "))),
        }
    };
    let mut out = Map::new();
    for (k, x) in m {
        let checked = match k.as_str() {
            "create" => one_of("directory_policy.create", x, &["OVERWRITE", "NOT_OVERWRITE"])?,
            "remove" => one_of("directory_policy.remove", x, &["ALWAYS", "NEVER", "FINISHED_OWNED", "CUSTOM"])?,
            "remove_custom" => {
                let Value::Object(rc) = x else {
                    return Err("`directory_policy.remove_custom` must be a map (status, origin)".into());
                };
                let mut c = Map::new();
                for (rk, rx) in rc {
                    let v = match rk.as_str() {
                        "status" => one_of("directory_policy.remove_custom.status", rx, &["FINISHED", "FAILED", "CANCELED"])?,
                        "origin" => one_of("directory_policy.remove_custom.origin", rx, &["ANY", "OWNED", "FOREIGN"])?,
                        other => return Err(format!("`directory_policy.remove_custom.{other}` is not a QCG field; use status and origin")),
                    };
                    c.insert(rk.clone(), v);
                }
                Value::Object(c)
            }
            other => return Err(format!("`directory_policy.{other}` is not a QCG field; use create, remove, remove_custom")),
        };
        out.insert(k.clone(), checked);
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// Job answer → JobStatus

/// QCG's state name as a phase, or `None` for a state Rosca does not know.
pub fn phase_of(state: &str) -> Option<Phase> {
    Some(match state.to_ascii_uppercase().as_str() {
        "SUBMITTED" | "PENDING" | "FRESH" | "QUEUED" => Phase::Queued,
        "EXECUTING" | "COMPLETING" => Phase::Running,
        "FINISHED" | "SUCCESS" => Phase::Succeeded,
        "FAILED" | "FAILURE" => Phase::Failed,
        "CANCELED" | "CANCELLED" => Phase::Cancelled,
        _ => return None,
    })
}

/// A `GET /jobs/{id}` answer as a [`JobStatus`].
pub fn job_status(id: &str, body: &Value) -> Result<JobStatus, String> {
    let Value::Object(job) = body else {
        return Err(format!("the answer is not a job object but {}", kind(body)));
    };
    let text = |k: &str| job.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let exit_code = job.get("exit_code").and_then(Value::as_i64);
    let errors = text("errors").filter(|e| e != "null");
    let state = match text("state") {
        Some(s) => s,
        // The orchestrator's first QCG provider derived the state from errors and resubmit.
        None => {
            let resubmit = job.get("resubmit").and_then(Value::as_i64).unwrap_or(0);
            if errors.is_some() {
                "FAILURE".to_string()
            } else if resubmit > 0 {
                "SUCCESS".to_string()
            } else {
                "FRESH".to_string()
            }
        }
    };
    let mut phase = phase_of(&state).ok_or_else(|| {
        format!("QCG reports the state {state:?}, which Rosca does not know (known: SUBMITTED, PENDING, EXECUTING, COMPLETING, FINISHED, FAILED, CANCELED)")
    })?;
    let mut reason = errors;
    // The orchestrator takes FINISHED as success whatever the exit code; a non-zero exit code is
    // the application failing, so Rosca reports it as such.
    if phase == Phase::Succeeded {
        if let Some(code) = exit_code.filter(|c| *c != 0) {
            phase = Phase::Failed;
            reason.get_or_insert_with(|| format!("the application exited with code {code}"));
        }
    }
    let work_dir = text("work_dir");
    let execution = job.get("description").and_then(|d| d.get("execution"));
    let stream = |k: &str| {
        let p = execution.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())?;
        Some(match &work_dir {
            Some(w) if !p.starts_with('/') && !p.starts_with('$') && !p.contains("://") => format!("{}/{p}", w.trim_end_matches('/')),
            _ => p.to_string(),
        })
    };
    let outerr = stream("std_outerr");
    let id = match job.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => id.to_string(),
    };
    Ok(JobStatus {
        id,
        state: state.to_ascii_uppercase(),
        phase,
        exit_code,
        reason,
        start_time: text("start_time"),
        end_time: text("finish_time"),
        stdout: stream("stdout").or_else(|| outerr.clone()),
        stderr: stream("stderr").or(outerr),
    })
}

// ---------------------------------------------------------------------------------------------
// tosca.nodes.indigo.Qcg.Job → JobSpec

/// The properties of `tosca.nodes.indigo.Qcg.Job` the orchestrator reads.
const INDIGO_PROPERTIES: &[&str] = &[
    "executable",
    "arguments",
    "environment",
    "directory",
    "schema",
    "note",
    "stdin",
    "stdout",
    "stderr",
    "std_outerr",
    "attributes",
    "queue",
    "wall_clock",
    "total_cores",
    "total_nodes",
    "cores_per_node",
    "memory_per_node",
    "memory_per_core",
    "gpus",
    "batch_system_options",
];

/// A `tosca.nodes.indigo.Qcg.Job` node's properties as a [`JobSpec`], as the orchestrator's
/// `QcgServiceImpl.buildJob` maps them (docs/providers/hpc.md): what has a common field goes
/// there (`directory` → working directory, `queue` → partition, `total_nodes` → nodes,
/// `memory_per_node` → memory), the rest to `extensions` under its own name. `name` is the
/// node's name, for messages.
pub fn indigo_job(properties: &Map<String, Value>, name: &str) -> Result<JobSpec, String> {
    let present = |k: &str| properties.get(k).filter(|v| !v.is_null());
    let at = |m: String| format!("node {name}: {m}");
    for (k, v) in properties {
        if !v.is_null() && !INDIGO_PROPERTIES.contains(&k.as_str()) {
            return Err(at(format!(
                "property `{k}` is not one of tosca.nodes.indigo.Qcg.Job's ({}); remove it",
                INDIGO_PROPERTIES.join(", ")
            )));
        }
    }
    let string = |k: &str| -> Result<Option<String>, String> {
        match present(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(at(format!("property `{k}` must be a string, not {}", kind(other)))),
        }
    };
    let int = |k: &str| -> Result<Option<i64>, String> { present(k).map(|v| integer(k, v).map_err(|m| at(format!("property {m}")))).transpose() };

    let mut spec = JobSpec { name: name.to_string(), ..JobSpec::default() };
    let mut ext = Map::new();

    if let Some(e) = string("executable")? {
        let e = e.trim().to_string();
        if e.is_empty() {
            return Err(format!("<executable> property of node <{name}> must not be an empty string"));
        }
        spec.executable = Some(e);
    }
    if let Some(a) = present("arguments") {
        spec.arguments = string_list("arguments", a).map_err(|m| at(format!("property {m}")))?;
    }
    if let Some(env) = present("environment") {
        spec.environment = string_map("environment", env, true).map_err(|m| at(format!("property {m}")))?;
    }
    spec.working_directory = string("directory")?;
    spec.stdout = string("stdout")?;
    spec.stderr = string("stderr")?;
    spec.partition = string("queue")?;
    for k in ["schema", "note", "stdin", "std_outerr", "wall_clock"] {
        if let Some(s) = string(k)? {
            ext.insert(k.to_string(), Value::String(s));
        }
    }
    if let Some(a) = present("attributes") {
        ext.insert("attributes".into(), json!(string_map("attributes", a, true).map_err(|m| at(format!("property {m}")))?));
    }
    if let Some(n) = int("total_nodes")? {
        spec.nodes = Some(n as u32);
    }
    if let Some(m) = int("memory_per_node")? {
        spec.memory_mib = Some(m as u64);
    }
    for k in ["total_cores", "cores_per_node", "memory_per_core", "gpus"] {
        if let Some(n) = int(k)? {
            ext.insert(k.to_string(), json!(n));
        }
    }
    if let Some(o) = present("batch_system_options") {
        ext.insert("batch_system_options".into(), json!(string_list("batch_system_options", o).map_err(|m| at(format!("property {m}")))?));
    }
    if spec.executable.is_none() && !ext.contains_key("schema") {
        return Err(at("property `executable` is required (tosca.nodes.indigo.Batch.Job), unless a `schema` names the program".into()));
    }
    spec.extensions = ext;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn props(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// indigo-dc/tosca-types examples/qcg-job.yaml with its input defaults.
    fn example() -> Map<String, Value> {
        props(json!({
            "note": "Script to submit a test application",
            "executable": "printenv",
            "std_outerr": "log.txt",
            "directory": "${HOME}",
            "total_cores": 2,
            "total_nodes": 1,
            "cores_per_node": 2,
            "memory_per_core": 1024,
            "memory_per_node": 1024,
            "gpus": 0,
            "queue": "standard",
            "wall_clock": "00:02:00",
            "environment": {"NUM_GPUS": 0}
        }))
    }

    #[test]
    fn the_indigo_example_maps_as_the_orchestrator_maps_it() {
        let spec = indigo_job(&example(), "qcg_job").unwrap();
        assert_eq!(spec.executable.as_deref(), Some("printenv"));
        assert_eq!(spec.working_directory.as_deref(), Some("${HOME}"));
        assert_eq!(spec.partition.as_deref(), Some("standard"));
        assert_eq!(spec.nodes, Some(1));
        assert_eq!(spec.memory_mib, Some(1024));
        assert_eq!(spec.environment.get("NUM_GPUS").map(String::as_str), Some("0"));
        let desc = description(&spec).unwrap();
        assert_eq!(
            desc,
            json!({
                "note": "Script to submit a test application",
                "execution": {
                    "executable": "printenv",
                    "environment": {"NUM_GPUS": "0"},
                    "directory": "${HOME}",
                    "std_outerr": "log.txt",
                    "directory_policy": {"create": "OVERWRITE", "remove": "NEVER"}
                },
                "resources": {
                    "queue": "standard",
                    "wall_clock": "00:02:00",
                    "components": [{
                        "total_nodes": 1, "total_cores": 2, "cores_per_node": 2,
                        "memory_per_node": 1024, "memory_per_core": 1024
                    }]
                }
            })
        );
    }

    #[test]
    fn gpus_and_batch_options_become_native_options_in_that_order() {
        let mut p = example();
        p.insert("gpus".into(), json!(2));
        p.insert("batch_system_options".into(), json!(["--exclusive"]));
        p.insert("arguments".into(), json!(["-0", 7]));
        p.insert("attributes".into(), json!({"project": "deep"}));
        p.insert("schema".into(), json!("default"));
        let desc = description(&indigo_job(&p, "j").unwrap()).unwrap();
        assert_eq!(desc["resources"]["components"][0]["native"], json!(["--gres=gpu:2", "--exclusive"]));
        assert_eq!(desc["execution"]["args"], json!(["-0", "7"]));
        assert_eq!(desc["attributes"], json!({"project": "deep"}));
        assert_eq!(desc["schema"], json!("default"));
    }

    #[test]
    fn an_empty_executable_is_refused_with_the_orchestrators_message() {
        let e = indigo_job(&props(json!({"executable": "  "})), "job1").unwrap_err();
        assert_eq!(e, "<executable> property of node <job1> must not be an empty string");
    }

    #[test]
    fn a_missing_executable_needs_a_schema() {
        let e = indigo_job(&props(json!({"note": "x"})), "job1").unwrap_err();
        assert!(e.contains("`executable` is required"), "{e}");
        let spec = indigo_job(&props(json!({"schema": "gromacs"})), "job1").unwrap();
        let desc = description(&spec).unwrap();
        assert_eq!(desc["schema"], "gromacs");
        assert!(desc["execution"].get("executable").is_none());
    }

    #[test]
    fn ill_typed_and_unknown_properties_are_named() {
        let cases = [
            (json!({"executable": "a", "arguments": "-l -a"}), "`arguments` must be a list"),
            (json!({"executable": "a", "total_cores": "many"}), "`total_cores` must be an integer"),
            (json!({"executable": "a", "total_cores": -1}), "`total_cores` is -1"),
            (json!({"executable": "a", "environment": {"A": [1]}}), "`environment.A` must be a string"),
            (json!({"executable": "a", "wallclock": "1"}), "property `wallclock` is not one of"),
            (json!({"executable": ["a"]}), "`executable` must be a string"),
        ];
        for (p, want) in cases {
            let e = indigo_job(&props(p.clone()), "n").unwrap_err();
            assert!(e.contains(want) && e.starts_with("node n:"), "{p}: {e}");
        }
        // null is absent, quoted numbers are numbers (INDIGO templates quote them).
        let spec = indigo_job(&props(json!({"executable": "a", "stdin": null, "total_nodes": "3"})), "n").unwrap();
        assert_eq!(spec.nodes, Some(3));
    }

    #[test]
    fn what_qcg_cannot_express_is_refused_naming_the_field() {
        let base = JobSpec { name: "j".into(), executable: Some("/bin/true".into()), ..JobSpec::default() };
        let cases: Vec<(JobSpec, &str)> = vec![
            (JobSpec { account: Some("proj".into()), ..base.clone() }, "`account`"),
            (JobSpec { after_ok: vec!["12".into()], ..base.clone() }, "`after_ok`"),
            (JobSpec { script: Some("#!/usr/bin/python3\nprint(1)".into()), executable: None, ..base.clone() }, "`script` starts with `#!/usr/bin/python3`"),
            (JobSpec { script: Some("true".into()), ..base.clone() }, "both `script` and `executable`"),
            (JobSpec { executable: None, ..base.clone() }, "no `executable`"),
            (JobSpec { extensions: props(json!({"colour": "red"})), ..base.clone() }, "`colour` is not a QCG-Computing job property"),
            (JobSpec { extensions: props(json!({"wall_clock": "01:00:00"})), time_limit_minutes: Some(5), ..base.clone() }, "`wall_clock` together with `time_limit`"),
            (JobSpec { extensions: props(json!({"total_cores": 4})), tasks: Some(2), ..base.clone() }, "`total_cores` together with"),
            (JobSpec { extensions: props(json!({"directory_policy": {"remove": "SOMETIMES"}})), ..base.clone() }, "`directory_policy.remove` must be one of"),
            (JobSpec { memory_mib: Some(1 << 40), ..base.clone() }, "`memory` is"),
            (JobSpec { stdout: Some("/tmp/%j.out".into()), ..base.clone() }, "`stdout` is \"/tmp/%j.out\": QCG-Computing does not expand"),
            (JobSpec { stderr: Some("e-%4a.txt".into()), ..base.clone() }, "`stderr` is"),
        ];
        for (spec, want) in cases {
            let e = description(&spec).unwrap_err();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        }
    }

    #[test]
    fn a_rosca_batch_job_maps_to_the_common_fields() {
        let mut env = BTreeMap::new();
        env.insert("A".to_string(), "1".to_string());
        let spec = JobSpec {
            name: "jobs.first".into(),
            script: Some("#!/bin/bash\necho hi > out".into()),
            arguments: vec!["x".into()],
            environment: env,
            working_directory: Some("/scratch/w".into()),
            nodes: Some(2),
            tasks: Some(4),
            cpus_per_task: Some(2),
            memory_mib: Some(2048),
            time_limit_minutes: Some(90),
            partition: Some("debug".into()),
            stdout: Some("out.txt".into()),
            stderr: Some("err.txt".into()),
            extensions: props(json!({"directory_policy": {"create": "NOT_OVERWRITE", "remove": "CUSTOM", "remove_custom": {"status": "FAILED", "origin": "ANY"}}})),
            ..JobSpec::default()
        };
        let desc = description(&spec).unwrap();
        assert_eq!(desc["note"], "jobs.first");
        assert_eq!(desc["execution"]["executable"], "/bin/bash");
        assert_eq!(desc["execution"]["args"], json!(["-c", "#!/bin/bash\necho hi > out", "jobs.first", "x"]));
        assert_eq!(desc["execution"]["directory_policy"]["remove_custom"]["status"], "FAILED");
        assert_eq!(desc["resources"]["wall_clock"], "01:30:00");
        assert_eq!(desc["resources"]["queue"], "debug");
        assert_eq!(desc["resources"]["components"], json!([{"total_nodes": 2, "total_cores": 8, "memory_per_node": 2048}]));
        assert_eq!(desc["execution"]["stdout"], "out.txt");
    }

    #[test]
    fn job_answers_map_to_phases_exit_codes_times_and_streams() {
        let job = json!({
            "id": "42", "state": "FINISHED", "exit_code": 0, "work_dir": "/qcg/42/",
            "start_time": "2019-06-07T12:55:25Z", "finish_time": "2019-06-07T12:56:25Z",
            "description": {"execution": {"executable": "/bin/true", "std_outerr": "log.txt"}}
        });
        let s = job_status("42", &job).unwrap();
        assert_eq!((s.phase, s.exit_code, s.state.as_str()), (Phase::Succeeded, Some(0), "FINISHED"));
        assert_eq!(s.stdout.as_deref(), Some("/qcg/42/log.txt"));
        assert_eq!(s.stderr.as_deref(), Some("/qcg/42/log.txt"));
        assert_eq!(s.end_time.as_deref(), Some("2019-06-07T12:56:25Z"));

        let failed = job_status("7", &json!({"state": "FAILED", "exit_code": 3, "errors": "boom"})).unwrap();
        assert_eq!((failed.phase, failed.exit_code, failed.reason.as_deref()), (Phase::Failed, Some(3), Some("boom")));
        let odd = job_status("7", &json!({"state": "FINISHED", "exit_code": 2})).unwrap();
        assert_eq!(odd.phase, Phase::Failed);
        for (state, phase) in [("SUBMITTED", Phase::Queued), ("PENDING", Phase::Queued), ("EXECUTING", Phase::Running), ("COMPLETING", Phase::Running), ("CANCELED", Phase::Cancelled)] {
            assert_eq!(job_status("1", &json!({"state": state})).unwrap().phase, phase);
        }
        // The orchestrator's first provider: no state, derived from errors and resubmit.
        assert_eq!(job_status("1", &json!({"errors": null, "resubmit": 0})).unwrap().phase, Phase::Queued);
        assert_eq!(job_status("1", &json!({"resubmit": 1})).unwrap().state, "SUCCESS");
        assert_eq!(job_status("1", &json!({"errors": "x"})).unwrap().phase, Phase::Failed);
        assert!(job_status("1", &json!({"state": "LIMBO"})).unwrap_err().contains("\"LIMBO\""));
        assert!(job_status("1", &json!("nope")).is_err());
    }

    #[test]
    fn qcg_messages_are_read_from_drf_bodies() {
        assert_eq!(qcg_message(&json!({"detail": "Not found."})), "Not found.");
        assert_eq!(qcg_message(&json!({"execution": {"args": ["Expected a list of items."]}})), "execution.args: Expected a list of items.");
        assert_eq!(qcg_message(&json!("Bad Gateway\n")), "Bad Gateway");
        assert_eq!(qcg_message(&Value::Null), "no message");
    }

    #[test]
    fn only_slurm_style_percent_patterns_are_refused() {
        assert!(has_slurm_pattern("out-%j") && has_slurm_pattern("o-%%") && has_slurm_pattern("%10x"));
        assert!(!has_slurm_pattern("50%.txt") && !has_slurm_pattern("out.txt") && !has_slurm_pattern("end%"));
    }

    #[test]
    fn job_ids_cannot_leave_the_jobs_path() {
        assert_eq!(job_path("a/../b c").unwrap(), "/jobs/a%2F..%2Fb%20c");
        assert!(job_path("").is_err());
    }

    #[tokio::test]
    async fn a_token_command_is_run_without_a_shell_and_its_first_line_is_the_token() {
        let auth = QcgAuth::from_command(vec!["printf".into(), "tok-123\\nrest".into()]).unwrap();
        assert_eq!(auth.fetch().await.unwrap(), Token("tok-123".into()));
        let bad = QcgAuth::from_command(vec!["sh".into(), "-c".into(), "printf 'sec%s' ret-out; echo oops >&2; exit 4".into()]).unwrap();
        let e = bad.fetch().await.unwrap_err();
        assert_eq!(e.kind, SchedulerErrorKind::Auth);
        assert!(e.message.contains("oops") && !e.message.contains("secret-out"), "{}", e.message);
        assert!(QcgAuth::from_command(vec![]).is_err());
        assert!(format!("{:?}", Token("abcd".into())).contains("***"));
    }
}
