//! `GET /containers/{id}/changes` (`docker diff`): moby's overlay changes walk over the
//! container's upper directory, compared with the image's layers.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, fstatat};
use serde_json::{Value, json};

use crate::fstree::resolve;
use crate::fstree::tar_out::{is_opaque, sorted_names};
use crate::store::images as image_rows;

use super::{Engine, EngineError, Result, resolve as resolve_container};

/// Paths Docker keeps in a container's init layer (mount points and generated files): they
/// are below the container's own layer there, so they never show up as its changes. runc
/// creates the missing ones in berth's upper directory; they are treated as the image's.
pub const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/etc",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

/// Kinds as the API numbers them.
const MODIFIED: u8 = 0;
const ADDED: u8 = 1;
const DELETED: u8 = 2;

/// The image's layer directories (topmost first) and the container's upper directory.
pub fn layer_roots(engine: &Engine, id: &str, image_id: &str) -> Result<(OwnedFd, Vec<OwnedFd>)> {
    let layers = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(image_rows::image_layers(tx, image_id)?))?;
    let mut lowers = Vec::new();
    for l in layers.iter().rev() {
        let dir = engine
            .paths()
            .layer_dir(crate::util::digest_hex(&l.chain_id))
            .join("diff");
        lowers.push(resolve::open_root(&dir).map_err(EngineError::internal_cause)?);
    }
    let upper = engine.paths().container_dir(id).join("diff");
    let upper = resolve::open_root(&upper).map_err(EngineError::internal_cause)?;
    Ok((upper, lowers))
}

/// `docker diff`: `[{"Path","Kind"}]` in walk order, or `null` when nothing changed.
pub fn changes(engine: &Engine, name: &str) -> Result<Value> {
    let row = engine.store()?.read(|tx| resolve_container(tx, name))?;
    // Never started: no upper directory yet, no changes.
    if !engine.paths().container_dir(&row.id).join("diff").is_dir() {
        return Ok(Value::Null);
    }
    let (upper, lowers) = layer_roots(engine, &row.id, &row.image_id)?;
    let mut walk = Walk {
        lowers: &lowers,
        out: Vec::new(),
        changed_dirs: std::collections::HashSet::new(),
    };
    walk.dir(upper.as_fd(), "")
        .map_err(EngineError::internal_cause)?;
    if walk.out.is_empty() {
        return Ok(Value::Null);
    }
    Ok(Value::Array(
        walk.out
            .into_iter()
            .map(|(p, k)| json!({"Path": p, "Kind": k}))
            .collect(),
    ))
}

struct Walk<'a> {
    lowers: &'a [OwnedFd],
    out: Vec<(String, u8)>,
    changed_dirs: std::collections::HashSet<String>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: BorrowedFd, prefix: &str) -> crate::fstree::Result<()> {
        if prefix.matches('/').count() >= crate::fstree::tar_out::MAX_DEPTH {
            return Err(crate::fstree::TreeError::Archive(format!(
                "{prefix}: too many nested directories"
            )));
        }
        let fd = resolve::reopen(
            dir,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        )?;
        for name in sorted_names(fd.as_fd(), prefix)? {
            let path = format!("{prefix}/{}", name.to_string_lossy());
            let st = fstatat(fd.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|e| crate::fstree::TreeError::io(&path, e))?;
            self.entry(fd.as_fd(), &name, &path, &st)?;
            if resolve::kind(&st) == libc::S_IFDIR {
                let child = nix::fcntl::openat(
                    fd.as_fd(),
                    name.as_os_str(),
                    nix::fcntl::OFlag::O_PATH
                        | nix::fcntl::OFlag::O_NOFOLLOW
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| crate::fstree::TreeError::io(&path, e))?;
                self.dir(child.as_fd(), &path)?;
            }
        }
        Ok(())
    }

    fn in_lower(&self, path: &str) -> Option<FileStat> {
        self.lowers
            .iter()
            .find_map(|l| resolve::stat(l.as_fd(), path).ok())
    }

    fn entry(
        &mut self,
        dir: BorrowedFd,
        name: &OsStr,
        path: &str,
        st: &FileStat,
    ) -> crate::fstree::Result<()> {
        let is_dir = resolve::kind(st) == libc::S_IFDIR;
        let whiteout = resolve::kind(st) == libc::S_IFCHR && st.st_rdev == 0;
        let opaque_deleted = is_dir
            && {
                let fd = nix::fcntl::openat(
                    dir,
                    name,
                    nix::fcntl::OFlag::O_RDONLY
                        | nix::fcntl::OFlag::O_DIRECTORY
                        | nix::fcntl::OFlag::O_NOFOLLOW
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                );
                fd.is_ok_and(|fd| is_opaque(fd.as_fd()))
            }
            && self.in_lower(path).is_some();
        let kind = if whiteout || opaque_deleted {
            DELETED
        } else if INIT_PATHS.contains(&path) {
            // As if it were in the init layer: unchanged unless a child changes.
            return Ok(());
        } else {
            match self.in_lower(path) {
                None => ADDED,
                Some(lower) => {
                    let lower_dir = resolve::kind(&lower) == libc::S_IFDIR;
                    if is_dir
                        && lower_dir
                        && lower.st_size == st.st_size
                        && lower.st_mode == st.st_mode
                        && lower.st_mtime == st.st_mtime
                        && lower.st_mtime_nsec == st.st_mtime_nsec
                    {
                        return Ok(());
                    }
                    MODIFIED
                }
            }
        };
        if is_dir {
            self.changed_dirs.insert(path.to_string());
        }
        if kind == ADDED || kind == DELETED {
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            if !parent.is_empty() && !self.changed_dirs.contains(parent) {
                self.out.push((parent.to_string(), MODIFIED));
                self.changed_dirs.insert(parent.to_string());
            }
        }
        self.out.push((path.to_string(), kind));
        Ok(())
    }
}
