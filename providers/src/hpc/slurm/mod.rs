//! Slurm through slurmrestd. The endpoint, the user and the token come from a `[sites.NAME]`
//! table or Slurm's own environment (`SLURMRESTD_URL`, `SLURM_USER_NAME`, `SLURM_JWT`). The API
//! version is chosen by asking the server what it serves (`/openapi/v3`, else a ping per
//! version); each version's JSON lives in its own module behind [`Dialect`]:
//! `v0038` (Slurm 22.05, Debian bookworm) and `v0041` (Slurm 24.05+).

pub mod token;
mod v0038;
mod v0041;

use super::http::{Exchange, HttpJson, Method};
use super::job::{JobSpec, JobStatus, Phase, Scheduler, SchedulerError, SchedulerErrorKind};
use crate::api::BoxFuture;
use crate::retry::RetryPolicy;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use token::{TokenSource, Tokens};
use tokio::sync::OnceCell;

/// One API version's request and response shapes. Paths are the same in every version
/// (`/slurm/VERSION/job/submit`, `/job/ID`, `/ping`).
pub trait Dialect: Send + Sync {
    fn version(&self) -> &'static str;
    /// The ping path after `/slurm/VERSION/`, as the version's OpenAPI document keys it.
    fn ping(&self) -> &'static str {
        "ping"
    }
    /// The body of `POST job/submit`, or what in `job` this version cannot express.
    fn submit_body(&self, job: &JobSpec) -> Result<Value, String>;
    /// The job id of a submit answer.
    fn submitted_id(&self, body: &Value) -> Option<String>;
    /// The job in a `GET job/ID` answer.
    fn job_status(&self, id: &str, body: &Value) -> Option<JobStatus>;
}

/// Versions this client speaks, newest first: the first one the server also serves is used.
fn dialects() -> Vec<Arc<dyn Dialect>> {
    vec![Arc::new(v0041::V0041), Arc::new(v0038::V0038)]
}

pub fn supported_versions() -> Vec<&'static str> {
    dialects().iter().map(|d| d.version()).collect()
}

/// How to reach one slurmrestd.
#[derive(Clone, Debug)]
pub struct SlurmConfig {
    /// `http://127.0.0.1:6820`.
    pub url: String,
    pub user: String,
    pub token: TokenSource,
    /// A version to use instead of probing (`v0.0.38`).
    pub api_version: Option<String>,
    pub retry: RetryPolicy,
    /// Longest wait for one HTTP answer.
    pub request_timeout: Duration,
}

pub struct SlurmScheduler {
    http: HttpJson,
    user: String,
    tokens: Tokens,
    forced: Option<String>,
    dialect: OnceCell<Arc<dyn Dialect>>,
}

impl SlurmScheduler {
    pub fn new(config: SlurmConfig) -> Result<SlurmScheduler, SchedulerError> {
        if let Some(v) = &config.api_version {
            if !supported_versions().contains(&v.as_str()) {
                return Err(SchedulerError::new(
                    SchedulerErrorKind::Setup,
                    format!("api_version {v:?} is not one this client speaks ({}); remove it to let Rosca choose", supported_versions().join(", ")),
                ));
            }
        }
        if config.user.is_empty() {
            return Err(SchedulerError::new(SchedulerErrorKind::Setup, "no Slurm user name: set SLURM_USER_NAME or the site's user"));
        }
        Ok(SlurmScheduler {
            http: HttpJson::new(&config.url, "slurmrestd", config.retry, config.request_timeout)?.with_transient(transient),
            user: config.user,
            tokens: Tokens::new(config.token),
            forced: config.api_version,
            dialect: OnceCell::new(),
        })
    }

