//! Errors of the registry client, with the texts Docker shows for them.

use std::fmt;

/// One entry of a registry's `{"errors":[{"code","message","detail"}]}` answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl ApiErrorEntry {
    /// distribution's `ErrorCode.Error()`: the code in lower case, `_` as spaces.
    pub fn code_text(&self) -> String {
        self.code.to_lowercase().replace('_', " ")
    }
}

impl fmt::Display for ApiErrorEntry {
    /// distribution's `errcode.Error.Error()`: `manifest unknown: manifest unknown`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code_text(), self.message)
    }
}

/// Why the registry configuration file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error("{0}")]
    Read(#[from] std::io::Error),
    #[error("{0}")]
    Syntax(#[from] super::config::ConfigSyntaxError),
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request never got an HTTP answer; Go's `url.Error` form:
    /// `Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused`.
    #[error("{method} \"{url}\": {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    /// The registry answered with an error code (the first one counts, as in moby).
    #[error("{entry}")]
    Api { status: u16, entry: ApiErrorEntry },
    /// An error status without a parseable body.
    #[error("{message}")]
    UnexpectedStatus { status: u16, message: String },
    /// A Basic challenge but nothing to answer it with (distribution's `ErrNoBasicAuthCredentials`).
    #[error("{method} \"{url}\": no basic auth credentials")]
    NoBasicAuthCredentials { method: String, url: String },
    /// The token server refused the credentials.
    #[error("{method} \"{url}\": {entry}")]
    TokenDenied {
        method: String,
        url: String,
        status: u16,
        entry: ApiErrorEntry,
    },
    /// `docker login` got something else than 200 from `/v2/` (moby's `loginV2` text).
    #[error("login attempt to {url} failed with status: {status} {reason}")]
    LoginFailed {
        url: String,
        status: u16,
        reason: String,
    },
    /// Content whose digest is not the one asked for.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// A digest from the registry that is not `sha256:<64 hex>` (moby's wording for layers).
    #[error(
        "could not validate {what} digest {}: {source}",
        crate::util::go_quote(digest)
    )]
    InvalidDigest {
        what: &'static str,
        digest: String,
        source: crate::util::digest::DigestError,
    },
    /// A manifest or index we cannot use.
    #[error("{0}")]
    InvalidManifest(String),
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// No entry of an index fits the wanted platform.
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
    #[error("{0}")]
    InvalidPlatform(String),
    /// berth.toml could not be read or parsed.
    #[error("registry configuration {path}: {source}")]
    Config { path: String, source: ConfigProblem },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A registry's certs.d directory could not be used.
    #[error("{0}")]
    Certs(#[from] super::certs::CertsError),
}

impl RegistryError {
    /// The HTTP status a registry answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Api { status, .. }
            | RegistryError::UnexpectedStatus { status, .. }
            | RegistryError::TokenDenied { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry's error code (`MANIFEST_UNKNOWN`, `DENIED`, …), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            RegistryError::Api { entry, .. } | RegistryError::TokenDenied { entry, .. } => {
                Some(&entry.code)
            }
            _ => None,
        }
    }

    /// Did the registry (or its token server) refuse who we are?
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            RegistryError::NoBasicAuthCredentials { .. } | RegistryError::TokenDenied { .. }
        ) || self.code() == Some("UNAUTHORIZED")
    }
}

/// Read an error answer as distribution's `HandleErrorResponse` does.
pub(crate) fn from_error_body(
    status: u16,
    www_authenticate: Option<&str>,
    body: &[u8],
) -> RegistryError {
    // RFC 6750 errors in the challenge come first.
    if let Some(h) = www_authenticate
        && let Some(c) = super::auth::parse_challenges(h)
            .into_iter()
            .find(|c| c.scheme == "bearer")
    {
        let code = match c.param("error") {
            Some("invalid_token") => Some(("UNAUTHORIZED", "authentication required")),
            Some("insufficient_scope") => {
                Some(("DENIED", "requested access to the resource is denied"))
            }
            _ => None,
        };
        if let Some((code, default)) = code {
            let message = c
                .param("error_description")
                .filter(|d| !d.is_empty())
                .unwrap_or(default)
                .to_string();
            return RegistryError::Api {
                status,
                entry: ApiErrorEntry {
                    code: code.into(),
                    message,
                },
            };
        }
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ApiErrorEntry>,
        #[serde(default)]
        details: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        if let Some(first) = parsed.errors.into_iter().next() {
            return RegistryError::Api {
                status,
                entry: first,
            };
        }
        if !parsed.details.is_empty() && status == 401 {
            return RegistryError::Api {
                status,
                entry: ApiErrorEntry {
                    code: "UNAUTHORIZED".into(),
                    message: parsed.details,
                },
            };
        }
    }
    if status == 401 {
        return RegistryError::Api {
            status,
            entry: ApiErrorEntry {
                code: "UNAUTHORIZED".into(),
                message: "authentication required".into(),
            },
        };
    }
    if (400..500).contains(&status) {
        let text = String::from_utf8_lossy(body);
        let why = if body.is_empty() {
            "unexpected end of JSON input".to_string()
        } else {
            "invalid character in JSON".to_string()
        };
        return RegistryError::UnexpectedStatus {
            status,
            message: format!("error parsing HTTP {status} response body: {why}: {text:?}"),
        };
    }
    RegistryError::UnexpectedStatus {
        status,
        message: format!(
            "received unexpected HTTP status: {status} {}",
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        ),
    }
}

