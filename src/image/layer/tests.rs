//! End-to-end tests: build tars, extract them, check the tree, and reassemble byte-identical tars.
//! They need root (chown, mknod, trusted.* xattrs).

use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

use super::*;

const MTIME: u64 = 1_600_000_000;

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A temp dir holding `diff/`, an empty `sentinel/` next to it, and the split file.
struct Case {
    tmp: tempfile::TempDir,
    diff: PathBuf,
    split: PathBuf,
}

impl Case {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let diff = tmp.path().join("diff");
        std::fs::create_dir(&diff).unwrap();
        std::fs::create_dir(tmp.path().join("sentinel")).unwrap();
        let split = tmp.path().join("layer.split");
        Case { tmp, diff, split }
    }

    fn extract(&self, tar: &[u8]) -> Result<ExtractedLayer, LayerError> {
        extract(tar, &self.diff, &self.split)
    }

    fn assemble(&self) -> Result<Vec<u8>, LayerError> {
        let mut out = Vec::new();
        let n = assemble(&self.diff, &self.split, &mut out)?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.diff.join(rel)
    }

    /// Nothing but diff/, sentinel/ (empty) and the split file exist in the temp dir.
    fn assert_confined(&self) {
        assert_eq!(
            std::fs::read_dir(self.tmp.path().join("sentinel"))
                .unwrap()
                .count(),
            0
        );
        let mut names: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.retain(|n| n != "layer.split");
        assert_eq!(names, ["diff", "sentinel"]);
    }
}

/// Extracts, reassembles, and checks `sha256(assemble) == diff_id == sha256(input)`.
fn roundtrip(tar: &[u8]) -> (Case, ExtractedLayer) {
    let c = Case::new();
    let layer = c.extract(tar).expect("extract");
    assert_eq!(layer.diff_id, sha(tar));
    let out = c.assemble().expect("assemble");
    assert_eq!(sha(&out), layer.diff_id);
    assert!(out == tar);
    c.assert_confined();
    (c, layer)
}

/// Tar builder with terse helpers; GNU headers (long names become `L`/`K` entries).
struct T(Builder<Vec<u8>>);

fn header(kind: EntryType, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h
}

