//! Payload rescue: when a later entry replaces a file whose payload the split file references,
//! the old bytes are copied to a spill file and finally inlined into the split file as raw bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::split::{Segment, SplitReader, SplitWriter};
use super::{LayerError, ctx};

/// Temporary file next to the split file, removed on drop.
pub(super) struct Spill {
    pub(super) file: File,
    path: PathBuf,
}

impl Spill {
    pub(super) fn create(split_path: &Path) -> Result<Self, LayerError> {
        let path = with_suffix(split_path, ".spill");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(ctx(|| format!("creating {}", path.display())))?;
        Ok(Spill { file, path })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub(super) fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Rewrites the split file with rescued payloads (File segment index → range of the spill file)
/// inlined as raw bytes; the new file replaces the old one atomically.
pub(super) fn inline_overrides(
    split_path: &Path,
    spill: &Spill,
    overrides: &HashMap<u64, (u64, u64)>,
    buf: &mut [u8],
) -> Result<(), LayerError> {
    let tmp = with_suffix(split_path, ".tmp");
    let what = || format!("rewriting {}", split_path.display());
    let written = rewrite_into(split_path, &tmp, spill, overrides, buf)
        .and_then(|()| std::fs::rename(&tmp, split_path))
        .map_err(ctx(what));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn rewrite_into(
    split_path: &Path,
    tmp: &Path,
    spill: &Spill,
    overrides: &HashMap<u64, (u64, u64)>,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut src = SplitReader::new(BufReader::new(File::open(split_path)?))?;
    let mut dst = SplitWriter::new(BufWriter::new(File::create(tmp)?))?;
    let mut idx = 0u64;
    loop {
        match src.next_segment()? {
            Segment::Raw(len) => copy_into_raw(src.inner(), &mut dst, len, buf)?,
            Segment::File { len, path } => {
                match overrides.get(&idx) {
                    Some(&(off, olen)) => {
                        let mut rd = SpillRange {
                            file: &spill.file,
                            off,
                            end: off + olen,
                        };
                        copy_into_raw(&mut rd, &mut dst, len, buf)?;
                    }
                    None => {
                        dst.file(len, &path)?;
                    }
                }
                idx += 1;
            }
            Segment::End => break,
        }
    }
    dst.finish()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Reads a byte range of the spill file.
struct SpillRange<'a> {
    file: &'a File,
    off: u64,
    end: u64,
}

impl Read for SpillRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.end - self.off)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read_at(&mut buf[..want], self.off)?;
        self.off += n as u64;
        Ok(n)
    }
}

fn copy_into_raw(
    r: &mut impl Read,
    w: &mut SplitWriter<impl Write>,
    mut len: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    while len > 0 {
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
        r.read_exact(&mut buf[..want])?;
        w.raw(&buf[..want])?;
        len -= want as u64;
    }
    Ok(())
}
