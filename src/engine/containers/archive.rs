//! `docker cp` and `docker export`: `HEAD/GET/PUT /containers/{id}/archive` and
//! `GET /containers/{id}/export`, on running and stopped containers.
//!
//! A running container is seen through `/proc/<pid>/root`, its own mount namespace, so
//! volumes, binds and the live /etc/hosts are where the container sees them. A stopped one
//! is seen through its mounted root, with its binds and volumes mapped onto their sources.
//! Every lookup is confined to the root it starts from (see `fstree`).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use base64::Engine as _;
use nix::sys::stat::FileStat;
use serde_json::{Map, json};

use crate::fstree::resolve::{self, kind, open_root};
use crate::fstree::tar_in::{self, InOptions};
use crate::fstree::tar_out::{OutOptions, TreeTar};
use crate::fstree::{TreeError, clean_abs, split_last};
use crate::store::containers::ContainerRow;
use crate::util::time::rfc3339_nano;

use super::rootfs::AccessMount;
use super::state::{ContainerStatus, State};
use super::{Engine, EngineError, Result, inspect, ops, rootfs};

/// A container's filesystem as `docker cp` sees it; unmounts what it mounted when dropped.
pub struct View {
    pub row: ContainerRow,
    root: OwnedFd,
    /// Stopped containers: (destination, source root, writable), longest destination first.
    binds: Vec<(String, OwnedFd, bool)>,
    /// Every mount point (destination, writable), for the read-only checks.
    mounts: Vec<(String, bool)>,
    readonly_rootfs: bool,
    running_root: Option<PathBuf>,
    engine: Engine,
    _mount: Option<AccessMount>,
}

fn not_found(path: &str, name: &str) -> EngineError {
    EngineError::not_found(format!(
        "Could not find the file {path} in container {name}"
    ))
}

/// Map a tree error on `path` to Docker's answer.
fn tree_error(e: TreeError, path: &str, name: &str) -> EngineError {
    match e {
        TreeError::NotFound(_) => not_found(path, name),
        TreeError::NotDir(_) => EngineError::internal(format!("lstat {path}: not a directory")),
        TreeError::Breakout(..) | TreeError::Archive(_) => EngineError::invalid(e.to_string()),
        other => EngineError::internal(other.to_string()),
    }
}

impl View {
    /// Open the view of container `name`.
    pub fn open(engine: &Engine, name: &str) -> Result<View> {
        let (row, state) = ops::load(engine, name)?;
        let hc = row.host_config();
        let points = inspect::mount_points(engine, &row.id, &hc)?;
        let mounts: Vec<(String, bool)> = points
            .iter()
            .map(|m| {
                (
                    m["Destination"].as_str().unwrap_or("").to_string(),
                    m["RW"].as_bool().unwrap_or(true),
                )
            })
            .collect();
        let readonly_rootfs = hc.readonly_rootfs;
        if let Some((proc_root, root)) = running_root(engine, &row.id, &state) {
            return Ok(View {
                row,
                root,
                binds: Vec::new(),
                mounts,
                readonly_rootfs,
                running_root: Some(proc_root),
                engine: engine.clone(),
                _mount: None,
            });
        }
        // Stopped (or starting meanwhile: its root is then this same mount).
        let (merged, mount) = AccessMount::mount(engine, &row.id, &row.image_id)?;
        let root = open_root(&merged).map_err(EngineError::internal_cause)?;
        let mut binds = Vec::new();
        for m in &points {
            let (Some(dest), Some(src)) = (m["Destination"].as_str(), m["Source"].as_str()) else {
                continue;
            };
            if src.is_empty() || m["Type"] == "tmpfs" {
                continue;
            }
            // A bound file (not a folder) is not mapped: its path is looked up in the root.
            if let Ok(fd) = open_root(std::path::Path::new(src)) {
                binds.push((clean_abs(dest), fd, m["RW"].as_bool().unwrap_or(true)));
            }
        }
        binds.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
        Ok(View {
            row,
            root,
            binds,
            mounts,
            readonly_rootfs,
            running_root: None,
            engine: engine.clone(),
            _mount: Some(mount),
        })
    }

    /// The root a clean container path lives in, and the path inside that root. For a
    /// stopped container the path's folders are resolved first (symlinks inside the container,
    /// as it would see them), so a link into a volume reaches the volume; the last component
    /// is left as is.
    fn locate(&self, clean: &str) -> (BorrowedFd<'_>, String) {
        if self.binds.is_empty() {
            return (self.root.as_fd(), clean.to_string());
        }
        let resolved = match split_last(clean) {
            (parent, Some(name)) => {
                let p = self.link_target(parent);
                format!("{}/{name}", p.trim_end_matches('/'))
            }
            (_, None) => clean.to_string(),
        };
        self.locate_resolved(&resolved)
    }

    /// `locate` with the last component followed too (Docker's `EvalSymlinks`).
    fn locate_full(&self, clean: &str) -> (BorrowedFd<'_>, String) {
        if self.binds.is_empty() {
            return (self.root.as_fd(), clean.to_string());
        }
        self.locate_resolved(&self.link_target(clean))
    }

