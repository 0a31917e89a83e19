//! COPY and ADD: sources found in the build context (or another stage's or image's root),
//! hashed for the cache key, and copied into a step's workspace through `fstree`, so neither
//! a symlink in the context nor one in the image can reach outside its root.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use sha2::{Digest, Sha256};

use crate::fstree::resolve::{self, kind};
use crate::fstree::tar_in::{self, InOptions};
use crate::fstree::tar_out::{OutOptions, TreeTar, sorted_names};
use crate::fstree::{TreeError, clean_abs};

use super::BuildError;

/// One source after wildcard expansion: its path in the source root.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    pub is_dir: bool,
    /// Fetched by `ADD <url>`: found in the downloads folder, never extracted.
    pub downloaded: bool,
}

fn has_glob(p: &str) -> bool {
    let mut esc = false;
    for c in p.chars() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// One element of a pattern segment.
enum Tok {
    Star,
    Any,
    Lit(char),
    /// `[...]`: ranges, negated.
    Class(Vec<(char, char)>, bool),
}

fn tokens(pat: &[char]) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            '*' => {
                // Runs of stars are one star (and keep matching linear).
                if !matches!(out.last(), Some(Tok::Star)) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::Any),
            '\\' if i + 1 < pat.len() => {
                i += 1;
                out.push(Tok::Lit(pat[i]));
            }
            '[' => {
                let (ranges, negate, end) = parse_class(pat, i + 1)?;
                out.push(Tok::Class(ranges, negate));
                i = end;
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    Some(out)
}

/// The character ranges of a `[...]` class.
pub(super) type Ranges = Vec<(char, char)>;

/// A `[...]` class starting after its `[` at `start`: its ranges, whether it is negated
/// (`^` or `!`), and the index of its `]`; `None` when it is not closed.
pub(super) fn parse_class(pat: &[char], start: usize) -> Option<(Ranges, bool, usize)> {
    let mut i = start;
    let negate = matches!(pat.get(i), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < pat.len() && (first || pat[i] != ']') {
        first = false;
        let mut lo = pat[i];
        if lo == '\\' && i + 1 < pat.len() {
            i += 1;
            lo = pat[i];
        }
        let mut hi = lo;
        if pat.get(i + 1) == Some(&'-') && pat.get(i + 2).is_some_and(|c| *c != ']') {
            hi = pat[i + 2];
            i += 2;
        }
        ranges.push((lo, hi));
        i += 1;
    }
    (i < pat.len()).then_some((ranges, negate, i))
}

fn one(t: &Tok, c: char) -> bool {
    match t {
        Tok::Any => true,
        Tok::Lit(l) => *l == c,
        Tok::Class(ranges, negate) => ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate,
        Tok::Star => false,
    }
}

/// Go's `path.Match` for one segment, in linear passes (backtracking only to the last star).
fn match_segment(pat: &[char], name: &[char]) -> bool {
    let Some(toks) = tokens(pat) else {
        return false;
    };
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if t < toks.len() && matches!(toks[t], Tok::Star) {
            star = Some((t, n));
            t += 1;
        } else if t < toks.len() && one(&toks[t], name[n]) {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    toks[t..].iter().all(|x| matches!(x, Tok::Star))
}

/// Go's `filepath.Match(pattern, rel)`: `*` does not cross `/`.
pub fn path_match(pattern: &str, rel: &str) -> bool {
    let ps: Vec<&str> = pattern.split('/').collect();
    let rs: Vec<&str> = rel.split('/').collect();
    ps.len() == rs.len()
        && ps.iter().zip(&rs).all(|(p, r)| {
            let p: Vec<char> = p.chars().collect();
            let r: Vec<char> = r.chars().collect();
            match_segment(&p, &r)
        })
}

/// Every path (relative, no leading slash) below the root, in walk order.
fn walk(root: BorrowedFd, dir: &str, out: &mut Vec<(String, bool)>) -> Result<(), TreeError> {
    if dir.matches('/').count() >= crate::fstree::tar_out::MAX_DEPTH {
        return Err(TreeError::Archive(format!(
            "{dir}: too many nested directories"
        )));
    }
    let fd = resolve::open_dir(root, &format!("/{dir}"))?;
    for name in sorted_names(fd.as_fd(), dir)? {
        let rel = if dir.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{dir}/{}", name.to_string_lossy())
        };
        let st = fstatat(fd.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| TreeError::io(&rel, e))?;
        let is_dir = kind(&st) == libc::S_IFDIR;
        out.push((rel.clone(), is_dir));
        if is_dir {
            walk(root, &rel, out)?;
        }
    }
    Ok(())
}

/// Expand one source (as written, variables already expanded) into the entries it names.
pub fn expand_source(
    root: BorrowedFd,
    raw: &str,
    from_context: bool,
    cmd: &str,
) -> Result<Vec<Source>, BuildError> {
    let mut p = raw.strip_prefix('/').unwrap_or(raw);
    p = p.strip_prefix("./").unwrap_or(p);
    let not_found = |rel: &str| {
        if from_context {
            BuildError::step(format!(
                "{cmd} failed: file not found in build context or excluded by .dockerignore: stat {rel}: file does not exist"
            ))
        } else {
            BuildError::step(format!("{cmd} failed: stat {rel}: file does not exist"))
        }
    };
    if has_glob(p) {
        let mut all = Vec::new();
        walk(root, "", &mut all).map_err(BuildError::internal)?;
        let pattern = p.trim_end_matches('/');
        return Ok(all
            .into_iter()
            .filter(|(rel, _)| path_match(pattern, rel))
            .map(|(rel, is_dir)| Source {
                downloaded: false,
                path: format!("/{rel}"),
                is_dir: is_dir
                    || resolve::stat(root, &format!("/{rel}"))
                        .is_ok_and(|s| kind(&s) == libc::S_IFDIR),
            })
            .collect());
    }
    let path = clean_abs(p);
    // The source itself is followed if it is a symlink (inside the root).
    match resolve::stat(root, &path) {
        Ok(st) => Ok(vec![Source {
            downloaded: false,
            path,
            is_dir: kind(&st) == libc::S_IFDIR,
        }]),
        Err(TreeError::NotFound(_)) | Err(TreeError::NotDir(_)) => Err(not_found(p)),
        Err(e) => Err(BuildError::internal(e)),
    }
}

/// Feed one field to the hash with its length, so that no two different trees (a name
/// that holds another field's text, say) can give the same stream.
fn field(h: &mut Sha256, tag: &str, value: &[u8]) {
    h.update(tag.as_bytes());
    h.update((value.len() as u64).to_le_bytes());
    h.update(value);
}

/// A digest of a source's names, modes, owners, link targets and contents (not times), for
/// the cache key: `file:<hex>` or `dir:<hex>`.
pub fn hash_source(root: BorrowedFd, src: &Source) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    let hash_entry = |path: &str, h: &mut Sha256| -> Result<(), TreeError> {
        let st = resolve::stat(root, path)?;
        field(h, "name", path.as_bytes());
        let meta = format!("{} {} {} {}", st.st_mode, st.st_uid, st.st_gid, st.st_size);
        field(h, "meta", meta.as_bytes());
        if let Some((fd, st)) = resolve::open_file(root, path)? {
            let mut f = std::fs::File::from(fd).take(st.st_size as u64);
            let mut buf = vec![0u8; 64 * 1024];
            h.update(b"data");
            loop {
                let n = f.read(&mut buf).map_err(|e| TreeError::io(path, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        Ok(())
    };
    if !src.is_dir {
        hash_entry(&src.path, &mut h).map_err(BuildError::internal)?;
        return Ok(format!("file:{}", hex::encode(h.finalize())));
    }
    let mut all = Vec::new();
    let dir = src.path.trim_start_matches('/').to_string();
    walk(root, &dir, &mut all).map_err(BuildError::internal)?;
    for (rel, _) in all {
        let p = format!("/{rel}");
        let st = resolve::lstat(root, &p).map_err(BuildError::internal)?;
        if kind(&st) == libc::S_IFLNK {
            let t = resolve::readlink(root, &p).unwrap_or_default();
            field(&mut h, "name", p.as_bytes());
            field(&mut h, "link", t.as_bytes());
        } else {
            hash_entry(&p, &mut h).map_err(BuildError::internal)?;
        }
    }
    Ok(format!("dir:{}", hex::encode(h.finalize())))
}

/// Is the file a tar archive ADD extracts (plain or gzip, with a readable first header)?
pub fn is_archive(root: BorrowedFd, path: &str) -> bool {
    let Ok(Some((fd, _))) = resolve::open_file(root, path) else {
        return false;
    };
    let Ok(reader) = crate::image::layer::decompressed(std::fs::File::from(fd)) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut r = reader.take(512);
    let mut got = 0;
    while got < 512 {
        match r.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    if got < 512 {
        return false;
    }
    let h = tar::Header::from_byte_slice(&head);
    h.cksum().is_ok_and(|c| {
        let sum: u32 = head
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as u32
                }
            })
            .sum();
        sum == c
    })
}

/// How to copy.
pub struct CopyOptions {
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    /// ADD: extract local archives.
    pub extract_archives: bool,
}

/// Copy `src` (in `from`) to `dest` (absolute, in the workspace root `to`): a directory's
/// contents into `dest`; a file to `dest` itself, or into it when `dest_is_dir`.
pub fn copy_source(
    from: BorrowedFd,
    src: &Source,
    to: BorrowedFd,
    dest: &str,
    dest_is_dir: bool,
    opts: &CopyOptions,
) -> Result<(), BuildError> {
    let in_opts = InOptions {
        no_overwrite_dir_non_dir: false,
        chown: opts.chown,
        chmod: opts.chmod,
    };
    if opts.extract_archives && !src.downloaded && !src.is_dir && is_archive(from, &src.path) {
        resolve::mkdir_all(to, dest, 0o755, None).map_err(BuildError::internal)?;
        let Some((fd, _)) = resolve::open_file(from, &src.path).map_err(BuildError::internal)?
        else {
            return Err(BuildError::step(format!(
                "{}: not a regular file",
                src.path
            )));
        };
        let reader = crate::image::layer::decompressed(std::fs::File::from(fd))
            .map_err(BuildError::internal)?;
        // Extracted archives keep their own owners (moby does not apply --chown to them).
        let keep = InOptions {
            chown: None,
            ..in_opts
        };
        tar_in::extract(to, dest, reader, &keep).map_err(BuildError::internal)?;
        return Ok(());
    }
    let (target_dir, tar_name): (String, Option<String>) = if src.is_dir {
        resolve::mkdir_all(to, dest, 0o755, opts.chown).map_err(BuildError::internal)?;
        (dest.to_string(), None)
    } else if dest_is_dir {
        let base = src.path.rsplit('/').next().unwrap_or("file").to_string();
        (dest.to_string(), Some(base))
    } else {
        let clean = clean_abs(dest);
        let (parent, name) = crate::fstree::split_last(&clean);
        (parent.to_string(), Some(name.unwrap_or("file").to_string()))
    };
    resolve::mkdir_all(to, &target_dir, 0o755, opts.chown).map_err(BuildError::internal)?;
    let (reader, writer) = std::io::pipe().map_err(BuildError::internal)?;
    let src_dir = if src.is_dir {
        Some(resolve::open_dir(from, &src.path).map_err(BuildError::internal)?)
    } else {
        None
    };
    // A regular file is read through the descriptor opened here; anything else (a FIFO, a
    // device) is archived as the node it is, never opened.
    let src_file = if src.is_dir {
        None
    } else {
        resolve::open_file(from, &src.path).map_err(BuildError::internal)?
    };
    let src_node = if src.is_dir || src_file.is_some() {
        None
    } else {
        resolve::parent_of(from, &src.path).map_err(BuildError::internal)?
    };
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<(), TreeError> {
            let mut t = TreeTar::new(writer);
            let opts = OutOptions::default();
            match (&tar_name, src_dir, src_file, src_node) {
                (None, Some(dir), _, _) => t.contents(dir.as_fd(), "", &opts)?,
                (Some(name), _, None, Some((dir, node))) => {
                    t.entry(dir.as_fd(), std::ffi::OsStr::new(&node), name, &opts)?
                }
                (Some(name), _, Some((file, st)), _) => {
                    // The source file itself (symlinks to it were followed by the lookup).
                    let mut header = tar::Header::new_gnu();
                    header.set_mode(st.st_mode & 0o7777);
                    header.set_uid(st.st_uid as u64);
                    header.set_gid(st.st_gid as u64);
                    header.set_mtime(st.st_mtime.max(0) as u64);
                    header.set_size(st.st_size as u64);
                    header.set_entry_type(tar::EntryType::Regular);
                    t.append_file(
                        &mut header,
                        name,
                        std::fs::File::from(file).take(st.st_size as u64),
                    )?;
                }
                _ => return Err(TreeError::NotFound(String::new())),
            }
            t.finish().map(|mut w| {
                let _ = w.flush();
            })
        });
        let extracted = tar_in::extract(to, &target_dir, reader, &in_opts);
        let produced = producer
            .join()
            .map_err(|_| BuildError::internal(TreeError::Archive("copy thread panicked".into())))?;
        produced.map_err(BuildError::internal)?;
        extracted.map_err(BuildError::internal)?;
        Ok(())
    })
}

