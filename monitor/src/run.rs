//! The monitor process itself: setup, the poll loop, exits and restarts.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::cgroup::{self, OomCounter, OomWatch};
use super::health::HealthStatus;
use super::log::{JsonLog, LineSplitter, Stream};
use super::probe::{Changes, HealthMonitor, ProbeSetup};
use super::proto::{self, MAX_REQUEST_LINE, Request};
use super::restart::{RestartManager, start_failure_code};
use super::runtime::Runtime;
use super::sys::{self, ReadOutcome};
use super::{
    ATTACH_PENDING_DIR, CONSOLE_SOCKET_FILE, LogDriver, MonitorConfig, MonitorState, PID_FILE,
    SOCKET_FILE, STOP_REQUESTED_FILE, Status,
};

/// How long the container waits for the clients announced in `R/attach-pending/`.
const ATTACH_WAIT: Duration = Duration::from_secs(2);
/// A client further behind than this is dropped: it must not hold up the container.
const MAX_CLIENT_BUF: usize = 1 << 20;
/// Stdin bytes buffered for the container before clients stop being read.
const MAX_STDIN_BUF: usize = 1 << 20;
/// One read from the container's output.
const READ_CHUNK: usize = 32 * 1024;
/// How long an event command may run.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// At the final exit, how long slow clients get to take the rest of the output.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Entry point of `berth-monitor R`: returns the process's exit code.
pub fn main(run_dir: &Path) -> i32 {
    // fd 3 is the sync pipe from `launch::spawn` (absent when started by hand).
    let mut sync = sys::take_inherited_fd(3);
    match Monitor::setup(run_dir) {
        Ok(mut m) => {
            m.sync = sync;
            m.run()
        }
        Err(e) => {
            diag(run_dir, &format!("setup: {e}"));
            if let Some(s) = sync.as_mut() {
                report(s, &serde_json::json!({ "error": e }));
            }
            1
        }
    }
}

/// The monitor's own trouble goes to `R/monitor.log` (its stderr is /dev/null).
fn diag(run_dir: &Path, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join("monitor.log"))
    {
        let _ = writeln!(f, "{} {msg}", super::log::rfc3339_nano(sys::now_nanos()));
    }
}

fn report(sync: &mut File, v: &serde_json::Value) {
    let mut line = v.to_string();
    line.push('\n');
    let _ = sync.write_all(line.as_bytes());
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Created; waiting for announced attach clients until the deadline. `expected` is the
    /// number of files in `R/attach-pending/`, counted at the start of each loop round (before
    /// that round's I/O, so that a client which sent its request and then removed its file is
    /// read before the count is compared).
    WaitAttach {
        expected: usize,
        deadline: Instant,
    },
    Running,
    /// Exited; restarting at the instant.
    Restarting {
        at: Instant,
    },
    /// Ended for good: flushing clients and events, then exit.
    Done {
        deadline: Instant,
    },
}

/// The container's side of the stdio of one run.
#[derive(Default)]
struct ContainerIo {
    stdout: Option<File>,
    stderr: Option<File>,
    /// With a tty: the pty master, for output and stdin both.
    pty: Option<File>,
    pty_eof: bool,
    /// Without a tty and with `open_stdin`: the stdin pipe's write end.
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    /// Close the stdin pipe once `stdin_buf` is written (stdin_once).
    stdin_close: bool,
}

#[derive(Debug, PartialEq)]
enum ClientKind {
    /// Its request line has not arrived yet.
    Pending,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Answered; closes once the reply is written.
    Reply,
}

struct Client {
    sock: UnixStream,
    kind: ClientKind,
    inbuf: Vec<u8>,
    /// Still reading from it (false after its half-close).
    reading: bool,
    out: Vec<u8>,
    out_pos: usize,
    /// Shut it down once `out` is written.
    close_when_flushed: bool,
    dead: bool,
}

impl Client {
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn queue(&mut self, data: &[u8]) {
        if self.dead {
            return;
        }
        if self.pending_out() + data.len() > MAX_CLIENT_BUF {
            // Too slow: drop it rather than block or grow without bound.
            self.dead = true;
            return;
        }
        self.out.extend_from_slice(data);
    }