    /// `locate` for a path whose folders are already resolved.
    fn locate_resolved(&self, clean: &str) -> (BorrowedFd<'_>, String) {
        for (dest, fd, _) in &self.binds {
            if clean == dest {
                return (fd.as_fd(), "/".to_string());
            }
            if let Some(rest) = clean.strip_prefix(dest.as_str())
                && rest.starts_with('/')
            {
                return (fd.as_fd(), rest.to_string());
            }
        }
        (self.root.as_fd(), clean.to_string())
    }

    /// The filesystem path of the container's root as a host path (for user lookups).
    fn root_path(&self) -> PathBuf {
        self.running_root
            .clone()
            .unwrap_or_else(|| rootfs::merged(&self.engine, &self.row.id))
    }

    /// `lstat` with Docker's trailing-slash rule: `/x/` and `/x/.` follow `x`.
    fn stat_raw(&self, raw: &str) -> std::result::Result<FileStat, TreeError> {
        let clean = clean_abs(raw);
        let follow = raw.ends_with('/') || raw.ends_with("/.") || raw == ".";
        if follow {
            let (root, inner) = self.locate_full(&clean);
            let st = resolve::stat(root, &inner)?;
            if kind(&st) != libc::S_IFDIR {
                return Err(TreeError::NotDir(raw.to_string()));
            }
            Ok(st)
        } else {
            let (root, inner) = self.locate(&clean);
            resolve::lstat(root, &inner)
        }
    }

    /// `FollowSymlinkInScope(path, "/")`: every link on the path resolved, as far as it goes.
    fn link_target(&self, clean: &str) -> String {
        let mut todo: Vec<String> = clean
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = format!(
                "/{}",
                [done.join("/"), c.clone()]
                    .join("/")
                    .trim_start_matches('/')
            );
            let (root, inner) = self.locate_resolved(&candidate);
            match resolve::lstat(root, &inner) {
                Ok(st) if kind(&st) == libc::S_IFLNK && hops < 255 => {
                    hops += 1;
                    let target = resolve::readlink(root, &inner).unwrap_or_default();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    for t in target.split('/').filter(|t| !t.is_empty()).rev() {
                        todo.push(t.to_string());
                    }
                }
                _ => done.push(c),
            }
        }
        format!("/{}", done.join("/"))
    }

    /// The `X-Docker-Container-Path-Stat` value for `raw` (the query's path).
    pub fn path_stat(&self, raw: &str) -> Result<String> {
        let st = self
            .stat_raw(raw)
            .map_err(|e| tree_error(e, raw, &self.row.name))?;
        let link = if kind(&st) == libc::S_IFLNK {
            self.link_target(&clean_abs(raw))
        } else {
            String::new()
        };
        let stat = json!({
            "name": go_base(raw),
            "size": st.st_size,
            "mode": go_file_mode(&st),
            "mtime": rfc3339_nano(
                st.st_mtime
                    .saturating_mul(1_000_000_000)
                    .saturating_add(st.st_mtime_nsec)
            ),
            "linkTarget": link,
        });
        Ok(base64::engine::general_purpose::STANDARD.encode(stat.to_string()))
    }

    /// Write the archive of `raw` (as `GET …/archive` names its entries) to `out`.
    pub fn write_archive(&self, raw: &str, out: impl Write) -> Result<()> {
        let err = |e| tree_error(e, raw, &self.row.name);
        let st = self.stat_raw(raw).map_err(err)?;
        let clean = clean_abs(raw);
        let base = go_base(raw);
        let mut t = TreeTar::new(out);
        let opts = OutOptions::default();
        if kind(&st) == libc::S_IFDIR {
            let (root, inner) = self.locate_full(&clean);
            let dir = resolve::open_dir(root, &inner).map_err(err)?;
            let name = match base.as_str() {
                "/" => "/".to_string(),
                "." => "./".to_string(),
                b => format!("{b}/"),
            };
            t.dir_entry(dir.as_fd(), &name, &opts).map_err(err)?;
        } else {
            let (root, inner) = self.locate(&clean);
            match resolve::parent_of(root, &inner).map_err(err)? {
                Some((dir, name)) => t
                    .entry(dir.as_fd(), OsStr::new(&name), &base, &opts)
                    .map_err(err)?,
                None => return Err(not_found(raw, &self.row.name)),
            }
        }
        t.finish().map_err(err)?;
        Ok(())
    }

    /// Check that `PUT …/archive` may write at `clean` (moby `checkWritablePath`).
    fn check_writable(&self, clean: &str) -> Result<()> {
        let inside = |dest: &str| {
            clean == dest || clean.starts_with(&format!("{}/", dest.trim_end_matches('/')))
        };
        let best = self
            .mounts
            .iter()
            .filter(|(d, _)| inside(d))
            .max_by_key(|(d, _)| d.len());
        match best {
            Some((_, true)) => Ok(()),
            Some((_, false)) => Err(EngineError::invalid("mounted volume is marked read-only")),
            None if self.readonly_rootfs => {
                Err(EngineError::invalid("container rootfs is marked read-only"))
            }
            None => Ok(()),
        }
    }

    /// Extract the tar `body` into the directory `raw` (`PUT …/archive`).
    pub fn extract(
        &self,
        raw: &str,
        body: impl Read,
        no_overwrite: bool,
        copy_uid_gid: bool,
    ) -> Result<()> {
        let clean = clean_abs(raw);
        let (root, inner) = self.locate_full(&clean);
        let dir = resolve::open(root, &inner, nix::fcntl::OFlag::O_PATH)
            .map_err(|e| tree_error(e, raw, &self.row.name))?;
        if !resolve::is_dir(&dir) {
            return Err(EngineError::invalid("extraction point is not a directory"));
        }
        // Docker checks the resolved extraction point (a link to a read-only volume counts).
        self.check_writable(&self.link_target(&clean))?;
        let chown = if copy_uid_gid && !self.row.config().user.is_empty() {
            let user = self.row.config().user;
            let (uid, gid, _) = crate::runtime::user::resolve_user(&self.root_path(), &user, &[])
                .map_err(|e| {
                EngineError::invalid(format!("failed to look up user {user:?} in container: {e}"))
            })?;
            Some((uid, gid))
        } else {
            None
        };
        let opts = InOptions {
            no_overwrite_dir_non_dir: no_overwrite,
            chown,
            chmod: None,
        };
        let body = crate::image::layer::decompressed(body).map_err(EngineError::invalid_cause)?;
        tar_in::extract(root, &inner, body, &opts).map_err(|e| match e {
            TreeError::ReadOnly(_) => EngineError::invalid("mounted volume is marked read-only"),
            TreeError::Overwrite(m) => EngineError::internal(m),
            e => tree_error(e, raw, &self.row.name),
        })?;
        Ok(())
    }
}

