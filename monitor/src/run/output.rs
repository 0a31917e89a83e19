//! The container's output: read, logged, copied to attached clients.

use super::*;

impl Monitor {
    /// Read what is there from one output stream (`None` = the pty): log it, send it to clients.
    pub(super) fn read_output(&mut self, which: Option<Stream>) {
        // A few reads per round keep a chatty container from starving the others.
        self.read_output_rounds(which, 4);
    }

    pub(super) fn read_output_rounds(&mut self, which: Option<Stream>, rounds: usize) {
        let mut buf = vec![0u8; READ_CHUNK];
        for _ in 0..rounds {
            let fd = match which {
                Some(Stream::Stdout) => self.io.stdout.as_ref(),
                Some(Stream::Stderr) => self.io.stderr.as_ref(),
                None => self.io.pty.as_ref().filter(|_| !self.io.pty_eof),
            };
            let Some(fd) = fd else { return };
            match sys::read_nb(fd, &mut buf) {
                ReadOutcome::Data(n) => self.output(which.unwrap_or(Stream::Stdout), &buf[..n]),
                ReadOutcome::WouldBlock => return,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => {
                    match which {
                        Some(Stream::Stdout) => self.io.stdout = None,
                        Some(Stream::Stderr) => self.io.stderr = None,
                        None => self.io.pty_eof = true,
                    }
                    return;
                }
            }
        }
    }

    pub(super) fn output(&mut self, stream: Stream, data: &[u8]) {
        let now = sys::now_nanos();
        let idx = stream as usize;
        if let Some(log) = self.log.as_mut() {
            let mut failed = None;
            self.split[idx].push(data, |line| {
                if let Err(e) = log.write(stream, line, now) {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                // The container keeps running without its log rather than stopping.
                diag(&self.run_dir, &format!("log write: {e}"));
            }
        }
        let header = proto::frame_header(stream.frame_id(), data.len());
        for c in self.clients.iter_mut() {
            let wants = match c.kind {
                ClientKind::Attach { stdout, stderr, .. } => match stream {
                    Stream::Stdout => stdout,
                    Stream::Stderr => stderr,
                },
                _ => false,
            };
            if wants && !c.dead {
                if c.pending_out() + header.len() + data.len() > MAX_CLIENT_BUF {
                    c.dead = true;
                    continue;
                }
                c.queue(&header);
                c.queue(data);
                c.flush();
            }
        }
    }

    pub(super) fn flush_log_lines(&mut self) {
        let now = sys::now_nanos();
        if let Some(log) = self.log.as_mut() {
            for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
                self.split[i].flush(|line| {
                    let _ = log.write(stream, line, now);
                });
            }
            log.sync();
        }
    }

    /// Everything the stream has now (at exit, so nothing is lost).
    pub(super) fn read_output_all(&mut self, which: Option<Stream>) {
        self.read_output_rounds(which, usize::MAX);
    }
}
