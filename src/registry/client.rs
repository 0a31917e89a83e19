//! One repository on one registry: endpoint choice (HTTPS, or HTTP for insecure registries),
//! the `/v2/` ping, Basic and Bearer token auth with a per-scope token cache, and the pull-side
//! calls (manifests, blobs, tags). Push adds its calls in `upload.rs` on top of [`RegistryClient::request`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use super::auth::{AuthConfig, Challenge, parse_challenges};
use super::certs::{self, HostCerts};
use super::config::RegistryConfig;
use super::error::{self, RegistryError};
use super::manifest::{Descriptor, FetchedManifest, MANIFEST_ACCEPT, parse_manifest};

/// Docker Hub's names in references and where its API really is.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));
/// Manifests and configs are small; refuse more (moby's limit for manifests is 4 MiB).
pub const MANIFEST_LIMIT: usize = 4 << 20;
pub const CONFIG_LIMIT: usize = 8 << 20;
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// What a request needs to do in the repository (the token scope's actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    PullPush,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::PullPush => "pull,push",
        }
    }
}

/// `repository:<name>:<actions>`, the token scope for `name`.
pub fn repository_scope(name: &str, access: Access) -> String {
    format!("repository:{name}:{}", access.actions())
}

#[derive(Debug, Clone)]
struct Endpoint {
    /// `https://host` or `http://host`, no trailing slash.
    base: String,
    /// TLS without certificate checks (an insecure registry reached over HTTPS).
    skip_verify: bool,
    /// A client of its own: a mirror with certs.d material under the mirror's host name.
    http: Option<reqwest::Client>,
}

#[derive(Default)]
struct State {
    endpoint: Option<Endpoint>,
    /// Where the ping starts in `candidates` (past the mirrors given up on).
    first_candidate: usize,
    /// The index of `endpoint` in `candidates`.
    endpoint_index: usize,
    challenge: Option<Challenge>,
    /// Bearer tokens by scope list, for this client's lifetime.
    tokens: HashMap<String, String>,
    /// A refresh token the token server handed out (login with offline access).
    refresh_token: Option<String>,
}

/// A client for one repository of one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    http_skip_verify: Option<reqwest::Client>,
    candidates: Vec<Endpoint>,
    host: String,
    repository: String,
    creds: AuthConfig,
    state: Mutex<State>,
}

fn build_http(
    skip_verify: bool,
    timeout: Option<Duration>,
    certs: &HostCerts,
) -> Result<reqwest::Client, RegistryError> {
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(skip_verify);
    // certs.d roots add to the system's, as Go's tls config in moby does.
    for root in &certs.roots {
        b = b.add_root_certificate(root.clone());
    }
    if let Some(id) = &certs.identity {
        b = b.identity(id.clone());
    }
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().map_err(|e| RegistryError::Transport {
        method: "Get".into(),
        url: String::new(),
        message: e.to_string(),
    })
}

/// An HTTP client for `host` with its certs.d roots and client certificate, for registry
/// requests that are not about a repository (the v1 search API).
pub fn http_client_for(
    config: &RegistryConfig,
    host: &str,
    skip_verify: bool,
) -> Result<reqwest::Client, RegistryError> {
    let certs = certs::load(config.certs_dir(), host)?;
    build_http(skip_verify, None, &certs)
}

impl RegistryClient {
    /// A client for `repository` (e.g. `library/busybox`) on `host` as a reference names it
    /// (`docker.io`, `127.0.0.1:5000`). Nothing is sent until the first request.
    pub fn new(
        config: &RegistryConfig,
        host: &str,
        repository: &str,
        creds: AuthConfig,
    ) -> Result<RegistryClient, RegistryError> {
        Self::with_timeout(config, host, repository, creds, None)
    }

    /// A client for the repository a reference names.
    pub fn for_reference(
        config: &RegistryConfig,
        reference: &crate::image::reference::Reference,
        creds: AuthConfig,
    ) -> Result<RegistryClient, RegistryError> {
        Self::new(config, reference.domain(), reference.path(), creds)
    }

