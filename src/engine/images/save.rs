//! `docker save`: an archive both Docker (which reads `manifest.json`) and OCI tools (which read
//! `index.json`) can load, as Docker 25+ writes it. Layers are reassembled byte for byte.

use std::collections::HashSet;
use std::io::Write;

use serde_json::{Value, json};

use crate::image::reference::{self, Reference};
use crate::image::tarwrite::TarWriter;
use crate::store::images::{self as rows, LayerRow};
use crate::util::digest_hex;

use super::layers;
use super::resolve;
use crate::engine::{Engine, EngineError, Result};

pub struct SaveImage {
    id: String,
    config: Vec<u8>,
    layers: Vec<LayerRow>,
    tags: Vec<Reference>,
}

/// Resolve the names first, so an unknown one is an HTTP error before any byte is sent.
pub fn plan(engine: &Engine, names: &[String]) -> Result<Vec<SaveImage>> {
    let mut store = engine.store()?;
    store.read(|tx| {
        let mut out: Vec<SaveImage> = Vec::new();
        let mut add =
            |tx: &rusqlite::Transaction, id: &str, tag: Option<Reference>| -> Result<()> {
                if let Some(existing) = out.iter_mut().find(|s| s.id == id) {
                    if let Some(t) = tag
                        && !existing.tags.iter().any(|x| x.full() == t.full())
                    {
                        existing.tags.push(t);
                    }
                    return Ok(());
                }
                let img = rows::get_image(tx, id)?.ok_or_else(|| EngineError::no_such_image(id))?;
                out.push(SaveImage {
                    id: img.id.clone(),
                    config: img.config,
                    layers: rows::image_layers(tx, id)?,
                    tags: tag.into_iter().collect(),
                });
                Ok(())
            };
        for name in names {
            let by_name = reference::parse_normalized(name).ok();
            match by_name {
                // A bare repository name saves every tag of it.
                Some(r) if r.tag().is_none() && r.digest().is_none() => {
                    let mut any = false;
                    for rr in rows::all_refs(tx)? {
                        if rr.is_digest {
                            continue;
                        }
                        if let Ok(p) = reference::parse_normalized(&rr.name)
                            && p.name() == r.name()
                        {
                            add(tx, &rr.image_id, Some(p))?;
                            any = true;
                        }
                    }
                    if !any {
                        let img = resolve(tx, name)?;
                        add(tx, &img.id, None)?;
                    }
                }
                Some(r) if r.tag().is_some() && r.digest().is_none() => {
                    match rows::ref_target(tx, &r.full())? {
                        Some(id) => add(tx, &id, Some(r))?,
                        None => {
                            let img = resolve(tx, name)?;
                            add(tx, &img.id, None)?;
                        }
                    }
                }
                _ => {
                    let img = resolve(tx, name)?;
                    add(tx, &img.id, None)?;
                }
            }
        }
        Ok(out)
    })
}

/// Write the archive for planned images to `out`.
pub fn write(engine: &Engine, images: &[SaveImage], out: impl Write) -> Result<()> {
    let paths = engine.paths().clone();
    let mtime = 0;
    let mut tar = TarWriter::new(out, mtime);
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    let mut written: HashSet<String> = HashSet::new();
    let mut index_entries = Vec::new();
    let mut manifest_entries = Vec::new();
    for img in images {
        let config_hex = digest_hex(&img.id).to_string();
        if written.insert(config_hex.clone()) {
            tar.file(&format!("blobs/sha256/{config_hex}"), &img.config)?;
        }
        let mut layer_descs = Vec::new();
        let mut layer_paths = Vec::new();
        for l in &img.layers {
            let hex = digest_hex(&l.diff_id).to_string();
            if written.insert(hex.clone()) {
                tar.file_from(&format!("blobs/sha256/{hex}"), l.tar_size as u64, |w| {
                    layers::write_tar(&paths, l, w)
                })?;
            }
            layer_descs.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": l.diff_id,
                "size": l.tar_size,
            }));
            layer_paths.push(format!("blobs/sha256/{hex}"));
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": img.id,
                "size": img.config.len(),
            },
            "layers": layer_descs,
        }))
        .map_err(EngineError::internal_cause)?;
        let manifest_digest = crate::util::sha256_digest(&manifest);
        let manifest_hex = digest_hex(&manifest_digest).to_string();
        if written.insert(manifest_hex.clone()) {
            tar.file(&format!("blobs/sha256/{manifest_hex}"), &manifest)?;
        }
        let desc = |annotations: Option<Value>| {
            let mut d = json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
            });
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            d
        };
        if img.tags.is_empty() {
            index_entries.push(desc(None));
        }
        for t in &img.tags {
            index_entries.push(desc(Some(json!({
                "io.containerd.image.name": t.full(),
                "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
            }))));
        }
        let tags: Vec<String> = img.tags.iter().map(|t| t.familiar()).collect();
        manifest_entries.push(json!({
            "Config": format!("blobs/sha256/{config_hex}"),
            "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
            "Layers": layer_paths,
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index_entries,
    });
    tar.file("index.json", &to_bytes(&index)?)?;
    tar.file("manifest.json", &to_bytes(&json!(manifest_entries))?)?;
    tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    tar.finish()?;
    Ok(())
}

fn to_bytes(v: &Value) -> Result<Vec<u8>> {
    let mut b = serde_json::to_vec(v).map_err(EngineError::internal_cause)?;
    b.push(b'\n');
    Ok(b)
}
