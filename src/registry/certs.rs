//! Per-registry TLS material in Docker's `certs.d` layout: for registry `host:port`,
//! `<certs-dir>/<host:port>/*.crt` are extra CA roots and each `name.cert` + `name.key` pair is
//! a client certificate (mutual TLS), as dockerd reads `/etc/docker/certs.d`.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where berth looks unless berth.toml's `certs-dir` says otherwise.
pub const DEFAULT_CERTS_DIR: &str = "/etc/berth/certs.d";

#[derive(Debug, Error)]
pub enum CertsError {
    #[error("unable to read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    // moby's wording, so users searching for it find the same advice.
    #[error(
        "missing key {key} for client certificate {cert}. CA certificates should use the extension .crt"
    )]
    MissingKey { key: String, cert: String },
    #[error("missing client certificate {cert} for key {key}")]
    MissingCert { cert: String, key: String },
    #[error("invalid certificate {path}: {message}")]
    Invalid { path: String, message: String },
}

/// What one registry's directory holds.
#[derive(Default)]
pub struct HostCerts {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
}

impl HostCerts {
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.identity.is_none()
    }
}

/// Read `<dir>/<host>/`; a missing directory means nothing to add. With several client pairs
/// the first by name is used (reqwest takes one identity).
pub fn load(dir: &Path, host: &str) -> Result<HostCerts, CertsError> {
    let hostdir = dir.join(host);
    let read_dir = match std::fs::read_dir(&hostdir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HostCerts::default()),
        Err(source) => return Err(read_err(&hostdir, source)),
    };
    let mut files: Vec<PathBuf> = read_dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = HostCerts::default();
    for f in &files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "crt" => {
                let pem = std::fs::read(f).map_err(|e| read_err(f, e))?;
                let certs =
                    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| invalid(f, e))?;
                if certs.is_empty() {
                    return Err(invalid(f, "no PEM certificate found"));
                }
                out.roots.extend(certs);
            }
            "cert" => {
                let key = f.with_extension("key");
                if !key.exists() {
                    return Err(CertsError::MissingKey {
                        key: key.display().to_string(),
                        cert: f.display().to_string(),
                    });
                }
                if out.identity.is_none() {
                    let mut pem = std::fs::read(f).map_err(|e| read_err(f, e))?;
                    pem.push(b'\n');
                    pem.extend(std::fs::read(&key).map_err(|e| read_err(&key, e))?);
                    out.identity =
                        Some(reqwest::Identity::from_pem(&pem).map_err(|e| invalid(f, e))?);
                }
            }
            "key" => {
                let cert = f.with_extension("cert");
                if !cert.exists() {
                    return Err(CertsError::MissingCert {
                        cert: cert.display().to_string(),
                        key: f.display().to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn read_err(path: &Path, source: std::io::Error) -> CertsError {
    CertsError::Read {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> CertsError {
    CertsError::Invalid {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dir_is_empty_and_lone_files_are_refused() {
        let tmp = std::env::temp_dir().join(format!("berth-certs-{}", std::process::id()));
        assert!(load(&tmp, "reg:5000").unwrap().is_empty());
        let d = tmp.join("reg:5000");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("client.cert"), "x").unwrap();
        let e = load(&tmp, "reg:5000").err().unwrap();
        assert!(matches!(e, CertsError::MissingKey { .. }), "{e}");
        std::fs::remove_file(d.join("client.cert")).unwrap();
        std::fs::write(d.join("client.key"), "x").unwrap();
        assert!(matches!(
            load(&tmp, "reg:5000").err().unwrap(),
            CertsError::MissingCert { .. }
        ));
        std::fs::remove_file(d.join("client.key")).unwrap();
        std::fs::write(d.join("ca.crt"), "not pem").unwrap();
        assert!(matches!(
            load(&tmp, "reg:5000").err().unwrap(),
            CertsError::Invalid { .. }
        ));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
