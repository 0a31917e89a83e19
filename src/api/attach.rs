//! `POST /containers/{id}/attach` (hijacked) and `POST /containers/{id}/resize`: the API side
//! of the monitor's socket. Output frames from the monitor go to the client (headers removed
//! for a TTY); the client's stdin goes to the monitor, watching for the detach keys.

use crate::monitor::proto::Request as MonitorRequest;
use std::path::PathBuf;
use std::time::Duration;

use hyper::{Request, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::engine::containers::state::{ContainerStatus, State, current};
use crate::engine::containers::{logs, resolve};

use super::Ctx;
use super::params::Query;
use super::response::{ApiError, ApiResult, blocking, empty};

/// Docker's `term.ToBytes`: `ctrl-<a-z@[\]^_>` or single characters, comma-separated.
pub fn detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for key in spec.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b'@'] => 0,
                [c @ b'a'..=b'z'] => c - b'a' + 1,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

struct Target {
    id: String,
    tty: bool,
    running: bool,
    run_dir: PathBuf,
}

async fn target(ctx: &Ctx, name: String) -> Result<Target, ApiError> {
    let engine = ctx.engine.clone();
    blocking(move || {
        let row = engine.store()?.read(|tx| resolve(tx, &name))?;
        let state = current(engine.paths(), &row.id, &State::parse(&row.state));
        if state.paused {
            return Err(crate::engine::EngineError::conflict(format!(
                "container {name} is paused, unpause the container before attach"
            )));
        }
        Ok(Target {
            run_dir: engine.paths().container_run_dir(&row.id),
            tty: row.config().tty,
            running: state.status == ContainerStatus::Running,
            id: row.id,
        })
    })
    .await
}

/// Connect to the monitor. A client of a container that has not started announces itself in
/// `attach-pending/` first, so the monitor waits for it before starting the process (no output
/// is lost); the monitor removes the announcement once it has started.
async fn connect(
    engine: &crate::engine::Engine,
    t: &Target,
    request: &MonitorRequest,
) -> Option<UnixStream> {
    let sock = t.run_dir.join(crate::monitor::SOCKET_FILE);
    let pending = if t.running {
        None
    } else {
        let dir = t.run_dir.join(crate::monitor::ATTACH_PENDING_DIR);
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join(crate::util::random_id());
        std::fs::write(&p, b"").ok().map(|_| p)
    };
    let mut stream = None;
    let mut tries: u64 = 0;
    loop {
        if let Ok(s) = UnixStream::connect(&sock).await {
            stream = Some(s);
            break;
        }
        tries += 1;
        // Every second: has the container come and gone (or been removed) meanwhile?
        if tries.is_multiple_of(50) && !waiting_worthwhile(engine, &t.id).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = match stream.as_mut() {
        Some(s) => s.write_all(request.to_line().as_bytes()).await.is_ok(),
        None => false,
    };
    if !sent && let Some(p) = pending {
        let _ = std::fs::remove_file(p);
    }
    stream.filter(|_| sent)
}

/// A waiting attacher keeps waiting while the container exists and has not exited since.
async fn waiting_worthwhile(engine: &crate::engine::Engine, id: &str) -> bool {
    let engine = engine.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || crate::engine::containers::awaits_start(&engine, &id))
        .await
        .unwrap_or(false)
}

/// Copy monitor frames to the client until the monitor closes; strip headers for a TTY.
async fn pump_output<W: AsyncWrite + Unpin>(
    mut from: impl AsyncRead + Unpin,
    to: &mut W,
    tty: bool,
) {
    let mut head = [0u8; 8];
    loop {
        if from.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        if from.read_exact(&mut payload).await.is_err() {
            return;
        }
        let written = if tty {
            to.write_all(&payload).await
        } else {
            match to.write_all(&head).await {
                Ok(()) => to.write_all(&payload).await,
                Err(e) => Err(e),
            }
        };
        if written.is_err() || to.flush().await.is_err() {
            return;
        }
    }
}

/// Watches client stdin for the detach keys (TTY sessions of attach and exec). Bytes of a
/// partial match are held back until the match fails, then passed on.
pub struct DetachScanner {
    keys: Vec<u8>,
    held: Vec<u8>,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner {
            keys,
            held: Vec::new(),
        }
    }

    /// The bytes to forward, and whether the keys were typed (what came before still goes).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (input.to_vec(), false);
        }
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            self.held.push(b);
            if self.keys.starts_with(&self.held) {
                if self.held.len() == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.append(&mut self.held);
        }
        (out, false)
    }
}

/// Copy client stdin to the monitor; returns true when the detach keys were typed.
async fn pump_input(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    keys: Option<Vec<u8>>,
) -> bool {
    let mut buf = vec![0u8; 32 * 1024];
    let mut scanner = DetachScanner::new(keys.unwrap_or_default());
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // stdin EOF: tell the monitor by half-closing.
                let _ = to.shutdown().await;
                return false;
            }
            Ok(n) => n,
        };
        let (out, detached) = scanner.feed(&buf[..n]);
        if !out.is_empty() && to.write_all(&out).await.is_err() {
            return false;
        }
        if detached {
            return true;
        }
    }
}

