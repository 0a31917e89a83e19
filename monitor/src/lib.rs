//! The per-container monitor ("conmon" of berth): one small, single-threaded process per running
//! container that outlives every `berth serve`. It holds the container's stdio (pipes or a pty),
//! writes the json-file log, serves attach/resize/state on a unix socket, reaps the container's
//! init, records its exit atomically and applies the restart policy. No tokio, no hyper: a plain
//! `poll(2)` loop, so its resident memory stays small.
//!
//! # Contract between the API and the monitor
//!
//! The run dir `R` = `<run_root>/containers/<id>/` (tmpfs) is created by the API. The API writes
//! `R/monitor.json` ([`MonitorConfig`]) and calls [`launch::spawn`]`(R, monitor_bin)`, which
//! double-forks (`setsid`, the monitor is re-parented and never the caller's child), gives the
//! monitor a sync pipe on fd 3, `/dev/null` on 0/1/2, closes every other fd, strips `LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`, `NOTIFY_SOCKET`, `INVOCATION_ID`, execs `monitor_bin R` and
//! reads one JSON line from the pipe (30 s timeout): `{"pid":N,"monitor_pid":M}` once the container
//! runs, or `{"error":"<runtime's message>"}` ([`MonitorError::Runtime`]).
//!
//! ```json
//! {"id":"<64 hex>", "runtime":"runc", "runtime_root":"<run_root>/runc",
//!  "bundle":"<dir with config.json; its process.terminal is true when tty>",
//!  "log":{"driver":"json-file"|"none","path":"<data_root>/containers/<id>/<id>-json.log",
//!         "max_size":0,"max_file":1},
//!  "tty":false, "open_stdin":false, "stdin_once":false,
//!  "restart":{"name":"no"|"always"|"on-failure"|"unless-stopped","max_retries":0},
//!  "event_command":["/path/to/berth","--data-root","…","internal","container-event","<id>"],
//!  "healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":2},
//!  "shell":null, "health":{"status":"unhealthy","failing_streak":0,"log":[…]}}
//! ```
//!
//! What the monitor does, in order:
//! 1. Moves itself out of the caller's cgroup (v1: `/sys/fs/cgroup/<hierarchy>/berth-monitors/` for
//!    every writable hierarchy; v2: `/sys/fs/cgroup/berth-monitors/`; best effort), sets
//!    `PR_SET_CHILD_SUBREAPER` (so the container's init, whose parent `runc create` exits, is
//!    re-parented to it), writes `R/monitor.pid`.
//! 2. Binds `R/monitor.sock` (stream, 0600), makes the stdio (pipes, stdin a pipe only with
//!    `open_stdin`; with `tty` a console socket `R/console.sock` receiving the pty master), runs
//!    `<runtime> --root <runtime_root> --log R/runc.log --log-format json create --bundle B
//!    --pid-file R/pid [--console-socket R/console.sock] <id>`.
//! 3. Waits (≤ 2 s) until as many attach requests arrived as there are files in
//!    `R/attach-pending/` (the API creates one per attaching client before the start; the count
//!    is taken afresh at the start of every loop round, before that round's I/O, so a client that
//!    removes its file after writing its request is also waited for correctly), then runs
//!    `<runtime> start <id>`, removes the files of `R/attach-pending/` (one-shot), writes
//!    `R/state.json`, reports on fd 3 and closes it. A client that connected during `create`
//!    is always registered before the start, announced or not.
//! 4. Loops: output goes to the log and to attached clients, stdin from clients to the container,
//!    resize requests become `TIOCSWINSZ`. When the init exits: drain the output, `runtime delete
//!    --force`, record the exit (code or 128+signal, OOM kill from the memory cgroup), run
//!    `event_command + ["died"]` (after `["oom"]` for an OOM kill not told yet: the memory
//!    cgroup's `oom_kill` counter is also watched while the container runs, by inotify on v2's
//!    `memory.events` and an eventfd on v1's `memory.oom_control`, each new kill running
//!    `["oom"]` at once), and restart per policy (Docker's back-off: 100 ms doubling to
//!    1 min, reset after a run of ≥ 10 s; never when `R/stop-requested` exists), running
//!    `event_command + ["restarted"]` after each successful restart.
//!    Event commands run one at a time in order (`died` before `restarted`), stdio /dev/null,
//!    without blocking the loop; one still running after 30 s is killed.
//!    With a `healthcheck` (not `NONE`), each run starts `starting` and probes run as
//!    `<runtime> exec --pid-file R/health.pid <id> argv…` (the bundle's user, env and cwd), on
//!    Docker's schedule (moby `daemon/health.go`: interval, start period and start interval,
//!    timeout, retries, the last 5 results with output up to 4096 bytes). `state.json` gets
//!    `health` after every result; a status change runs `event_command + ["health",
//!    "<status>"]`. A probe past its timeout is killed (exit code -1, moby's text); while the
//!    cgroup is frozen probes wait; at an exit the checks stop and the status is `unhealthy`.
//! 5. When it ends for good: attached clients get the rest of their output (≤ 5 s) then EOF,
//!    pending event commands finish, `monitor.sock`, `console.sock` and `monitor.pid` are removed
//!    (`state.json` stays) and it exits 0.
//!
//! If the first `create`/`start` fails, the report is `{"error":…}`, `state.json` says `exited`
//! with `error` set, `exits` 0 and Docker's start-failure code (127 not found, 126 permission
//! denied, else 128), and no event is run. A failed *re*start counts as an exit with that code
//! and `error` (a `died` event, then the policy decides again). The monitor's own trouble is
//! appended to `R/monitor.log` (its stdio is /dev/null).
//!
//! `R/state.json` ([`MonitorState`]) is always replaced atomically (temp, fsync, rename).
//!
//! # Socket protocol on `R/monitor.sock`
//!
//! The client sends one JSON line first ([`Request`]):
//! - `{"type":"attach","stdin":bool,"stdout":bool,"stderr":bool}`: the monitor then sends output
//!   frames `[stream u8][0][0][0][len u32 BE][payload]` (1 stdout, 2 stderr; with a tty everything is
//!   stream 1), exactly Docker's multiplexed framing, and reads raw stdin bytes (when `stdin`). A
//!   half-close by the client closes the container's stdin when `stdin_once` and not tty, otherwise
//!   the monitor just stops reading that client. On the container's final exit, after flushing, the
//!   monitor shuts the socket (the client reads EOF). Across restarts clients stay attached.
//! - `{"type":"resize","height":H,"width":W}`: `TIOCSWINSZ` on the pty master; reply `{"ok":true}` or
//!   `{"error":"…"}` (one line), then close.
//! - `{"type":"state"}`: reply with the content of `state.json`, then close.
//!
//! # Log
//!
//! Docker's json-file format, one object per line `{"log":"…\n","stream":"stdout","time":"<RFC
//! 3339 nano, UTC>"}`, lines over 16 KiB split into 16 KiB partial pieces, rotation `path` →
//! `path.1` … `path.<max_file-1>` when `max_size > 0`.

