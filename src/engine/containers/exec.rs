//! `docker exec`: exec records (JSON files in the container's run dir) and the processes run
//! with `runc exec`.
//!
//! An attached exec is a child of the serving process, which relays its stream and records its
//! exit before the stream ends; its client connection dies with `berth serve` anyway. A detached
//! exec gets its own supervisor (`berth internal exec-wait`, see [`detached`]), started like a
//! container monitor, so its exit code is recorded even when every `berth serve` is gone.
//!
//! Each running record names its *waiter* (the process that will record the exit) and the
//! process it waits for, by pid and start time. A record still marked running whose waiter is
//! gone is read as the truth allows: running while that process lives, else exited with 255.
//!
//! A TTY exec runs `runc exec` in the foreground on a pty of ours (runc bridges it to the
//! container's pty and forwards window sizes on SIGWINCH), so its exit code is known too. The
//! session listens on a small control socket beside the record for resize requests.

pub mod detached;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use oci_spec::runtime as oci;

use crate::model::ExecOptions;
use tokio::sync::{mpsc, oneshot};

use super::inspect::container_event;
use super::resolve;
use super::state::{ContainerStatus, State, current};
use crate::engine::{Engine, EngineError, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessConfig {
    pub tty: bool,
    pub entrypoint: String,
    pub arguments: Vec<String>,
    pub privileged: bool,
    pub user: String,
}

/// What berth keeps beside Docker's fields (left out of inspect).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Extra {
    pub env: Vec<String>,
    pub working_dir: String,
    pub started: bool,
    pub console_size: Option<[u32; 2]>,
    /// The process that records the exit: `berth serve` (attached) or the supervisor (detached).
    pub waiter: Option<ProcRef>,
    /// The process the waiter waits for (`runc exec`, or the exec's own process when detached).
    pub process: Option<ProcRef>,
    /// Unix nanoseconds of the exit, once recorded.
    pub finished_at: i64,
}

/// A process named by pid and start time (clock ticks after boot), so that a recycled pid is
/// never taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    pub start: u64,
}

impl ProcRef {
    pub fn of(pid: i32) -> Option<ProcRef> {
        proc_start(pid).map(|start| ProcRef { pid, start })
    }

    pub fn me() -> Option<ProcRef> {
        ProcRef::of(std::process::id() as i32)
    }