    /// The API version in use (probing the server the first time).
    pub async fn version(&self) -> Result<&'static str, SchedulerError> {
        Ok(self.dialect().await?.version())
    }

    async fn dialect(&self) -> Result<&Arc<dyn Dialect>, SchedulerError> {
        self.dialect.get_or_try_init(|| self.probe()).await
    }

    async fn probe(&self) -> Result<Arc<dyn Dialect>, SchedulerError> {
        let ours = dialects();
        if let Some(v) = &self.forced {
            if let Some(d) = ours.iter().find(|d| d.version() == v) {
                return Ok(d.clone());
            }
        }
        // The OpenAPI document lists every served path.
        let served: Vec<String> = match self.call(Method::GET, "/openapi/v3", None).await {
            Ok(x) if x.ok() => x.body.get("paths").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default(),
            Ok(x) if matches!(x.status, 401 | 403) => return Err(auth_error(&x)),
            _ => Vec::new(),
        };
        for d in &ours {
            let submit = format!("/slurm/{}/job/submit", d.version());
            if served.iter().any(|p| p == &submit) {
                return Ok(d.clone());
            }
        }
        // No document (or one without these paths): ask each version directly.
        for d in &ours {
            let x = self.call(Method::GET, &self.path(d.as_ref(), d.ping()), None).await?;
            if x.ok() {
                return Ok(d.clone());
            }
            if matches!(x.status, 401 | 403) {
                return Err(auth_error(&x));
            }
        }
        let versions: Vec<&str> = served.iter().filter_map(|p| p.strip_prefix("/slurm/")).filter_map(|p| p.split('/').next()).collect();
        Err(SchedulerError::new(
            SchedulerErrorKind::Setup,
            format!(
                "slurmrestd at {} serves no API version this client speaks (it serves: {}; Rosca speaks {}); start slurmrestd with -s openapi/{}",
                self.http.base(),
                if versions.is_empty() { "none found".to_string() } else { dedup(versions).join(", ") },
                supported_versions().join(", "),
                supported_versions().last().copied().unwrap_or_default(),
            ),
        ))
    }

    /// One request with the user and token headers; a token that may have been refused is
    /// renewed once (when its source can give another) and the request repeated.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Exchange, SchedulerError> {
        let token = self.tokens.get().await?;
        let x = self.send(method.clone(), path, &token, body).await?;
        if !is_auth_failure(&x) && !maybe_refused_token(&x) {
            return Ok(x);
        }
        match self.tokens.renew(&token).await? {
            Some(fresh) => {
                tracing::info!("slurmrestd refused the token; retrying with a renewed one");
                self.send(method, path, &fresh, body).await
            }
            None => Ok(x),
        }
    }

    async fn send(&self, method: Method, path: &str, token: &str, body: Option<&Value>) -> Result<Exchange, SchedulerError> {
        let headers = [("X-SLURM-USER-NAME", self.user.clone()), ("X-SLURM-USER-TOKEN", token.to_string())];
        self.http.send(method, path, &headers, body).await
    }

    fn path(&self, d: &dyn Dialect, rest: &str) -> String {
        format!("/slurm/{}/{rest}", d.version())
    }
}

impl Scheduler for SlurmScheduler {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    fn endpoint(&self) -> String {
        match self.dialect.get() {
            Some(d) => format!("{} (API {})", self.http.base(), d.version()),
            None => self.http.base().to_string(),
        }
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), SchedulerError>> {
        Box::pin(async move {
            let d = self.dialect().await?;
            let x = self.call(Method::GET, &self.path(d.as_ref(), d.ping()), None).await?;
            if x.ok() {
                Ok(())
            } else if is_auth_failure(&x) {
                Err(auth_error(&x))
            } else {
                Err(rejected(&x, "ping"))
            }
        })
    }

    fn submit<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<String, SchedulerError>> {
        Box::pin(async move {
            let d = self.dialect().await?;
            let body = d.submit_body(job).map_err(|m| SchedulerError::new(SchedulerErrorKind::Rejected, m))?;
            let x = self.call(Method::POST, &self.path(d.as_ref(), "job/submit"), Some(&body)).await?;
            if is_auth_failure(&x) {
                return Err(auth_error(&x));
            }
            let errors = errors(&x.body);
            match d.submitted_id(&x.body) {
                Some(id) if x.ok() && errors.is_empty() => Ok(id),
                _ => Err(rejected(&x, "the job submission")),
            }
        })
    }

    fn status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<JobStatus>, SchedulerError>> {
        Box::pin(async move {
            let d = self.dialect().await?;
            let x = self.call(Method::GET, &self.path(d.as_ref(), &format!("job/{}", seg(id))), None).await?;
            if is_auth_failure(&x) {
                return Err(auth_error(&x));
            }
            if let Some(s) = d.job_status(id, &x.body) {
                return Ok(Some(s));
            }
            if unknown_job(&x) {
                return Ok(None);
            }
            Err(rejected(&x, &format!("reading job {id}")))
        })
    }

