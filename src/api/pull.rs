//! `POST /images/create?fromImage=` (`docker pull`): decode the request, stream the engine's
//! progress messages.

use hyper::{Request, body::Incoming};

use super::Ctx;
use super::params::Query;
use super::response::{ApiError, ApiResult};

pub async fn pull(_ctx: &Ctx, q: &Query, _req: Request<Incoming>) -> ApiResult {
    let from_image = q.get("fromImage").unwrap_or("");
    Err(ApiError::not_implemented(format!(
        "berth cannot pull {from_image} yet: registry support comes in a later release; use docker load or docker import"
    )))
}
