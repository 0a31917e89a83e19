//! Where berth keeps things: the data root (persistent) and the run root (tmpfs).

use std::path::{Path, PathBuf};

pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_RUN_ROOT: &str = "/run/berth";

/// The folders of one berth installation. Every process (serve, monitor) derives paths from here.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub run_root: PathBuf,
}

impl Paths {
    pub fn new(data_root: impl Into<PathBuf>, run_root: impl Into<PathBuf>) -> Paths {
        Paths {
            data_root: data_root.into(),
            run_root: run_root.into(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.data_root.join("berth.db")
    }

    /// `layers/<chain-id hex>/{diff,tar-split}`.
    pub fn layers(&self) -> PathBuf {
        self.data_root.join("layers")
    }

    pub fn layer_dir(&self, chain_hex: &str) -> PathBuf {
        self.layers().join(chain_hex)
    }

    /// Short symlinks to layer diffs, so that overlay `lowerdir` strings stay within one page.
    pub fn links(&self) -> PathBuf {
        self.data_root.join("l")
    }

    /// Scratch space on the same filesystem as the layers, so finished work is renamed into place.
    pub fn tmp(&self) -> PathBuf {
        self.data_root.join("tmp")
    }

    /// `containers/<id>/`: the bundle (config.json), the overlay upper and work dirs, the log,
    /// and the hostname, hosts and resolv.conf files.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    /// `volumes/`: one folder per local volume.
    pub fn volumes(&self) -> PathBuf {
        self.data_root.join("volumes")
    }

    /// `volumes/<name>/_data`: a local volume's content (Docker's layout).
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volumes().join(name).join("_data")
    }

    /// The monitor's folder on tmpfs: sockets, pid and state files. Named by the ID's first 16
    /// hex digits (64 bits) so that socket paths stay within `sun_path`'s 108 bytes.
    pub fn container_run_dir(&self, id: &str) -> PathBuf {
        self.run_root
            .join("containers")
            .join(&id[..id.len().min(16)])
    }

    /// The OCI runtime's state root (`runc --root`), apart from other users of runc.
    pub fn runtime_root(&self) -> PathBuf {
        self.run_root.join("runc")
    }

    /// Lock files for multi-step operations on one object.
    pub fn locks(&self) -> PathBuf {
        self.run_root.join("locks")
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }
}
