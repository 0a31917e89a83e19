//! Docker's health checks as pure logic (moby `daemon/health.go`): the configuration with its
//! defaults, the status machine, the schedule and the probe output buffer. No clock and no
//! process here: times come in as arguments, so the tests drive it with fake ones. The monitor
//! runs the probes (`probe.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest probe output kept; more is cut and marked with `...`.
pub const MAX_OUTPUT_LEN: usize = 4096;
/// Results kept in `Health.Log`.
pub const MAX_LOG_ENTRIES: usize = 5;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

/// `Config.Healthcheck` as Docker writes it (durations in nanoseconds, 0 = default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", arg…]` or `["CMD-SHELL", "command"]`; empty = inherit (none here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// Go's `omitempty` on moby's HealthConfig: zero durations and counts are left out.
fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// docker-py sends `null` for the durations it was not given.
fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or(0))
}

/// A health check Docker refuses at create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthConfigError {
    #[error("{0} in Healthcheck cannot be less than 1ms")]
    TooShort(&'static str),
    #[error("Retries in Healthcheck cannot be negative")]
    NegativeRetries,
}

/// The schedule and threshold with Docker's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

fn or_default(nanos: i64, default: Duration) -> Duration {
    // moby's timeoutWithDefault takes 0 for "unset"; negatives are refused at create, and
    // are taken as unset here rather than as a busy loop.
    if nanos <= 0 {
        default
    } else {
        Duration::from_nanos(nanos as u64)
    }
}

impl HealthConfig {
    pub fn timing(&self) -> Timing {
        Timing {
            interval: or_default(self.interval, DEFAULT_INTERVAL),
            timeout: or_default(self.timeout, DEFAULT_TIMEOUT),
            start_period: or_default(self.start_period, DEFAULT_START_PERIOD),
            start_interval: or_default(self.start_interval, DEFAULT_START_INTERVAL),
            retries: if self.retries <= 0 {
                DEFAULT_RETRIES
            } else {
                self.retries.min(u32::MAX as i64) as u32
            },
        }
    }

    /// moby's create-time checks (`MinimumDuration` is 1 ms), with its texts.
    pub fn validate(&self) -> Result<(), HealthConfigError> {
        const MIN: i64 = 1_000_000;
        for (what, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < MIN {
                return Err(HealthConfigError::TooShort(what));
            }
        }
        if self.retries < 0 {
            return Err(HealthConfigError::NegativeRetries);
        }
        Ok(())
    }

