//! Network endpoints: create, list, inspect, remove, prune, connect, disconnect.

use hyper::{Request, StatusCode, body::Incoming};
use serde::Deserialize;

use crate::engine::networks::{self as net, CreateOptions};
use crate::model::EndpointSettings;
use crate::model::lenient::null_default;

use super::Ctx;
use super::json_body;
use super::params::{Filters, Query};
use super::response::{ApiError, ApiResult, blocking, empty, json, ok_json, read_body};

const BODY_LIMIT: usize = 1 << 20;

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let opts: CreateOptions = json_body::typed(&parts.headers, &bytes, "CreateRequest")?;
    let engine = ctx.engine.clone();
    let v = blocking(move || net::create(&engine, opts)).await?;
    Ok(json(StatusCode::CREATED, &v))
}

pub async fn list(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || net::list(&engine, &filters)).await?;
    ok_json(&v)
}

pub async fn inspect(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    // `scope` narrows the lookup to one scope: everything here is local.
    if let Some(s) = q.get("scope").filter(|s| !s.is_empty() && *s != "local") {
        return Err(ApiError::not_found(format!(
            "network {name} not found (scope {s})"
        )));
    }
    let engine = ctx.engine.clone();
    let v = blocking(move || net::inspect(&engine, &name)).await?;
    ok_json(&v)
}

pub async fn delete(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    blocking(move || net::remove(&engine, &name)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn prune(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || net::prune(&engine, &filters)).await?;
    ok_json(&v)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectRequest {
    #[serde(deserialize_with = "null_default")]
    container: String,
    endpoint_config: Option<EndpointSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectRequest {
    #[serde(deserialize_with = "null_default")]
    container: String,
    #[serde(deserialize_with = "null_default")]
    force: bool,
}

pub async fn connect(ctx: &Ctx, name: String, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let r: ConnectRequest = json_body::typed(&parts.headers, &bytes, "ConnectOptions")?;
    if r.container.is_empty() {
        return Err(ApiError::bad_request("no container specified"));
    }
    let engine = ctx.engine.clone();
    blocking(move || net::connect(&engine, &name, &r.container, r.endpoint_config)).await?;
    Ok(empty(StatusCode::OK))
}

pub async fn disconnect(ctx: &Ctx, name: String, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let r: DisconnectRequest = json_body::typed(&parts.headers, &bytes, "DisconnectOptions")?;
    if r.container.is_empty() {
        return Err(ApiError::bad_request("no container specified"));
    }
    let engine = ctx.engine.clone();
    blocking(move || net::disconnect(&engine, &name, &r.container, r.force)).await?;
    Ok(empty(StatusCode::OK))
}
