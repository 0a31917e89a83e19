//! The legacy build cache: a step is reused when a child of the current image was built with
//! an equal `container_config` (the instruction lives in its `Cmd`), as moby's image cache
//! compares them; the newest such child wins. With `cachefrom`, only images among the
//! ancestors of the given ones count.

use serde_json::{Map, Value};

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

/// The cached image for a step on `parent` with `probe` as its container config.
pub fn lookup(
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
