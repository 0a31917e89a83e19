//! The OCI runtime's command line (runc-compatible: runc, crun).

use crate::MonitorError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{CONSOLE_SOCKET_FILE, CONTAINER_PID_FILE, MonitorConfig, RUNTIME_LOG_FILE};

pub struct Runtime {
    bin: String,
    root: PathBuf,
    bundle: PathBuf,
    id: String,
    run_dir: PathBuf,
}

impl Runtime {
    pub fn new(cfg: &MonitorConfig, run_dir: &Path) -> Runtime {
        Runtime {
            bin: cfg.runtime.clone(),
            root: cfg.runtime_root.clone(),
            bundle: cfg.bundle.clone(),
            id: cfg.id.clone(),
            run_dir: run_dir.to_path_buf(),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.join(RUNTIME_LOG_FILE)
    }

    pub fn pid_path(&self) -> PathBuf {
        self.run_dir.join(CONTAINER_PID_FILE)
    }

    pub fn console_path(&self) -> PathBuf {
        self.run_dir.join(CONSOLE_SOCKET_FILE)
    }

    /// The runtime with its global flags. Its errors go to `R/runc.log` as JSON too, because with
    /// pipes its stderr is the container's stderr pipe.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.log_path())
            .arg("--log-format")
            .arg("json");
        c
    }

    /// `create`: the container's init waits on the exec fifo with `stdio` as its stdin, stdout,
    /// stderr (with a tty they are /dev/null and the pty comes through the console socket).
    pub fn create(&self, stdio: [Stdio; 3], console: bool) -> Result<(), MonitorError> {
        // Earlier runs' messages must not be taken for this one's.
        let _ = std::fs::remove_file(self.log_path());
        let _ = std::fs::remove_file(self.pid_path());
        let mut c = self.command();
        c.arg("create")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(self.pid_path());
        if console {
            c.arg("--console-socket").arg(self.console_path());
        }
        c.arg(&self.id);
        let [i, o, e] = stdio;
        c.stdin(i).stdout(o).stderr(e);
        self.run(c, "create")
    }

    /// `start`: let the created init exec the container's process.
    pub fn start(&self) -> Result<(), MonitorError> {
        let mut c = self.command();
        c.arg("start").arg(&self.id);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.run(c, "start")
    }

    /// `delete --force`: remove the runtime's state (and cgroup) of the exited container.
    pub fn delete(&self) -> Result<(), MonitorError> {
        let mut c = self.command();
        c.arg("delete").arg("--force").arg(&self.id);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.run(c, "delete")
    }

    fn run(&self, mut c: Command, verb: &str) -> Result<(), MonitorError> {
        let status = c
            .spawn()
            .and_then(|mut child| {
                // The Command holds our copies of the child's stdio; drop them now so the
                // container's pipes reach EOF when the container is done with them.
                drop(c);
                child.wait()
            })
            .map_err(|e| MonitorError::io(self.bin.clone(), e))?;
        if status.success() {
            return Ok(());
        }
        Err(MonitorError::Runtime(
            last_error(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
                .unwrap_or_else(|| format!("{} {verb} failed: {status}", self.bin)),
        ))
    }

    /// The init's pid from `--pid-file`.
    pub fn read_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_path())
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// The message of the last `"level":"error"` line of the runtime's JSON log.
pub fn last_error(log: &str) -> Option<String> {
    log.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        if v.get("level")?.as_str()? != "error" {
            return None;
        }
        Some(v.get("msg")?.as_str()?.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_last_error_message() {
        let log = concat!(
            r#"{"level":"warning","msg":"w","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"first","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"runc create failed: exec: \"nope\": executable file not found in $PATH ","time":"t"}"#,
            "\n",
            r#"{"level":"info","msg":"later","time":"t"}"#,
            "\nnot json\n"
        );
        assert_eq!(
            last_error(log).unwrap(),
            "runc create failed: exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(last_error(""), None);
    }
}
