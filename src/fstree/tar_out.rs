//! Write a tree (or one entry of it) as a tar stream, walking by descriptors and never
//! following a symlink. Entries are sorted by name, so the same tree gives the same bytes
//! (layer digests, and so the build cache, depend on it).
//!
//! With `overlay_whiteouts`, an overlayfs upper directory is written as an OCI layer: a
//! character device 0:0 becomes `.wh.<name>`, an opaque directory gets `.wh..wh..opq`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, fstatat};

use super::{Result, TreeError};

/// What to write and how.
pub struct OutOptions<'a> {
    /// Convert overlayfs whiteouts and opaque directories to OCI whiteout entries.
    pub overlay_whiteouts: bool,
    /// Entries to leave out (with everything below them), by their name in the tar.
    pub skip: &'a dyn Fn(&str) -> bool,
}

impl Default for OutOptions<'_> {
    fn default() -> Self {
        OutOptions {
            overlay_whiteouts: false,
            skip: &|_| false,
        }
    }
}

/// How deep a tree is walked: deeper is an error, not a blown stack (each level holds one
/// descriptor and one stack frame).
pub const MAX_DEPTH: usize = 512;

/// A tar writer over any output, remembering hard links by inode.
pub struct TreeTar<W: Write> {
    builder: tar::Builder<W>,
    links: HashMap<(u64, u64), String>,
    depth: usize,
}

impl<W: Write> TreeTar<W> {
    pub fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        TreeTar {
            builder,
            links: HashMap::new(),
            depth: 0,
        }
    }

    /// Finish the archive (end marker) and return the output.
    pub fn finish(self) -> Result<W> {
        self.builder
            .into_inner()
            .map_err(|e| TreeError::io("writing archive", e))
    }

    /// Write every entry inside the directory `dir` (not the directory itself), named under
    /// `prefix` (`""` or ending in `/`).
    pub fn contents(&mut self, dir: BorrowedFd, prefix: &str, opts: &OutOptions) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(TreeError::Archive(format!(
                "{prefix}: more than {MAX_DEPTH} nested directories"
            )));
        }
        let st = fstatat(dir, "", AtFlags::AT_EMPTY_PATH).map_err(|e| TreeError::io(prefix, e))?;
        let fd = super::resolve::reopen(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        if opts.overlay_whiteouts && is_opaque(fd.as_fd()) {
            self.whiteout(&format!("{prefix}.wh..wh..opq"), &st)?;
        }
        self.depth += 1;
        let result = sorted_names(fd.as_fd(), prefix).and_then(|names| {
            for name in names {
                let child = format!("{prefix}{}", name.to_string_lossy());
                self.entry(fd.as_fd(), &name, &child, opts)?;
            }
            Ok(())
        });
        self.depth -= 1;
        result
    }

    /// Append one regular file from a reader (its header's size must match the data).
    pub fn append_file(
        &mut self,
        header: &mut tar::Header,
        name: &str,
        data: impl Read,
    ) -> Result<()> {
        header.set_cksum();
        self.builder
            .append_data(header, name, data)
            .map_err(|e| TreeError::io(name, e))
    }

    /// Append an entry named `name`. Names of an archive of `/` start with `/`, as Docker's
    /// do; the tar crate refuses those, so a short one is written into the header as is
    /// (a long one loses its leading slash: extractors read both the same).
    fn append_named(
        &mut self,
        header: &mut tar::Header,
        name: &str,
        data: impl Read,
    ) -> io::Result<()> {
        if name.starts_with('/') && name.len() <= 100 {
            raw_name(header, name);
            header.set_cksum();
            return self.builder.append(header, data);
        }
        self.builder
            .append_data(header, name.trim_start_matches('/'), data)
    }

    fn append_link_named(
        &mut self,
        header: &mut tar::Header,
        name: &str,
        target: impl AsRef<Path>,
    ) -> io::Result<()> {
        let target = target.as_ref();
        if name.starts_with('/') && name.len() <= 100 && target.as_os_str().len() <= 100 {
            raw_name(header, name);
            header.set_link_name(target)?;
            header.set_cksum();
            return self.builder.append(header, io::empty());
        }
        self.builder
            .append_link(header, name.trim_start_matches('/'), target)
    }

    /// Write the directory `dir` itself as `tar_name` (ending in `/`), then all below it.
    pub fn dir_entry(&mut self, dir: BorrowedFd, tar_name: &str, opts: &OutOptions) -> Result<()> {
        let st =
            fstatat(dir, "", AtFlags::AT_EMPTY_PATH).map_err(|e| TreeError::io(tar_name, e))?;
        let mut header = header_from(&st);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        self.append_named(&mut header, tar_name, io::empty())
            .map_err(|e| TreeError::io(tar_name, e))?;
        self.contents(dir, tar_name, opts)
    }

    /// Write the entry `name` of `dir` as `tar_name` (and, for a directory, all below it).
    pub fn entry(
        &mut self,
        dir: BorrowedFd,
        name: &OsStr,
        tar_name: &str,
        opts: &OutOptions,
    ) -> Result<()> {
        if (opts.skip)(tar_name) {
            return Ok(());
        }
        let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| TreeError::io(tar_name, e))?;
        let kind = st.st_mode & libc::S_IFMT;
        if opts.overlay_whiteouts && kind == libc::S_IFCHR && st.st_rdev == 0 {
            let wh = match tar_name.rsplit_once('/') {
                Some((parent, base)) => format!("{parent}/.wh.{base}"),
                None => format!(".wh.{tar_name}"),
            };
            return self.whiteout(&wh, &st);
        }
        let mut header = header_from(&st);
        let w = |e: io::Error| TreeError::io(tar_name, e);
        match kind {
            libc::S_IFDIR => {
                let fd = openat(
                    dir,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| TreeError::io(tar_name, e))?;
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                let dir_name = format!("{}/", tar_name.trim_end_matches('/'));
                self.append_named(&mut header, &dir_name, io::empty())
                    .map_err(w)?;
                self.contents(fd.as_fd(), &dir_name, opts)?;
            }
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        let first = first.clone();
                        return self
                            .append_link_named(&mut header, tar_name, &first)
                            .map_err(w);
                    }
                    self.links.insert(key, tar_name.to_string());
                }
                let fd = open_regular(dir, name, &st).map_err(|e| TreeError::io(tar_name, e))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(st.st_size as u64);
                // File capabilities travel as a PAX xattr record, as in Docker's layers.
                if let Some(cap) = file_capability(fd.as_fd()) {
                    self.builder
                        .append_pax_extensions([("SCHILY.xattr.security.capability", &cap[..])])
                        .map_err(w)?;
                }
                let data = ExactLen {
                    inner: File::from(fd).take(st.st_size as u64),
                    left: st.st_size as u64,
                };
                self.append_named(&mut header, tar_name, data).map_err(w)?;
            }
            libc::S_IFLNK => {
                let target = readlinkat(dir, name).map_err(|e| TreeError::io(tar_name, e))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                self.append_link_named(&mut header, tar_name, Path::new(&target))
                    .map_err(w)?;
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                header.set_entry_type(match kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                header.set_size(0);
                if kind != libc::S_IFIFO {
                    let _ = header.set_device_major(libc::major(st.st_rdev));
                    let _ = header.set_device_minor(libc::minor(st.st_rdev));
                }
                self.append_named(&mut header, tar_name, io::empty())
                    .map_err(w)?;
            }
            // Sockets are not archived (as in Docker).
            _ => {}
        }
        Ok(())
    }

    fn whiteout(&mut self, tar_name: &str, st: &FileStat) -> Result<()> {
        let mut header = header_from(st);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(0);
        self.append_named(&mut header, tar_name, io::empty())
            .map_err(|e| TreeError::io(tar_name, e))
    }
}

