//! `docker push`: send an image's layers, config and manifest to its registry, as Docker 28
//! with the graphdriver store does — Docker v2 schema 2 manifests with gzip layers, five
//! layers at a time — and with its progress messages:
//!
//! ```text
//! {"status":"The push refers to repository [127.0.0.1:5000/x]"}
//! {"status":"Preparing","progressDetail":{},"id":"<diffID short>"}   (top layer first)
//! {"status":"Waiting",…} {"status":"Pushing","progressDetail":{"current","total"},…}
//! {"status":"Pushed",…} | {"status":"Layer already exists",…} | {"status":"Mounted from x",…}
//! {"status":"latest: digest: sha256:… size: 528"}
//! {"progressDetail":{},"aux":{"Tag":"latest","Digest":"sha256:…","Size":528}}
//! ```
//!
//! Everything after the first line goes in-stream, errors too (moby writes that line before it
//! looks at the local images).

mod body;
mod compress;
mod layer;
mod manifest;
mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::future::try_join_all;
use serde_json::{Map, json};
use tokio::sync::Semaphore;

use crate::engine::registry_errors;
use crate::image::config::ImageConfig;
use crate::image::reference::{self, Reference};
use crate::registry::{AuthConfig, Platform, RegistryClient};
use crate::store::distribution as dist;
use crate::util::short_id;
use crate::util::time::now_nanos;

use crate::engine::progress::{self, ProgressSender};
use crate::engine::{Engine, EngineError, ErrorKind, Result};

use layer::Shared;
use manifest::{Descriptor, MANIFEST_V2};
use plan::TagPlan;

/// moby's `max-concurrent-uploads` default.
const CONCURRENT_UPLOADS: usize = 5;

/// What to push: a repository, and one tag of it or (none) all of them.
#[derive(Debug, Clone)]
pub struct PushTarget {
    pub repo: Reference,
    pub tag: Option<String>,
}

impl PushTarget {
    /// The path's name and the `tag` query, decoded as moby's router does (errors are HTTP 400s
    /// before the stream starts). A name that carries a tag and no `tag` query pushes that tag.
    pub fn parse(name: &str, tag: &str) -> Result<PushTarget> {
        let r = reference::parse_normalized(name)?;
        if !tag.is_empty() {
            if r.digest().is_some() {
                return Err(EngineError::invalid("cannot import digest reference"));
            }
            let tagged = r.with_tag(tag)?;
            return Ok(PushTarget {
                tag: tagged.tag().map(String::from),
                repo: tagged.trim_named(),
            });
        }
        Ok(PushTarget {
            tag: r.tag().map(String::from),
            repo: r.trim_named(),
        })
    }

    /// The reference as moby names it in events: `127.0.0.1:5000/x:v1`, or the repository.
    fn familiar(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repo.familiar_name()),
            None => self.repo.familiar_name(),
        }
    }
}

/// `push --platform` (API 1.46+): with one image per tag, moby only checks that the image
/// pushed is for that platform, before the stream starts.
pub fn check_platform(engine: &Engine, target: &PushTarget, wanted: &Platform) -> Result<()> {
    let name = match &target.tag {
        Some(t) => format!("{}:{t}", target.repo.name()),
        None => target.repo.name(),
    };
    let mut store = engine.store()?;
    let img = store.read(|tx| super::resolve(tx, &name))?;
    let cfg = ImageConfig::parse(&img.config)
        .map_err(|e| EngineError::internal(format!("image {}: {e}", img.id)))?;
    let variant = cfg.str_field("variant");
    let have = Platform {
        os: cfg.str_field("os").to_string(),
        architecture: cfg.str_field("architecture").to_string(),
        variant: (!variant.is_empty()).then(|| variant.to_string()),
        ..Platform::default()
    };
    if wanted.matches(&have) {
        return Ok(());
    }
    Err(EngineError::not_found(format!(
        "image with reference {} was found but its platform ({}) does not match the specified platform ({})",
        target.familiar(),
        have.display(),
        wanted.display()
    )))
}

