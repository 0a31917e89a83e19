//! `POST /images/{name}/push` (`docker push`) and `GET /images/search` (`docker search`).

use hyper::{Request, body::Incoming};

use crate::engine::images::push::{self as eng, PushTarget};
use crate::engine::progress::ProgressSender;
use crate::engine::search;
use crate::params::Filters;
use crate::registry::AuthConfig;

use super::params::Query;
use super::response::{ApiError, ApiResult, blocking, ok_json, read_body, streaming};
use super::{ApiVersion, Ctx};

/// Credentials: the `X-Registry-Auth` header, or (older clients) a JSON body, as moby reads
/// them for push.
async fn push_credentials(req: Request<Incoming>) -> Result<AuthConfig, ApiError> {
    if let Some(h) = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        return Ok(AuthConfig::from_header(Some(h)));
    }
    let body = read_body(req.into_body(), 1 << 20).await?;
    AuthConfig::from_json(&body).map_err(|e| {
        let why = if body.iter().all(u8::is_ascii_whitespace) {
            "EOF".to_string()
        } else {
            e.to_string()
        };
        ApiError::bad_request(format!("bad parameters and missing X-Registry-Auth: {why}"))
    })
}

/// Is the request's `/v1.xx` prefix at least `min`? (No prefix means the newest version.)
fn version_at_least(path: &str, min: ApiVersion) -> bool {
    let Some(rest) = path.strip_prefix("/v") else {
        return true;
    };
    let v = rest.split('/').next().unwrap_or("");
    ApiVersion::parse(v).is_none_or(|v| v >= min)
}

pub async fn push(ctx: &Ctx, name: &str, q: &Query, req: Request<Incoming>) -> ApiResult {
    let req_path = &req.uri().path().to_string();
    let creds = push_credentials(req).await?;
    let target = PushTarget::parse(name, q.get("tag").unwrap_or(""))?;
    // Older clients may send a platform they never meant; moby reads it from API 1.46 on.
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty())
        && version_at_least(req_path, ApiVersion(1, 46))
    {
        let wanted = eng::decode_platform(p)?;
        let (engine, t) = (ctx.engine.clone(), target.clone());
        blocking(move || eng::check_platform(&engine, &t, &wanted)).await?;
    }
    let (out, rx) = ProgressSender::channel();
    let engine = ctx.engine.clone();
    tokio::spawn(eng::push(engine, target, creds, out));
    Ok(streaming("application/json", rx))
}

/// `GET /images/search?term=&limit=&filters=`: Docker's v1 search against the registry the
/// term names (Docker Hub's index by default).
pub async fn search(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            // moby wraps a nil error here and so answers 200 with no body at all.
            Ok(_) => return Ok(super::response::empty(hyper::StatusCode::OK)),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid limit specified: strconv.Atoi: parsing {}: {}",
                    crate::util::go_quote(l),
                    if l.trim_start_matches(['-', '+'])
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        && !l.trim_start_matches(['-', '+']).is_empty()
                    {
                        "value out of range"
                    } else {
                        "invalid syntax"
                    }
                )));
            }
        },
    };
    let filters = Filters::parse(q.get("filters"))?;
    let creds = AuthConfig::from_header(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let term = q.get("term").unwrap_or("").to_string();
    let results = search::search(&ctx.engine, &filters, &term, limit, creds).await?;
    ok_json(&results)
}
