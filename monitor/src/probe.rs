//! Running a container's health checks from the monitor's poll loop: each probe is a
//! `runtime exec` child whose combined stdout/stderr arrives on a non-blocking pipe and whose
//! exit is seen through SIGCHLD like every other child, killed at its timeout. The status
//! machine and schedule are in `health.rs`.

use crate::MonitorError;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::cgroup::Freezer;
use super::health::{Checker, Health, HealthConfig, HealthStatus, OutputBuf, ProbeResult};
use super::sys::{self, ReadOutcome};

/// `R/health.pid`: the running probe's pid inside the container, written by the runtime.
const PROBE_PID_FILE: &str = "health.pid";
/// `R/health-runc.log`: the runtime's own messages about the probe (JSON lines).
const PROBE_LOG_FILE: &str = "health-runc.log";
/// After killing a timed-out probe, how long before its runtime process is killed too.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Everything needed to exec into the container.
pub struct ProbeSetup {
    pub runtime: String,
    pub runtime_root: PathBuf,
    pub id: String,
    pub run_dir: PathBuf,
    pub argv: Vec<String>,
}

struct Running {
    /// The `runtime exec` process (our child).
    pid: i32,
    output: Option<File>,
    buf: OutputBuf,
    start_wall: i64,
    deadline: Instant,
    /// Killed at its timeout, at this instant.
    killed: Option<Instant>,
    /// The runtime process was killed too (it outlived its probe by [`KILL_GRACE`]); its exit
    /// comes with SIGCHLD, there is nothing more to wait for.
    runtime_killed: bool,
}

/// The health checks of one container, across its runs under this monitor.
pub struct HealthMonitor {
    setup: ProbeSetup,
    checker: Checker,
    /// The instant the current run started (the checker counts from there).
    run_start: Instant,
    running: Option<Running>,
    freezer: Option<Freezer>,
}

/// What a loop round changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// `Health` changed: state.json must be written.
    pub state: bool,
    /// The status changed: a `health_status` event is due.
    pub event: Option<HealthStatus>,
}

impl HealthMonitor {
    /// `None` when the container has no health check to run.
    pub fn new(
        cfg: Option<&HealthConfig>,
        shell: &[String],
        previous: Option<Health>,
        setup: impl FnOnce(Vec<String>) -> ProbeSetup,
    ) -> Option<HealthMonitor> {
        let cfg = cfg?;
        let argv = cfg.command(shell)?;
        Some(HealthMonitor {
            setup: setup(argv),
            checker: Checker::new(cfg.timing(), previous.unwrap_or_default()),
            run_start: Instant::now(),
            running: None,
            freezer: None,
        })
    }

    pub fn health(&self) -> &Health {
        &self.checker.health
    }

    /// The container (re)started with init `pid`: `starting`, probes scheduled.
    pub fn started(&mut self, pid: i32) {
        self.abandon();
        self.run_start = Instant::now();
        self.freezer = Freezer::of_pid(pid);
        self.checker.started();
    }

    /// The container exited: the probe (if any) is killed, checks stop, status `unhealthy`.
    pub fn stopped(&mut self) {
        self.abandon();
        self.checker.stopped();
    }

    /// Forget the running probe, killing what is left of it; its exit is reaped as an orphan.
    fn abandon(&mut self) {
        if let Some(r) = self.running.take() {
            kill_probe(&self.setup.run_dir, r.pid);
            kill(r.pid);
        }
    }

    fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.run_start)
    }

    /// The probe output pipe to poll, if a probe runs.
    pub fn poll_fd(&self) -> Option<RawFd> {
        self.running
            .as_ref()
            .and_then(|r| r.output.as_ref())
            .map(|f| f.as_raw_fd())
    }

    /// The next instant something is due (a probe, a timeout, a kill).
    pub fn next_wakeup(&self) -> Option<Instant> {
        match &self.running {
            Some(r) if r.runtime_killed => None,
            Some(r) => Some(match r.killed {
                Some(k) => k + KILL_GRACE,
                None => r.deadline,
            }),
            None => self.checker.next_due().map(|d| self.run_start + d),
        }
    }

    /// The output pipe is readable.
    pub fn read_output(&mut self) {
        if let Some(r) = self.running.as_mut() {
            drain(r);
        }
    }

    /// Start a due probe, or kill one past its timeout.
    pub fn tick(&mut self, now: Instant) -> Changes {
        let mut changes = Changes::default();
        if let Some(r) = self.running.as_mut() {
            match r.killed {
                None if now >= r.deadline => {
                    kill_probe(&self.setup.run_dir, r.pid);
                    r.killed = Some(now);
                }
                Some(k) if now >= k + KILL_GRACE && !r.runtime_killed => {
                    // The runtime did not exit with its process: kill it too.
                    kill(r.pid);
                    r.runtime_killed = true;
                }
                _ => {}
            }
            return changes;
        }
        let since = self.since_start(now);
        if !self.checker.due(since) {
            return changes;
        }
        if self.freezer.as_ref().is_some_and(Freezer::frozen) {
            let before = self.checker.health.status;
            self.checker.skipped(since);
            changes.state = before != self.checker.health.status;
            return changes;
        }
        self.checker.probe_started(since);
        let deadline = now + self.checker.timing.timeout;
        match spawn(&self.setup) {
            Ok((pid, output)) => {
                self.running = Some(Running {
                    pid,
                    output: Some(output),
                    buf: OutputBuf::default(),
                    start_wall: sys::now_nanos(),
                    deadline,
                    killed: None,
                    runtime_killed: false,
                });
            }
            Err(e) => {
                // moby records a probe that could not run as exit code -1 with the error.
                let t = sys::now_nanos();
                let result = ProbeResult {
                    start: t,
                    end: t,
                    exit_code: -1,
                    output: e.to_string(),
                };
                changes.event = self.checker.probe_finished(since, result);
                changes.state = true;
            }
        }
        changes
    }

    /// A child was reaped; if it was the probe's runtime, record the result.
    /// `code` is its exit code (128+signal when killed).
    pub fn reaped(&mut self, pid: i32, code: i32) -> Option<Changes> {
        if self.running.as_ref().map(|r| r.pid) != Some(pid) {
            return None;
        }
        let mut r = self.running.take()?;
        drain(&mut r);
        let end = sys::now_nanos();
        let out = r.buf.text();
        let runtime_error = super::runtime::last_error(
            &std::fs::read_to_string(self.setup.run_dir.join(PROBE_LOG_FILE)).unwrap_or_default(),
        );
        let (exit_code, output) = if r.killed.is_some() {
            (
                -1,
                super::health::timeout_output(self.checker.timing.timeout, &out),
            )
        } else if let Some(e) = runtime_error {
            // The runtime could not exec the probe (missing command…): Docker's exec error.
            (-1, format!("OCI runtime exec failed: {e}: unknown"))
        } else {
            (code as i64, out)
        };
        let result = ProbeResult {
            start: r.start_wall,
            end,
            exit_code,
            output,
        };
        let since = self.since_start(Instant::now());
        Some(Changes {
            state: true,
            event: self.checker.probe_finished(since, result),
        })
    }
}

