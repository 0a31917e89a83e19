//! The blob cache of pulls: downloads hashed as they arrive, resumed with `Range`, kept
//! verified under `<data-root>/blobs/sha256/` until a pull commits, swept when abandoned.

use super::*;

/// Where verified blobs wait for extraction: `<data-root>/blobs/sha256/<hex>`.
pub(super) fn blob_dir(engine: &Engine) -> PathBuf {
    engine.paths().data_root.join("blobs").join("sha256")
}

/// Aborts the download tasks it holds when dropped.
pub(super) struct AbortOnDrop(pub(super) Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// A verified blob in the cache, opened: another pull may remove the path once it commits,
/// the open file stays readable.
#[derive(Clone)]
pub(super) struct Blob {
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
}

/// Remove what interrupted pulls left behind: partial downloads older than an hour (one in
/// progress elsewhere is younger) and verified blobs no pull came back for within a day.
pub(super) fn sweep_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let hour = std::time::Duration::from_secs(3600);
    for e in entries.flatten() {
        let p = e.path();
        let Some(age) = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
        else {
            continue;
        };
        let partial = p.extension().is_some_and(|x| x == "partial");
        if (partial && age > hour) || (!partial && age > 24 * hour) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Download one blob into the cache (or find it there), hashing as it arrives.
pub(super) async fn download(
    engine: Engine,
    client: Arc<RegistryClient>,
    desc: Descriptor,
    semaphore: Arc<Semaphore>,
    out: ProgressSender,
) -> Result<Blob> {
    // A concurrent pull of the same blob may remove the cached file once it commits, between
    // our finding it and opening it: then fetch it again.
    for _ in 0..2 {
        let path = fetch_blob(&engine, &client, &desc, &semaphore, &out).await?;
        match File::open(&path) {
            Ok(f) => {
                return Ok(Blob {
                    path,
                    file: Arc::new(f),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(EngineError::internal(format!(
        "blob {} vanished while pulling",
        desc.digest
    )))
}

pub(super) async fn fetch_blob(
    engine: &Engine,
    client: &RegistryClient,
    desc: &Descriptor,
    semaphore: &Arc<Semaphore>,
    out: &ProgressSender,
) -> Result<PathBuf> {
    let id = short_id(&desc.digest).to_string();
    let _permit = match semaphore.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            out.send(&progress::update(&id, "Waiting")).await;
            semaphore
                .clone()
                .acquire_owned()
                .await
                .map_err(EngineError::internal_cause)?
        }
    };
    let dir = blob_dir(engine);
    let cached = dir.join(digest_hex(&desc.digest));
    if cached.is_file() {
        // Verified by an earlier pull that did not finish: no need to fetch it again.
        out.send(&progress::update(&id, "Verifying Checksum")).await;
        out.send(&progress::update(&id, "Download complete")).await;
        return Ok(cached);
    }
    std::fs::create_dir_all(&dir)?;
    let partial = dir.join(format!(
        "{}.{}.partial",
        digest_hex(&desc.digest),
        &crate::util::random_id()[..8]
    ));
    let guard = RemoveOnDrop(Some(partial.clone()));
    // Hashing and writing happen on a blocking thread, so several downloads use both cores.
    // The writer outlives retries: a resumed download continues the same file and hash.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || write_blob(rx, &partial))
    };
    let total = desc.size;
    let mut current: i64 = 0;
    let mut throttle = Throttle::default();
    let mut sent: i64 = -1;
    let mut failed = None;
    let mut attempts = 0;
    'attempt: loop {
        let outcome = receive(
            client,
            desc,
            &id,
            &tx,
            out,
            &mut current,
            &mut throttle,
            &mut sent,
        )
        .await;
        let err = match outcome {
            Ok(()) => break,
            Err(Received::Fatal(e)) => {
                failed = Some(e);
                break;
            }
            Err(Received::Retryable(e)) => e,
        };
        attempts += 1;
        if attempts >= retry::MAX_DOWNLOAD_ATTEMPTS {
            failed = Some(err);
            break;
        }
        tracing::info!(
            "download of {} failed, retrying ({attempts}/{}): {err}",
            desc.digest,
            retry::MAX_DOWNLOAD_ATTEMPTS
        );
        for secs in retry::countdown(attempts) {
            if !out
                .send(&progress::update(&id, &retry::retrying_message(secs)))
                .await
            {
                failed = Some(EngineError::internal("client went away"));
                break 'attempt;
            }
            tokio::time::sleep(retry::tick()).await;
        }
    }
    drop(tx);
    let written = writer.await.map_err(EngineError::internal_cause)?;
    if let Some(e) = failed {
        return Err(e);
    }
    let digest = written?;
    if sent != current {
        out.send(&progress::counts(&id, "Downloading", current, total))
            .await;
    }
    out.send(&progress::update(&id, "Verifying Checksum")).await;
    if digest != desc.digest {
        return Err(verification_failed(&desc.digest));
    }
    std::fs::rename(&partial, &cached)?;
    std::mem::forget(guard);
    out.send(&progress::update(&id, "Download complete")).await;
    Ok(cached)
}

/// Why one attempt at a blob stopped.
pub(super) enum Received {
    /// A transport failure or a server error: worth another attempt.
    Retryable(EngineError),
    /// Verification, a registry's refusal, or the client went away.
    Fatal(EngineError),
}

/// One attempt: GET the blob (with `Range` from `current` when resuming) and pass its bytes to
/// the writer. A server that ignores `Range` answers 200 with the whole blob: the bytes already
/// written are skipped, so the hash state stays valid either way.
#[allow(clippy::too_many_arguments)]
pub(super) async fn receive(
    client: &RegistryClient,
    desc: &Descriptor,
    id: &str,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    out: &ProgressSender,
    current: &mut i64,
    throttle: &mut Throttle,
    sent: &mut i64,
) -> std::result::Result<(), Received> {
    let resp = if *current == 0 {
        client.get_blob(&desc.digest).await
    } else {
        client.get_blob_range(&desc.digest, *current as u64).await
    };
    let mut resp = resp.map_err(|e| {
        // moby retries anything but a registry's 4xx answer (denied, unknown, …).
        let fatal = e.status().is_some_and(|s| (400..500).contains(&s));
        let e = EngineError::internal_cause(e);
        if fatal {
            Received::Fatal(e)
        } else {
            Received::Retryable(e)
        }
    })?;
    let url = resp.url().to_string();
    let mut skip: i64 = if resp.status() == reqwest::StatusCode::PARTIAL_CONTENT {
        0
    } else {
        *current
    };
    let total = desc.size;
    loop {
        match resp.chunk().await {
            Ok(Some(mut chunk)) => {
                if skip > 0 {
                    let n = skip.min(chunk.len() as i64);
                    skip -= n;
                    chunk = chunk.slice(n as usize..);
                    if chunk.is_empty() {
                        continue;
                    }
                }
                *current += chunk.len() as i64;
                if total > 0 && *current > total {
                    return Err(Received::Fatal(verification_failed(&desc.digest)));
                }
                if tx.send(chunk).await.is_err() {
                    return Err(Received::Fatal(EngineError::internal(
                        "blob writer stopped",
                    )));
                }
                if throttle.ready(false) {
                    *sent = *current;
                    if !out
                        .send(&progress::counts(id, "Downloading", *current, total))
                        .await
                    {
                        return Err(Received::Fatal(EngineError::internal("client went away")));
                    }
                }
            }
            Ok(None) => {
                // A body cut short without a transport error (Content-Length unknown).
                if total > 0 && *current < total {
                    return Err(Received::Retryable(EngineError::internal(format!(
                        "unexpected EOF reading {url}"
                    ))));
                }
                return Ok(());
            }
            Err(e) => {
                return Err(Received::Retryable(EngineError::internal(
                    crate::registry::error::transport(&reqwest::Method::GET, &url, &e).to_string(),
                )));
            }
        }
    }
}

pub(super) fn verification_failed(digest: &str) -> EngineError {
    EngineError::invalid(format!(
        "filesystem layer verification failed for digest {digest}"
    ))
}

/// Removes a partial file unless disarmed (with `mem::forget`).
pub(super) struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write the chunks to `path`, hashing them; returns `sha256:<hex>`.
pub(super) fn write_blob(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    path: &Path,
) -> Result<String> {
    let mut file = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut hasher = Sha256::new();
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        file.write_all(&chunk)?;
    }
    file.into_inner()
        .map_err(EngineError::internal_cause)?
        .sync_all()?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
