//! Attach and request clients on the monitor's socket, and the container's stdin.

use super::*;

#[derive(Debug, PartialEq)]
pub(super) enum ClientKind {
    /// Its request line has not arrived yet.
    Pending,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Answered; closes once the reply is written.
    Reply,
}

pub(super) struct Client {
    pub(super) sock: UnixStream,
    pub(super) kind: ClientKind,
    pub(super) inbuf: Vec<u8>,
    /// Still reading from it (false after its half-close).
    pub(super) reading: bool,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    /// Shut it down once `out` is written.
    pub(super) close_when_flushed: bool,
    pub(super) dead: bool,
}

impl Client {
    pub(super) fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub(super) fn queue(&mut self, data: &[u8]) {
        if self.dead {
            return;
        }
        if self.pending_out() + data.len() > MAX_CLIENT_BUF {
            // Too slow: drop it rather than block or grow without bound.
            self.dead = true;
            return;
        }
        self.out.extend_from_slice(data);
    }

    pub(super) fn flush(&mut self) {
        while !self.dead && self.pending_out() > 0 {
            match sys::write_nb(&self.sock, &self.out[self.out_pos..]) {
                Ok(0) => break,
                Ok(n) => self.out_pos += n,
                // EPIPE/ECONNRESET: the client is gone (SIGPIPE is ignored).
                Err(_) => self.dead = true,
            }
        }
        if self.pending_out() == 0 {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
            if self.close_when_flushed && !self.dead {
                sys::shutdown(&self.sock);
                self.dead = true;
            }
        }
    }
}

impl Monitor {
    pub(super) fn accept(&mut self) {
        loop {
            let Some(l) = &self.listener else { return };
            match l.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        kind: ClientKind::Pending,
                        inbuf: Vec::new(),
                        reading: true,
                        out: Vec::new(),
                        out_pos: 0,
                        close_when_flushed: false,
                        dead: false,
                    });
                    // Its request is usually there already: register it in this round.
                    let i = self.clients.len() - 1;
                    self.client_read(i);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ECONNABORTED, EMFILE…: try again on the next readiness.
                Err(_) => return,
            }
        }
    }

    pub(super) fn client_ready(&mut self, i: usize, revents: libc::c_short) {
        if revents & libc::POLLOUT != 0 {
            self.clients[i].flush();
        }
        if revents & libc::POLLIN != 0 && self.clients[i].reading {
            self.client_read(i);
        } else if revents & (libc::POLLHUP | libc::POLLERR) != 0 && revents & libc::POLLIN == 0 {
            // Gone both ways (a half-close alone shows as readable EOF, not as a hang-up).
            self.clients[i].dead = true;
        }
    }

    pub(super) fn client_read(&mut self, i: usize) {
        let mut buf = [0u8; 8192];
        match sys::read_nb(&self.clients[i].sock, &mut buf) {
            ReadOutcome::Data(n) => {
                if self.clients[i].kind == ClientKind::Pending {
                    self.clients[i].inbuf.extend_from_slice(&buf[..n]);
                    self.client_request(i);
                } else {
                    self.client_stdin(i, &buf[..n]);
                }
            }
            ReadOutcome::Eof => self.client_eof(i),
            ReadOutcome::WouldBlock => {}
            ReadOutcome::Failed(_) => self.clients[i].dead = true,
        }
    }

    pub(super) fn client_request(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
            if c.inbuf.len() > MAX_REQUEST_LINE {
                c.dead = true;
            }
            return;
        };
        let rest = c.inbuf.split_off(nl + 1);
        let line = std::mem::take(&mut c.inbuf);
        match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Attach {
                stdin,
                stdout,
                stderr,
            }) => {
                if matches!(self.phase, Phase::Done { .. }) {
                    // The container is gone for good: EOF at once.
                    c.close_when_flushed = true;
                    c.reading = false;
                    c.kind = ClientKind::Reply;
                    c.flush();
                    return;
                }
                c.kind = ClientKind::Attach {
                    stdin,
                    stdout,
                    stderr,
                };
                self.attached += 1;
                if !rest.is_empty() {
                    self.client_stdin(i, &rest);
                }
            }
            Ok(Request::Resize { height, width }) => {
                let error = match (&self.io.pty, self.cfg.tty) {
                    (_, false) => Some("the container has no tty".to_string()),
                    (None, true) => Some("the container is not running".to_string()),
                    (Some(pty), true) => sys::set_winsize(pty, height, width)
                        .err()
                        .map(|e| e.to_string()),
                };
                self.reply(i, proto::reply_line(error.as_deref()));
            }
            Ok(Request::State) => {
                let mut out = serde_json::to_vec(&self.state).unwrap_or_default();
                out.push(b'\n');
                self.reply(i, out);
            }
            Err(e) => {
                let msg = format!("bad request: {e}");
                self.reply(i, proto::reply_line(Some(&msg)));
            }
        }
    }

    pub(super) fn reply(&mut self, i: usize, data: Vec<u8>) {
        let c = &mut self.clients[i];
        c.kind = ClientKind::Reply;
        c.reading = false;
        c.close_when_flushed = true;
        c.queue(&data);
        c.flush();
    }

    pub(super) fn client_stdin(&mut self, i: usize, data: &[u8]) {
        let ClientKind::Attach { stdin: true, .. } = self.clients[i].kind else {
            return;
        };
        let has_stdin = self.io.stdin.is_some() || self.io.pty.is_some();
        if !has_stdin || self.io.stdin_close {
            return;
        }
        self.io.stdin_buf.extend_from_slice(data);
        self.flush_stdin();
    }

    pub(super) fn client_eof(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.reading = false;
        match c.kind {
            ClientKind::Pending => c.dead = true,
            ClientKind::Attach { stdin: true, .. } if self.cfg.stdin_once && !self.cfg.tty => {
                // Docker's StdinOnce: the first attached client's EOF is the container's EOF.
                self.io.stdin_close = true;
                self.flush_stdin();
            }
            _ => {}
        }
    }

    pub(super) fn flush_stdin(&mut self) {
        let io = &mut self.io;
        let target = io.stdin.as_ref().or(io.pty.as_ref());
        if let Some(f) = target {
            while !io.stdin_buf.is_empty() {
                match sys::write_nb(f, &io.stdin_buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        io.stdin_buf.drain(..n);
                    }
                    Err(_) => {
                        // EPIPE: the container closed its stdin; nothing more can go there.
                        io.stdin_buf = Vec::new();
                        io.stdin = None;
                        break;
                    }
                }
            }
        } else {
            io.stdin_buf = Vec::new();
        }
        if io.stdin_buf.is_empty() {
            if io.stdin_buf.capacity() > 64 * 1024 {
                io.stdin_buf = Vec::new();
            }
            if io.stdin_close {
                io.stdin = None;
            }
        }
    }
}
