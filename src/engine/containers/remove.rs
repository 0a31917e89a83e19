//! `DELETE /containers/{id}`, `POST /containers/{id}/rename`, `POST /containers/prune`.

use serde_json::{Map, Value, json};

use crate::params::Filters;
use crate::store::containers as rows;

use super::super::{Engine, EngineError, Result};
use super::state::{State, current};
use super::{forget_lock, inspect::container_event, names, resolve, rootfs};

/// Remove a container; a running one only with `force` (it is killed first).
/// `volumes` (`rm -v`, AutoRemove) also removes the container's anonymous volumes.
pub fn remove(engine: &Engine, name: &str, force: bool, volumes: bool) -> Result<()> {
    let id = engine.store()?.read(|tx| resolve(tx, name))?.id;
    crate::engine::pods::check_removable(engine, &id)?;
    remove_member(engine, &id, force, volumes)
}

/// [`remove`] without the pod check: a pod's removal takes its infra container too.
pub fn remove_member(engine: &Engine, name: &str, force: bool, volumes: bool) -> Result<()> {
    let paths = engine.paths().clone();
    let row = {
        let mut store = engine.store()?;
        store.read(|tx| resolve(tx, name))?
    };
    let _lock = engine.lock_container(&row.id)?;
    let state = current(&paths, &row.id, &State::parse(&row.state));
    if state.is_running() {
        if !force {
            let what = if state.paused { "paused" } else { "running" };
            return Err(EngineError::conflict(format!(
                "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                row.name
            )));
        }
        // First the exec sessions: a `runc exec` stuck in its start keeps its init child as
        // a zombie inside the container's PID namespace, and the container's init cannot
        // finish exiting until that zombie is reaped ("did not exit after signal 9").
        kill_exec_sessions(engine, &row.id);
        super::lifecycle::kill_and_wait(engine, &row, "SIGKILL")?;
    }
    kill_exec_sessions(engine, &row.id);
    crate::engine::networks::attach::bring_down(engine, &row.id);
    rootfs::teardown(engine, &row.id)?;
    crate::engine::volume_options::release_all(engine, &row.id);
    let mut store = engine.store()?;
    let mounts = store.write(|tx| {
        let mounts = crate::store::volumes::mounts_of(tx, &row.id)?;
        rows::delete(tx, &row.id)?;
        container_event(tx, "destroy", &row, Map::new())?;
        Ok::<_, EngineError>(mounts)
    })?;
    if volumes {
        crate::engine::volumes::remove_anonymous(engine, &mounts);
    }
    let _ = std::fs::remove_dir_all(paths.container_dir(&row.id));
    let _ = std::fs::remove_dir_all(paths.container_run_dir(&row.id));
    forget_lock(engine, &row.id);
    Ok(())
}

/// End the `runc exec` processes of this container's exec sessions (each leads its own
/// process group); a detached TTY session would otherwise outlive the container.
fn kill_exec_sessions(engine: &Engine, id: &str) {
    let dir = engine.paths().container_run_dir(id).join("exec");
    let needle = dir.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `POST /containers/{id}/rename?name=`.
pub fn rename(engine: &Engine, name: &str, new_name: &str) -> Result<()> {
    if new_name.is_empty() {
        return Err(EngineError::invalid(
            "Neither old nor new names may be empty",
        ));
    }
    let new_name = names::validate(new_name)?;
    let mut store = engine.store()?;
    let (id, old) = store.write(|tx| {
        let row = resolve(tx, name)?;
        if row.name == new_name {
            return Err(EngineError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        if let Some(other) = rows::by_name(tx, &new_name)? {
            return Err(EngineError::conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        rows::set_name(tx, &row.id, &new_name)?;
        let mut renamed = row.clone();
        renamed.name = new_name.clone();
        let mut extra = Map::new();
        extra.insert("oldName".into(), json!(format!("/{}", row.name)));
        container_event(tx, "rename", &renamed, extra)?;
        Ok::<_, EngineError>((row.id, row.name))
    })?;
    crate::engine::networks::attach::renamed(engine, &id, &old, &new_name);
    Ok(())
}

/// `POST /containers/prune`: remove stopped containers matching `until` and `label` filters.
pub fn prune(engine: &Engine, filters: &Filters) -> Result<Value> {
    filters
        .validate(&["until", "label", "label!"])
        .map_err(EngineError::invalid_cause)?;
    let until = crate::engine::images::until_filter(filters)?;
    let paths = engine.paths().clone();
    let rows = {
        let mut store = engine.store()?;
        store.read(|tx| Ok::<_, EngineError>(rows::list(tx)?))?
    };
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for row in rows {
        let state = current(&paths, &row.id, &State::parse(&row.state));
        if state.is_running() || until.is_some_and(|u| row.created > u) {
            continue;
        }
        let labels = row.config().labels();
        if !crate::engine::images::prune_labels_match(filters, &labels) {
            continue;
        }
        reclaimed += rootfs::upper_size(engine, &row.id);
        match remove(engine, &row.id, false, false) {
            Ok(()) => deleted.push(row.id),
            Err(e) if e.kind == super::super::ErrorKind::Conflict => {}
            Err(e) if e.kind == super::super::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": reclaimed,
    }))
}
