//! Docker's wire forms: JSON bodies and `{"message"}` errors, chunked JSON progress streams, and
//! the bridges between hyper's async bodies and the engine's blocking readers and writers.

use std::io::{self, Read, Write};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Response, StatusCode, body::Incoming, header};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::engine::{EngineError, ErrorKind};

pub type Resp = Response<Body>;

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    pub fn into_response(self) -> Resp {
        if self.status == StatusCode::NOT_MODIFIED {
            return empty(StatusCode::NOT_MODIFIED);
        }
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(status = %self.status, message = %self.message, "request failed");
        }
        json(self.status, &serde_json::json!({"message": self.message}))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let status = match e.kind {
            ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Our own failures are logged with their whole cause chain; clients get Docker's text.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let mut chain = String::new();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                chain.push_str(": ");
                chain.push_str(&c.to_string());
                cause = c.source();
            }
            tracing::warn!(message = %e.message, causes = %chain, "internal error");
        }
        ApiError::new(status, e.message)
    }
}

impl From<super::params::ParamError> for ApiError {
    fn from(e: super::params::ParamError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

pub type ApiResult = Result<Resp, ApiError>;

/// A JSON body as Go's encoder writes it: no HTML escaping, a trailing newline.
pub fn json(status: StatusCode, v: &impl Serialize) -> Resp {
    let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

pub fn ok_json(v: &impl Serialize) -> ApiResult {
    Ok(json(StatusCode::OK, v))
}

pub fn empty(status: StatusCode) -> Resp {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Did the client ask to hijack the connection (`Upgrade: tcp`), as attach and exec start do?
pub fn wants_tcp_upgrade(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// The 101 that hands the connection over; the stream itself follows on the upgraded io.
pub fn switching_protocols(content_type: &str) -> ApiResult {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A streamed body of `content_type` fed by `rx`; chunked, since its length is unknown.
pub fn streaming(content_type: &str, rx: mpsc::Receiver<Bytes>) -> Resp {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, io::Error>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// A blocking `Write` that sends its bytes to a streamed response in chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// One JSON message of a progress stream, sent at once (`\r\n`-terminated, as Docker does).
    pub fn message(&mut self, v: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.buf, v)?;
        self.buf.extend_from_slice(b"\r\n");
        self.send()
    }

    /// Docker's in-stream error: both `errorDetail` and `error`, which different clients read.
    pub fn error_message(&mut self, message: &str) -> io::Result<()> {
        self.message(&serde_json::json!({"errorDetail": {"message": message}, "error": message}))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A blocking `Read` over a request body, fed by a task that pulls frames from hyper.
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    pub fn new(mut body: Incoming) -> BodyReader {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data()
                            && tx.send(Ok(data)).await.is_err()
                        {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Err(io::Error::other(e))).await;
                        break;
                    }
                }
            }
        });
        BodyReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Read a whole (small) request body, refusing more than `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}

/// Run blocking engine work off the async thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )),
    }
}
