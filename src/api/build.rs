//! `POST /build`: the legacy builder's streamed JSON (see `engine::build`).

use std::sync::Arc;

use hyper::{Request, body::Incoming};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::build::{self, BuildRequest, Output};

use super::Ctx;
use super::params::Query;
use super::response::{ApiResult, BodyReader, ChannelWriter, blocking, streaming};

pub async fn build(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let registry = req
        .headers()
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let request = match BuildRequest::from_query(q, registry.as_deref()) {
        Ok(r) => r,
        Err(e) => return Err(super::drain_then(req, e.into()).await),
    };
    let quiet = request.quiet;
    let engine = ctx.engine.clone();
    let mut reader = BodyReader::new(req.into_body());
    // The whole context is read and the Dockerfile parsed before anything is streamed, so
    // those errors are plain HTTP errors, as with moby.
    let prepared = blocking(move || {
        let r = build::prepare(&engine, request, &mut reader);
        if r.is_err() {
            let _ = std::io::copy(
                &mut std::io::Read::take(&mut reader, 256 << 20),
                &mut std::io::sink(),
            );
        }
        r
    })
    .await?;
    let (tx, rx) = mpsc::channel(16);
    let engine = ctx.engine.clone();
    let guard = ctx.activity.guard();
    tokio::task::spawn_blocking(move || {
        let probe = tx.clone();
        let closed: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || probe.is_closed());
        let mut writer = ChannelWriter::new(tx);
        let mut send = |v: &Value| writer.message(v).is_ok();
        let mut out = Output::new(&mut send, closed, quiet);
        build::run(&engine, prepared, &mut out);
        drop(guard);
    });
    Ok(streaming("application/json", rx))
}
