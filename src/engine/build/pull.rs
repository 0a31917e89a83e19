//! FROM (and `COPY --from`) of an image that is not here: pulled as `docker pull` would, with
//! the credentials of `X-Registry-Config`, its progress in the build's stream.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::Value;

use crate::engine::images::pull as eng;
use crate::engine::progress::ProgressSender;
use crate::engine::{Engine, EngineError};
use crate::image::reference::Reference;
use crate::registry::auth::AuthConfig;

use super::{BuildError, Output};

/// The credentials for `domain` in an `X-Registry-Config` value (base64url of a map from
/// registry to auth config; docker.io appears under its index URL).
fn creds_for(registry_config: &str, domain: &str) -> AuthConfig {
    let raw = registry_config.trim();
    if raw.is_empty() {
        return AuthConfig::default();
    }
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw));
    let Ok(bytes) = bytes else {
        return AuthConfig::default();
    };
    let Ok(map) = serde_json::from_slice::<HashMap<String, AuthConfig>>(&bytes) else {
        return AuthConfig::default();
    };
    let host_of = |k: &str| {
        k.trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let want = if domain == "docker.io" {
        "index.docker.io"
    } else {
        domain
    };
    map.into_iter()
        .find(|(k, _)| host_of(k) == want || host_of(k) == domain)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Pull `r`; returns the image ID.
pub fn pull(
    engine: &Engine,
    r: &Reference,
    registry_config: &str,
    out: &mut Output,
) -> Result<String, BuildError> {
    let handle = tokio::runtime::Handle::current();
    let request = eng::parse_request(&r.full(), "", "").map_err(BuildError::engine)?;
    let creds = creds_for(registry_config, r.domain());
    let prepared = handle
        .block_on(eng::prepare(engine, request, creds))
        .map_err(BuildError::engine)?;
    let (sender, mut rx) = ProgressSender::channel();
    let e2 = engine.clone();
    let task = handle.spawn(async move { eng::run(e2, prepared, sender).await });
    while let Some(chunk) = rx.blocking_recv() {
        for line in chunk.split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<Value>(line) {
                out.message(v);
            }
        }
    }
    handle
        .block_on(task)
        .map_err(BuildError::internal)?
        .map_err(BuildError::engine)?;
    engine
        .store()
        .and_then(|mut s| s.read(|tx| crate::engine::images::resolve(tx, &r.full())))
        .map(|row| row.id)
        .map_err(|e: EngineError| BuildError::engine(e))
}
