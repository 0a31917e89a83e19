//! One layer of a push, as moby's `pushDescriptor.Upload` does it: skip a blob the registry is
//! known to have (`Layer already exists`), mount it from another repository of the same
//! registry (`Mounted from …`), else compress and upload it (`Pushing` … `Pushed`). Failed
//! attempts are retried like moby's upload manager (5 attempts, `Retrying in N seconds`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use crate::engine::progress::{self, ProgressSender, Throttle};
use crate::engine::{Engine, EngineError};
use crate::image::reference::Reference;
use crate::registry::upload::{Started, UploadSession};
use crate::registry::{RegistryClient, RegistryError};
use crate::store::distribution::{self as dist, BlobRow};
use crate::store::images::LayerRow;
use crate::util::short_id;
use crate::util::time::now_nanos;

use super::body;
use super::compress::{self, BlobInfo};
use super::manifest::{Descriptor, LAYER_GZIP};

const MAX_ATTEMPTS: u32 = 5;
const SMALL_LAYER: i64 = 100 << 10;
const MIDDLE_LAYER: i64 = 10 << 20;
/// Blob media types a Docker schema 2 manifest may call `tar.gzip`.
const GZIP_TYPES: &[&str] = &[LAYER_GZIP, "application/vnd.oci.image.layer.v1.tar+gzip"];

/// What the layers of one push share.
pub struct Shared<'a> {
    pub engine: &'a Engine,
    pub client: &'a RegistryClient,
    /// The target repository, without tag.
    pub repo: &'a Reference,
    pub out: &'a ProgressSender,
    /// Layers known to be in the target repository (by diff ID), across the tags of a push.
    pub remote: &'a Mutex<HashMap<String, Descriptor>>,
}

/// Why an attempt failed, and whether another attempt may do better.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub retry: bool,
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        Failure {
            message: e.message,
            retry: false,
        }
    }
}

impl From<RegistryError> for Failure {
    /// moby's `retryOnError`: auth and "no such repository" answers are final; transport
    /// failures and other registry errors are retried. A transport error shows without the
    /// `Post "url":` part, as moby unwraps `url.Error` there.
    fn from(e: RegistryError) -> Failure {
        let final_codes = [
            "UNAUTHORIZED",
            "UNSUPPORTED",
            "DENIED",
            "TOOMANYREQUESTS",
            "NAME_UNKNOWN",
        ];
        match &e {
            RegistryError::Transport { message, .. } => Failure {
                message: message.clone(),
                retry: true,
            },
            RegistryError::NoBasicAuthCredentials { .. } => Failure {
                message: "no basic auth credentials".into(),
                retry: false,
            },
            RegistryError::TokenDenied { entry, .. } => Failure {
                message: entry.to_string(),
                retry: false,
            },
            RegistryError::Api { entry, .. } => Failure {
                message: entry.to_string(),
                retry: !final_codes.contains(&entry.code.as_str()),
            },
            // An unreadable error answer is final; a bare server error may pass.
            RegistryError::UnexpectedStatus { status, .. } => Failure {
                message: e.to_string(),
                retry: *status >= 500,
            },
            _ => Failure {
                message: e.to_string(),
                retry: true,
            },
        }
    }
}

/// Push one layer (with retries); returns its descriptor for the manifest.
pub async fn push(sh: &Shared<'_>, layer: &LayerRow) -> Result<Descriptor, Failure> {
    let id = short_id(&layer.diff_id).to_string();
    let mut attempt = 1;
    loop {
        match push_once(sh, layer, &id).await {
            Ok(d) => return Ok(d),
            Err(f) if !f.retry || attempt >= MAX_ATTEMPTS || sh.out.is_closed() => return Err(f),
            Err(f) => {
                tracing::warn!(layer = %layer.diff_id, error = %f.message, "upload failed, retrying");
                let mut delay = attempt * 5;
                while delay > 0 {
                    let s = if delay == 1 { "" } else { "s" };
                    sh.out
                        .send(&progress::update(
                            &id,
                            &format!("Retrying in {delay} second{s}"),
                        ))
                        .await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    delay -= 1;
                }
                attempt += 1;
            }
        }
    }
}

