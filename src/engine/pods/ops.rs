//! What is done to a whole pod: start, stop, kill, pause, restart, remove, prune, top.
//! Each reports per container, as libpod's `PodXReport` (`Errs` beside the pod's ID).

use serde_json::{Value, json};

use super::{MemberState, PodState, load};
use crate::engine::containers::{lifecycle, ops as cops, remove, start};
use crate::engine::{Engine, EngineError, ErrorKind, Result};

/// The outcome of a pod operation: `None` when nothing needed doing (304), else the errors
/// of the containers that failed.
pub struct Report {
    pub id: String,
    pub errors: Vec<String>,
}

impl Report {
    pub fn json(&self) -> Value {
        json!({
            "Errs": if self.errors.is_empty() { Value::Null } else { json!(self.errors) },
            "Id": self.id,
        })
    }
}

fn each(
    members: impl Iterator<Item = String>,
    mut f: impl FnMut(&str) -> Result<()>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for id in members {
        if let Err(e) = f(&id) {
            // A member removed meanwhile is no failure of the pod's.
            if e.kind != ErrorKind::NotFound {
                errors.push(e.message);
            }
        }
    }
    errors
}

/// Infra first, then the others in creation order.
fn start_order(p: &PodState) -> Vec<String> {
    p.members.iter().map(|m| m.id.clone()).collect()
}

/// The reverse: the infra container last, so its namespaces outlive the others.
fn stop_order(p: &PodState) -> Vec<String> {
    p.members.iter().rev().map(|m| m.id.clone()).collect()
}

/// `POST /libpod/pods/{name}/start`: `Ok(None)` when it was running already.
pub fn start(engine: &Engine, name: &str) -> Result<Option<Report>> {
    let p = load(engine, name)?;
    if p.status() == "Running" {
        return Ok(None);
    }
    let errors = each(start_order(&p).into_iter(), |id| {
        start::start(engine, id).map(|_| ())
    });
    Ok(Some(Report {
        id: p.row.id,
        errors,
    }))
}

/// `POST /libpod/pods/{name}/stop?timeout=`: `Ok(None)` when nothing ran.
pub fn stop(engine: &Engine, name: &str, timeout: Option<i64>) -> Result<Option<Report>> {
    let p = load(engine, name)?;
    if matches!(p.status(), "Exited" | "Stopped" | "Created") {
        return Ok(None);
    }
    let errors = each(stop_order(&p).into_iter(), |id| {
        lifecycle::stop(engine, id, timeout, None).map(|_| ())
    });
    Ok(Some(Report {
        id: p.row.id,
        errors,
    }))
}

/// `POST /libpod/pods/{name}/restart`.
pub fn restart(engine: &Engine, name: &str) -> Result<Report> {
    let p = load(engine, name)?;
    let mut errors = each(stop_order(&p).into_iter(), |id| {
        lifecycle::stop(engine, id, None, None).map(|_| ())
    });
    errors.extend(each(start_order(&p).into_iter(), |id| {
        start::start(engine, id).map(|_| ())
    }));
    Ok(Report {
        id: p.row.id,
        errors,
    })
}

fn running(p: &PodState) -> impl Iterator<Item = &MemberState> {
    p.members.iter().filter(|m| m.state.is_running())
}

/// `POST /libpod/pods/{name}/kill?signal=`.
pub fn kill(engine: &Engine, name: &str, signal: &str) -> Result<Report> {
    let p = load(engine, name)?;
    let ids: Vec<String> = running(&p).map(|m| m.id.clone()).collect();
    if ids.is_empty() {
        return Err(EngineError::conflict(format!(
            "pod {} has no running containers: pod already stopped",
            p.row.id
        )));
    }
    // The members first: the infra container going first would leave them without a network.
    let errors = each(ids.into_iter().rev(), |id| {
        lifecycle::kill(engine, id, Some(signal))
    });
    Ok(Report {
        id: p.row.id,
        errors,
    })
}

/// `POST /libpod/pods/{name}/pause` and `unpause`.
pub fn pause(engine: &Engine, name: &str, paused: bool) -> Result<Report> {
    let p = load(engine, name)?;
    let ids: Vec<String> = running(&p)
        .filter(|m| m.state.paused != paused)
        .map(|m| m.id.clone())
        .collect();
    if ids.is_empty() {
        let what = if paused { "running" } else { "paused" };
        return Err(EngineError::conflict(format!(
            "pod {} has no {what} containers",
            p.row.id
        )));
    }
    let errors = each(ids.into_iter(), |id| {
        if paused {
            cops::pause(engine, id)
        } else {
            cops::unpause(engine, id)
        }
    });
    Ok(Report {
        id: p.row.id,
        errors,
    })
}

/// `DELETE /libpod/pods/{name}?force=`: the members, the infra container, then the pod.
pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<String> {
    let p = load(engine, name)?;
    if !force && running(&p).next().is_some() {
        return Err(EngineError::conflict(format!(
            "pod {} has containers that are not ready to be removed: cannot remove container {} as it is running - running or paused containers cannot be removed without force: container state improper",
            p.row.id,
            running(&p)
                .next()
                .map(|m| m.id.as_str())
                .unwrap_or_default()
        )));
    }
    if !force && p.members.iter().any(|m| !m.infra) {
        return Err(EngineError::conflict(format!(
            "pod {} contains containers and cannot be removed: pod has containers",
            p.row.id
        )));
    }
    for id in stop_order(&p) {
        match remove::remove_member(engine, &id, true, true) {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let id = p.row.id.clone();
    engine
        .store()?
        .write(|tx| crate::store::pods::delete(tx, &id))?;
    Ok(id)
}

/// `POST /libpod/pods/prune`: every pod with nothing running. Returns the removed IDs.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in super::list(engine)? {
        if matches!(p.status(), "Exited" | "Stopped" | "Created") && running(&p).next().is_none() {
            match remove(engine, &p.row.id, true) {
                Ok(id) => out.push(id),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// `GET /libpod/pods/{name}/top`: the processes of every running member, one table.
pub fn top(engine: &Engine, name: &str, ps_args: &str) -> Result<Value> {
    let p = load(engine, name)?;
    let mut titles = Value::Null;
    let mut processes = Vec::new();
    for m in running(&p) {
        let t = cops::top(engine, &m.id, ps_args)?;
        if titles.is_null() {
            titles = t["Titles"].clone();
        }
        if let Some(rows) = t["Processes"].as_array() {
            processes.extend(rows.iter().cloned());
        }
    }
    if titles.is_null() {
        return Err(EngineError::conflict(format!(
            "pod {} is not running: no running containers",
            p.row.id
        )));
    }
    Ok(json!({"Processes": processes, "Titles": titles}))
}
