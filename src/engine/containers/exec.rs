//! `docker exec`: exec records (JSON files in the container's run dir) and the processes run
//! with `runc exec`. No monitor is involved: the process is a child of the serving process, so
//! the exit code of a detached exec is lost if `berth serve` exits before the process does.
//!
//! A TTY exec runs `runc exec` in the foreground on a pty of ours (runc bridges it to the
//! container's pty and forwards window sizes on SIGWINCH), so its exit code is known too. The
//! session listens on a small control socket beside the record for resize requests.

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
use tokio::sync::{mpsc, oneshot};

use super::inspect::container_event;
use super::resolve;
use super::state::{State, current};
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
    let dir = exec_dir(engine, &rec.container_id);
    std::fs::create_dir_all(&dir)?;
    let path = record_path(engine, &rec.container_id, &rec.id);
    let tmp = dir.join(format!(".{}.{}", rec.id, crate::util::random_id()));
    std::fs::write(&tmp, serde_json::to_vec(rec).unwrap_or_default())?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
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
        if let Ok(bytes) = std::fs::read(&p)
            && let Ok(rec) = serde_json::from_slice::<ExecRecord>(&bytes)
        {
            return Ok(rec);
        }
    }
    Err(missing())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn flag(body: &Map<String, Value>, k: &str) -> bool {
    body.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn text(body: &Map<String, Value>, k: &str) -> String {
    body.get(k)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn running_container(
    engine: &Engine,
    name: &str,
) -> Result<crate::store::containers::ContainerRow> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let st = current(engine.paths(), &row.id, &State::parse(&row.state));
    if st.status == "restarting" {
        return Err(EngineError::conflict(format!(
            "container {} is restarting, wait until the container is running",
            row.id
        )));
    }
    if st.status != "running" {
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
pub fn create(engine: &Engine, name: &str, body: &Map<String, Value>) -> Result<String> {
    let row = running_container(engine, name)?;
    let cmd = strings(body.get("Cmd"));
    if cmd.is_empty() {
        return Err(EngineError::invalid("No exec command specified"));
    }
    let console_size = body
        .get("ConsoleSize")
        .and_then(Value::as_array)
        .and_then(|a| {
            let h = a.first()?.as_u64()? as u32;
            let w = a.get(1)?.as_u64()? as u32;
            (h > 0 && w > 0).then_some([h, w])
        });
    let rec = ExecRecord {
        id: crate::util::random_id(),
        running: false,
        exit_code: None,
        process_config: ProcessConfig {
            tty: flag(body, "Tty"),
            entrypoint: cmd[0].clone(),
            arguments: cmd[1..].to_vec(),
            privileged: flag(body, "Privileged"),
            user: text(body, "User"),
        },
        open_stdin: flag(body, "AttachStdin"),
        open_stderr: flag(body, "AttachStderr"),
        open_stdout: flag(body, "AttachStdout"),
        can_remove: false,
        container_id: row.id.clone(),
        detach_keys: text(body, "DetachKeys"),
        pid: 0,
        extra: Extra {
            env: strings(body.get("Env")),
            working_dir: text(body, "WorkingDir"),
            started: false,
            console_size,
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
fn process_spec(engine: &Engine, rec: &ExecRecord, tty: bool) -> Result<Value> {
    let bundle = engine.paths().container_dir(&rec.container_id);
    let spec: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json"))?)
        .map_err(|e| EngineError::internal(format!("reading the container's spec: {e}")))?;
    let mut p = spec
        .get("process")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut args = vec![rec.process_config.entrypoint.clone()];
    args.extend(rec.process_config.arguments.iter().cloned());
    p.insert("args".into(), json!(args));
    let mut env = strings(p.get("env"));
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    merge_env(&mut env, &rec.extra.env);
    p.insert("env".into(), json!(env));
    if !rec.extra.working_dir.is_empty() {
        p.insert("cwd".into(), json!(rec.extra.working_dir));
    }
    if !rec.process_config.user.is_empty() {
        let rootfs = bundle.join("merged");
        let (uid, gid, sgids) =
            crate::runtime::resolve_user(&rootfs, &rec.process_config.user, &[])
                .map_err(|e| EngineError::internal(e.to_string()))?;
        let mut user = Map::new();
        user.insert("uid".into(), json!(uid));
        user.insert("gid".into(), json!(gid));
        if !sgids.is_empty() {
            user.insert("additionalGids".into(), json!(sgids));
        }
        p.insert("user".into(), Value::Object(user));
    }
    p.insert("terminal".into(), json!(tty));
    p.remove("consoleSize");
    if tty && let Some([h, w]) = rec.extra.console_size {
        p.insert("consoleSize".into(), json!({"height": h, "width": w}));
    }
    if rec.process_config.privileged {
        let all = json!(crate::runtime::HostInfo::get().bounding_caps);
        p.insert(
            "capabilities".into(),
            json!({"bounding": all, "effective": all, "permitted": all}),
        );
    }
    Ok(Value::Object(p))
}

/// How the exec's stdio is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// stdio on /dev/null; nobody listens.
    Detached,
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
        Mode::Detached => {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
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
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        let _ = std::fs::remove_file(&log_file);
        let code = if code == 255 && log.contains("\"level\":\"error\"") {
            126
        } else {
            code
        };
        finish(&engine, &rec.container_id, &rec.id, code);
        let _ = done_tx.send(code);
    });
    Ok(Session {
        input,
        output: out_rx,
        done: done_rx,
    })
}

fn finish(engine: &Engine, cid: &str, eid: &str, code: i64) {
    let path = record_path(engine, cid, eid);
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(mut rec) = serde_json::from_slice::<ExecRecord>(&bytes)
    {
        rec.running = false;
        rec.exit_code = Some(code);
        rec.pid = 0;
        let _ = write_record(engine, &rec);
    }
    let mut extra = Map::new();
    extra.insert("execID".into(), json!(eid));
    extra.insert("exitCode".into(), json!(code.to_string()));
    event(engine, cid, "exec_die", extra);
}
