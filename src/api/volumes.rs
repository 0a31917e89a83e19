//! Volume endpoints: create, list, inspect, remove, prune.

use hyper::{Request, StatusCode, body::Incoming};

use crate::engine::volumes::{self as vol, CreateOptions};

use super::Ctx;
use super::json_body;
use super::params::{Filters, Query};
use super::response::{ApiResult, blocking, empty, json, ok_json, read_body};

const BODY_LIMIT: usize = 1 << 20;

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let opts: CreateOptions = json_body::typed(&parts.headers, &bytes, "CreateOptions")?;
    let engine = ctx.engine.clone();
    let v = blocking(move || vol::create(&engine, opts)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

pub async fn list(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || vol::list(&engine, &filters)).await?;
    ok_json(&v)
}

pub async fn inspect(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || vol::inspect(&engine, &name)).await?;
    ok_json(&v)
}

pub async fn delete(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let force = q.bool("force", false);
    let engine = ctx.engine.clone();
    blocking(move || vol::remove(&engine, &name, force)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `anonymous_only`: API 1.42 and later prune only anonymous volumes unless `all=true`.
pub async fn prune(ctx: &Ctx, q: &Query, anonymous_only: bool) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || vol::prune(&engine, &filters, anonymous_only)).await?;
    ok_json(&v)
}
