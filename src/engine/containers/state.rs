//! A container's state: the store's last record, refreshed from the monitor's `state.json`
//! while a monitor owns the container. The monitor's files are the truth while it lives; when
//! it is gone without recording an exit, the kernel is asked.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Paths;
use crate::monitor::health::Health;
use crate::monitor::{MonitorState, Status as MonitorStatus};
use crate::util::time::rfc3339_nano;

/// Docker's container statuses (`State.Status`); `paused` is kept as a flag on a running
/// container, as the monitor knows nothing of freezing.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
        }
    }
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store keeps (and the API shows) about a container's life.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    pub status: ContainerStatus,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub oom_killed: bool,
    pub restart_count: i64,
    /// How many times the container exited under its current monitor (for `next-exit` waits).
    pub exits: i64,
    pub paused: bool,
    /// The health checks' state, once a container with a health check has started (the
    /// monitor's; kept here for when the monitor is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl State {
    pub fn created() -> State {
        State {
            status: ContainerStatus::Created,
            ..State::default()
        }
    }

    pub fn parse(text: &str) -> State {
        serde_json::from_str(text).unwrap_or_else(|_| State::created())
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.status,
            ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
        )
    }

    /// The `health` filter's and `docker ps`'s view: `none` without health checks.
    pub fn health_status(&self) -> &'static str {
        self.health.as_ref().map_or("none", |h| h.status.as_str())
    }

    /// `State` as `docker inspect` shows it.
    pub fn inspect_json(&self) -> Value {
        let time = |n: i64| {
            if n == 0 {
                "0001-01-01T00:00:00Z".to_string()
            } else {
                rfc3339_nano(n)
            }
        };
        let status = if self.paused && self.status == ContainerStatus::Running {
            "paused"
        } else {
            self.status.as_str()
        };
        let mut v = json!({
            "Status": status,
            "Running": self.status == ContainerStatus::Running,
            "Paused": self.paused && self.status == ContainerStatus::Running,
            "Restarting": self.status == ContainerStatus::Restarting,
            "OOMKilled": self.oom_killed,
            "Dead": self.status == ContainerStatus::Dead,
            "Pid": if self.status == ContainerStatus::Running { self.pid } else { 0 },
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": time(self.started_at),
            "FinishedAt": time(self.finished_at),
        });
        if let (Some(h), Some(m)) = (&self.health, v.as_object_mut()) {
            m.insert("Health".into(), health_json(h));
        }
        v
    }
}

/// Docker's `State.Health`: `{Status, FailingStreak, Log: [{Start, End, ExitCode, Output}]}`.
fn health_json(h: &Health) -> Value {
    let log: Vec<Value> = h
        .log
        .iter()
        .map(|r| {
            json!({
                "Start": rfc3339_nano(r.start),
                "End": rfc3339_nano(r.end),
                "ExitCode": r.exit_code,
                "Output": r.output,
            })
        })
        .collect();
    json!({
        "Status": h.status.as_str(),
        "FailingStreak": h.failing_streak,
        "Log": log,
    })
}