    fn flush(&mut self) {
        while !self.dead && self.pending_out() > 0 {
            match sys::write_nb(&self.sock, &self.out[self.out_pos..]) {
                Ok(0) => break,
                Ok(n) => self.out_pos += n,
                // EPIPE/ECONNRESET: the client is gone (SIGPIPE is ignored).
                Err(_) => self.dead = true,
            }
        }
        if self.pending_out() == 0 {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
            if self.close_when_flushed && !self.dead {
                sys::shutdown(&self.sock);
                self.dead = true;
            }
        }
    }
}

/// Event commands run one at a time, in order, without blocking the loop.
struct Events {
    command: Vec<String>,
    /// The arguments to append, per event.
    queue: VecDeque<&'static [&'static str]>,
    running: Option<(i32, Instant)>,
}

/// The event arguments of a health status change.
fn health_event(s: HealthStatus) -> &'static [&'static str] {
    match s {
        HealthStatus::Starting => &["health", "starting"],
        HealthStatus::Healthy => &["health", "healthy"],
        HealthStatus::Unhealthy => &["health", "unhealthy"],
    }
}

impl Events {
    fn push(&mut self, what: &'static [&'static str]) {
        if !self.command.is_empty() {
            self.queue.push_back(what);
            self.pump();
        }
    }

    fn pump(&mut self) {
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

    fn reaped(&mut self, pid: i32) -> bool {
        if matches!(self.running, Some((p, _)) if p == pid) {
            self.running = None;
            self.pump();
            return true;
        }
        false
    }

    fn check_timeout(&mut self, now: Instant) {
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

    fn idle(&self) -> bool {
        self.running.is_none() && self.queue.is_empty()
    }
}

struct Monitor {
    cfg: MonitorConfig,
    run_dir: PathBuf,
    runtime: Runtime,
    sync: Option<File>,
    sigfd: OwnedFd,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    attached: usize,
    io: ContainerIo,
    log: Option<JsonLog>,
    split: [LineSplitter; 2],
    state: MonitorState,
    phase: Phase,
    restart: RestartManager,
    events: Events,
    init_pid: Option<i32>,
    started: Instant,
    oom: Option<OomWatch>,
    health: Option<HealthMonitor>,
}

#[derive(Clone, Copy)]
enum Token {
    Signal,
    Listener,
    Out(Stream),
    Pty,
    StdinWrite,
    Client(usize),
    Probe,
    Oom,
}

impl Monitor {
    fn setup(run_dir: &Path) -> Result<Monitor, String> {
        let cfg = MonitorConfig::load(run_dir).map_err(|e| e.to_string())?;
        cgroup::leave_caller_cgroup();
        sys::set_child_subreaper().map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        // SIGCHLD drives the loop; SIGTERM/SIGINT/SIGHUP/SIGQUIT are read and ignored: the
        // container's life decides when the monitor ends, not a signal to the session.
        let sigfd = sys::signalfd(&[
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
        ])
        .map_err(|e| format!("signalfd: {e}"))?;
        let monitor_pid = std::process::id() as i32;
        sys::write_atomic(&run_dir.join(PID_FILE), monitor_pid.to_string().as_bytes())
            .map_err(|e| format!("write {PID_FILE}: {e}"))?;
        let sock_path = run_dir.join(SOCKET_FILE);
        let _ = std::fs::remove_file(&sock_path);
        // Created 0600 from the start (no window where another user could connect).
        // SAFETY: umask only swaps this process's creation mask; nothing else runs meanwhile.
        let old_mask = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(&sock_path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old_mask) };
        let listener = bound.map_err(|e| format!("bind {}: {e}", sock_path.display()))?;
        let _ = std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600));
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        let log = match cfg.log.driver {
            LogDriver::JsonFile => Some(
                JsonLog::open(&cfg.log.path, cfg.log.max_size, cfg.log.max_file)
                    .map_err(|e| format!("open log {}: {e}", cfg.log.path.display()))?,
            ),
            LogDriver::None => None,
        };
        let shell = cfg.shell.clone().unwrap_or_default();
        let health = HealthMonitor::new(
            cfg.healthcheck.as_ref(),
            &shell,
            cfg.health.clone(),
            |argv| ProbeSetup {
                runtime: cfg.runtime.clone(),
                runtime_root: cfg.runtime_root.clone(),
                id: cfg.id.clone(),
                run_dir: run_dir.to_path_buf(),
                argv,
            },
        );
        Ok(Monitor {
            runtime: Runtime::new(&cfg, run_dir),
            restart: RestartManager::new(cfg.restart.clone()),
            events: Events {
                command: cfg.event_command.clone(),
                queue: VecDeque::new(),
                running: None,
            },
            cfg,
            run_dir: run_dir.to_path_buf(),
            sync: None,
            sigfd,
            listener: Some(listener),
            clients: Vec::new(),
            attached: 0,
            io: ContainerIo::default(),
            log,
            split: Default::default(),
            state: MonitorState {
                status: Status::Running,
                monitor_pid,
                // Until the first start, the earlier runs' health (as Docker shows it).
                health: health.as_ref().map(|h| h.health().clone()),
                ..Default::default()
            },
            phase: Phase::Running,
            init_pid: None,
            started: Instant::now(),
            oom: None,
            health,
        })
    }

    fn run(&mut self) -> i32 {
        match self.create() {
            Ok(()) => {
                // Even with nothing announced, one non-blocking round first: a client that already
                // connected (during `create`) is registered before the container can print.
                self.phase = Phase::WaitAttach {
                    expected: count_pending_attach(&self.run_dir),
                    deadline: Instant::now() + ATTACH_WAIT,
                };
            }
            Err(e) => self.initial_failure(e),
        }
        while !self.finished() {
            self.iterate();
        }
        self.cleanup();
        0
    }

    /// The container could not be started: tell the API, record it, end.
    fn initial_failure(&mut self, err: String) {
        diag(&self.run_dir, &format!("start failed: {err}"));
        self.state.status = Status::Exited;
        self.state.exit_code = start_failure_code(&err);
        self.state.error = err.clone();
        self.state.pid = 0;
        self.state.finished_at = sys::now_nanos();
        self.save_state();
        if let Some(mut s) = self.sync.take() {
            report(&mut s, &serde_json::json!({ "error": err }));
        }
        self.end_for_good();
    }

    /// Make the stdio, `runtime create`, learn the init's pid.
    fn create(&mut self) -> Result<(), String> {
        self.io = ContainerIo::default();
        self.split = Default::default();
        let console = if self.cfg.tty {
            let path = self.runtime.console_path();
            let _ = std::fs::remove_file(&path);
            Some(UnixListener::bind(&path).map_err(|e| format!("console socket: {e}"))?)
        } else {
            None
        };
        let stdio: [Stdio; 3] = if self.cfg.tty {
            [Stdio::null(), Stdio::null(), Stdio::null()]
        } else {
            let pipe_err = |e: std::io::Error| format!("pipe: {e}");
            let stdin = if self.cfg.open_stdin {
                let (r, w) = sys::pipe().map_err(pipe_err)?;
                sys::set_nonblocking(&w).map_err(pipe_err)?;
                self.io.stdin = Some(w);
                Stdio::from(r)
            } else {
                Stdio::null()
            };
            let (out_r, out_w) = sys::pipe().map_err(pipe_err)?;
            let (err_r, err_w) = sys::pipe().map_err(pipe_err)?;
            sys::set_nonblocking(&out_r).map_err(pipe_err)?;
            sys::set_nonblocking(&err_r).map_err(pipe_err)?;
            self.io.stdout = Some(out_r);
            self.io.stderr = Some(err_r);
            [stdin, Stdio::from(out_w), Stdio::from(err_w)]
        };
        let created = self.runtime.create(stdio, console.is_some());
        if let Err(e) = created {
            // Whatever the runtime wrote to the pipes was about its failure, not output.
            self.io = ContainerIo::default();
            let _ = std::fs::remove_file(self.runtime.console_path());
            return Err(e);
        }
        if let Some(l) = console {
            let got = receive_pty(&l);
            drop(l);
            let _ = std::fs::remove_file(self.runtime.console_path());
            match got {
                Ok(pty) => self.io.pty = Some(pty),
                Err(e) => {
                    let _ = self.runtime.delete();
                    return Err(e);
                }
            }
        }
        match self.runtime.read_pid() {
            Some(pid) => {
                self.init_pid = Some(pid);
                self.oom = OomCounter::of_pid(pid).and_then(OomWatch::new);
                if self.oom.as_ref().is_some_and(|w| w.fd().is_none()) {
                    diag(
                        &self.run_dir,
                        "no OOM notifier: OOM kills are told at the exit",
                    );
                }
                Ok(())
            }
            None => {
                let _ = self.runtime.delete();
                self.io = ContainerIo::default();
                Err("runtime did not write the container's pid file".into())
            }
        }
    }

    /// `runtime start`, then the state says running.
    fn start(&mut self) -> Result<(), String> {
        if let Err(e) = self.runtime.start() {
            let _ = self.runtime.delete();
            self.io = ContainerIo::default();
            self.init_pid = None;
            return Err(e);
        }
        self.started = Instant::now();
        self.state.status = Status::Running;
        self.state.pid = self.init_pid.unwrap_or(0);
        self.state.started_at = sys::now_nanos();
        self.state.error.clear();
        self.state.oom_killed = false;
        if let Some(h) = self.health.as_mut() {
            h.started(self.state.pid);
            self.state.health = Some(h.health().clone());
        }
        self.save_state();
        self.phase = Phase::Running;
        // Start-up and the runtime's fork/exec mapped much shared library text the loop never
        // uses again; drop those page-table entries (see `trim_file_mappings`).
        sys::trim_file_mappings();
        Ok(())
    }

    fn first_start(&mut self) {
        // The announcements are one-shot: a later monitor in this run dir must not wait for them.
        remove_pending_attach(&self.run_dir);
        match self.start() {
            Ok(()) => {
                if let Some(mut s) = self.sync.take() {
                    report(
                        &mut s,
                        &serde_json::json!({"pid": self.state.pid, "monitor_pid": self.state.monitor_pid}),
                    );
                }
                // Reporting ran the JSON writer and the pipe code once more (see `start`).
                sys::trim_file_mappings();
            }
            Err(e) => self.initial_failure(e),
        }
    }

    fn save_state(&self) {
        if let Err(e) = self.state.save(&self.run_dir) {
            diag(&self.run_dir, &format!("write state: {e}"));
        }
    }

    fn finished(&self) -> bool {
        match self.phase {
            Phase::Done { deadline } => {
                (self.clients.is_empty() || Instant::now() >= deadline) && self.events.idle()
            }
            _ => false,
        }
    }

    /// One round of the loop: poll, then handle what is ready and what is due.
    fn iterate(&mut self) {
        if let Phase::WaitAttach { expected, .. } = &mut self.phase {
            *expected = count_pending_attach(&self.run_dir);
        }
        let mut tokens: Vec<Token> = Vec::with_capacity(8 + self.clients.len());
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8 + self.clients.len());
        let mut add = |t: Token, fd: RawFd, events: libc::c_short| {
            tokens.push(t);
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        };
        add(Token::Signal, self.sigfd.as_raw_fd(), libc::POLLIN);
        if let Some(l) = &self.listener {
            add(Token::Listener, l.as_raw_fd(), libc::POLLIN);
        }
        if let Some(f) = &self.io.stdout {
            add(Token::Out(Stream::Stdout), f.as_raw_fd(), libc::POLLIN);
        }
        if let Some(f) = &self.io.stderr {
            add(Token::Out(Stream::Stderr), f.as_raw_fd(), libc::POLLIN);
        }
        if let Some(f) = &self.io.pty
            && !self.io.pty_eof
        {
            add(Token::Pty, f.as_raw_fd(), libc::POLLIN);
        }
        if !self.io.stdin_buf.is_empty()
            && let Some(f) = self.io.stdin.as_ref().or(self.io.pty.as_ref())
        {
            add(Token::StdinWrite, f.as_raw_fd(), libc::POLLOUT);
        }
        if let Some(fd) = self.health.as_ref().and_then(HealthMonitor::poll_fd) {
            add(Token::Probe, fd, libc::POLLIN);
        }
        if let Some(fd) = self.oom.as_ref().and_then(OomWatch::fd) {
            add(Token::Oom, fd, libc::POLLIN);
        }
        let stdin_full = self.io.stdin_buf.len() >= MAX_STDIN_BUF;
        for (i, c) in self.clients.iter().enumerate() {
            let mut ev = 0;
            // A client is read only while its bytes can go somewhere (back-pressure on stdin).
            if c.reading && !stdin_full {
                ev |= libc::POLLIN;
            }
            if c.pending_out() > 0 {
                ev |= libc::POLLOUT;
            }
            // Even with no events asked, POLLHUP/POLLERR report a client that went away.
            add(Token::Client(i), c.sock.as_raw_fd(), ev);
        }
        let timeout = self.poll_timeout();
        if let Err(e) = sys::poll(&mut fds, timeout) {
            diag(&self.run_dir, &format!("poll: {e}"));
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        let mut sigchld = false;
        for (t, p) in tokens.iter().zip(fds.iter()) {
            let r = p.revents;
            if r == 0 {
                continue;
            }
            match *t {
                Token::Signal => {
                    sigchld =
                        sys::read_signals(&self.sigfd).contains(&(libc::SIGCHLD as u32)) || sigchld;
                }
                Token::Listener => self.accept(),
                Token::Out(s) => self.read_output(Some(s)),
                Token::Pty => self.read_output(None),
                Token::StdinWrite => self.flush_stdin(),
                Token::Client(i) => self.client_ready(i, r),
                Token::Probe => {
                    if let Some(h) = self.health.as_mut() {
                        h.read_output();
                    }
                }
                Token::Oom => self.oom_check(),
            }
        }
        if sigchld {
            self.reap();
        }
        self.clients.retain(|c| !c.dead);
        self.timers();
    }

    fn poll_timeout(&self) -> i32 {
        let now = Instant::now();
        let mut due: Option<Instant> = match self.phase {
            // Already satisfied: just a non-blocking round to take what is there.
            Phase::WaitAttach { expected, .. } if self.attached >= expected => return 0,
            Phase::WaitAttach { deadline, .. } => Some(deadline),
            Phase::Restarting { at } => Some(at),
            Phase::Done { deadline } => Some(deadline),
            Phase::Running => None,
        };
        if let Some((_, d)) = self.events.running {
            due = Some(due.map_or(d, |x| x.min(d)));
        }
        if let Some(d) = self.health.as_ref().and_then(HealthMonitor::next_wakeup) {
            due = Some(due.map_or(d, |x| x.min(d)));
        }
        match due {
            None => -1,
            Some(d) => {
                let ms = d.saturating_duration_since(now).as_millis();
                // Round up so the deadline has passed when poll returns.
                (ms.min(60_000) as i32) + 1
            }
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        self.events.check_timeout(now);
        match self.phase {
            Phase::WaitAttach { expected, deadline }
                if self.attached >= expected || now >= deadline =>
            {
                self.first_start();
            }
            Phase::Restarting { at } if now >= at => self.do_restart(),
            Phase::Running => {
                if let Some(c) = self.health.as_mut().map(|h| h.tick(now)) {
                    self.health_changed(c);
                }
            }
            _ => {}
        }
    }

    /// The memory cgroup told of a change: an OOM kill while the container runs is reported
    /// at once, and the run counts as OOM-killed (moby sets `OOMKilled` on the event).
    fn oom_check(&mut self) {
        let Some(w) = self.oom.as_mut() else { return };
        if w.check() > 0 {
            self.state.oom_killed = true;
            self.save_state();
            self.events.push(&["oom"]);
        }
    }

    /// Health changed: state.json first (the event command reads it), then the event.
    fn health_changed(&mut self, c: Changes) {
        if c.state {
            self.state.health = self.health.as_ref().map(|h| h.health().clone());
            self.save_state();
        }
        if let Some(s) = c.event {
            self.events.push(health_event(s));
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(l) = &self.listener else { return };
            match l.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        kind: ClientKind::Pending,
                        inbuf: Vec::new(),
                        reading: true,
                        out: Vec::new(),
                        out_pos: 0,
                        close_when_flushed: false,
                        dead: false,
                    });
                    // Its request is usually there already: register it in this round.
                    let i = self.clients.len() - 1;
                    self.client_read(i);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ECONNABORTED, EMFILE…: try again on the next readiness.
                Err(_) => return,
            }
        }
    }

    fn client_ready(&mut self, i: usize, revents: libc::c_short) {
        if revents & libc::POLLOUT != 0 {
            self.clients[i].flush();
        }
        if revents & libc::POLLIN != 0 && self.clients[i].reading {
            self.client_read(i);
        } else if revents & (libc::POLLHUP | libc::POLLERR) != 0 && revents & libc::POLLIN == 0 {
            // Gone both ways (a half-close alone shows as readable EOF, not as a hang-up).
            self.clients[i].dead = true;
        }
    }

    fn client_read(&mut self, i: usize) {
        let mut buf = [0u8; 8192];
        match sys::read_nb(&self.clients[i].sock, &mut buf) {
            ReadOutcome::Data(n) => {
                if self.clients[i].kind == ClientKind::Pending {
                    self.clients[i].inbuf.extend_from_slice(&buf[..n]);
                    self.client_request(i);
                } else {
                    self.client_stdin(i, &buf[..n]);
                }
            }
            ReadOutcome::Eof => self.client_eof(i),
            ReadOutcome::WouldBlock => {}
            ReadOutcome::Failed(_) => self.clients[i].dead = true,
        }
    }

    fn client_request(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
            if c.inbuf.len() > MAX_REQUEST_LINE {
                c.dead = true;
            }
            return;
        };
        let rest = c.inbuf.split_off(nl + 1);
        let line = std::mem::take(&mut c.inbuf);
        match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Attach {
                stdin,
                stdout,
                stderr,
            }) => {
                if matches!(self.phase, Phase::Done { .. }) {
                    // The container is gone for good: EOF at once.
                    c.close_when_flushed = true;
                    c.reading = false;
                    c.kind = ClientKind::Reply;
                    c.flush();
                    return;
                }
                c.kind = ClientKind::Attach {
                    stdin,
                    stdout,
                    stderr,
                };
                self.attached += 1;
                if !rest.is_empty() {
                    self.client_stdin(i, &rest);
                }
            }
            Ok(Request::Resize { height, width }) => {
                let res = match (&self.io.pty, self.cfg.tty) {
                    (_, false) => Err("the container has no tty".to_string()),
                    (None, true) => Err("the container is not running".to_string()),
                    (Some(pty), true) => {
                        sys::set_winsize(pty, height, width).map_err(|e| e.to_string())
                    }
                };
                self.reply(i, proto::reply_line(res));
            }
            Ok(Request::State) => {
                let mut out = serde_json::to_vec(&self.state).unwrap_or_default();
                out.push(b'\n');
                self.reply(i, out);
            }
            Err(e) => self.reply(i, proto::reply_line(Err(format!("bad request: {e}")))),
        }
    }

    fn reply(&mut self, i: usize, data: Vec<u8>) {
        let c = &mut self.clients[i];
        c.kind = ClientKind::Reply;
        c.reading = false;
        c.close_when_flushed = true;
        c.queue(&data);
        c.flush();
    }

    fn client_stdin(&mut self, i: usize, data: &[u8]) {
        let ClientKind::Attach { stdin: true, .. } = self.clients[i].kind else {
            return;
        };
        let has_stdin = self.io.stdin.is_some() || self.io.pty.is_some();
        if !has_stdin || self.io.stdin_close {
            return;
        }
        self.io.stdin_buf.extend_from_slice(data);
        self.flush_stdin();
    }

    fn client_eof(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.reading = false;
        match c.kind {
            ClientKind::Pending => c.dead = true,
            ClientKind::Attach { stdin: true, .. } if self.cfg.stdin_once && !self.cfg.tty => {
                // Docker's StdinOnce: the first attached client's EOF is the container's EOF.
                self.io.stdin_close = true;
                self.flush_stdin();
            }
            _ => {}
        }
    }

    fn flush_stdin(&mut self) {
        let io = &mut self.io;
        let target = io.stdin.as_ref().or(io.pty.as_ref());
        if let Some(f) = target {
            while !io.stdin_buf.is_empty() {
                match sys::write_nb(f, &io.stdin_buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        io.stdin_buf.drain(..n);
                    }
                    Err(_) => {
                        // EPIPE: the container closed its stdin; nothing more can go there.
                        io.stdin_buf = Vec::new();
                        io.stdin = None;
                        break;
                    }
                }
            }
        } else {
            io.stdin_buf = Vec::new();
        }
        if io.stdin_buf.is_empty() {
            if io.stdin_buf.capacity() > 64 * 1024 {
                io.stdin_buf = Vec::new();
            }
            if io.stdin_close {
                io.stdin = None;
            }
        }
    }

    /// Read what is there from one output stream (`None` = the pty): log it, send it to clients.
    fn read_output(&mut self, which: Option<Stream>) {
        // A few reads per round keep a chatty container from starving the others.
        self.read_output_rounds(which, 4);
    }

    fn read_output_rounds(&mut self, which: Option<Stream>, rounds: usize) {
        let mut buf = vec![0u8; READ_CHUNK];
        for _ in 0..rounds {
            let fd = match which {
                Some(Stream::Stdout) => self.io.stdout.as_ref(),
                Some(Stream::Stderr) => self.io.stderr.as_ref(),
                None => self.io.pty.as_ref().filter(|_| !self.io.pty_eof),
            };
            let Some(fd) = fd else { return };
            match sys::read_nb(fd, &mut buf) {
                ReadOutcome::Data(n) => self.output(which.unwrap_or(Stream::Stdout), &buf[..n]),
                ReadOutcome::WouldBlock => return,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => {
                    match which {
                        Some(Stream::Stdout) => self.io.stdout = None,
                        Some(Stream::Stderr) => self.io.stderr = None,
                        None => self.io.pty_eof = true,
                    }
                    return;
                }
            }
        }
    }

    fn output(&mut self, stream: Stream, data: &[u8]) {
        let now = sys::now_nanos();
        let idx = stream as usize;
        if let Some(log) = self.log.as_mut() {
            let mut failed = None;
            self.split[idx].push(data, |line| {
                if let Err(e) = log.write(stream, line, now) {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                // The container keeps running without its log rather than stopping.
                diag(&self.run_dir, &format!("log write: {e}"));
            }
        }
        let header = proto::frame_header(stream.frame_id(), data.len());
        for c in self.clients.iter_mut() {
            let wants = match c.kind {
                ClientKind::Attach { stdout, stderr, .. } => match stream {
                    Stream::Stdout => stdout,
                    Stream::Stderr => stderr,
                },
                _ => false,
            };
            if wants && !c.dead {
                if c.pending_out() + header.len() + data.len() > MAX_CLIENT_BUF {
                    c.dead = true;
                    continue;
                }
                c.queue(&header);
                c.queue(data);
                c.flush();
            }
        }
    }

    fn flush_log_lines(&mut self) {
        let now = sys::now_nanos();
        if let Some(log) = self.log.as_mut() {
            for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
                self.split[i].flush(|line| {
                    let _ = log.write(stream, line, now);
                });
            }
            log.sync();
        }
    }

    fn reap(&mut self) {
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
    fn init_exited(&mut self, code: i32) {
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
            self.initial_failure(format!("container exited before it was started ({code})"));
            return;
        }
        self.record_exit(code, oom, String::new());
    }

    /// Everything the stream has now (at exit, so nothing is lost).
    fn read_output_all(&mut self, which: Option<Stream>) {
        self.read_output_rounds(which, usize::MAX);
    }

    /// Count an exit (or a failed restart), tell the event command, decide what comes next.
    fn record_exit(&mut self, code: i32, oom: bool, error: String) {
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

    fn do_restart(&mut self) {
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
                self.record_exit(start_failure_code(&e), false, e);
            }
        }
    }

    /// No more runs: clients get the rest of their output then EOF; then the loop ends.
    fn end_for_good(&mut self) {
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

    fn cleanup(&mut self) {
        for c in self.clients.drain(..) {
            sys::shutdown(&c.sock);
        }
        for f in [SOCKET_FILE, CONSOLE_SOCKET_FILE, PID_FILE] {
            let _ = std::fs::remove_file(self.run_dir.join(f));
        }
    }
}

/// Accept the runtime's connection on the console socket and take the pty master from it.
fn receive_pty(l: &UnixListener) -> Result<File, String> {
    let err = |e: std::io::Error| format!("console socket: {e}");
    l.set_nonblocking(true).map_err(err)?;
    // `runtime create` has exited: its connection is in the backlog or it never came.
    let mut pfd = [libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    sys::poll(&mut pfd, 1000).map_err(err)?;
    let (conn, _) = match l.accept() {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            return Err("runtime did not set up a terminal".into());
        }
        Err(e) => return Err(err(e)),
    };
    let pty = super::console::recv_fd(&conn).map_err(err)?;
    sys::set_nonblocking(&pty).map_err(err)?;
    Ok(pty)
}

fn count_pending_attach(run_dir: &Path) -> usize {
    std::fs::read_dir(run_dir.join(ATTACH_PENDING_DIR))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

fn remove_pending_attach(run_dir: &Path) {
    if let Ok(d) = std::fs::read_dir(run_dir.join(ATTACH_PENDING_DIR)) {
        for e in d.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
