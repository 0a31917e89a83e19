//! Starting a monitor from the API process: double fork, clean descriptors and environment, sync
//! pipe on fd 3.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::sys;
pub use super::{MonitorError, StartReport};

/// How long [`spawn`] waits for the monitor's report.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables that belong to the API process's activation, never to a monitor.
const STRIPPED_ENV: &[&str] = &[
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "INVOCATION_ID",
];

/// Start `monitor_bin run_dir` as a detached monitor for the container whose `monitor.json` is in
/// `run_dir`, and wait until it reports: the container runs ([`StartReport`]) or the runtime
/// refused ([`MonitorError::Runtime`] with the runtime's message as is).
///
/// Safe to call from a multi-threaded process: everything the child needs is prepared before
/// `fork()`, and the child only makes async-signal-safe calls until `execve`.
pub fn spawn(run_dir: &Path, monitor_bin: &Path) -> Result<StartReport, MonitorError> {
    let line = spawn_detached(monitor_bin, &[run_dir.as_os_str()], REPORT_TIMEOUT)?;
    parse_report(&line, run_dir)
}

/// Start `bin args…` detached exactly as [`spawn`] starts a monitor (new session, double fork,
/// clean fds and environment, sync pipe on fd 3) and return the first line it writes to fd 3
/// before closing it (empty if it closed fd 3 without writing), waiting at most `timeout`.
/// Used for other long-lived helpers, e.g. the supervisor of a detached exec.
pub fn spawn_detached(
    bin: &Path,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<String, MonitorError> {
    let cstr = |b: &[u8], what: &str| {
        CString::new(b).map_err(|_| MonitorError::Config(format!("{what} contains a NUL byte")))
    };
    let bin = cstr(bin.as_os_str().as_bytes(), "program path")?;
    let mut argv_owned = vec![bin.clone()];
    for a in args {
        argv_owned.push(cstr(a.as_bytes(), "argument")?);
    }
    let mut envp_owned = Vec::new();
    for (k, v) in std::env::vars_os() {
        if STRIPPED_ENV.iter().any(|s| k.as_bytes() == s.as_bytes()) {
            continue;
        }
        let mut kv = k;
        kv.push("=");
        kv.push(v);
        if let Ok(c) = CString::new(kv.as_bytes()) {
            envp_owned.push(c);
        }
    }
    let mut argv: Vec<*const libc::c_char> = argv_owned.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envp_owned.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let dev_null = c"/dev/null";

    let (mut reader, writer) = sys::pipe().map_err(|e| MonitorError::io("pipe", e))?;
    let wfd = writer.as_raw_fd();

    // SAFETY: fork in a possibly multi-threaded process. The child runs only async-signal-safe
    // libc calls (setsid, fork, dup2, fcntl, open, close_range/close, sigprocmask, execve, _exit)
    // on data prepared above (argv, envp, paths), and never returns into Rust code.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(MonitorError::io("fork", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: see above; this branch ends in execve or _exit.
        unsafe { child_after_fork(wfd, dev_null.as_ptr(), bin.as_ptr(), &argv, &envp) }
    }
    drop(writer);
    // The intermediate child exits right after its fork; reap it so it leaves no zombie.
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child with a pointer to a local.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r >= 0 {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    read_report(&mut reader, timeout)
}

/// The forked child: new session, second fork, then in the grandchild fd 3 = sync pipe, 0/1/2 =
/// /dev/null, every other descriptor closed, clean signal mask, exec the monitor.
///
/// # Safety
/// Must only be called in a freshly forked child; the pointers must be valid C strings / NULL-
/// terminated arrays (they are: prepared by the parent before fork).
unsafe fn child_after_fork(
    wfd: libc::c_int,
    dev_null: *const libc::c_char,
    bin: *const libc::c_char,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    // SAFETY: every call below is async-signal-safe and gets valid arguments (see the caller).
    unsafe {
        libc::setsid();
        match libc::fork() {
            0 => {}
            -1 => libc::_exit(1),
            _ => libc::_exit(0),
        }
        // fd 3 = the pipe's write end, without close-on-exec.
        if wfd == 3 {
            libc::fcntl(3, libc::F_SETFD, 0);
        } else if libc::dup2(wfd, 3) < 0 {
            libc::_exit(1);
        }
        let null = libc::open(dev_null, libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                if null != fd {
                    libc::dup2(null, fd);
                }
            }
            if null > 3 {
                libc::close(null);
            }
        }
        if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
            // Older kernels: close them one by one.
            let mut max = libc::sysconf(libc::_SC_OPEN_MAX);
            if !(0..=1 << 20).contains(&max) {
                max = 1 << 20;
            }
            for fd in 4..max as libc::c_int {
                libc::close(fd);
            }
        }
        // The API process may have blocked signals in this thread; the monitor starts clean.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::execve(bin, argv.as_ptr(), envp.as_ptr());
        libc::_exit(127)
    }
}

