//! The push side of the distribution protocol on top of [`RegistryClient::request`]: blob
//! existence, cross-repository mounts, uploads (monolithic or streamed) and manifests.
//!
//! An upload is a session the registry names by a `Location` URL, which may be absolute or
//! relative and may carry its own query (`?_state=…`); every step answers with the next one.

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};

use super::client::{Access, RegistryClient, repository_scope, sha256_digest};
use super::error::RegistryError;

/// An upload the registry has opened: where to send the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    location: String,
}

/// The answer to starting an upload with a mount request.
#[derive(Debug)]
pub enum Started {
    /// 201: the registry linked the blob from the other repository; nothing to send.
    Mounted,
    /// 202: an ordinary upload session (the blob was not mountable).
    Upload(UploadSession),
}

/// A blob's bytes as the registry stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobStat {
    pub size: u64,
}

impl RegistryClient {
    /// `HEAD /v2/<repo>/blobs/<digest>`: its size if the repository has it, `None` on 404.
    pub async fn stat_blob(&self, digest: &str) -> Result<Option<BlobStat>, RegistryError> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository());
        let resp = self
            .request(
                Method::HEAD,
                &path,
                Access::PullPush,
                &[],
                HeaderMap::new(),
                None,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(BlobStat {
                size: content_length(&resp).unwrap_or(0),
            })),
            _ => Err(Self::error_from(resp).await),
        }
    }

    /// `POST /v2/<repo>/blobs/uploads/`, with `?mount=<digest>&from=<repo>` when `mount` names
    /// a blob another repository of this registry has.
    pub async fn start_upload(
        &self,
        mount: Option<(&str, &str)>,
    ) -> Result<Started, RegistryError> {
        let mut path = format!("/v2/{}/blobs/uploads/", self.repository());
        let mut extra = Vec::new();
        if let Some((digest, from)) = mount {
            path.push_str(&format!(
                "?mount={}&from={}",
                query_escape(digest),
                query_escape(from)
            ));
            extra.push(repository_scope(from, Access::Pull));
        }
        let resp = self
            .request(
                Method::POST,
                &path,
                Access::PullPush,
                &extra,
                HeaderMap::new(),
                Some(reqwest::Body::from(Bytes::new())),
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(Started::Mounted),
            StatusCode::ACCEPTED => Ok(Started::Upload(session_from(&resp)?)),
            _ => Err(Self::error_from(resp).await),
        }
    }

    /// `PATCH <location>` with the blob's bytes (streamed, chunked); returns the next session.
    pub async fn send_chunk(
        &self,
        session: &UploadSession,
        body: reqwest::Body,
    ) -> Result<UploadSession, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self
            .request(
                Method::PATCH,
                &session.location,
                Access::PullPush,
                &[],
                headers,
                Some(body),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Self::error_from(resp).await);
        }
        session_from(&resp)
    }

    /// `PUT <location>?digest=<digest>`, with the remaining bytes (or none): the blob is
    /// committed under `digest`, which the registry checks.
    pub async fn finish_upload(
        &self,
        session: &UploadSession,
        digest: &str,
        rest: Bytes,
    ) -> Result<(), RegistryError> {
        let url = with_query(&session.location, "digest", digest)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self
            .request(
                Method::PUT,
                &url,
                Access::PullPush,
                &[],
                headers,
                Some(reqwest::Body::from(rest)),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(Self::error_from(resp).await);
        }
        Ok(())
    }

    /// `DELETE <location>`: give up an upload (best effort; the registry expires it anyway).
    pub async fn cancel_upload(&self, session: &UploadSession) {
        let _ = self
            .request(
                Method::DELETE,
                &session.location,
                Access::PullPush,
                &[],
                HeaderMap::new(),
                None,
            )
            .await;
    }

    /// A small blob in one go (POST, then a monolithic PUT): the image config.
    pub async fn put_blob(&self, bytes: Bytes) -> Result<String, RegistryError> {
        let digest = sha256_digest(&bytes);
        let session = match self.start_upload(None).await? {
            Started::Upload(s) => s,
            // Without a mount request a 201 is not an answer we know.
            Started::Mounted => {
                return Err(RegistryError::UnexpectedStatus {
                    status: 201,
                    message: "registry answered an upload request with 201 Created".into(),
                });
            }
        };
        self.finish_upload(&session, &digest, bytes).await?;
        Ok(digest)
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with its media type. Returns the digest the
    /// registry reports (`Docker-Content-Digest`), or the digest of the bytes.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String, RegistryError> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository());
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(media_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        let computed = sha256_digest(&bytes);
        let resp = self
            .request(
                Method::PUT,
                &path,
                Access::PullPush,
                &[],
                headers,
                Some(reqwest::Body::from(bytes)),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(Self::error_from(resp).await);
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            // Only a well-formed digest is shown to the user; anything else, ours.
            .filter(|d| crate::util::digest::validate(d).is_ok())
            .map(String::from)
            .unwrap_or(computed))
    }
}

fn content_length(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The next step of an upload: its `Location`, resolved against the URL that answered (a
/// registry may send `/v2/…` or a full URL, possibly on another host).
fn session_from(resp: &Response) -> Result<UploadSession, RegistryError> {
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::UnexpectedStatus {
            status: resp.status().as_u16(),
            message: "registry answered an upload without a Location header".into(),
        })?;
    let location = resolve(resp.url(), location)?;
    Ok(UploadSession { location })
}

fn resolve(base: &Url, location: &str) -> Result<String, RegistryError> {
    base.join(location)
        .map(String::from)
        .map_err(|e| RegistryError::UnexpectedStatus {
            status: 0,
            message: format!("invalid upload location {location:?}: {e}"),
        })
}

/// Add `key=value` to a URL that may already have a query (`?_state=…` ⇒ `&digest=…`).
fn with_query(url: &str, key: &str, value: &str) -> Result<String, RegistryError> {
    let mut u = Url::parse(url).map_err(|e| RegistryError::UnexpectedStatus {
        status: 0,
        message: format!("invalid upload location {url:?}: {e}"),
    })?;
    u.query_pairs_mut().append_pair(key, value);
    Ok(u.into())
}

/// Go's `url.QueryEscape` for the characters digests and repository names hold.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base = Url::parse("http://127.0.0.1:5000/v2/x/blobs/uploads/").unwrap();
        assert_eq!(
            resolve(&base, "/v2/x/blobs/uploads/u1?_state=s").unwrap(),
            "http://127.0.0.1:5000/v2/x/blobs/uploads/u1?_state=s"
        );
        assert_eq!(
            resolve(&base, "https://blobs.example/up/u2").unwrap(),
            "https://blobs.example/up/u2"
        );
        assert_eq!(
            resolve(&base, "u3").unwrap(),
            "http://127.0.0.1:5000/v2/x/blobs/uploads/u3"
        );
    }

    #[test]
    fn digest_joins_an_existing_query() {
        assert_eq!(
            with_query(
                "http://r/v2/x/blobs/uploads/u?_state=a%2Bb",
                "digest",
                "sha256:ab"
            )
            .unwrap(),
            "http://r/v2/x/blobs/uploads/u?_state=a%2Bb&digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("http://r/v2/x/blobs/uploads/u", "digest", "sha256:ab").unwrap(),
            "http://r/v2/x/blobs/uploads/u?digest=sha256%3Aab"
        );
    }

    #[test]
    fn mount_parameters_are_escaped() {
        assert_eq!(query_escape("sha256:ab"), "sha256%3Aab");
        assert_eq!(query_escape("library/busybox"), "library%2Fbusybox");
    }
}
