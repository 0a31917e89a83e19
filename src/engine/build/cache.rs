//! The legacy build cache: a step is reused when a child of the current image was built with
//! an equal `container_config` (the instruction lives in its `Cmd`), as moby's image cache
//! compares them; the newest such child wins. With `cachefrom`, only images among the
//! ancestors of the given ones count.

use serde_json::{Map, Value, json};

use crate::engine::images::{LayerSource, register};
use crate::engine::{Engine, EngineError, Result};
use crate::image::config::ImageConfig;
use crate::store::images as rows;

/// Fields moby's `compare` looks at (Image, Hostname, Domainname, MacAddress are ignored).
const COMPARED: &[&str] = &[
    "AttachStderr",
    "AttachStdin",
    "AttachStdout",
    "Cmd",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "Healthcheck",
    "Labels",
    "NetworkDisabled",
    "OnBuild",
    "OpenStdin",
    "Shell",
    "StdinOnce",
    "StopSignal",
    "StopTimeout",
    "Tty",
    "User",
    "Volumes",
    "WorkingDir",
    "ArgsEscaped",
];

/// Unset, null, false, "" and empty collections are all the same "unset".
fn norm(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Bool(false)) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Value::Null,
        Some(other) => other.clone(),
    }
}

pub fn same_config(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    COMPARED.iter().all(|k| norm(a.get(*k)) == norm(b.get(*k)))
}

/// The cached image for a step on `parent` (whose config is `parent_image`) with `probe` as
/// its container config: a local child first, else, with `cachefrom`, a step restored from a
/// source image's history.
pub fn lookup(
    engine: &Engine,
    parent: &str,
    parent_image: &Value,
    probe: &Map<String, Value>,
    cache_from: &[String],
) -> Result<Option<String>> {
    if let Some(id) = local(engine, parent, probe, cache_from)? {
        return Ok(Some(id));
    }
    for name in cache_from {
        if let Some(id) = from_source(engine, name, parent, parent_image, probe)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// moby's `isValidParent` and `getCachedImage` for one `cachefrom` image (pulled images have
/// no parent links): if the source's history continues the parent's with this very step, the
/// step is the source itself (its last entry) or an image restored from the parent plus that
/// entry and its layer, which the source already holds.
fn from_source(
    engine: &Engine,
    name: &str,
    parent: &str,
    parent_image: &Value,
    probe: &Map<String, Value>,
) -> Result<Option<String>> {
    let Ok(src) = engine
        .store()?
        .read(|tx| crate::engine::images::resolve(tx, name))
    else {
        return Ok(None);
    };
    let Ok(source) = ImageConfig::parse(&src.config) else {
        return Ok(None);
    };
    let base = ImageConfig(parent_image.clone());
    let (ph, sh) = (base.history(), source.history());
    let (pd, sd) = (base.diff_ids(), source.diff_ids());
    if ph.len() >= sh.len()
        || pd.len() > sd.len()
        || sh[..ph.len()] != ph[..]
        || sd[..pd.len()] != pd[..]
    {
        return Ok(None);
    }
    let entry = &sh[ph.len()];
    let cmd: Vec<&str> = probe
        .get("Cmd")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if entry.get("created_by").and_then(Value::as_str) != Some(cmd.join(" ").as_str()) {
        return Ok(None);
    }
    if ph.len() + 1 == sh.len() {
        return Ok(Some(src.id));
    }
    let empty = entry
        .get("empty_layer")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut diff_ids = pd.clone();
    if !empty {
        match sd.get(pd.len()) {
            Some(d) => diff_ids.push(d.clone()),
            None => return Ok(None),
        }
    }
    let mut history = ph.clone();
    history.push(entry.clone());
    let mut image = Map::new();
    image.insert(
        "architecture".into(),
        json!(source.str_field("architecture")),
    );
    image.insert("config".into(), Value::Object(probe.clone()));
    image.insert(
        "created".into(),
        entry.get("created").cloned().unwrap_or(Value::Null),
    );
    image.insert("history".into(), Value::Array(history));
    image.insert("os".into(), json!(source.str_field("os")));
    if !parent.is_empty() {
        image.insert("parent".into(), json!(parent));
    }
    image.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let bytes = serde_json::to_vec(&Value::Object(image)).map_err(EngineError::internal_cause)?;
    let sources = diff_ids.iter().map(|_| LayerSource::Present).collect();
    Ok(Some(register(engine, &bytes, sources, &[], "")?.id))
}

/// A local child of `parent` built with `probe`, the newest.
fn local(
    engine: &Engine,
    parent: &str,
    probe: &Map<String, Value>,
    cache_from: &[String],
) -> Result<Option<String>> {
    let mut store = engine.store()?;
    store.read(|tx| {
        let allowed: Option<Vec<String>> = if cache_from.is_empty() {
            None
        } else {
            let mut ids = Vec::new();
            for name in cache_from {
                let Ok(img) = crate::engine::images::resolve(tx, name) else {
                    continue;
                };
                // The image and all its ancestors.
                let mut cur = Some(img.id);
                while let Some(id) = cur {
                    let next = rows::get_image(tx, &id)?
                        .map(|i| i.parent)
                        .filter(|p| !p.is_empty());
                    ids.push(id);
                    cur = next;
                }
            }
            Some(ids)
        };
        let mut best: Option<(i64, String)> = None;
        for child in rows::child_images(tx, parent)? {
            if allowed.as_ref().is_some_and(|a| !a.contains(&child)) {
                continue;
            }
            let Some(row) = rows::get_image(tx, &child)? else {
                continue;
            };
            let Ok(cfg) = ImageConfig::parse(&row.config) else {
                continue;
            };
            let Some(Value::Object(cc)) = cfg.0.get("container_config") else {
                continue;
            };
            if same_config(cc, probe) && best.as_ref().is_none_or(|(t, _)| row.created > *t) {
                best = Some((row.created, child));
            }
        }
        Ok::<_, EngineError>(best.map(|(_, id)| id))
    })
}
