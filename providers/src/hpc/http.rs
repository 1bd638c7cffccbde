//! JSON over HTTP for the scheduler clients, with the retry policy of SPEC §6: a request that
//! never left (connection refused) and answers that say "not processed" (429, 503) are retried
//! with backoff for any method; timeouts, resets, 500, 502 and 504 only for idempotent calls,
//! since a submit may have happened. What comes back is the last answer, whatever its status:
//! the caller reads the scheduler's own error format.

use super::job::{SchedulerError, SchedulerErrorKind};
use crate::retry::RetryPolicy;
use serde_json::Value;
use std::time::Duration;

pub use reqwest::Method;

/// One answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    pub status: u16,
    pub body: Value,
}

impl Exchange {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Whether an answer (never a 2xx) is worth retrying; `idempotent` says whether the call may be
/// repeated after an unknown outcome.
pub type Transient = fn(&Exchange, bool) -> bool;

/// 429 and 503 mean "not processed"; 500, 502 and 504 may come after the work was done.
pub fn transient_status(x: &Exchange, idempotent: bool) -> bool {
    matches!(x.status, 429 | 503) || (idempotent && matches!(x.status, 500 | 502 | 504))
}

/// A base URL and a client. Cheap to clone.
#[derive(Clone)]
pub struct HttpJson {
    client: reqwest::Client,
    base: String,
    retry: RetryPolicy,
    /// `slurmrestd`, `QCG-Computing`: who answered, for messages.
    label: &'static str,
    transient: Transient,
}

impl HttpJson {
    /// `base` without a trailing slash: `http://127.0.0.1:6820`.
    pub fn new(base: &str, label: &'static str, retry: RetryPolicy, timeout: Duration) -> Result<HttpJson, SchedulerError> {
        let url = url::Url::parse(base)
            .map_err(|e| SchedulerError::new(SchedulerErrorKind::Setup, format!("the {label} URL {base:?} is not a URL ({e}); write it as http(s)://HOST:PORT")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SchedulerError::new(SchedulerErrorKind::Setup, format!("the {label} URL {base:?} must start with http:// or https://")));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SchedulerError::new(SchedulerErrorKind::Setup, format!("cannot make an HTTP client: {e}")))?;
        Ok(HttpJson { client, base: base.trim_end_matches('/').to_string(), retry, label, transient: transient_status })
    }

    /// Replaces the rule for retrying answers, for services whose 500s are often final (Slurm
    /// answers "invalid job id" with a 500).
    pub fn with_transient(mut self, transient: Transient) -> HttpJson {
        self.transient = transient;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Sends `method path` with `headers` and an optional JSON body; retries as the module says.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&'static str, String)], body: Option<&Value>) -> Result<Exchange, SchedulerError> {
        let idempotent = method != Method::POST;
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0u32;
        loop {
            let mut req = self.client.request(method.clone(), &url).header("Accept", "application/json");
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let (retryable, retry_after, failure) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp.text().await.unwrap_or_default();
                    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    let exchange = Exchange { status, body };
                    let retryable = !exchange.ok() && (self.transient)(&exchange, idempotent);
                    if !retryable {
                        return Ok(exchange);
                    }
                    (true, retry_after, format!("HTTP {status}"))
                }
                Err(e) => {
                    // A refused connection means the request never reached the server.
                    let retryable = e.is_connect() || idempotent;
                    (retryable, None, describe(&e))
                }
            };
            attempt += 1;
            if !retryable || attempt >= self.retry.attempts {
                let tries = if attempt > 1 { format!(" (after {attempt} attempts)") } else { String::new() };
                return Err(SchedulerError::new(
                    SchedulerErrorKind::Transient,
                    format!("{} {} {method} {path}: {failure}{tries}; check that it is running and reachable", self.label, self.base),
                ));
            }
            tracing::debug!(label = self.label, %path, attempt, "retrying: {failure}");
            tokio::time::sleep(self.retry.delay(attempt - 1, retry_after)).await;
        }
    }
}

/// reqwest's error without the URL's query (which never holds secrets here, but stays short).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what} ({detail})")
    }
}