/// Go's `url.Error` method word: `Get`, `Head`, `Post`.
pub(crate) fn go_method(m: &reqwest::Method) -> String {
    let s = m.as_str().to_lowercase();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// A transport failure in Go's words where we can tell (`connect: connection refused`).
pub(crate) fn transport(method: &reqwest::Method, url: &str, e: &reqwest::Error) -> RegistryError {
    let mut message = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let host = reqwest::Url::parse(url)
                .ok()
                .map(|u| {
                    format!(
                        "{}:{}",
                        u.host_str().unwrap_or(""),
                        u.port_or_known_default().unwrap_or(0)
                    )
                })
                .unwrap_or_default();
            message = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    format!("dial tcp {host}: connect: connection refused")
                }
                std::io::ErrorKind::TimedOut => format!("dial tcp {host}: i/o timeout"),
                _ => go_tls_message(&io.to_string()).unwrap_or_else(|| io.to_string()),
            };
            break;
        }
        message = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        message =
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into();
    }
    RegistryError::Transport {
        method: go_method(method),
        url: url.to_string(),
        message,
    }
}

/// rustls's verification failures in crypto/tls's words (moby's texts are what users search for).
fn go_tls_message(rustls: &str) -> Option<String> {
    // The server refused us (e.g. no client certificate): Go says `remote error: tls: bad certificate`.
    if let Some(alert) = rustls.strip_prefix("received fatal alert: ") {
        let mut words = String::new();
        for c in alert.chars() {
            if c.is_uppercase() && !words.is_empty() {
                words.push(' ');
            }
            words.extend(c.to_lowercase());
        }
        return Some(format!("remote error: tls: {words}"));
    }
    let x509 = if rustls.contains("UnknownIssuer") {
        "certificate signed by unknown authority"
    } else if rustls.contains("NotValidForName") {
        "certificate is not valid for the requested host name"
    } else if rustls.contains("Expired") || rustls.contains("NotValidYet") {
        "certificate has expired or is not yet valid"
    } else if rustls.contains("invalid peer certificate") {
        "certificate is not trusted"
    } else {
        return None;
    };
    Some(format!("tls: failed to verify certificate: x509: {x509}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_answers_like_distribution() {
        let e = from_error_body(
            404,
            None,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"OTHER","message":"ignored"}]}"#,
        );
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some("MANIFEST_UNKNOWN"))
        );
        // A token server's {"details"} on 401.
        let e = from_error_body(
            401,
            None,
            br#"{"details":"incorrect username or password"}"#,
        );
        assert_eq!(
            e.to_string(),
            "unauthorized: incorrect username or password"
        );
        assert!(e.is_unauthorized());
        // RFC 6750 error in the challenge wins.
        let e = from_error_body(
            401,
            Some(r#"Bearer realm="x",error="insufficient_scope""#),
            b"",
        );
        assert_eq!(
            e.to_string(),
            "denied: requested access to the resource is denied"
        );
        // A bare 401 and other statuses without a body.
        assert_eq!(
            from_error_body(401, None, b"").to_string(),
            "unauthorized: authentication required"
        );
        assert_eq!(
            from_error_body(404, None, b"").to_string(),
            "error parsing HTTP 404 response body: unexpected end of JSON input: \"\""
        );
        assert_eq!(
            from_error_body(502, None, b"<html>").to_string(),
            "received unexpected HTTP status: 502 Bad Gateway"
        );
        assert_eq!(go_method(&reqwest::Method::HEAD), "Head");
        assert_eq!(
            go_tls_message("invalid peer certificate: UnknownIssuer").as_deref(),
            Some(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        );
        assert_eq!(go_tls_message("connection reset"), None);
        assert_eq!(
            go_tls_message("received fatal alert: BadCertificate").as_deref(),
            Some("remote error: tls: bad certificate")
        );
    }
}