async fn push_once(sh: &Shared<'_>, layer: &LayerRow, id: &str) -> Result<Descriptor, Failure> {
    if let Some(d) = known_remote(sh, &layer.diff_id) {
        sh.out
            .send(&progress::update(id, "Layer already exists"))
            .await;
        return Ok(d);
    }
    let (max_mounts, max_checks, check_other_repos) = attempts_for(layer.size);
    let meta = candidates(sh, &layer.diff_id).await?;
    let mut checked: HashSet<String> = HashSet::new();
    // With anything known about this layer, one existence check first (any repository's digest).
    if !meta.is_empty()
        && let Some(d) = already_exists(sh, layer, id, &meta, true, 1, &mut checked).await?
    {
        return Ok(d);
    }
    // Then mounts from other repositories of this registry.
    let mut session: Option<UploadSession> = None;
    let mounts: Vec<&BlobRow> = meta
        .iter()
        .filter(|m| m.registry == sh.client.host() && m.repository != sh.client.repository())
        .take(max_mounts)
        .collect();
    for m in mounts {
        match sh
            .client
            .start_upload(Some((&m.digest, &m.repository)))
            .await
        {
            Ok(Started::Mounted) => {
                if let Some(s) = session.take() {
                    sh.client.cancel_upload(&s).await;
                }
                sh.out
                    .send(&progress::update(
                        id,
                        &format!("Mounted from {}", m.repository),
                    ))
                    .await;
                let size = match sh.client.stat_blob(&m.digest).await {
                    Ok(Some(stat)) => stat.size,
                    _ => m.size.max(0) as u64,
                };
                let d = Descriptor::layer(&m.digest, size);
                remember(sh, layer, &d).await?;
                return Ok(d);
            }
            Ok(Started::Upload(s)) => {
                if let Some(old) = session.replace(s) {
                    sh.client.cancel_upload(&old).await;
                }
                forget(sh, &m.digest, &m.registry, &m.repository).await;
            }
            Err(e) => {
                tracing::info!(digest = %m.digest, from = %m.repository, error = %e, "mount failed");
                if !e.is_unauthorized() {
                    forget(sh, &m.digest, &m.registry, &m.repository).await;
                }
            }
        }
    }
    if max_checks > checked.len()
        && let Some(d) = already_exists(
            sh,
            layer,
            id,
            &meta,
            check_other_repos,
            max_checks - checked.len(),
            &mut checked,
        )
        .await?
    {
        if let Some(s) = session.take() {
            sh.client.cancel_upload(&s).await;
        }
        return Ok(d);
    }
    let session = match session {
        Some(s) => s,
        None => match sh.client.start_upload(None).await? {
            Started::Upload(s) => s,
            Started::Mounted => {
                return Err(Failure {
                    message: "registry answered an upload request with 201 Created".into(),
                    retry: false,
                });
            }
        },
    };
    let info = match upload(sh, layer, id, &session).await {
        Ok(info) => info,
        Err(f) => {
            sh.client.cancel_upload(&session).await;
            return Err(f);
        }
    };
    sh.out.send(&progress::update(id, "Pushed")).await;
    let d = Descriptor::layer(&info.digest, info.size);
    remember(sh, layer, &d).await?;
    Ok(d)
}

/// moby's `getMaxMountAndExistenceCheckAttempts`: the bigger the layer, the more worth it is
/// to look for a copy before uploading.
fn attempts_for(size: i64) -> (usize, usize, bool) {
    if size > MIDDLE_LAYER {
        (4, 3, true)
    } else if size > SMALL_LAYER {
        (3, 1, false)
    } else {
        (1, 1, false)
    }
}

fn known_remote(sh: &Shared<'_>, diff_id: &str) -> Option<Descriptor> {
    sh.remote.lock().ok()?.get(diff_id).cloned()
}

/// What the store knows about this layer as gzip blobs, best candidates first: newest first,
/// then (stable) by how many path components the repository shares with the target.
async fn candidates(sh: &Shared<'_>, diff_id: &str) -> Result<Vec<BlobRow>, Failure> {
    let engine = sh.engine.clone();
    let diff = diff_id.to_string();
    let mut rows = blocking(move || {
        let mut store = engine.store()?;
        store.read(|tx| Ok::<_, EngineError>(dist::blobs_for_diff_id(tx, &diff)?))
    })
    .await?;
    rows.retain(|r| GZIP_TYPES.contains(&r.media_type.as_str()));
    let target_name = sh.repo.name();
    let target_parts: Vec<&str> = target_name.split('/').collect();
    let likeness = |r: &BlobRow| {
        let name = format!("{}/{}", r.registry, r.repository);
        name.split('/')
            .zip(target_parts.iter())
            .take_while(|(a, b)| a == *b)
            .count()
    };
    rows.sort_by_key(|r| std::cmp::Reverse(likeness(r)));
    Ok(rows)
}

/// moby's `layerAlreadyExists`: HEAD up to `max` not yet checked digests in the target
/// repository (only its own mappings unless `other_repos`).
async fn already_exists(
    sh: &Shared<'_>,
    layer: &LayerRow,
    id: &str,
    meta: &[BlobRow],
    other_repos: bool,
    max: usize,
    checked: &mut HashSet<String>,
) -> Result<Option<Descriptor>, Failure> {
    let own =
        |m: &BlobRow| m.registry == sh.client.host() && m.repository == sh.client.repository();
    let mut digests: Vec<&BlobRow> = Vec::new();
    for m in meta {
        if digests.len() >= max {
            break;
        }
        if !other_repos && !own(m) {
            continue;
        }
        if checked.contains(&m.digest) || digests.iter().any(|d| d.digest == m.digest) {
            continue;
        }
        digests.push(m);
    }
    for m in digests {
        checked.insert(m.digest.clone());
        match sh.client.stat_blob(&m.digest).await {
            Ok(Some(stat)) => {
                let d = Descriptor::layer(&m.digest, stat.size);
                remember(sh, layer, &d).await?;
                sh.out
                    .send(&progress::update(id, "Layer already exists"))
                    .await;
                return Ok(Some(d));
            }
            Ok(None) => {
                if own(m) {
                    forget(sh, &m.digest, &m.registry, &m.repository).await;
                }
            }
            Err(e) => {
                tracing::debug!(digest = %m.digest, error = %e, "blob existence check failed");
            }
        }
    }
    Ok(None)
}

