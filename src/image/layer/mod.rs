//! Layer tar handling: extract an (untrusted) layer tar into an overlayfs diff directory while
//! recording its metadata in a "split" side file, and later reassemble the byte-identical tar.
//!
//! Like containers/storage's tar-split: every byte of the stream that is not a regular file's
//! payload is kept in the split file; payloads are referenced by their path in the diff directory.

mod assemble;
mod extract;
mod fsutil;
mod meta;
mod path;
mod record;
mod spill;
mod split;
#[cfg(test)]
mod tests;

use std::io::{self, Read};

pub use assemble::assemble;
pub use extract::extract;

/// Result of [`extract`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedLayer {
    /// `sha256:<64 hex>` of every byte read from the (uncompressed) stream, up to EOF.
    pub diff_id: String,
    /// Sum of the regular file payload sizes written (hardlinks counted once).
    pub size: u64,
}

/// Errors of layer extraction and reassembly.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An I/O failure; the message names the operation and path.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An entry (or hardlink target) would land outside the layer root.
    #[error("archive entry {path:?} would escape the layer root")]
    Breakout { path: String },
    /// The archive is malformed or uses an unsupported feature.
    #[error("invalid layer archive: {0}")]
    Invalid(String),
    /// The split file is corrupt or the diff directory no longer matches it.
    #[error("cannot reassemble layer: {0}")]
    Corrupt(String),
}

/// Wraps an I/O-ish error with a description of what was being done, keeping its kind.
pub(crate) fn ctx<E: Into<io::Error>>(
    what: impl FnOnce() -> String,
) -> impl FnOnce(E) -> LayerError {
    move |e| {
        let e: io::Error = e.into();
        LayerError::Io(io::Error::new(e.kind(), format!("{}: {e}", what())))
    }
}

/// Lossy display form of a raw (not necessarily UTF-8) path.
pub(crate) fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const UNSUPPORTED_MAGIC: &[&[u8]] = &[
    &[0x28, 0xb5, 0x2f, 0xfd],             // zstd
    b"BZh",                                // bzip2
    &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], // xz
];

/// Peeks at the first bytes: gzip (`1f 8b`) is decompressed (all members), other known
/// compressions are rejected for now, anything else is returned as is.
pub fn decompressed<'a>(mut reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, LayerError> {
    // A single read may return fewer bytes than the longest magic (pipes), so fill a small prefix.
    let mut prefix = [0u8; 6];
    let mut have = 0;
    while have < prefix.len() {
        match reader.read(&mut prefix[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ctx(|| "reading layer stream".to_string())(e)),
        }
    }
    let head = &prefix[..have];
    if UNSUPPORTED_MAGIC.iter().any(|m| head.starts_with(m)) {
        return Err(LayerError::Invalid("unsupported compression".to_string()));
    }
    let whole = io::Cursor::new(head.to_vec()).chain(reader);
    if head.starts_with(GZIP_MAGIC) {
        // Multi-member: pigz and some registries emit concatenated gzip members.
        Ok(Box::new(flate2::read::MultiGzDecoder::new(whole)))
    } else {
        Ok(Box::new(whole))
    }
}
