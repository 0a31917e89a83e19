//! After a reboot. The run root is tmpfs: monitors, runtime state and exec sessions of the
//! previous boot are gone while the store still records containers as running. The boot id
//! (`/proc/sys/kernel/random/boot_id`) decides:
//!
//! - the store's `meta` keeps the boot id of the last reconciliation. A process that finds
//!   another one marks every container recorded running, paused or restarting as exited with
//!   255 and `FinishedAt` now (what dockerd does at start for a container whose task is gone),
//!   removes `--rm` ones, and remembers the others for `berth boot` — all in one write
//!   transaction, so concurrent `berth serve`s reconcile exactly once;
//! - `<run_root>/boot_id` is the fast path: every `berth serve` compares it and is done.
//!
//! Without a recorded boot id (a store older than this code) only containers whose run dir
//! is missing are reconciled: their state is certainly lost.
//!
//! `berth boot` (run by `berth-restart.service`) reconciles and then starts the containers
//! whose restart policy says so: `always` ones started before (dockerd's
//! `HasBeenStartedBefore`, even if the user stopped them, as dockerd does at start),
//! `unless-stopped` ones that were running at the reboot. `on-failure` ones are not started:
//! the documented behaviour, although dockerd itself does (moby/moby#47846).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::containers as rows;
use crate::store::meta;

use super::super::{Engine, EngineError, ErrorKind};
use super::rootfs;
use super::state::{ContainerStatus, State, current};

/// Where the boot id is read from; tests point it at a file of their own.
pub const BOOT_ID_ENV: &str = "BERTH_BOOT_ID_FILE";
const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";
/// `meta` keys and the run root's copy.
const META_BOOT_ID: &str = "boot_id";
const META_PENDING: &str = "boot_restart_pending";
const RUN_ROOT_FILE: &str = "boot_id";

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("reading the boot id from {path}: {source}")]
    BootId {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Engine(#[from] EngineError),
}

impl From<crate::store::StoreError> for BootError {
    fn from(e: crate::store::StoreError) -> Self {
        BootError::Engine(e.into())
    }
}

/// This boot's id.
pub fn current_boot_id() -> Result<String, BootError> {
    let path = std::env::var_os(BOOT_ID_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BOOT_ID_FILE));
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| BootError::BootId {
            path: path.display().to_string(),
            source,
        })
}

/// What a reconciliation changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Containers marked exited.
    pub exited: Vec<String>,
    /// `--rm` containers among them, removed.
    pub removed: Vec<String>,
}

/// For every `berth serve` before it answers: reconcile unless the run root already carries
/// this boot's id. Costs two small file reads when nothing is to be done.
pub fn check(engine: &Engine) -> Result<Option<Reconciled>, BootError> {
    let id = current_boot_id()?;
    let marker = engine.paths().run_root.join(RUN_ROOT_FILE);
    if std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == id) {
        return Ok(None);
    }
    reconcile_with(engine, &id).map(Some)
}

/// Reconcile the store with this boot (a no-op when already done for it).
pub fn reconcile(engine: &Engine) -> Result<Reconciled, BootError> {
    reconcile_with(engine, &current_boot_id()?)
}

/// A container of the previous boot, as dockerd leaves it when its task is gone.
fn mark_exited(s: &mut State, now: i64) {
    s.status = ContainerStatus::Exited;
    s.exit_code = 255;
    s.pid = 0;
    s.paused = false;
    s.finished_at = now;
}

fn run_state_present(engine: &Engine, id: &str) -> bool {
    engine
        .paths()
        .container_run_dir(id)
        .join(crate::monitor::STATE_FILE)
        .exists()
}