use std::path::Path;

/// Put `name` (at most 100 bytes) into the header's name field unchecked.
fn raw_name(header: &mut tar::Header, name: &str) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
}

fn header_from(st: &FileStat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h
}

/// The names in a directory, sorted by bytes.
pub fn sorted_names(dir: BorrowedFd, what: &str) -> Result<Vec<OsString>> {
    let dup = dir
        .try_clone_to_owned()
        .map_err(|e| TreeError::io(what, e))?;
    // Dir::from_fd takes over the descriptor; a fresh open gives it its own offset.
    let fd = openat(
        &dup,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| TreeError::io(what, e))?;
    let mut d = Dir::from_fd(fd).map_err(|e| TreeError::io(what, e))?;
    let mut names: Vec<OsString> = d
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Open the regular file `name` of `dir` for reading, making sure it is still the file `st`
/// describes: a running container may swap the name for a FIFO (which would block) or a
/// device (whose data is the host's) between the stat and the open.
pub fn open_regular(
    dir: BorrowedFd,
    name: &OsStr,
    st: &FileStat,
) -> std::result::Result<OwnedFd, io::Error> {
    let path = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let now = fstatat(&path, "", AtFlags::AT_EMPTY_PATH)?;
    if now.st_mode & libc::S_IFMT != libc::S_IFREG
        || now.st_ino != st.st_ino
        || now.st_dev != st.st_dev
    {
        return Err(io::Error::other("changed while being read"));
    }
    super::resolve::reopen(
        path.as_fd(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    )
    .map_err(|e| io::Error::other(e.to_string()))
}

/// The `security.capability` xattr of an open file, if it has one.
pub fn file_capability(fd: BorrowedFd) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Does this (overlay upper) directory carry `trusted.overlay.opaque=y`?
pub fn is_opaque(dir: BorrowedFd) -> bool {
    let mut buf = [0u8; 4];
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Exactly `left` bytes: a file that shrank while being read is padded with zeros, one that
/// grew is cut, so the tar stays well-formed (the file of a running container can change).
struct ExactLen<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactLen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}
