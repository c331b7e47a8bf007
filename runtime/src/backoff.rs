//! Restart back-off: how long a crashed pod waits before its next start.
//!
//! Like Kubernetes' CrashLoopBackOff, but tuned for fast recovery: the first
//! restart is immediate (a container killed once comes back at once), then
//! the delay doubles from `initial` up to `max`. A pod that stayed up for
//! `reset_after` is forgiven and starts again from zero.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBackoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(120),
        }
    }
}

impl RestartBackoff {
    /// Delay before restart number `consecutive_failures` (1 = the first crash).
    pub fn delay(&self, consecutive_failures: u32) -> Duration {
        match consecutive_failures {
            0 | 1 => Duration::ZERO,
            n => {
                let doublings = (n - 2).min(31);
                self.initial
                    .checked_mul(1u32 << doublings)
                    .map_or(self.max, |d| d.min(self.max))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let b = RestartBackoff::default();
        let delays: Vec<u64> = (1..=9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(u32::MAX), b.max);
    }
}
