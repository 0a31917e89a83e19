//! Signals and waiting: kill, stop, wait. The monitor owns the container's process; these ask
//! the OCI runtime to signal it and watch the monitor's state file for the outcome.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Map, json};

use crate::store::containers::ContainerRow;

use super::super::{Engine, EngineError, Result};
use super::inspect::container_event;
use super::resolve;
use super::state::{ContainerStatus, State, current};

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number, as Docker accepts it.
pub fn signal_number(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(EngineError::invalid(format!("Invalid signal: {s}")));
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => {
            if let Some(off) = name
                .strip_prefix("RTMIN+")
                .and_then(|x| x.parse::<i32>().ok())
            {
                34 + off
            } else if let Some(off) = name
                .strip_prefix("RTMAX-")
                .and_then(|x| x.parse::<i32>().ok())
            {
                64 - off
            } else {
                return Err(EngineError::invalid(format!("Invalid signal: {s}")));
            }
        }
    };
    Ok(n)
}

fn state_of(engine: &Engine, row: &ContainerRow) -> State {
    let stored = engine
        .store()
        .and_then(|mut s| {
            s.read(|tx| {
                Ok::<_, EngineError>(
                    crate::store::containers::get(tx, &row.id)?
                        .map(|r| State::parse(&r.state))
                        .unwrap_or_default(),
                )
            })
        })
        .unwrap_or_else(|_| State::parse(&row.state));
    current(engine.paths(), &row.id, &stored)
}

/// Ask the runtime to deliver `sig` to the container's init.
pub fn runtime_kill(engine: &Engine, id: &str, sig: i32) -> Result<()> {
    let out = Command::new(&engine.config().runtime)
        .arg("--root")
        .arg(engine.paths().runtime_root())
        .args(["kill", id, &sig.to_string()])
        .output()
        .map_err(|e| EngineError::internal(format!("running {}: {e}", engine.config().runtime)))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // The process may have exited between our look and the signal.
    if err.contains("not running")
        || err.contains("does not exist")
        || err.contains("process already finished")
    {
        return Ok(());
    }
    Err(EngineError::internal(format!(
        "cannot kill container {id}: {err}"
    )))
}

/// The monitor must not apply the restart policy to an exit we asked for.
fn mark_stop_requested(engine: &Engine, id: &str) -> Result<()> {
    let run = engine.paths().container_run_dir(id);
    std::fs::create_dir_all(&run)?;
    std::fs::write(run.join(crate::monitor::STOP_REQUESTED_FILE), b"")?;
    Ok(())
}