/// moby's `DecodePlatform` for the `platform` query (JSON), with its texts.
pub fn decode_platform(json: &str) -> Result<Platform> {
    // Go leaves absent fields empty; the checks below name what is missing.
    #[derive(serde::Deserialize)]
    struct Wire {
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        os: String,
        #[serde(default, rename = "os.version")]
        os_version: String,
        #[serde(default, rename = "os.features")]
        os_features: Vec<String>,
        #[serde(default)]
        variant: String,
    }
    let w: Wire = serde_json::from_str(json)
        .map_err(|e| EngineError::invalid(format!("failed to parse platform: {e}")))?;
    let optional = !w.variant.is_empty() || !w.os_version.is_empty() || !w.os_features.is_empty();
    if w.os.is_empty() && w.architecture.is_empty() && optional {
        return Err(EngineError::invalid(
            "optional platform fields provided, but OS and Architecture are missing",
        ));
    }
    if w.os.is_empty() || w.architecture.is_empty() {
        return Err(EngineError::invalid(
            "both OS and Architecture must be provided",
        ));
    }
    Ok(Platform {
        architecture: w.architecture,
        os: w.os,
        os_version: (!w.os_version.is_empty()).then_some(w.os_version),
        os_features: (!w.os_features.is_empty()).then_some(w.os_features),
        variant: (!w.variant.is_empty()).then_some(w.variant),
    })
}

/// Push `target`, writing progress to `out`; an error ends the stream as Docker's in-stream
/// error message.
pub async fn push(engine: Engine, target: PushTarget, creds: AuthConfig, out: ProgressSender) {
    // Like moby, stop when the client goes away: dropping the work cancels its requests, and
    // the compressors stop when their uploads no longer read.
    tokio::select! {
        r = run(&engine, &target, creds, &out) => {
            if let Err(e) = r {
                tracing::info!(repo = %target.repo, error = %e.message, "push failed");
                out.send(&progress::error(&e.message)).await;
            }
        }
        () = client_gone(&out) => {
            tracing::info!(repo = %target.repo, "push cancelled: the client went away");
        }
    }
}