/// Compress the layer on a blocking thread while the registry receives it; then commit.
async fn upload(
    sh: &Shared<'_>,
    layer: &LayerRow,
    id: &str,
    session: &UploadSession,
) -> Result<BlobInfo, Failure> {
    let (writer, body) = body::channel();
    let paths = sh.engine.paths().clone();
    let row = layer.clone();
    let out = sh.out.clone();
    let pid = id.to_string();
    let total = layer.size;
    let compressing = tokio::task::spawn_blocking(move || {
        let mut throttle = Throttle::default();
        // moby's progress reader: an update per 512 kB, or per 1% of small layers.
        let every = ((total as f64 * 0.01) as u64).clamp(1, 512 << 10);
        let mut sent = 0u64;
        let result = compress::compress_layer(&paths, &row, writer, |n| {
            if n - sent > every && throttle.ready(false) {
                sent = n;
                out.blocking_send(&progress::counts(&pid, "Pushing", n as i64, total));
            }
        });
        match result {
            Ok((writer, info)) => {
                let mut writer = writer;
                let flushed = std::io::Write::flush(&mut writer);
                drop(writer);
                flushed.map(|_| info).map_err(EngineError::from)
            }
            Err(e) => Err(e),
        }
    });
    let patched = sh.client.send_chunk(session, body).await;
    let compressed = compressing.await.map_err(|e| Failure {
        message: format!("compressing layer: {e}"),
        retry: false,
    })?;
    let info = match (compressed, patched) {
        (Ok(info), Ok(next)) => {
            sh.out
                .send(&progress::counts(id, "Pushing", layer.tar_size, layer.size))
                .await;
            sh.client
                .finish_upload(&next, &info.digest, Bytes::new())
                .await?;
            info
        }
        // A layer we cannot read is final; a body stopped by the registry is the registry's story.
        (Err(e), _) if !e.message.contains(body::STOPPED) => return Err(e.into()),
        (_, Err(e)) => return Err(e.into()),
        (Err(e), Ok(_)) => return Err(e.into()),
    };
    Ok(info)
}

/// Remember that the target repository has this layer as `d` (for later pushes and mounts).
async fn remember(sh: &Shared<'_>, layer: &LayerRow, d: &Descriptor) -> Result<(), Failure> {
    if let Ok(mut m) = sh.remote.lock() {
        m.insert(layer.diff_id.clone(), d.clone());
    }
    let engine = sh.engine.clone();
    let row = BlobRow {
        diff_id: layer.diff_id.clone(),
        digest: d.digest.clone(),
        media_type: LAYER_GZIP.to_string(),
        size: d.size as i64,
        registry: sh.client.host().to_string(),
        repository: sh.client.repository().to_string(),
    };
    blocking(move || {
        let mut store = engine.store()?;
        store.write(|tx| Ok::<_, EngineError>(dist::record_blob(tx, &row, now_nanos())?))
    })
    .await
}

/// Forget a mapping the registry contradicted (best effort).
async fn forget(sh: &Shared<'_>, digest: &str, registry: &str, repository: &str) {
    let engine = sh.engine.clone();
    let (d, r, p) = (
        digest.to_string(),
        registry.to_string(),
        repository.to_string(),
    );
    let _ = blocking(move || {
        let mut store = engine.store()?;
        store.write(|tx| Ok::<_, EngineError>(dist::forget_blob(tx, &d, &r, &p)?))
    })
    .await;
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Failure::from),
        Err(e) => Err(Failure {
            message: format!("internal error: {e}"),
            retry: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::error::ApiErrorEntry;

    #[test]
    fn attempts_grow_with_size() {
        assert_eq!(attempts_for(1000), (1, 1, false));
        assert_eq!(attempts_for(200 << 10), (3, 1, false));
        assert_eq!(attempts_for(20 << 20), (4, 3, true));
    }

    #[test]
    fn failures_read_as_moby_shows_them() {
        let f = Failure::from(RegistryError::NoBasicAuthCredentials {
            method: "Post".into(),
            url: "http://r/v2/x/blobs/uploads/".into(),
        });
        assert_eq!(f.message, "no basic auth credentials");
        assert!(!f.retry);
        let f = Failure::from(RegistryError::Transport {
            method: "Patch".into(),
            url: "http://r/u".into(),
            message: "dial tcp 127.0.0.1:1: connect: connection refused".into(),
        });
        assert_eq!(
            f.message,
            "dial tcp 127.0.0.1:1: connect: connection refused"
        );
        assert!(f.retry);
        let f = Failure::from(RegistryError::Api {
            status: 401,
            entry: ApiErrorEntry {
                code: "UNAUTHORIZED".into(),
                message: "authentication required".into(),
            },
        });
        assert_eq!(f.message, "unauthorized: authentication required");
        assert!(!f.retry);
    }
}
