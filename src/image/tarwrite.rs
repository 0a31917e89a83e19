//! Writing tar streams by hand, so a layer's bytes can be streamed in without buffering.

use std::io::{self, Write};

/// Writes a ustar/GNU archive entry by entry to any `Write`.
pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, mtime: u64) -> Self {
        TarWriter { out, mtime }
    }

    fn header(
        &self,
        path: &str,
        size: u64,
        kind: tar::EntryType,
        mode: u32,
    ) -> io::Result<tar::Header> {
        let mut h = tar::Header::new_gnu();
        h.set_path(path)?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }

    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let h = self.header(path, 0, tar::EntryType::Directory, 0o755)?;
        self.out.write_all(h.as_bytes())
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let h = self.header(path, data.len() as u64, tar::EntryType::Regular, 0o644)?;
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// A file whose `size` bytes are produced by `fill`, which must write exactly that many.
    pub fn file_from<E>(
        &mut self,
        path: &str,
        size: u64,
        fill: impl FnOnce(&mut W) -> Result<u64, E>,
    ) -> Result<(), E>
    where
        E: From<io::Error>,
    {
        let h = self.header(path, size, tar::EntryType::Regular, 0o644)?;
        self.out.write_all(h.as_bytes())?;
        let written = fill(&mut self.out)?;
        if written != size {
            return Err(io::Error::other(format!(
                "{path}: wrote {written} bytes, header says {size}"
            ))
            .into());
        }
        self.pad(size)?;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }
}
