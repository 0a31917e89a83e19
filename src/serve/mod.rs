//! `berth serve`: HTTP/1.1 on an activated (or self-bound) unix socket, exiting when idle.

pub mod activation;
pub(crate) mod activity;

use std::convert::Infallible;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};

use crate::api::{self, Ctx};
use crate::engine::Engine;

use activation::Activated;
use activity::{Activity, ActivityGuard};

/// Where the requests come from.
pub enum Source {
    Activated(Activated),
    /// `--host unix:///path`: bind it ourselves (development, hosts without systemd).
    Bind(PathBuf),
}

pub struct ServeOptions {
    pub source: Source,
    /// Exit after this long with nothing going on; zero = never.
    pub idle_timeout: Duration,
    /// Close a connection whose request headers take longer (zero = never): a client that
    /// connects and goes quiet must not keep an `Accept=no` process alive for ever.
    pub header_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("socket {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Serve until idle (listener) or until the one connection is done.
pub async fn run(engine: Engine, opts: ServeOptions) -> Result<(), ServeError> {
    let activity = Activity::new();
    let ctx = Ctx { engine, activity };
    let header_timeout = opts.header_timeout;
    match opts.source {
        Source::Activated(Activated::Connection(stream)) => {
            stream.set_nonblocking(true)?;
            let stream = UnixStream::from_std(stream)?;
            let guard = ctx.activity.guard();
            serve_connection(ctx.clone(), stream, guard, header_timeout).await;
            // Streams that outlive the connection (hijacked attach later) keep us here.
            while ctx.activity.busy() > 0 {
                ctx.activity.changed().await;
            }
            Ok(())
        }
        Source::Activated(Activated::Listener(l)) => {
            l.set_nonblocking(true)?;
            accept_loop(
                ctx,
                UnixListener::from_std(l)?,
                opts.idle_timeout,
                header_timeout,
            )
            .await
        }
        Source::Bind(path) => {
            let listener = bind_private(&path).map_err(|source| ServeError::Bind {
                path: path.display().to_string(),
                source,
            })?;
            accept_loop(ctx, listener, opts.idle_timeout, header_timeout).await
        }
    }
}

/// Bind `path` with mode 0660 and group `berth` (as berth.socket) from its first moment:
/// the socket is made in a fresh 0700 folder beside it, given its mode and group there, and
/// renamed into place, so no one outside root and the group can ever connect.
fn bind_private(path: &std::path::Path) -> std::io::Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
    let result = (|| {
        let inner = tmp.join("s");
        let listener = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o660))?;
        if let Ok(Some(group)) = nix::unistd::Group::from_name("berth") {
            nix::unistd::chown(&inner, None, Some(group.gid)).map_err(std::io::Error::from)?;
        }
        std::fs::rename(&inner, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn accept_loop(
    ctx: Ctx,
    listener: UnixListener,
    idle: Duration,
    header_timeout: Duration,
) -> Result<(), ServeError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let wait = if idle.is_zero() || ctx.activity.busy() > 0 {
            None
        } else {
            Some(idle.saturating_sub(ctx.activity.idle_for()))
        };
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        // Counted from accept until its first request arrives, so an idle exit
                        // never drops a connection whose request is on its way.
                        let guard = ctx.activity.guard();
                        tokio::spawn(serve_connection(ctx.clone(), stream, guard, header_timeout));
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                }
            }
            _ = ctx.activity.changed() => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => {
                if ctx.activity.busy() == 0 && ctx.activity.idle_for() >= idle {
                    return Ok(());
                }
            }
        }
    }
}

/// One HTTP/1.1 connection; each request holds an activity guard until its response body ends.
/// `header_timeout` (zero = none) bounds how long the request head may take, also between
/// requests; response streams and upgraded connections are not affected.
async fn serve_connection(
    ctx: Ctx,
    stream: UnixStream,
    conn_guard: ActivityGuard,
    header_timeout: Duration,
) {
    let conn_guard = Arc::new(Mutex::new(Some(conn_guard)));
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        let request_guard = ctx.activity.guard();
        if let Ok(mut g) = conn_guard.lock() {
            g.take();
        }
        async move {
            let resp = api::handle(ctx, req).await;
            let (parts, body) = resp.into_parts();
            let body = axum::body::Body::new(guarded::Guarded::new(body, request_guard));
            Ok::<_, Infallible>(hyper::Response::from_parts(parts, body))
        }
    });
    let mut builder = http1::Builder::new();
    builder.title_case_headers(true);
    if !header_timeout.is_zero() {
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout);
    }
    let conn = builder
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

mod guarded {
    //! A response body that holds an activity guard until it is finished or dropped.

    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::body::Body;
    use bytes::Bytes;
    use hyper::body::{Body as HttpBody, Frame, SizeHint};

    use super::ActivityGuard;

    pub struct Guarded {
        inner: Body,
        _guard: ActivityGuard,
    }

    impl Guarded {
        pub fn new(inner: Body, guard: ActivityGuard) -> Guarded {
            Guarded {
                inner,
                _guard: guard,
            }
        }
    }

    impl HttpBody for Guarded {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            Pin::new(&mut self.get_mut().inner).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }
}
