//! Which images a push sends: one tag, or every tag of the repository (`--all-tags`), read from
//! the store in one snapshot, with moby's error texts for what is missing.

use rusqlite::Transaction;

use crate::engine::{Engine, EngineError, Result};
use crate::image::reference::{self, Reference};
use crate::store::images::{self as rows, LayerRow};

/// One tag to push: the image it names, its config bytes (pushed as the config blob, so their
/// digest is the image ID) and its layers, bottom first.
#[derive(Debug, Clone)]
pub struct TagPlan {
    pub tag: String,
    pub image_id: String,
    pub config: Vec<u8>,
    pub layers: Vec<LayerRow>,
}

/// The tags of `repo` to push: just `tag`, or all of them in moby's (lexical) order.
pub fn plan(engine: &Engine, repo: &Reference, tag: Option<&str>) -> Result<Vec<TagPlan>> {
    let mut store = engine.store()?;
    store.read(|tx| plan_in(tx, repo, tag))
}

fn plan_in(tx: &Transaction, repo: &Reference, tag: Option<&str>) -> Result<Vec<TagPlan>> {
    let name = repo.name();
    // moby's `ReferencesByName`: every tag and digest reference of this repository.
    let mut refs: Vec<(String, Reference, String)> = Vec::new();
    for r in rows::all_refs(tx)? {
        if let Ok(p) = reference::parse_normalized(&r.name)
            && p.name() == name
        {
            refs.push((r.name.clone(), p, r.image_id));
        }
    }
    if refs.is_empty() {
        return Err(EngineError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            repo.familiar_name()
        )));
    }
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    let chosen: Vec<(String, String)> = match tag {
        Some(t) => {
            let full = repo.clone().with_tag(t)?;
            match refs.iter().find(|(_, p, _)| p.full() == full.full()) {
                Some((_, _, id)) => vec![(t.to_string(), id.clone())],
                None => {
                    return Err(EngineError::not_found(format!(
                        "tag does not exist: {}",
                        full.familiar()
                    )));
                }
            }
        }
        None => refs
            .iter()
            .filter(|(_, p, _)| p.digest().is_none())
            .filter_map(|(_, p, id)| p.tag().map(|t| (t.to_string(), id.clone())))
            .collect(),
    };
    if chosen.is_empty() {
        return Err(EngineError::not_found(format!(
            "no tags to push for {}",
            repo.familiar_name()
        )));
    }
    let mut out = Vec::new();
    for (tag, id) in chosen {
        let img = rows::get_image(tx, &id)?.ok_or_else(|| {
            EngineError::not_found(format!(
                "could not find image from tag {}:{tag}: image not known",
                repo.familiar_name()
            ))
        })?;
        out.push(TagPlan {
            tag,
            layers: rows::image_layers(tx, &img.id)?,
            image_id: img.id,
            config: img.config,
        });
    }
    Ok(out)
}
