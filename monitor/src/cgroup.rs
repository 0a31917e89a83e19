//! Leaving the caller's cgroup, and reading the container's OOM-kill counter.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::sys;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup (in every hierarchy) that monitors move into.
pub const MONITORS_CGROUP: &str = "berth-monitors";

/// Move this process into `berth-monitors/` of every cgroup hierarchy it can write, so that the
/// API's unit (`KillMode=process`) or its exit leaves the monitor alone. Best effort: returns
/// the hierarchies joined, for diagnostics; failures are ignored.
pub fn leave_caller_cgroup() -> Vec<PathBuf> {
    move_to_monitors_cgroup(std::process::id())
}

/// Move process `pid` into `berth-monitors/` of every hierarchy (see `leave_caller_cgroup`);
/// also for helpers that must outlive the API process, such as aardvark-dns.
pub fn move_to_monitors_cgroup(pid: u32) -> Vec<PathBuf> {
    let pid = pid.to_string();
    let mut joined = Vec::new();
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        // Pure v2: one hierarchy. In the root cgroup already there is nothing to leave.
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
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

/// The directory of `controller`'s cgroup for a process, from its `/proc/<pid>/cgroup` text,
/// below the cgroup mount `root`: `(true, dir)` on a pure v2 host (`0::/path`), `(false, dir)`
/// for a v1 hierarchy (`N:ctrl,…:/path`, including the v1 controllers of a hybrid host).
fn cgroup_dir(root: &Path, text: &str, v2_only: bool, controller: &str) -> Option<(bool, PathBuf)> {
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if v2_only && ctrls.is_empty() {
            return Some((true, root.join(rel)));
        }
        if !v2_only && ctrls.split(',').any(|c| c == controller) {
            return Some((false, root.join(controller).join(rel)));
        }
    }
    None
}

fn v2_only() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// Where to read the OOM-kill counter of a process's memory cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomCounter {
    /// v1: `memory.oom_control`, line `oom_kill N`.
    V1(PathBuf),
    /// v2: `memory.events`, line `oom_kill N` (hierarchical: the container's cgroup and below).
    V2(PathBuf),
}

impl OomCounter {
    /// The counter of `pid`'s memory cgroup, from `/proc/<pid>/cgroup`.
    pub fn of_pid(pid: i32) -> Option<OomCounter> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        Self::from_proc_cgroup(&text, v2_only())
    }

    /// Pure part of [`OomCounter::of_pid`].
    pub fn from_proc_cgroup(text: &str, v2_only: bool) -> Option<OomCounter> {
        Self::from_proc_cgroup_in(Path::new(CGROUP_ROOT), text, v2_only)
    }

    /// [`OomCounter::from_proc_cgroup`] with the cgroup mount at `root` (tests use fixture dirs).
    pub fn from_proc_cgroup_in(root: &Path, text: &str, v2_only: bool) -> Option<OomCounter> {
        match cgroup_dir(root, text, v2_only, "memory")? {
            (true, dir) => Some(OomCounter::V2(dir.join("memory.events"))),
            (false, dir) => Some(OomCounter::V1(dir.join("memory.oom_control"))),
        }
    }

    /// The current count (None when the file is gone or has no counter).
    pub fn read(&self) -> Option<u64> {
        let path = match self {
            OomCounter::V1(p) | OomCounter::V2(p) => p,
        };
        parse_oom_kill(&std::fs::read_to_string(path).ok()?)
    }
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2). Not
/// `oom_group_kill` (v2, 5.14+), which counts group kills, nor `oom_kill_disable` (v1).
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// The container's OOM kills as they happen (Docker logs `oom` at once, not only at the exit).
/// v2: inotify on `memory.events` (the kernel notifies every change of it); v1: an eventfd
/// registered for `memory.oom_control` through `cgroup.event_control`. On v2 the counter
/// decides what is new. A v1 notification can come before the kill is counted (or without a
/// kill, under `--oom-kill-disable`): it counts as one at once, as containerd's v1 OOM events
/// do, and the counter catching up later is not told again. Without a notifier the counter is
/// still read at the exit.
pub struct OomWatch {
    counter: OomCounter,
    /// The count when the run began.
    base: u64,
    /// The count last seen.
    seen: u64,
    notifier: Option<OwnedFd>,
}

