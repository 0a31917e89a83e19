//! Pulling images from registries: manifest resolution, layer download, verify, extract.
//!
//! The shape follows moby's `distribution/pull_v2.go`: resolve the manifest (errors here are
//! HTTP errors, before any output), then stream progress: `Pulling from`, per layer
//! `Already exists` or `Pulling fs layer` → `Waiting` → `Downloading` → `Verifying Checksum` →
//! `Download complete` → `Extracting` → `Pull complete`, then `Digest:` and `Status:`.
//!
//! Up to three blobs download at once; each is hashed while it is written to
//! `<data-root>/blobs/sha256/<hex>` (renamed there only once verified, so an interrupted pull
//! reuses it) and extracted as soon as it is complete (two layers at once, each into its own
//! directory), overlapping the other downloads; `Pull complete` is reported in layer order. The layers are staged in scratch space and the image appears only when one write
//! transaction commits its layers, rows, tag, digest and distribution metadata together.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Map, json};
use sha2::{Digest as _, Sha256};

use crate::engine::registry_errors;
use tokio::sync::Semaphore;

use crate::image::config::{ImageConfig, chain_ids};
use crate::image::reference::{self, Reference};
use crate::registry::client::CONFIG_LIMIT;
use crate::registry::manifest::{self as mf, Compression, Manifest};
use crate::registry::{
    AuthConfig, Descriptor, FetchedManifest, ImageManifest, Platform, RegistryClient,
    RegistryError, platform,
};
use crate::store::distribution::{self as dist, BlobRow};
use crate::store::images as rows;
use crate::util::time::now_nanos;
use crate::util::{digest_hex, short_id};

use super::layers;
use super::{LayerSource, NewImage, insert_with_layers};
use crate::engine::progress::{self, ProgressSender, Throttle};
use crate::engine::{Engine, EngineError, Result, Scratch};

mod blobs;
mod extract;
mod retry;

use blobs::*;
use extract::*;

/// moby's `max-concurrent-downloads` default.
const MAX_CONCURRENT_DOWNLOADS: usize = 3;
/// Layers extracted at once: extraction is CPU-bound (inflate, hashing), so about a core each.
const MAX_CONCURRENT_EXTRACTIONS: usize = 2;

/// What `POST /images/create?fromImage=` asks for.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// Name, plus a tag or a digest; neither means all tags.
    pub reference: Reference,
    /// `platform=`; `None` is the host's.
    pub platform: Option<Platform>,
}

impl PullRequest {
    pub fn all_tags(&self) -> bool {
        self.reference.tag().is_none() && self.reference.digest().is_none()
    }
}

