//! Containers: identity and names, the state that combines the store's record with the
//! monitor's files, and (in submodules) each operation.

pub mod boot;
pub mod cgroup_stats;
pub mod create;
pub mod exec;
pub mod exited;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod names;
pub mod ops;
pub mod remove;
pub mod rootfs;
pub mod start;
pub mod state;

use std::fs::File;
use std::path::Path;

use rusqlite::Transaction;
use serde_json::{Map, Value};

use crate::store::containers::{self as rows, ContainerRow};

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

/// Parse a JSON object stored as text.
pub fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// `HostConfig.LogConfig` as berth uses it: the driver (`json-file` unless set) and the
/// rotation options of the json-file driver.
pub struct LogSettings {
    pub driver: String,
    pub max_size: Option<String>,
    pub max_file: usize,
}

pub fn log_settings(hc: &Map<String, Value>) -> LogSettings {
    let log = hc.get("LogConfig");
    let opt = |k: &str| {
        log.and_then(|l| l.get("Config"))
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };
    LogSettings {
        driver: log
            .and_then(|l| l.get("Type"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("json-file")
            .to_string(),
        max_size: opt("max-size"),
        max_file: opt("max-file").and_then(|s| s.parse().ok()).unwrap_or(1),
    }
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
