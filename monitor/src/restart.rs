//! Docker's restart policy and back-off (moby `restartmanager`), as pure logic.

use std::time::Duration;

use super::{RestartPolicy, RestartPolicyName};

/// The first delay, and the delay again after a run of at least [`RESET_AFTER`].
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The delay doubles after each restart up to this.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// Decides after each exit whether and when to restart.
#[derive(Debug, Clone)]
pub struct RestartManager {
    policy: RestartPolicy,
    /// Restarts decided so far (Docker's `RestartCount`).
    pub restart_count: u32,
    /// The current back-off; zero before the first exit.
    delay: Duration,
}

impl RestartManager {
    pub fn new(policy: RestartPolicy) -> Self {
        RestartManager {
            policy,
            restart_count: 0,
            delay: Duration::ZERO,
        }
    }

    /// After an exit with `exit_code` following a run of `ran_for`: `Some(delay)` to restart after
    /// `delay` (the restart is then counted), `None` to stay exited. `stop_requested` (the user
    /// stopped or killed the container) never restarts, whatever the policy.
    pub fn should_restart(
        &mut self,
        exit_code: i32,
        stop_requested: bool,
        ran_for: Duration,
    ) -> Option<Duration> {
        if self.policy.name == RestartPolicyName::No || stop_requested {
            return None;
        }
        // Same order as moby: the back-off moves on every exit, restart or not.
        if ran_for >= RESET_AFTER {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() {
            FIRST_DELAY
        } else {
            (self.delay * 2).min(MAX_DELAY)
        };
        let restart = match self.policy.name {
            RestartPolicyName::No => false,
            RestartPolicyName::Always | RestartPolicyName::UnlessStopped => true,
            RestartPolicyName::OnFailure => {
                let max = self.policy.max_retries;
                exit_code != 0 && (max == 0 || self.restart_count < max)
            }
        };
        if !restart {
            return None;
        }
        self.restart_count += 1;
        Some(self.delay)
    }
}

/// The exit code Docker records when the runtime cannot start the process.
pub fn start_failure_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mgr(name: RestartPolicyName, max: u32) -> RestartManager {
        RestartManager::new(RestartPolicy {
            name,
            max_retries: max,
        })
    }

    const SHORT: Duration = Duration::from_millis(10);

    #[test]
    fn no_never_restarts() {
        let mut m = mgr(RestartPolicyName::No, 0);
        assert_eq!(m.should_restart(1, false, SHORT), None);
    }

    #[test]
    fn on_failure_respects_max_retries_and_success() {
        let mut m = mgr(RestartPolicyName::OnFailure, 2);
        assert_eq!(m.should_restart(0, false, SHORT), None);
        assert_eq!(
            m.should_restart(1, false, SHORT),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            m.should_restart(1, false, SHORT),
            Some(Duration::from_millis(400))
        );
        assert_eq!(m.should_restart(1, false, SHORT), None);
        assert_eq!(m.restart_count, 2);
        let mut m = mgr(RestartPolicyName::OnFailure, 0);
        for _ in 0..20 {
            assert!(m.should_restart(3, false, SHORT).is_some());
        }
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut m = mgr(RestartPolicyName::Always, 0);
        let mut seen = Vec::new();
        for _ in 0..12 {
            seen.push(m.should_restart(0, false, SHORT).unwrap());
        }
        assert_eq!(seen[0], FIRST_DELAY);
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[9], Duration::from_millis(51_200));
        assert_eq!(seen[10], MAX_DELAY);
        assert_eq!(seen[11], MAX_DELAY);
        assert_eq!(m.should_restart(0, false, RESET_AFTER), Some(FIRST_DELAY));
    }

    #[test]
    fn stop_requested_wins_over_every_policy() {
        for p in [
            RestartPolicyName::Always,
            RestartPolicyName::UnlessStopped,
            RestartPolicyName::OnFailure,
        ] {
            assert_eq!(mgr(p, 0).should_restart(137, true, SHORT), None);
        }
        assert!(
            mgr(RestartPolicyName::UnlessStopped, 0)
                .should_restart(0, false, SHORT)
                .is_some()
        );
    }

    #[test]
    fn start_failure_codes() {
        assert_eq!(
            start_failure_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_code("exec: \"/etc\": permission denied"), 126);
        assert_eq!(start_failure_code("something else"), 128);
    }
}
