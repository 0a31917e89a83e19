//! The image config JSON (Docker image spec v1.x / OCI image config), read as stored.
//!
//! The config is kept as the exact bytes received, because the image ID is their sha256; these
//! helpers read the fields berth needs without rewriting it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::util::time::parse_rfc3339;

/// A parsed view of an image config.
#[derive(Debug, Clone)]
pub struct ImageConfig(pub Value);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid image config: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid image config: {0}")]
    Shape(&'static str),
    /// A layer's diffID names its files on disk: only a valid digest is accepted.
    #[error(
        "invalid image config: rootfs.diff_ids: {}: {source}",
        crate::util::go_quote(digest)
    )]
    DiffId {
        digest: String,
        source: crate::util::digest::DigestError,
    },
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let v: Value = serde_json::from_slice(bytes)?;
        if !v.is_object() {
            return Err(ConfigError::Shape("not a JSON object"));
        }
        if let Some(rootfs) = v.get("rootfs") {
            let ok = rootfs
                .get("diff_ids")
                .map(|d| {
                    d.is_null()
                        || d.as_array()
                            .is_some_and(|a| a.iter().all(|x| x.is_string()))
                })
                .unwrap_or(true);
            if !ok {
                return Err(ConfigError::Shape(
                    "rootfs.diff_ids must be a list of digests",
                ));
            }
        }
        let cfg = ImageConfig(v);
        for d in cfg.diff_ids() {
            crate::util::digest::validate(&d)
                .map_err(|source| ConfigError::DiffId { digest: d, source })?;
        }
        Ok(cfg)
    }

    pub fn diff_ids(&self) -> Vec<String> {
        self.0
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `created` as Unix nanoseconds, 0 when absent or unreadable.
    pub fn created_nanos(&self) -> i64 {
        self.0
            .get("created")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or(0)
    }

    pub fn str_field(&self, key: &str) -> &str {
        self.0.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The container config the image carries (`config`), or an empty object.
    pub fn container_config(&self) -> Map<String, Value> {
        match self.0.get("config") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }

    /// The container config the image carries, typed (unreadable fields count as unset).
    pub fn config(&self) -> crate::model::Config {
        crate::model::Config::from_image(&self.0)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config().labels()
    }

    pub fn history(&self) -> Vec<Value> {
        self.0
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    pub fn parent(&self) -> &str {
        self.str_field("parent")
    }
}

/// Docker's layer chain IDs: chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// The image config's container config as API 1.50 shows it in `GET /images/{name}/json`: the
/// image-spec fields only, with Docker's empty values where the config has none.
pub fn inspect_config(config: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    let get = |k: &str| config.get(k).cloned().unwrap_or(Value::Null);
    out.insert(
        "User".into(),
        config.get("User").cloned().unwrap_or(json!("")),
    );
    if let Some(p) = config.get("ExposedPorts").filter(|v| !v.is_null()) {
        out.insert("ExposedPorts".into(), p.clone());
    }
    out.insert("Env".into(), get("Env"));
    out.insert("Cmd".into(), get("Cmd"));
    if let Some(h) = config.get("Healthcheck").filter(|v| !v.is_null()) {
        out.insert("Healthcheck".into(), h.clone());
    }
    if let Some(a) = config
        .get("ArgsEscaped")
        .filter(|v| v.as_bool() == Some(true))
    {
        out.insert("ArgsEscaped".into(), a.clone());
    }
    out.insert("Volumes".into(), get("Volumes"));
    out.insert(
        "WorkingDir".into(),
        config.get("WorkingDir").cloned().unwrap_or(json!("")),
    );
    out.insert("Entrypoint".into(), get("Entrypoint"));
    out.insert("OnBuild".into(), get("OnBuild"));
    out.insert("Labels".into(), get("Labels"));
    if let Some(s) = config
        .get("StopSignal")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        out.insert("StopSignal".into(), s.clone());
    }
    if let Some(s) = config.get("Shell").filter(|v| !v.is_null()) {
        out.insert("Shell".into(), s.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_docker() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        let expect = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"sha256:aa sha256:bb"))
        );
        assert_eq!(c[1], expect);
    }

    #[test]
    fn rejects_non_objects() {
        assert!(ImageConfig::parse(b"[]").is_err());
        assert!(ImageConfig::parse(b"{\"rootfs\":{\"diff_ids\":[1]}}").is_err());
        let aa = format!("sha256:{}", "a".repeat(64));
        let c = ImageConfig::parse(format!(r#"{{"created":"2024-01-01T00:00:00Z","rootfs":{{"type":"layers","diff_ids":["{aa}"]}}}}"#).as_bytes()).unwrap();
        assert_eq!(c.diff_ids(), vec![aa]);
        let bad = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:../../../../etc"]}}"#;
        assert_eq!(
            ImageConfig::parse(bad).unwrap_err().to_string(),
            "invalid image config: rootfs.diff_ids: \"sha256:../../../../etc\": invalid checksum digest length"
        );
        assert_eq!(c.created_nanos(), 1_704_067_200_000_000_000);
    }
}