    fn cancel<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), SchedulerError>> {
        Box::pin(async move {
            let d = self.dialect().await?;
            let x = self.call(Method::DELETE, &self.path(d.as_ref(), &format!("job/{}", seg(id))), None).await?;
            if is_auth_failure(&x) {
                return Err(auth_error(&x));
            }
            if (x.ok() && errors(&x.body).is_empty()) || unknown_job(&x) || already_finished(&x) {
                return Ok(());
            }
            Err(rejected(&x, &format!("cancelling job {id}")))
        })
    }
}

/// A job id as one path segment (ids are numbers; anything else must not change the path).
fn seg(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '+').collect()
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v.dedup();
    v
}

/// Slurm's error list: `errors: [{"error": .., "description": .., "error_number"|"errno": ..}]`,
/// as one line per error, in Slurm's own words.
pub fn errors(body: &Value) -> Vec<String> {
    let Some(list) = body.get("errors").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let number = error_number(e);
            let mut parts: Vec<String> = Vec::new();
            if let Some(d) = text("description") {
                parts.push(d.to_string());
            }
            if let Some(m) = text("error") {
                if !parts.iter().any(|p| p == m) {
                    parts.push(m.to_string());
                }
            }
            if parts.is_empty() && number.is_none() {
                return None;
            }
            let mut line = parts.join(": ");
            if let Some(n) = number.filter(|n| *n != 0) {
                line = if line.is_empty() { format!("error {n}") } else { format!("{line} (error {n})") };
            }
            Some(line)
        })
        .collect()
}

fn is_auth_failure(x: &Exchange) -> bool {
    matches!(x.status, 401 | 403)
}

fn auth_error(x: &Exchange) -> SchedulerError {
    let said = errors(&x.body);
    let detail = if said.is_empty() { String::new() } else { format!(": {}", said.join("; ")) };
    SchedulerError::new(
        SchedulerErrorKind::Auth,
        format!(
            "slurmrestd refused the credentials (HTTP {}){detail}; check SLURM_USER_NAME and the token (SLURM_JWT, or the site's token_env, token_file or token_command; `scontrol token` makes one)",
            x.status
        ),
    )
}

fn rejected(x: &Exchange, what: &str) -> SchedulerError {
    let said = errors(&x.body);
    let detail = if !said.is_empty() {
        said.join("; ")
    } else {
        match &x.body {
            Value::String(s) if !s.trim().is_empty() => s.trim().chars().take(300).collect(),
            _ => "no error message".to_string(),
        }
    };
    if maybe_refused_token(x) {
        return SchedulerError::new(
            SchedulerErrorKind::Auth,
            format!(
                "slurmrestd could not do {what} (HTTP {}): {detail}; slurmrestd 22.05 answers this way when slurmctld refuses the token (expired, or signed with another key) or cannot be reached: check the token (SLURM_JWT, or the site's token_env, token_file or token_command; `scontrol token` makes one) and that slurmctld runs",
                x.status
            ),
        );
    }
    let kind = if transient(x, true) { SchedulerErrorKind::Transient } else { SchedulerErrorKind::Rejected };
    SchedulerError::new(kind, format!("slurmrestd refused {what} (HTTP {}): {detail}", x.status))
}

/// Slurm's "Invalid job id specified" (ESLURM_INVALID_JOB_ID, 2017): the controller no longer
/// knows the job (purged after MinJobAge) or never did.
fn unknown_job(x: &Exchange) -> bool {
    x.status == 404 || error_numbers(&x.body).contains(&2017) || errors(&x.body).iter().any(|e| e.to_ascii_lowercase().contains("invalid job id"))
}

/// Cancelling a job that already ended (ESLURM_ALREADY_DONE, 2021).
fn already_finished(x: &Exchange) -> bool {
    error_numbers(&x.body).contains(&2021) || errors(&x.body).iter().any(|e| e.to_ascii_lowercase().contains("already completing or completed"))
}

fn error_numbers(body: &Value) -> Vec<i64> {
    body.get("errors")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(error_number).collect())
        .unwrap_or_default()
}