pub mod cgroup;
pub mod console;
pub mod health;
pub mod launch;
pub mod log;
mod probe;
pub mod proto;
pub mod restart;
mod run;
mod runtime;
pub mod sys;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use health::{Health, HealthConfig};
pub use proto::Request;
pub use run::main;

/// `R/monitor.json`: written by the API, read by the monitor at start.
pub const CONFIG_FILE: &str = "monitor.json";
/// `R/state.json`: [`MonitorState`], replaced atomically.
pub const STATE_FILE: &str = "state.json";
/// `R/monitor.sock`: attach, resize and state requests.
pub const SOCKET_FILE: &str = "monitor.sock";
/// `R/console.sock`: the runtime's `--console-socket` (tty only).
pub const CONSOLE_SOCKET_FILE: &str = "console.sock";
/// `R/monitor.pid`: the monitor's pid, while it runs.
pub const PID_FILE: &str = "monitor.pid";
/// `R/pid`: the container init's pid, written by the runtime (`--pid-file`).
pub const CONTAINER_PID_FILE: &str = "pid";
/// `R/runc.log`: the runtime's own log (`--log … --log-format json`), read for error messages.
pub const RUNTIME_LOG_FILE: &str = "runc.log";
/// `R/attach-pending/`: one file per client that will attach before the container starts.
pub const ATTACH_PENDING_DIR: &str = "attach-pending";
/// `R/stop-requested`: created by the API before stop/kill; the exit is then not restarted.
pub const STOP_REQUESTED_FILE: &str = "stop-requested";

