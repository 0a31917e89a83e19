//! Extraction of an untrusted layer tar into an overlayfs diff directory, recording the split file.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, fchmod, futimens, makedev, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::image::tar_limit::HeaderLimit;

use super::fsutil::{self, Dir};
use super::meta::{Meta, finish_node, lenient, meta_of, set_xattrs_fd};
use super::path::{PathError, child, normalise};
use super::record::{RecState, Recorder};
use super::spill::{Spill, inline_overrides};
use super::split::{SplitWriter, copy_exact};
use super::{ExtractedLayer, LayerError, ctx, show};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const BUF_SIZE: usize = 128 * 1024;

/// Extraction state beyond the recorder.
struct Extractor {
    root: OwnedFd,
    root_path: PathBuf,
    split_path: PathBuf,
    /// Canonical path → (File segment index, length) of payloads the diff still holds.
    refs: BTreeMap<Vec<u8>, (u64, u64)>,
    /// Canonical directory path → (atime, mtime), applied at the end.
    dir_times: BTreeMap<Vec<u8>, (TimeSpec, TimeSpec)>,
    /// Payloads of replaced files, copied aside: segment index → (offset in spill, length).
    overrides: HashMap<u64, (u64, u64)>,
    spill: Option<Spill>,
    size: u64,
    buf: Vec<u8>,
}

/// Keys equal to `key` or below `key/` in a map keyed by canonical paths.
fn keys_under<V>(map: &BTreeMap<Vec<u8>, V>, key: &[u8]) -> Vec<Vec<u8>> {
    let lo = child(key, b"");
    let mut hi = lo.clone();
    // '/' + 1 == '0': the first byte string after every "key/…" (at the root, everything).
    let mut out: Vec<Vec<u8>> = if key.is_empty() {
        map.keys().cloned().collect()
    } else {
        if let Some(last) = hi.last_mut() {
            *last = b'0';
        }
        map.range(lo..hi).map(|(k, _)| k.clone()).collect()
    };
    if map.contains_key(key) {
        out.push(key.to_vec());
    }
    out
}

impl Extractor {
    fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Before `key` (and everything under it) disappears, copies payloads still referenced there
    /// into the spill file so the split file stays reproducible.
    fn rescue(&mut self, key: &[u8]) -> Result<(), LayerError> {
        self.dir_times
            .retain(|k, _| !(k == key || k.starts_with(&child(key, b""))));
        for k in keys_under(&self.refs, key) {
            let Some((idx, len)) = self.refs.remove(&k) else {
                continue;
            };
            let what = || format!("saving replaced payload {}", show(&k));
            let src =
                fsutil::open_beneath(self.root.as_fd(), &k, OFlag::O_RDONLY).map_err(ctx(what))?;
            let mut src = File::from(src);
            let st = src.metadata().map_err(ctx(what))?;
            if !st.is_file() || st.len() != len {
                return Err(LayerError::Corrupt(format!(
                    "{} changed during extraction",
                    show(&k)
                )));
            }
            let spill = match &mut self.spill {
                Some(spill) => spill,
                slot => slot.insert(Spill::create(&self.split_path)?),
            };
            let off = spill.file.seek(io::SeekFrom::End(0)).map_err(ctx(what))?;
            copy_exact(&mut src, &mut spill.file, len, &mut self.buf).map_err(ctx(what))?;
            self.overrides.insert(idx, (off, len));
        }
        Ok(())
    }

    /// Removes whatever is at `parent/name` (recursively for a directory).
    fn remove(&mut self, parent: &Dir, name: &[u8], is_dir: bool) -> Result<(), LayerError> {
        let key = child(&parent.canon, name);
        self.rescue(&key)?;
        let what = || format!("removing {}", show(&key));
        if is_dir {
            // std's remove_dir_all does not follow symlinks, and `key` is canonical.
            std::fs::remove_dir_all(self.root_path.join(OsStr::from_bytes(&key))).map_err(ctx(what))
        } else {
            unlinkat(&parent.fd, name, UnlinkatFlags::NoRemoveDir).map_err(ctx(what))
        }
    }