fn is_digest(s: &str) -> bool {
    s.split_once(':').is_some_and(|(alg, hex)| {
        !alg.is_empty()
            && hex.len() >= 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// moby's `postImagesCreate`: a trailing `:` is dropped (old `pull -a`), `tag` may be a digest.
pub fn parse_request(from_image: &str, tag: &str, platform: &str) -> Result<PullRequest> {
    let image = from_image.strip_suffix(':').unwrap_or(from_image);
    let mut r = reference::parse_normalized(image)?;
    if !tag.is_empty() {
        r = if is_digest(tag) {
            r.trim_named().with_digest(tag)?
        } else {
            r.with_tag(tag)?
        };
    }
    let platform = if platform.is_empty() {
        None
    } else {
        Some(Platform::parse(platform).map_err(EngineError::invalid_cause)?)
    };
    Ok(PullRequest {
        reference: r,
        platform,
    })
}

/// A pull whose first manifest (or tag list) is known: ready to stream.
pub struct Prepared {
    client: Arc<RegistryClient>,
    request: PullRequest,
    first: Option<FetchedManifest>,
    tags: Vec<String>,
}

/// Contact the registry: everything that can fail before the first progress message.
pub async fn prepare(engine: &Engine, request: PullRequest, creds: AuthConfig) -> Result<Prepared> {
    let r = &request.reference;
    let client = RegistryClient::for_reference(&engine.config().registry, r, creds)
        .map_err(|e| registry_errors::pull(e, r))?;
    if request.all_tags() {
        let tags = client
            .list_tags()
            .await
            .map_err(|e| registry_errors::pull(e, r))?;
        return Ok(Prepared {
            client: Arc::new(client),
            request,
            first: None,
            tags,
        });
    }
    let wanted = r.digest().or(r.tag()).unwrap_or("latest").to_string();
    let first = client
        .get_manifest(&wanted)
        .await
        .map_err(|e| registry_errors::pull(e, r))?;
    Ok(Prepared {
        client: Arc::new(client),
        request,
        first: Some(first),
        tags: Vec::new(),
    })
}

/// Pull what was prepared, writing progress to `out`. An error is returned for the caller to
/// put in the stream.
pub async fn run(engine: Engine, p: Prepared, out: ProgressSender) -> Result<()> {
    let requested = p.request.reference.clone();
    let mut updated = false;
    let mut last_image = None;
    let mut mismatch = None;
    if let Some(first) = p.first {
        let (id, u, platform) = pull_one(
            &engine,
            &p.client,
            &requested,
            first,
            &p.request.platform,
            &out,
        )
        .await?;
        updated = u;
        last_image = Some(id);
        mismatch = p
            .request
            .platform
            .as_ref()
            .filter(|want| !want.matches(&platform))
            .map(|want| (want.display(), platform.display()));
    } else {
        let name = requested.clone().trim_named();
        for tag in &p.tags {
            let r = name.clone().with_tag(tag)?;
            let m = p
                .client
                .get_manifest(tag)
                .await
                .map_err(|e| registry_errors::pull(e, &r))?;
            let (id, u, _) = pull_one(&engine, &p.client, &r, m, &p.request.platform, &out).await?;
            updated |= u;
            last_image = Some(id);
        }
    }
    log_pull_event(&engine, &requested, last_image).await?;
    let status = if updated {
        "Downloaded newer image for"
    } else {
        "Image is up to date for"
    };
    out.send(&progress::message(
        "",
        &format!("Status: {status} {}", requested.familiar()),
    ))
    .await;
    // moby keeps a single-platform image that is not the one asked for, with a warning.
    if let Some((want, actual)) = mismatch {
        out.send(&progress::message(
            "",
            &format!(
                "WARNING: image with reference {} was found but its platform ({actual}) does not match the specified platform ({want})",
                requested.familiar()
            ),
        ))
        .await;
    }
    Ok(())
}

/// moby logs `pull` with the familiar reference as the actor and the familiar name as `name`,
/// plus the image's labels.
async fn log_pull_event(engine: &Engine, r: &Reference, image: Option<String>) -> Result<()> {
    let engine = engine.clone();
    let actor = r.familiar();
    let name = r.familiar_name();
    blocking(move || {
        let mut store = engine.store()?;
        store.write(|tx| {
            let mut attrs = Map::new();
            if let Some(id) = image
                && let Some(row) = rows::get_image(tx, &id)?
                && let Ok(cfg) = ImageConfig::parse(&row.config)
            {
                for (k, v) in cfg.labels() {
                    attrs.insert(k, json!(v));
                }
            }
            attrs.insert("name".into(), json!(name));
            crate::store::events::append(tx, now_nanos(), "image", "pull", &actor, &attrs)?;
            Ok::<_, EngineError>(())
        })
    })
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::internal(format!("internal error: {e}")))?
}

/// A clonable failure, so one download can be awaited by several layers.
type Shared<T> =
    futures_util::future::Shared<BoxFuture<'static, std::result::Result<T, Arc<EngineError>>>>;

fn unshare(e: Arc<EngineError>) -> EngineError {
    EngineError::new(e.kind, e.message.clone())
}

/// Pull one tag or digest; returns the image ID, whether the reference changed, and the
/// image's platform.
async fn pull_one(
    engine: &Engine,
    client: &Arc<RegistryClient>,
    r: &Reference,
    fetched: FetchedManifest,
    want: &Option<Platform>,
    out: &ProgressSender,
) -> Result<(String, bool, Platform)> {
    // moby shows the full reference for a digest, the tag otherwise.
    let tag_or_digest = if r.digest().is_some() {
        r.full()
    } else {
        r.tag().unwrap_or("latest").to_string()
    };
    out.send(&progress::message(
        &tag_or_digest,
        &format!("Pulling from {}", r.path()),
    ))
    .await;
    let manifest_digest = fetched.digest.clone();
    let manifest = resolve_platform(client, fetched, want)
        .await
        .map_err(|e| registry_errors::pull(e, r))?;
    check_media_types(&manifest)?;

    let config = client
        .get_blob_bytes(&manifest.config.digest, CONFIG_LIMIT)
        .await
        .map_err(|e| registry_errors::pull(e, r))?;
    let cfg = ImageConfig::parse(&config)
        .map_err(|e| EngineError::invalid(format!("invalid image config: {e}")))?;
    let os = cfg.str_field("os");
    if !os.is_empty() && os != "linux" {
        return Err(EngineError::invalid(format!(
            "image operating system \"{os}\" cannot be used on this platform"
        )));
    }
    let image_platform = Platform {
        architecture: cfg.str_field("architecture").to_string(),
        os: cfg.str_field("os").to_string(),
        variant: Some(cfg.str_field("variant").to_string()).filter(|v| !v.is_empty()),
        ..Default::default()
    };
    let diff_ids = cfg.diff_ids();
    if diff_ids.len() != manifest.layers.len() {
        return Err(root_fs_mismatch());
    }
    let chains = chain_ids(&diff_ids);
    let present = {
        let engine = engine.clone();
        let chains = chains.clone();
        blocking(move || {
            let paths = engine.paths().clone();
            let mut store = engine.store()?;
            store.read(|tx| {
                chains
                    .iter()
                    .map(|c| Ok(layers::present(tx, &paths, c)?.is_some()))
                    .collect::<Result<Vec<bool>>>()
            })
        })
        .await?
    };

    for (i, l) in manifest.layers.iter().enumerate() {
        let status = if present[i] {
            "Already exists"
        } else {
            "Pulling fs layer"
        };
        out.send(&progress::update(short_id(&l.digest), status))
            .await;
    }

    // Start every download now (three at a time); extract in order as they complete.
    let semaphore = Arc::new(Semaphore::new(MAX_CONCURRENT_DOWNLOADS));
    let mut downloads: HashMap<String, Shared<Blob>> = HashMap::new();
    // However this function ends, no download outlives it (a failure stops the others, as in
    // Docker; verified blobs already in the cache stay for the next pull).
    let mut running = AbortOnDrop(Vec::new());
    sweep_partials(&blob_dir(engine));
    for (i, l) in manifest.layers.iter().enumerate() {
        if present[i] || downloads.contains_key(&l.digest) {
            continue;
        }
        let task = tokio::spawn(download(
            engine.clone(),
            client.clone(),
            l.clone(),
            semaphore.clone(),
            out.clone(),
        ));
        running.0.push(task.abort_handle());
        let fut: BoxFuture<'static, std::result::Result<Blob, Arc<EngineError>>> = async move {
            match task.await {
                Ok(r) => r.map_err(Arc::new),
                Err(e) => Err(Arc::new(EngineError::internal(format!("download: {e}")))),
            }
        }
        .boxed();
        downloads.insert(l.digest.clone(), fut.shared());
    }

    // Each layer is extracted into a directory of its own, so layers are extracted side by side
    // as their downloads complete (order matters only at commit); they are reported in order.
    let scratch = Arc::new(engine.scratch("pull")?);
    let extracting = Arc::new(Semaphore::new(MAX_CONCURRENT_EXTRACTIONS));
    let mut extractions = Vec::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        if present[i] {
            extractions.push(None);
            continue;
        }
        let download = downloads[&l.digest].clone();
        let (engine, scratch, out, l, permits) = (
            engine.clone(),
            scratch.clone(),
            out.clone(),
            l.clone(),
            extracting.clone(),
        );
        let task = tokio::spawn(async move {
            let blob = download.await.map_err(unshare)?;
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(EngineError::internal_cause)?;
            let file = blob.file.clone();
            let staged = blocking(move || extract(&engine, &scratch, i, file, &l, &out)).await?;
            Ok::<_, EngineError>((blob, staged))
        });
        running.0.push(task.abort_handle());
        extractions.push(Some(task));
    }
    let mut sources = Vec::new();
    let mut blobs = Vec::new();
    let mut files = Vec::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        let Some(task) = extractions[i].take() else {
            sources.push(LayerSource::Present);
            continue;
        };
        let (blob, staged) = task
            .await
            .map_err(|e| EngineError::internal(format!("extract: {e}")))??;
        if staged.diff_id != diff_ids[i] {
            return Err(root_fs_mismatch());
        }
        out.send(&progress::update(short_id(&l.digest), "Pull complete"))
            .await;
        blobs.push(BlobRow {
            diff_id: staged.diff_id.clone(),
            digest: l.digest.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
            registry: r.domain().to_string(),
            repository: r.path().to_string(),
        });
        files.push(blob.path);
        sources.push(LayerSource::Staged(staged));
    }

    let (id, updated) = {
        let engine = engine.clone();
        let r = r.clone();
        let manifest_digest = manifest_digest.clone();
        let scratch = scratch.clone();
        blocking(move || {
            let out = commit(
                &engine,
                &config,
                sources,
                &chains,
                &r,
                &manifest_digest,
                &blobs,
            );
            drop(scratch);
            out
        })
        .await?
    };
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    out.send(&progress::message(
        "",
        &format!("Digest: {manifest_digest}"),
    ))
    .await;
    Ok((id, updated, image_platform))
}