/// Everything the monitor needs, from `R/monitor.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// The container id (64 hex), also the runtime's container id.
    pub id: String,
    /// The OCI runtime binary: a path, or a name looked up in `PATH`.
    #[serde(default = "default_runtime")]
    pub runtime: String,
    /// The runtime's `--root`.
    pub runtime_root: PathBuf,
    /// The bundle directory (with `config.json`).
    pub bundle: PathBuf,
    #[serde(default)]
    pub log: LogConfig,
    /// The bundle's `process.terminal`: a pty through the console socket instead of pipes.
    #[serde(default)]
    pub tty: bool,
    /// Keep a stdin pipe open for attached clients (Docker's `OpenStdin`).
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client half-closes (`StdinOnce`).
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Run with `"died"` / `"restarted"` appended after each exit / successful restart, and
    /// `"health" "<status>"` when the health status changes.
    #[serde(default)]
    pub event_command: Vec<String>,
    /// Docker's `Config.Healthcheck` as is (image's merged in at create).
    #[serde(default)]
    pub healthcheck: Option<HealthConfig>,
    /// Docker's `Config.Shell`, for `CMD-SHELL` probes; empty = `/bin/sh -c`.
    #[serde(default)]
    pub shell: Option<Vec<String>>,
    /// The health of earlier runs: Docker keeps its log across starts.
    #[serde(default)]
    pub health: Option<Health>,
}

fn default_runtime() -> String {
    "runc".into()
}

/// Where the container's output goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    #[serde(default)]
    pub driver: LogDriver,
    /// The json log file (unused with driver `none`).
    #[serde(default)]
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes; 0 = never.
    #[serde(default)]
    pub max_size: u64,
    /// How many files to keep, the current one included (Docker's `max-file`, default 1).
    #[serde(default = "one")]
    pub max_file: u32,
}

fn one() -> u32 {
    1
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: LogDriver::None,
            path: PathBuf::new(),
            max_size: 0,
            max_file: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LogDriver {
    #[serde(rename = "json-file")]
    JsonFile,
    #[default]
    #[serde(rename = "none")]
    None,
}

/// Docker's `RestartPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(default)]
    pub name: RestartPolicyName,
    /// For `on-failure`: the most restarts; 0 = unlimited.
    #[serde(default)]
    pub max_retries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RestartPolicyName {
    #[default]
    #[serde(rename = "no", alias = "")]
    No,
    #[serde(rename = "always")]
    Always,
    #[serde(rename = "on-failure")]
    OnFailure,
    #[serde(rename = "unless-stopped")]
    UnlessStopped,
}

/// `R/state.json`: what the monitor knows about the container, always replaced atomically.
/// Fields a reader does not find take their defaults: an older monitor's file still reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorState {
    pub status: Status,
    /// The init's host pid while running, else 0.
    pub pid: i32,
    /// The last exit's code (128+signal when killed).
    pub exit_code: i32,
    /// Unix nanoseconds of the last successful start.
    pub started_at: i64,
    /// Unix nanoseconds of the last exit (0 before the first).
    pub finished_at: i64,
    pub oom_killed: bool,
    pub restart_count: u32,
    /// How many times the container exited under this monitor.
    pub exits: u32,
    /// The last start error (runtime's message), empty after a successful start.
    pub error: String,
    pub monitor_pid: i32,
    /// Present when the container has a health check to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Running,
    Restarting,
    Exited,
}

/// What [`launch::spawn`] returns once the container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartReport {
    /// The container init's host pid.
    pub pid: i32,
    pub monitor_pid: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The OCI runtime refused: its own message, as is (e.g. runc's `exec: "nope": executable file
    /// not found in $PATH`).
    #[error("{0}")]
    Runtime(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid monitor config: {0}")]
    Config(String),
    #[error("the monitor did not report within {0} s")]
    Timeout(u64),
    #[error("the monitor exited without reporting")]
    NoReport,
    #[error("unexpected monitor report: {0}")]
    Protocol(String),
    #[error("runtime did not write the container's pid file")]
    NoPidFile,
    #[error("runtime did not set up a terminal")]
    NoTerminal,
}

impl MonitorError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        MonitorError::Io {
            context: context.into(),
            source,
        }
    }
}

