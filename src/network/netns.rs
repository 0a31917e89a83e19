//! Network namespaces kept alive by a bind mount of their nsfs file, as `ip netns` does:
//! the container, its restarts and netavark all open the same path.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("creating network namespace {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing network namespace {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A new, empty network namespace pinned at `path`.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    let err = |source| NetnsError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::File::create(path).map_err(err)?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) moves only the calling thread: a thread of its own, which ends
    // once the namespace is pinned, so no thread of this process stays in it.
    let res = std::thread::spawn(move || -> std::io::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        nix::mount::mount(
            Some(own.as_str()),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")));
    if let Err(e) = res {
        let _ = std::fs::remove_file(path);
        return Err(err(e));
    }
    Ok(())
}

/// Unpin and remove; a path that is not there is fine.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    if !path.exists() {
        return Ok(());
    }
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetnsError::Remove {
                path: path.to_path_buf(),
                source: e.into(),
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_namespace_is_new_and_removable() {
        if !nix::unistd::Uid::effective().is_root() {
            return; // needs CAP_SYS_ADMIN
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ns");
        create(&p).unwrap();
        let mine = std::fs::metadata("/proc/self/ns/net").unwrap();
        let pinned = std::fs::metadata(&p).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(mine.ino(), pinned.ino(), "a namespace of its own");
        remove(&p).unwrap();
        assert!(!p.exists());
        remove(&p).unwrap();
    }
}