pub async fn attach(ctx: &Ctx, name: String, q: &Query, mut req: Request<Incoming>) -> ApiResult {
    let t = target(ctx, name).await?;
    let want_stdin = q.bool("stdin", false);
    let want_stdout = q.bool("stdout", false);
    let want_stderr = q.bool("stderr", false);
    let stream = q.bool("stream", false);
    let replay = q.bool("logs", false);
    let keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => detach_keys(k)?,
        None => vec![0x10, 0x11],
    };
    let upgrade = super::response::wants_tcp_upgrade(req.headers());
    let content_type = if t.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = ctx.activity.guard();
    let engine = ctx.engine.clone();
    {
        let e = engine.clone();
        let id = t.id.clone();
        let _ = blocking(move || crate::engine::containers::record_event(&e, &id, "attach")).await;
    }
    tokio::spawn(async move {
        let _guard = guard;
        let io = if upgrade {
            match on_upgrade.await {
                Ok(u) => TokioIo::new(u),
                Err(_) => return,
            }
        } else {
            return;
        };
        let (client_r, mut client_w) = tokio::io::split(io);
        if replay {
            let opts = logs::LogOptions {
                stdout: want_stdout,
                stderr: want_stderr,
                ..Default::default()
            };
            let e = engine.clone();
            let id = t.id.clone();
            let tty = t.tty;
            let frames = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                if let Ok(src) = logs::open(&e, &id, &opts) {
                    let _ = logs::stream(&e, &src, &opts, &mut |entry| {
                        let Some(entry) = entry else { return Ok(()) };
                        if !tty {
                            out.extend_from_slice(&[entry.stream, 0, 0, 0]);
                            out.extend_from_slice(&(entry.text.len() as u32).to_be_bytes());
                        }
                        out.extend_from_slice(&entry.text);
                        Ok(())
                    });
                }
                out
            })
            .await
            .unwrap_or_default();
            if client_w.write_all(&frames).await.is_err() {
                return;
            }
        }
        if !stream || (!want_stdin && !want_stdout && !want_stderr) {
            let _ = client_w.shutdown().await;
            return;
        }
        let request = MonitorRequest::Attach {
            stdin: want_stdin,
            stdout: want_stdout,
            stderr: want_stderr,
        };
        let Some(mon) = connect(&engine, &t, &request).await else {
            let _ = client_w.shutdown().await;
            return;
        };
        let (mon_r, mon_w) = mon.into_split();
        let tty = t.tty;
        let keys = if tty { Some(keys) } else { None };
        let mut input = tokio::spawn(async move {
            if want_stdin {
                pump_input(client_r, mon_w, keys).await
            } else {
                // Without stdin the monitor's write side is simply dropped.
                drop(mon_w);
                std::future::pending::<bool>().await
            }
        });
        let mut output = Box::pin(pump_output(mon_r, &mut client_w, tty));
        tokio::select! {
            _ = &mut output => input.abort(),
            r = &mut input => {
                if matches!(r, Ok(true)) {
                    let e = engine.clone();
                    let id = t.id.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::engine::containers::record_event(&e, &id, "detach")
                    })
                    .await;
                } else {
                    // stdin ended; output goes on until the container's streams close.
                    (&mut output).await;
                }
            }
        }
        drop(output);
        let _ = client_w.shutdown().await;
    });
    if !upgrade {
        return Err(ApiError::bad_request(
            "attach needs an upgraded connection (send Connection: Upgrade and Upgrade: tcp)",
        ));
    }
    super::response::switching_protocols(content_type)
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let h: u32 = parse_dim(q, "h")?;
    let w: u32 = parse_dim(q, "w")?;
    let t = target(ctx, name.clone()).await?;
    if !t.running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", t.id),
        ));
    }
    let mut s = UnixStream::connect(t.run_dir.join(crate::monitor::SOCKET_FILE))
        .await
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("cannot resize: {e}")))?;
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let line = MonitorRequest::Resize {
        height: clamp(h),
        width: clamp(w),
    }
    .to_line();
    let _ = s.write_all(line.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    Ok(empty(StatusCode::OK))
}

pub(super) fn parse_dim(q: &Query, key: &str) -> Result<u32, ApiError> {
    let v = q.get(key).unwrap_or("");
    v.parse::<u32>().map_err(|_| {
        let what = if key == "h" { "height" } else { "width" };
        ApiError::bad_request(format!("invalid resize {what} \"{v}\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_specs() {
        assert_eq!(detach_keys("ctrl-p,ctrl-q").unwrap(), vec![0x10, 0x11]);
        assert_eq!(detach_keys("ctrl-x").unwrap(), vec![24]);
        assert_eq!(detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(detach_keys("ctrl-1").is_err());
        assert!(detach_keys("abc").is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn input_stops_at_detach_keys() {
        let (mut a, b) = tokio::io::duplex(64);
        let (sink_w, mut sink_r) = tokio::io::duplex(64);
        a.write_all(b"hi\x10x\x10\x11rest").await.unwrap();
        let detached = pump_input(b, sink_w, Some(vec![0x10, 0x11])).await;
        assert!(detached);
        let mut got = vec![0u8; 4];
        sink_r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi\x10x");
    }
}