fn reconcile_with(engine: &Engine, boot_id: &str) -> Result<Reconciled, BootError> {
    let now = crate::util::time::now_nanos();
    // (id, AutoRemove) of the containers marked exited.
    let exited: Vec<(String, bool)> = engine.store()?.write(|tx| {
        let recorded = meta::get(tx, META_BOOT_ID)?;
        if recorded.as_deref() == Some(boot_id) {
            return Ok::<_, EngineError>(Vec::new());
        }
        let new_boot = recorded.is_some();
        let mut exited = Vec::new();
        for row in rows::list(tx)? {
            let mut s = State::parse(&row.state);
            if !s.is_running() || (!new_boot && run_state_present(engine, &row.id)) {
                continue;
            }
            mark_exited(&mut s, now);
            rows::set_state(tx, &row.id, &s.to_text())?;
            let auto_remove = row.host_config().auto_remove;
            exited.push((row.id, auto_remove));
        }
        let mut pending = pending_list(meta::get(tx, META_PENDING)?.as_deref());
        for (id, auto_remove) in &exited {
            if !auto_remove && !pending.contains(id) {
                pending.push(id.clone());
            }
        }
        meta::set(tx, META_PENDING, &Value::from(pending).to_string())?;
        meta::set(tx, META_BOOT_ID, boot_id)?;
        if new_boot {
            // Namespaces, veths and rules went with the old boot: so do their addresses.
            crate::engine::networks::attach::forget_all(tx)?;
        } else {
            for (id, _) in &exited {
                crate::engine::networks::attach::forget_container(tx, id)?;
            }
        }
        Ok(exited)
    })?;
    let mut out = Reconciled::default();
    for (id, auto_remove) in exited {
        cleanup(engine, &id);
        if auto_remove {
            match super::remove::remove(engine, &id, true, true) {
                Ok(()) => out.removed.push(id.clone()),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("removing {id} after the reboot: {}", e.message),
            }
        }
        out.exited.push(id);
    }
    write_marker(&engine.paths().run_root, boot_id).map_err(EngineError::from)?;
    Ok(out)
}