    /// Still the same process, and not a zombie.
    pub fn alive(&self) -> bool {
        proc_start(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time); None for a missing or zombie process.
fn proc_start(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start(&stat)
}

fn parse_start(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    // `rest` begins with field 3, so field 22 is at index 19.
    fields.get(19)?.parse().ok()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecRecord {
    #[serde(rename = "ID")]
    pub id: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub process_config: ProcessConfig,
    pub open_stdin: bool,
    pub open_stderr: bool,
    pub open_stdout: bool,
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    pub pid: i64,
    #[serde(rename = "berth")]
    pub extra: Extra,
}

impl ExecRecord {
    pub fn command(&self) -> String {
        let mut v = vec![self.process_config.entrypoint.clone()];
        v.extend(self.process_config.arguments.iter().cloned());
        v.join(" ")
    }

    /// `GET /exec/{id}/json`.
    pub fn inspect_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("berth");
        }
        v
    }
}

fn exec_dir(engine: &Engine, cid: &str) -> PathBuf {
    engine.paths().container_run_dir(cid).join("exec")
}

fn record_path(engine: &Engine, cid: &str, eid: &str) -> PathBuf {
    exec_dir(engine, cid).join(format!("{eid}.json"))
}

/// The resize control socket (short name: `sun_path` is 108 bytes).
pub fn control_socket(engine: &Engine, cid: &str, eid: &str) -> PathBuf {
    exec_dir(engine, cid).join(format!("{}.sock", &eid[..eid.len().min(16)]))
}

fn write_record(engine: &Engine, rec: &ExecRecord) -> Result<()> {
    std::fs::create_dir_all(exec_dir(engine, &rec.container_id))?;
    replace_record(engine, rec)
}

/// Replace the record atomically (temp + rename) without creating its folder: a container
/// removed meanwhile must not get its run dir back.
fn replace_record(engine: &Engine, rec: &ExecRecord) -> Result<()> {
    let dir = exec_dir(engine, &rec.container_id);
    let path = record_path(engine, &rec.container_id, &rec.id);
    let tmp = dir.join(format!(".{}.{}", rec.id, crate::util::random_id()));
    std::fs::write(&tmp, serde_json::to_vec(rec).unwrap_or_default())?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

fn read_record(path: &std::path::Path) -> Option<ExecRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The record as the truth allows: one marked running whose waiter is gone (a killed `berth
/// serve`, a killed supervisor) runs only while its process does; after that its exit code
/// is unknown, 255 as for a container whose monitor was lost.
fn settle(path: &std::path::Path, rec: ExecRecord) -> ExecRecord {
    let Some(waiter) = rec.extra.waiter.filter(|_| rec.running) else {
        return rec;
    };
    if waiter.alive() {
        return rec;
    }
    // The waiter may have recorded the exit just before it went.
    let mut rec = read_record(path).unwrap_or(rec);
    if !rec.running || rec.extra.process.is_some_and(|p| p.alive()) {
        return rec;
    }
    rec.running = false;
    rec.exit_code = Some(255);
    rec.pid = 0;
    rec
}

/// Find an exec by its exact ID across all containers' run dirs.
pub fn find(engine: &Engine, eid: &str) -> Result<ExecRecord> {
    let missing = || EngineError::not_found(format!("No such exec instance: {eid}"));
    if eid.is_empty() || eid.contains('/') || eid.starts_with('.') {
        return Err(missing());
    }
    let base = engine.paths().container_run_dir("0");
    let Some(root) = base.parent() else {
        return Err(missing());
    };
    let Ok(entries) = std::fs::read_dir(root) else {
        return Err(missing());
    };
    for entry in entries.flatten() {
        let p = entry.path().join("exec").join(format!("{eid}.json"));
        if let Some(rec) = read_record(&p) {
            return Ok(settle(&p, rec));
        }
    }
    Err(missing())
}

fn running_container(
    engine: &Engine,
    name: &str,
) -> Result<crate::store::containers::ContainerRow> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let st = current(engine.paths(), &row.id, &State::parse(&row.state));
    if st.status == ContainerStatus::Restarting {
        return Err(EngineError::conflict(format!(
            "container {} is restarting, wait until the container is running",
            row.id
        )));
    }
    if st.status != ContainerStatus::Running {
        return Err(EngineError::conflict(format!(
            "container {} is not running",
            row.id
        )));
    }
    if st.paused {
        return Err(EngineError::conflict(format!(
            "container {} is paused, unpause the container first",
            row.id
        )));
    }
    Ok(row)
}

fn event(engine: &Engine, cid: &str, action: &str, extra: Map<String, Value>) {
    if let Ok(mut st) = engine.store()
        && let Ok(row) = st.read(|tx| resolve(tx, cid))
    {
        let _ = st.write(|tx| container_event(tx, action, &row, extra));
    }
}

/// `POST /containers/{id}/exec`.
pub fn create(engine: &Engine, name: &str, body: ExecOptions) -> Result<String> {
    let row = running_container(engine, name)?;
    let cmd = body.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(EngineError::invalid("No exec command specified"));
    }
    let console_size = crate::model::exec::console_size(body.console_size);
    let rec = ExecRecord {
        id: crate::util::random_id(),
        running: false,
        exit_code: None,
        process_config: ProcessConfig {
            tty: body.tty,
            entrypoint: cmd[0].clone(),
            arguments: cmd[1..].to_vec(),
            privileged: body.privileged,
            user: body.user,
        },
        open_stdin: body.attach_stdin,
        open_stderr: body.attach_stderr,
        open_stdout: body.attach_stdout,
        can_remove: false,
        container_id: row.id.clone(),
        detach_keys: body.detach_keys,
        pid: 0,
        extra: Extra {
            env: body.env.unwrap_or_default(),
            working_dir: body.working_dir,
            started: false,
            console_size,
            ..Extra::default()
        },
    };
    write_record(engine, &rec)?;
    let mut extra = Map::new();
    extra.insert("execID".into(), json!(rec.id));
    event(
        engine,
        &row.id,
        &format!("exec_create: {}", rec.command()),
        extra,
    );
    Ok(rec.id)
}

