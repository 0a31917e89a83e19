//! `User` resolution against the container's /etc/passwd and /etc/group, read through
//! root-confined opens (the rootfs is untrusted: symlinks resolve inside it, never on the host).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat};

use super::SpecError;

const MAX_SYMLINKS: usize = 40;
/// /etc/passwd or /etc/group bigger than this is not read (a hostile image could be huge).
const MAX_FILE: u64 = 32 << 20;
const MAX_ID: i64 = i32::MAX as i64;

/// Open `path` (absolute or relative, inside the container) below `root` for reading, resolving
/// every symlink as if `root` were `/` (like `RESOLVE_IN_ROOT`), one component at a time with
/// `O_NOFOLLOW`. Only regular files are opened.
pub fn open_in_root(root: &Path, path: &str) -> io::Result<File> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root_fd: OwnedFd = openat(nix::fcntl::AT_FDCWD, root, dir_flags, Mode::empty())?;
    // stack of opened directories; stack[0] is the root
    let mut stack: Vec<OwnedFd> = vec![root_fd];
    let mut todo: VecDeque<String> = split(path);
    let mut links = 0;
    while let Some(comp) = todo.pop_front() {
        match comp.as_str() {
            "" | "." => continue,
            ".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        let parent = stack.last().expect("root stays on the stack");
        let fd = openat(
            parent,
            comp.as_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = fstat(&fd)?;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP.into());
            }
            let target = readlinkat(parent, comp.as_str())?;
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                stack.truncate(1);
            }
            let mut rest = split(&target);
            rest.extend(todo);
            todo = rest;
            continue;
        }
        if todo.iter().all(|c| c.is_empty() || c == ".") {
            // last component: open it for reading, refusing anything but a regular file
            if kind != SFlag::S_IFREG {
                return Err(if kind == SFlag::S_IFDIR {
                    Errno::EISDIR.into()
                } else {
                    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
                });
            }
            let f = openat(
                parent,
                comp.as_str(),
                OFlag::O_RDONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC
                    | OFlag::O_NOCTTY
                    | OFlag::O_NONBLOCK,
                Mode::empty(),
            )?;
            let st = fstat(&f)?;
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                ));
            }
            return Ok(File::from(f));
        }
        if kind != SFlag::S_IFDIR {
            return Err(Errno::ENOTDIR.into());
        }
        stack.push(fd);
    }
    // the path named the root itself (or a directory)
    Err(Errno::EISDIR.into())
}

fn split(p: &str) -> VecDeque<String> {
    p.split('/').map(str::to_string).collect()
}

/// Read a file of the rootfs; `None` when it is missing or unreadable (Docker then treats the
/// database as absent).
fn read_in_root(root: &Path, path: &str) -> Option<String> {
    let f = open_in_root(root, path).ok()?;
    let mut s = String::new();
    f.take(MAX_FILE).read_to_string(&mut s).ok()?;
    Some(s)
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: i64,
    gid: i64,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

fn parse_passwd(s: &str) -> Vec<PasswdEntry> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            PasswdEntry {
                name: f.first().unwrap_or(&"").to_string(),
                uid: f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
                gid: f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
            }
        })
        .collect()
}

