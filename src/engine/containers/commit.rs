//! `POST /commit` (`docker commit`): the container's changes become a layer on top of its
//! image's, with the container's config (or the request's), `--change`s applied, as moby's
//! `CreateImageFromContainer` / `NewChildImage` build it.

use serde_json::{Map, Value, json};

use crate::image::changes::apply_changes;
use crate::image::config::ImageConfig;
use crate::model::Config;
use crate::store::images as image_rows;

use super::create::merge;
use super::{Engine, EngineError, Result, inspect, ops, resolve};
use crate::engine::images::child::{Child, register_child};
use crate::engine::images::repo_tag_reference;
use crate::engine::images::upper_layer::stage_upper;

pub struct CommitRequest {
    pub container: String,
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    pub changes: Vec<String>,
    /// A config to use instead of the container's (the request body).
    pub config: Option<Config>,
}

/// Commit; returns the new image's ID.
pub fn commit(engine: &Engine, req: CommitRequest) -> Result<String> {
    let row = engine.store()?.read(|tx| resolve(tx, &req.container))?;
    let tag = if req.repo.is_empty() {
        if !req.tag.is_empty() {
            return Err(EngineError::invalid(
                "invalid reference format: repository name must have at least one component",
            ));
        }
        None
    } else {
        Some(repo_tag_reference(&req.repo, &req.tag)?)
    };
    let container_config = row.config();
    let mut config = req
        .config
        .clone()
        .unwrap_or_else(|| container_config.clone());
    // Changes are Dockerfile instructions applied to the config object.
    let mut as_map = match serde_json::to_value(&config).map_err(EngineError::internal_cause)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    apply_changes(&mut as_map, &req.changes).map_err(EngineError::invalid_cause)?;
    config = serde_json::from_value(Value::Object(as_map)).map_err(EngineError::invalid_cause)?;
    merge(&mut config, &container_config);

    let (_, state) = ops::load(engine, &row.id)?;
    let pause =
        req.pause && state.status == super::state::ContainerStatus::Running && !state.paused;
    if pause {
        ops::pause(engine, &row.id)?;
    }
    let staged = (|| {
        let scratch = engine.scratch("commit")?;
        let upper = engine.paths().container_dir(&row.id).join("diff");
        let layer = stage_upper(engine, &scratch, "layer", &upper)?;
        Ok::<_, EngineError>((scratch, layer))
    })();
    if pause {
        let _ = ops::unpause(engine, &row.id);
    }
    let (_scratch, layer) = staged?;

    let parent = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(image_rows::get_image(tx, &row.image_id)?))?;
    let base = match &parent {
        Some(p) => ImageConfig::parse(&p.config).map_err(EngineError::internal_cause)?,
        None => ImageConfig(json!({})),
    };
    let child = Child {
        parent_id: if parent.is_some() { &row.image_id } else { "" },
        config: serde_json::to_value(&config).map_err(EngineError::internal_cause)?,
        container_config: serde_json::to_value(&container_config)
            .map_err(EngineError::internal_cause)?,
        container: &row.id,
        author: &req.author,
        comment: &req.comment,
        created_by: container_config.cmd.clone().unwrap_or_default().join(" "),
    };
    let (reg, _) = register_child(engine, &base, child, layer)?;
    if let Some(t) = &tag {
        crate::engine::images::tag(engine, &reg.id, &t.full(), "")?;
    }
    let image_ref = tag.map(|t| t.familiar()).unwrap_or_default();
    let mut extra = Map::new();
    extra.insert("comment".into(), json!(req.comment));
    extra.insert("imageID".into(), json!(reg.id));
    extra.insert("imageRef".into(), json!(image_ref));
    engine
        .store()?
        .write(|tx| inspect::container_event(tx, "commit", &row, extra))?;
    Ok(reg.id)
}
