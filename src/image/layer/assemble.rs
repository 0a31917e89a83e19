//! Reassembly of the original layer tar from the diff directory and the split file.

use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;

use super::split::{Segment, SplitReader, copy_exact};
use super::{LayerError, ctx, fsutil, show};

const BUF_SIZE: usize = 128 * 1024;

/// Writes the original tar bytes again, from `diff_dir` + `split_path`. Returns bytes written.
///
/// Payload files are opened strictly beneath `diff_dir` without following any symlink and must be
/// regular files of exactly the recorded length, so a modified diff is an error, not a wrong tar.
pub fn assemble(
    diff_dir: &Path,
    split_path: &Path,
    mut out: impl Write,
) -> Result<u64, LayerError> {
    let root =
        fsutil::open_root(diff_dir).map_err(ctx(|| format!("opening {}", diff_dir.display())))?;
    let split =
        File::open(split_path).map_err(ctx(|| format!("opening {}", split_path.display())))?;
    let corrupt = |e: std::io::Error| LayerError::Corrupt(format!("{}: {e}", split_path.display()));
    let mut rd = SplitReader::new(BufReader::with_capacity(BUF_SIZE, split)).map_err(corrupt)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    let write_err = ctx(|| "writing layer tar".to_string());
    loop {
        match rd.next_segment().map_err(corrupt)? {
            Segment::Raw(len) => {
                // copy_exact's UnexpectedEof means the split file is short; the rest is the sink's.
                copy_exact(rd.inner(), &mut out, len, &mut buf).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        corrupt(e)
                    } else {
                        ctx(|| "writing layer tar".to_string())(e)
                    }
                })?;
                total += len;
            }
            Segment::File { len, path } => {
                let shown = show(&path);
                let f = fsutil::open_beneath(root.as_fd(), &path, OFlag::O_RDONLY)
                    .map_err(|e| LayerError::Corrupt(format!("payload {shown}: {e}")))?;
                let mut f = File::from(f);
                let md = f.metadata().map_err(ctx(|| format!("stat {shown}")))?;
                if !md.is_file() || md.len() != len {
                    return Err(LayerError::Corrupt(format!(
                        "payload {shown} is not a regular file of {len} bytes"
                    )));
                }
                copy_exact(&mut f, &mut out, len, &mut buf)
                    .map_err(ctx(|| format!("copying {shown}")))?;
                total += len;
            }
            Segment::End => break,
        }
    }
    out.flush().map_err(write_err)?;
    Ok(total)
}
