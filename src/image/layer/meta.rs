//! Entry metadata: parsing (header fields with PAX overrides) and applying it to created nodes.

use std::io::{self, Read};
use std::os::fd::BorrowedFd;

use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};

use super::{LayerError, ctx, fsutil, show};

/// Entry metadata, with PAX overrides applied.
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) atime: TimeSpec,
    pub(super) mtime: TimeSpec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Parses a PAX time (`-?secs[.frac]`) into a timespec.
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    let (secs, nanos) = if neg && nanos > 0 {
        (-secs - 1, 1_000_000_000 - nanos)
    } else if neg {
        (-secs, 0)
    } else {
        (secs, nanos)
    };
    Some(TimeSpec::new(secs, nanos))
}

/// Like Go's archive/tar, a numeric header field that is blank (only NULs/spaces) reads as 0;
/// the tar crate refuses those, and some writers leave e.g. device numbers of FIFOs blank.
pub(super) fn lenient<T: Default>(r: io::Result<T>, field: &[u8]) -> io::Result<T> {
    match r {
        Err(_) if field.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        r => r,
    }
}

pub(super) fn meta_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, LayerError> {
    let shown = show(&entry.path_bytes());
    let bad = |what: &str, e: io::Error| LayerError::Invalid(format!("{what} of {shown}: {e}"));
    let h = entry.header();
    let old = h.as_old();
    let uid = lenient(h.uid(), &old.uid).map_err(|e| bad("uid", e))?;
    let gid = lenient(h.gid(), &old.gid).map_err(|e| bad("gid", e))?;
    let mode = lenient(h.mode(), &old.mode).map_err(|e| bad("mode", e))? & 0o7777;
    let hdr_mtime = lenient(h.mtime(), &old.mtime).map_err(|e| bad("mtime", e))?;
    let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
        (Ok(u), Ok(g)) => (u, g),
        _ => {
            return Err(LayerError::Invalid(format!(
                "uid/gid out of range for {shown}"
            )));
        }
    };
    let mut mtime = TimeSpec::new(i64::try_from(hdr_mtime).unwrap_or(i64::MAX), 0);
    let mut atime = None;
    let mut xattrs = Vec::new();
    let exts = entry.pax_extensions().map_err(|e| bad("PAX records", e))?;
    for ext in exts.into_iter().flatten() {
        let ext = ext.map_err(|e| bad("PAX records", e))?;
        match ext.key_bytes() {
            b"mtime" => mtime = parse_pax_time(ext.value_bytes()).unwrap_or(mtime),
            b"atime" => atime = parse_pax_time(ext.value_bytes()),
            k => {
                // trusted.overlay.* (redirect, metacopy, origin…) would steer overlayfs lookups;
                // only whiteout conversion may set them.
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.")
                    && !name.starts_with(b"trusted.overlay.")
                {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    // Like Docker: the access time is never before the modification time.
    let atime = atime.filter(|a| *a >= mtime).unwrap_or(mtime);
    Ok(Meta {
        uid,
        gid,
        mode,
        atime,
        mtime,
        xattrs,
    })
}

pub(super) fn set_xattrs_fd(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    shown: &str,
) -> Result<(), LayerError> {
    for (k, v) in &meta.xattrs {
        match fsutil::fsetxattr(fd, k, v) {
            Err(e) if !fsutil::xattr_ignorable(&e) => {
                return Err(ctx(|| format!("setting xattr {} on {shown}", show(k)))(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Ownership, xattrs, mode (unless a symlink) and times of a node we cannot open.
pub(super) fn finish_node(
    pfd: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    shown: &str,
    chmod: bool,
) -> Result<(), LayerError> {
    let what = || format!("extracting {shown}");
    fchownat(
        pfd,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(ctx(what))?;
    if !meta.xattrs.is_empty() {
        let path = fsutil::proc_path(pfd, name).map_err(ctx(what))?;
        for (k, v) in &meta.xattrs {
            match fsutil::lsetxattr(&path, k, v) {
                Err(e) if !fsutil::xattr_ignorable(&e) => {
                    return Err(ctx(|| format!("setting xattr {} on {shown}", show(k)))(e));
                }
                _ => {}
            }
        }
    }
    if chmod {
        // Not a symlink (we just created it), so following is harmless; Linux has no lchmod.
        fchmodat(
            pfd,
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(ctx(what))?;
    }
    utimensat(
        pfd,
        name,
        &meta.atime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(ctx(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"1700000000.123456789"),
            Some(TimeSpec::new(1_700_000_000, 123_456_789))
        );
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(TimeSpec::new(12, 500_000_000))
        );
        assert_eq!(
            parse_pax_time(b"-1.5"),
            Some(TimeSpec::new(-2, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"7"), Some(TimeSpec::new(7, 0)));
        assert_eq!(
            parse_pax_time(b"1.1234567891"),
            Some(TimeSpec::new(1, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b""), None);
    }
}
