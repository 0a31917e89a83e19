//! The monitor's callbacks (`berth internal container-event <id> died|restarted|oom|health
//! <status>`): bring the store up to date, log the events, and clean up after a container that
//! will not run again.

use serde_json::{Map, json};

use crate::store::containers as rows;

use super::super::{Engine, EngineError, ErrorKind, Result};
use super::inspect::container_event;
use super::rootfs;
use super::state::{ContainerStatus, State, current};

/// The monitor's callback after an exit (`died`), an automatic restart (`restarted`) or a
/// change of health status (`health`, with the new status in `arg`).
pub fn monitor_event(engine: &Engine, id: &str, what: &str, arg: Option<&str>) -> Result<()> {
    if what == "health" && !matches!(arg, Some("starting" | "healthy" | "unhealthy")) {
        return Err(EngineError::invalid(format!("bad health status {arg:?}")));
    }
    let Some(row) = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(rows::get(tx, id)?))?
    else {
        return Ok(());
    };
    let stored = State::parse(&row.state);
    let s = current(engine.paths(), id, &stored);
    engine
        .store()?
        .write(|tx| Ok::<_, EngineError>(rows::set_state(tx, &row.id, &s.to_text())?))?;
    let hc = row.host_config();
    match what {
        "died" => {
            let mut extra = Map::new();
            extra.insert("exitCode".into(), json!(s.exit_code.to_string()));
            engine
                .store()?
                .write(|tx| container_event(tx, "die", &row, extra))?;
            if s.status == ContainerStatus::Exited {
                if hc.auto_remove {
                    // Someone may have removed it already (docker rm -f races the exit).
                    return match super::remove::remove(engine, id, true, true) {
                        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                        other => other,
                    };
                }
                // Under the container's lock, and only if no new run has begun: a `docker start`
                // that came in before this late callback has mounted the root again for itself.
                let _lock = engine.lock_container(id)?;
                let Some(row) = engine
                    .store()?
                    .read(|tx| Ok::<_, EngineError>(rows::get(tx, id)?))?
                else {
                    return Ok(());
                };
                let now = current(engine.paths(), id, &State::parse(&row.state));
                if now.status == ContainerStatus::Exited || now.status == ContainerStatus::Created {
                    crate::engine::networks::attach::bring_down(engine, id);
                    rootfs::teardown(engine, id)?;
                    crate::engine::volume_options::release_all(engine, id);
                }
            }
            Ok(())
        }
        "restarted" => {
            engine
                .store()?
                .write(|tx| container_event(tx, "start", &row, Map::new()))?;
            Ok(())
        }
        // The monitor saw the memory cgroup kill a process (before `died` when it was the init).
        "oom" => {
            engine
                .store()?
                .write(|tx| container_event(tx, "oom", &row, Map::new()))?;
            Ok(())
        }
        "health" => {
            // moby's action text: `health_status: <status>`, the container's attributes.
            let action = format!("health_status: {}", arg.unwrap_or_default());
            engine
                .store()?
                .write(|tx| container_event(tx, &action, &row, Map::new()))?;
            Ok(())
        }
        other => Err(EngineError::invalid(format!(
            "unknown container event {other:?}"
        ))),
    }
}
