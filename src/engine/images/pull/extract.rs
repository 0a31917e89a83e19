//! Extracting a verified blob into the layer store's scratch space, with progress.

use super::*;

/// Counts compressed bytes read, for `Extracting` progress.
pub(super) struct ExtractProgress<R> {
    pub(super) inner: R,
    pub(super) id: String,
    pub(super) current: i64,
    pub(super) total: i64,
    pub(super) throttle: Throttle,
    pub(super) out: ProgressSender,
}

impl<R: Read> Read for ExtractProgress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as i64;
        if self.throttle.ready(n == 0) && n > 0 {
            self.out.blocking_send(&progress::counts(
                &self.id,
                "Extracting",
                self.current,
                self.total,
            ));
        }
        Ok(n)
    }
}

/// Extract a verified blob into scratch space (blocking). The compression is taken from the
/// content (gzip and zstd magic), as Docker's decompressor does, not trusted from the media type.
pub(super) fn extract(
    engine: &Engine,
    scratch: &Scratch,
    index: usize,
    file: Arc<File>,
    desc: &Descriptor,
    out: &ProgressSender,
) -> Result<layers::StagedLayer> {
    let id = short_id(&desc.digest).to_string();
    let total = file.metadata()?.len() as i64;
    let mut counted = ExtractProgress {
        inner: io::BufReader::with_capacity(1 << 20, AtReader { file, pos: 0 }),
        id: id.clone(),
        current: 0,
        total,
        throttle: Throttle::default(),
        out: out.clone(),
    };
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut counted, &mut magic)?;
    let head = io::Cursor::new(magic[..n].to_vec()).chain(counted);
    let compression = if magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None // gzip and plain are told apart by the layer extractor itself
    };
    let name = format!("layer{index}");
    let staged = match compression {
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(head)
                .map_err(|e| EngineError::invalid(format!("invalid zstd layer: {e}")))?;
            engine.stage_layer(scratch, &name, decoder)?
        }
        _ => engine.stage_layer(scratch, &name, head)?,
    };
    out.blocking_send(&progress::counts(&id, "Extracting", total, total));
    Ok(staged)
}

/// Reads a shared file from its own offset (`pread`), so two readers never disturb each other.
pub(super) struct AtReader {
    pub(super) file: Arc<File>,
    pub(super) pos: u64,
}

impl Read for AtReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

pub(super) fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match r.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}