impl OomWatch {
    /// `None` when the counter cannot be read (no memory cgroup).
    pub fn new(counter: OomCounter) -> Option<OomWatch> {
        let base = counter.read()?;
        let notifier = match &counter {
            OomCounter::V2(p) => sys::inotify_modify(p).ok(),
            OomCounter::V1(p) => v1_eventfd(p).ok(),
        };
        Some(OomWatch {
            counter,
            base,
            seen: base,
            notifier,
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> Option<RawFd> {
        self.notifier.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Take the notifications, read the counter: how many kills are new since the last call.
    pub fn check(&mut self) -> u64 {
        let notified = self.notifier.as_ref().is_some_and(sys::drain);
        let moved = self
            .counter
            .read()
            .unwrap_or(self.seen)
            .saturating_sub(self.seen);
        let new = if moved == 0 && notified && matches!(self.counter, OomCounter::V1(_)) {
            1
        } else {
            moved
        };
        self.seen += new;
        new
    }

    /// Whether anything was OOM-killed in this run (as far as seen: call [`OomWatch::check`]
    /// first).
    pub fn killed(&self) -> bool {
        self.seen > self.base
    }
}

/// v1 memory cgroup OOM notification: an eventfd registered for `memory.oom_control`. The
/// registration lasts until the eventfd is closed or the cgroup removed; the control file need
/// not stay open (the kernel drops its reference once registered).
fn v1_eventfd(oom_control: &Path) -> std::io::Result<OwnedFd> {
    let efd = sys::eventfd()?;
    let control = File::open(oom_control)?;
    std::fs::write(
        oom_control.with_file_name("cgroup.event_control"),
        format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
    )?;
    Ok(efd)
}

/// Whether a container's cgroup is frozen (`docker pause`): its health checks wait meanwhile,
/// as Docker's do, instead of timing out against a process that cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// v1: `freezer.state`, `FROZEN` or `FREEZING` while paused.
    V1(PathBuf),
    /// v2: `cgroup.freeze`, `1` while paused.
    V2(PathBuf),
}

impl Freezer {
    pub fn of_pid(pid: i32) -> Option<Freezer> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        Self::from_proc_cgroup_in(Path::new(CGROUP_ROOT), &text, v2_only())
    }

    pub fn from_proc_cgroup_in(root: &Path, text: &str, v2_only: bool) -> Option<Freezer> {
        match cgroup_dir(root, text, v2_only, "freezer")? {
            (true, dir) => Some(Freezer::V2(dir.join("cgroup.freeze"))),
            (false, dir) => Some(Freezer::V1(dir.join("freezer.state"))),
        }
    }

    pub fn frozen(&self) -> bool {
        match self {
            Freezer::V1(p) => std::fs::read_to_string(p)
                .map(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
                .unwrap_or(false),
            Freezer::V2(p) => std::fs::read_to_string(p)
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
        }
    }
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

    #[test]
    fn v2_oom_kills_are_counted_from_memory_events() {
        // A pure v2 host's layout, in a fixture dir standing for /sys/fs/cgroup.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth").join("abc");
        std::fs::create_dir_all(&dir).unwrap();
        let events =
            |n: u64| format!("low 0\nhigh 0\nmax 3\noom 1\noom_kill {n}\noom_group_kill 0\n");
        std::fs::write(dir.join("memory.events"), events(0)).unwrap();
        let c = OomCounter::from_proc_cgroup_in(root.path(), "0::/berth/abc\n", true).unwrap();
        assert_eq!(c, OomCounter::V2(dir.join("memory.events")));
        let before = c.read().unwrap();
        assert_eq!(before, 0);
        // The kernel killed a process of the container: the counter moved.
        std::fs::write(dir.join("memory.events"), events(1)).unwrap();
        assert!(c.read().unwrap() > before);
        // The cgroup is gone (deleted already): no answer rather than a wrong one.
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.read(), None);
    }

    #[test]
    fn v1_counter_in_a_fixture_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("memory").join("berth").join("abc");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
        )
        .unwrap();
        let text = "6:freezer:/berth/abc\n4:memory:/berth/abc\n0::/\n";
        let c = OomCounter::from_proc_cgroup_in(root.path(), text, false).unwrap();
        assert_eq!(c.read(), Some(4));
    }