/// Check an exec may start and mark it started (under the container's lock).
pub fn claim(engine: &Engine, eid: &str) -> Result<ExecRecord> {
    let rec = find(engine, eid)?;
    let _lock = engine.lock_container(&rec.container_id)?;
    let mut rec = find(engine, eid)?;
    if rec.running {
        return Err(EngineError::conflict(format!(
            "exec command {eid} is already running"
        )));
    }
    if rec.extra.started || rec.exit_code.is_some() {
        return Err(EngineError::conflict(format!(
            "exec command {eid} has already run"
        )));
    }
    running_container(engine, &rec.container_id)?;
    rec.extra.started = true;
    write_record(engine, &rec)?;
    Ok(rec)
}

fn merge_env(base: &mut Vec<String>, add: &[String]) {
    for e in add {
        let key = e.split('=').next().unwrap_or("");
        if let Some(slot) = base
            .iter_mut()
            .find(|b| b.split('=').next().unwrap_or("") == key)
        {
            *slot = e.clone();
        } else {
            base.push(e.clone());
        }
    }
}

/// The OCI process for the exec, from the container's own `process` as a template.
fn process_spec(engine: &Engine, rec: &ExecRecord, tty: bool) -> Result<oci::Process> {
    let bundle = engine.paths().container_dir(&rec.container_id);
    let spec = oci::Spec::load(bundle.join("config.json"))
        .map_err(|e| EngineError::internal(format!("reading the container's spec: {e}")))?;
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| EngineError::internal("the container's spec has no process"))?;
    let mut args = vec![rec.process_config.entrypoint.clone()];
    args.extend(rec.process_config.arguments.iter().cloned());
    p.set_args(Some(args));
    let mut env = p.env().clone().unwrap_or_default();
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    merge_env(&mut env, &rec.extra.env);
    p.set_env(Some(env));
    if !rec.extra.working_dir.is_empty() {
        p.set_cwd(rec.extra.working_dir.clone().into());
    }
    if !rec.process_config.user.is_empty() {
        let rootfs = bundle.join("merged");
        let (uid, gid, sgids) =
            crate::runtime::resolve_user(&rootfs, &rec.process_config.user, &[])
                .map_err(EngineError::internal_cause)?;
        let mut user = oci::User::default();
        user.set_uid(uid)
            .set_gid(gid)
            .set_additional_gids(Some(sgids).filter(|g| !g.is_empty()));
        p.set_user(user);
    }
    p.set_terminal(Some(tty));
    let console = match rec.extra.console_size {
        Some([h, w]) if tty => Some(
            oci::BoxBuilder::default()
                .height(u64::from(h))
                .width(u64::from(w))
                .build()
                .map_err(EngineError::internal_cause)?,
        ),
        _ => None,
    };
    p.set_console_size(console);
    if rec.process_config.privileged {
        let all = crate::runtime::capability_set(&crate::runtime::HostInfo::get().bounding_caps)?;
        let mut caps = oci::LinuxCapabilities::default();
        caps.set_bounding(Some(all.clone()))
            .set_effective(Some(all.clone()))
            .set_permitted(Some(all))
            .set_inheritable(None)
            .set_ambient(None);
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// How an attached exec's stdio is wired (a detached one goes to [`start_detached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pipes (stdin only when `stdin`).
    Pipes { stdin: bool },
    /// A pty of ours.
    Tty,
}

/// A started exec: where to write its stdin, where its output comes from, and its end.
pub struct Session {
    pub input: Option<Box<dyn Write + Send>>,
    /// (stream, bytes): 1 stdout, 2 stderr; a TTY's output is all stream 1.
    pub output: mpsc::Receiver<(u8, Vec<u8>)>,
    /// The exit code, sent after the record is written.
    pub done: oneshot::Receiver<i64>,
}

fn set_winsize(fd: i32, h: u32, w: u32) {
    let ws = libc::winsize {
        ws_row: h as u16,
        ws_col: w as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid for the call.
    unsafe {
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
    }
}

fn reader(mut from: impl Read, stream: u8, tx: mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut listening = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // After the client went away the output is drained, so the process never blocks.
                if listening && tx.blocking_send((stream, buf[..n].to_vec())).is_err() {
                    listening = false;
                }
            }
        }
    }
}

/// Serve resize requests (`{"height":h,"width":w}`) on the control socket until `stop`.
fn control_loop(
    listener: UnixListener,
    master: Arc<File>,
    runc: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut conn) = conn else { continue };
        let mut line = String::new();
        let _ = (&mut conn).take(4096).read_to_string(&mut line);
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            let h = v.get("height").and_then(Value::as_u64).unwrap_or(0) as u32;
            let w = v.get("width").and_then(Value::as_u64).unwrap_or(0) as u32;
            set_winsize(master.as_raw_fd(), h, w);
            let pid = runc.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: plain kill(2) on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGWINCH);
                }
            }
        }
        let _ = conn.write_all(b"ok\n");
    }
}

