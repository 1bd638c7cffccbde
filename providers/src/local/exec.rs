//! Running one implementation artifact: `sh <script>` in a sandbox, its own process group,
//! stdout and stderr appended to a log file (a file, never a pipe: a start script that leaves a
//! server running in the background must not keep us waiting), a timeout that kills the whole
//! group, and `KEY=VALUE` outputs read back from `$ROSCA_OUTPUTS`.

use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many lines of a failed run's log go into the error.
const TAIL_LINES: usize = 20;
/// How many bytes from the end of the log are read for the tail.
const TAIL_BYTES: u64 = 64 * 1024;

/// One run of one script.
pub(crate) struct Script<'a> {
    pub script: &'a Path,
    pub cwd: &'a Path,
    /// Set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Appended to; the run writes a header line first.
    pub log: &'a Path,
    /// Truncated before the run; its path is passed as `ROSCA_OUTPUTS`.
    pub outputs: &'a Path,
    pub timeout: Duration,
}

/// Why a run failed; `tail` holds the last lines the run wrote to its log.
#[derive(Debug)]
pub(crate) struct RunError {
    /// "exited with code 3", "timed out after 10s", "could not be started: ...".
    pub what: String,
    pub tail: String,
}

impl RunError {
    fn io(context: &str, path: &Path, e: io::Error) -> RunError {
        RunError { what: format!("could not be started: {context} {}: {e}", path.display()), tail: String::new() }
    }
}

/// Kills a process group when dropped while armed: a cancelled apply (the future dropped) must
/// not leave a half-run script behind.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions; pgid is the group of a child we
        // spawned with process_group(0), so it names only that script and its descendants.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Runs the script to completion (or timeout) and returns its outputs.
pub(crate) async fn run(s: &Script<'_>) -> Result<Map<String, Value>, RunError> {
    if let Some(dir) = s.log.parent() {
        fs::create_dir_all(dir).map_err(|e| RunError::io("creating log directory", dir, e))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.log)
        .map_err(|e| RunError::io("opening log", s.log, e))?;
    let start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let _ = writeln!(log, "=== {now} sh {}", s.script.display());
    File::create(s.outputs).map_err(|e| RunError::io("creating outputs file", s.outputs, e))?;
    let out = log.try_clone().map_err(|e| RunError::io("opening log", s.log, e))?;

    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg(s.script)
        .current_dir(s.cwd)
        .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(log))
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| RunError::io("spawning sh for", s.script, e))?;
    let mut guard = GroupGuard(child.id().map(|p| p as i32));

    let status = match tokio::time::timeout(s.timeout, child.wait()).await {
        Ok(status) => {
            // Whatever the script left running in the background (a server) stays.
            guard.disarm();
            status.map_err(|e| RunError { what: format!("could not be waited for: {e}"), tail: tail(s.log, start) })?
        }
        Err(_) => {
            if let Some(pgid) = guard.0.take() {
                kill_group(pgid);
            }
            let _ = child.wait().await;
            return Err(RunError {
                what: format!("timed out after {} and was killed", human(s.timeout)),
                tail: tail(s.log, start),
            });
        }
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let what = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => format!("failed ({status})"),
        };
        return Err(RunError { what, tail: tail(s.log, start) });
    }
    let text = fs::read(s.outputs).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    Ok(parse_outputs(&text))
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `KEY=VALUE` lines; blank lines, `#` comments and lines without `=` are skipped, a leading
/// `export ` is allowed, a later line wins.
pub(crate) fn parse_outputs(text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        if let Some((k, v)) = trimmed.split_once('=') {
            let k = k.trim();
            if !k.is_empty() {
                out.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
    }
    out
}

/// The last lines written to `log` since byte `start`.
pub(crate) fn tail(log: &Path, start: u64) -> String {
    let Ok(mut f) = File::open(log) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = start.max(len.saturating_sub(TAIL_BYTES));
    if f.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(TAIL_BYTES).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > start && !lines.is_empty() {
        lines.remove(0); // cut mid-line
    }
    let skip = lines.len().saturating_sub(TAIL_LINES);
    lines[skip..].join("\n")
}

/// Where a run's log and outputs file go.
pub(crate) fn log_paths(log_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (log_dir.join(format!("{name}.log")), log_dir.join(format!("{name}.outputs")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_lines() {
        let m = parse_outputs("A=1\n\n# c\nexport B = x=y\r\nnoeq\n=v\nA=2\n");
        assert_eq!(m.get("A"), Some(&Value::String("2".into())));
        assert_eq!(m.get("B"), Some(&Value::String(" x=y".into())));
        assert_eq!(m.len(), 2);
    }
}
