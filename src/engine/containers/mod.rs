//! Containers: identity and names, the state that combines the store's record with the
//! monitor's files, and (in submodules) each operation.

pub(crate) mod archive;
pub mod boot;
pub(crate) mod cgroup_stats;
pub(crate) mod changes;
pub(crate) mod commit;
pub(crate) mod create;
pub mod exec;
pub mod exited;
pub(crate) mod inspect;
pub(crate) mod lifecycle;
pub(crate) mod logs;
pub(crate) mod names;
pub(crate) mod ops;
pub(crate) mod remove;
pub(crate) mod rootfs;
pub(crate) mod start;
pub(crate) mod state;

use std::fs::File;
use std::path::Path;

use crate::model::{Config, HostConfig};
use crate::store::containers::{self as rows, ContainerRow};
use rusqlite::Transaction;

use super::{Engine, EngineError, Result};

/// moby's `GetContainer`: full ID, then exact name (with or without `/`), then a unique ID prefix.
pub fn resolve(tx: &Transaction, name: &str) -> Result<ContainerRow> {
    if name.is_empty() {
        return Err(EngineError::not_found("No such container: "));
    }
    if name.len() == 64
        && let Some(c) = rows::get(tx, name)?
    {
        return Ok(c);
    }
    if let Some(c) = rows::by_name(tx, name.strip_prefix('/').unwrap_or(name))? {
        return Ok(c);
    }
    if name
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        let ids = rows::ids_with_prefix(tx, name)?;
        match ids.len() {
            0 => {}
            1 => {
                if let Some(c) = rows::get(tx, &ids[0])? {
                    return Ok(c);
                }
            }
            _ => {
                return Err(EngineError::invalid(format!(
                    "multiple IDs found with provided prefix: {name}"
                )));
            }
        }
    }
    Err(EngineError::not_found(format!("No such container: {name}")))
}

/// A stored `Config` or `HostConfig`. Rows written before the typed model (JSON as clients
/// sent it) decode with the same lenient rules; what cannot be read counts as unset rather
/// than making the container unusable.
fn from_stored<T: serde::de::DeserializeOwned + Default>(id: &str, what: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(%id, error = %e, "unreadable stored {what}");
        T::default()
    })
}

/// The typed views of a stored container.
impl ContainerRow {
    pub fn config(&self) -> Config {
        from_stored(&self.id, "Config", &self.config_json)
    }
    pub fn host_config(&self) -> HostConfig {
        from_stored(&self.id, "HostConfig", &self.host_config_json)
    }
}

/// How `Config` and `HostConfig` are stored: as they serialise.
pub fn to_stored<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(EngineError::internal_cause)
}

/// `HostConfig.LogConfig` as berth uses it: the driver (`json-file` unless set) and the
/// rotation options of the json-file driver.
pub struct LogSettings {
    pub driver: String,
    pub max_size: Option<String>,
    pub max_file: usize,
}

pub fn log_settings(hc: &HostConfig) -> LogSettings {
    LogSettings {
        driver: hc.log_driver().to_string(),
        max_size: hc.log_opt("max-size").map(String::from),
        max_file: hc
            .log_opt("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
    }
}

/// Record a container event (`attach`, `detach`, …) with moby's attributes.
pub fn record_event(engine: &Engine, name: &str, action: &str) -> Result<()> {
    let mut store = engine.store()?;
    let row = store.read(|tx| resolve(tx, name))?;
    store.write(|tx| inspect::container_event(tx, action, &row, serde_json::Map::new()))
}

/// `No such container` unless `name` resolves.
pub fn check_exists(engine: &Engine, name: &str) -> Result<()> {
    engine.store()?.read(|tx| resolve(tx, name).map(|_| ()))
}

/// Is the container still to (re)start, so that an attacher should keep waiting? False
/// once it is gone or has run and exited.
pub fn awaits_start(engine: &Engine, name: &str) -> bool {
    let Ok(row) = engine
        .store()
        .and_then(|mut s| s.read(|tx| resolve(tx, name)))
    else {
        return false;
    };
    let s = state::current(engine.paths(), &row.id, &state::State::parse(&row.state));
    matches!(
        s.status,
        state::ContainerStatus::Created | state::ContainerStatus::Restarting
    )
}

/// The json-file log of a container.
pub fn log_path(engine: &Engine, id: &str) -> std::path::PathBuf {
    engine
        .paths()
        .container_dir(id)
        .join(format!("{id}-json.log"))
}

/// An exclusive lock on one container for multi-step operations (start, stop, remove), held
/// across processes until dropped.
pub struct ContainerLock {
    _file: File,
}

impl Engine {
    pub fn lock_container(&self, id: &str) -> Result<ContainerLock> {
        let dir = self.paths().locks();
        std::fs::create_dir_all(&dir)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(id))?;
        file.lock()?;
        Ok(ContainerLock { _file: file })
    }
}

/// Remove a lock file once its container is gone.
pub fn forget_lock(engine: &Engine, id: &str) {
    let _ = std::fs::remove_file(engine.paths().locks().join(id));
}

/// Does a path exist, not following a final symlink.
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
