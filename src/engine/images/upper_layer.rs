//! A new layer from an overlayfs upper directory (a container's changes, or a build step's):
//! the directory is written as an OCI layer tar (whiteouts converted) through a pipe into the
//! same staging that pulls and loads use, so the layer gets its diffID and split file.

use std::path::Path;

use crate::fstree::resolve::open_root;
use crate::fstree::tar_out::{OutOptions, TreeTar};

use super::layers::StagedLayer;
use crate::engine::{Engine, EngineError, Result, Scratch};

/// Docker's digest of an empty layer tar (1024 zero bytes): such a layer is not recorded.
pub const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// Names (in tar terms, no leading slash) left out of a container's layer: the mount points
/// and generated files Docker keeps in its init layer, which runc creates in berth's upper dir.
fn init_artifact(name: &str) -> bool {
    matches!(
        name.trim_end_matches('/'),
        ".dockerenv"
            | "etc/hostname"
            | "etc/hosts"
            | "etc/resolv.conf"
            | "etc/mtab"
            | "proc"
            | "sys"
            | "dev"
    )
}

/// Stage the contents of `upper` as a layer in `scratch` (`None` when it holds no change).
pub fn stage_upper(
    engine: &Engine,
    scratch: &Scratch,
    name: &str,
    upper: &Path,
) -> Result<Option<StagedLayer>> {
    if !upper.is_dir() {
        return Ok(None);
    }
    let root = open_root(upper).map_err(EngineError::internal_cause)?;
    let (reader, writer) = std::io::pipe()?;
    let staged = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut t = TreeTar::new(writer);
            let opts = OutOptions {
                overlay_whiteouts: true,
                skip: &init_artifact,
            };
            t.contents(std::os::fd::AsFd::as_fd(&root), "", &opts)?;
            t.finish().map(drop)
        });
        let staged = engine.stage_layer(scratch, name, reader);
        let produced = producer
            .join()
            .map_err(|_| EngineError::internal("layer writer panicked"))?;
        produced.map_err(EngineError::internal_cause)?;
        staged
    })?;
    if staged.diff_id == EMPTY_LAYER_DIFF_ID {
        return Ok(None);
    }
    Ok(Some(staged))
}
