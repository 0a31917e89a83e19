//! The supervisor of a detached exec: `berth internal exec-wait <container> <exec>`, started by
//! [`super::start_detached`] through the monitor's launcher (new session, double fork, fds
//! closed, out of the API's cgroup), so it outlives every `berth serve`.
//!
//! It marks the record running with itself as the waiter, runs `runc exec -d --pid-file`
//! (stdio /dev/null) as a child subreaper, so the exec's process becomes its child once runc
//! exits, reports `{"pid":N}` or `{"error":"<runtime's message>"}` on fd 3, leaves the API's
//! cgroup, waits for the process, records the exit code and time atomically in the record and
//! logs `exec_die` — the way conmon supervises a podman exec session.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{
    ProcRef, event, exec_dir, finish, read_record, record_path, replace_record, runtime_error,
};
use crate::engine::Engine;

/// How long the API waits for the supervisor's report (the runtime's start included).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// The OCI process the API prepared for the exec.
pub fn process_file(dir: &Path, eid: &str) -> PathBuf {
    dir.join(format!(".{eid}.process.json"))
}

fn pid_file(dir: &Path, eid: &str) -> PathBuf {
    dir.join(format!(".{eid}.pid"))
}

fn log_file(dir: &Path, eid: &str) -> PathBuf {
    dir.join(format!(".{eid}.log"))
}

/// The supervisor's one line on fd 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The exec's process runs with this host pid.
    Started { pid: i32 },
    /// The runtime refused to start it; its message as is.
    Refused { error: String },
}

impl Report {
    pub fn parse(line: &str) -> Option<Report> {
        let v: Value = serde_json::from_str(line).ok()?;
        if let Some(e) = v.get("error") {
            let error = e
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| e.to_string());
            return Some(Report::Refused { error });
        }
        let pid = v.get("pid")?.as_i64()? as i32;
        Some(Report::Started { pid })
    }

    fn line(&self) -> String {
        let v = match self {
            Report::Started { pid } => json!({ "pid": pid }),
            Report::Refused { error } => json!({ "error": error }),
        };
        format!("{v}\n")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("no record for exec {0}")]
    NoRecord(String),
    #[error("running {runtime}: {source}")]
    Runtime {
        runtime: String,
        #[source]
        source: std::io::Error,
    },
}

/// Send the report and close fd 3 (the API reads until EOF).
fn send(fd3: &mut Option<File>, report: &Report) {
    if let Some(mut f) = fd3.take() {
        let _ = f.write_all(report.line().as_bytes());
    }
}

/// Supervise exec `eid` of container `cid` to its end; returns its exit code.
pub fn supervise(engine: &Engine, cid: &str, eid: &str) -> Result<i64, SuperviseError> {
    let mut fd3 = crate::monitor::sys::take_inherited_fd(3);
    // `runc exec -d` leaves the process to the nearest subreaper among its ancestors: us.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let dir = exec_dir(engine, cid);
    let Some(mut rec) = read_record(&record_path(engine, cid, eid)) else {
        let error = format!("No such exec instance: {eid}");
        send(&mut fd3, &Report::Refused { error });
        return Err(SuperviseError::NoRecord(eid.to_string()));
    };
    rec.running = true;
    rec.pid = 0;
    rec.extra.waiter = ProcRef::me();
    rec.extra.process = None;
    let _ = replace_record(engine, &rec);
    // moby logs exec_start whether or not the start succeeds; here it is written once the
    // client has its answer (opening the store costs milliseconds), still before exec_die.
    let start_action = format!("exec_start: {}", rec.command());
    let log_start = || {
        let mut extra = Map::new();
        extra.insert("execID".into(), json!(eid));
        event(engine, cid, &start_action, extra);
    };

    let (process, pids, log) = (
        process_file(&dir, eid),
        pid_file(&dir, eid),
        log_file(&dir, eid),
    );
    let runtime = &engine.config().runtime;
    let status = Command::new(runtime)
        .arg("--root")
        .arg(engine.paths().runtime_root())
        .arg("--log")
        .arg(&log)
        .arg("--log-format")
        .arg("json")
        .args(["exec", "-d", "--pid-file"])
        .arg(&pids)
        .arg("--process")
        .arg(&process)
        .arg(cid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_file(&process);
    let pid = match &status {
        Ok(s) if s.success() => std::fs::read_to_string(&pids)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok()),
        _ => None,
    };
    let _ = std::fs::remove_file(&pids);
    let refusal = runtime_error(&log);
    let _ = std::fs::remove_file(&log);
    let Some(pid) = pid else {
        // The process never ran: Docker's 126, and no exec_die.
        rec.running = false;
        rec.exit_code = Some(126);
        rec.extra.finished_at = crate::util::time::now_nanos();
        let _ = replace_record(engine, &rec);
        let error = match (status, refusal) {
            (_, Some(msg)) => msg,
            (Err(source), None) => {
                let e = SuperviseError::Runtime {
                    runtime: runtime.clone(),
                    source,
                };
                send(
                    &mut fd3,
                    &Report::Refused {
                        error: e.to_string(),
                    },
                );
                log_start();
                return Err(e);
            }
            (Ok(s), None) => format!("{runtime} exec failed ({s})"),
        };
        send(&mut fd3, &Report::Refused { error });
        log_start();
        return Ok(126);
    };
    rec.pid = pid as i64;
    rec.extra.process = ProcRef::of(pid);
    let _ = replace_record(engine, &rec);
    send(&mut fd3, &Report::Started { pid });
    log_start();
    // Out of the API's cgroup, like a monitor, but only now: moving a process between v1
    // cgroups takes milliseconds per hierarchy, and the client waits for the report. Until
    // here only the API's own exit could end us, and `KillMode=process` spares us.
    crate::monitor::cgroup::leave_caller_cgroup();

    let code = wait_for(pid, rec.extra.process);
    finish(engine, cid, eid, code);
    Ok(code)
}

/// Reap children until `pid` is reaped; its exit code, 128+signal when killed.
fn wait_for(pid: i32, proc_ref: Option<ProcRef>) -> i64 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a pointer to a local.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == pid {
            return decode(status);
        }
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
    }
    // Not our child after all (no subreaper support?): watch it; its exit code is unknown.
    while proc_ref.is_some_and(|p| p.alive()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    255
}

fn decode(status: libc::c_int) -> i64 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as i64
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status) as i64
    } else {
        255
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for r in [
            Report::Started { pid: 42 },
            Report::Refused {
                error: "exec: \"nosuch\": executable file not found in $PATH".into(),
            },
        ] {
            assert_eq!(Report::parse(r.line().trim_end()), Some(r));
        }
        assert_eq!(Report::parse(""), None);
        assert_eq!(Report::parse("{}"), None);
    }

    #[test]
    fn decodes_wait_status() {
        // Exit 7: (7 << 8); killed by SIGKILL: 9.
        assert_eq!(decode(7 << 8), 7);
        assert_eq!(decode(9), 137);
    }
}