/// Read the monitor's report line: everything until EOF (the monitor closes fd 3 after
/// reporting), at most `timeout`.
fn read_report(reader: &mut File, timeout: Duration) -> Result<String, MonitorError> {
    sys::set_nonblocking(reader).map_err(|e| MonitorError::io("sync pipe", e))?;
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // A report without EOF is still a report (the monitor closes fd 3 right after).
            if buf.contains(&b'\n') {
                break;
            }
            return Err(MonitorError::Timeout(timeout.as_secs()));
        }
        let mut pfd = [libc::pollfd {
            fd: reader.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        sys::poll(&mut pfd, left.as_millis().min(i32::MAX as u128) as i32 + 1)
            .map_err(|e| MonitorError::io("poll sync pipe", e))?;
        let mut chunk = [0u8; 4096];
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 1 << 20 {
                    return Err(MonitorError::Protocol("report too long".into()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(MonitorError::io("read sync pipe", e)),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn parse_report(line: &str, run_dir: &Path) -> Result<StartReport, MonitorError> {
    if line.trim().is_empty() {
        return Err(MonitorError::NoReport);
    }
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|_| MonitorError::Protocol(line.to_string()))?;
    if let Some(e) = v.get("error") {
        return Err(MonitorError::Runtime(
            e.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        ));
    }
    let pid = v
        .get("pid")
        .and_then(|p| p.as_i64())
        .ok_or_else(|| MonitorError::Protocol(line.to_string()))? as i32;
    let monitor_pid = v
        .get("monitor_pid")
        .and_then(|p| p.as_i64())
        .map(|p| p as i32)
        .or_else(|| {
            std::fs::read_to_string(run_dir.join(super::PID_FILE))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Ok(StartReport { pid, monitor_pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reports() {
        let d = Path::new("/nonexistent");
        assert_eq!(
            parse_report(r#"{"pid":42,"monitor_pid":7}"#, d).unwrap(),
            StartReport {
                pid: 42,
                monitor_pid: 7
            }
        );
        match parse_report(
            r#"{"error":"exec: \"nope\": executable file not found in $PATH"}"#,
            d,
        ) {
            Err(MonitorError::Runtime(m)) => {
                assert_eq!(m, "exec: \"nope\": executable file not found in $PATH")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_report("", d), Err(MonitorError::NoReport)));
        assert!(matches!(
            parse_report("garbage", d),
            Err(MonitorError::Protocol(_))
        ));
    }

    #[test]
    fn reads_report_until_eof_and_times_out() {
        use std::io::Write;
        let (mut r, mut w) = sys::pipe().unwrap();
        w.write_all(b"{\"pid\":1}\n").unwrap();
        drop(w);
        assert_eq!(
            read_report(&mut r, Duration::from_secs(1)).unwrap(),
            "{\"pid\":1}"
        );
        let (mut r, _w) = sys::pipe().unwrap();
        assert!(matches!(
            read_report(&mut r, Duration::from_millis(50)),
            Err(MonitorError::Timeout(_))
        ));
    }
}
