//! `/_ping`, `/version`, `/info`, `/system/df`.

use hyper::{Response, StatusCode, header};

use axum::body::Body;

use crate::engine::system as sys;

use super::Ctx;
use super::response::{ApiResult, Resp, blocking, ok_json};

/// `GET`/`HEAD /_ping`: `OK`, with the negotiation headers the Go client reads.
pub fn ping(head: bool) -> Resp {
    let body = if head {
        Body::empty()
    } else {
        Body::from("OK")
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("Builder-Version", "1")
        .header("Swarm", "inactive")
        .header(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")
        .header(header::PRAGMA, "no-cache")
        .body(body)
        .unwrap_or_default()
}

pub async fn version(ctx: &Ctx) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || Ok(sys::version(&engine))).await?;
    ok_json(&v)
}

pub async fn info(ctx: &Ctx) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || sys::info(&engine)).await?;
    ok_json(&v)
}

pub async fn df(ctx: &Ctx) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || sys::df(&engine)).await?;
    ok_json(&v)
}
