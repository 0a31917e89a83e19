//! The monitor process itself: setup and the poll loop here; attach clients, the
//! container's output, event commands and exits in the submodules.

mod clients;
mod events;
mod exit;
mod output;

use clients::{Client, ClientKind};
use events::{Events, health_event};

use crate::MonitorError;
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
                report(s, &serde_json::json!({ "error": e.to_string() }));
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
    fn setup(run_dir: &Path) -> Result<Monitor, MonitorError> {
        let cfg = MonitorConfig::load(run_dir)?;
        cgroup::leave_caller_cgroup();
        sys::set_child_subreaper().map_err(|e| MonitorError::io("PR_SET_CHILD_SUBREAPER", e))?;
        // SIGCHLD drives the loop; SIGTERM/SIGINT/SIGHUP/SIGQUIT are read and ignored: the
        // container's life decides when the monitor ends, not a signal to the session.
        let sigfd = sys::signalfd(&[
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
        ])
        .map_err(|e| MonitorError::io("signalfd", e))?;
        let monitor_pid = std::process::id() as i32;
        sys::write_atomic(&run_dir.join(PID_FILE), monitor_pid.to_string().as_bytes())
            .map_err(|e| MonitorError::io(format!("write {PID_FILE}"), e))?;
        let sock_path = run_dir.join(SOCKET_FILE);
        let _ = std::fs::remove_file(&sock_path);
        // Created 0600 from the start (no window where another user could connect).
        // SAFETY: umask only swaps this process's creation mask; nothing else runs meanwhile.
        let old_mask = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(&sock_path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old_mask) };
        let listener =
            bound.map_err(|e| MonitorError::io(format!("bind {}", sock_path.display()), e))?;
        let _ = std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600));
        listener
            .set_nonblocking(true)
            .map_err(|e| MonitorError::io("listener", e))?;
        let log = match cfg.log.driver {
            LogDriver::JsonFile => Some(
                JsonLog::open(&cfg.log.path, cfg.log.max_size, cfg.log.max_file).map_err(|e| {
                    MonitorError::io(format!("open log {}", cfg.log.path.display()), e)
                })?,
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
    fn initial_failure(&mut self, err: MonitorError) {
        let err = err.to_string();
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
    fn create(&mut self) -> Result<(), MonitorError> {
        self.io = ContainerIo::default();
        self.split = Default::default();
        let console = if self.cfg.tty {
            let path = self.runtime.console_path();
            let _ = std::fs::remove_file(&path);
            Some(UnixListener::bind(&path).map_err(|e| MonitorError::io("console socket", e))?)
        } else {
            None
        };
        let stdio: [Stdio; 3] = if self.cfg.tty {
            [Stdio::null(), Stdio::null(), Stdio::null()]
        } else {
            let pipe_err = |e: std::io::Error| MonitorError::io("pipe", e);
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
                Err(MonitorError::NoPidFile)
            }
        }
    }

    /// `runtime start`, then the state says running.
    fn start(&mut self) -> Result<(), MonitorError> {
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
}

/// Accept the runtime's connection on the console socket and take the pty master from it.
fn receive_pty(l: &UnixListener) -> Result<File, MonitorError> {
    let err = |e: std::io::Error| MonitorError::io("console socket", e);
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
            return Err(MonitorError::NoTerminal);
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