    fn resolve_parent(&self, comps: &[&[u8]], shown: &str) -> Result<Dir, LayerError> {
        fsutil::resolve_dir(self.root(), comps, true).map_err(|e| {
            // A path through a dangling symlink is the archive's fault, not ours.
            if e.kind() == std::io::ErrorKind::NotFound {
                LayerError::Invalid(format!("{shown}: {e}"))
            } else {
                ctx(|| format!("creating parent directories of {shown}"))(e)
            }
        })
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        st: &Rc<RefCell<RecState>>,
    ) -> Result<(), LayerError> {
        let raw_type = entry.header().as_bytes()[156];
        let raw_path = entry.path_bytes().into_owned();
        let shown = show(&raw_path);
        let kind = match entry.header().entry_type() {
            // Pre-POSIX tars mark directories with a trailing slash on a '\0' type (Go does this too).
            EntryType::Regular if raw_type == 0 && raw_path.ends_with(b"/") => EntryType::Directory,
            EntryType::Continuous => EntryType::Regular,
            EntryType::GNUSparse => {
                return Err(LayerError::Invalid(format!(
                    "sparse file {shown} is not supported"
                )));
            }
            k @ (EntryType::Regular
            | EntryType::Link
            | EntryType::Symlink
            | EntryType::Char
            | EntryType::Block
            | EntryType::Directory
            | EntryType::Fifo) => k,
            // Unknown types and global PAX headers: skipped, their bytes stay raw in the split file.
            _ => return Ok(()),
        };
        let comps = match normalise(&raw_path) {
            Ok(c) => c,
            Err(PathError::Breakout) => return Err(LayerError::Breakout { path: shown }),
            Err(PathError::Nul) => {
                return Err(LayerError::Invalid(format!("NUL byte in path {shown:?}")));
            }
        };
        // The root itself: Docker skips it (the diff dir's metadata is the store's business).
        let Some((&name, parent_comps)) = comps.split_last() else {
            return Ok(());
        };
        let meta = meta_of(entry)?;

        if name == WHITEOUT_OPAQUE {
            let parent = self.resolve_parent(parent_comps, &shown)?;
            return fsutil::fsetxattr(parent.fd.as_fd(), b"trusted.overlay.opaque", b"y")
                .map_err(ctx(|| format!("marking {} opaque", show(&parent.canon))));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) || comps[0].starts_with(WHITEOUT_META_PREFIX) {
            // Other AUFS metadata (.wh..wh.plnk/… hardlink stash etc.) has no overlayfs meaning.
            return Ok(());
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(LayerError::Invalid(format!("bad whiteout {shown:?}")));
            }
            let parent = self.resolve_parent(parent_comps, &shown)?;
            return self.whiteout(&parent, target, &meta);
        }

