//! Platforms (`linux/arm64/v8`): parsing the `platform=` parameter, the host's own, and picking
//! an index entry the way containerd's default matcher does.

use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::manifest::Descriptor;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Go's `GOARCH` for a Rust architecture name.
fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// containerd's `normalizeArch`: aliases and default variants.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = if variant == "8" || variant == "v8" || variant == "v8.0" {
                String::new()
            } else {
                variant
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

impl Platform {
    /// This host: `linux/<GOARCH>[/<variant>]`.
    pub fn host() -> Platform {
        let arch = go_arch(std::env::consts::ARCH);
        let variant = match arch {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            variant,
            ..Default::default()
        }
    }

    /// containerd's `platforms.Parse`: `os`, `arch`, `os/arch`, `os/arch/variant`; missing parts
    /// come from the host.
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let bad = || {
            RegistryError::InvalidPlatform(format!(
                "\"{s}\": unknown operating system or architecture: invalid argument"
            ))
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }) {
            return Err(bad());
        }
        let host = Platform::host();
        let known_os = |o: &str| {
            matches!(
                o,
                "linux"
                    | "windows"
                    | "darwin"
                    | "freebsd"
                    | "netbsd"
                    | "openbsd"
                    | "solaris"
                    | "illumos"
                    | "android"
                    | "ios"
                    | "aix"
                    | "plan9"
                    | "dragonfly"
                    | "js"
                    | "wasip1"
            )
        };
        let (os, arch, variant) = match parts.as_slice() {
            [one] => {
                let o = one.to_lowercase();
                if known_os(&o) {
                    (
                        o,
                        host.architecture.clone(),
                        host.variant.clone().unwrap_or_default(),
                    )
                } else {
                    ("linux".to_string(), o, String::new())
                }
            }
            [o, a] => (o.to_lowercase(), a.to_string(), String::new()),
            [o, a, v] => (o.to_lowercase(), a.to_string(), v.to_string()),
            _ => return Err(bad()),
        };
        let (arch, variant) = normalize_arch(&arch, &variant);
        Ok(Platform {
            architecture: arch,
            os,
            variant: (!variant.is_empty()).then_some(variant),
            ..Default::default()
        })
    }

    /// `linux/arm64/v8`, as Docker prints platforms in messages.
    pub fn display(&self) -> String {
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Does an index entry for `other` run here? OS and architecture must be equal; the
    /// variant must be equal, or compatible (an arm v7 host runs v6 and v5; an absent variant
    /// means the architecture's default).
    pub fn matches(&self, other: &Platform) -> bool {
        if !self.os.eq_ignore_ascii_case(&other.os) {
            return false;
        }
        let (a, av) = normalize_arch(&self.architecture, self.variant.as_deref().unwrap_or(""));
        let (b, bv) = normalize_arch(&other.architecture, other.variant.as_deref().unwrap_or(""));
        if a != b {
            return false;
        }
        if av == bv || bv.is_empty() {
            return true;
        }
        if a == "arm" {
            // arm/v7 runs v6 and v5 images; v6 runs v5.
            let rank = |v: &str| v.trim_start_matches('v').parse::<u32>().unwrap_or(0);
            return rank(&bv) <= rank(&av) && rank(&bv) >= 5;
        }
        // An unspecified wanted variant accepts any.
        av.is_empty()
    }
}

/// Pick the entry of an index for `want`: the first exact variant match, else the first
/// compatible one, in the index's order. Entries without a platform are not candidates.
pub fn select<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = entries
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .collect();
    let want_v = normalize_arch(&want.architecture, want.variant.as_deref().unwrap_or("")).1;
    candidates
        .iter()
        .find(|d| {
            let p = d.platform.as_ref().expect("filtered on platform");
            normalize_arch(&p.architecture, p.variant.as_deref().unwrap_or("")).1 == want_v
        })
        .or_else(|| candidates.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: super::super::manifest::MEDIA_OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{}", variant.unwrap_or("")),
            size: 1,
            urls: Vec::new(),
            annotations: None,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(String::from),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn parses_platforms() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", None)
        );
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant, None);
        let p = Platform::parse("linux/arm").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        let p = Platform::parse("linux/x86_64").unwrap();
        assert_eq!(p.architecture, "amd64");
        let p = Platform::parse("arm64").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(
            Platform::parse("linux").unwrap().architecture,
            Platform::host().architecture
        );
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().display(),
            "linux/arm/v6"
        );
    }

    #[test]
    fn selects_the_right_entry() {
        let entries = vec![
            entry("amd64", None),
            entry("arm", Some("v6")),
            entry("arm", Some("v7")),
            entry("arm64", Some("v8")),
        ];
        let pick =
            |s: &str| select(&entries, &Platform::parse(s).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:amd64"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("sha256:arm64v8"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("sha256:armv7"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("sha256:armv6"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        let only_v6 = vec![entry("arm", Some("v6"))];
        assert!(select(&only_v6, &Platform::parse("linux/arm/v7").unwrap()).is_some());
        assert!(select(&only_v6, &Platform::parse("linux/arm/v5").unwrap()).is_none());
    }
}
