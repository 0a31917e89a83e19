//! Leaving the caller's cgroup, and reading the container's OOM-kill counter.

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup (in every hierarchy) that monitors move into.
pub const MONITORS_CGROUP: &str = "berth-monitors";

/// Move this process into `berth-monitors/` of every cgroup hierarchy it can write, so that the
/// API's unit (`KillMode=process`) or its exit leaves the monitor alone. Best effort: returns
/// the hierarchies joined, for diagnostics; failures are ignored.
pub fn leave_caller_cgroup() -> Vec<PathBuf> {
    let pid = std::process::id().to_string();
    let mut joined = Vec::new();
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        // Pure v2: one hierarchy. In the root cgroup already there is nothing to leave.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let in_root = own.lines().any(|l| l == "0::/");
        if !in_root && join(root, &pid) {
            joined.push(root.join(MONITORS_CGROUP));
        }
        return joined;
    }
    // v1 or hybrid: every hierarchy mounted below /sys/fs/cgroup (including `unified`, the v2 one
    // of a hybrid host). Symlinks like `cpu -> cpu,cpuacct` would be the same hierarchy twice.
    let Ok(entries) = std::fs::read_dir(root) else {
        return joined;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        if dir.join("cgroup.procs").exists() && join(&dir, &pid) {
            joined.push(dir.join(MONITORS_CGROUP));
        }
    }
    joined
}

fn join(hierarchy: &Path, pid: &str) -> bool {
    let dir = hierarchy.join(MONITORS_CGROUP);
    if std::fs::create_dir(&dir).is_err() && !dir.is_dir() {
        return false;
    }
    // cpuset (v1) needs cpus and mems before it takes tasks; copy the parent's.
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let child = dir.join(f);
        if child.exists() {
            let cur = std::fs::read_to_string(&child).unwrap_or_default();
            if cur.trim().is_empty()
                && let Ok(v) = std::fs::read_to_string(hierarchy.join(f))
            {
                let _ = std::fs::write(&child, v.trim());
            }
        }
    }
    std::fs::write(dir.join("cgroup.procs"), pid).is_ok()
}

/// Where to read the OOM-kill counter of a process's memory cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomCounter {
    /// v1: `memory.oom_control`, line `oom_kill N`.
    V1(PathBuf),
    /// v2: `memory.events`, line `oom_kill N`.
    V2(PathBuf),
}

impl OomCounter {
    /// The counter of `pid`'s memory cgroup, from `/proc/<pid>/cgroup`.
    pub fn of_pid(pid: i32) -> Option<OomCounter> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let v2_only = Path::new(CGROUP_ROOT).join("cgroup.controllers").exists();
        Self::from_proc_cgroup(&text, v2_only)
    }

    /// Pure part of [`OomCounter::of_pid`].
    pub fn from_proc_cgroup(text: &str, v2_only: bool) -> Option<OomCounter> {
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if v2_only && ctrls.is_empty() {
                return Some(OomCounter::V2(
                    Path::new(CGROUP_ROOT).join(rel).join("memory.events"),
                ));
            }
            if ctrls.split(',').any(|c| c == "memory") {
                return Some(OomCounter::V1(
                    Path::new(CGROUP_ROOT)
                        .join("memory")
                        .join(rel)
                        .join("memory.oom_control"),
                ));
            }
        }
        None
    }

    /// The current count (None when the file is gone or has no counter).
    pub fn read(&self) -> Option<u64> {
        let path = match self {
            OomCounter::V1(p) | OomCounter::V2(p) => p,
        };
        parse_oom_kill(&std::fs::read_to_string(path).ok()?)
    }
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_memory_cgroup() {
        let v1 = "9:name=systemd:/x\n4:memory:/berth-monitors/abc\n0::/\n";
        assert_eq!(
            OomCounter::from_proc_cgroup(v1, false),
            Some(OomCounter::V1(PathBuf::from(
                "/sys/fs/cgroup/memory/berth-monitors/abc/memory.oom_control"
            )))
        );
        let combined = "3:cpu,memory:/c\n";
        assert!(OomCounter::from_proc_cgroup(combined, false).is_some());
        assert_eq!(
            OomCounter::from_proc_cgroup("0::/system.slice/c\n", true),
            Some(OomCounter::V2(PathBuf::from(
                "/sys/fs/cgroup/system.slice/c/memory.events"
            )))
        );
        assert_eq!(OomCounter::from_proc_cgroup("0::/\n", false), None);
    }

    #[test]
    fn parses_oom_kill() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), None);
    }
}
