//! The JWT slurmrestd wants in `X-SLURM-USER-TOKEN`: fixed (from `SLURM_JWT` or a variable the
//! site names), read from a file, or printed by a command (`scontrol token`) that is run again
//! when the token expires or is refused. The token is never logged or put in a message.

use super::super::job::{SchedulerError, SchedulerErrorKind};
use base64::Engine;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// Where tokens come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenSource {
    /// A token given once; it cannot be renewed.
    Fixed(String),
    /// A file whose content (or `SLURM_JWT=` line) is the token; read again to renew.
    File(PathBuf),
    /// A shell command printing the token or `SLURM_JWT=...`; run again to renew.
    Command(String),
}

impl TokenSource {
    pub fn renewable(&self) -> bool {
        !matches!(self, TokenSource::Fixed(_))
    }

    fn describe(&self) -> String {
        match self {
            TokenSource::Fixed(_) => "the fixed token".into(),
            TokenSource::File(p) => format!("token file {}", p.display()),
            TokenSource::Command(c) => format!("token command `{c}`"),
        }
    }
}

/// The current token and where the next one comes from.
pub struct Tokens {
    source: TokenSource,
    current: Mutex<Option<String>>,
}

/// Renew this long before a token's `exp`, so a request never arrives with a token that dies
/// on the way; a quarter of the lifetime for shorter-lived tokens (see [`margin`]).
const EARLY: Duration = Duration::from_secs(30);

/// How long before `exp` to renew: [`EARLY`], or a quarter of the token's lifetime (`exp - iat`)
/// when that is shorter, so a token living less than 30 s is not renewed before every request.
fn margin(token: &str) -> Duration {
    match (claim(token, "iat"), claim(token, "exp")) {
        (Some(iat), Some(exp)) if exp > iat => EARLY.min(Duration::from_secs(exp - iat) / 4),
        _ => EARLY,
    }
}

impl Tokens {
    pub fn new(source: TokenSource) -> Tokens {
        let current = match &source {
            TokenSource::Fixed(t) => Some(t.clone()),
            _ => None,
        };
        Tokens { source, current: Mutex::new(current) }
    }

    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// A token to send: the current one unless it is missing or about to expire.
    pub async fn get(&self) -> Result<String, SchedulerError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref() {
            let exp = expiry(t);
            let fresh = exp.is_none_or(|exp| SystemTime::now() + margin(t) < exp);
            if fresh {
                return Ok(t.clone());
            }
            if !self.source.renewable() {
                // slurmrestd 22.05 answers an expired token with the same 500 as an unreachable
                // slurmctld: say what is known here instead of sending it.
                if let Some(exp) = exp.filter(|e| *e <= SystemTime::now()) {
                    return Err(SchedulerError::new(
                        SchedulerErrorKind::Auth,
                        format!(
                            "the Slurm token (SLURM_JWT, or the site's token_env) expired at {}; make a new one with `scontrol token`, or set the site's token_command (or token_file) so Rosca renews it",
                            humantime::format_rfc3339_seconds(exp)
                        ),
                    ));
                }
                return Ok(t.clone());
            }
        }
        let t = self.fetch().await?;
        *current = Some(t.clone());
        Ok(t)
    }

    /// Drops `refused` (the token the scheduler just refused) and fetches a new one. `Ok(None)`
    /// when the source cannot give another.
    pub async fn renew(&self, refused: &str) -> Result<Option<String>, SchedulerError> {
        if !self.source.renewable() {
            return Ok(None);
        }
        let mut current = self.current.lock().await;
        // Another request may have renewed it meanwhile.
        if let Some(t) = current.as_ref() {
            if t != refused {
                return Ok(Some(t.clone()));
            }
        }
        let t = self.fetch().await?;
        if t == refused {
            return Ok(None);
        }
        *current = Some(t.clone());
        Ok(Some(t))
    }

    async fn fetch(&self) -> Result<String, SchedulerError> {
        let setup = |m: String| SchedulerError::new(SchedulerErrorKind::Auth, m);
        let text = match &self.source {
            TokenSource::Fixed(t) => return Ok(t.clone()),
            TokenSource::File(p) => tokio::fs::read_to_string(p)
                .await
                .map_err(|e| setup(format!("cannot read the Slurm token file {}: {e}", p.display())))?,
            TokenSource::Command(c) => run(c).await?,
        };
        parse(&text).ok_or_else(|| setup(format!("{} gave no token (expected the token or a SLURM_JWT=... line)", self.source.describe())))
    }
}