        let parent = self.resolve_parent(parent_comps, &shown)?;
        let key = child(&parent.canon, name);
        let what = || format!("extracting {shown}");
        let existing = fsutil::lstat_at(parent.fd.as_fd(), name).map_err(ctx(what))?;
        let merge_dir = match existing {
            Some(ref s) if fsutil::is_kind(s, SFlag::S_IFDIR) && kind == EntryType::Directory => {
                true
            }
            Some(ref s) => {
                self.remove(&parent, name, fsutil::is_kind(s, SFlag::S_IFDIR))?;
                false
            }
            None => false,
        };
        let pfd = parent.fd.as_fd();
        match kind {
            EntryType::Regular => self.regular(entry, st, pfd, name, &key, &meta, &shown),
            EntryType::Directory => {
                if !merge_dir {
                    nix::sys::stat::mkdirat(pfd, name, Mode::from_bits_truncate(0o700))
                        .map_err(ctx(what))?;
                }
                let dir = fsutil::open_child_dir(pfd, name).map_err(ctx(what))?;
                fchown(
                    &dir,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                )
                .map_err(ctx(what))?;
                set_xattrs_fd(dir.as_fd(), &meta, &shown)?;
                fchmod(&dir, Mode::from_bits_truncate(meta.mode)).map_err(ctx(what))?;
                self.dir_times.insert(key, (meta.atime, meta.mtime));
                Ok(())
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::Invalid(format!("symlink {shown} has no target")))?;
                if target.contains(&0) {
                    return Err(LayerError::Invalid(format!(
                        "NUL byte in symlink target of {shown}"
                    )));
                }
                symlinkat(target.as_ref(), pfd, name).map_err(ctx(what))?;
                finish_node(pfd, name, &meta, &shown, false)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::Invalid(format!("hardlink {shown} has no target")))?
                    .into_owned();
                self.hardlink(pfd, name, &target, &meta, &shown)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                // Same offsets in ustar and GNU headers; only read for devices, FIFOs ignore them.
                let (raw_major, raw_minor) = (&h.as_bytes()[329..337], &h.as_bytes()[337..345]);
                let dev_field = |r: io::Result<Option<u32>>, raw: &[u8]| {
                    lenient(r.map(Option::unwrap_or_default), raw)
                        .map_err(|e| LayerError::Invalid(format!("device number of {shown}: {e}")))
                };
                let (major, minor) = match kind {
                    EntryType::Fifo => (0, 0),
                    _ => (
                        dev_field(h.device_major(), raw_major)?,
                        dev_field(h.device_minor(), raw_minor)?,
                    ),
                };
                let (sflag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, makedev(major.into(), minor.into())),
                    EntryType::Block => (SFlag::S_IFBLK, makedev(major.into(), minor.into())),
                    _ => (SFlag::S_IFIFO, 0),
                };
                mknodat(pfd, name, sflag, Mode::empty(), dev).map_err(ctx(what))?;
                finish_node(pfd, name, &meta, &shown, true)
            }
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        st: &Rc<RefCell<RecState>>,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        key: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), LayerError> {
        let what = || format!("extracting {shown}");
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        let mut file = File::from(
            openat(pfd, name, flags, Mode::from_bits_truncate(0o600)).map_err(ctx(what))?,
        );
        let len = entry.size();
        if len > 0 {
            let idx = st
                .borrow_mut()
                .reference(entry.raw_file_position(), len, key)?;
            self.refs.insert(key.to_vec(), (idx, len));
            copy_exact(entry, &mut file, len, &mut self.buf).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof && !st.borrow().io_failed {
                    LayerError::Invalid(format!("archive truncated in {shown}"))
                } else {
                    ctx(what)(e)
                }
            })?;
        }
        self.size += len;
        fchown(
            &file,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(ctx(what))?;
        set_xattrs_fd(file.as_fd(), meta, shown)?;
        // After chown, which clears setuid/setgid.
        fchmod(&file, Mode::from_bits_truncate(meta.mode)).map_err(ctx(what))?;
        futimens(&file, &meta.atime, &meta.mtime).map_err(ctx(what))
    }

    fn hardlink(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), LayerError> {
        let tshown = show(target);
        let tcomps = match normalise(target) {
            Ok(c) => c,
            Err(PathError::Breakout) => return Err(LayerError::Breakout { path: tshown }),
            Err(PathError::Nul) => {
                return Err(LayerError::Invalid(format!(
                    "NUL byte in link target of {shown}"
                )));
            }
        };
        let missing =
            || LayerError::Invalid(format!("hardlink {shown} -> {tshown}: target not in layer"));
        let Some((&tname, tparent)) = tcomps.split_last() else {
            return Err(missing());
        };
        let tdir = match fsutil::resolve_dir(self.root(), tparent, false) {
            Ok(d) => d,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(missing());
            }
            Err(e) => return Err(ctx(|| format!("resolving link target {tshown}"))(e)),
        };
        match linkat(&tdir.fd, tname, pfd, name, AtFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOENT) => return Err(missing()),
            Err(e) => return Err(ctx(|| format!("linking {shown} -> {tshown}"))(e)),
        }
        let is_symlink = fsutil::lstat_at(pfd, name)
            .map_err(ctx(|| format!("extracting {shown}")))?
            .is_some_and(|s| fsutil::is_kind(&s, SFlag::S_IFLNK));
        finish_node(pfd, name, meta, shown, !is_symlink)
    }

    fn whiteout(&mut self, parent: &Dir, target: &[u8], meta: &Meta) -> Result<(), LayerError> {
        let shown = show(&child(&parent.canon, target));
        let what = || format!("creating whiteout for {shown}");
        if let Some(s) = fsutil::lstat_at(parent.fd.as_fd(), target).map_err(ctx(what))? {
            self.remove(parent, target, fsutil::is_kind(&s, SFlag::S_IFDIR))?;
        }
        // overlayfs whiteout: a 0:0 character device.
        mknodat(
            &parent.fd,
            target,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(ctx(what))?;
        fchownat(
            &parent.fd,
            target,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(ctx(what))
    }

    /// Directory times last and deepest first: creating children changes a directory's mtime.
    fn apply_dir_times(&self) -> Result<(), LayerError> {
        for (key, (atime, mtime)) in self.dir_times.iter().rev() {
            let (parent, name) = match key.iter().rposition(|b| *b == b'/') {
                Some(i) => (&key[..i], &key[i + 1..]),
                None => (&b""[..], &key[..]),
            };
            let what = || format!("setting times of {}", show(key));
            let pfd =
                fsutil::open_beneath(self.root(), parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .map_err(ctx(what))?;
            utimensat(&pfd, name, atime, mtime, UtimensatFlags::NoFollowSymlink)
                .map_err(ctx(what))?;
        }
        Ok(())
    }
}

/// Extracts an uncompressed tar stream into `diff_dir` (an existing empty directory) and writes
/// the split metadata to `split_path`. Reads the stream to EOF, so the digest covers trailing
/// blocks, and converts OCI whiteouts to overlayfs form. On error the caller removes `diff_dir`.
pub fn extract(
    reader: impl Read,
    diff_dir: &Path,
    split_path: &Path,
) -> Result<ExtractedLayer, LayerError> {
    let root =
        fsutil::open_root(diff_dir).map_err(ctx(|| format!("opening {}", diff_dir.display())))?;
    let split_file =
        File::create(split_path).map_err(ctx(|| format!("creating {}", split_path.display())))?;
    let split = SplitWriter::new(BufWriter::with_capacity(BUF_SIZE, split_file))
        .map_err(ctx(|| "writing split file".to_string()))?;
    let st = Rc::new(RefCell::new(RecState {
        pos: 0,
        skip: 0,
        hasher: Sha256::new(),
        split,
        io_failed: false,
    }));
    let recorder = Recorder {
        inner: BufReader::with_capacity(BUF_SIZE, reader),
        st: Rc::clone(&st),
    };
    let mut ex = Extractor {
        root,
        root_path: diff_dir.to_path_buf(),
        split_path: split_path.to_path_buf(),
        refs: BTreeMap::new(),
        dir_times: BTreeMap::new(),
        overrides: HashMap::new(),
        spill: None,
        size: 0,
        buf: vec![0; BUF_SIZE],
    };

    // Errors of the tar parser, or of the HeaderLimit under it (the Recorder below that read
    // fine, so `io_failed` stays unset): the archive is bad, not the stream.
    let parse_err = |st: &Rc<RefCell<RecState>>, e: io::Error| {
        if st.borrow().io_failed {
            ctx(|| "reading layer stream".to_string())(e)
        } else {
            LayerError::Invalid(e.to_string())
        }
    };
    // HeaderLimit refuses huge PAX/long-name headers, which the tar crate would read into memory.
    let mut archive = tar::Archive::new(HeaderLimit::new(recorder));
    for entry in archive.entries().map_err(|e| parse_err(&st, e))? {
        let mut entry = entry.map_err(|e| parse_err(&st, e))?;
        ex.entry(&mut entry, &st)?;
    }
    // Past the end-of-archive marker: keep everything (usually more zero blocks) for the digest.
    let mut recorder = archive.into_inner().into_inner();
    io::copy(&mut recorder, &mut io::sink()).map_err(ctx(|| "reading layer stream".to_string()))?;
    drop(recorder);
    ex.apply_dir_times()?;

    let st = Rc::try_unwrap(st)
        .map_err(|_| LayerError::Invalid("internal: recorder still shared".to_string()))?
        .into_inner();
    let mut out = st
        .split
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(ctx(|| format!("writing {}", split_path.display())))?;
    out.flush()
        .map_err(ctx(|| format!("writing {}", split_path.display())))?;
    drop(out);
    if let Some(spill) = &ex.spill {
        inline_overrides(split_path, spill, &ex.overrides, &mut ex.buf)?;
    }
    Ok(ExtractedLayer {
        diff_id: format!("sha256:{}", hex::encode(st.hasher.finalize())),
        size: ex.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keys() {
        let mut m = BTreeMap::new();
        for k in ["a", "a-b", "a/x", "a/y/z", "a0", "b"] {
            m.insert(k.as_bytes().to_vec(), ());
        }
        let mut got = keys_under(&m, b"a");
        got.sort();
        assert_eq!(got, vec![b"a".to_vec(), b"a/x".to_vec(), b"a/y/z".to_vec()]);
        assert_eq!(keys_under(&m, b"").len(), 6);
    }
}
