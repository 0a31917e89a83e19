//! moby's `NewChildImage`: the config of an image made on top of another (a commit, a build
//! step), with its history entry and, when the change had any, one more layer.

use serde_json::{Map, Value, json};

use crate::image::config::ImageConfig;
use crate::util::time::{now_nanos, rfc3339_nano};

use super::layers::StagedLayer;
use super::{LayerSource, Registered, register};
use crate::engine::{Engine, Result};

/// What the child records besides its parent's layers and history.
pub struct Child<'a> {
    /// The parent's ID; empty for a first step on `scratch`.
    pub parent_id: &'a str,
    pub config: Value,
    pub container_config: Value,
    pub container: &'a str,
    pub author: &'a str,
    /// The image's own comment (commit `-m`); also the history entry's.
    pub comment: &'a str,
    pub created_by: String,
}

/// Register the child of `base`; `layer` is `None` when the change was empty.
pub fn register_child(
    engine: &Engine,
    base: &ImageConfig,
    child: Child,
    layer: Option<StagedLayer>,
) -> Result<(Registered, Value)> {
    let created = rfc3339_nano(now_nanos());
    let mut diff_ids = base.diff_ids();
    let mut sources: Vec<LayerSource> = diff_ids.iter().map(|_| LayerSource::Present).collect();
    let mut h = Map::new();
    h.insert("created".into(), json!(created));
    if !child.author.is_empty() {
        h.insert("author".into(), json!(child.author));
    }
    h.insert("created_by".into(), json!(child.created_by));
    if !child.comment.is_empty() {
        h.insert("comment".into(), json!(child.comment));
    }
    match layer {
        Some(l) => {
            diff_ids.push(l.diff_id.clone());
            sources.push(LayerSource::Staged(l));
        }
        None => {
            h.insert("empty_layer".into(), json!(true));
        }
    }
    let mut history = base.history();
    history.push(Value::Object(h));
    let arch = match base.str_field("architecture") {
        "" => super::import::arch().to_string(),
        a => a.to_string(),
    };
    let mut image = Map::new();
    image.insert("architecture".into(), json!(arch));
    if !child.author.is_empty() {
        image.insert("author".into(), json!(child.author));
    }
    if !child.comment.is_empty() {
        image.insert("comment".into(), json!(child.comment));
    }
    image.insert("config".into(), child.config);
    image.insert("container".into(), json!(child.container));
    image.insert("container_config".into(), child.container_config);
    image.insert("created".into(), json!(created));
    image.insert(
        "docker_version".into(),
        json!(concat!("berth-", env!("CARGO_PKG_VERSION"))),
    );
    image.insert("history".into(), Value::Array(history));
    image.insert("os".into(), json!("linux"));
    if !child.parent_id.is_empty() {
        image.insert("parent".into(), json!(child.parent_id));
    }
    image.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let image = Value::Object(image);
    let bytes = serde_json::to_vec(&image).map_err(crate::engine::EngineError::internal_cause)?;
    // No image event: moby records `commit` on the container and `tag` for a tag.
    let reg = register(engine, &bytes, sources, &[], "")?;
    Ok((reg, image))
}
