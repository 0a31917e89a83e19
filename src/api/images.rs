//! Image endpoints: list, inspect, history, tag, remove, prune, load, save, import.

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::json;
use tokio::sync::mpsc;

use crate::engine::images::import::{ImportRequest, import};
use crate::engine::images::{self as eng, archive as image_archive, save as image_save};

use super::Ctx;
use super::params::{Filters, Query};
use super::response::{
    ApiError, ApiResult, BodyReader, ChannelWriter, blocking, empty, ok_json, streaming,
};

pub async fn list(ctx: &Ctx, q: &Query) -> ApiResult {
    let mut filters = Filters::parse(q.get("filters"))?;
    // The pre-1.25 `filter` parameter is a reference pattern.
    if let Some(f) = q.get("filter").filter(|f| !f.is_empty()) {
        let mut raw = serde_json::Map::new();
        raw.insert("reference".into(), json!({f: true}));
        let mut merged = Filters::parse(Some(&serde_json::Value::Object(raw).to_string()))?;
        if filters.is_empty() {
            std::mem::swap(&mut filters, &mut merged);
        }
    }
    let all = q.bool("all", false);
    let engine = ctx.engine.clone();
    let v = blocking(move || eng::list(&engine, all, &filters)).await?;
    ok_json(&v)
}

pub async fn inspect(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || eng::inspect(&engine, &name)).await?;
    ok_json(&v)
}

pub async fn history(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || eng::history(&engine, &name)).await?;
    ok_json(&v)
}

pub async fn tag(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let engine = ctx.engine.clone();
    let repo = q.get("repo").unwrap_or("").to_string();
    let tag = q.get("tag").unwrap_or("").to_string();
    blocking(move || eng::tag(&engine, &name, &repo, &tag)).await?;
    Ok(empty(StatusCode::CREATED))
}

pub async fn delete(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let engine = ctx.engine.clone();
    let force = q.bool("force", false);
    let prune = !q.bool("noprune", false);
    let v = blocking(move || eng::remove(&engine, &name, force, prune)).await?;
    ok_json(&v)
}

pub async fn prune(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || eng::prune(&engine, &filters)).await?;
    ok_json(&v)
}

/// `POST /images/load`: always 200; errors go in the stream, as Docker does.
pub async fn load(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    // Docker's default is quiet when the parameter is absent.
    let quiet = q.bool("quiet", true);
    let engine = ctx.engine.clone();
    let mut reader = BodyReader::new(req.into_body());
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx);
        let mut send_failed = false;
        let result = image_archive::load(&engine, &mut reader, quiet, &mut |msg| {
            if out.message(&msg).is_err() {
                send_failed = true;
            }
        });
        if let Err(e) = result {
            if !send_failed {
                let _ = out.error_message(&e.message);
            }
            // Take the rest of the upload, so the client reads the error, not a broken pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
    });
    Ok(streaming("application/json", rx))
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`.
pub async fn save(ctx: &Ctx, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(ApiError::bad_request("no images specified"));
    }
    let engine = ctx.engine.clone();
    let plan = {
        let engine = engine.clone();
        blocking(move || image_save::plan(&engine, &names)).await?
    };
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter::new(tx);
        // A failure now can only cut the stream short; the client sees a truncated tar.
        if let Err(e) = image_save::write(&engine, &plan, out) {
            tracing::warn!(error = %e.message, "save stopped");
        }
    });
    Ok(streaming("application/x-tar", rx))
}

/// `POST /images/create`: `fromSrc` imports a tar; `fromImage` pulls (api/pull.rs).
pub async fn create(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let from_src = q.get("fromSrc").unwrap_or("").to_string();
    let from_image = q.get("fromImage").unwrap_or("");
    if from_src.is_empty() {
        if from_image.is_empty() {
            return Err(ApiError::bad_request(
                "either fromSrc or fromImage is required",
            ));
        }
        return super::pull::pull(ctx, q, req).await;
    }
    if from_src != "-" {
        return Err(ApiError::not_implemented(
            "berth imports from the request body only (fromSrc=-)",
        ));
    }
    let repo = q.get("repo").unwrap_or("").to_string();
    let tag = q.get("tag").unwrap_or("").to_string();
    let message = q.get("message").unwrap_or("").to_string();
    let changes: Vec<String> = q.all("changes").iter().map(|s| s.to_string()).collect();
    let engine = ctx.engine.clone();
    let mut reader = BodyReader::new(req.into_body());
    let id = blocking(move || {
        let request = ImportRequest {
            repo: &repo,
            tag: &tag,
            message: &message,
            source: &from_src,
            changes: &changes,
        };
        let result = import(&engine, &request, &mut reader);
        // Read what the client is still sending, so it sees our answer rather than a broken pipe.
        if result.is_err() {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        result
    })
    .await?;
    // A stream, so clients that read progress (docker-py checks for chunking) see one message.
    let (tx, rx) = mpsc::channel(1);
    let mut line = serde_json::to_vec(&json!({"status": id})).unwrap_or_default();
    line.extend_from_slice(b"\r\n");
    let _ = tx.send(bytes::Bytes::from(line)).await;
    drop(tx);
    Ok(streaming("application/json", rx))
}
