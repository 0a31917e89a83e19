//! The data root and the run root are root's alone (as Docker made its own after
//! CVE-2021-41091): a host user who could walk into them could run a container's setuid
//! binaries or open its device nodes through the overlay mounts, or read logs and secrets.
//!
//! Both roots are 0700, so nothing below them can be listed or opened by another user,
//! whatever the modes inside; the database is 0600 and container logs 0640 besides. Roots made
//! before this are fixed on the next start: the roots' modes whenever they differ, the
//! database and existing logs once (a marker file records it).

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::config::Paths;

pub const ROOT_MODE: u32 = 0o700;
pub const DB_MODE: u32 = 0o600;
pub const LOG_MODE: u32 = 0o640;

/// The marker of the one-time sweep of existing files.
const SWEPT: &str = ".private-v1";

/// Make (or fix) both roots private. Every berth process calls it, so the steady state is
/// three `stat`s and no write: the database and the old logs are fixed once, under a marker.
pub fn secure(paths: &Paths) -> io::Result<()> {
    for root in [&paths.data_root, &paths.run_root] {
        make_private_dir(root)?;
    }
    let marker = paths.data_root.join(SWEPT);
    if marker.exists() {
        return Ok(());
    }
    // Made here, empty, when new: SQLite takes an empty file as a new database and gives its
    // -wal and -shm files the database's mode.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(DB_MODE)
        .open(paths.data_root.join("berth.db"))?;
    for name in ["berth.db", "berth.db-wal", "berth.db-shm"] {
        set_mode_if_exists(&paths.data_root.join(name), DB_MODE)?;
    }
    sweep_logs(&paths.data_root.join("containers"))?;
    fs::write(&marker, b"")?;
    fs::set_permissions(&marker, Permissions::from_mode(0o600))
}

/// Create `dir` (and missing parents) so that it is never visible with a wider mode, or
/// narrow its mode if something else made it.
fn make_private_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o7777 == ROOT_MODE => return Ok(()),
        Ok(_) => return fs::set_permissions(dir, Permissions::from_mode(ROOT_MODE)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Parents are ordinary folders (/var/lib, /run): usual modes.
        fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(ROOT_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    fs::set_permissions(dir, Permissions::from_mode(ROOT_MODE))
}

fn set_mode_if_exists(path: &Path, mode: u32) -> io::Result<()> {
    match fs::set_permissions(path, Permissions::from_mode(mode)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `containers/<id>/*-json.log*` written before logs were created 0640.
fn sweep_logs(containers: &Path) -> io::Result<()> {
    let Ok(entries) = fs::read_dir(containers) else {
        return Ok(());
    };
    for c in entries.flatten() {
        let Ok(files) = fs::read_dir(c.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let is_log = name.to_string_lossy().contains("-json.log");
            if is_log && f.file_type().is_ok_and(|t| t.is_file()) {
                set_mode_if_exists(&f.path(), LOG_MODE)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_roots_are_private() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path().join("a/data"), d.path().join("b/run"));
        secure(&paths).unwrap();
        assert_eq!(mode(&paths.data_root), 0o700);
        assert_eq!(mode(&paths.run_root), 0o700);
        assert_eq!(mode(&paths.data_root.join("berth.db")), 0o600);
    }

    #[test]
    fn existing_roots_and_files_are_fixed() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path().join("data"), d.path().join("run"));
        let c = paths.data_root.join("containers/abc");
        fs::create_dir_all(&c).unwrap();
        fs::create_dir_all(&paths.run_root).unwrap();
        for (p, m) in [
            (paths.data_root.clone(), 0o755),
            (paths.run_root.clone(), 0o777),
        ] {
            fs::set_permissions(&p, Permissions::from_mode(m)).unwrap();
        }
        let db = paths.data_root.join("berth.db");
        let log = c.join("abc-json.log.1");
        let hosts = c.join("hosts");
        for f in [&db, &log, &hosts] {
            fs::write(f, b"x").unwrap();
            fs::set_permissions(f, Permissions::from_mode(0o644)).unwrap();
        }
        secure(&paths).unwrap();
        assert_eq!(mode(&paths.data_root), 0o700);
        assert_eq!(mode(&paths.run_root), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&log), 0o640);
        // Files bind-mounted into containers keep their mode: users inside must read them.
        assert_eq!(mode(&hosts), 0o644);
    }
}