async fn client_gone(out: &ProgressSender) {
    while !out.is_closed() {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn run(
    engine: &Engine,
    target: &PushTarget,
    creds: AuthConfig,
    out: &ProgressSender,
) -> Result<()> {
    let repo = &target.repo;
    out.send(&progress::message(
        "",
        &format!("The push refers to repository [{}]", repo.name()),
    ))
    .await;
    let plans = {
        let (engine, repo, tag) = (engine.clone(), repo.clone(), target.tag.clone());
        blocking(move || plan::plan(&engine, &repo, tag.as_deref())).await?
    };
    let client = RegistryClient::for_reference(&engine.config().registry, repo, creds)
        .map_err(registry_errors::push)?;
    // moby pings the registry before anything else; its failure reads `Get "…/v2/": …`.
    client.base_url().await.map_err(registry_errors::push)?;
    let remote = Mutex::new(HashMap::new());
    let shared = Shared {
        engine,
        client: &client,
        repo,
        out,
        remote: &remote,
    };
    for p in &plans {
        push_tag(&shared, p).await?;
    }
    let (engine, target) = (engine.clone(), target.clone());
    blocking(move || push_event(&engine, &target)).await
}

async fn push_tag(sh: &Shared<'_>, p: &TagPlan) -> Result<()> {
    let out = sh.out;
    // moby lists the layers top first, announces each, then uploads each diff ID once.
    let top_first: Vec<_> = p.layers.iter().rev().collect();
    for l in &top_first {
        out.send(&progress::update(short_id(&l.diff_id), "Preparing"))
            .await;
    }
    let mut seen = HashSet::new();
    let unique: Vec<_> = top_first
        .into_iter()
        .filter(|l| seen.insert(l.diff_id.as_str()))
        .collect();
    let gate = Semaphore::new(CONCURRENT_UPLOADS);
    let mut uploads = Vec::new();
    for (i, l) in unique.iter().enumerate() {
        if i >= CONCURRENT_UPLOADS {
            out.send(&progress::update(short_id(&l.diff_id), "Waiting"))
                .await;
        }
        let gate = &gate;
        uploads.push(async move {
            let _permit = gate.acquire().await.map_err(|e| layer::Failure {
                message: e.to_string(),
                retry: false,
            })?;
            layer::push(sh, l).await.map(|d| (l.diff_id.clone(), d))
        });
    }
    let pushed: HashMap<String, Descriptor> = try_join_all(uploads)
        .await
        .map_err(|f| EngineError::new(ErrorKind::Unavailable, f.message))?
        .into_iter()
        .collect();
    let layers: Vec<Descriptor> = p
        .layers
        .iter()
        .filter_map(|l| pushed.get(&l.diff_id).cloned())
        .collect();

    let config = config_blob(sh.client, &p.image_id, &p.config).await?;
    let bytes = manifest::schema2(&config, &layers);
    let digest = crate::util::sha256_digest(&bytes);
    let size = bytes.len();
    sh.client
        .put_manifest(&p.tag, MANIFEST_V2, Bytes::from(bytes))
        .await
        .map_err(registry_errors::push)?;
    out.send(&progress::message(
        "",
        &format!("{}: digest: {digest} size: {size}", p.tag),
    ))
    .await;
    {
        let (engine, name, digest, id) = (
            sh.engine.clone(),
            sh.repo.name(),
            digest.clone(),
            p.image_id.clone(),
        );
        blocking(move || {
            let mut store = engine.store()?;
            store.write(|tx| {
                Ok::<_, EngineError>(dist::add_repo_digest(tx, &name, &digest, &id, now_nanos())?)
            })
        })
        .await?;
    }
    out.send(&progress::aux(
        json!({"Tag": p.tag, "Digest": digest, "Size": size}),
    ))
    .await;
    Ok(())
}

/// The config blob: the image's config bytes as stored (their digest is the image ID), sent
/// unless the repository has them.
async fn config_blob(client: &RegistryClient, image_id: &str, config: &[u8]) -> Result<Descriptor> {
    if let Some(stat) = client
        .stat_blob(image_id)
        .await
        .map_err(registry_errors::push)?
    {
        return Ok(Descriptor::config(image_id, stat.size));
    }
    let digest = client
        .put_blob(Bytes::copy_from_slice(config))
        .await
        .map_err(registry_errors::push)?;
    Ok(Descriptor::config(&digest, config.len() as u64))
}

/// moby's `LogImageEvent(ctx, FamiliarString(ref), FamiliarName(repo), "push")`: the actor is
/// the reference pushed, with the image's labels and the repository's name.
fn push_event(engine: &Engine, target: &PushTarget) -> Result<()> {
    let actor = target.familiar();
    let mut store = engine.store()?;
    store.write(|tx| {
        let mut attrs = Map::new();
        if let Ok(img) = super::resolve(tx, &actor)
            && let Ok(cfg) = ImageConfig::parse(&img.config)
        {
            for (k, v) in cfg.labels() {
                attrs.insert(k, json!(v));
            }
        }
        attrs.insert("name".into(), json!(target.repo.familiar_name()));
        crate::store::events::append(tx, now_nanos(), "image", "push", &actor, &attrs)?;
        Ok(())
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::internal(format!("internal error: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_router() {
        let t = PushTarget::parse("127.0.0.1:5000/x", "v1").unwrap();
        assert_eq!(t.repo.name(), "127.0.0.1:5000/x");
        assert_eq!(t.tag.as_deref(), Some("v1"));
        assert_eq!(t.familiar(), "127.0.0.1:5000/x:v1");
        let t = PushTarget::parse("docker.io/library/busybox", "").unwrap();
        assert_eq!(t.tag, None);
        assert_eq!(t.familiar(), "busybox");
        let t = PushTarget::parse("127.0.0.1:5000/x:v2", "").unwrap();
        assert_eq!(t.tag.as_deref(), Some("v2"));
        assert_eq!(
            PushTarget::parse("x", "bad tag").unwrap_err().message,
            "invalid tag format"
        );
        assert!(PushTarget::parse("UPPER", "").is_err());
    }

    #[test]
    fn platforms_decode_as_moby_checks_them() {
        let p = decode_platform(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#).unwrap();
        assert_eq!(p.display(), "linux/arm64/v8");
        let e = |s: &str| decode_platform(s).unwrap_err().message;
        assert_eq!(e("{}"), "both OS and Architecture must be provided");
        assert_eq!(
            e(r#"{"os":"linux"}"#),
            "both OS and Architecture must be provided"
        );
        assert_eq!(
            e(r#"{"variant":"v7"}"#),
            "optional platform fields provided, but OS and Architecture are missing"
        );
        assert!(e("linux/arm64").starts_with("failed to parse platform: "));
    }
}