/// Poll until the container is no longer running, up to `timeout`.
pub fn wait_stopped(engine: &Engine, row: &ContainerRow, timeout: Duration) -> Option<State> {
    // A timeout too large for the clock means no deadline (clients send `t=2^63-1`).
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let s = state_of(engine, row);
        if !s.is_running() {
            return Some(s);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A frozen process cannot die: after a SIGKILL, thaw it (Docker unpauses on kill too).
fn thaw(engine: &Engine, id: &str) {
    let _ = Command::new(&engine.config().runtime)
        .arg("--root")
        .arg(engine.paths().runtime_root())
        .args(["resume", id])
        .output();
}

/// SIGKILL (or another signal) and wait for the exit, for remove -f.
pub fn kill_and_wait(engine: &Engine, row: &ContainerRow, signal: &str) -> Result<()> {
    let sig = signal_number(signal)?;
    mark_stop_requested(engine, &row.id)?;
    runtime_kill(engine, &row.id, sig)?;
    if sig == 9 && state_of(engine, row).paused {
        thaw(engine, &row.id);
    }
    if sig != 9 || wait_stopped(engine, row, Duration::from_secs(10)).is_some() {
        return wait_or_fail(engine, row, sig, Duration::from_secs(30));
    }
    // moby's killProcessDirectly: still there 10 s after SIGKILL, so thaw it (a freezer we did
    // not set) and kill its process by PID, past the runtime.
    thaw(engine, &row.id);
    let pid = state_of(engine, row).pid;
    if pid > 0 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_or_fail(engine, row, sig, Duration::from_secs(20))
}

fn wait_or_fail(engine: &Engine, row: &ContainerRow, sig: i32, timeout: Duration) -> Result<()> {
    if wait_stopped(engine, row, timeout).is_none() {
        return Err(EngineError::internal(format!(
            "container {} did not exit after signal {sig}",
            row.id
        )));
    }
    Ok(())
}

/// `POST /containers/{id}/kill?signal=`.
pub fn kill(engine: &Engine, name: &str, signal: Option<&str>) -> Result<()> {
    let sig = signal_number(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let state = state_of(engine, &row);
    if !state.is_running() || state.status == ContainerStatus::Restarting && sig != 9 {
        return Err(EngineError::conflict(format!(
            "cannot kill container: {name}: container {} is not running",
            row.id
        )));
    }
    if state.paused && sig != 9 {
        return Err(EngineError::conflict(format!(
            "cannot kill container: {name}: container {} is paused. Unpause the container before stopping or killing",
            row.id
        )));
    }
    let mut extra = Map::new();
    extra.insert("signal".into(), json!(sig.to_string()));
    engine
        .store()?
        .write(|tx| container_event(tx, "kill", &row, extra))?;
    if matches!(sig, 9 | 15 | 2 | 3) {
        mark_stop_requested(engine, &row.id)?;
    }
    runtime_kill(engine, &row.id, sig)?;
    if sig == 9 && state.paused {
        thaw(engine, &row.id);
    }
    // SIGKILL returns once the container is gone, as Docker's does.
    if sig == 9 {
        wait_stopped(engine, &row, Duration::from_secs(30));
    }
    Ok(())
}

/// `POST /containers/{id}/stop?t=&signal=`; `Ok(false)` when it was not running (304).
pub fn stop(
    engine: &Engine,
    name: &str,
    timeout: Option<i64>,
    signal: Option<&str>,
) -> Result<bool> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let _lock = engine.lock_container(&row.id)?;
    let state = state_of(engine, &row);
    if !state.is_running() {
        return Ok(false);
    }
    let config = row.config();
    let stop_signal = signal
        .filter(|s| !s.is_empty())
        .map(String::from)
        .or_else(|| Some(config.stop_signal).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "SIGTERM".into());
    let sig = signal_number(&stop_signal)?;
    let timeout = timeout.or(config.stop_timeout).unwrap_or(10);
    mark_stop_requested(engine, &row.id)?;
    let mut extra = Map::new();
    extra.insert("signal".into(), json!(sig.to_string()));
    engine
        .store()?
        .write(|tx| container_event(tx, "kill", &row, extra))?;
    runtime_kill(engine, &row.id, sig)?;
    // Negative waits for ever, as Docker's `-t -1`.
    let grace = Duration::from_secs(u64::try_from(timeout).unwrap_or(u64::MAX));
    if wait_stopped(engine, &row, grace).is_none() {
        let mut extra = Map::new();
        extra.insert("signal".into(), json!("9"));
        engine
            .store()?
            .write(|tx| container_event(tx, "kill", &row, extra))?;
        runtime_kill(engine, &row.id, 9)?;
        if state.paused {
            thaw(engine, &row.id);
        }
        if wait_stopped(engine, &row, Duration::from_secs(30)).is_none() {
            return Err(EngineError::internal(format!(
                "container {} did not exit after SIGKILL",
                row.id
            )));
        }
    }
    engine
        .store()?
        .write(|tx| container_event(tx, "stop", &row, Map::new()))?;
    Ok(true)
}

/// `POST /containers/{id}/wait?condition=`: blocks until the condition is met or `gone()` says
/// the client left; returns (exit code, error text).
pub fn wait(
    engine: &Engine,
    name: &str,
    condition: &str,
    gone: &dyn Fn() -> bool,
) -> Result<(i64, String)> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let start = state_of(engine, &row);
    match condition {
        "" | "not-running" => {
            if !start.is_running() {
                return Ok((start.exit_code, start.error));
            }
        }
        "next-exit" | "removed" => {}
        other => {
            return Err(EngineError::invalid(format!(
                "invalid condition: \"{other}\""
            )));
        }
    }
    let first_exits = start.exits;
    let was_running = start.is_running();
    let mut last = start;
    loop {
        std::thread::sleep(Duration::from_millis(25));
        if gone() {
            return Err(EngineError::internal("the client went away"));
        }
        let found = engine
            .store()?
            .read(|tx| Ok::<_, EngineError>(crate::store::containers::get(tx, &row.id)?))?;
        let Some(now_row) = found else {
            // Removed (maybe before we saw it exit): its `die` event keeps the exit code.
            let died = crate::store::events::last_of(engine.store()?.conn(), &row.id, "die")?;
            let code = died
                .and_then(|e| {
                    e.attributes
                        .get("exitCode")
                        .and_then(|v| v.as_str())
                        .and_then(|c| c.parse::<i64>().ok())
                })
                .unwrap_or(last.exit_code);
            return Ok((code, last.error));
        };
        let s = current(engine.paths(), &row.id, &State::parse(&now_row.state));
        match condition {
            "removed" => {}
            "next-exit" => {
                // An exit counts even when a restart policy brought the container back
                // between two polls.
                if s.exits > first_exits {
                    return Ok((s.exit_code, s.error));
                }
                let exited_again = was_running && !s.is_running();
                if exited_again && s.status != ContainerStatus::Running {
                    return Ok((s.exit_code, s.error));
                }
            }
            _ => {
                // An exit counts even if a restart policy already brought the container
                // back between two polls (moby's wait returns at the exit, next-exit style).
                if !s.is_running() || s.exits > first_exits {
                    return Ok((s.exit_code, s.error));
                }
            }
        }
        last = s;
    }
}

/// `POST /containers/{id}/restart`: stop (signal, then SIGKILL after `timeout`), start, and
/// the `restart` event.
pub fn restart(
    engine: &Engine,
    name: &str,
    timeout: Option<i64>,
    signal: Option<&str>,
) -> Result<()> {
    stop(engine, name, timeout, signal)?;
    super::start::start(engine, name)?;
    super::record_event(engine, name, "restart")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_number("SIGTERM").unwrap(), 15);
        assert_eq!(signal_number("term").unwrap(), 15);
        assert_eq!(signal_number("9").unwrap(), 9);
        assert_eq!(signal_number("HUP").unwrap(), 1);
        assert_eq!(signal_number("SIGRTMIN+1").unwrap(), 35);
        assert_eq!(
            signal_number("NOPE").unwrap_err().message,
            "Invalid signal: NOPE"
        );
        assert!(signal_number("0").is_err());
    }
}