/// `error_number` (most answers), `error_code` (22.05's submit answer) or `errno`.
fn error_number(e: &Value) -> Option<i64> {
    e.get("error_number").or_else(|| e.get("error_code")).or_else(|| e.get("errno")).and_then(Value::as_i64)
}

/// slurmrestd 22.05 does not say "unauthorized": slurmctld drops the RPC of a refused (expired,
/// wrongly signed) token, and slurmrestd answers 500 with "Unspecified error" (-1) for reads or
/// "Zero Bytes were transmitted or received" (5005) for writes. Such an answer may mean a bad
/// token, so a renewable token is renewed and the call repeated once.
fn maybe_refused_token(x: &Exchange) -> bool {
    x.status >= 500 && error_numbers(&x.body).iter().any(|n| matches!(n, -1 | 5005))
}

/// Which non-2xx answers to retry. Slurm answers its own refusals (invalid job id, bad
/// partition) with 500 and an error list: those are final. Only errors reaching slurmctld
/// (SLURM_COMMUNICATIONS_*_ERROR 1001-1003, SLURMCTLD_COMMUNICATIONS_* 1800-1803) are retried,
/// and answers without a Slurm error list by their status.
fn transient(x: &Exchange, idempotent: bool) -> bool {
    let numbers = error_numbers(&x.body);
    if numbers.is_empty() {
        return super::http::transient_status(x, idempotent);
    }
    numbers.iter().any(|n| matches!(n, 1001..=1003 | 1800..=1803))
}

/// Slurm's base job state → phase. A job pending on a dependency that can never be satisfied
/// (one it waits for failed) will never run: it counts as failed.
pub fn phase(state: &str, reason: Option<&str>) -> Phase {
    match state {
        "COMPLETED" => Phase::Succeeded,
        "CANCELLED" => Phase::Cancelled,
        "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE" | "PREEMPTED" => Phase::Failed,
        "PENDING" if reason == Some("DependencyNeverSatisfied") => Phase::Failed,
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" | "SUSPENDED" | "CONFIGURING" => Phase::Queued,
        _ => Phase::Running,
    }
}

/// What every API version says about a job, read from its own shapes.
pub(crate) struct JobFields {
    pub state: String,
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub cwd: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// The status of job `id` from its fields: times and exit code only once they are real (Slurm
/// fills in expected times, and a job that never ran has no exit code), `%j` expanded, and the
/// default output file (`slurm-ID.out` in the working directory) when none was given.
pub(crate) fn status_of(id: &str, f: JobFields) -> JobStatus {
    let reason = f.reason.filter(|r| r != "None");
    let phase = phase(&f.state, reason.as_deref());
    let ran = f.state != "PENDING";
    let signal = f.signal.filter(|s| *s > 0 && phase.is_terminal() && ran);
    let exit_code = if phase.is_terminal() && ran && signal.is_none() { f.exit_code } else { None };
    let reason = match (signal, reason) {
        (Some(sig), Some(r)) => Some(format!("{r}; killed by signal {sig}")),
        (Some(sig), None) => Some(format!("killed by signal {sig}")),
        (None, r) => r,
    };
    let started = matches!(phase, Phase::Running) || phase.is_terminal();
    let default_out = f.cwd.as_ref().map(|d| format!("{}/slurm-{id}.out", d.trim_end_matches('/')));
    let stdout = f.stdout.or(default_out).map(|p| p.replace("%j", id));
    let stderr = f.stderr.map(|p| p.replace("%j", id)).or_else(|| stdout.clone());
    JobStatus {
        id: id.to_string(),
        state: f.state,
        phase,
        exit_code,
        reason,
        start_time: if started { time(f.start) } else { None },
        end_time: if phase.is_terminal() { time(f.end) } else { None },
        stdout,
        stderr,
    }
}

/// Seconds since the epoch → RFC 3339; Slurm writes 0 for "not yet".
pub fn time(secs: Option<i64>) -> Option<String> {
    let s = u64::try_from(secs?).ok().filter(|s| *s > 0)?;
    let t = std::time::UNIX_EPOCH.checked_add(Duration::from_secs(s))?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// The batch script of a job: its own, or one that runs `executable` with `arguments`.
pub fn batch_script(job: &JobSpec) -> Result<String, String> {
    match (&job.script, &job.executable) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(exe)) => {
            let mut line = format!("exec {}", quote(exe));
            for a in &job.arguments {
                line.push(' ');
                line.push_str(&quote(a));
            }
            Ok(format!("#!/bin/sh\n{line}\n"))
        }
        (None, None) => Err("the job has neither a script nor an executable".into()),
    }
}

