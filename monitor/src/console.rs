//! The runtime's `--console-socket`: receive the pty master over `SCM_RIGHTS`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Receive one file descriptor sent with `SCM_RIGHTS` on `sock` (runc sends the pty's name as
/// data along with it). The descriptor arrives close-on-exec (`MSG_CMSG_CLOEXEC`), so no child of
/// the monitor inherits the pty master.
pub fn recv_fd(sock: &impl AsRawFd) -> io::Result<File> {
    let mut data = [0u8; 4096];
    // Room for one cmsghdr carrying a few ints (a well-behaved sender sends exactly one).
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below refers to a local buffer that lives
    // until the end of this function, with its true length.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: msg describes valid buffers (above); recvmsg writes within their lengths.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut received: Vec<OwnedFd> = Vec::new();
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, bounded by
    // msg_controllen; SCM_RIGHTS payloads are arrays of ints, read unaligned; each descriptor
    // received is new to this process and owned exactly once by the OwnedFd made from it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = payload / std::mem::size_of::<libc::c_int>();
                let p = libc::CMSG_DATA(cmsg) as *const libc::c_int;
                for i in 0..count {
                    received.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 && received.is_empty() {
        return Err(io::Error::other("console socket: control data truncated"));
    }
    // Extra descriptors (if any) are closed when `received` drops.
    match received.into_iter().next() {
        Some(fd) => Ok(File::from(fd)),
        None if n == 0 => Err(io::Error::other("console socket closed without a terminal")),
        None => Err(io::Error::other(
            "console socket: no file descriptor received",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// Send `fd` the way runc does (name as data, the fd as SCM_RIGHTS).
    fn send_fd(sock: &UnixStream, fd: i32) {
        let name = b"/dev/pts/9";
        let mut iov = libc::iovec {
            iov_base: name.as_ptr() as *mut _,
            iov_len: name.len(),
        };
        let mut control = [0u64; 8];
        // SAFETY: test-only; buffers are local and sized, CMSG helpers stay within `control`.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
            (libc::CMSG_DATA(c) as *mut i32).write_unaligned(fd);
            assert!(libc::sendmsg(sock.as_raw_fd(), &msg, 0) > 0);
        }
    }

    #[test]
    fn receives_a_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, mut w) = crate::sys::pipe().unwrap();
        send_fd(&a, w.as_raw_fd());
        let mut got = recv_fd(&b).unwrap();
        got.write_all(b"x").unwrap();
        drop(got);
        w.write_all(b"y").unwrap();
        drop(w);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "xy");
        drop(a);
        assert!(recv_fd(&b).is_err());
    }
}
