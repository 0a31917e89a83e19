//! The split file: the layer tar minus regular-file payloads.
//!
//! Format: magic `BERTHSP1`, then segments, each `[tag u8][len u64 LE]…`:
//! `1` Raw = `len` literal bytes follow; `2` File = `[pathlen u32 LE][path]`, the payload is the
//! first `len` bytes of `diff_dir/path` (a canonical relative path, no symlinks); `0` End (len 0).

use std::io::{self, BufRead, Read, Write};

pub(crate) const MAGIC: &[u8; 8] = b"BERTHSP1";
const TAG_END: u8 = 0;
const TAG_RAW: u8 = 1;
const TAG_FILE: u8 = 2;
/// Longer paths cannot be opened anyway (PATH_MAX), so a longer one means corruption.
const MAX_PATH: u32 = 64 * 1024;
/// Raw bytes are coalesced in memory up to this size before a segment is written.
const RAW_CHUNK: usize = 1 << 20;

/// Writes segments, coalescing consecutive raw bytes.
pub(crate) struct SplitWriter<W: Write> {
    out: W,
    pending: Vec<u8>,
    files: u64,
}

impl<W: Write> SplitWriter<W> {
    pub(crate) fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            pending: Vec::new(),
            files: 0,
        })
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= RAW_CHUNK {
            self.flush_raw()?;
        }
        Ok(())
    }

    fn flush_raw(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.out.write_all(&[TAG_RAW])?;
            self.out
                .write_all(&(self.pending.len() as u64).to_le_bytes())?;
            self.out.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Appends a File segment and returns its index (0-based, in order of File segments).
    pub(crate) fn file(&mut self, len: u64, path: &[u8]) -> io::Result<u64> {
        self.flush_raw()?;
        let plen = u32::try_from(path.len())
            .ok()
            .filter(|l| *l <= MAX_PATH)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "path too long for split file")
            })?;
        self.out.write_all(&[TAG_FILE])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&plen.to_le_bytes())?;
        self.out.write_all(path)?;
        let idx = self.files;
        self.files += 1;
        Ok(idx)
    }

    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.flush_raw()?;
        self.out.write_all(&[TAG_END])?;
        self.out.write_all(&0u64.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One segment header; for `Raw` the caller must consume `len` bytes from [`SplitReader::inner`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Raw(u64),
    File { len: u64, path: Vec<u8> },
    End,
}

pub(crate) struct SplitReader<R: BufRead> {
    r: R,
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl<R: BufRead> SplitReader<R> {
    pub(crate) fn new(mut r: R) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|_| corrupt("split file too short"))?;
        if &magic != MAGIC {
            return Err(corrupt("not a split file (bad magic)"));
        }
        Ok(Self { r })
    }

    pub(crate) fn inner(&mut self) -> &mut R {
        &mut self.r
    }

    pub(crate) fn next_segment(&mut self) -> io::Result<Segment> {
        let mut head = [0u8; 9];
        self.r
            .read_exact(&mut head)
            .map_err(|_| corrupt("split file truncated"))?;
        let mut len = [0u8; 8];
        len.copy_from_slice(&head[1..]);
        let len = u64::from_le_bytes(len);
        match head[0] {
            TAG_END => Ok(Segment::End),
            TAG_RAW => Ok(Segment::Raw(len)),
            TAG_FILE => {
                let mut plen = [0u8; 4];
                self.r
                    .read_exact(&mut plen)
                    .map_err(|_| corrupt("split file truncated"))?;
                let plen = u32::from_le_bytes(plen);
                if plen == 0 || plen > MAX_PATH {
                    return Err(corrupt(format!("bad path length {plen} in split file")));
                }
                let mut path = vec![0u8; plen as usize];
                self.r
                    .read_exact(&mut path)
                    .map_err(|_| corrupt("split file truncated"))?;
                Ok(Segment::File { len, path })
            }
            t => Err(corrupt(format!("unknown segment tag {t} in split file"))),
        }
    }
}

/// Copies exactly `len` bytes from `r` to `w`; a short source is an `UnexpectedEof` error.
pub(crate) fn copy_exact(
    r: &mut impl Read,
    w: &mut impl Write,
    mut len: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    while len > 0 {
        let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source shorter than expected",
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        len -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_segments() {
        let mut w = SplitWriter::new(Vec::new()).unwrap();
        w.raw(b"ab").unwrap();
        w.raw(b"cd").unwrap();
        assert_eq!(w.file(7, b"x/y").unwrap(), 0);
        w.raw(b"e").unwrap();
        assert_eq!(w.file(1, b"z").unwrap(), 1);
        let bytes = w.finish().unwrap();
        let mut r = SplitReader::new(&bytes[..]).unwrap();
        assert_eq!(r.next_segment().unwrap(), Segment::Raw(4));
        let mut raw = [0u8; 4];
        r.inner().read_exact(&mut raw).unwrap();
        assert_eq!(&raw, b"abcd");
        assert_eq!(
            r.next_segment().unwrap(),
            Segment::File {
                len: 7,
                path: b"x/y".to_vec()
            }
        );
        assert_eq!(r.next_segment().unwrap(), Segment::Raw(1));
        r.inner().read_exact(&mut raw[..1]).unwrap();
        assert_eq!(
            r.next_segment().unwrap(),
            Segment::File {
                len: 1,
                path: b"z".to_vec()
            }
        );
        assert_eq!(r.next_segment().unwrap(), Segment::End);
    }

    #[test]
    fn rejects_garbage() {
        assert!(SplitReader::new(&b"nope"[..]).is_err());
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&[9; 9]);
        assert!(SplitReader::new(&bad[..]).unwrap().next_segment().is_err());
    }
}
