//! `POST /images/{name}/push` (`docker push`) and `GET /images/search`.

use hyper::{Request, body::Incoming};

use super::Ctx;
use super::params::Query;
use super::response::{ApiError, ApiResult};

pub async fn push(_ctx: &Ctx, _name: &str, _q: &Query, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented(
        "berth cannot push yet: registry support comes in a later release",
    ))
}

pub async fn search(_ctx: &Ctx, _q: &Query, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented(
        "berth cannot search registries yet: registry support comes in a later release",
    ))
}