fn root_fs_mismatch() -> EngineError {
    EngineError::invalid("layers from manifest don't match image configuration")
}

/// An index becomes the manifest for the wanted platform (the host's by default).
async fn resolve_platform(
    client: &RegistryClient,
    fetched: FetchedManifest,
    want: &Option<Platform>,
) -> std::result::Result<ImageManifest, RegistryError> {
    match fetched.manifest {
        Manifest::Image(m) => Ok(m),
        Manifest::Index(idx) => {
            let want = want.clone().unwrap_or_else(Platform::host);
            let entry = platform::select(&idx.manifests, &want)
                .ok_or_else(|| RegistryError::NoMatchingPlatform(want.display()))?;
            let inner = client.get_manifest(&entry.digest).await?;
            match inner.manifest {
                Manifest::Image(m) => Ok(m),
                Manifest::Index(_) => Err(RegistryError::InvalidManifest(
                    "an index inside an index is not supported".into(),
                )),
            }
        }
    }
}

/// moby's `validateMediaType` for the config, and only layer media types we can unpack.
fn check_media_types(m: &ImageManifest) -> Result<()> {
    let cfg = m.config.media_type.as_str();
    if !matches!(
        cfg,
        mf::MEDIA_DOCKER_CONFIG | mf::MEDIA_OCI_CONFIG | "application/octet-stream"
    ) {
        let class = if cfg.contains("helm") {
            "Helm chart"
        } else if cfg.contains("plugin") {
            "plugin"
        } else {
            "unknown"
        };
        return Err(EngineError::invalid(format!(
            "Encountered remote \"{cfg}\"({class}) when fetching"
        )));
    }
    for l in &m.layers {
        if mf::layer_compression(&l.media_type).is_none() {
            return Err(EngineError::invalid(format!(
                "unsupported media type {}",
                l.media_type
            )));
        }
    }
    Ok(())
}

