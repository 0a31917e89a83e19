//! A request body fed from a blocking thread: the compressor writes, the upload streams it.

use std::io::{self, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Chunks that go out together; the registry sees one chunked PATCH.
const CHUNK: usize = 64 * 1024;

type Item = Result<Bytes, io::Error>;

/// The error a writer gets once the upload no longer reads.
pub const STOPPED: &str = "upload stopped";

/// The writing end, for the blocking thread.
pub struct BodyWriter {
    tx: mpsc::Sender<Item>,
    buf: Vec<u8>,
}

/// A streamed body and the writer that fills it.
pub fn channel() -> (BodyWriter, reqwest::Body) {
    let (tx, rx) = mpsc::channel::<Item>(8);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        BodyWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        reqwest::Body::wrap_stream(stream),
    )
}

impl BodyWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, STOPPED))
    }
}

impl Write for BodyWriter {
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
