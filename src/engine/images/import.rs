//! `docker import`: one tar (maybe compressed) becomes a single-layer image, with `--change`
//! instructions applied to its config.

use std::io::Read;

use serde_json::{Map, Value, json};

use crate::image::changes::apply_changes;
use crate::util::time::{now_nanos, rfc3339_nano};

use super::{LayerSource, register, repo_tag_reference};
use crate::engine::{Engine, EngineError, Result};

pub struct ImportRequest<'a> {
    pub repo: &'a str,
    pub tag: &'a str,
    pub message: &'a str,
    pub source: &'a str,
    pub changes: &'a [String],
}

/// Import `body` as an image; returns the image ID.
pub fn import(engine: &Engine, req: &ImportRequest, body: impl Read) -> Result<String> {
    // Everything that can be checked is checked before the body is read.
    let tag = if req.repo.is_empty() {
        None
    } else {
        Some(repo_tag_reference(req.repo, req.tag)?)
    };
    let mut container_config = Map::new();
    apply_changes(&mut container_config, req.changes).map_err(EngineError::invalid_cause)?;
    let comment = if req.message.is_empty() {
        format!("Imported from {}", req.source)
    } else {
        req.message.to_string()
    };
    let scratch = engine.scratch("import")?;
    let staged = engine.stage_layer(&scratch, "layer", body)?;
    let created = rfc3339_nano(now_nanos());
    let config = json!({
        "architecture": arch(),
        "comment": comment,
        "config": Value::Object(container_config),
        "created": created,
        "docker_version": concat!("berth-", env!("CARGO_PKG_VERSION")),
        "history": [{"created": created, "comment": comment}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [staged.diff_id]},
    });
    let bytes = serde_json::to_vec(&config).map_err(EngineError::internal_cause)?;
    let tags: Vec<_> = tag.into_iter().collect();
    let reg = register(
        engine,
        &bytes,
        vec![LayerSource::Staged(staged)],
        &tags,
        "import",
    )?;
    Ok(reg.id)
}

pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}
