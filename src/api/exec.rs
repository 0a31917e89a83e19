//! Exec endpoints: create, start (hijacked unless detached), resize, inspect.

use bytes::Bytes;
use hyper::{Request, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::engine::containers::exec::{self as ex, Mode, Session};
use crate::model::{ExecOptions, ExecStartOptions};

use super::Ctx;
use super::json_body;
use super::params::Query;
use super::response::{ApiResult, blocking, empty, json, ok_json, read_body, streaming};

const BODY_LIMIT: usize = 1 << 20;

/// `POST /containers/{id}/exec`.
pub async fn create(ctx: &Ctx, id: String, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    create_from_body(ctx, id, &parts.headers, &bytes).await
}

/// An exec session from a request body already read.
pub async fn create_from_body(
    ctx: &Ctx,
    id: String,
    headers: &hyper::HeaderMap,
    bytes: &[u8],
) -> ApiResult {
    let body: ExecOptions = json_body::typed(headers, bytes, "ExecOptions")?;
    if !body.detach_keys.is_empty() {
        super::attach::detach_keys(&body.detach_keys)?;
    }
    let engine = ctx.engine.clone();
    let eid = blocking(move || ex::create(&engine, &id, body)).await?;
    Ok(json(StatusCode::CREATED, &json!({"Id": eid})))
}

/// A docker frame header + payload, or the raw payload.
fn frame(stream: u8, data: &[u8], mux: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    if mux {
        out.extend_from_slice(&[stream, 0, 0, 0]);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Feed the session's stdin from a channel on a blocking thread; closing the channel closes
/// the process's stdin (exec's CloseStdin is always true).
fn stdin_writer(mut w: Box<dyn std::io::Write + Send>) -> mpsc::Sender<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    std::thread::spawn(move || {
        while let Some(chunk) = rx.blocking_recv() {
            if w.write_all(&chunk).is_err() || w.flush().is_err() {
                break;
            }
        }
    });
    tx
}

/// Client stdin to the process; true when the detach keys were typed.
async fn pump_input(
    mut from: impl AsyncRead + Unpin,
    to: mpsc::Sender<Vec<u8>>,
    keys: Option<Vec<u8>>,
) -> bool {
    let mut buf = vec![0u8; 32 * 1024];
    let mut scanner = super::attach::DetachScanner::new(keys.unwrap_or_default());
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let (out, detached) = scanner.feed(&buf[..n]);
        // A closed stdin is no reason to stop: detach keys must still work.
        if !out.is_empty() {
            let _ = to.send(out).await;
        }
        if detached {
            return true;
        }
    }
}

async fn pump_output<W: AsyncWrite + Unpin>(
    session_out: &mut mpsc::Receiver<(u8, Vec<u8>)>,
    to: &mut W,
    mux: bool,
) {
    let mut writing = true;
    while let Some((stream, data)) = session_out.recv().await {
        if writing
            && (to.write_all(&frame(stream, &data, mux)).await.is_err()
                || to.flush().await.is_err())
        {
            writing = false;
        }
    }
}

/// `POST /exec/{id}/start`.
pub async fn start(ctx: &Ctx, id: String, req: Request<Incoming>) -> ApiResult {
    let (mut parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let body: ExecStartOptions = json_body::typed(&parts.headers, &bytes, "ExecStartOptions")?;
    let detach = body.detach;
    let start_tty = body.tty;
    let console_size = crate::model::exec::console_size(body.console_size);
    let upgrade = super::response::wants_tcp_upgrade(&parts.headers);
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();

    let engine = ctx.engine.clone();
    let eid = id.clone();
    if detach {
        // Its own supervisor records the exit: nothing of it stays with this process.
        blocking(move || ex::start_detached(&engine, ex::claim(&engine, &eid)?)).await?;
        return Ok(empty(StatusCode::OK));
    }
    let (rec, session) = blocking(move || {
        let mut rec = ex::claim(&engine, &eid)?;
        if console_size.is_some() {
            rec.extra.console_size = console_size;
        }
        let mode = if rec.process_config.tty {
            Mode::Tty
        } else {
            Mode::Pipes {
                stdin: rec.open_stdin && upgrade,
            }
        };
        let s = ex::spawn(&engine, rec.clone(), mode);
        Ok((rec, s))
    })
    .await?;
    let mux = !start_tty;
    let content_type = if mux {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    let session = match session {
        Ok(s) => s,
        // moby hijacks before starting the process: its failure is text on the stream.
        Err(e) if upgrade && on_upgrade.is_some() => {
            let text = format!("{}\r\n", e.message);
            let on_upgrade = on_upgrade.expect("checked above");
            let guard = ctx.activity.guard();
            tokio::spawn(async move {
                let _guard = guard;
                if let Ok(u) = on_upgrade.await {
                    let mut io = TokioIo::new(u);
                    let _ = io.write_all(&frame(1, text.as_bytes(), mux)).await;
                    let _ = io.shutdown().await;
                }
            });
            return super::response::switching_protocols(content_type);
        }
        Err(e) => return Err(e.into()),
    };
    let Session {
        input,
        mut output,
        done,
    } = session;
    let guard = ctx.activity.guard();

    if !upgrade || on_upgrade.is_none() {
        // A plain streamed body: output only.
        drop(input);
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            let _guard = guard;
            while let Some((stream, data)) = output.recv().await {
                let _ = tx.send(Bytes::from(frame(stream, &data, mux))).await;
            }
            let _ = done.await;
        });
        return Ok(streaming(content_type, rx));
    }

    let keys = if rec.process_config.tty {
        let spec = if rec.detach_keys.is_empty() {
            "ctrl-p,ctrl-q".to_string()
        } else {
            rec.detach_keys.clone()
        };
        Some(super::attach::detach_keys(&spec).unwrap_or_else(|_| vec![0x10, 0x11]))
    } else {
        None
    };
    let want_stdin = rec.open_stdin;
    let on_upgrade = on_upgrade.expect("checked above");
    tokio::spawn(async move {
        let _guard = guard;
        let io = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(_) => {
                drop(input);
                while output.recv().await.is_some() {}
                return;
            }
        };
        let (client_r, mut client_w) = tokio::io::split(io);
        let mut input_task = tokio::spawn(async move {
            match input.filter(|_| want_stdin) {
                Some(w) => {
                    let tx = stdin_writer(w);
                    let detached = pump_input(client_r, tx, keys).await;
                    if detached {
                        return true;
                    }
                    std::future::pending::<bool>().await
                }
                None => std::future::pending::<bool>().await,
            }
        });
        let detached = {
            let mut out = Box::pin(pump_output(&mut output, &mut client_w, mux));
            tokio::select! {
                _ = &mut out => false,
                r = &mut input_task => {
                    if matches!(r, Ok(true)) {
                        true
                    } else {
                        (&mut out).await;
                        false
                    }
                }
            }
        };
        input_task.abort();
        if detached {
            let _ = client_w.shutdown().await;
            // Keep draining so the process never blocks on a full pipe, and stay (as activity)
            // until its exit is recorded.
            while output.recv().await.is_some() {}
            let _ = done.await;
            return;
        }
        // The exit code is recorded before the stream ends.
        let _ = done.await;
        let _ = client_w.shutdown().await;
    });
    super::response::switching_protocols(content_type)
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let (h, w) = (
        super::attach::parse_dim(q, "h")?,
        super::attach::parse_dim(q, "w")?,
    );
    let engine = ctx.engine.clone();
    blocking(move || ex::resize(&engine, &id, h, w)).await?;
    Ok(empty(StatusCode::OK))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(ctx: &Ctx, id: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let rec = blocking(move || ex::find(&engine, &id)).await?;
    ok_json(&rec.inspect_json())
}
