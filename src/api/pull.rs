//! `POST /images/create?fromImage=` (`docker pull`): decode the request, stream the engine's
//! progress messages.

use hyper::{Request, body::Incoming};

use crate::engine::images::pull as eng;
use crate::engine::progress::{self, ProgressSender};
use crate::registry::AuthConfig;

use super::Ctx;
use super::params::Query;
use super::response::{ApiResult, streaming};

pub async fn pull(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let from_image = q.get("fromImage").unwrap_or("");
    let tag = q.get("tag").unwrap_or("");
    let platform = q.get("platform").unwrap_or("");
    let creds = AuthConfig::from_header(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let request = eng::parse_request(from_image, tag, platform)?;
    // Errors up to the first manifest are HTTP errors, as in moby (nothing written yet).
    let prepared = eng::prepare(&ctx.engine, request, creds).await?;
    let (out, rx) = ProgressSender::channel();
    let engine = ctx.engine.clone();
    let guard = ctx.activity.guard();
    tokio::spawn(async move {
        if let Err(e) = eng::run(engine, prepared, out.clone()).await {
            out.send(&progress::error(&e.message)).await;
        }
        drop(guard);
    });
    Ok(streaming("application/json", rx))
}
