//! Small wrappers over the system calls the monitor needs, each `unsafe` kept here and explained.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix nanoseconds, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Write `data` to `path` atomically: a temp file beside it, fsync, rename over.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take no pointers.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_SETFD takes an integer flag, no memory is touched.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Whether `fd` is an open descriptor.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Take ownership of an inherited descriptor (the sync pipe on fd 3) when it is open.
pub fn take_inherited_fd(fd: RawFd) -> Option<File> {
    if !fd_is_open(fd) {
        return None;
    }
    // Nothing the monitor spawns may inherit the sync pipe: the API waits for its EOF.
    let _ = set_cloexec(fd);
    // SAFETY: the descriptor is open, was handed to this process by its parent and nothing
    // else in this process owns it.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// A pipe whose two ends are close-on-exec: (read, write).
pub fn pipe() -> io::Result<(File, File)> {
    let (r, w) = io::pipe()?;
    Ok((File::from(OwnedFd::from(r)), File::from(OwnedFd::from(w))))
}

/// `poll(2)` over raw pollfds, retrying on EINTR. `timeout_ms` < 0 waits forever.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe a live, exclusively borrowed slice of pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The result of one non-blocking read.
#[derive(Debug)]
pub enum ReadOutcome {
    Data(usize),
    Eof,
    WouldBlock,
    Failed(io::Error),
}

/// Read once without blocking (the descriptor is O_NONBLOCK). A pty master whose slave side is
/// gone answers EIO: that is its end of file.
pub fn read_nb(fd: &impl AsRawFd, buf: &mut [u8]) -> ReadOutcome {
    loop {
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return ReadOutcome::Data(n as usize);
        }
        if n == 0 {
            return ReadOutcome::Eof;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return ReadOutcome::WouldBlock,
            Some(libc::EIO) => return ReadOutcome::Eof,
            _ => return ReadOutcome::Failed(e),
        }
    }
}

/// Write once without blocking; Ok(0) means "would block".
pub fn write_nb(fd: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid readable buffer of buf.len() bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Block `signals` for this (single-threaded) process and return a signalfd delivering them.
/// Blocked signals are reset for children by `std::process::Command`, which empties the mask.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; the calls get valid
    // pointers to it; the returned descriptor is new and owned by the OwnedFd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        cvt(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Read every pending signal number from a signalfd.
pub fn read_signals(fd: &OwnedFd) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: the pointer is to `info`, which is `size` bytes long.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n as usize != size {
            return out;
        }
        out.push(info.ssi_signo);
    }
}

/// An inotify descriptor (non-blocking) watching `path` for modifications.
pub fn inotify_modify(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: inotify_init1 takes flags; the new descriptor is owned by the OwnedFd at once.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::inotify_init1(
            libc::IN_NONBLOCK | libc::IN_CLOEXEC,
        ))?)
    };
    // SAFETY: a valid descriptor and a NUL-terminated path that lives across the call.
    cvt(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) })?;
    Ok(fd)
}

/// A non-blocking eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags; the descriptor is owned at once.
    unsafe {
        Ok(OwnedFd::from_raw_fd(cvt(libc::eventfd(
            0,
            libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
        ))?))
    }
}

/// Read a non-blocking descriptor (inotify, eventfd) until it would block; whether anything
/// was there.
pub fn drain(fd: &impl AsRawFd) -> bool {
    let mut buf = [0u8; 4096];
    let mut any = false;
    while let ReadOutcome::Data(_) = read_nb(fd, &mut buf) {
        any = true;
    }
    any
}

/// Make this process a child subreaper: orphaned descendants (the container's init once
/// `runc create` exits) are re-parented here and can be waited for.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// `TIOCSWINSZ` on a pty master.
pub fn set_winsize(fd: &impl AsRawFd, height: u16, width: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct through the pointer, which lives across the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// `shutdown(fd, SHUT_RDWR)` on a socket, ignoring errors (the peer may be gone).
pub fn shutdown(fd: &impl AsRawFd) {
    // SAFETY: shutdown takes a descriptor and a flag.
    unsafe {
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// Unmap from this process's page tables the clean, file-backed pages of read-only mappings
/// (the text and read-only data of the binary and of libc, ld.so). Start-up (dynamic linking,
/// glibc's IFUNC resolvers spread over all of libc's text, fault-around mapping 64 KiB per fault)
/// leaves megabytes of shared library pages mapped that the steady-state loop never touches; they
/// count in VmRSS although they live in the page cache once for the whole system. Only mappings
/// without any anonymous (copied-on-write, e.g. relocated RELRO) page are touched, so
/// `MADV_DONTNEED` merely drops page-table entries: a later access faults the same file page
/// back in. Returns the number of bytes advised.
pub fn trim_file_mappings() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    // (range, eligible so far) of the mapping whose fields are being read.
    let mut current: Option<(usize, usize, bool)> = None;
    let finish = |cur: Option<(usize, usize, bool)>, out: &mut Vec<(usize, usize)>| {
        if let Some((start, end, true)) = cur {
            out.push((start, end));
        }
    };
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            finish(current.take(), &mut candidates);
            let perms = parts.next().unwrap_or("");
            let _offset = parts.next();
            let _dev = parts.next();
            let inode = parts.next().unwrap_or("0");
            let eligible = perms.len() >= 4
                && perms.as_bytes()[1] != b'w'
                && perms.as_bytes()[3] == b'p'
                && inode != "0";
            current = Some((start, end, eligible));
            continue;
        }
        let value = parts.next().unwrap_or("");
        let disqualify = match first {
            "Anonymous:" | "Locked:" | "Swap:" => value != "0",
            _ => false,
        };
        if disqualify && let Some(c) = current.as_mut() {
            c.2 = false;
        }
    }
    finish(current.take(), &mut candidates);
    let mut total = 0;
    for (start, end) in candidates {
        // SAFETY: the range is a whole private, read-only, file-backed mapping of this process
        // with no anonymous page (checked above, and nothing else runs: single thread), so
        // dropping its page-table entries loses no data; the pages fault back from the file.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r == 0 {
            total += end - start;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn nonblocking_pipe_reads() {
        let (r, mut w) = pipe().unwrap();
        set_nonblocking(&r).unwrap();
        let mut buf = [0u8; 8];
        assert!(matches!(read_nb(&r, &mut buf), ReadOutcome::WouldBlock));
        w.write_all(b"hi").unwrap();
        assert!(matches!(read_nb(&r, &mut buf), ReadOutcome::Data(2)));
        drop(w);
        assert!(matches!(read_nb(&r, &mut buf), ReadOutcome::Eof));
    }

    #[test]
    fn trimming_file_mappings_keeps_the_process_working() {
        // A test binary maps its own code and libc read-only from files: there is something
        // to trim, and code, data and libc keep working after the pages were dropped.
        let advised = trim_file_mappings();
        assert!(advised > 0, "no file mapping was trimmed");
        let v: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
        assert_eq!(v.join(",").split(',').nth(42), Some("42"));
        let t1 = now_nanos();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now_nanos() > t1);
    }
}
