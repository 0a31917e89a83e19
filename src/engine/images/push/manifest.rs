//! The manifest Docker 28 (graphdriver store) pushes: Docker image manifest v2 schema 2 with the
//! Docker config media type and gzip layers, serialized as distribution's `schema2.FromStruct`
//! does (`json.MarshalIndent` with three spaces, no trailing newline). The registry stores these
//! bytes, so their digest is the manifest digest the user sees.

use serde::Serialize;

pub const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// distribution's `Descriptor` field order: mediaType, size, digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
}

impl Descriptor {
    pub fn layer(digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: LAYER_GZIP.to_string(),
            size,
            digest: digest.to_string(),
        }
    }

    pub fn config(digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: CONFIG_V1.to_string(),
            size,
            digest: digest.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Schema2<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

/// The canonical bytes of a schema 2 manifest.
pub fn schema2(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    let m = Schema2 {
        schema_version: 2,
        media_type: MANIFEST_V2,
        config,
        layers,
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing plain strings and integers into a Vec cannot fail.
    let _ = m.serialize(&mut ser);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gos_marshal_indent() {
        let config = Descriptor::config(&format!("sha256:{}", "a".repeat(64)), 1234);
        let layers = [Descriptor::layer(
            &format!("sha256:{}", "b".repeat(64)),
            5678,
        )];
        let got = String::from_utf8(schema2(&config, &layers)).unwrap();
        let want = format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{MANIFEST_V2}\",\n   \"config\": {{\n      \"mediaType\": \"{CONFIG_V1}\",\n      \"size\": 1234,\n      \"digest\": \"sha256:{a}\"\n   }},\n   \"layers\": [\n      {{\n         \"mediaType\": \"{LAYER_GZIP}\",\n         \"size\": 5678,\n         \"digest\": \"sha256:{b}\"\n      }}\n   ]\n}}",
            a = "a".repeat(64),
            b = "b".repeat(64)
        );
        assert_eq!(got, want);
        // 525 bytes with 4-digit sizes; busybox (a 7-digit layer) gives Docker's familiar 528.
        assert_eq!(got.len(), 525);
    }

    #[test]
    fn no_layers_is_an_empty_array() {
        let config = Descriptor::config("sha256:00", 2);
        let got = String::from_utf8(schema2(&config, &[])).unwrap();
        assert!(got.ends_with("\"layers\": []\n}"), "{got}");
    }
}
