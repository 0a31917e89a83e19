//! Exits: reaping, recording, restarting or ending for good, cleanup.

use super::*;

impl Monitor {
    pub(super) fn reap(&mut self) {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid writes the status through a valid pointer to a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if self.events.reaped(pid) {
                continue;
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            };
            if let Some(c) = self.health.as_mut().and_then(|h| h.reaped(pid, code)) {
                self.health_changed(c);
                // Spawning the probe faulted in libc's process-creation text again: drop
                // those shared page-table entries until the next one (see `start`).
                sys::trim_file_mappings();
                continue;
            }
            if Some(pid) == self.init_pid {
                self.init_exited(code);
            }
            // Anything else is an orphan re-parented to the subreaper: reaped, nothing more.
        }
    }

    /// The container's init exited with `code`: drain, delete, record, then restart or end.
    pub(super) fn init_exited(&mut self, code: i32) {
        self.init_pid = None;
        // The rest of the output: until EOF, or EAGAIN when a leftover process holds a pipe.
        loop {
            let before = (self.io.stdout.is_some(), self.io.stderr.is_some());
            let mut any = false;
            for s in [Some(Stream::Stdout), Some(Stream::Stderr), None] {
                let open = match s {
                    Some(Stream::Stdout) => self.io.stdout.is_some(),
                    Some(Stream::Stderr) => self.io.stderr.is_some(),
                    None => self.io.pty.is_some() && !self.io.pty_eof,
                };
                if open {
                    any = true;
                    self.read_output_all(s);
                }
            }
            if !any || before == (self.io.stdout.is_some(), self.io.stderr.is_some()) {
                break;
            }
        }
        self.flush_log_lines();
        // Read before `delete` removes the cgroup; kills not yet told are told now, before `died`.
        let oom = match self.oom.take() {
            Some(mut w) => {
                if w.check() > 0 {
                    self.events.push(&["oom"]);
                }
                w.killed()
            }
            None => false,
        };
        if let Err(e) = self.runtime.delete() {
            diag(&self.run_dir, &format!("delete: {e}"));
        }
        self.io = ContainerIo::default();
        if matches!(self.phase, Phase::WaitAttach { .. }) {
            // Killed before `start`: the API is still waiting for the first report.
            self.initial_failure(MonitorError::Runtime(format!(
                "container exited before it was started ({code})"
            )));
            return;
        }
        self.record_exit(code, oom, String::new());
    }

    /// Count an exit (or a failed restart), tell the event command, decide what comes next.
    pub(super) fn record_exit(&mut self, code: i32, oom: bool, error: String) {
        let stop_requested = self.run_dir.join(STOP_REQUESTED_FILE).exists();
        let ran_for = if error.is_empty() {
            self.started.elapsed()
        } else {
            Duration::ZERO
        };
        let decision = self.restart.should_restart(code, stop_requested, ran_for);
        self.state.exits += 1;
        self.state.exit_code = code;
        self.state.oom_killed = oom;
        self.state.finished_at = sys::now_nanos();
        self.state.pid = 0;
        self.state.error = error;
        self.state.restart_count = self.restart.restart_count;
        if let Some(h) = self.health.as_mut() {
            h.stopped();
            self.state.health = Some(h.health().clone());
        }
        // The event command reads state.json: it must already tell of this exit.
        match decision {
            Some(delay) => {
                self.state.status = Status::Restarting;
                self.save_state();
                self.events.push(&["died"]);
                self.phase = Phase::Restarting {
                    at: Instant::now() + delay,
                };
            }
            None => {
                self.state.status = Status::Exited;
                self.save_state();
                self.events.push(&["died"]);
                self.end_for_good();
            }
        }
    }

    pub(super) fn do_restart(&mut self) {
        if self.run_dir.join(STOP_REQUESTED_FILE).exists() {
            // Stopped during the back-off: Docker cancels the pending restart.
            self.state.status = Status::Exited;
            self.save_state();
            self.end_for_good();
            return;
        }
        let res = self.create().and_then(|()| self.start());
        match res {
            Ok(()) => self.events.push(&["restarted"]),
            Err(e) => {
                diag(&self.run_dir, &format!("restart failed: {e}"));
                let e = e.to_string();
                self.record_exit(start_failure_code(&e), false, e);
            }
        }
    }

    /// No more runs: clients get the rest of their output then EOF; then the loop ends.
    pub(super) fn end_for_good(&mut self) {
        self.phase = Phase::Done {
            deadline: Instant::now() + FINAL_FLUSH,
        };
        self.listener = None;
        let _ = std::fs::remove_file(self.run_dir.join(SOCKET_FILE));
        for c in self.clients.iter_mut() {
            c.reading = false;
            c.close_when_flushed = true;
            c.flush();
        }
        self.clients.retain(|c| !c.dead);
    }

    pub(super) fn cleanup(&mut self) {
        for c in self.clients.drain(..) {
            sys::shutdown(&c.sock);
        }
        for f in [SOCKET_FILE, CONSOLE_SOCKET_FILE, PID_FILE] {
            let _ = std::fs::remove_file(self.run_dir.join(f));
        }
    }
}