/// Write a here-document as the file `name` in `dir` of the workspace.
pub fn write_heredoc(
    to: BorrowedFd,
    dest: &str,
    dest_is_dir: bool,
    name: &str,
    content: &str,
    opts: &CopyOptions,
) -> Result<(), BuildError> {
    let mut data = Vec::new();
    {
        let mut t = TreeTar::new(&mut data);
        let mut header = tar::Header::new_gnu();
        header.set_mode(opts.chmod.unwrap_or(0o644));
        header.set_size(content.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        let (dir, file) = if dest_is_dir {
            (dest.to_string(), name.to_string())
        } else {
            let clean = clean_abs(dest);
            let (p, n) = crate::fstree::split_last(&clean);
            (p.to_string(), n.unwrap_or(name).to_string())
        };
        t.append_file(&mut header, &file, content.as_bytes())
            .map_err(BuildError::internal)?;
        t.finish().map_err(BuildError::internal)?;
        resolve::mkdir_all(to, &dir, 0o755, opts.chown).map_err(BuildError::internal)?;
        let in_opts = InOptions {
            no_overwrite_dir_non_dir: false,
            chown: Some(opts.chown.unwrap_or((0, 0))),
            chmod: opts.chmod,
        };
        tar_in::extract(to, &dir, &data[..], &in_opts).map_err(BuildError::internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match() {
        assert!(path_match("*.txt", "a.txt"));
        assert!(!path_match("*.txt", "d/a.txt"));
        assert!(path_match("d/*.txt", "d/a.txt"));
        assert!(path_match("f?le[0-9]", "file7"));
        assert!(!path_match("f[!i]le", "file"));
        assert!(path_match("a\\*b", "a*b"));
        assert!(path_match("a*b*c", "axxbyyc"));
        assert!(!path_match("a*b*c", "axxbyy"));
        // Linear, not exponential: this would never end with naive backtracking.
        let stars = format!("{}x", "*".repeat(60));
        assert!(!path_match(&stars, &"a".repeat(60)));
        assert!(path_match("[]a]", "]"));
    }
}
