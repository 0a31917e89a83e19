//! `POST /auth` (`docker login`) and `GET /distribution/{name}/json`; the work is in
//! engine::registry_ops.

use hyper::{Request, body::Incoming};

use crate::engine::registry_ops;

use super::Ctx;
use super::response::{ApiResult, ok_json, read_body};

pub async fn auth(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let body = read_body(req.into_body(), 1 << 20).await?;
    ok_json(&registry_ops::login(&ctx.engine, &body).await?)
}

pub async fn distribution(ctx: &Ctx, name: &str, req: Request<Incoming>) -> ApiResult {
    let auth = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok());
    ok_json(&registry_ops::distribution(&ctx.engine, name, auth).await?)
}
