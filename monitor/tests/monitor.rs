//! The per-container monitor against the real runc, with a busybox bundle built from the host's
//! busybox-static. Needs root, `/usr/sbin/runc` (or `runc` in PATH) and `/bin/busybox`; skips
//! (passes with a note) otherwise.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_monitor::launch::{self, MonitorError};
use berth_monitor::{MonitorState, Request, Status};
use serde_json::{Value, json};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "stty", "sleep", "true", "false", "kill", "ls", "seq", "head", "tr",
];

fn runc() -> Option<&'static str> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || runc().is_none() || !Path::new(BUSYBOX).exists() {
        eprintln!("skipped: needs root, runc and {BUSYBOX}");
        return true;
    }
    false
}

fn monitor_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth-monitor"))
}

fn new_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:032x}{:024x}{:08x}", nanos, std::process::id(), n)
}

/// One container: bundle, run dir, runtime root in a temp dir; torn down on drop even when the
/// test failed (runc delete, monitor killed).
struct Fixture {
    dir: tempfile::TempDir,
    id: String,
    run: PathBuf,
    bundle: PathBuf,
    runtime_root: PathBuf,
}

#[derive(Clone)]
struct Opts {
    args: Vec<String>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    restart: Value,
    event_command: Vec<String>,
    log_driver: &'static str,
}

impl Opts {
    fn new(args: &[&str]) -> Opts {
        Opts {
            args: args.iter().map(|s| s.to_string()).collect(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            restart: json!({"name": "no", "max_retries": 0}),
            event_command: Vec::new(),
            log_driver: "json-file",
        }
    }

    fn sh(script: &str) -> Opts {
        Opts::new(&["sh", "-c", script])
    }
}

impl Fixture {
    fn new(opts: &Opts) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("bm")
            .tempdir_in("/tmp")
            .unwrap();
        let id = new_id();
        let run = dir.path().join(&id);
        let bundle = dir.path().join("bundle");
        let runtime_root = dir.path().join("runc");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
        std::fs::create_dir_all(&runtime_root).unwrap();
        for d in ["proc", "dev", "tmp"] {
            std::fs::create_dir_all(bundle.join("rootfs").join(d)).unwrap();
        }
        let bb = bundle.join("rootfs/bin/busybox");
        if std::fs::hard_link(BUSYBOX, &bb).is_err() {
            std::fs::copy(BUSYBOX, &bb).unwrap();
        }
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin").join(a)).unwrap();
        }
        let f = Fixture {
            dir,
            id,
            run,
            bundle,
            runtime_root,
        };
        f.write_spec(opts);
        f.write_config(opts);
        f
    }

    fn write_spec(&self, o: &Opts) {
        let caps = json!([
            "CAP_CHOWN",
            "CAP_KILL",
            "CAP_SETUID",
            "CAP_SETGID",
            "CAP_DAC_OVERRIDE"
        ]);
        let spec = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": o.tty,
                "user": {"uid": 0, "gid": 0},
                "args": o.args,
                "env": ["PATH=/bin", "TERM=xterm"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "monitor-test",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}
            ],
            "linux": {
                "cgroupsPath": format!("/berth-test/{}", self.id),
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
            }
        });
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
    }

    fn write_config(&self, o: &Opts) {
        let cfg = json!({
            "id": self.id,
            "runtime": runc().unwrap(),
            "runtime_root": self.runtime_root,
            "bundle": self.bundle,
            "log": {"driver": o.log_driver, "path": self.log_path(), "max_size": 0, "max_file": 1},
            "tty": o.tty,
            "open_stdin": o.open_stdin,
            "stdin_once": o.stdin_once,
            "restart": o.restart,
            "event_command": o.event_command,
        });
        std::fs::write(self.run.join("monitor.json"), cfg.to_string()).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}-json.log", self.id))
    }

    fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn spawn(&self) -> Result<launch::StartReport, MonitorError> {
        launch::spawn(&self.run, monitor_bin())
    }

    fn state(&self) -> Option<MonitorState> {
        MonitorState::load(&self.run).ok()
    }

    fn diag(&self) -> String {
        std::fs::read_to_string(self.run.join("monitor.log")).unwrap_or_default()
    }

    /// Wait until the monitor ended for good (its pid file removed) and return the final state.
    fn wait_ended(&self, timeout: Duration) -> MonitorState {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.state()
                && s.status == Status::Exited
                && !self.run.join("monitor.pid").exists()
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "monitor did not end: state {:?}, diag {}",
                self.state(),
                self.diag()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn socket(&self) -> PathBuf {
        self.run.join("monitor.sock")
    }

    /// Connect to the monitor socket once it exists (the monitor binds it before `create`).
    fn connect(&self, req: &Request) -> UnixStream {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = UnixStream::connect(self.socket()) {
                s.write_all(req.to_line().as_bytes()).unwrap();
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no monitor socket: {}",
                self.diag()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn announce_attach(&self, name: &str) {
        let d = self.run.join("attach-pending");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), b"").unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(self.run.join("monitor.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            // SAFETY: kill with a pid read from the monitor's own pid file.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = Command::new(runc().unwrap_or("runc"))
            .arg("--root")
            .arg(&self.runtime_root)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for h in [
            "memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "systemd",
            "unified",
        ] {
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}/berth-test/{}", self.id));
            // Shared by the tests; only the last one out succeeds.
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{h}/berth-test"));
        }
    }
}

/// Read Docker frames until EOF: (stream, payload) pairs.
fn read_frames(s: &mut UnixStream) -> Vec<(u8, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 8];
        match s.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return out,
            Err(e) => panic!("reading frames: {e}; got so far {out:?}"),
        }
        let (stream, len) = berth_monitor::proto::parse_frame_header(&h);
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        out.push((stream, p));
    }
}

