//! Polling a resource until it reaches a state, with a deadline.

use super::client::{request, Api, Call, CallError, ErrorKind};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What one poll found.
pub enum Poll {
    Done(Value),
    /// Not there yet; the text is the current state, for the timeout message.
    Pending(String),
    Failed(String),
    Gone,
}

/// Polls `call` every `interval` (growing to 5 s) until `judge` says done, failed or gone, or
/// `timeout` passes.
pub async fn until(
    api: &dyn Api,
    call: &Call,
    what: &str,
    timeout: Duration,
    interval: Duration,
    judge: impl Fn(&Value) -> Poll,
) -> Result<Option<Value>, CallError> {
    let start = Instant::now();
    let mut delay = interval;
    let mut last: String;
    loop {
        match request(api, call).await {
            Ok(v) => match judge(&v) {
                Poll::Done(v) => return Ok(Some(v)),
                Poll::Failed(m) => return Err(CallError::new(ErrorKind::Rejected, format!("{what}: {m}"))),
                Poll::Gone => return Ok(None),
                Poll::Pending(s) => last = s,
            },
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        if start.elapsed() >= timeout {
            return Err(CallError::new(
                ErrorKind::Transient,
                format!("{what}: still {last} after {}s (the wait timeout); raise it with --timeout or the site's wait_timeout", timeout.as_secs()),
            ));
        }
        tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(5));
    }
}