/// Ask a TTY exec's session to resize (waits up to 10 s for the session to start).
pub fn resize(engine: &Engine, eid: &str, h: u32, w: u32) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rec = find(engine, eid)?;
        let sock = control_socket(engine, &rec.container_id, eid);
        if let Ok(mut s) = UnixStream::connect(&sock) {
            let _ = s.write_all(json!({"height": h, "width": w}).to_string().as_bytes());
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut reply = Vec::new();
            let _ = s.read_to_end(&mut reply);
            return Ok(());
        }
        if rec.exit_code.is_some() || !rec.process_config.tty {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(EngineError::conflict(format!("exec {eid} is not running")));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Start a claimed exec detached: write its process spec and hand it to a supervisor of its
/// own (`berth internal exec-wait`), which reports once the process runs or the runtime
/// refused. Like moby, a refusal is the request's error and the exec's exit code is 126.
pub fn start_detached(engine: &Engine, mut rec: ExecRecord) -> Result<()> {
    let fail = |rec: &mut ExecRecord, e: EngineError| {
        // Only if the supervisor did not record anything itself.
        let path = record_path(engine, &rec.container_id, &rec.id);
        if read_record(&path).is_some_and(|r| r.exit_code.is_none() && !r.running) {
            rec.exit_code = Some(126);
            let _ = write_record(engine, rec);
        }
        Err(e)
    };
    let spec = match process_spec(engine, &rec, false) {
        Ok(s) => s,
        Err(e) => return fail(&mut rec, e),
    };
    let dir = exec_dir(engine, &rec.container_id);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        detached::process_file(&dir, &rec.id),
        serde_json::to_vec(&spec).unwrap_or_default(),
    )?;
    let report = std::env::current_exe()
        .map_err(EngineError::from)
        .and_then(|me| {
            let paths = engine.paths();
            let args: [&std::ffi::OsStr; 10] = [
                "internal".as_ref(),
                "exec-wait".as_ref(),
                "--data-root".as_ref(),
                paths.data_root.as_os_str(),
                "--run-root".as_ref(),
                paths.run_root.as_os_str(),
                "--runtime".as_ref(),
                engine.config().runtime.as_ref(),
                rec.container_id.as_ref(),
                rec.id.as_ref(),
            ];
            crate::monitor::launch::spawn_detached(&me, &args, detached::REPORT_TIMEOUT)
                .map_err(|e| EngineError::internal(format!("starting the exec supervisor: {e}")))
        });
    let line = match report {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(detached::process_file(&dir, &rec.id));
            return fail(&mut rec, e);
        }
    };
    match detached::Report::parse(&line) {
        Some(detached::Report::Started { .. }) => Ok(()),
        Some(detached::Report::Refused { error }) => Err(start_error(&error)),
        None => {
            let _ = std::fs::remove_file(detached::process_file(&dir, &rec.id));
            fail(
                &mut rec,
                EngineError::internal(format!("the exec supervisor did not start: {line:?}")),
            )
        }
    }
}

/// moby's classification of a failed exec start: a command that cannot be run is the
/// caller's (400), anything else ours; the text is the runtime's, as containerd wraps it.
fn start_error(msg: &str) -> EngineError {
    let text = format!("OCI runtime exec failed: {msg}: unknown");
    let lower = msg.to_ascii_lowercase();
    let user = [
        "permission denied",
        "is a directory",
        "not a directory",
        "executable file not found",
        "no such file or directory",
    ];
    if user.iter().any(|u| lower.contains(u)) {
        EngineError::invalid(text)
    } else {
        EngineError::internal(text)
    }
}

