//! The container's root: an overlay of the image's layers (read-only, through the short links
//! under `l/`) with the container's own upper and work dirs, mounted at `merged`.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::store::images as image_rows;

use super::super::{Engine, EngineError, Result};

pub fn merged(engine: &Engine, id: &str) -> PathBuf {
    engine.paths().container_dir(id).join("merged")
}

/// Is `path` a mount point (listed in this process's mount table)?
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    crate::util::mountinfo::mount_points()
        .iter()
        .any(|m| *m == want)
}

/// Mount the container's root if it is not mounted yet; returns the mount point.
pub fn setup(engine: &Engine, id: &str, image_id: &str) -> Result<PathBuf> {
    let dir = engine.paths().container_dir(id);
    let target = dir.join("merged");
    if is_mounted(&target) {
        return Ok(target);
    }
    for d in ["diff", "work", "merged"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let layers = {
        let mut store = engine.store()?;
        store.read(|tx| Ok::<_, EngineError>(image_rows::image_layers(tx, image_id)?))?
    };
    // Topmost layer first, as overlay wants; short links keep the option string small.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| engine.paths().links().join(&l.link).display().to_string())
        .collect();
    let data = if lower.is_empty() {
        // An image with no layers: an empty lower dir.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
            empty.display(),
            dir.join("diff").display(),
            dir.join("work").display()
        )
    } else {
        format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
            lower.join(":"),
            dir.join("diff").display(),
            dir.join("work").display()
        )
    };
    if data.len() > 4000 {
        return Err(EngineError::internal(format!(
            "image has too many layers to mount ({})",
            layers.len()
        )));
    }
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| EngineError::internal(format!("mounting the container's root: {e}")))?;
    Ok(target)
}

/// Unmount the container's root (if mounted).
pub fn teardown(engine: &Engine, id: &str) -> Result<()> {
    let target = merged(engine, id);
    if is_mounted(&target) {
        umount2(&target, MntFlags::MNT_DETACH)
            .map_err(|e| EngineError::internal(format!("unmounting the container's root: {e}")))?;
    }
    Ok(())
}

/// Bytes in the container's upper dir (what `docker container prune` reclaims).
pub fn upper_size(engine: &Engine, id: &str) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(md) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if md.is_dir() {
            std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        } else if md.is_file() {
            md.len()
        } else {
            0
        }
    }
    walk(&engine.paths().container_dir(id).join("diff"))
}

/// The root of a container that is not running, mounted for a copy, export or diff. The
/// container lock is held only while mounting and unmounting, never while a client reads or
/// writes (a client that goes quiet must not block `docker start` or `docker rm`); the root is
/// unmounted at the end only if this mounted it and the container has not started meanwhile.
pub struct AccessMount {
    engine: Engine,
    id: String,
    mounted_here: bool,
}

impl AccessMount {
    pub fn mount(engine: &Engine, id: &str, image_id: &str) -> Result<(PathBuf, AccessMount)> {
        let _lock = engine.lock_container(id)?;
        let was_mounted = is_mounted(&merged(engine, id));
        let path = setup(engine, id, image_id)?;
        Ok((
            path,
            AccessMount {
                engine: engine.clone(),
                id: id.to_string(),
                mounted_here: !was_mounted,
            },
        ))
    }
}

impl Drop for AccessMount {
    fn drop(&mut self) {
        if !self.mounted_here {
            return;
        }
        let Ok(_lock) = self.engine.lock_container(&self.id) else {
            return;
        };
        let running = super::ops::load(&self.engine, &self.id)
            .map(|(_, s)| s.is_running())
            .unwrap_or(false);
        if !running {
            let _ = teardown(&self.engine, &self.id);
        }
    }
}
