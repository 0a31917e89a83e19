//! What each operation does, without HTTP: the API layer and the command line call in here.
//!
//! Every call opens the store, does its work in transactions and returns; nothing is cached
//! between calls, because other processes change the store at any time.

pub(crate) mod build;
pub mod containers;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod images;
pub(crate) mod kube;
pub(crate) mod networks;
pub(crate) mod pods;
pub(crate) mod progress;
pub(crate) mod registry_errors;
pub(crate) mod registry_ops;
pub(crate) mod search;
pub(crate) mod system;
pub(crate) mod volume_options;
pub(crate) mod volumes;

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use error::{EngineError, ErrorKind, Result};

use crate::config::Paths;
use crate::store::Store;

/// Settings of this engine instance.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub paths: Paths,
    /// OCI runtime binary name or path (`runc` by default).
    pub runtime: String,
    /// Insecure registries and mirrors (berth.toml).
    pub registry: crate::registry::RegistryConfig,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    /// Open connections to reuse: opening one costs more than most requests. Each transaction
    /// still reads the database afresh, so nothing here is state.
    idle: Mutex<Vec<Store>>,
}

/// A store connection borrowed from the engine; it goes back to the pool when dropped.
pub struct PooledStore {
    store: Option<Store>,
    engine: Engine,
}

impl Deref for PooledStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("present until drop")
    }
}

impl DerefMut for PooledStore {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("present until drop")
    }
}

impl Drop for PooledStore {
    fn drop(&mut self) {
        if let (Some(store), Ok(mut idle)) = (self.store.take(), self.engine.inner.idle.lock())
            && idle.len() < 8
        {
            idle.push(store);
        }
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.inner.config.paths
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// A connection to the store for one blocking thread: reused if one is idle, else opened.
    pub fn store(&self) -> Result<PooledStore> {
        let reused = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let store = match reused {
            Some(s) => s,
            None => Store::open(&self.inner.config.paths.db())?,
        };
        Ok(PooledStore {
            store: Some(store),
            engine: self.clone(),
        })
    }

    /// A new scratch folder on the data root's filesystem, removed when the guard drops.
    pub fn scratch(&self, what: &str) -> Result<Scratch> {
        let base = self.paths().tmp();
        std::fs::create_dir_all(&base)?;
        let dir = base.join(format!("{what}-{}", &crate::util::random_id()[..16]));
        std::fs::create_dir(&dir)?;
        Ok(Scratch { dir })
    }
}

/// A temporary folder that is removed (with all it holds) when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