    fn with_timeout(
        config: &RegistryConfig,
        host: &str,
        repository: &str,
        creds: AuthConfig,
        timeout: Option<Duration>,
    ) -> Result<RegistryClient, RegistryError> {
        let host = normalize_host(host);
        let mut candidates = Vec::new();
        let insecure = config.is_insecure(&host);
        // Docker Hub's certs live under its API host's name; mirrors share the client.
        let certs_host = if host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            host.as_str()
        };
        let certs = certs::load(config.certs_dir(), certs_host)?;
        if host == DOCKER_HUB {
            for m in &config.registry_mirrors {
                // moby reads certs.d for each mirror's own host, as for any registry.
                let mirror_certs = certs::load(config.certs_dir(), mirror_host(m))?;
                let http = if mirror_certs.is_empty() {
                    None
                } else {
                    Some(build_http(false, timeout, &mirror_certs)?)
                };
                candidates.push(Endpoint {
                    base: m.clone(),
                    skip_verify: false,
                    http,
                });
            }
            candidates.push(Endpoint {
                base: format!("https://{DOCKER_HUB_API}"),
                skip_verify: false,
                http: None,
            });
        } else {
            candidates.push(Endpoint {
                base: format!("https://{host}"),
                skip_verify: insecure,
                http: None,
            });
            if insecure {
                candidates.push(Endpoint {
                    base: format!("http://{host}"),
                    skip_verify: false,
                    http: None,
                });
            }
        }
        Ok(RegistryClient {
            http: build_http(false, timeout, &certs)?,
            http_skip_verify: if insecure {
                Some(build_http(true, timeout, &certs)?)
            } else {
                None
            },
            candidates,
            host,
            repository: repository.to_string(),
            creds,
            state: Mutex::new(State::default()),
        })
    }

    /// The registry host as references name it (`docker.io`, `127.0.0.1:5000`).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn http_for<'a>(&'a self, ep: &'a Endpoint) -> &'a reqwest::Client {
        if let Some(c) = &ep.http {
            return c;
        }
        match (&self.http_skip_verify, ep.skip_verify) {
            (Some(c), true) => c,
            _ => &self.http,
        }
    }

    /// The endpoint in use, pinging candidates in order the first time (a mirror that does not
    /// answer, or HTTPS on an insecure registry that speaks only HTTP, falls through).
    pub async fn base_url(&self) -> Result<String, RegistryError> {
        Ok(self.endpoint().await?.base)
    }

    async fn endpoint(&self) -> Result<Endpoint, RegistryError> {
        let mut st = self.state.lock().await;
        if let Some(ep) = &st.endpoint {
            return Ok(ep.clone());
        }
        let mut last = None;
        for (i, ep) in self.candidates.iter().enumerate().skip(st.first_candidate) {
            let url = format!("{}/v2/", ep.base);
            // moby pings with a 15 s client timeout; it also bounds a TLS handshake with a
            // server that speaks plain HTTP and waits for a request line forever.
            let ping = self.http_for(ep).get(&url).timeout(PING_TIMEOUT);
            match ping.send().await {
                Ok(resp) => {
                    if resp.status() == StatusCode::UNAUTHORIZED {
                        st.challenge = pick_challenge(resp.headers());
                    }
                    st.endpoint = Some(ep.clone());
                    st.endpoint_index = i;
                    return Ok(ep.clone());
                }
                Err(e) => last = Some(error::transport(&Method::GET, &url, &e)),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Transport {
            method: "Get".into(),
            url: self.host.clone(),
            message: "no endpoint".into(),
        }))
    }

    /// Give up on the Docker Hub mirror in use (it lacks the image, or failed) and use the next
    /// candidate: another mirror or Docker Hub itself, as moby falls back from mirrors on any
    /// error. False when the endpoint in use is not a mirror.
    async fn fall_back(&self) -> bool {
        let mut st = self.state.lock().await;
        if self.host != DOCKER_HUB || st.endpoint.is_none() {
            return false;
        }
        let next = st.endpoint_index + 1;
        if next >= self.candidates.len() {
            return false;
        }
        // Tokens and challenges belong to the mirror's auth server.
        *st = State {
            first_candidate: next,
            ..State::default()
        };
        true
    }

    /// Send an authenticated request. `path` is `/v2/...` (joined to the endpoint) or an
    /// absolute URL (an upload `Location`). The token asked for covers `repository:<repo>:<access>`
    /// plus `extra_scopes` (e.g. `repository:<from>:pull` for a cross-repository mount).
    /// A 401 is retried once with a fresh token when the body can be sent again (none, or
    /// in-memory bytes); a streamed body is sent once. Any HTTP status comes back as `Ok`.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        access: Access,
        extra_scopes: &[String],
        headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<Response, RegistryError> {
        let ep = self.endpoint().await?;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", ep.base, path)
        };
        let mut scopes = vec![repository_scope(&self.repository, access)];
        scopes.extend(extra_scopes.iter().cloned());
        let key = scopes.join(" ");
        // A streamed body cannot be sent twice; in-memory bytes can.
        let can_replay = body.as_ref().is_none_or(|b| b.as_bytes().is_some());
        let saved = body
            .as_ref()
            .and_then(|b| b.as_bytes())
            .map(Bytes::copy_from_slice);
        let mut body = body;
        let mut fresh = false;
        loop {
            let auth = self.authorization(&method, &url, &scopes, fresh).await?;
            let mut req = self
                .http_for(&ep)
                .request(method.clone(), &url)
                .headers(headers.clone());
            // Credentials go only to the registry itself; redirects elsewhere (blob storage)
            // lose them (reqwest drops Authorization on a cross-host redirect too).
            if let Some(a) = &auth
                && url.starts_with(&ep.base)
            {
                req = req.header(header::AUTHORIZATION, a);
            }
            if let Some(b) = body.take() {
                req = req.body(b);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| error::transport(&method, &url, &e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || fresh || !can_replay {
                return Ok(resp);
            }
            // A 401: learn the challenge if the ping gave none, drop the cached token, retry once.
            let challenge = pick_challenge(resp.headers());
            {
                let mut st = self.state.lock().await;
                if challenge.is_some() {
                    st.challenge = challenge;
                }
                if st.challenge.is_none() {
                    return Ok(resp);
                }
                st.tokens.remove(&key);
            }
            body = saved.clone().map(reqwest::Body::from);
            fresh = true;
        }
    }

    /// The `Authorization` value for `scopes`, fetching a token if the registry wants one.
    async fn authorization(
        &self,
        method: &Method,
        url: &str,
        scopes: &[String],
        fresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = self.state.lock().await.challenge.clone();
        let Some(ch) = challenge else {
            return Ok(None);
        };
        match ch.scheme.as_str() {
            "basic" => {
                let Some((u, p)) = self.creds.basic() else {
                    return Err(RegistryError::NoBasicAuthCredentials {
                        method: error::go_method(method),
                        url: url.to_string(),
                    });
                };
                Ok(Some(basic_header(u, p)))
            }
            "bearer" => {
                if !self.creds.registrytoken.is_empty() {
                    return Ok(header_value(&format!(
                        "Bearer {}",
                        self.creds.registrytoken
                    )));
                }
                let key = scopes.join(" ");
                if !fresh && let Some(t) = self.state.lock().await.tokens.get(&key) {
                    return Ok(header_value(&format!("Bearer {t}")));
                }
                let token = self
                    .fetch_token(&ch, scopes, false)
                    .await
                    .map_err(|e| match e {
                        RegistryError::Api { status, entry } => RegistryError::TokenDenied {
                            method: error::go_method(method),
                            url: url.to_string(),
                            status,
                            entry,
                        },
                        other => other,
                    })?;
                self.state.lock().await.tokens.insert(key, token.clone());
                Ok(header_value(&format!("Bearer {token}")))
            }
            _ => Ok(None),
        }
    }

    /// Ask the token server of a Bearer challenge for a token (distribution's token handler):
    /// a refresh-token grant when we have an identity token, else GET with Basic credentials
    /// (or anonymously).
    async fn fetch_token(
        &self,
        ch: &Challenge,
        scopes: &[String],
        offline: bool,
    ) -> Result<String, RegistryError> {
        let realm = ch.param("realm").unwrap_or("").to_string();
        let service = ch.param("service").unwrap_or("").to_string();
        let refresh = if self.creds.identitytoken.is_empty() {
            self.state.lock().await.refresh_token.clone()
        } else {
            Some(self.creds.identitytoken.clone())
        };
        let http = &self.http;
        let resp = if let Some(rt) = refresh {
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt),
                ("service", service.clone()),
                ("client_id", "docker".into()),
                (
                    "access_type",
                    if offline { "offline" } else { "online" }.into(),
                ),
            ];
            if !scopes.is_empty() {
                form.push(("scope", scopes.join(" ")));
            }
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", form_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            http.post(&realm)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| error::transport(&Method::POST, &realm, &e))?
        } else {
            let mut query: Vec<(&str, String)> = Vec::new();
            if !service.is_empty() {
                query.push(("service", service.clone()));
            }
            for s in scopes {
                query.push(("scope", s.clone()));
            }
            if let Some((u, _)) = self.creds.basic() {
                query.push(("account", u.to_string()));
            }
            if offline {
                query.push(("offline_token", "true".into()));
                query.push(("client_id", "docker".into()));
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            let q = query
                .iter()
                .map(|(k, v)| format!("{k}={}", form_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let url = if q.is_empty() {
                realm.clone()
            } else {
                format!("{realm}{sep}{q}")
            };
            let mut req = http.get(&url);
            if let Some((u, p)) = self.creds.basic() {
                req = req.header(header::AUTHORIZATION, basic_header(u, p));
            }
            req.send()
                .await
                .map_err(|e| error::transport(&Method::GET, &url, &e))?
        };
        let status = resp.status();
        let www = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = read_limited(resp, 1 << 20).await?;
        if !status.is_success() {
            return Err(error::from_error_body(
                status.as_u16(),
                www.as_deref(),
                &body,
            ));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            refresh_token: String,
        }
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::UnexpectedStatus {
                status: status.as_u16(),
                message: format!("unable to decode token response: {e}"),
            })?;
        if !t.refresh_token.is_empty() {
            self.state.lock().await.refresh_token = Some(t.refresh_token);
        }
        let token = if t.access_token.is_empty() {
            t.token
        } else {
            t.access_token
        };
        if token.is_empty() {
            return Err(RegistryError::UnexpectedStatus {
                status: status.as_u16(),
                message: "authorization server did not include a token in the response".into(),
            });
        }
        Ok(token)
    }

    /// Turn an error answer into a [`RegistryError`] (reads the body).
    pub(crate) async fn error_from(resp: Response) -> RegistryError {
        let status = resp.status().as_u16();
        let www = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = read_limited(resp, 1 << 20).await.unwrap_or_default();
        error::from_error_body(status, www.as_deref(), &body)
    }

    /// `GET /v2/<repo>/manifests/<reference>` (a tag or a digest). A digest reference is
    /// verified against the bytes.
    /// For Docker Hub, a mirror that fails falls through to the next one, then to the Hub; blobs
    /// then come from wherever the manifest came from.
    pub async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        loop {
            let err = match self.get_manifest_once(reference).await {
                Ok(m) => return Ok(m),
                Err(e) => e,
            };
            let from = self.state.lock().await.endpoint.clone().map(|e| e.base);
            if !self.fall_back().await {
                return Err(err);
            }
            // A warning: an operator wants to know a configured mirror is not serving.
            tracing::warn!(
                "mirror {} failed for {}:{reference}, trying the next endpoint: {err}",
                from.unwrap_or_default(),
                self.repository
            );
        }
    }

    async fn get_manifest_once(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        // A digest reference other than sha256 (the reference grammar allows sha384/sha512)
        // could not be verified: refused instead of being fetched like a tag.
        if reference.contains(':') {
            crate::util::digest::validate(reference).map_err(|source| {
                RegistryError::InvalidDigest {
                    what: "manifest",
                    digest: reference.to_string(),
                    source,
                }
            })?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        // distribution's client: HEAD first for a tag, then GET for the content or the error
        // body; the HEAD's transport or auth failure is what the user sees.
        if !reference.starts_with("sha256:") {
            self.request(
                Method::HEAD,
                &path,
                Access::Pull,
                &[],
                headers.clone(),
                None,
            )
            .await?;
        }
        let resp = self
            .request(Method::GET, &path, Access::Pull, &[], headers, None)
            .await?;
        if !resp.status().is_success() {
            return Err(Self::error_from(resp).await);
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = read_limited(resp, MANIFEST_LIMIT).await?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(RegistryError::DigestMismatch {
                expected: reference.to_string(),
                actual: digest,
            });
        }
        let (media_type, manifest) = parse_manifest(&bytes, &content_type)?;
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes,
            manifest,
        })
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: the descriptor, or `None` if unknown.
    pub async fn head_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let resp = self
            .request(Method::HEAD, &path, Access::Pull, &[], headers, None)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Self::error_from(resp).await);
        }
        let h = resp.headers();
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let digest = get("docker-content-digest");
        crate::util::digest::validate(&digest).map_err(|source| RegistryError::InvalidDigest {
            what: "manifest",
            digest: digest.clone(),
            source,
        })?;
        Ok(Some(Descriptor {
            media_type: get("content-type"),
            digest,
            size: get("content-length").parse().unwrap_or(0),
            urls: Vec::new(),
            annotations: None,
            platform: None,
        }))
    }

    /// `GET /v2/<repo>/blobs/<digest>` (redirects followed); the caller streams and verifies.
    pub async fn get_blob(&self, digest: &str) -> Result<Response, RegistryError> {
        self.get_blob_range(digest, 0).await
    }

    /// The blob from byte `offset` on (`Range`), to resume a download; the answer is 206, or
    /// 200 with the whole blob if the registry ignores ranges.
    pub async fn get_blob_range(
        &self,
        digest: &str,
        offset: u64,
    ) -> Result<Response, RegistryError> {
        // Callers pass parsed (validated) digests; checked again since it becomes a URL.
        crate::util::digest::validate(digest).map_err(|source| RegistryError::InvalidDigest {
            what: "blob",
            digest: digest.to_string(),
            source,
        })?;
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        let mut headers = HeaderMap::new();
        if offset > 0
            && let Some(v) = header_value(&format!("bytes={offset}-"))
        {
            headers.insert(header::RANGE, v);
        }
        let resp = self
            .request(Method::GET, &path, Access::Pull, &[], headers, None)
            .await?;
        if !resp.status().is_success() {
            return Err(Self::error_from(resp).await);
        }
        Ok(resp)
    }

    /// A small blob (an image config) in memory, verified against its digest.
    pub async fn get_blob_bytes(&self, digest: &str, limit: usize) -> Result<Bytes, RegistryError> {
        let resp = self.get_blob(digest).await?;
        let bytes = read_limited(resp, limit).await?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// `GET /v2/<repo>/tags/list`, following `Link` pagination.
    pub async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut path = format!("/v2/{}/tags/list", self.repository);
        for _ in 0..1000 {
            let resp = self
                .request(
                    Method::GET,
                    &path,
                    Access::Pull,
                    &[],
                    HeaderMap::new(),
                    None,
                )
                .await?;
            if !resp.status().is_success() {
                return Err(Self::error_from(resp).await);
            }
            let next = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split(';').next())
                .map(|l| {
                    l.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                });
            #[derive(serde::Deserialize)]
            struct Tags {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let body = read_limited(resp, MANIFEST_LIMIT).await?;
            let t: Tags = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::InvalidManifest(format!("invalid tag list: {e}")))?;
            out.extend(t.tags.unwrap_or_default());
            match next {
                Some(n) if !n.is_empty() => path = n,
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Check credentials as `docker login` does (moby's `loginV2`): ping `/v2/`, authenticate
/// against the challenge, expect 200 on `/v2/`. Returns the identity (refresh) token if the
/// token server handed one out.
pub async fn login(
    config: &RegistryConfig,
    server: &str,
    creds: AuthConfig,
) -> Result<String, RegistryError> {
    let host = login_host(server);
    let client =
        RegistryClient::with_timeout(config, &host, "", creds, Some(Duration::from_secs(15)))?;
    let ep = client.endpoint().await?;
    let url = format!("{}/v2/", ep.base);
    let challenge = client.state.lock().await.challenge.clone();
    let auth = match &challenge {
        None => None,
        Some(ch) if ch.scheme == "bearer" => {
            let token = client
                .fetch_token(ch, &[], true)
                .await
                .map_err(|e| match e {
                    RegistryError::Api { status, entry } => RegistryError::TokenDenied {
                        method: "Get".into(),
                        url: url.clone(),
                        status,
                        entry,
                    },
                    other => other,
                })?;
            header_value(&format!("Bearer {token}"))
        }
        Some(_) => client.creds.basic().map(|(u, p)| basic_header(u, p)),
    };
    let mut req = client.http_for(&ep).get(&url);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| error::transport(&Method::GET, &url, &e))?;
    if resp.status() != StatusCode::OK {
        return Err(RegistryError::LoginFailed {
            url,
            status: resp.status().as_u16(),
            reason: resp.status().canonical_reason().unwrap_or("").to_string(),
        });
    }
    let token = client.state.lock().await.refresh_token.clone();
    Ok(if client.creds.identitytoken.is_empty() {
        token.unwrap_or_default()
    } else {
        String::new()
    })
}

/// The registry host a `docker login` server address names: Docker Hub's legacy
/// `https://index.docker.io/v1/` is `docker.io`; a scheme and path are dropped.
pub fn login_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    normalize_host(host)
}

/// `https://mirror:5000/path` → `mirror:5000`, the certs.d directory name.
fn mirror_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

fn normalize_host(host: &str) -> String {
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        h => h.to_string(),
    }
}