fn parse_group(s: &str) -> Vec<GroupEntry> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            GroupEntry {
                name: f.first().unwrap_or(&"").to_string(),
                gid: f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn range_err() -> SpecError {
    SpecError::invalid("uids and gids must be in range 0-2147483647")
}

/// Numeric? (value, is_numeric). Out of range numbers are errors, like moby/sys/user.
fn parse_numeric(v: &str) -> Result<(i64, bool), SpecError> {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
    {
        return Ok((0, false));
    }
    match v.parse::<i64>() {
        Ok(n) if (0..=MAX_ID).contains(&n) => Ok((n, true)),
        Ok(_) => Err(range_err()),
        Err(e)
            if matches!(
                e.kind(),
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
            ) =>
        {
            Err(range_err())
        }
        Err(_) => Ok((0, false)),
    }
}

/// Resolve `User` ("", "name", "uid", "name:group", "uid:gid") against the rootfs's /etc/passwd
/// and /etc/group, plus the user's supplementary groups and `HostConfig.GroupAdd`.
/// Returns (uid, gid, additional gids) where the additional gids start with the primary gid,
/// as Docker puts them in the spec.
pub fn resolve_user(
    rootfs: &Path,
    user: &str,
    group_add: &[String],
) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let passwd = read_in_root(rootfs, "/etc/passwd").map(|s| parse_passwd(&s));
    let group = read_in_root(rootfs, "/etc/group").map(|s| parse_group(&s));

    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, g.split(':').next().unwrap_or("")),
        None => (user, ""),
    };
    let (uid_arg, is_uid) = parse_numeric(user_arg)?;
    let (gid_arg, is_gid) = parse_numeric(group_arg)?;

    let (mut uid, mut gid) = (0i64, 0i64);
    let mut sgids: Vec<i64> = Vec::new();
    let found = passwd.as_ref().and_then(|entries| {
        entries
            .iter()
            .find(|e| {
                if user_arg.is_empty() {
                    e.uid == 0
                } else if is_uid {
                    e.uid == uid_arg
                } else {
                    e.name == user_arg
                }
            })
            .cloned()
    });
    let mut matched_name = String::new();
    if let Some(e) = found {
        matched_name = e.name;
        uid = e.uid;
        gid = e.gid;
    } else if !user_arg.is_empty() {
        if !is_uid {
            return Err(SpecError::invalid(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )));
        }
        uid = uid_arg;
    }

    if !group_arg.is_empty() || !matched_name.is_empty() {
        let groups: Vec<&GroupEntry> = group
            .as_ref()
            .map(|gs| {
                gs.iter()
                    .filter(|g| {
                        if group_arg.is_empty() {
                            g.members.contains(&matched_name)
                        } else if is_gid {
                            g.gid == gid_arg
                        } else {
                            g.name == group_arg
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !group_arg.is_empty() {
            if let Some(g) = groups.first() {
                gid = g.gid;
            } else {
                if !is_gid {
                    return Err(SpecError::invalid(format!(
                        "unable to find group {group_arg}: no matching entries in group file"
                    )));
                }
                gid = gid_arg;
            }
        } else {
            sgids = groups.iter().map(|g| g.gid).collect();
        }
    }

    // HostConfig.GroupAdd
    let mut added = Vec::new();
    for ag in group_add {
        let (n, numeric) = parse_numeric(ag)?;
        let hit = group.as_ref().and_then(|gs| {
            gs.iter()
                .find(|g| if numeric { g.gid == n } else { g.name == *ag })
        });
        match hit {
            Some(g) => {
                if !(0..=MAX_ID).contains(&g.gid) {
                    return Err(range_err());
                }
                added.push(g.gid);
            }
            None if numeric => added.push(n),
            None => {
                return Err(SpecError::invalid(format!(
                    "unable to find group {ag}: no matching entries in group file"
                )));
            }
        }
    }

    for v in [uid, gid] {
        if !(0..=MAX_ID).contains(&v) {
            return Err(range_err());
        }
    }
    let mut additional: Vec<u32> = vec![gid as u32];
    for g in sgids.into_iter().chain(added) {
        if (0..=MAX_ID).contains(&g) && !additional.contains(&(g as u32)) {
            additional.push(g as u32);
        }
    }
    Ok((uid as u32, gid as u32, additional))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nnobody:x:65534:65534:nobody:/:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:alice,bob\naudio:x:29:alice\nalice:x:1000:\nnogroup:x:65534:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_and_numbers() {
        let d = rootfs();
        let p = d.path();
        assert_eq!(resolve_user(p, "", &[]).unwrap(), (0, 0, vec![0]));
        assert_eq!(
            resolve_user(p, "alice", &[]).unwrap(),
            (1000, 1000, vec![1000, 10, 29])
        );
        assert_eq!(
            resolve_user(p, "1000", &[]).unwrap(),
            (1000, 1000, vec![1000, 10, 29])
        );
        assert_eq!(
            resolve_user(p, "alice:audio", &[]).unwrap(),
            (1000, 29, vec![29])
        );
        assert_eq!(
            resolve_user(p, "nobody:0", &[]).unwrap(),
            (65534, 0, vec![0])
        );
        assert_eq!(resolve_user(p, "4242", &[]).unwrap(), (4242, 0, vec![0]));
        assert_eq!(
            resolve_user(p, "4242:4343", &[]).unwrap(),
            (4242, 4343, vec![4343])
        );
        assert_eq!(
            resolve_user(p, "nobody", &["wheel".into(), "777".into(), "10".into()]).unwrap(),
            (65534, 65534, vec![65534, 10, 777])
        );
    }

    #[test]
    fn docker_errors() {
        let d = rootfs();
        let p = d.path();
        let e = resolve_user(p, "x", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user x: no matching entries in passwd file"
        );
        assert!(e.is_user_error());
        let e = resolve_user(p, "alice:nope", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nope: no matching entries in group file"
        );
        let e = resolve_user(p, "alice", &["staff".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group staff: no matching entries in group file"
        );
        let e = resolve_user(p, "99999999999", &[]).unwrap_err();
        assert_eq!(e.to_string(), "uids and gids must be in range 0-2147483647");
    }

    #[test]
    fn no_passwd_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_user(d.path(), "123:456", &[]).unwrap(),
            (123, 456, vec![456])
        );
        assert_eq!(resolve_user(d.path(), "", &[]).unwrap(), (0, 0, vec![0]));
        assert!(resolve_user(d.path(), "alice", &[]).is_err());
    }

    #[test]
    fn symlinks_stay_inside_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(
            outside.path().join("passwd"),
            "evil:x:4444:4444::/:/bin/sh\n",
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        // absolute link to the host file: resolves to <rootfs>/<that path>, which does not exist
        let target = outside.path().join("passwd");
        std::os::unix::fs::symlink(&target, d.path().join("etc/passwd")).unwrap();
        let e = resolve_user(d.path(), "evil", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user evil: no matching entries in passwd file"
        );
        // a relative link climbing out is clamped at the root as well
        fs::remove_file(d.path().join("etc/passwd")).unwrap();
        let rel = format!("../../../../../../../..{}", target.display());
        std::os::unix::fs::symlink(&rel, d.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(d.path(), "evil", &[]).is_err());
        // a link inside the rootfs is followed, as Docker does
        fs::remove_file(d.path().join("etc/passwd")).unwrap();
        fs::create_dir_all(d.path().join("data")).unwrap();
        fs::write(d.path().join("data/pw"), "bob:x:5:6::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/data/pw", d.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(d.path(), "bob", &[]).unwrap(), (5, 6, vec![6]));
        // and so is a copy of the host path placed inside the rootfs (the link target, rooted)
        fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("etc/passwd")).unwrap();
        let inner = d.path().join(target.strip_prefix("/").unwrap());
        fs::create_dir_all(inner.parent().unwrap()).unwrap();
        fs::write(&inner, "evil:x:7:8::/:/bin/sh\n").unwrap();
        assert_eq!(
            resolve_user(d.path(), "evil", &[]).unwrap(),
            (7, 8, vec![8])
        );
    }

    #[test]
    fn open_in_root_refuses_odd_files() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc/passwd")).unwrap();
        assert!(open_in_root(d.path(), "/etc/passwd").is_err());
        assert!(open_in_root(d.path(), "/").is_err());
        std::os::unix::fs::symlink("loop", d.path().join("loop")).unwrap();
        assert!(open_in_root(d.path(), "/loop").is_err());
        nix::unistd::mkfifo(&d.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(open_in_root(d.path(), "/fifo").is_err());
    }
}
