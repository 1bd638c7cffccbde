//! Lock records and the retry loop around `StateBackend::lock` (`--lock-timeout`).

use crate::backend::{LockError, LockInfo, StateBackend};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// First wait between attempts; doubled after each, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

impl LockInfo {
    /// A fresh lock record for `operation` (`plan`, `apply`, ...) on the state at `path`: a new
    /// UUID v4, `user@host`, this rosca's version and the current time (RFC 3339, UTC).
    pub fn new(operation: impl Into<String>, path: impl Into<String>) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.into(),
            info: String::new(),
            who: who(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            path: path.into(),
        }
    }
}

/// `user@host`, from `USER` and the kernel's host name (or `HOSTNAME`).
fn who() -> String {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

/// Takes the lock, retrying while someone else holds it until `timeout` has passed (waits of
/// about 0.25 s, 0.5 s, 1 s, ... up to 4 s, each jittered by ±50% so that waiters who started
/// together do not all retry at the same instant and lose to one another again; never past the
/// deadline). On timeout, returns the last
/// `Held` error, which names the holder. Other errors are returned at once: retrying cannot
/// fix a missing directory or a file system without locks.
pub fn lock_with_timeout(backend: &dyn StateBackend, info: &LockInfo, timeout: Duration) -> Result<(), LockError> {
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match backend.lock(info) {
            Err(LockError::Held(holder)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LockError::Held(holder));
                }
                let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
                std::thread::sleep(backoff.mul_f64(jitter).min(left));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Parses a `--lock-timeout` value: `0`, `500ms`, `10s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {e}; write a number with a unit, e.g. 500ms, 10s or 2m"))
}

/// The lock-holder block printed under "Error acquiring the state lock" (Terraform's layout).
pub fn render_lock_info(info: &LockInfo) -> String {
    let rows = [
        ("ID", &info.id),
        ("Path", &info.path),
        ("Operation", &info.operation),
        ("Who", &info.who),
        ("Version", &info.version),
        ("Created", &info.created),
        ("Info", &info.info),
    ];
    let mut out = String::from("Lock Info:");
    for (label, value) in rows {
        let row = format!("  {:<11}{value}", format!("{label}:"));
        out.push('\n');
        out.push_str(row.trim_end());
    }
    out
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_lock_info(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_lock_info() {
        let a = LockInfo::new("apply", "rosca.state.json");
        let b = LockInfo::new("apply", "rosca.state.json");
        assert_ne!(a.id, b.id);
        assert_eq!(uuid::Uuid::parse_str(&a.id).map(|u| u.get_version_num()), Ok(4));
        assert!(a.who.contains('@'));
        assert!(humantime::parse_rfc3339(&a.created).is_ok(), "{}", a.created);
        assert!(a.created.ends_with('Z'));
        assert_eq!(a.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("soon") && err.contains("10s"), "{err}");
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn renders_block() {
        let info = LockInfo::new("apply", "s.json");
        let text = render_lock_info(&info);
        let labels: Vec<&str> = text.lines().map(|l| l.trim().split(':').next().unwrap_or("")).collect();
        assert_eq!(labels, ["Lock Info", "ID", "Path", "Operation", "Who", "Version", "Created", "Info"]);
        assert!(text.contains(&info.id));
        assert_eq!(info.to_string(), text);
    }
}