impl T {
    fn new() -> Self {
        T(Builder::new(Vec::new()))
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_with(path, data, |_| {})
    }
    fn file_with(&mut self, path: &str, data: &[u8], f: impl FnOnce(&mut Header)) -> &mut Self {
        let mut h = header(EntryType::Regular, 0o644);
        h.set_size(data.len() as u64);
        f(&mut h);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }
    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = header(EntryType::Directory, mode);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = header(kind, 0o777);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }
    fn node(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = header(kind, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    fn pax(&mut self, recs: &[(&str, &[u8])]) -> &mut Self {
        self.0.append_pax_extensions(recs.iter().copied()).unwrap();
        self
    }
    /// An entry with raw name/link bytes, bypassing the builder's path checks.
    fn raw(&mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is a live, writable buffer of the given size.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

fn lmeta(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap()
}

#[test]
fn plain_tree() {
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let tar = T::new()
        .dir("etc/", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .dir("bin", 0o711)
        .file_with("bin/sh", &big, |h| h.set_mode(0o755))
        .file_with("bin/su", b"su", |h| h.set_mode(0o4755))
        .file_with("home/u/f", b"owned", |h| {
            h.set_uid(1234);
            h.set_gid(5678);
            h.set_mode(0o2640);
            h.set_mtime(1_234_567_890);
        })
        .file("empty", b"")
        .link(EntryType::Symlink, "bin/ls", "sh")
        .link(EntryType::Symlink, "abs", "/etc/hosts")
        .link(EntryType::Link, "bin/busybox", "bin/sh")
        .finish();
    let (c, layer) = roundtrip(&tar);
    assert_eq!(layer.size, 20 + 10_000 + 2 + 5);
    assert_eq!(std::fs::read(c.p("bin/sh")).unwrap(), big);
    assert_eq!(
        std::fs::read(c.p("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    assert_eq!(std::fs::read_link(c.p("bin/ls")).unwrap(), Path::new("sh"));
    assert_eq!(
        std::fs::read_link(c.p("abs")).unwrap(),
        Path::new("/etc/hosts")
    );
    assert_eq!(
        lmeta(&c.p("bin/busybox")).ino(),
        lmeta(&c.p("bin/sh")).ino()
    );
    assert_eq!(lmeta(&c.p("bin/su")).mode() & 0o7777, 0o4755);
    let f = lmeta(&c.p("home/u/f"));
    assert_eq!(
        (f.uid(), f.gid(), f.mode() & 0o7777, f.mtime()),
        (1234, 5678, 0o2640, 1_234_567_890)
    );
    // Implied directories are 0755; explicit ones keep their mode and (deferred) mtime.
    assert_eq!(lmeta(&c.p("home")).mode() & 0o7777, 0o755);
    let bin = lmeta(&c.p("bin"));
    assert_eq!((bin.mode() & 0o7777, bin.mtime()), (0o711, MTIME as i64));
    assert_eq!(lmeta(&c.p("etc")).mtime(), MTIME as i64);
    assert_eq!(lmeta(&c.p("bin/ls")).mtime(), MTIME as i64);
}

#[test]
fn long_names_gnu_and_pax() {
    let long_dir = "d".repeat(120);
    let gnu_path = format!("{long_dir}/gnu-{}", "g".repeat(90));
    let gnu_target = format!("/{}", "t".repeat(150));
    let pax_path = format!("{long_dir}/pax-{}", "p".repeat(120));
    let pax_target = format!("./sub/../{}", "q".repeat(140));
    let mut t = T::new();
    t.file(&gnu_path, b"gnu long name")
        .link(EntryType::Symlink, "gnulink", &gnu_target);
    t.pax(&[("path", pax_path.as_bytes())])
        .file("short-placeholder", b"pax long name");
    t.pax(&[("path", b"paxlink"), ("linkpath", pax_target.as_bytes())])
        .link(EntryType::Symlink, "x", "y");
    let tar = t.finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(std::fs::read(c.p(&gnu_path)).unwrap(), b"gnu long name");
    assert_eq!(std::fs::read(c.p(&pax_path)).unwrap(), b"pax long name");
    assert!(!c.p("short-placeholder").exists());
    assert_eq!(
        std::fs::read_link(c.p("gnulink")).unwrap(),
        Path::new(&gnu_target)
    );
    assert_eq!(
        std::fs::read_link(c.p("paxlink")).unwrap(),
        Path::new(&pax_target)
    );
}

#[test]
fn pax_xattrs_ids_and_times() {
    let mut t = T::new();
    t.pax(&[
        ("SCHILY.xattr.user.foo", b"bar"),
        ("SCHILY.xattr.trusted.t", b"\x00\x01bin"),
        ("mtime", b"1700000000.123456789"),
        ("atime", b"1700000100.5"),
        ("uid", b"3000000"),
        ("gid", b"3000001"),
    ])
    .file("f", b"data");
    t.pax(&[
        ("SCHILY.xattr.user.d", b"dirattr"),
        ("mtime", b"1700000000.25"),
    ])
    .dir("d", 0o750);
    t.file("d/child", b"c");
    t.pax(&[("SCHILY.xattr.trusted.s", b"link")])
        .link(EntryType::Symlink, "s", "f");
    let tar = t.finish();
    let c = Case::new();
    c.extract(&tar).unwrap();
    // Checked before assembling, which reads the file and may bump its atime.
    let f = lmeta(&c.p("f"));
    assert_eq!((f.atime(), f.atime_nsec()), (1_700_000_100, 500_000_000));
    assert!(c.assemble().unwrap() == tar);
    assert_eq!(lgetxattr(&c.p("f"), "user.foo").unwrap(), b"bar");
    assert_eq!(lgetxattr(&c.p("f"), "trusted.t").unwrap(), b"\x00\x01bin");
    assert_eq!(lgetxattr(&c.p("d"), "user.d").unwrap(), b"dirattr");
    assert_eq!(lgetxattr(&c.p("s"), "trusted.s").unwrap(), b"link");
    let f = lmeta(&c.p("f"));
    assert_eq!((f.uid(), f.gid()), (3_000_000, 3_000_001));
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_700_000_000, 123_456_789));
    let d = lmeta(&c.p("d"));
    assert_eq!(
        (d.mtime(), d.mtime_nsec(), d.mode() & 0o7777),
        (1_700_000_000, 250_000_000, 0o750)
    );
}

#[test]
fn devices_and_fifos() {
    let tar = T::new()
        .node(EntryType::Fifo, "dev/fifo", 0, 0)
        .node(EntryType::Char, "dev/null", 1, 3)
        .node(EntryType::Block, "dev/loop0", 7, 0)
        .finish();
    let (c, _) = roundtrip(&tar);
    let fifo = lmeta(&c.p("dev/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o666);
    let null = lmeta(&c.p("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    let lp = lmeta(&c.p("dev/loop0"));
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), nix::sys::stat::makedev(7, 0));
}

#[test]
fn whiteouts_become_overlay_form() {
    let tar = T::new()
        .dir("a", 0o755)
        .file("a/x", b"kept")
        .file("a/.wh..wh..opq", b"")
        .file(".wh.foo", b"")
        .file("b/.wh.gone", b"")
        .file("c", b"replaced within the layer")
        .file(".wh.c", b"")
        .dir("e", 0o755)
        .file("e/inner", b"inner payload")
        .file(".wh.e", b"")
        .file(".wh..wh.plnk/123", b"aufs")
        .finish();
    let (c, layer) = roundtrip(&tar);
    for w in ["foo", "b/gone", "c", "e"] {
        let m = lmeta(&c.p(w));
        assert!(m.file_type().is_char_device(), "{w}");
        assert_eq!(m.rdev(), 0, "{w}");
    }
    assert_eq!(
        lgetxattr(&c.p("a"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    assert_eq!(std::fs::read(c.p("a/x")).unwrap(), b"kept");
    assert!(!c.p(".wh..wh.plnk").exists());
    let names: Vec<_> = std::fs::read_dir(&c.diff)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.as_bytes().starts_with(b".wh.")),
        "{names:?}"
    );
    // Whiteouts carry no payload; replaced files still count as written.
    assert_eq!(layer.size, 4 + 25 + 13);
}

#[test]
fn duplicate_entries() {
    let tar = T::new()
        .file("f", b"first version")
        .link(EntryType::Link, "hl", "f")
        .file("f", b"second version, longer")
        .file("g", b"file that becomes a dir")
        .dir("g", 0o700)
        .file("g/h", b"h")
        .dir("d", 0o755)
        .file("d/1", b"one")
        .file("d/sub/2", b"two")
        .file("d", b"dir replaced by a file")
        .dir("m", 0o700)
        .file("m/k", b"k")
        .dir("m", 0o751)
        .link(EntryType::Symlink, "s", "f")
        .file("s", b"symlink replaced")
        .finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(std::fs::read(c.p("f")).unwrap(), b"second version, longer");
    assert_eq!(std::fs::read(c.p("hl")).unwrap(), b"first version");
    assert_eq!(std::fs::read(c.p("g/h")).unwrap(), b"h");
    assert_eq!(lmeta(&c.p("g")).mode() & 0o7777, 0o700);
    assert_eq!(std::fs::read(c.p("d")).unwrap(), b"dir replaced by a file");
    assert_eq!(lmeta(&c.p("m")).mode() & 0o7777, 0o751);
    assert_eq!(std::fs::read(c.p("m/k")).unwrap(), b"k");
    assert!(lmeta(&c.p("s")).is_file());
    let split = std::fs::read(&c.split).unwrap();
    assert!(split.starts_with(b"BERTHSP1"));
}

#[test]
fn trailing_blocks_and_missing_end_marker() {
    let mut tar = T::new().file("a", b"abc").finish();
    tar.extend_from_slice(&[0u8; 10 * 1024]);
    roundtrip(&tar);
    // Junk after the end-of-archive marker is part of the digest and must survive too.
    tar.extend_from_slice(b"trailing junk");
    roundtrip(&tar);
    // No end marker at all (stream ends right after the last entry's padding).
    let mut t = T::new();
    t.file("a", b"abc");
    let bare = t.0.get_ref().clone();
    roundtrip(&bare);
    let (_, empty) = roundtrip(b"");
    assert_eq!(empty.size, 0);
}

#[test]
fn non_utf8_names() {
    let mut t = T::new();
    let mut h = header(EntryType::Regular, 0o644);
    h.set_size(3);
    t.0.append_data(&mut h, OsStr::from_bytes(b"caf\xe9"), &b"xyz"[..])
        .unwrap();
    let tar = t.finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(
        std::fs::read(c.diff.join(OsStr::from_bytes(b"caf\xe9"))).unwrap(),
        b"xyz"
    );
}

#[test]
fn skips_unknown_types_and_root() {
    let tar = T::new()
        .raw(b"weird", EntryType::new(b'Z'), b"", b"unknown payload")
        .raw(
            b"pax_global_header",
            EntryType::XGlobalHeader,
            b"",
            b"20 comment=hello\n",
        )
        .raw(b"./", EntryType::Directory, b"", b"")
        .raw(b"/", EntryType::Regular, b"", b"root as a file")
        .file("real", b"r")
        .finish();
    let (c, layer) = roundtrip(&tar);
    assert!(!c.p("weird").exists());
    assert!(!c.p("pax_global_header").exists());
    assert_eq!(layer.size, 1);
}

#[test]
fn rejects_sparse_and_truncated() {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(0);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().set_real_size(0);
    let mut t = T::new();
    t.0.append_data(&mut h, "sparse", &[][..]).unwrap();
    let c = Case::new();
    assert!(matches!(
        c.extract(&t.finish()),
        Err(LayerError::Invalid(_))
    ));

    let tar = T::new().file("a", &[7u8; 2000]).finish();
    let c = Case::new();
    assert!(matches!(
        c.extract(&tar[..1200]),
        Err(LayerError::Invalid(_))
    ));
    let mut bad = tar.clone();
    bad[0] ^= 1; // checksum mismatch
    assert!(matches!(
        Case::new().extract(&bad),
        Err(LayerError::Invalid(_))
    ));
}

#[test]
fn assemble_detects_changed_diff() {
    let tar = T::new().file("a", b"payload").file("b", b"other").finish();
    let c = Case::new();
    c.extract(&tar).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(c.p("a"))
        .unwrap()
        .write_all(b"!")
        .unwrap();
    assert!(matches!(c.assemble(), Err(LayerError::Corrupt(_))));
    std::fs::remove_file(c.p("a")).unwrap();
    std::os::unix::fs::symlink("b", c.p("a")).unwrap();
    assert!(matches!(c.assemble(), Err(LayerError::Corrupt(_))));
    std::fs::write(&c.split, b"garbage").unwrap();
    assert!(matches!(c.assemble(), Err(LayerError::Corrupt(_))));
}

#[test]
fn gnu_tar_archives() {
    if std::process::Command::new("tar")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no tar binary; skipped");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::create_dir_all(s.join("usr/bin")).unwrap();
    std::fs::write(s.join("usr/bin/prog"), vec![42u8; 70_000]).unwrap();
    std::fs::write(s.join("empty"), b"").unwrap();
    std::fs::hard_link(s.join("usr/bin/prog"), s.join("usr/bin/prog2")).unwrap();
    std::os::unix::fs::symlink("usr/bin/prog", s.join("link")).unwrap();
    let long = "n".repeat(140);
    std::fs::write(s.join(&long), b"long name").unwrap();
    nix::unistd::mkfifo(
        &s.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    for format in ["gnu", "pax", "ustar"] {
        let mut args = vec![
            format!("--format={format}"),
            "-C".into(),
            s.display().to_string(),
            "-cf".into(),
            "-".into(),
        ];
        if format == "ustar" {
            // ustar cannot store the 140-char name.
            args.extend(["--exclude".into(), long.clone()]);
        }
        args.push(".".into());
        let out = std::process::Command::new("tar")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (c, layer) = roundtrip(&out.stdout);
        assert_eq!(
            std::fs::read(c.p("usr/bin/prog")).unwrap(),
            vec![42u8; 70_000],
            "{format}"
        );
        assert_eq!(
            lmeta(&c.p("usr/bin/prog")).ino(),
            lmeta(&c.p("usr/bin/prog2")).ino()
        );
        assert!(lmeta(&c.p("fifo")).file_type().is_fifo());
        let expect = 70_000 + if format == "ustar" { 0 } else { 9 };
        assert_eq!(layer.size, expect, "{format}");
    }
}

#[test]
fn gzip_and_compression_detection() {
    let tar = T::new().file("a", &[1u8; 5000]).file("b", b"bee").finish();
    // Two gzip members, as pigz may produce.
    let mut gz = Vec::new();
    for half in [&tar[..3000], &tar[3000..]] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(half).unwrap();
        gz.extend(e.finish().unwrap());
    }
    let c = Case::new();
    let layer = extract(decompressed(&gz[..]).unwrap(), &c.diff, &c.split).unwrap();
    assert_eq!(layer.diff_id, sha(&tar));
    assert!(c.assemble().unwrap() == tar);

    let mut plain = Vec::new();
    decompressed(&tar[..])
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == tar);
    let mut empty = Vec::new();
    decompressed(&b""[..])
        .unwrap()
        .read_to_end(&mut empty)
        .unwrap();
    assert!(empty.is_empty());
    for magic in [
        &[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..],
        b"BZh91AY",
        &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1],
    ] {
        assert!(matches!(decompressed(magic), Err(LayerError::Invalid(_))));
    }
}

/// A name unique to this test run, so a real escape cannot be confused with leftovers.
fn unique(tag: &str) -> String {
    format!("berth-layer-test-{tag}-{}", std::process::id())
}

#[test]
fn rejects_dotdot_breakouts() {
    for name in [&b"../escape"[..], b"a/../../escape", b"./../escape"] {
        let c = Case::new();
        let tar = T::new().raw(name, EntryType::Regular, b"", b"x").finish();
        assert!(
            matches!(c.extract(&tar), Err(LayerError::Breakout { .. })),
            "{name:?}"
        );
        c.assert_confined();
    }
    // Hardlink targets are checked the same way.
    let c = Case::new();
    let tar = T::new()
        .raw(b"h", EntryType::Link, b"../../etc/passwd", b"")
        .finish();
    assert!(matches!(c.extract(&tar), Err(LayerError::Breakout { .. })));
    c.assert_confined();
}

#[test]
fn absolute_paths_are_rooted() {
    let tar = T::new()
        .raw(b"/abs/file", EntryType::Regular, b"", b"abs")
        .raw(b"/../rooted", EntryType::Regular, b"", b"rooted")
        .finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(std::fs::read(c.p("abs/file")).unwrap(), b"abs");
    assert_eq!(std::fs::read(c.p("rooted")).unwrap(), b"rooted");
}

#[test]
fn symlinks_cannot_redirect_writes_outside() {
    let name = unique("pwned");
    // evil -> / : evil/tmp/<name> must land in diff/tmp/<name>, not /tmp/<name>.
    let tar = T::new()
        .raw(b"evil", EntryType::Symlink, b"/", b"")
        .raw(
            format!("evil/tmp/{name}").as_bytes(),
            EntryType::Regular,
            b"",
            b"pwned",
        )
        .finish();
    let (c, _) = roundtrip(&tar);
    assert!(!Path::new("/tmp").join(&name).exists());
    assert_eq!(
        std::fs::read(c.p(&format!("tmp/{name}"))).unwrap(),
        b"pwned"
    );

    // evil -> ../../.. then evil/x: `..` stops at the layer root, so x lands in the root.
    let name = unique("up");
    let tar = T::new()
        .raw(b"evil", EntryType::Symlink, b"../../..", b"")
        .raw(
            format!("evil/{name}").as_bytes(),
            EntryType::Regular,
            b"",
            b"up",
        )
        .finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(std::fs::read(c.p(&name)).unwrap(), b"up");
    for dir in [c.tmp.path(), c.tmp.path().parent().unwrap(), Path::new("/")] {
        assert!(!dir.join(&name).exists(), "{}", dir.display());
    }

    // gone -> ../nowhere/deeper then gone/x: nothing is created through a dangling link.
    let tar = T::new()
        .raw(b"gone", EntryType::Symlink, b"../nowhere/deeper", b"")
        .raw(b"gone/x", EntryType::Regular, b"", b"x")
        .finish();
    let c = Case::new();
    assert!(matches!(c.extract(&tar), Err(LayerError::Invalid(_))));
    assert!(!c.p("nowhere").exists());

    // hostetc -> /etc then hostetc/passwd: inside the root /etc does not exist, so the write
    // fails (as under Docker's chroot); the host file is untouched either way.
    let before = std::fs::read("/etc/passwd").unwrap();
    let tar = T::new()
        .raw(b"hostetc", EntryType::Symlink, b"/etc", b"")
        .raw(
            b"hostetc/passwd",
            EntryType::Regular,
            b"",
            b"root::0:0::/:/bin/sh\n",
        )
        .finish();
    let c = Case::new();
    assert!(matches!(c.extract(&tar), Err(LayerError::Invalid(_))));
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), before);
    c.assert_confined();
    // With etc/ in the layer the same link is followed inside the root.
    let tar = T::new()
        .raw(b"etc/", EntryType::Directory, b"", b"")
        .raw(b"hostetc", EntryType::Symlink, b"/etc", b"")
        .raw(
            b"hostetc/passwd",
            EntryType::Regular,
            b"",
            b"root::0:0::/:/bin/sh\n",
        )
        .finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), before);
    assert_eq!(
        std::fs::read(c.p("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
    // etc -> /etc is, inside the root, a link to itself: a loop, refused.
    let c = Case::new();
    let tar = T::new()
        .raw(b"etc", EntryType::Symlink, b"/etc", b"")
        .raw(b"etc/passwd", EntryType::Regular, b"", b"x")
        .finish();
    assert!(matches!(c.extract(&tar), Err(LayerError::Io(_))));
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), before);
    c.assert_confined();

    // A hardlink through a symlink to the host resolves inside the root, where nothing exists.
    let c = Case::new();
    let tar = T::new()
        .raw(b"hostetc", EntryType::Symlink, b"/etc", b"")
        .raw(b"h", EntryType::Link, b"hostetc/passwd", b"")
        .finish();
    assert!(matches!(c.extract(&tar), Err(LayerError::Invalid(_))));
    c.assert_confined();

    // A hardlink to a missing target is an error too.
    let c = Case::new();
    let tar = T::new()
        .raw(b"h", EntryType::Link, b"nothere", b"")
        .finish();
    assert!(matches!(c.extract(&tar), Err(LayerError::Invalid(_))));
}

#[test]
fn symlink_in_parent_then_real_files() {
    // A file written through a symlinked parent is referenced by its canonical path, so replacing
    // the real directory later must still reassemble correctly.
    let tar = T::new()
        .dir("real", 0o755)
        .link(EntryType::Symlink, "alias", "real")
        .file("alias/f", b"through the alias")
        .file("real", b"real dir replaced")
        .finish();
    let (c, _) = roundtrip(&tar);
    assert_eq!(std::fs::read(c.p("real")).unwrap(), b"real dir replaced");
}

#[test]
fn bad_parents_fail_cleanly() {
    let c = Case::new();
    let tar = T::new().file("f", b"x").file("f/child", b"y").finish();
    assert!(matches!(c.extract(&tar), Err(LayerError::Io(_))));
    let c = Case::new();
    let tar = T::new()
        .raw(b"a", EntryType::Symlink, b"b", b"")
        .raw(b"b", EntryType::Symlink, b"a", b"")
        .raw(b"a/x", EntryType::Regular, b"", b"loop")
        .finish();
    assert!(matches!(c.extract(&tar), Err(LayerError::Io(_))));
    c.assert_confined();
}

#[test]
fn big_layers_and_odd_read_sizes() {
    // Enough entries that raw metadata exceeds one in-memory chunk, and a large replaced file.
    let big = vec![9u8; 300_000];
    let mut t = T::new();
    for i in 0..3000 {
        t.file(&format!("many/{i:05}"), format!("{i}").as_bytes());
    }
    t.file("big", &big).file("big", b"small now");
    let tar = t.finish();
    let (c, layer) = roundtrip(&tar);
    assert_eq!(std::fs::read(c.p("many/02999")).unwrap(), b"2999");
    assert_eq!(
        layer.size,
        (0..3000)
            .map(|i: u32| i.to_string().len() as u64)
            .sum::<u64>()
            + 300_000
            + 9
    );

    // A stream that hands out a few bytes at a time must give the same result.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let c = Case::new();
    let layer = extract(Trickle(&tar), &c.diff, &c.split).unwrap();
    assert_eq!(layer.diff_id, sha(&tar));
    assert!(c.assemble().unwrap() == tar);
}

#[test]
fn archive_cannot_set_overlay_xattrs() {
    let mut t = T::new();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.redirect", b"/elsewhere"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
    ])
    .dir("d", 0o755);
    let (c, _) = roundtrip(&t.finish());
    assert!(lgetxattr(&c.p("d"), "trusted.overlay.redirect").is_none());
    assert!(lgetxattr(&c.p("d"), "trusted.overlay.opaque").is_none());
}

#[test]
fn refuses_huge_pax_header() {
    // A PAX header claiming 2 GiB: the tar crate alone would read it all into memory.
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    h.set_path("PaxHeaders/f").unwrap();
    h.set_mode(0o644);
    h.set_size(2 << 30);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.resize(tar.len() + (4 << 20), b'a');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 16 << 10, "{} bytes", gz.len());

    let c = Case::new();
    match extract(decompressed(&gz[..]).unwrap(), &c.diff, &c.split) {
        Err(LayerError::Invalid(m)) => {
            assert!(m.contains(crate::image::tar_limit::FIELD_TOO_LONG), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(&c.diff).unwrap().count(), 0);
    c.assert_confined();
}