    #[test]
    fn freezer_states() {
        let root = tempfile::tempdir().unwrap();
        let v1 = root.path().join("freezer").join("berth").join("abc");
        std::fs::create_dir_all(&v1).unwrap();
        let text = "6:freezer:/berth/abc\n4:memory:/berth/abc\n0::/\n";
        let f = Freezer::from_proc_cgroup_in(root.path(), text, false).unwrap();
        assert!(!f.frozen(), "no file: not frozen");
        std::fs::write(v1.join("freezer.state"), "THAWED\n").unwrap();
        assert!(!f.frozen());
        std::fs::write(v1.join("freezer.state"), "FROZEN\n").unwrap();
        assert!(f.frozen());
        let v2 = root.path().join("berth").join("abc");
        std::fs::create_dir_all(&v2).unwrap();
        let f = Freezer::from_proc_cgroup_in(root.path(), "0::/berth/abc\n", true).unwrap();
        assert_eq!(f, Freezer::V2(v2.join("cgroup.freeze")));
        std::fs::write(v2.join("cgroup.freeze"), "1\n").unwrap();
        assert!(f.frozen());
        std::fs::write(v2.join("cgroup.freeze"), "0\n").unwrap();
        assert!(!f.frozen());
    }

    #[test]
    fn v2_watch_reports_each_kill_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("berth").join("w");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("memory.events");
        let events = |n: u64| format!("low 0\nhigh 0\nmax 0\noom 0\noom_kill {n}\n");
        std::fs::write(&file, events(2)).unwrap();
        let mut w = OomWatch::new(OomCounter::V2(file.clone())).unwrap();
        let fd = w.fd().expect("inotify on a regular file works");
        assert_eq!(w.check(), 0);
        assert!(!w.killed(), "kills before the run do not count");
        std::fs::write(&file, events(3)).unwrap();
        // The write is notified: the descriptor is readable.
        let mut pfd = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(sys::poll(&mut pfd, 1000).unwrap(), 1);
        assert_eq!(w.check(), 1);
        assert_eq!(w.check(), 0, "reported once");
        assert!(w.killed());
    }

    #[test]
    fn v1_notification_counts_once_before_the_counter_catches_up() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("memory.oom_control");
        let control = |n: u64| format!("oom_kill_disable 0\nunder_oom 0\noom_kill {n}\n");
        std::fs::write(&file, control(0)).unwrap();
        // The eventfd the kernel would signal, signalled by hand.
        let efd = sys::eventfd().unwrap();
        let mut w = OomWatch {
            counter: OomCounter::V1(file.clone()),
            base: 0,
            seen: 0,
            notifier: Some(efd),
        };
        let signal = |w: &OomWatch| {
            let one = 1u64.to_ne_bytes();
            sys::write_nb(w.notifier.as_ref().unwrap(), &one).unwrap();
        };
        assert_eq!(w.check(), 0);
        signal(&w);
        assert_eq!(w.check(), 1, "told at once, before the kill is counted");
        std::fs::write(&file, control(1)).unwrap();
        assert_eq!(w.check(), 0, "the counter catching up is the same kill");
        assert!(w.killed());
        // A second kill counted with its notification: one more.
        std::fs::write(&file, control(2)).unwrap();
        signal(&w);
        assert_eq!(w.check(), 1);
    }
}