/// Record the image: layers, image row, tag, `RepoDigests` and blob metadata in one write
/// transaction. Returns the image ID and whether the requested reference changed (moby's
/// `pullTag` result: a tag that already named this image is "up to date").
fn commit(
    engine: &Engine,
    config: &[u8],
    sources: Vec<LayerSource>,
    chains: &[String],
    r: &Reference,
    manifest_digest: &str,
    blobs: &[BlobRow],
) -> Result<(String, bool)> {
    let cfg = ImageConfig::parse(config).map_err(EngineError::invalid_cause)?;
    let id = crate::util::sha256_digest(config);
    let paths = engine.paths().clone();
    let mut store = engine.store()?;
    let now = now_nanos();
    store.write(|tx| {
        let image = NewImage {
            id: &id,
            config,
            cfg: &cfg,
            added: now,
        };
        insert_with_layers(tx, &paths, &image, &sources, chains, "pull")?;
        let repo = r.clone().trim_named().full();
        let updated = if r.digest().is_some() {
            // moby: a digest pull always reports a download.
            true
        } else {
            let before = rows::ref_target(tx, &r.full())?;
            rows::set_ref(tx, &r.full(), &id, false, now)?;
            before.as_deref() != Some(id.as_str())
        };
        dist::add_repo_digest(tx, &repo, manifest_digest, &id, now)?;
        for b in blobs {
            dist::record_blob(tx, b, now)?;
        }
        Ok::<_, EngineError>((id.clone(), updated))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pull_requests() {
        let r = parse_request("docker.io/library/busybox", "latest", "").unwrap();
        assert_eq!(r.reference.full(), "docker.io/library/busybox:latest");
        assert!(!r.all_tags());
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_request("127.0.0.1:5000/x", &d, "linux/arm64").unwrap();
        assert_eq!(r.reference.full(), format!("127.0.0.1:5000/x@{d}"));
        assert_eq!(r.platform.unwrap().architecture, "arm64");
        let r = parse_request("busybox:", "", "").unwrap();
        assert!(r.all_tags());
        let r = parse_request(&format!("x@{d}"), "", "").unwrap();
        assert_eq!(r.reference.digest(), Some(d.as_str()));
        assert!(parse_request("UPPER", "latest", "").is_err());
        assert!(parse_request("x", "bad tag", "").is_err());
        assert!(parse_request("x", "latest", "linux//").is_err());
    }
}
