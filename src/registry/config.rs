//! Registry settings from berth's config file (`/etc/berth/berth.toml`):
//!
//! ```toml
//! insecure-registries = ["myregistry:5000", "10.0.0.0/8"]
//! registry-mirrors = ["https://mirror.example.com"]
//! certs-dir = "/etc/berth/certs.d"
//! ```
//!
//! Only these keys are read (top level or under `[registry]`), by a small parser:
//! other keys and tables are ignored so the file can grow.

use std::net::IpAddr;
use std::path::Path;

use super::error::RegistryError;

/// Where the config file is unless `--config` or `BERTH_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Hosts (`host[:port]`) or IPv4/IPv6 CIDRs reached over plain HTTP (after trying HTTPS
    /// without verification). Loopback is always insecure, as in Docker.
    pub insecure_registries: Vec<String>,
    /// Mirrors of Docker Hub, tried in order before `registry-1.docker.io`.
    pub registry_mirrors: Vec<String>,
    /// Docker's certs.d layout (`<dir>/<host:port>/*.crt|*.cert|*.key`); None = the default.
    pub certs_dir: Option<String>,
}

impl RegistryConfig {
    /// Read `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(RegistryError::Config {
                    path: path.display().to_string(),
                    source: e.into(),
                });
            }
        };
        Self::parse(&text).map_err(|e| RegistryError::Config {
            path: path.display().to_string(),
            source: e.into(),
        })
    }

    pub fn parse(text: &str) -> Result<RegistryConfig, ConfigSyntaxError> {
        let mut cfg = RegistryConfig::default();
        let mut table = String::new();
        let mut lines = text.lines().enumerate();
        while let Some((n, line)) = lines.next() {
            let line = strip_comment(line).trim().to_string();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                table = line
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigSyntaxError::line(n, "expected key = value"));
            };
            let key = key.trim().trim_matches('"');
            let mut value = value.trim().to_string();
            // Arrays may span lines.
            if value.starts_with('[') {
                while !value.contains(']') {
                    match lines.next() {
                        Some((_, more)) => {
                            value.push(' ');
                            value.push_str(strip_comment(more).trim());
                        }
                        None => return Err(ConfigSyntaxError::line(n, "unterminated array")),
                    }
                }
            }
            if !(table.is_empty() || table == "registry") {
                continue;
            }
            if key == "certs-dir" {
                let v = value.trim();
                let s = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| {
                        ConfigSyntaxError::line(n, format!("expected a quoted string, got {v}"))
                    })?;
                cfg.certs_dir = Some(s.to_string());
                continue;
            }
            let target = match key {
                "insecure-registries" => &mut cfg.insecure_registries,
                "registry-mirrors" => &mut cfg.registry_mirrors,
                _ => continue,
            };
            *target = parse_string_array(&value, n)?;
        }
        for m in &mut cfg.registry_mirrors {
            *m = m.trim_end_matches('/').to_string();
            if !m.starts_with("http://") && !m.starts_with("https://") {
                return Err(ConfigSyntaxError::Mirror(m.clone()));
            }
        }
        Ok(cfg)
    }

    /// The certs.d directory in use.
    pub fn certs_dir(&self) -> &Path {
        Path::new(
            self.certs_dir
                .as_deref()
                .unwrap_or(super::certs::DEFAULT_CERTS_DIR),
        )
    }

    /// May `host` (`name[:port]`, as in a reference) be reached without verified TLS?
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_name(host);
        if name == "localhost" {
            return true;
        }
        let ip: Option<IpAddr> = name.parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure_registries.iter().any(|entry| {
            if entry == host || entry == name {
                return true;
            }
            match (ip, entry.split_once('/')) {
                (Some(ip), Some((net, bits))) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }
}

fn strip_comment(line: &str) -> &str {
    // A '#' inside a quoted string is not a comment.
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// What is wrong with the registry config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigSyntaxError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("invalid mirror {0:?}: it must be an http(s) URL")]
    Mirror(String),
}

impl ConfigSyntaxError {
    /// At the 0-based line `n`.
    fn line(n: usize, message: impl Into<String>) -> ConfigSyntaxError {
        ConfigSyntaxError::Line {
            line: n + 1,
            message: message.into(),
        }
    }
}

/// `["a", 'b']` on the 0-based line `n`.
fn parse_string_array(value: &str, n: usize) -> Result<Vec<String>, ConfigSyntaxError> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| {
            ConfigSyntaxError::line(n, format!("expected an array of strings, got {value}"))
        })?;
    let mut out = Vec::new();
    for item in inner.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let s = item
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| item.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .ok_or_else(|| {
                ConfigSyntaxError::line(n, format!("expected a quoted string, got {item}"))
            })?;
        out.push(s.to_string());
    }
    Ok(out)
}

/// `host:port` → `host`; `[::1]:5000` → `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    match (net.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arrays_and_ignores_the_rest() {
        let cfg = RegistryConfig::parse(
            "# berth\nlog = \"x\"\ninsecure-registries = [\"reg:5000\", \"10.1.0.0/16\"] # lab\n\
             registry-mirrors = [\n  \"https://m.example/\",\n]\n[other]\ninsecure-registries = [\"no\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.insecure_registries, vec!["reg:5000", "10.1.0.0/16"]);
        assert_eq!(cfg.registry_mirrors, vec!["https://m.example"]);
        assert!(RegistryConfig::parse("registry-mirrors = [\"ftp://x\"]").is_err());
        assert!(RegistryConfig::parse("insecure-registries = [x]").is_err());
        assert_eq!(cfg.certs_dir(), Path::new("/etc/berth/certs.d"));
        let cfg = RegistryConfig::parse("certs-dir = \"/tmp/c.d\" # x\n").unwrap();
        assert_eq!(cfg.certs_dir(), Path::new("/tmp/c.d"));
    }

    #[test]
    fn loopback_and_listed_hosts_are_insecure() {
        let cfg = RegistryConfig {
            insecure_registries: vec!["reg:5000".into(), "10.1.0.0/16".into()],
            ..Default::default()
        };
        for h in [
            "127.0.0.1:5000",
            "127.9.9.9",
            "localhost:5000",
            "[::1]:5000",
            "reg:5000",
            "10.1.2.3:443",
        ] {
            assert!(cfg.is_insecure(h), "{h}");
        }
        for h in ["docker.io", "reg:5001", "10.2.0.1", "quay.io"] {
            assert!(!cfg.is_insecure(h), "{h}");
        }
    }
}
