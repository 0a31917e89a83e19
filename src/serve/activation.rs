//! Socket activation: which socket `berth serve` was handed, decided from the fd itself.
//!
//! systemd (or `systemd-socket-activate`) passes fd 3. A listening socket (`Accept=no`) gets an
//! accept loop; a connected one (`Accept=yes`) is one connection. This runs in `main` before any
//! thread exists, because it edits the environment.

use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{getsockopt, sockopt};

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("reading LISTEN_FDS: {0}")]
    Env(#[from] std::io::Error),
    #[error("the activation fd {fd}: {source}")]
    Fd { fd: RawFd, source: nix::Error },
    #[error("expected exactly one activation socket, got {0}")]
    Count(usize),
}

pub enum Activated {
    /// `Accept=no`: serve connections until idle.
    Listener(UnixListener),
    /// `Accept=yes`: serve this one connection.
    Connection(UnixStream),
}

/// Take the socket systemd passed, if any, and drop `LISTEN_*` from the environment.
pub fn take() -> Result<Option<Activated>, ActivationError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    if fds.len() != 1 {
        return Err(ActivationError::Count(fds.len()));
    }
    let Some(fd) = fds.take_raw_fd(0)? else {
        return Ok(None);
    };
    // SAFETY: fd 3 was handed to this process by the activator and nothing else owns it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    // Inherited fds are not close-on-exec; they must not leak into runtimes or monitors.
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|source| ActivationError::Fd { fd, source })?;
    let listening = getsockopt(&borrowed, sockopt::AcceptConn)
        .map_err(|source| ActivationError::Fd { fd, source })?;
    // SAFETY: the fd is a socket we now own; exactly one wrapper takes it.
    Ok(Some(if listening {
        Activated::Listener(unsafe { UnixListener::from_raw_fd(fd) })
    } else {
        Activated::Connection(unsafe { UnixStream::from_raw_fd(fd) })
    }))
}