/// Read what the probe wrote; past the limit it is drained and dropped.
fn drain(r: &mut Running) {
    let mut chunk = [0u8; 4096];
    loop {
        let Some(f) = r.output.as_ref() else { return };
        match sys::read_nb(f, &mut chunk) {
            ReadOutcome::Data(n) => r.buf.push(&chunk[..n]),
            ReadOutcome::WouldBlock => return,
            ReadOutcome::Eof | ReadOutcome::Failed(_) => {
                r.output = None;
                return;
            }
        }
    }
}

/// `runtime exec` of the probe: the container's own process settings (user, env, cwd) from its
/// bundle with only the args replaced, no terminal, stdout and stderr into one pipe.
fn spawn(s: &ProbeSetup) -> Result<(i32, File), MonitorError> {
    let log = s.run_dir.join(PROBE_LOG_FILE);
    let pid_file = s.run_dir.join(PROBE_PID_FILE);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&pid_file);
    let pipe = |e| MonitorError::io("pipe", e);
    let (r, w) = sys::pipe().map_err(pipe)?;
    sys::set_nonblocking(&r).map_err(pipe)?;
    let w2 = w.try_clone().map_err(pipe)?;
    let mut c = Command::new(&s.runtime);
    c.arg("--root")
        .arg(&s.runtime_root)
        .arg("--log")
        .arg(&log)
        .arg("--log-format")
        .arg("json")
        .arg("exec")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&s.id)
        .args(&s.argv)
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2));
    // Reaped by the SIGCHLD handler (waitpid -1), not through `Child`; dropping the Command
    // closes our copies of the write end, so the pipe ends with the probe.
    let child = c
        .spawn()
        .map_err(|e| MonitorError::io(s.runtime.clone(), e))?;
    drop(c);
    Ok((child.id() as i32, r))
}

/// SIGKILL the probe's process in the container, if it is still the runtime's child (its pid
/// file could otherwise name a recycled pid).
fn kill_probe(run_dir: &Path, runtime_pid: i32) {
    let Some(pid) = std::fs::read_to_string(run_dir.join(PROBE_PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        // Not started yet: the runtime itself goes.
        kill(runtime_pid);
        return;
    };
    if parent_of(pid) == Some(runtime_pid) {
        kill(pid);
    } else {
        kill(runtime_pid);
    }
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn kill(pid: i32) {
    if pid > 0 {
        // SAFETY: kill takes a pid and a signal, no memory.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_reads_proc() {
        let me = std::process::id() as i32;
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        assert_eq!(parent_of(me), Some(parent));
        assert_eq!(parent_of(-5), None);
    }

    /// A stand-in runtime (a shell script) exercises spawn, output, exit and timeout handling
    /// without a container.
    #[test]
    fn probes_through_a_fake_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-runc");
        // Arguments: --root R --log L --log-format json exec --pid-file P ID argv… (9 + 1).
        std::fs::write(&fake, "#!/bin/sh\nshift 9\nshift\nexec \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg: HealthConfig = serde_json::from_str(
            r#"{"Test":["CMD","sh","-c","echo out; echo err >&2; exit 3"],"Interval":1000000}"#,
        )
        .unwrap();
        let mut h = HealthMonitor::new(Some(&cfg), &[], None, |argv| ProbeSetup {
            runtime: fake.display().to_string(),
            runtime_root: dir.path().to_path_buf(),
            id: "x".into(),
            run_dir: dir.path().to_path_buf(),
            argv,
        })
        .unwrap();
        h.started(std::process::id() as i32);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(h.tick(Instant::now()), Changes::default());
        assert!(h.poll_fd().is_some());
        let pid = h.running.as_ref().unwrap().pid;
        let mut status = 0;
        // SAFETY: waitpid on our own child with a pointer to a local.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let changes = h.reaped(pid, libc::WEXITSTATUS(status)).unwrap();
        assert!(changes.state);
        assert_eq!(changes.event, None, "one failure of three: still starting");
        let last = h.health().log.last().unwrap();
        assert_eq!(last.exit_code, 3);
        assert!(last.output.contains("out\n") && last.output.contains("err\n"));
        assert!(last.end >= last.start && last.start > 0);
        h.stopped();
        assert_eq!(h.health().status, HealthStatus::Unhealthy);
        assert_eq!(h.next_wakeup(), None);
    }
}