fn pick_challenge(h: &HeaderMap) -> Option<Challenge> {
    let mut all = Vec::new();
    for v in h.get_all(header::WWW_AUTHENTICATE) {
        if let Ok(s) = v.to_str() {
            all.extend(parse_challenges(s));
        }
    }
    // Prefer a token flow over Basic when both are offered, as distribution's authorizer does.
    all.iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| all.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

fn basic_header(user: &str, pass: &str) -> HeaderValue {
    use base64::Engine as _;
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    HeaderValue::from_str(&format!("Basic {enc}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// `application/x-www-form-urlencoded` escaping.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Read a whole (small) response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(mut resp: Response, limit: usize) -> Result<Bytes, RegistryError> {
    let url = resp.url().to_string();
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > limit {
                    return Err(RegistryError::InvalidManifest(format!(
                        "response from {url} is larger than {limit} bytes"
                    )));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => return Err(error::transport(&Method::GET, &url, &e)),
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_hosts() {
        assert_eq!(login_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(login_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(login_host("http://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(login_host(""), "docker.io");
    }

    #[test]
    fn endpoints_follow_the_config() {
        let cfg = RegistryConfig {
            registry_mirrors: vec!["https://mirror.example".into()],
            ..Default::default()
        };
        let c = RegistryClient::new(&cfg, "docker.io", "library/x", AuthConfig::default()).unwrap();
        let bases: Vec<_> = c.candidates.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            ["https://mirror.example", "https://registry-1.docker.io"]
        );
        let c = RegistryClient::new(&cfg, "127.0.0.1:5000", "x", AuthConfig::default()).unwrap();
        let bases: Vec<_> = c.candidates.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(bases, ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]);
        let c = RegistryClient::new(&cfg, "quay.io", "x", AuthConfig::default()).unwrap();
        assert_eq!(c.candidates.len(), 1);
        assert_eq!(
            repository_scope("a/b", Access::PullPush),
            "repository:a/b:pull,push"
        );
        assert_eq!(form_encode("a b/c"), "a+b%2Fc");
        assert_eq!(mirror_host("https://m.example:5000/v2"), "m.example:5000");
    }
}

/// The token flow against a fake registry with a token server, in-process.
#[cfg(test)]
mod token_tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    use super::*;

    type Log = Arc<Mutex<Vec<String>>>;

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#;

    async fn handle(
        req: hyper::Request<hyper::body::Incoming>,
        base: String,
        log: Log,
    ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let method = req.method().to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        log.lock().unwrap().push(format!(
            "{method} {path}?{query} {auth} {}",
            String::from_utf8_lossy(&body)
        ));
        let challenge =
            format!("Bearer realm=\"{base}/token\",service=\"fake\",scope=\"repository:x:pull\"");
        let resp = |status: u16, body: &str| {
            hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        let unauthorized = || {
            let mut r = resp(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_str(&challenge).unwrap(),
            );
            r
        };
        let good_basic = format!("Basic {}", {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode("u:p")
        });
        Ok(match path.as_str() {
            "/token" if method == "POST" => {
                let form = String::from_utf8_lossy(&body).to_string();
                if form.contains("grant_type=refresh_token") && form.contains("refresh_token=idtok")
                {
                    resp(200, r#"{"access_token":"tok-pull"}"#)
                } else {
                    resp(401, r#"{"details":"invalid refresh token"}"#)
                }
            }
            "/token" => {
                if auth != good_basic {
                    resp(401, r#"{"details":"incorrect username or password"}"#)
                } else if query.contains("offline_token=true") {
                    resp(200, r#"{"token":"tok-login","refresh_token":"refresh-1"}"#)
                } else if query.contains("scope=repository%3Ax%3Apull") {
                    resp(200, r#"{"token":"tok-pull"}"#)
                } else {
                    resp(200, r#"{"token":"tok-none"}"#)
                }
            }
            "/v2/" => {
                if auth.starts_with("Bearer tok-") {
                    resp(200, "{}")
                } else {
                    unauthorized()
                }
            }
            "/v2/x/manifests/latest" => {
                if auth == "Bearer tok-pull" {
                    let mut r = resp(200, MANIFEST);
                    r.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static(super::super::manifest::MEDIA_OCI_MANIFEST),
                    );
                    r
                } else {
                    unauthorized()
                }
            }
            "/v2/secret/manifests/latest" => resp(
                401,
                r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
            ),
            _ => resp(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
            ),
        })
    }

    async fn fake_registry() -> (String, Log) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: Log = Arc::default();
        let (b, l) = (base.clone(), log.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (b, l) = (b.clone(), l.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, b.clone(), l.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (base, log)
    }

    fn creds(user: &str, pass: &str) -> AuthConfig {
        AuthConfig {
            username: user.into(),
            password: pass.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn bearer_tokens_are_fetched_once_per_scope() {
        let (base, log) = fake_registry().await;
        let host = base.trim_start_matches("http://");
        let cfg = RegistryConfig::default();
        let c = RegistryClient::new(&cfg, host, "x", creds("u", "p")).unwrap();
        let m = c.get_manifest("latest").await.unwrap();
        assert_eq!(m.media_type, super::super::manifest::MEDIA_OCI_MANIFEST);
        assert_eq!(c.base_url().await.unwrap(), base);
        c.get_manifest("latest").await.unwrap();
        let tokens = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("/token"))
            .count();
        assert_eq!(tokens, 1, "{:?}", log.lock().unwrap());
        let token_req = log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("/token"))
            .cloned()
            .unwrap();
        assert!(token_req.contains("service=fake"), "{token_req}");
        assert!(token_req.contains("account=u"), "{token_req}");

        // Wrong password: the token server's refusal, in Go's url.Error form.
        let c = RegistryClient::new(&cfg, host, "x", creds("u", "bad")).unwrap();
        let e = c.get_manifest("latest").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Head \"{base}/v2/x/manifests/latest\": unauthorized: incorrect username or password"
            )
        );
        assert!(e.is_unauthorized());

        // An identity token is traded with a refresh-token grant.
        let idt = AuthConfig {
            identitytoken: "idtok".into(),
            ..Default::default()
        };
        let c = RegistryClient::new(&cfg, host, "x", idt).unwrap();
        c.get_manifest("latest").await.unwrap();
        assert!(
            log.lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with("POST /token") && l.contains("scope=repository%3Ax%3Apull"))
        );

        // A registry's DENIED answer keeps its code.
        let c = RegistryClient::new(&cfg, host, "secret", creds("u", "p")).unwrap();
        let e = c.get_manifest("latest").await.unwrap_err();
        assert_eq!(e.code(), Some("DENIED"));
    }

    #[tokio::test]
    async fn login_uses_the_token_server() {
        let (base, _log) = fake_registry().await;
        let host = base.trim_start_matches("http://").to_string();
        let cfg = RegistryConfig::default();
        let token = login(&cfg, &host, creds("u", "p")).await.unwrap();
        assert_eq!(token, "refresh-1");
        let e = login(&cfg, &format!("http://{host}/"), creds("u", "nope"))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Get \"{base}/v2/\": unauthorized: incorrect username or password")
        );
        assert!(e.is_unauthorized());
    }
}
