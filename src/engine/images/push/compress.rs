//! The blob a layer is pushed as: its reassembled tar, gzip-compressed as Docker compresses
//! uncompressed layers on push (Go's `compress/gzip` at the default level, no name, mtime 0).
//! The compressed digest and size are computed on the way out, so the tar is read only once and
//! nothing is staged on disk.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::config::Paths;
use crate::engine::Result;
use crate::engine::images::layers;
use crate::store::images::LayerRow;

/// What a compressed blob turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// `sha256:<hex>` of the compressed bytes.
    pub digest: String,
    pub size: u64,
}

/// Hashes and counts the bytes that pass through to `inner`.
pub struct Digesting<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Digesting<W> {
    pub fn new(inner: W) -> Digesting<W> {
        Digesting {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The writer back, with what was written through it.
    pub fn finish(mut self) -> io::Result<(W, BlobInfo)> {
        self.inner.flush()?;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok((
            self.inner,
            BlobInfo {
                digest,
                size: self.size,
            },
        ))
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reports the running count of uncompressed bytes, as Docker's progress reader does on the
/// tar it reads.
struct Counting<W, F> {
    inner: W,
    count: u64,
    on_progress: F,
}

impl<W: Write, F: FnMut(u64)> Write for Counting<W, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        (self.on_progress)(self.count);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Gzip `tar` (a writer callback producing the uncompressed stream) into `out`; returns the
/// compressed digest and size. `on_progress` gets the uncompressed byte count as it grows.
pub fn gzip_into<W: Write>(
    out: W,
    on_progress: impl FnMut(u64),
    tar: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<(W, BlobInfo)> {
    let digesting = Digesting::new(out);
    let mut counting = Counting {
        inner: GzEncoder::new(digesting, Compression::default()),
        count: 0,
        on_progress,
    };
    tar(&mut counting)?;
    let digesting = counting.inner.finish()?;
    Ok(digesting.finish()?)
}

/// Compress a stored layer's original tar into `out`.
pub fn compress_layer<W: Write>(
    paths: &Paths,
    row: &LayerRow,
    out: W,
    on_progress: impl FnMut(u64),
) -> Result<(W, BlobInfo)> {
    gzip_into(out, on_progress, |w| layers::write_tar(paths, row, w))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn digest_and_size_are_of_the_compressed_bytes() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut seen = 0;
        let (out, info) = gzip_into(
            Vec::new(),
            |n| seen = n,
            |w| {
                w.write_all(&data)?;
                Ok(data.len() as u64)
            },
        )
        .unwrap();
        assert_eq!(seen, data.len() as u64);
        assert_eq!(info.size, out.len() as u64);
        assert_eq!(info.digest, crate::util::sha256_digest(&out));
        // Go's gzip header: deflate, no flags, mtime 0, default level, OS unknown.
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