async fn run(command: &str) -> Result<String, SchedulerError> {
    let err = |m: String| SchedulerError::new(SchedulerErrorKind::Auth, m);
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        // `scontrol token` refuses to run with an expired SLURM_JWT in its environment.
        .env_remove("SLURM_JWT")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .map_err(|_| err(format!("token command `{command}` did not finish within 60 s")))?
        .map_err(|e| err(format!("cannot run token command `{command}`: {e}")))?;
    if !out.status.success() {
        // stderr, not stdout: stdout may hold a token.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(err(format!("token command `{command}` failed ({}): {}", out.status, tail.join(" / "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The token in a command's output or a file: a `SLURM_JWT=` line (what `scontrol token`
/// prints), else the first non-empty line.
pub fn parse(text: &str) -> Option<String> {
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    for l in lines.clone() {
        if let Some(t) = l.strip_prefix("SLURM_JWT=") {
            return (!t.is_empty()).then(|| t.to_string());
        }
    }
    lines.into_iter().next().map(str::to_string)
}

/// When a JWT expires, from its unverified `exp` claim (the scheduler verifies it; this only
/// decides when to ask for a new one).
pub fn expiry(token: &str) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(claim(token, "exp")?))
}

/// A numeric claim of a JWT's (unverified) payload.
fn claim(token: &str, name: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(name)?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: u64) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", e.encode(br#"{"alg":"HS256","typ":"JWT"}"#), e.encode(format!(r#"{{"exp":{exp},"sun":"root"}}"#)))
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn scontrol_output_and_plain_tokens_are_read() {
        assert_eq!(parse("SLURM_JWT=abc.def.ghi\n").as_deref(), Some("abc.def.ghi"));
        assert_eq!(parse("\n  tok\n").as_deref(), Some("tok"));
        assert_eq!(parse("   \n"), None);
        assert_eq!(parse("SLURM_JWT=\n"), None);
    }

    #[test]
    fn expiry_comes_from_the_exp_claim() {
        let t = jwt(2_000_000_000);
        assert_eq!(expiry(&t), UNIX_EPOCH.checked_add(Duration::from_secs(2_000_000_000)));
        assert_eq!(expiry("not-a-jwt"), None);
    }

    #[tokio::test]
    async fn an_expired_token_is_renewed_by_the_command_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        let fresh = jwt(now() + 3600);
        // Each run appends a line, so the test sees how often the command ran.
        let cmd = format!("echo x >> {}; echo SLURM_JWT={fresh}", counter.display());
        let tokens = Tokens::new(TokenSource::Command(cmd));
        *tokens.current.lock().await = Some(jwt(now() - 10));
        assert_eq!(tokens.get().await.unwrap(), fresh);
        assert_eq!(tokens.get().await.unwrap(), fresh, "a fresh token is reused");
        assert_eq!(std::fs::read_to_string(&counter).unwrap().lines().count(), 1);
    }

    #[test]
    fn a_short_lived_token_is_renewed_a_quarter_of_its_life_early() {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let with = |iat: u64, exp: u64| format!("h.{}.s", e.encode(format!(r#"{{"iat":{iat},"exp":{exp}}}"#)));
        assert_eq!(margin(&with(100, 104)), Duration::from_secs(1));
        assert_eq!(margin(&with(100, 3700)), EARLY);
        assert_eq!(margin(&jwt(200)), EARLY, "no iat: the fixed margin");
        assert_eq!(margin(&with(100, 50)), EARLY, "a nonsensical lifetime: the fixed margin");
    }

    #[tokio::test]
    async fn an_expired_fixed_token_is_refused_before_it_is_sent_and_not_quoted() {
        let old = jwt(now() - 10);
        let e = Tokens::new(TokenSource::Fixed(old.clone())).get().await.unwrap_err();
        assert_eq!(e.kind, SchedulerErrorKind::Auth);
        assert!(e.message.contains("expired at") && e.message.contains("scontrol token"), "{}", e.message);
        assert!(!e.message.contains(&old));
        // Expiring soon, but not yet: still sent (it cannot be renewed anyway).
        let soon = jwt(now() + 5);
        assert_eq!(Tokens::new(TokenSource::Fixed(soon.clone())).get().await.unwrap(), soon);
    }

    #[tokio::test]
    async fn a_refused_fixed_token_cannot_be_renewed_and_a_failing_command_says_why() {
        let tokens = Tokens::new(TokenSource::Fixed("t".into()));
        assert_eq!(tokens.renew("t").await.unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt");
        std::fs::write(&file, "SLURM_JWT=secret-token\n").unwrap();
        // The command prints a token and then fails: the token must not reach the message.
        let tokens = Tokens::new(TokenSource::Command(format!("cat {}; echo oops >&2; exit 4", file.display())));
        let e = tokens.get().await.unwrap_err();
        assert!(e.message.contains("failed") && e.message.contains("oops"), "{}", e.message);
        assert!(!e.message.contains("secret-token"));
    }
}
