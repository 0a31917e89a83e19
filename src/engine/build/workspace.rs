//! A build step's writable view of an image: an overlay of the image's layers with a fresh
//! upper directory in scratch space. COPY, ADD and WORKDIR write into it; the upper directory
//! then becomes the step's layer. Also used read-only for `COPY --from`.

use std::path::PathBuf;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::engine::{Engine, EngineError, Result};
use crate::store::images as image_rows;

pub struct Workspace {
    pub upper: PathBuf,
    pub merged: PathBuf,
    mounted: bool,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        self.unmount();
    }
}

impl Workspace {
    /// Mount `image_id`'s layers (none for `scratch`) under `dir`.
    pub fn mount(engine: &Engine, dir: &std::path::Path, image_id: &str) -> Result<Workspace> {
        let (upper, work, merged, empty) = (
            dir.join("diff"),
            dir.join("work"),
            dir.join("merged"),
            dir.join("empty"),
        );
        for d in [&upper, &work, &merged, &empty] {
            std::fs::create_dir_all(d)?;
        }
        let layers = if image_id.is_empty() {
            Vec::new()
        } else {
            engine
                .store()?
                .read(|tx| Ok::<_, EngineError>(image_rows::image_layers(tx, image_id)?))?
        };
        let mut lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| engine.paths().links().join(&l.link).display().to_string())
            .collect();
        if lower.is_empty() {
            lower.push(empty.display().to_string());
        }
        // The whole change must be in the upper dir as plain files (no redirects, no
        // metadata-only copies), since it becomes a layer tar.
        let data = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        // berth itself reads and writes here: no device node or set-id file takes effect.
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
            Some(data.as_str()),
        )
        .map_err(|e| EngineError::internal(format!("mounting the build step's root: {e}")))?;
        Ok(Workspace {
            upper,
            merged,
            mounted: true,
        })
    }

    pub fn unmount(&mut self) {
        if self.mounted {
            let _ = umount2(&self.merged, MntFlags::MNT_DETACH);
            self.mounted = false;
        }
    }
}
