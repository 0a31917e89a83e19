//! `POST /auth` (`docker login`) and `GET /distribution/{name}/json`.

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::{Value, json};

use crate::engine::{EngineError, ErrorKind};
use crate::image::reference;
use crate::registry::client::CONFIG_LIMIT;
use crate::registry::{AuthConfig, Manifest, RegistryClient, RegistryError};

use super::Ctx;
use super::response::{ApiError, ApiResult, ok_json, read_body};

/// moby's `Service.Auth`: an unauthorized answer from the token server is a 401; other
/// failures (a 401 from `/v2/` with Basic auth, an unreachable registry) are plain errors (500).
pub async fn auth(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 1 << 20).await?;
    let creds = AuthConfig::from_json(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let server = creds.serveraddress.clone();
    match crate::registry::login(&ctx.engine.config().registry, &server, creds).await {
        Ok(token) => ok_json(&json!({"Status": "Login Succeeded", "IdentityToken": token})),
        Err(e) => {
            let status = if e.is_unauthorized() && !matches!(e, RegistryError::LoginFailed { .. }) {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

/// A registry error as moby's distribution route answers it: the registry's error code decides
/// the status (unknown → 404, unauthorized → 401, denied → 403).
fn distribution_error(e: RegistryError) -> ApiError {
    let kind = match e.code() {
        Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN") => ErrorKind::NotFound,
        Some("UNAUTHORIZED") => ErrorKind::Unauthorized,
        Some("DENIED") => ErrorKind::Forbidden,
        _ => ErrorKind::Internal,
    };
    EngineError::new(kind, e.to_string()).into()
}

pub async fn distribution(ctx: &Ctx, name: &str, req: Request<Incoming>) -> ApiResult {
    if reference::parse_image_id(name).is_some() && name.starts_with("sha256:") {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no manifest found for full image ID",
        ));
    }
    let r = reference::parse_normalized(name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .with_default_tag();
    let creds = AuthConfig::from_header(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let client = RegistryClient::for_reference(&ctx.engine.config().registry, &r, creds)
        .map_err(distribution_error)?;
    let wanted = r.digest().or(r.tag()).unwrap_or("latest").to_string();
    let fetched = client
        .get_manifest(&wanted)
        .await
        .map_err(distribution_error)?;
    let platforms: Value = match &fetched.manifest {
        Manifest::Index(idx) => Value::Array(
            idx.manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                .collect(),
        ),
        Manifest::Image(m) => match client.get_blob_bytes(&m.config.digest, CONFIG_LIMIT).await {
            Ok(bytes) => {
                let cfg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let mut p = serde_json::Map::new();
                let s = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                p.insert("architecture".into(), json!(s("architecture")));
                p.insert("os".into(), json!(s("os")));
                if !s("os.version").is_empty() {
                    p.insert("os.version".into(), json!(s("os.version")));
                }
                if let Some(f) = cfg.get("os.features").filter(|f| f.is_array()) {
                    p.insert("os.features".into(), f.clone());
                }
                if !s("variant").is_empty() {
                    p.insert("variant".into(), json!(s("variant")));
                }
                json!([Value::Object(p)])
            }
            Err(_) => Value::Null,
        },
    };
    ok_json(&json!({
        "Descriptor": {
            "mediaType": fetched.media_type,
            "digest": fetched.digest,
            "size": fetched.bytes.len(),
        },
        "Platforms": platforms,
    }))
}
