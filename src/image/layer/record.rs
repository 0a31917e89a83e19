//! The recording reader: sees every byte the tar parser consumes, hashes it for the diff_id, and
//! records it in the split file unless it is a regular-file payload announced beforehand.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::split::SplitWriter;
use super::{LayerError, ctx, show};

pub(super) type SplitOut = SplitWriter<BufWriter<File>>;

/// State shared between the recording reader (owned by the tar parser) and the extractor.
pub(super) struct RecState {
    pub(super) pos: u64,
    /// Bytes still to come that belong to a referenced payload (hashed, not recorded).
    pub(super) skip: u64,
    pub(super) hasher: Sha256,
    pub(super) split: SplitOut,
    /// The stream or the split file (not the tar parser) failed: report as I/O, not a bad archive.
    pub(super) io_failed: bool,
}

/// Sees every byte the tar parser consumes: hashes it and records it unless it is a payload.
pub(super) struct Recorder<R> {
    pub(super) inner: R,
    pub(super) st: Rc<RefCell<RecState>>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.st.borrow_mut().io_failed = true;
            }
        })?;
        let mut st = self.st.borrow_mut();
        st.hasher.update(&buf[..n]);
        let skipped = usize::try_from(st.skip).unwrap_or(usize::MAX).min(n);
        st.skip -= skipped as u64;
        if let Err(e) = st.split.raw(&buf[skipped..n]) {
            st.io_failed = true;
            return Err(e);
        }
        st.pos += n as u64;
        Ok(n)
    }
}

impl RecState {
    /// Announces that the next `len` bytes, at stream offset `at`, are the payload of `path`.
    pub(super) fn reference(&mut self, at: u64, len: u64, path: &[u8]) -> Result<u64, LayerError> {
        if self.pos != at || self.skip != 0 {
            return Err(LayerError::Invalid(format!(
                "payload of {} not at the expected stream offset",
                show(path)
            )));
        }
        let idx = self
            .split
            .file(len, path)
            .map_err(ctx(|| "writing split file".to_string()))?;
        self.skip = len;
        Ok(idx)
    }
}
