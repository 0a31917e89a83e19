//! A small HTTP client of berth's socket (hyperlocal over hyper), for `berth pod` and
//! `berth kube`.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyperlocal::{UnixConnector, Uri};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach berth at {socket}: {source}")]
    Connect {
        socket: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading berth's answer: {0}")]
    Body(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    /// berth's own error text (`{"message"}` or libpod's `{"cause","message"}`).
    #[error("{message}")]
    Api { status: StatusCode, message: String },
}

pub struct Client {
    socket: PathBuf,
    http: HyperClient<UnixConnector, Full<Bytes>>,
}

/// The socket: `--host`, else `DOCKER_HOST` when it is a unix socket, else the rootless
/// socket in `$XDG_RUNTIME_DIR` for non-root users, else `/run/berth.sock`.
pub fn default_socket(host: Option<&str>) -> PathBuf {
    let from = |h: &str| h.strip_prefix("unix://").map(PathBuf::from);
    if let Some(p) = host.and_then(from) {
        return p;
    }
    if let Some(p) = std::env::var("DOCKER_HOST").ok().as_deref().and_then(from) {
        return p;
    }
    if !nix::unistd::geteuid().is_root()
        && let Ok(dir) = std::env::var("XDG_RUNTIME_DIR")
    {
        return PathBuf::from(dir).join("berth.sock");
    }
    PathBuf::from("/run/berth.sock")
}

impl Client {
    pub fn new(socket: PathBuf) -> Client {
        Client {
            socket,
            http: HyperClient::builder(hyper_util::rt::TokioExecutor::new()).build(UnixConnector),
        }
    }

    /// Send one request; a non-2xx answer is its error message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let mut b = Request::builder().method(method).uri(uri);
        let data = match body {
            Some((bytes, content_type)) => {
                b = b.header(hyper::header::CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let req = b.body(Full::new(data))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|source| ClientError::Connect {
                socket: self.socket.display().to_string(),
                source,
            })?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["message"].as_str().map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(ClientError::Api { status, message });
        }
        Ok((status, bytes))
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let body = body.map(|b| (b.to_string().into_bytes(), "application/json"));
        let (_, bytes) = self.call(method, path, body).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
