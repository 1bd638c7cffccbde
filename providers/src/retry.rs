//! The retry policy shared by the providers' HTTP clients (OpenStack, Slurm, QCG): how long to
//! wait before attempt N, honouring a service's `Retry-After`.

use std::time::Duration;

/// Backoff between attempts: exponential from `base`, capped, and never shorter than the
/// service's `Retry-After`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { attempts: 6, base: Duration::from_millis(500), max: Duration::from_secs(20) }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16));
        let d = exp.min(self.max);
        match retry_after {
            Some(s) => d.max(Duration::from_secs(s)).min(Duration::from_secs(300)),
            None => d,
        }
    }
}