impl MonitorConfig {
    /// Read `R/monitor.json`.
    pub fn load(run_dir: &Path) -> Result<MonitorConfig, MonitorError> {
        let path = run_dir.join(CONFIG_FILE);
        let data = std::fs::read(&path)
            .map_err(|e| MonitorError::io(format!("read {}", path.display()), e))?;
        let cfg: MonitorConfig =
            serde_json::from_slice(&data).map_err(|e| MonitorError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), MonitorError> {
        if self.id.is_empty() || !self.id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(MonitorError::Config(format!("bad id {:?}", self.id)));
        }
        if self.log.driver == LogDriver::JsonFile && self.log.path.as_os_str().is_empty() {
            return Err(MonitorError::Config("json-file log without a path".into()));
        }
        Ok(())
    }
}

impl MonitorState {
    /// Read `R/state.json`.
    pub fn load(run_dir: &Path) -> Result<MonitorState, MonitorError> {
        let path = run_dir.join(STATE_FILE);
        let data = std::fs::read(&path)
            .map_err(|e| MonitorError::io(format!("read {}", path.display()), e))?;
        serde_json::from_slice(&data).map_err(|e| MonitorError::Protocol(e.to_string()))
    }

    /// Replace `R/state.json` atomically: temp file, fsync, rename.
    pub fn save(&self, run_dir: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        sys::write_atomic(&run_dir.join(STATE_FILE), &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_the_contract_example() {
        let j = r#"{"id":"abc123", "runtime":"runc", "runtime_root":"/run/berth/runc",
          "bundle":"/var/lib/berth/containers/abc123",
          "log":{"driver":"json-file","path":"/x/abc123-json.log","max_size":10,"max_file":3},
          "tty":true, "open_stdin":true, "stdin_once":false,
          "restart":{"name":"on-failure","max_retries":2},
          "event_command":["/bin/berth","internal","container-event","abc123"],
          "healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Timeout":null},
          "shell":null,
          "health":{"status":"unhealthy","failing_streak":1,"log":[]}}"#;
        let c: MonitorConfig = serde_json::from_str(j).unwrap();
        c.validate().unwrap();
        assert_eq!(c.log.driver, LogDriver::JsonFile);
        assert_eq!(c.log.max_file, 3);
        assert_eq!(c.restart.name, RestartPolicyName::OnFailure);
        assert_eq!(c.restart.max_retries, 2);
        assert!(c.tty && c.open_stdin && !c.stdin_once);
        assert_eq!(c.event_command.len(), 4);
        let h = c.healthcheck.as_ref().unwrap();
        assert_eq!(h.command(&[]).unwrap(), ["/bin/sh", "-c", "true"]);
        assert_eq!(h.timing().interval, std::time::Duration::from_secs(1));
        assert_eq!(c.health.unwrap().failing_streak, 1);
    }

    #[test]
    fn config_defaults_and_errors() {
        let c: MonitorConfig =
            serde_json::from_str(r#"{"id":"a1","runtime_root":"/r","bundle":"/b"}"#).unwrap();
        assert_eq!(c.runtime, "runc");
        assert_eq!(c.log.driver, LogDriver::None);
        assert_eq!(c.log.max_file, 1);
        assert_eq!(c.restart.name, RestartPolicyName::No);
        let c: MonitorConfig = serde_json::from_str(
            r#"{"id":"a1","runtime_root":"/r","bundle":"/b","restart":{"name":""}}"#,
        )
        .unwrap();
        assert_eq!(c.restart.name, RestartPolicyName::No);
        let bad: MonitorConfig =
            serde_json::from_str(r#"{"id":"../x","runtime_root":"/r","bundle":"/b"}"#).unwrap();
        assert!(bad.validate().is_err());
        let bad: MonitorConfig = serde_json::from_str(
            r#"{"id":"a","runtime_root":"/r","bundle":"/b","log":{"driver":"json-file"}}"#,
        )
        .unwrap();
        assert!(bad.validate().is_err());
        assert!(
            serde_json::from_str::<MonitorConfig>(
                r#"{"id":"a","runtime_root":"/r","bundle":"/b","log":{"driver":"syslog"}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn state_round_trips_with_lowercase_status() {
        let s = MonitorState {
            status: Status::Restarting,
            pid: 5,
            exits: 2,
            ..Default::default()
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains(r#""status":"restarting""#), "{j}");
        assert_eq!(serde_json::from_str::<MonitorState>(&j).unwrap(), s);
    }
}
