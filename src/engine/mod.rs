//! What each operation does, without HTTP: the API layer and the command line call in here.
//!
//! Every call opens the store, does its work in transactions and returns; nothing is cached
//! between calls, because other processes change the store at any time.

pub mod error;
pub mod events;
pub mod image_archive;
pub mod image_import;
pub mod image_save;
pub mod images;
pub mod layers;
pub mod system;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::{EngineError, ErrorKind, Result};

use crate::config::Paths;
use crate::store::Store;

/// Settings of this engine instance.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub paths: Paths,
    /// OCI runtime binary name or path (`runc` by default).
    pub runtime: String,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineConfig>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            inner: Arc::new(config),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner
    }

    /// A fresh connection to the store; cheap, and safe to use from one blocking thread.
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.inner.paths.db())?)
    }

    /// A new scratch folder on the data root's filesystem, removed when the guard drops.
    pub fn scratch(&self, what: &str) -> Result<Scratch> {
        let base = self.inner.paths.tmp();
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