/// Arguments passed to the script itself (`argv[1..]`); an executable's are in its script.
pub fn script_arguments(job: &JobSpec) -> Vec<String> {
    if job.script.is_some() {
        job.arguments.clone()
    } else {
        Vec::new()
    }
}

pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `afterok:1:2`, or None.
pub fn dependency(job: &JobSpec) -> Option<String> {
    (!job.after_ok.is_empty()).then(|| format!("afterok:{}", job.after_ok.join(":")))
}

/// Slurm 22.05 refuses a batch job without an environment; the job's own variables win.
pub fn environment(job: &JobSpec) -> std::collections::BTreeMap<String, String> {
    let mut env = job.environment.clone();
    env.entry("PATH".into()).or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_expired_token_on_22_05_is_suspected_and_slurm_refusals_are_not_retried() {
        // Captured from slurmrestd 22.05.8 with an expired token.
        let read = Exchange { status: 500, body: json!({"errors": [{"description": "Unable to find JobId=1", "error_number": -1, "error": "Unspecified error", "source": "slurm_load_job"}]}) };
        let submit = Exchange { status: 500, body: json!({"errors": [{"error_code": 5005, "error": "Zero Bytes were transmitted or received"}]}) };
        assert!(maybe_refused_token(&read) && maybe_refused_token(&submit));
        let unknown = Exchange { status: 500, body: json!({"errors": [{"description": "Unable to find JobId=999999", "error_number": 2017, "error": "Invalid job id specified", "source": "_handle_job_get"}]}) };
        assert!(!maybe_refused_token(&unknown) && unknown_job(&unknown));
        assert!(!transient(&unknown, true));
        let down = Exchange { status: 500, body: json!({"errors": [{"error_number": 1800, "error": "Unable to contact slurm controller (connect failure)"}]}) };
        assert!(transient(&down, true));
        assert!(transient(&Exchange { status: 503, body: Value::Null }, false));
    }

    #[test]
    fn slurm_error_lists_of_both_generations_read_the_same() {
        let old = json!({"errors": [{"error": "Invalid partition name specified", "errno": 2000}]});
        assert_eq!(errors(&old), vec!["Invalid partition name specified (error 2000)"]);
        let new = json!({"errors": [{"description": "Batch job submission failed", "error_number": 2000, "error": "Invalid partition name specified", "source": "slurm_submit_batch_job()"}]});
        assert_eq!(errors(&new), vec!["Batch job submission failed: Invalid partition name specified (error 2000)"]);
        assert!(errors(&json!({"errors": []})).is_empty());
    }

    #[test]
    fn states_map_to_phases() {
        assert_eq!(phase("COMPLETED", None), Phase::Succeeded);
        assert_eq!(phase("OUT_OF_MEMORY", None), Phase::Failed);
        assert_eq!(phase("PENDING", Some("Resources")), Phase::Queued);
        assert_eq!(phase("PENDING", Some("DependencyNeverSatisfied")), Phase::Failed);
        assert_eq!(phase("RUNNING", None), Phase::Running);
        assert_eq!(phase("COMPLETING", None), Phase::Running);
    }

    #[test]
    fn an_executable_runs_through_a_quoted_script() {
        let job = JobSpec { executable: Some("/bin/echo".into()), arguments: vec!["it's".into(), "$HOME".into()], ..Default::default() };
        assert_eq!(batch_script(&job).unwrap(), "#!/bin/sh\nexec '/bin/echo' 'it'\\''s' '$HOME'\n");
        assert!(script_arguments(&job).is_empty());
        assert_eq!(seg("12/../x"), "12x");
    }

    #[test]
    fn times_and_dependencies() {
        assert_eq!(time(Some(0)), None);
        assert_eq!(time(Some(1_700_000_000)).as_deref(), Some("2023-11-14T22:13:20Z"));
        let job = JobSpec { after_ok: vec!["4".into(), "5".into()], ..Default::default() };
        assert_eq!(dependency(&job).as_deref(), Some("afterok:4:5"));
    }
}
