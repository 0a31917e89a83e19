//! Credentials (`X-Registry-Auth`, `POST /auth` bodies) and `WWW-Authenticate` challenges.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

/// Docker's `registry.AuthConfig`, as clients send it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64 of `username:password` (what config.json stores).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    /// An OAuth refresh token, used instead of the password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    /// A bearer token to send to the registry as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

/// Lenient base64: standard or URL-safe alphabet, padded or not (clients differ).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    let std = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    url.decode(s).ok().or_else(|| std.decode(s).ok())
}

impl AuthConfig {
    /// Decode an `X-Registry-Auth` header. Empty, `e30=` or garbage mean anonymous, as moby
    /// ignores a header it cannot decode on pull.
    pub fn from_header(value: Option<&str>) -> AuthConfig {
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return AuthConfig::default();
        };
        decode_b64(v)
            .and_then(|bytes| serde_json::from_slice::<AuthConfig>(&bytes).ok())
            .map(AuthConfig::normalized)
            .unwrap_or_default()
    }

    /// Parse a `POST /auth` body (plain JSON).
    pub fn from_json(body: &[u8]) -> Result<AuthConfig, serde_json::Error> {
        serde_json::from_slice::<AuthConfig>(body).map(AuthConfig::normalized)
    }

    /// Fill username/password from `auth` when only that was given.
    fn normalized(mut self) -> AuthConfig {
        if self.username.is_empty()
            && self.password.is_empty()
            && !self.auth.is_empty()
            && let Some(raw) = decode_b64(&self.auth)
            && let Ok(text) = String::from_utf8(raw)
            && let Some((u, p)) = text.split_once(':')
        {
            self.username = u.to_string();
            self.password = p.trim_end_matches('\0').to_string();
        }
        self
    }

    /// Nothing to authenticate with.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identitytoken.is_empty()
            && self.registrytoken.is_empty()
    }

    /// Username and password for Basic auth (also sent to a token server).
    pub fn basic(&self) -> Option<(&str, &str)> {
        (!self.username.is_empty() || !self.password.is_empty())
            .then_some((self.username.as_str(), self.password.as_str()))
    }
}

/// One challenge of a `WWW-Authenticate` header; the scheme is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by (case-insensitive) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse `Bearer realm="https://auth",service="registry",scope="repository:x:pull"` (and
/// several challenges separated by commas, quoted strings with `\"` escapes).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let b = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && !matches!(b[*i], b' ' | b'\t' | b',' | b'=') {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // `word=` continues the current challenge's parameters; a bare word starts a challenge.
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    // Push whole UTF-8 characters.
                    let ch = header[i..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                v
            } else {
                let start = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                header[start..i].trim().to_string()
            };
            if let Some(c) = out.last_mut() {
                c.params.push((word.to_lowercase(), value));
            }
        } else {
            out.push(Challenge {
                scheme: word.to_lowercase(),
                params: Vec::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_registry_auth_in_all_spellings() {
        let json = r#"{"username":"u","password":"p+/?","serveraddress":"127.0.0.1:5000"}"#;
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let url_nopad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        for h in [&std, &url, &url_nopad] {
            let a = AuthConfig::from_header(Some(h));
            assert_eq!(a.username, "u");
            assert_eq!(a.password, "p+/?");
            assert_eq!(a.serveraddress, "127.0.0.1:5000");
        }
        assert!(AuthConfig::from_header(Some("e30=")).is_anonymous());
        assert!(AuthConfig::from_header(Some("e30")).is_anonymous());
        assert!(AuthConfig::from_header(Some("")).is_anonymous());
        assert!(AuthConfig::from_header(None).is_anonymous());
        assert!(AuthConfig::from_header(Some("!!not base64")).is_anonymous());
        let from_auth =
            base64::engine::general_purpose::STANDARD.encode(r#"{"auth":"dXNlcjpwYXNzOndvcmQ="}"#);
        let a = AuthConfig::from_header(Some(&from_auth));
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("user", "pass:word")
        );
        let tok = base64::engine::general_purpose::URL_SAFE.encode(r#"{"identitytoken":"rt"}"#);
        let a = AuthConfig::from_header(Some(&tok));
        assert_eq!(a.identitytoken, "rt");
        assert!(!a.is_anonymous());
    }

    #[test]
    fn parses_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:library/busybox:pull,push")
        );
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("Realm"), Some("Registry Realm"));
        let c = parse_challenges(
            r#"Basic realm="a \"q\"", Bearer realm=https://x/token, error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("a \"q\""));
        assert_eq!(c[1].param("realm"), Some("https://x/token"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert!(parse_challenges("").is_empty());
    }
}