/// The running container's root as its init process sees it, opened; `None` unless it is
/// this container's: a pid reused by another process (its root is the host's `/`) must not
/// be written through, so the root must be the container's own mounted overlay.
fn running_root(engine: &Engine, id: &str, state: &State) -> Option<(PathBuf, OwnedFd)> {
    if state.status != ContainerStatus::Running || state.pid <= 0 {
        return None;
    }
    let p = PathBuf::from(format!("/proc/{}/root", state.pid));
    let fd = open_root(&p).ok()?;
    let here = nix::sys::stat::fstat(&fd).ok()?;
    let merged = nix::sys::stat::stat(&rootfs::merged(engine, id)).ok()?;
    (here.st_dev == merged.st_dev && here.st_ino == merged.st_ino).then_some((p, fd))
}

/// Go's `filepath.Base`.
pub fn go_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    split_last(&format!("/{}", t.trim_start_matches('/')))
        .1
        .map(|s| s.to_string())
        .unwrap_or_else(|| ".".into())
}

/// Go's `os.FileMode` bits for a stat result.
pub fn go_file_mode(st: &FileStat) -> u32 {
    let mut m = st.st_mode & 0o777;
    match kind(st) {
        libc::S_IFDIR => m |= 1 << 31,
        libc::S_IFLNK => m |= 1 << 27,
        libc::S_IFBLK => m |= 1 << 26,
        libc::S_IFCHR => m |= (1 << 26) | (1 << 21),
        libc::S_IFIFO => m |= 1 << 25,
        libc::S_IFSOCK => m |= 1 << 24,
        _ => {}
    }
    if st.st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st.st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st.st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// Record a container event after a copy.
pub fn event(engine: &Engine, row: &ContainerRow, action: &str, path: Option<&str>) {
    let mut extra = Map::new();
    if let Some(p) = path {
        extra.insert("path".into(), json!(p));
    }
    if let Ok(mut store) = engine.store() {
        let _ = store.write(|tx| inspect::container_event(tx, action, row, extra));
    }
}

/// `GET /containers/{id}/export`: the container's root (image layers and its own changes,
/// no volumes) as a tar.
pub struct Export {
    root: OwnedFd,
    pub row: ContainerRow,
    _mount: AccessMount,
}

impl Export {
    pub fn open(engine: &Engine, name: &str) -> Result<Export> {
        let (row, _) = ops::load(engine, name)?;
        let (merged, mount) = AccessMount::mount(engine, &row.id, &row.image_id)?;
        let root = open_root(&merged).map_err(EngineError::internal_cause)?;
        Ok(Export {
            root,
            row,
            _mount: mount,
        })
    }

    pub fn write(&self, out: impl Write) -> Result<()> {
        let mut t = TreeTar::new(out);
        t.contents(self.root.as_fd(), "", &OutOptions::default())
            .map_err(EngineError::internal_cause)?;
        t.finish().map_err(EngineError::internal_cause)?;
        Ok(())
    }
}
