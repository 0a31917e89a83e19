//! `docker login` (`POST /auth`) and `GET /distribution/{name}/json`: registry work that
//! answers at once, with moby's status classes.

use serde_json::{Value, json};

use crate::image::reference;
use crate::registry::client::CONFIG_LIMIT;
use crate::registry::{AuthConfig, Manifest, RegistryClient};

use super::{Engine, EngineError, Result};

/// moby's `Service.Auth`: an unauthorized answer from the token server is a 401; other
/// failures (a 401 from `/v2/` with Basic auth, an unreachable registry) are plain errors (500).
pub async fn login(engine: &Engine, body: &[u8]) -> Result<Value> {
    let creds = AuthConfig::from_json(body).map_err(EngineError::invalid_cause)?;
    let server = creds.serveraddress.clone();
    match crate::registry::login(&engine.config().registry, &server, creds).await {
        Ok(token) => Ok(json!({"Status": "Login Succeeded", "IdentityToken": token})),
        Err(e) => Err(super::registry_errors::login(e)),
    }
}

/// The descriptor of `name`'s manifest and the platforms it offers.
pub async fn distribution(engine: &Engine, name: &str, auth: Option<&str>) -> Result<Value> {
    if reference::parse_image_id(name).is_some() && name.starts_with("sha256:") {
        return Err(EngineError::internal("no manifest found for full image ID"));
    }
    let r = reference::parse_normalized(name)
        .map_err(EngineError::invalid_cause)?
        .with_default_tag();
    let creds = AuthConfig::from_header(auth);
    let client = RegistryClient::for_reference(&engine.config().registry, &r, creds)
        .map_err(super::registry_errors::distribution)?;
    let wanted = r.digest().or(r.tag()).unwrap_or("latest").to_string();
    let fetched = client
        .get_manifest(&wanted)
        .await
        .map_err(super::registry_errors::distribution)?;
    let platforms: Value = match &fetched.manifest {
        Manifest::Index(idx) => Value::Array(
            idx.manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                .collect(),
        ),
        Manifest::Image(m) => match client.get_blob_bytes(&m.config.digest, CONFIG_LIMIT).await {
            Ok(bytes) => config_platform(&bytes),
            Err(_) => Value::Null,
        },
    };
    Ok(json!({
        "Descriptor": {
            "mediaType": fetched.media_type,
            "digest": fetched.digest,
            "size": fetched.bytes.len(),
        },
        "Platforms": platforms,
    }))
}

/// The one platform an image config names, in the OCI platform's field names.
fn config_platform(config: &[u8]) -> Value {
    let cfg: Value = serde_json::from_slice(config).unwrap_or(Value::Null);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_from_a_config() {
        let p = config_platform(br#"{"architecture":"arm64","os":"linux","variant":"v8"}"#);
        assert_eq!(
            p,
            json!([{"architecture": "arm64", "os": "linux", "variant": "v8"}])
        );
        let p = config_platform(br#"{"architecture":"amd64","os":"linux"}"#);
        assert_eq!(p, json!([{"architecture": "amd64", "os": "linux"}]));
    }
}
