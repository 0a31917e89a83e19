//! Manifest and index documents (Docker schema 2 and OCI) and their media types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::platform::Platform;

pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// schema 1 is refused, as Docker 28 does.
pub const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MEDIA_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

pub const MEDIA_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_DOCKER_FOREIGN_LAYER: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const MEDIA_OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// The `Accept` header for manifest requests: every kind we can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression a layer media type names; `None` for a media type that is not a layer.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        MEDIA_DOCKER_LAYER
        | MEDIA_DOCKER_FOREIGN_LAYER
        | MEDIA_OCI_LAYER_GZIP
        | MEDIA_OCI_LAYER_NONDIST_GZIP => Some(Compression::Gzip),
        MEDIA_OCI_LAYER_ZSTD | MEDIA_OCI_LAYER_NONDIST_ZSTD => Some(Compression::Zstd),
        MEDIA_OCI_LAYER | MEDIA_OCI_LAYER_NONDIST => Some(Compression::None),
        _ => None,
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_DOCKER_MANIFEST_LIST || media_type == MEDIA_OCI_INDEX
}

/// A content descriptor. Field order follows OCI's (mediaType, digest, size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest: Docker schema 2 or OCI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest list or OCI index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Boxing the image variant would save little: a pull holds one or two of these at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// A manifest as fetched: its exact bytes, digest and media type, and the parsed form.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: bytes::Bytes,
    pub manifest: Manifest,
}

impl FetchedManifest {
    /// The descriptor that points at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as i64,
            urls: Vec::new(),
            annotations: None,
            platform: None,
        }
    }
}

/// Parse manifest bytes. The media type is the document's own if it has one, else the
/// `Content-Type` the registry sent, else guessed from the shape (OCI allows it absent).
pub fn parse_manifest(
    bytes: &[u8],
    content_type: &str,
) -> Result<(String, Manifest), RegistryError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion", default)]
        schema_version: u32,
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let invalid =
        |e: serde_json::Error| RegistryError::InvalidManifest(format!("invalid manifest: {e}"));
    let probe: Probe = serde_json::from_slice(bytes).map_err(invalid)?;
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let mut media_type = probe
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| ct.to_string());
    if probe.schema_version == 1
        || media_type == MEDIA_DOCKER_SCHEMA1
        || media_type == MEDIA_DOCKER_SCHEMA1_SIGNED
    {
        return Err(RegistryError::InvalidManifest(
            "support for Docker Image Format v1 and Docker Image manifest version 2, schema 1 has been removed".into(),
        ));
    }
    if !is_index(&media_type)
        && media_type != MEDIA_DOCKER_MANIFEST
        && media_type != MEDIA_OCI_MANIFEST
    {
        media_type = if probe.manifests.is_some() {
            MEDIA_OCI_INDEX.to_string()
        } else if probe.config.is_some() {
            MEDIA_OCI_MANIFEST.to_string()
        } else {
            return Err(RegistryError::UnsupportedMediaType(media_type));
        };
    }
    let manifest = if is_index(&media_type) {
        Manifest::Index(serde_json::from_slice(bytes).map_err(invalid)?)
    } else {
        Manifest::Image(serde_json::from_slice(bytes).map_err(invalid)?)
    };
    manifest.validate_digests()?;
    Ok((media_type, manifest))
}

impl Manifest {
    /// Every digest a registry sends becomes a URL and a file name: all are checked here,
    /// before anything uses one.
    fn validate_digests(&self) -> Result<(), RegistryError> {
        let check = |what: &'static str, d: &Descriptor| {
            crate::util::digest::validate(&d.digest).map_err(|source| {
                RegistryError::InvalidDigest {
                    what,
                    digest: d.digest.clone(),
                    source,
                }
            })
        };
        match self {
            Manifest::Image(m) => {
                check("config", &m.config)?;
                m.layers.iter().try_for_each(|l| check("layer", l))
            }
            Manifest::Index(i) => i.manifests.iter().try_for_each(|m| check("manifest", m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest body with its `sha256:aa`-style placeholders made full digests.
    fn full(body: &str) -> Vec<u8> {
        let mut s = body.to_string();
        for x in ["aa", "bb", "cc"] {
            s = s.replace(
                &format!("sha256:{x}\""),
                &format!("sha256:{}\"", x.repeat(32)),
            );
        }
        s.into_bytes()
    }

    #[test]
    fn parses_both_kinds() {
        let m = &full(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:aa"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":5,"digest":"sha256:bb"}]}"#,
        );
        let (mt, parsed) = parse_manifest(m, "text/plain").unwrap();
        assert_eq!(mt, MEDIA_DOCKER_MANIFEST);
        let Manifest::Image(img) = parsed else {
            panic!("image expected")
        };
        assert_eq!(img.layers[0].size, 5);
        assert_eq!(
            layer_compression(&img.layers[0].media_type),
            Some(Compression::Gzip)
        );
        // OCI without mediaType in the body: the shape decides.
        let i = &full(
            r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":3,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#,
        );
        let (mt, parsed) = parse_manifest(i, "").unwrap();
        assert_eq!(mt, MEDIA_OCI_INDEX);
        let Manifest::Index(idx) = parsed else {
            panic!("index expected")
        };
        assert_eq!(
            idx.manifests[0].platform.as_ref().unwrap().architecture,
            "arm64"
        );
        assert!(parse_manifest(br#"{"schemaVersion":1}"#, "").is_err());
        assert!(parse_manifest(b"nope", "").is_err());
        assert_eq!(
            layer_compression(MEDIA_OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(layer_compression(MEDIA_OCI_LAYER), Some(Compression::None));
        assert_eq!(layer_compression("application/x-other"), None);
    }

    #[test]
    fn refuses_digests_that_are_not_sha256_hex() {
        let layer = |d: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:{}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":5,"digest":"{d}"}}]}}"#,
                "a".repeat(64)
            )
        };
        let path = format!("sha256:{}", "../".repeat(21) + "x");
        let err = parse_manifest(layer(&path).as_bytes(), "").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("could not validate layer digest \"{path}\": invalid checksum digest format")
        );
        let err = parse_manifest(layer("sha256:abc").as_bytes(), "").unwrap_err();
        assert!(
            err.to_string().ends_with("invalid checksum digest length"),
            "{err}"
        );
        let config =
            r#"{"schemaVersion":2,"config":{"digest":"sha256:/etc/passwd","size":1},"layers":[]}"#;
        let err = parse_manifest(config.as_bytes(), "").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("could not validate config digest"),
            "{err}"
        );
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ZZ","size":3}]}"#;
        let err = parse_manifest(index.as_bytes(), "").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("could not validate manifest digest"),
            "{err}"
        );
    }
}