/// Is `pid` a live process (not a zombie)?
pub fn alive(pid: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The state now: the stored one, refreshed from the monitor's file where there is one.
pub fn current(paths: &Paths, id: &str, stored: &State) -> State {
    let run = paths.container_run_dir(id);
    let Some(mon) = read_monitor_state(&run) else {
        // No monitor file: a container recorded as running has lost its monitor and run folder
        // (a reboot, or the run root was wiped).
        if stored.is_running() {
            return lost(
                stored,
                "container state was lost (the run root was cleared)",
            );
        }
        return stored.clone();
    };
    let mut s = stored.clone();
    s.pid = i64::from(mon.pid);
    s.exit_code = i64::from(mon.exit_code);
    s.started_at = mon.started_at;
    s.finished_at = mon.finished_at;
    s.oom_killed = mon.oom_killed;
    s.restart_count = i64::from(mon.restart_count);
    s.exits = i64::from(mon.exits);
    s.error = mon.error.clone();
    // A monitor without health checks leaves the stored value (none) alone.
    if let Some(h) = mon.health.clone() {
        s.health = Some(h);
    }
    let status = match mon.status {
        MonitorStatus::Running => ContainerStatus::Running,
        MonitorStatus::Restarting => ContainerStatus::Restarting,
        MonitorStatus::Exited => ContainerStatus::Exited,
    };
    let monitor_pid = i64::from(mon.monitor_pid);
    s.status = status;
    // A start that failed before the process ran: moby's StateString says "created" while
    // StartedAt is zero, and a container that ran before keeps its last StartedAt.
    if status == ContainerStatus::Exited && s.started_at == 0 {
        if stored.started_at > 0 {
            s.started_at = stored.started_at;
        } else {
            s.status = ContainerStatus::Created;
        }
    }
    // Paused means a running process is frozen; an exit ends it.
    if status != ContainerStatus::Running {
        s.paused = false;
    }
    if status != ContainerStatus::Exited && !alive(monitor_pid) {
        // The monitor was killed: tell the truth about the process it watched.
        if status == ContainerStatus::Running && alive(s.pid) {
            return s;
        }
        return lost(&s, "container monitor exited unexpectedly");
    }
    s
}

fn lost(stored: &State, why: &str) -> State {
    let mut s = stored.clone();
    s.status = ContainerStatus::Exited;
    // Nothing checks it any more.
    if let Some(h) = s.health.as_mut() {
        h.stop();
    }
    s.exit_code = 255;
    s.error = why.to_string();
    s.paused = false;
    if s.finished_at == 0 {
        s.finished_at = crate::util::time::now_nanos();
    }
    s
}

fn read_monitor_state(run: &Path) -> Option<MonitorState> {
    let text = std::fs::read_to_string(run.join(crate::monitor::STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_file_wins_and_lost_monitors_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"), dir.path().join("run"));
        let id = "a".repeat(64);
        let run = paths.container_run_dir(&id);
        std::fs::create_dir_all(&run).unwrap();
        let stored = State {
            status: ContainerStatus::Running,
            ..State::default()
        };
        // No file at all: the run root was wiped.
        std::fs::remove_dir_all(&run).unwrap();
        let s = current(&paths, &id, &stored);
        assert_eq!((s.status.as_str(), s.exit_code), ("exited", 255));
        std::fs::create_dir_all(&run).unwrap();
        let me = std::process::id() as i64;
        std::fs::write(
            run.join(crate::monitor::STATE_FILE),
            format!(r#"{{"status":"exited","pid":0,"exit_code":3,"exits":1,"started_at":5,"monitor_pid":{me}}}"#),
        )
        .unwrap();
        let s = current(&paths, &id, &stored);
        assert_eq!((s.status.as_str(), s.exit_code, s.exits), ("exited", 3, 1));
        // A start that failed before the process ran is still "created", as moby says.
        std::fs::write(
            run.join(crate::monitor::STATE_FILE),
            format!(
                r#"{{"status":"exited","pid":0,"exit_code":127,"exits":0,"monitor_pid":{me}}}"#
            ),
        )
        .unwrap();
        let s = current(&paths, &id, &stored);
        assert_eq!((s.status.as_str(), s.exit_code), ("created", 127));
        // "running" with a dead monitor and a dead process.
        std::fs::write(
            run.join(crate::monitor::STATE_FILE),
            r#"{"status":"running","pid":999999999,"monitor_pid":999999998}"#,
        )
        .unwrap();
        let s = current(&paths, &id, &stored);
        assert_eq!(s.status, ContainerStatus::Exited);
        assert!(s.error.contains("monitor"));
    }

    #[test]
    fn health_comes_from_the_monitor_and_shows_in_inspect() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"), dir.path().join("run"));
        let id = "b".repeat(64);
        let run = paths.container_run_dir(&id);
        std::fs::create_dir_all(&run).unwrap();
        let me = std::process::id() as i64;
        std::fs::write(
            run.join(crate::monitor::STATE_FILE),
            format!(
                r#"{{"status":"running","pid":{me},"monitor_pid":{me},"started_at":1,
                   "health":{{"status":"unhealthy","failing_streak":2,"log":[
                   {{"start":1500000000,"end":2000000000,"exit_code":1,"output":"no\n"}}]}}}}"#
            ),
        )
        .unwrap();
        let s = current(&paths, &id, &State::created());
        assert_eq!(s.health_status(), "unhealthy");
        let v = s.inspect_json();
        assert_eq!(
            v["Health"],
            json!({"Status": "unhealthy", "FailingStreak": 2, "Log": [{
                "Start": "1970-01-01T00:00:01.5Z", "End": "1970-01-01T00:00:02Z",
                "ExitCode": 1, "Output": "no\n"}]})
        );
        // It round-trips through the store's text.
        assert_eq!(State::parse(&s.to_text()), s);
        // Without health checks there is no Health at all.
        assert!(State::created().inspect_json().get("Health").is_none());
        assert_eq!(State::created().health_status(), "none");
    }

    #[test]
    fn statuses_read_and_write_as_docker_names_them() {
        use ContainerStatus::*;
        for st in [Created, Running, Paused, Restarting, Removing, Exited, Dead] {
            let text = serde_json::to_string(&st).unwrap();
            assert_eq!(text, format!("\"{st}\""));
            assert_eq!(serde_json::from_str::<ContainerStatus>(&text).unwrap(), st);
        }
    }
}