fn joined(frames: &[(u8, Vec<u8>)], stream: u8) -> String {
    let b: Vec<u8> = frames
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, p)| p.clone())
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

fn proc_status_field(pid: i32, field: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

#[test]
fn echo_ends_exited_zero_with_both_streams_logged() {
    if skip() {
        return;
    }
    let f = Fixture::new(&Opts::sh("echo hello; echo err >&2"));
    let r = f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    assert!(r.pid > 0 && r.monitor_pid > 0, "{r:?}");
    let s = f.wait_ended(Duration::from_secs(20));
    assert_eq!(s.exit_code, 0);
    assert_eq!(s.exits, 1);
    assert_eq!(s.restart_count, 0);
    assert_eq!(s.pid, 0);
    assert!(!s.oom_killed);
    assert!(s.finished_at >= s.started_at && s.started_at > 0, "{s:?}");
    assert_eq!(s.monitor_pid, r.monitor_pid);
    let lines = f.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let find = |stream: &str| {
        lines
            .iter()
            .find(|l| l["stream"] == stream)
            .unwrap_or_else(|| panic!("no {stream} in {lines:?}"))
    };
    assert_eq!(find("stdout")["log"], "hello\n");
    assert_eq!(find("stderr")["log"], "err\n");
    let t = find("stdout")["time"].as_str().unwrap();
    assert!(t.ends_with('Z') && t.len() > 20, "{t}");
    assert!(!f.socket().exists());
    assert!(!f.run.join("console.sock").exists());
    assert!(f.run.join("state.json").exists());
    // The runtime forgot the container.
    let out = Command::new(runc().unwrap())
        .arg("--root")
        .arg(&f.runtime_root)
        .args(["state", &f.id])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn exit_code_is_recorded() {
    if skip() {
        return;
    }
    let mut o = Opts::sh("exit 3");
    o.log_driver = "none";
    let f = Fixture::new(&o);
    f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    let s = f.wait_ended(Duration::from_secs(20));
    assert_eq!(s.exit_code, 3);
    assert!(!f.log_path().exists());
}

#[test]
fn runtime_error_is_reported_as_is() {
    if skip() {
        return;
    }
    let f = Fixture::new(&Opts::new(&["nope"]));
    match f.spawn() {
        Err(MonitorError::Runtime(m)) => {
            assert!(m.contains("executable file not found"), "{m}");
            assert!(m.contains("\"nope\""), "{m}");
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
    let s = f.wait_ended(Duration::from_secs(10));
    assert!(s.error.contains("executable file not found"), "{s:?}");
    assert_eq!(s.exit_code, 127);
    assert_eq!(s.exits, 0);
}

#[test]
fn announced_attach_client_sees_the_first_output() {
    if skip() {
        return;
    }
    let f = Fixture::new(&Opts::sh("echo out; echo err >&2; echo out2"));
    f.announce_attach("client-1");
    let (tx, rx) = std::sync::mpsc::channel();
    let run = f.run.clone();
    let spawner = std::thread::spawn(move || {
        let r = launch::spawn(&run, monitor_bin());
        tx.send(()).unwrap();
        r
    });
    let mut c = f.connect(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    let frames = read_frames(&mut c);
    rx.recv_timeout(Duration::from_secs(20)).unwrap();
    spawner.join().unwrap().unwrap();
    assert_eq!(joined(&frames, 1), "out\nout2\n", "{frames:?}");
    assert_eq!(joined(&frames, 2), "err\n", "{frames:?}");
    assert_eq!(f.wait_ended(Duration::from_secs(10)).exit_code, 0);
    assert!(
        std::fs::read_dir(f.run.join("attach-pending"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn stdin_once_half_close_ends_cat() {
    if skip() {
        return;
    }
    let mut o = Opts::new(&["cat"]);
    o.open_stdin = true;
    o.stdin_once = true;
    let f = Fixture::new(&o);
    f.announce_attach("c");
    let run = f.run.clone();
    let spawner = std::thread::spawn(move || launch::spawn(&run, monitor_bin()));
    let mut c = f.connect(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    c.write_all(b"ping\n").unwrap();
    c.write_all(b"pong\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let frames = read_frames(&mut c);
    spawner.join().unwrap().unwrap();
    assert_eq!(joined(&frames, 1), "ping\npong\n");
    let s = f.wait_ended(Duration::from_secs(10));
    assert_eq!(s.exit_code, 0);
    let logged: Vec<String> = f
        .log_lines()
        .iter()
        .map(|l| l["log"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, vec!["ping\n", "pong\n"]);
}

#[test]
fn tty_follows_resize() {
    if skip() {
        return;
    }
    let mut o = Opts::sh("read line; stty size; echo done $line");
    o.tty = true;
    o.open_stdin = true;
    let f = Fixture::new(&o);
    f.announce_attach("t");
    let run = f.run.clone();
    let spawner = std::thread::spawn(move || launch::spawn(&run, monitor_bin()));
    let mut c = f.connect(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    let r = spawner
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    assert!(r.pid > 0);
    let mut rs = f.connect(&Request::Resize {
        height: 33,
        width: 101,
    });
    let mut reply = String::new();
    rs.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "{\"ok\":true}\n");
    c.write_all(b"go\n").unwrap();
    let frames = read_frames(&mut c);
    assert!(frames.iter().all(|(s, _)| *s == 1), "{frames:?}");
    let out = joined(&frames, 1);
    assert!(out.contains("33 101\r\n"), "{out:?}");
    assert!(out.contains("done go\r\n"), "{out:?}");
    let s = f.wait_ended(Duration::from_secs(10));
    assert_eq!(s.exit_code, 0);
    let lines = f.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["log"] == "33 101\r\n" && l["stream"] == "stdout"),
        "{lines:?}"
    );
}

#[test]
fn on_failure_restarts_twice_and_runs_events() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("event.sh");
    let events = tmp.path().join("events.txt");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", events.display()),
    )
    .unwrap();
    let mut o = Opts::sh("echo run; exit 1");
    o.restart = json!({"name": "on-failure", "max_retries": 2});
    o.event_command = vec!["/bin/sh".into(), script.display().to_string(), "ev".into()];
    let f = Fixture::new(&o);
    f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    let s = f.wait_ended(Duration::from_secs(30));
    assert_eq!(s.restart_count, 2, "{s:?}");
    assert_eq!(s.exits, 3, "{s:?}");
    assert_eq!(s.exit_code, 1);
    assert_eq!(
        std::fs::read_to_string(&events).unwrap(),
        "ev died\nev restarted\nev died\nev restarted\nev died\n"
    );
    let runs = f.log_lines().iter().filter(|l| l["log"] == "run\n").count();
    assert_eq!(runs, 3);
}

#[test]
fn stop_requested_prevents_restart() {
    if skip() {
        return;
    }
    let mut o = Opts::new(&["sleep", "1000"]);
    o.restart = json!({"name": "always"});
    let f = Fixture::new(&o);
    let r = f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    std::fs::write(f.run.join("stop-requested"), b"").unwrap();
    // SAFETY: kill of the container's init, whose pid the monitor reported.
    assert_eq!(unsafe { libc::kill(r.pid, libc::SIGTERM) }, 0);
    // An init in a pid namespace ignores SIGTERM without a handler: make sure it goes.
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    unsafe {
        libc::kill(r.pid, libc::SIGKILL);
    }
    let s = f.wait_ended(Duration::from_secs(20));
    assert_eq!(s.exit_code, 137);
    assert_eq!(s.restart_count, 0);
    assert_eq!(s.exits, 1);
}

#[test]
fn kill_9_is_137_and_monitor_is_detached_and_small() {
    if skip() {
        return;
    }
    let f = Fixture::new(&Opts::new(&["sleep", "1000"]));
    let r = f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    let s = f.state().unwrap();
    assert_eq!(s.status, Status::Running);
    assert_eq!(s.pid, r.pid);
    // Double-forked: neither our child nor in our session.
    let ppid: i32 = proc_status_field(r.monitor_pid, "PPid:")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id() as i32);
    // SAFETY: getsid with a pid has no memory effects.
    let (sid, our_sid) = unsafe { (libc::getsid(r.monitor_pid), libc::getsid(0)) };
    // In a session of its own (from the intermediate child's setsid), but not its leader, so
    // it can never acquire a controlling terminal.
    assert_ne!(sid, our_sid);
    assert_ne!(sid, r.monitor_pid);
    // The container's init is the monitor's child (subreaper).
    let init_ppid: i32 = proc_status_field(r.pid, "PPid:").unwrap().parse().unwrap();
    assert_eq!(init_ppid, r.monitor_pid);
    // Its stdio is /dev/null and it holds nothing of ours: just the signalfd, the sockets, the log
    // and the container's pipes (the sync pipe is closed after the report).
    let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{}/fd", r.monitor_pid))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                target.display().to_string(),
            )
        })
        .collect();
    for (fd, target) in &fds {
        if ["0", "1", "2"].contains(&fd.as_str()) {
            assert_eq!(target, "/dev/null", "{fds:?}");
        }
    }
    assert!(fds.len() <= 9, "{fds:?}");
    let rss = proc_status_field(r.monitor_pid, "VmRSS:").unwrap();
    // A monitor runs per container: a debug build stays well under 16 MiB (release ≈ 1.2 MiB,
    // measured by bench/); more means something grew that every container pays for.
    let rss_kb: u64 = rss
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("VmRSS {rss:?}"));
    assert!(rss_kb > 0 && rss_kb < 16 * 1024, "monitor VmRSS {rss}");
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", r.monitor_pid)).unwrap();
    let detail = std::fs::read_to_string(format!("/proc/{}/status", r.monitor_pid)).unwrap();
    let rss_lines: Vec<&str> = detail
        .lines()
        .filter(|l| l.starts_with("Rss") || l.starts_with("VmRSS"))
        .collect();
    eprintln!("monitor {rss_lines:?}; cgroups:\n{cg}");
    // The state request answers the current state.
    let mut c = f.connect(&Request::State);
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let live: MonitorState = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(live.pid, r.pid);
    // A resize on a container without a tty is refused.
    let mut c = f.connect(&Request::Resize {
        height: 1,
        width: 1,
    });
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    assert!(text.contains("error"), "{text}");
    // SAFETY: kill of the container's init.
    assert_eq!(unsafe { libc::kill(r.pid, libc::SIGKILL) }, 0);
    let s = f.wait_ended(Duration::from_secs(20));
    assert_eq!(s.exit_code, 137);
    assert_eq!(s.exits, 1);
}

#[test]
fn monitor_ignores_sigterm() {
    if skip() {
        return;
    }
    let f = Fixture::new(&Opts::sh("sleep 1; echo bye"));
    let r = f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    // SAFETY: signals to the monitor whose pid it reported.
    unsafe {
        libc::kill(r.monitor_pid, libc::SIGTERM);
        libc::kill(r.monitor_pid, libc::SIGINT);
        libc::kill(r.monitor_pid, libc::SIGHUP);
    }
    let s = f.wait_ended(Duration::from_secs(20));
    assert_eq!(s.exit_code, 0);
    assert_eq!(f.log_lines().len(), 1);
}

#[test]
fn a_client_that_never_reads_does_not_block_the_container() {
    if skip() {
        return;
    }
    let f = Fixture::new(&Opts::new(&["seq", "1", "300000"]));
    f.announce_attach("lazy");
    let run = f.run.clone();
    let spawner = std::thread::spawn(move || launch::spawn(&run, monitor_bin()));
    // Attaches, then reads nothing until the container is long gone.
    let mut lazy = f.connect(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    spawner.join().unwrap().unwrap();
    let s = f.wait_ended(Duration::from_secs(30));
    assert_eq!(s.exit_code, 0);
    let lines = f.log_lines();
    assert_eq!(lines.len(), 300_000);
    assert_eq!(lines[299_999]["log"], "300000\n");
    // It was dropped (its buffer overflowed) or got everything; either way it reads EOF.
    let frames = read_frames(&mut lazy);
    let got = joined(&frames, 1);
    assert!(got.len() < 2_000_000, "{}", got.len());
}

#[test]
fn oom_kill_is_detected() {
    if skip() {
        return;
    }
    // A shell variable far over the memory limit: the kernel kills the shell.
    let mut o = Opts::sh("x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived");
    o.log_driver = "none";
    let f = Fixture::new(&o);
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(f.bundle.join("config.json")).unwrap()).unwrap();
    spec["linux"]["resources"] = json!({"memory": {"limit": 16 * 1024 * 1024}});
    std::fs::write(f.bundle.join("config.json"), spec.to_string()).unwrap();
    f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    let s = f.wait_ended(Duration::from_secs(30));
    assert!(s.oom_killed, "{s:?}");
    assert_eq!(s.exit_code, 137, "{s:?}");
}

#[test]
fn attach_client_that_removes_its_announcement_after_sending_sees_everything() {
    if skip() {
        return;
    }
    // The API's attach removes its pending file once its request is written.
    let f = Fixture::new(&Opts::sh("echo first; echo second"));
    f.announce_attach("api");
    let run = f.run.clone();
    let spawner = std::thread::spawn(move || launch::spawn(&run, monitor_bin()));
    let mut c = f.connect(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: false,
    });
    std::fs::remove_file(f.run.join("attach-pending/api")).unwrap();
    let frames = read_frames(&mut c);
    spawner.join().unwrap().unwrap();
    assert_eq!(joined(&frames, 1), "first\nsecond\n");
}

#[test]
fn failed_restarts_count_as_exits_with_the_runtime_error() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("event.sh");
    let events = tmp.path().join("events.txt");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", events.display()),
    )
    .unwrap();
    let mut o = Opts::sh("sleep 0.5; exit 1");
    o.restart = json!({"name": "on-failure", "max_retries": 2});
    o.event_command = vec!["/bin/sh".into(), script.display().to_string()];
    let f = Fixture::new(&o);
    f.spawn().unwrap_or_else(|e| panic!("{e}: {}", f.diag()));
    // From now on the bundle cannot start: every restart fails in `create`.
    let mut bad = o.clone();
    bad.args = vec!["nope".into()];
    f.write_spec(&bad);
    let s = f.wait_ended(Duration::from_secs(30));
    assert_eq!(s.exits, 3, "{s:?}");
    assert_eq!(s.restart_count, 2, "{s:?}");
    assert_eq!(s.exit_code, 127, "{s:?}");
    assert!(s.error.contains("executable file not found"), "{s:?}");
    assert_eq!(
        std::fs::read_to_string(&events).unwrap(),
        "died\ndied\ndied\n"
    );
}
