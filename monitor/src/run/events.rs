//! Event commands (`berth internal container-event`), run one at a time.

use super::*;

/// Event commands run one at a time, in order, without blocking the loop.
pub(super) struct Events {
    pub(super) command: Vec<String>,
    /// The arguments to append, per event.
    pub(super) queue: VecDeque<&'static [&'static str]>,
    pub(super) running: Option<(i32, Instant)>,
}

/// The event arguments of a health status change.
pub(super) fn health_event(s: HealthStatus) -> &'static [&'static str] {
    match s {
        HealthStatus::Starting => &["health", "starting"],
        HealthStatus::Healthy => &["health", "healthy"],
        HealthStatus::Unhealthy => &["health", "unhealthy"],
    }
}

impl Events {
    pub(super) fn push(&mut self, what: &'static [&'static str]) {
        if !self.command.is_empty() {
            self.queue.push_back(what);
            self.pump();
        }
    }

    pub(super) fn pump(&mut self) {
        while self.running.is_none() {
            let Some(what) = self.queue.pop_front() else {
                return;
            };
            let mut c = Command::new(&self.command[0]);
            c.args(&self.command[1..])
                .args(what)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // The child is reaped by the SIGCHLD handler (waitpid -1), not through `Child`.
            if let Ok(child) = c.spawn() {
                self.running = Some((child.id() as i32, Instant::now() + EVENT_TIMEOUT));
            }
        }
    }

    pub(super) fn reaped(&mut self, pid: i32) -> bool {
        if matches!(self.running, Some((p, _)) if p == pid) {
            self.running = None;
            self.pump();
            return true;
        }
        false
    }

    pub(super) fn check_timeout(&mut self, now: Instant) {
        if let Some((pid, deadline)) = self.running
            && now >= deadline
        {
            // SAFETY: kill takes a pid and a signal; the pid is our unreaped child, so it cannot
            // have been recycled for another process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            // Its exit is reaped later; the next event need not wait for that.
            self.running = None;
            self.pump();
        }
    }

    pub(super) fn idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty()
    }
}