/// Run a claimed exec with `runc exec`. `tty` is the create body's `Tty`.
pub fn spawn(engine: &Engine, mut rec: ExecRecord, mode: Mode) -> Result<Session> {
    let tty = mode == Mode::Tty;
    let spec = match process_spec(engine, &rec, tty) {
        Ok(s) => s,
        Err(e) => {
            rec.exit_code = Some(126);
            let _ = write_record(engine, &rec);
            return Err(e);
        }
    };
    let dir = exec_dir(engine, &rec.container_id);
    std::fs::create_dir_all(&dir)?;
    let process_file = dir.join(format!(".{}.process.json", rec.id));
    std::fs::write(&process_file, serde_json::to_vec(&spec).unwrap_or_default())?;

    let log_file = dir.join(format!(".{}.log", rec.id));
    let mut cmd = Command::new(&engine.config().runtime);
    cmd.arg("--root")
        .arg(engine.paths().runtime_root())
        .arg("--log")
        .arg(&log_file)
        .arg("--log-format")
        .arg("json")
        .arg("exec")
        .arg("--process")
        .arg(&process_file)
        .arg(&rec.container_id)
        .process_group(0);
    let mut pty: Option<(Arc<File>, OwnedFd)> = None;
    match mode {
        Mode::Pipes { stdin } => {
            cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        Mode::Tty => {
            let p = nix::pty::openpty(None, None)
                .map_err(|e| EngineError::internal(format!("openpty: {e}")))?;
            if let Some([h, w]) = rec.extra.console_size {
                set_winsize(p.master.as_raw_fd(), h, w);
            } else {
                set_winsize(p.master.as_raw_fd(), 24, 80);
            }
            // Raw from the start: runc makes it raw too, but only once it runs, and input that
            // arrives earlier would be echoed twice.
            if let Ok(mut t) = nix::sys::termios::tcgetattr(&p.slave) {
                nix::sys::termios::cfmakeraw(&mut t);
                let _ =
                    nix::sys::termios::tcsetattr(&p.slave, nix::sys::termios::SetArg::TCSANOW, &t);
            }
            let _ = nix::fcntl::fcntl(
                &p.master,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            cmd.stdin(Stdio::from(p.slave.try_clone()?))
                .stdout(Stdio::from(p.slave.try_clone()?))
                .stderr(Stdio::from(p.slave.try_clone()?));
            pty = Some((Arc::new(File::from(p.master)), p.slave));
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&process_file);
            rec.exit_code = Some(126);
            let _ = write_record(engine, &rec);
            return Err(EngineError::internal(format!(
                "running {}: {e}",
                engine.config().runtime
            )));
        }
    };
    // Our copies of the pty's slave end go, so reads of the master end when runc is done.
    let pty = pty.map(|(master, slave)| {
        drop(slave);
        master
    });
    rec.running = true;
    rec.pid = child.id() as i64;
    rec.extra.waiter = ProcRef::me();
    rec.extra.process = ProcRef::of(child.id() as i32);
    let _ = write_record(engine, &rec);
    let mut extra = Map::new();
    extra.insert("execID".into(), json!(rec.id));
    event(
        engine,
        &rec.container_id,
        &format!("exec_start: {}", rec.command()),
        extra,
    );

    let (out_tx, out_rx) = mpsc::channel(16);
    let (done_tx, done_rx) = oneshot::channel();
    let mut readers = Vec::new();
    let mut input: Option<Box<dyn Write + Send>> = None;
    let mut control: Option<(PathBuf, Arc<AtomicBool>)> = None;
    if let Some(stdout) = child.stdout.take() {
        let tx = out_tx.clone();
        readers.push(std::thread::spawn(move || reader(stdout, 1, tx)));
    }
    if let Some(stderr) = child.stderr.take() {
        let tx = out_tx.clone();
        readers.push(std::thread::spawn(move || reader(stderr, 2, tx)));
    }
    if let Some(stdin) = child.stdin.take() {
        input = Some(Box::new(stdin));
    }
    if let Some(master) = pty {
        let m = master.try_clone()?;
        let tx = out_tx.clone();
        readers.push(std::thread::spawn(move || reader(m, 1, tx)));
        input = Some(Box::new(master.try_clone()?));
        let sock = control_socket(engine, &rec.container_id, &rec.id);
        let _ = std::fs::remove_file(&sock);
        if let Ok(listener) = UnixListener::bind(&sock) {
            let stop = Arc::new(AtomicBool::new(false));
            let runc = Arc::new(AtomicI32::new(child.id() as i32));
            let s = stop.clone();
            std::thread::spawn(move || control_loop(listener, master, runc, s));
            control = Some((sock, stop));
        }
    }
    drop(out_tx);
    let engine = engine.clone();
    std::thread::spawn(move || {
        let status = child.wait();
        let code = match status {
            Ok(s) => s
                .code()
                .map(i64::from)
                .or_else(|| {
                    std::os::unix::process::ExitStatusExt::signal(&s).map(|n| 128 + n as i64)
                })
                .unwrap_or(-1),
            Err(_) => -1,
        };
        if let Some((sock, stop)) = control {
            stop.store(true, Ordering::SeqCst);
            let _ = UnixStream::connect(&sock);
            let _ = std::fs::remove_file(&sock);
        }
        for r in readers {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&process_file);
        // runc's own failure (the process never started) is Docker's 126.
        let code = if code == 255 && runtime_error(&log_file).is_some() {
            126
        } else {
            code
        };
        let _ = std::fs::remove_file(&log_file);
        finish(&engine, &rec.container_id, &rec.id, code);
        let _ = done_tx.send(code);
    });
    Ok(Session {
        input,
        output: out_rx,
        done: done_rx,
    })
}

/// The runtime's last error message in its json log, if it logged one.
fn runtime_error(log_file: &std::path::Path) -> Option<String> {
    let log = std::fs::read_to_string(log_file).ok()?;
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("level").and_then(Value::as_str) == Some("error"))
        .filter_map(|v| v.get("msg").and_then(Value::as_str).map(String::from))
        .next_back()
}