    /// The probe's argv (moby `getProbe` + `getShell`): `None` when there is nothing to run
    /// (no test, `NONE`, an unknown type, or no command after the type).
    pub fn command(&self, shell: &[String]) -> Option<Vec<String>> {
        let test = self.test.as_deref()?;
        let (kind, rest) = test.split_first()?;
        let argv: Vec<String> = match kind.as_str() {
            "CMD" => rest.to_vec(),
            "CMD-SHELL" => {
                let mut v = if shell.is_empty() {
                    vec!["/bin/sh".to_string(), "-c".to_string()]
                } else {
                    shell.to_vec()
                };
                v.extend(rest.iter().cloned());
                v
            }
            _ => return None,
        };
        if rest.is_empty() {
            return None;
        }
        Some(argv)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (Docker's `HealthcheckResult`; times in Unix nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeResult {
    pub start: i64,
    pub end: i64,
    /// 0 healthy, anything else a failure; -1 for a timeout or a probe that could not run.
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`, as the monitor keeps it in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last [`MAX_LOG_ENTRIES`] results, oldest first.
    pub log: Vec<ProbeResult>,
}

impl Health {
    /// A (re)started container: `starting`, no streak; earlier results stay in the log, as in
    /// moby's `initHealthMonitor`.
    pub fn restart(&mut self) {
        self.status = HealthStatus::Starting;
        self.failing_streak = 0;
    }

    /// The checks stopped (exit, pause): moby marks the container unhealthy "for compatibility
    /// reasons", without an event.
    pub fn stop(&mut self) {
        self.status = HealthStatus::Unhealthy;
    }

    /// moby's `handleProbeResult`. `in_start_period`: the probe began within the start period,
    /// where failures of a container still `starting` do not count. Returns the new status when
    /// it changed (that is when Docker logs a `health_status` event).
    pub fn record(
        &mut self,
        result: ProbeResult,
        in_start_period: bool,
        retries: u32,
    ) -> Option<HealthStatus> {
        let old = self.status;
        if self.log.len() >= MAX_LOG_ENTRIES {
            let drop = self.log.len() + 1 - MAX_LOG_ENTRIES;
            self.log.drain(..drop);
        }
        let ok = result.exit_code == 0;
        self.log.push(result);
        if ok {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        (self.status != old).then_some(self.status)
    }
}

impl Timing {
    /// The wait before the next probe, measured from the end of the last one (or from the start
    /// of the container for the first), after `since_start` of the container's run (moby 28's
    /// `getInterval`): the start interval while starting inside the start period, else the
    /// interval.
    pub fn next_delay(&self, since_start: Duration, status: HealthStatus) -> Duration {
        if since_start >= self.start_period {
            return self.interval;
        }
        if status == HealthStatus::Starting {
            self.start_interval
        } else {
            self.interval
        }
    }

    pub fn in_start_period(&self, since_start: Duration) -> bool {
        since_start < self.start_period
    }
}

/// The checks of one container run, driven by the monitor with times measured from the run's
/// start (monotonic), so that tests can feed any.
#[derive(Debug, Clone)]
pub struct Checker {
    pub timing: Timing,
    pub health: Health,
    /// When the next probe is due; `None` while one runs.
    next_due: Option<Duration>,
    /// When the running probe began.
    probing_since: Option<Duration>,
}

impl Checker {
    pub fn new(timing: Timing, health: Health) -> Checker {
        Checker {
            timing,
            health,
            next_due: None,
            probing_since: None,
        }
    }

    /// The container (re)started: back to `starting`, first probe after one delay.
    pub fn started(&mut self) {
        self.health.restart();
        self.probing_since = None;
        self.next_due = Some(self.timing.next_delay(Duration::ZERO, self.health.status));
    }

    /// The container stopped: no more probes until [`Checker::started`].
    pub fn stopped(&mut self) {
        self.health.stop();
        self.next_due = None;
        self.probing_since = None;
    }

    pub fn next_due(&self) -> Option<Duration> {
        self.next_due
    }

    pub fn due(&self, now: Duration) -> bool {
        self.next_due.is_some_and(|d| now >= d)
    }

    /// A probe began at `now`; it must end by the returned deadline.
    pub fn probe_started(&mut self, now: Duration) -> Duration {
        self.next_due = None;
        self.probing_since = Some(now);
        now + self.timing.timeout
    }

    /// The due probe is skipped (the container is frozen): moby stops the checks of a paused
    /// container and marks it unhealthy; they resume after a delay once it thaws.
    pub fn skipped(&mut self, now: Duration) {
        self.health.stop();
        self.next_due = Some(now + self.timing.next_delay(now, self.health.status));
    }

    /// The running probe ended at `now` with `result`: record it and schedule the next one.
    /// Returns the new status when it changed.
    pub fn probe_finished(&mut self, now: Duration, result: ProbeResult) -> Option<HealthStatus> {
        let began = self.probing_since.take().unwrap_or(now);
        let changed = self.health.record(
            result,
            self.timing.in_start_period(began),
            self.timing.retries,
        );
        self.next_due = Some(now + self.timing.next_delay(now, self.health.status));
        changed
    }
}

/// Probe output up to [`MAX_OUTPUT_LEN`] bytes; the rest is counted as lost.
#[derive(Debug, Default)]
pub struct OutputBuf {
    buf: Vec<u8>,
    truncated: bool,
}

impl OutputBuf {
    pub fn push(&mut self, data: &[u8]) {
        let keep = (MAX_OUTPUT_LEN - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }

    /// Whether more output can be kept (else the rest is just drained).
    pub fn full(&self) -> bool {
        self.buf.len() >= MAX_OUTPUT_LEN
    }

    /// The text, with `...` appended when output was lost (moby's `limitedBuffer`). Invalid
    /// UTF-8 becomes U+FFFD, as Go's JSON encoder does.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

/// The `Output` of a probe killed at its timeout, as moby words it.
pub fn timeout_output(timeout: Duration, output: &str) -> String {
    if output.is_empty() {
        format!("Health check exceeded timeout ({})", go_duration(timeout))
    } else {
        format!(
            "Health check exceeded timeout ({}): {output}",
            go_duration(timeout)
        )
    }
}

/// Go's `time.Duration.String()`: `1s`, `1.5s`, `500ms`, `1m30s`, `2h0m0s`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    // Below a second: one unit with a fraction.
    let frac = |v: u128, unit: u128, suffix: &str| {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return format!("{whole}{suffix}");
        }
        let digits = unit.ilog10() as usize;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
    };
    if n < 1_000 {
        return format!("{n}ns");
    }
    if n < 1_000_000 {
        return frac(n, 1_000, "µs");
    }
    if n < 1_000_000_000 {
        return frac(n, 1_000_000, "ms");
    }
    let secs_total = n / 1_000_000_000;
    let sub = n % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = frac((secs_total % 60) * 1_000_000_000 + sub, 1_000_000_000, "s");
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn cfg(j: &str) -> HealthConfig {
        serde_json::from_str(j).unwrap()
    }

    fn result(exit_code: i64) -> ProbeResult {
        ProbeResult {
            exit_code,
            ..Default::default()
        }
    }

    #[test]
    fn zero_durations_take_dockers_defaults() {
        let t = cfg(r#"{"Test":["CMD","true"]}"#).timing();
        assert_eq!(
            t,
            Timing {
                interval: 30 * S,
                timeout: 30 * S,
                start_period: Duration::ZERO,
                start_interval: 5 * S,
                retries: 3
            }
        );
        let t = cfg(
            r#"{"Test":["CMD","true"],"Interval":1000000000,"Timeout":2000000000,
                       "StartPeriod":3000000000,"StartInterval":500000000,"Retries":2}"#,
        )
        .timing();
        assert_eq!(
            (
                t.interval,
                t.timeout,
                t.start_period,
                t.start_interval,
                t.retries
            ),
            (S, 2 * S, 3 * S, S / 2, 2)
        );
        // null Test and durations (docker-py sends every key).
        let c = cfg(r#"{"Test":null,"Interval":null,"StartPeriod":null,"Retries":null}"#);
        assert_eq!(c.command(&[]), None::<Vec<String>>);
        assert_eq!(c.timing().retries, DEFAULT_RETRIES);
    }

    #[test]
    fn create_checks_like_mobys() {
        assert!(
            cfg(r#"{"Test":["CMD","x"],"Interval":1000000}"#)
                .validate()
                .is_ok()
        );
        assert!(cfg(r#"{"Test":["CMD","x"]}"#).validate().is_ok());
        assert_eq!(
            cfg(r#"{"Interval":999}"#)
                .validate()
                .unwrap_err()
                .to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        assert_eq!(
            cfg(r#"{"StartInterval":-5}"#)
                .validate()
                .unwrap_err()
                .to_string(),
            "StartInterval in Healthcheck cannot be less than 1ms"
        );
        assert_eq!(
            cfg(r#"{"Retries":-1}"#).validate().unwrap_err().to_string(),
            "Retries in Healthcheck cannot be negative"
        );
    }

    #[test]
    fn commands_by_test_type() {
        let sh = |j: &str, shell: &[&str]| {
            let shell: Vec<String> = shell.iter().map(|s| s.to_string()).collect();
            cfg(j).command(&shell)
        };
        assert_eq!(
            sh(r#"{"Test":["CMD-SHELL","curl -f x || exit 1"]}"#, &[]).unwrap(),
            ["/bin/sh", "-c", "curl -f x || exit 1"]
        );
        assert_eq!(
            sh(r#"{"Test":["CMD-SHELL","true"]}"#, &["/bin/bash", "-ec"]).unwrap(),
            ["/bin/bash", "-ec", "true"]
        );
        assert_eq!(
            sh(r#"{"Test":["CMD","/bin/check","-q"]}"#, &[]).unwrap(),
            ["/bin/check", "-q"]
        );
        assert_eq!(sh(r#"{"Test":["NONE"]}"#, &[]), None);
        assert_eq!(sh(r#"{"Test":["CMD"]}"#, &[]), None);
        assert_eq!(sh(r#"{"Test":["FOO","x"]}"#, &[]), None);
        assert_eq!(sh(r#"{"Test":[]}"#, &[]), None);
        assert_eq!(sh(r#"{}"#, &[]), None);
    }

    #[test]
    fn healthy_then_unhealthy_after_retries_then_healthy() {
        let mut h = Health::default();
        assert_eq!(h.record(result(0), false, 2), Some(HealthStatus::Healthy));
        assert_eq!(h.record(result(0), false, 2), None);
        assert_eq!(h.record(result(1), false, 2), None);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 1));
        assert_eq!(h.record(result(1), false, 2), Some(HealthStatus::Unhealthy));
        assert_eq!(h.record(result(-1), false, 2), None);
        assert_eq!(h.failing_streak, 3);
        assert_eq!(h.record(result(0), false, 2), Some(HealthStatus::Healthy));
        assert_eq!(h.failing_streak, 0);
        // Only the last five results stay, oldest first.
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
        assert_eq!(
            h.log.iter().map(|r| r.exit_code).collect::<Vec<_>>(),
            [0, 1, 1, -1, 0]
        );
    }

    #[test]
    fn start_period_failures_do_not_count_while_starting() {
        let mut h = Health::default();
        assert_eq!(h.record(result(1), true, 1), None);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        assert_eq!(h.log.len(), 1);
        // Once healthy, the start period no longer protects.
        h.record(result(0), true, 1);
        assert_eq!(h.record(result(1), true, 1), Some(HealthStatus::Unhealthy));
        // After the start period they count.
        let mut h = Health::default();
        assert_eq!(h.record(result(1), false, 1), Some(HealthStatus::Unhealthy));
    }

    #[test]
    fn restart_and_stop_keep_the_log() {
        let mut h = Health::default();
        h.record(result(1), false, 1);
        h.restart();
        assert_eq!(
            (h.status, h.failing_streak, h.log.len()),
            (HealthStatus::Starting, 0, 1)
        );
        h.stop();
        assert_eq!(h.status, HealthStatus::Unhealthy);
    }

    #[test]
    fn intervals_follow_the_start_period() {
        let t = Timing {
            interval: 10 * S,
            timeout: S,
            start_period: 30 * S,
            start_interval: 2 * S,
            retries: 3,
        };
        assert_eq!(t.next_delay(Duration::ZERO, HealthStatus::Starting), 2 * S);
        assert_eq!(t.next_delay(Duration::ZERO, HealthStatus::Healthy), 10 * S);
        assert_eq!(t.next_delay(29 * S, HealthStatus::Starting), 2 * S);
        assert_eq!(t.next_delay(30 * S, HealthStatus::Starting), 10 * S);
        let no_period = Timing {
            start_period: Duration::ZERO,
            ..t
        };
        assert_eq!(
            no_period.next_delay(Duration::ZERO, HealthStatus::Starting),
            10 * S
        );
    }

    /// A whole run with a fake clock and scripted probe results.
    #[test]
    fn checker_runs_on_a_fake_clock() {
        let t = cfg(r#"{"Test":["CMD","false"],"Interval":1000000000,"Retries":2}"#).timing();
        let mut c = Checker::new(t, Health::default());
        c.started();
        assert_eq!(c.health.status, HealthStatus::Starting);
        assert!(!c.due(S / 2));
        assert!(c.due(S));
        let mut now = S;
        let mut events = Vec::new();
        for code in [1, 1, 1, 0] {
            assert!(c.due(now), "{now:?}");
            let deadline = c.probe_started(now);
            assert_eq!(deadline, now + 30 * S);
            assert!(!c.due(now), "nothing new is due while a probe runs");
            now += S / 10;
            if let Some(s) = c.probe_finished(now, result(code)) {
                events.push(s);
            }
            assert_eq!(c.next_due(), Some(now + S));
            now += S;
        }
        assert_eq!(events, [HealthStatus::Unhealthy, HealthStatus::Healthy]);
        // Frozen: skipped, unhealthy without an event, probed again a delay later.
        c.skipped(now);
        assert_eq!(c.health.status, HealthStatus::Unhealthy);
        assert_eq!(c.next_due(), Some(now + S));
        c.stopped();
        assert_eq!(c.next_due(), None);
        c.started();
        assert_eq!(c.health.status, HealthStatus::Starting);
        assert_eq!(c.health.log.len(), 4);
    }

    #[test]
    fn start_period_with_a_fake_clock() {
        let t = cfg(
            r#"{"Test":["CMD","x"],"Interval":1000000000,"StartPeriod":3000000000,
                        "StartInterval":1000000000,"Retries":1}"#,
        )
        .timing();
        let mut c = Checker::new(t, Health::default());
        c.started();
        let mut now = S;
        // Two failures inside the start period: still starting.
        for _ in 0..2 {
            c.probe_started(now);
            assert_eq!(c.probe_finished(now, result(1)), None);
            now += S;
        }
        assert_eq!(c.health.status, HealthStatus::Starting);
        // The first failure after it counts.
        c.probe_started(now);
        assert_eq!(
            c.probe_finished(now, result(1)),
            Some(HealthStatus::Unhealthy)
        );
    }

    #[test]
    fn output_is_limited_like_mobys() {
        let mut b = OutputBuf::default();
        b.push(b"hello ");
        b.push(b"world");
        assert_eq!(b.text(), "hello world");
        let mut b = OutputBuf::default();
        b.push(&[b'a'; 4000]);
        b.push(&[b'b'; 200]);
        assert!(b.full());
        b.push(b"c");
        let t = b.text();
        assert_eq!(t.len(), MAX_OUTPUT_LEN + 3);
        assert!(t.ends_with("bb..."));
        let mut b = OutputBuf::default();
        b.push(&[0xff, b'x']);
        assert_eq!(b.text(), "\u{fffd}x");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(S), "1s");
        assert_eq!(go_duration(S * 3 / 2), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(go_duration(Duration::from_nanos(5)), "5ns");
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(timeout_output(S, ""), "Health check exceeded timeout (1s)");
        assert_eq!(
            timeout_output(S, "partial\n"),
            "Health check exceeded timeout (1s): partial\n"
        );
    }
}
