//! `RemoveAll` of one entry of a directory, through descriptors: symlinks are removed, never
//! followed.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::{Result, TreeError};

/// Remove `name` in `dir`, with everything below it if it is a directory. Missing is fine.
pub fn remove_all(dir: BorrowedFd, name: &OsStr) -> Result<()> {
    remove_at_depth(dir, name, 0)
}

fn remove_at_depth(dir: BorrowedFd, name: &OsStr, depth: usize) -> Result<()> {
    let shown = name.to_string_lossy();
    let shown = shown.as_ref();
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(TreeError::io(shown, e)),
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        if depth >= super::tar_out::MAX_DEPTH {
            return Err(TreeError::Archive(format!(
                "{shown}: too many nested directories"
            )));
        }
        empty_at_depth(dir, name, depth)?;
        match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(TreeError::io(shown, e)),
        }
    } else {
        match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(TreeError::io(shown, e)),
        }
    }
}

/// Remove everything inside the directory `name` of `dir`.
fn empty_at_depth(dir: BorrowedFd, name: &OsStr, depth: usize) -> Result<()> {
    let shown = name.to_string_lossy();
    let shown = shown.as_ref();
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| TreeError::io(shown, e))?;
    let names: Vec<OsString> = {
        let mut d = Dir::from_fd(fd.try_clone().map_err(|e| TreeError::io(shown, e))?)
            .map_err(|e| TreeError::io(shown, e))?;
        d.iter()
            .filter_map(|e| e.ok())
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect()
    };
    for n in names {
        remove_at_depth(fd.as_fd(), n.as_os_str(), depth + 1)?;
    }
    Ok(())
}