/// Record the exit (atomically, in place) and log `exec_die`.
fn finish(engine: &Engine, cid: &str, eid: &str, code: i64) {
    let path = record_path(engine, cid, eid);
    if let Some(mut rec) = read_record(&path) {
        rec.running = false;
        rec.exit_code = Some(code);
        rec.pid = 0;
        rec.extra.finished_at = crate::util::time::now_nanos();
        let _ = replace_record(engine, &rec);
    }
    let mut extra = Map::new();
    extra.insert("execID".into(), json!(eid));
    extra.insert("exitCode".into(), json!(code.to_string()));
    event(engine, cid, "exec_die", extra);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_start_errors_are_classified_like_moby() {
        let e = start_error(
            "exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH",
        );
        assert_eq!(e.kind, crate::engine::ErrorKind::InvalidParameter);
        assert_eq!(
            e.message,
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown"
        );
        let e = start_error("exec: \"/etc\": permission denied");
        assert_eq!(e.kind, crate::engine::ErrorKind::InvalidParameter);
        assert_eq!(
            start_error("container not running").kind,
            crate::engine::ErrorKind::Internal
        );
    }

    #[test]
    fn start_time_from_stat() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start(stat), Some(987654));
        let zombie = "42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_start(zombie), None);
        assert_eq!(parse_start("garbage"), None);
        let me = ProcRef::me().unwrap();
        assert!(me.alive());
        assert!(
            !ProcRef {
                start: me.start + 1,
                ..me
            }
            .alive()
        );
    }

    fn record(dir: &std::path::Path, waiter: Option<ProcRef>, process: Option<ProcRef>) -> PathBuf {
        let rec = ExecRecord {
            id: "e1".into(),
            running: true,
            pid: 77,
            extra: Extra {
                waiter,
                process,
                ..Extra::default()
            },
            ..ExecRecord::default()
        };
        let path = dir.join("e1.json");
        std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
        path
    }

    #[test]
    fn running_records_settle_by_their_waiter_and_process() {
        let dir = tempfile::tempdir().unwrap();
        let me = ProcRef::me();
        let gone = Some(ProcRef {
            pid: i32::MAX - 1,
            start: 1,
        });
        // The waiter lives: as recorded.
        let p = record(dir.path(), me, None);
        let r = settle(&p, read_record(&p).unwrap());
        assert!(r.running && r.exit_code.is_none());
        // Waiter gone, process alive: still running.
        let p = record(dir.path(), gone, me);
        assert!(settle(&p, read_record(&p).unwrap()).running);
        // Both gone: exited, code unknown.
        let p = record(dir.path(), gone, gone);
        let r = settle(&p, read_record(&p).unwrap());
        assert_eq!((r.running, r.exit_code, r.pid), (false, Some(255), 0));
        // The waiter recorded the exit before it went: that wins.
        let stale = read_record(&p).unwrap();
        let mut done = stale.clone();
        done.running = false;
        done.exit_code = Some(7);
        std::fs::write(&p, serde_json::to_vec(&done).unwrap()).unwrap();
        assert_eq!(settle(&p, stale).exit_code, Some(7));
    }
}