/// `<run_root>/boot_id`, replaced atomically; the temp name is unique because several
/// processes may write it at once.
fn write_marker(run_root: &Path, boot_id: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(run_root)?;
    let tmp = run_root.join(format!(".{RUN_ROOT_FILE}.{}", crate::util::random_id()));
    std::fs::write(&tmp, boot_id)?;
    std::fs::rename(&tmp, run_root.join(RUN_ROOT_FILE)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn pending_list(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// What the previous boot left: the root mount (the data root is not tmpfs), runtime state
/// and the run dir. Harmless when a real reboot already took them.
fn cleanup(engine: &Engine, id: &str) {
    if let Err(e) = rootfs::teardown(engine, id) {
        tracing::warn!("container {id}: {}", e.message);
    }
    let runtime_root = engine.paths().runtime_root();
    if runtime_root.join(id).exists() {
        // Also removes its cgroups; anything still in them belonged to the old boot.
        let _ = std::process::Command::new(&engine.config().runtime)
            .arg("--root")
            .arg(&runtime_root)
            .args(["delete", "--force", id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(engine.paths().container_run_dir(id));
}

/// Whether `berth boot` starts a container that is not running.
pub fn should_start(policy: &str, started_before: bool, running_at_reboot: bool) -> bool {
    match policy {
        "always" => started_before,
        "unless-stopped" => running_at_reboot,
        _ => false,
    }
}

/// What `berth boot` did.
#[derive(Debug, Default)]
pub struct BootReport {
    pub reconciled: Reconciled,
    /// (id, name) started.
    pub started: Vec<(String, String)>,
    /// (name, error) that failed to start.
    pub failed: Vec<(String, String)>,
}

/// `berth boot`: reconcile, then start what the restart policies ask for.
pub fn boot(engine: &Engine) -> Result<BootReport, BootError> {
    let reconciled = reconcile(engine)?;
    let (pending, all) = engine.store()?.write(|tx| {
        let pending = pending_list(meta::get(tx, META_PENDING)?.as_deref());
        meta::delete(tx, META_PENDING)?;
        Ok::<_, EngineError>((pending, rows::list(tx)?))
    })?;
    let mut report = BootReport {
        reconciled,
        ..BootReport::default()
    };
    for row in all {
        let s = current(engine.paths(), &row.id, &State::parse(&row.state));
        if s.is_running() {
            continue;
        }
        let policy = row.host_config().restart_policy.name;
        if !should_start(&policy, s.started_at > 0, pending.contains(&row.id)) {
            continue;
        }
        match super::start::start(engine, &row.id) {
            Ok(true) => report.started.push((row.id, row.name)),
            // Someone started it meanwhile.
            Ok(false) => {}
            Err(e) => report.failed.push((row.name, e.message)),
        }
    }
    Ok(report)
}

/// The run root's copy of the boot id (for tests and diagnostics).
pub fn marker_path(run_root: &Path) -> PathBuf {
    run_root.join(RUN_ROOT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_at_boot() {
        assert!(should_start("always", true, false));
        assert!(should_start("always", true, true));
        assert!(!should_start("always", false, false));
        assert!(should_start("unless-stopped", true, true));
        assert!(!should_start("unless-stopped", true, false));
        assert!(!should_start("on-failure", true, true));
        assert!(!should_start("no", true, true));
        assert!(!should_start("", true, true));
    }

    fn engine(dir: &Path) -> Engine {
        Engine::new(crate::engine::EngineConfig {
            paths: crate::config::Paths::new(dir.join("data"), dir.join("run")),
            runtime: "/nonexistent/runtime".into(),
            registry: Default::default(),
        })
    }

    fn add(engine: &Engine, id: &str, status: &str) {
        let state = State {
            status: serde_json::from_value(serde_json::json!(status)).unwrap(),
            pid: 4242,
            started_at: 1,
            ..State::default()
        };
        let row = rows::ContainerRow {
            id: id.into(),
            name: format!("n{id}"),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            created: 1,
            config_json: "{}".into(),
            host_config_json: "{}".into(),
            state: state.to_text(),
        };
        engine
            .store()
            .unwrap()
            .write(|tx| rows::insert(tx, &row, &[]))
            .unwrap();
    }

    fn status(engine: &Engine, id: &str) -> State {
        let row = engine
            .store()
            .unwrap()
            .read(|tx| rows::get(tx, id))
            .unwrap()
            .unwrap();
        State::parse(&row.state)
    }

    #[test]
    fn a_new_boot_is_reconciled_once_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path());
        // First sight of this store: the boot id is recorded, containers with run state stay.
        add(&e, "a1", "running");
        std::fs::create_dir_all(e.paths().container_run_dir("a1")).unwrap();
        std::fs::write(
            e.paths()
                .container_run_dir("a1")
                .join(crate::monitor::STATE_FILE),
            "{}",
        )
        .unwrap();
        add(&e, "b2", "paused");
        let r = reconcile_with(&e, "boot-1").unwrap();
        assert_eq!(r.exited, vec!["b2".to_string()]);
        assert_eq!(status(&e, "a1").status, ContainerStatus::Running);
        add(&e, "c3", "restarting");
        add(&e, "d4", "exited");
        // A new boot, seen by several processes at once: one of them does the work.
        let results: Vec<Reconciled> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| reconcile_with(&engine(dir.path()), "boot-2").unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<String> = results.iter().flat_map(|r| r.exited.clone()).collect();
        all.sort();
        assert_eq!(all, vec!["a1".to_string(), "c3".to_string()]);
        for id in ["a1", "b2", "c3"] {
            let s = status(&e, id);
            assert_eq!((s.status.as_str(), s.exit_code, s.pid), ("exited", 255, 0));
            assert!(s.finished_at > 0);
        }
        assert_eq!(status(&e, "d4").exit_code, 0);
        // Stale run state is gone; the run root carries the new boot id.
        assert!(!e.paths().container_run_dir("a1").exists());
        let marker = std::fs::read_to_string(marker_path(&e.paths().run_root)).unwrap();
        assert_eq!(marker, "boot-2");
        // Everything reconciled is left for `berth boot`, once.
        let pending = e
            .store()
            .unwrap()
            .read(|tx| meta::get(tx, META_PENDING))
            .unwrap();
        let mut pending = pending_list(pending.as_deref());
        pending.sort();
        assert_eq!(pending, vec!["a1", "b2", "c3"]);
    }

    #[test]
    fn pending_lists_parse_leniently() {
        assert_eq!(pending_list(None), Vec::<String>::new());
        assert_eq!(pending_list(Some("garbage")), Vec::<String>::new());
        assert_eq!(pending_list(Some(r#"["a","b"]"#)), vec!["a", "b"]);
    }
}
