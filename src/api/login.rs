//! `POST /auth` (`docker login`) and `GET /distribution/{name}/json`.

use hyper::{Request, body::Incoming};

use super::Ctx;
use super::response::{ApiError, ApiResult};

pub async fn auth(_ctx: &Ctx, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented(
        "berth cannot log in to registries yet: registry support comes in a later release",
    ))
}

pub async fn distribution(_ctx: &Ctx, _name: &str, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented(
        "berth cannot reach registries yet: registry support comes in a later release",
    ))
}
