//! `docker load`: image archives as `docker save` writes them (Docker 20–28: `manifest.json`
//! with legacy or OCI-layout paths) and plain OCI image layouts (`index.json`), gzip or not.
//!
//! The archive is untrusted. Its files are spooled into scratch space under numbered names (so no
//! archive path ever becomes a host path), symlinks and hard links are followed only inside the
//! archive's own namespace, and each layer is extracted by `image::layer`, which confines it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::image::config::{ImageConfig, chain_ids};
use crate::image::layer;
use crate::image::reference::{self, Reference};
use crate::image::tar_limit::HeaderLimit;
use crate::util::{human_size, sha256_digest, short_id};

use super::{LayerSource, register};
use crate::engine::{Engine, EngineError, Result};

/// What an archive path stands for once spooled.
enum Node {
    File(PathBuf),
    Link(String),
}

/// The regular files of an archive, by normalised path.
struct Spool {
    nodes: HashMap<String, Node>,
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::invalid(msg.into())
}

/// Lexically normalise an archive path; `None` if it climbs out of the archive.
fn normalise(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|p| !p.is_empty()).collect()
    };
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl Spool {
    fn read(reader: impl Read, dir: &Path) -> Result<Spool> {
        std::fs::create_dir_all(dir)?;
        // HeaderLimit refuses huge PAX/long-name headers, which the tar crate would read into memory.
        let mut archive = tar::Archive::new(HeaderLimit::new(reader));
        let mut nodes = HashMap::new();
        let entries = archive
            .entries()
            .map_err(|e| bad(format!("invalid archive: {e}")))?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| bad(format!("invalid archive: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let path = String::from_utf8_lossy(&raw).into_owned();
            let Some(name) = normalise("", &path) else {
                return Err(bad(format!(
                    "invalid archive: entry {path:?} points outside the archive"
                )));
            };
            let kind = entry.header().entry_type();
            if kind.is_file() || kind == tar::EntryType::Continuous {
                let file = dir.join(n.to_string());
                let mut out = File::create(&file)?;
                io::copy(&mut entry, &mut out).map_err(|e| bad(format!("invalid archive: {e}")))?;
                nodes.insert(name, Node::File(file));
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let parent = if kind.is_symlink() {
                    name.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
                } else {
                    ""
                };
                let Some(resolved) = normalise(parent, &target) else {
                    return Err(bad(format!(
                        "invalid archive: link {path:?} points outside the archive"
                    )));
                };
                nodes.insert(name, Node::Link(resolved));
            }
        }
        // Drain what follows the end marker, so a client streaming the rest is not cut off.
        let mut rest = archive.into_inner().into_inner();
        io::copy(&mut rest, &mut io::sink()).ok();
        Ok(Spool { nodes })
    }

    fn path(&self, name: &str) -> Result<&Path> {
        let mut cur = normalise("", name).ok_or_else(|| bad(format!("invalid path {name:?}")))?;
        for _ in 0..16 {
            match self.nodes.get(&cur) {
                Some(Node::File(p)) => return Ok(p),
                Some(Node::Link(t)) => cur = t.clone(),
                None => break,
            }
        }
        Err(bad(format!("invalid archive: {name} is missing")))
    }

    fn has(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    fn bytes(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let p = self.path(name)?;
        let mut buf = Vec::new();
        File::open(p)?.take(limit).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

/// One image found in an archive.
struct Found {
    config_path: String,
    layer_paths: Vec<String>,
    tags: Vec<Reference>,
}

const JSON_LIMIT: u64 = 16 << 20;

/// Load images from an archive; `out` receives Docker's progress messages.
pub fn load(
    engine: &Engine,
    body: impl Read,
    quiet: bool,
    out: &mut dyn FnMut(Value),
) -> Result<()> {
    let scratch = engine.scratch("load")?;
    let spool = Spool::read(layer::decompressed(body)?, &scratch.dir.join("files"))?;
    let found = if spool.has("manifest.json") {
        legacy_manifest(&spool)?
    } else if spool.has("index.json") {
        oci_index(&spool)?
    } else {
        return Err(bad(
            "invalid archive: it holds neither manifest.json nor index.json",
        ));
    };
    for img in found {
        let config = spool.bytes(&img.config_path, JSON_LIMIT)?;
        let cfg = ImageConfig::parse(&config).map_err(|e| bad(e.to_string()))?;
        let os = cfg.str_field("os");
        if !os.is_empty() && os != "linux" {
            return Err(bad(format!(
                "image operating system \"{os}\" cannot be used on this platform"
            )));
        }
        let diff_ids = cfg.diff_ids();
        if diff_ids.len() != img.layer_paths.len() {
            return Err(bad(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                diff_ids.len(),
                img.layer_paths.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut sources = Vec::new();
        for (i, lp) in img.layer_paths.iter().enumerate() {
            if layer_present(engine, &chains[i])? {
                sources.push(LayerSource::Present);
                continue;
            }
            let file = File::open(spool.path(lp)?)?;
            let staged =
                engine.stage_layer(&scratch, &format!("layer{i}-{}", sources.len()), file)?;
            if staged.diff_id != diff_ids[i] {
                return Err(bad(format!(
                    "invalid diffID for layer {i}: expected {:?}, got {:?}",
                    diff_ids[i], staged.diff_id
                )));
            }
            if !quiet {
                let size = staged.tar_size;
                out(json!({
                    "status": "Loading layer",
                    "progressDetail": {"current": size, "total": size},
                    "progress": progress_bar(size, size),
                    "id": short_id(&diff_ids[i]),
                }));
            }
            sources.push(LayerSource::Staged(staged));
        }
        let reg = register(engine, &config, sources, &img.tags, "load")?;
        for (tag, old) in &reg.moved_tags {
            out(json!({"stream": format!(
                "The image {tag} already exists, renaming the old one with ID {old} to empty string\n"
            )}));
        }
        if img.tags.is_empty() {
            out(json!({"stream": format!("Loaded image ID: {}\n", reg.id)}));
        }
        for t in &img.tags {
            out(json!({"stream": format!("Loaded image: {}\n", t.familiar())}));
        }
    }
    Ok(())
}

fn layer_present(engine: &Engine, chain: &str) -> Result<bool> {
    let paths = engine.paths().clone();
    let mut store = engine.store()?;
    store.read(|tx| Ok(super::layers::present(tx, &paths, chain)?.is_some()))
}

/// Docker's progress bar text: `[=====>    ]  1.2MB/3.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = (current.min(total) * width).checked_div(total).unwrap_or(0) as usize;
    let bar = format!(
        "[{}>{}]",
        "=".repeat(filled),
        " ".repeat(width as usize - filled)
    );
    format!("{bar} {:>8}/{}", human_size(current), human_size(total))
}

fn legacy_manifest(spool: &Spool) -> Result<Vec<Found>> {
    let raw = spool.bytes("manifest.json", JSON_LIMIT)?;
    let items: Vec<Value> =
        serde_json::from_slice(&raw).map_err(|e| bad(format!("invalid manifest.json: {e}")))?;
    let mut found = Vec::new();
    for item in items {
        let config_path = item
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("invalid manifest.json: an entry has no Config"))?
            .to_string();
        let layer_paths = item
            .get("Layers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut tags = Vec::new();
        for t in item
            .get("RepoTags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let t = t.as_str().unwrap_or("");
            let r = reference::parse_normalized(t)?;
            if r.tag().is_none() {
                return Err(bad(format!("invalid tag {t:?}")));
            }
            tags.push(r);
        }
        found.push(Found {
            config_path,
            layer_paths,
            tags,
        });
    }
    Ok(found)
}

fn blob_path(desc: &Value) -> Result<String> {
    let digest = desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("invalid OCI layout: descriptor without digest"))?;
    crate::util::digest::validate(digest).map_err(|e| {
        bad(format!(
            "invalid digest {}: {e}",
            crate::util::go_quote(digest)
        ))
    })?;
    Ok(format!("blobs/sha256/{}", crate::util::digest_hex(digest)))
}

fn verified_blob(spool: &Spool, desc: &Value) -> Result<Vec<u8>> {
    let bytes = spool.bytes(&blob_path(desc)?, JSON_LIMIT)?;
    let want = desc.get("digest").and_then(Value::as_str).unwrap_or("");
    if sha256_digest(&bytes) != want {
        return Err(bad(format!("blob {want} does not match its digest")));
    }
    Ok(bytes)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn oci_index(spool: &Spool) -> Result<Vec<Found>> {
    let raw = spool.bytes("index.json", JSON_LIMIT)?;
    let index: Value =
        serde_json::from_slice(&raw).map_err(|e| bad(format!("invalid index.json: {e}")))?;
    // manifest digest -> (config path, layers, tags)
    let mut found: Vec<(String, Found)> = Vec::new();
    for desc in index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let tags = index_tags(desc);
        let Some(manifest_desc) = pick_manifest(spool, desc, 0)? else {
            continue;
        };
        let digest = manifest_desc
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some((_, f)) = found.iter_mut().find(|(d, _)| *d == digest) {
            f.tags.extend(tags);
            continue;
        }
        let manifest: Value = serde_json::from_slice(&verified_blob(spool, &manifest_desc)?)
            .map_err(|e| bad(format!("invalid image manifest: {e}")))?;
        let config_desc = manifest
            .get("config")
            .ok_or_else(|| bad("invalid image manifest: no config"))?;
        let config_path = blob_path(config_desc)?;
        let config = spool.bytes(&config_path, JSON_LIMIT)?;
        if sha256_digest(&config)
            != config_desc
                .get("digest")
                .and_then(Value::as_str)
                .unwrap_or("")
        {
            return Err(bad("image config does not match its digest"));
        }
        let mut layer_paths = Vec::new();
        for l in manifest
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mt = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
            if mt.contains("zstd") {
                return Err(bad(format!("unsupported layer media type {mt}")));
            }
            layer_paths.push(blob_path(l)?);
        }
        found.push((
            digest,
            Found {
                config_path,
                layer_paths,
                tags,
            },
        ));
    }
    Ok(found.into_iter().map(|(_, f)| f).collect())
}

/// The image names an index entry carries (containerd's and OCI's annotations).
fn index_tags(desc: &Value) -> Vec<Reference> {
    let ann = desc.get("annotations");
    let get = |k: &str| ann.and_then(|a| a.get(k)).and_then(Value::as_str);
    let candidate = get("io.containerd.image.name").or_else(|| {
        get("org.opencontainers.image.ref.name").filter(|n| n.contains('/') || n.contains(':'))
    });
    match candidate.map(reference::parse_normalized) {
        Some(Ok(r)) if r.tag().is_some() && r.digest().is_none() => vec![r],
        _ => Vec::new(),
    }
}

/// Follow nested indexes down to the manifest for this host's platform.
fn pick_manifest(spool: &Spool, desc: &Value, depth: usize) -> Result<Option<Value>> {
    let mt = desc.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if !INDEX_TYPES.contains(&mt) {
        return Ok(Some(desc.clone()));
    }
    if depth > 4 {
        return Err(bad("invalid OCI layout: indexes nested too deep"));
    }
    let index: Value = serde_json::from_slice(&verified_blob(spool, desc)?)
        .map_err(|e| bad(format!("invalid image index: {e}")))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let matches = |m: &Value| {
        let p = m.get("platform");
        let os = p.and_then(|p| p.get("os")).and_then(Value::as_str);
        let arch = p
            .and_then(|p| p.get("architecture"))
            .and_then(Value::as_str);
        (os.is_none() || os == Some("linux")) && (arch.is_none() || arch == Some(host_arch()))
    };
    for m in manifests.iter().filter(|m| matches(m)) {
        // Present blobs only: a multi-platform save may hold one platform's content.
        if blob_path(m).map(|p| spool.has(&p)).unwrap_or(false)
            && let Some(found) = pick_manifest(spool, m, depth + 1)?
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_inside_the_archive() {
        assert_eq!(normalise("", "./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalise("x/y", "../blobs/z").as_deref(), Some("x/blobs/z"));
        assert_eq!(normalise("", "../etc/passwd"), None);
        assert_eq!(normalise("a", "/blobs/z").as_deref(), Some("blobs/z"));
    }

    #[test]
    fn progress_bars_look_like_docker() {
        let s = progress_bar(4_261_376, 4_261_376);
        assert!(s.starts_with("[==================================================>]"));
        assert!(s.ends_with("4.261MB/4.261MB"));
    }
}
