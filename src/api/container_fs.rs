//! Container filesystem endpoints: archive (`docker cp`), export, changes (`docker diff`),
//! and commit.

use hyper::{Request, StatusCode, body::Incoming, header};
use serde_json::json;
use tokio::sync::mpsc;

use crate::engine::containers::archive::{self, Export, View};
use crate::engine::containers::changes;
use crate::engine::containers::commit::{CommitRequest, commit as commit_container};

use super::Ctx;
use super::params::Query;
use super::response::{
    ApiError, ApiResult, BodyReader, ChannelWriter, blocking, json as json_resp, ok_json, streaming,
};
use axum::body::Body;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(q: &Query) -> Result<String, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("bad parameter: path cannot be empty")),
    }
}

/// `HEAD /containers/{id}/archive`: the stat header only.
pub async fn archive_head(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let path = path_param(q)?;
    let engine = ctx.engine.clone();
    let stat = blocking(move || View::open(&engine, &name)?.path_stat(&path)).await?;
    hyper::Response::builder()
        .status(StatusCode::OK)
        .header(STAT_HEADER, stat)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /containers/{id}/archive`: a tar of the path, with the stat header.
pub async fn archive_get(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let path = path_param(q)?;
    let engine = ctx.engine.clone();
    let (view, stat) = {
        let path = path.clone();
        blocking(move || {
            let view = View::open(&engine, &name)?;
            let stat = view.path_stat(&path)?;
            Ok((view, stat))
        })
        .await?
    };
    let (tx, rx) = mpsc::channel(8);
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter::new(tx);
        match view.write_archive(&path, out) {
            Ok(()) => archive::event(&engine, &view.row, "archive-path", Some(&path)),
            // Headers are sent: a failure can only cut the tar short.
            Err(e) => tracing::warn!(error = %e.message, "archive stopped"),
        }
    });
    let mut resp = streaming("application/x-tar", rx);
    resp.headers_mut().insert(
        STAT_HEADER,
        stat.parse()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad stat header"))?,
    );
    Ok(resp)
}

/// `PUT /containers/{id}/archive`: extract the tar body into a directory.
pub async fn archive_put(ctx: &Ctx, name: String, q: &Query, req: Request<Incoming>) -> ApiResult {
    let path = match path_param(q) {
        Ok(p) => p,
        Err(e) => return Err(super::drain_then(req, e).await),
    };
    // Only present and true turns the protection on (moby's `allowOverwriteDirWithFile`).
    let no_overwrite =
        q.get("noOverwriteDirNonDir").is_some() && q.bool("noOverwriteDirNonDir", false);
    let copy_uid_gid = q.bool("copyUIDGID", false);
    let engine = ctx.engine.clone();
    let mut reader = BodyReader::new(req.into_body());
    blocking(move || {
        let result = View::open(&engine, &name).and_then(|view| {
            view.extract(&path, &mut reader, no_overwrite, copy_uid_gid)?;
            archive::event(&engine, &view.row, "extract-to-dir", Some(&path));
            Ok(())
        });
        if result.is_err() {
            // Take the rest of the upload, so the client reads the error, not a broken pipe.
            let _ = std::io::copy(&mut (&mut reader).take(256 << 20), &mut std::io::sink());
        }
        result
    })
    .await?;
    Ok(super::response::empty(StatusCode::OK))
}

use std::io::Read;

/// `GET /containers/{id}/export`.
pub async fn export(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let exp = blocking(move || Export::open(&engine, &name)).await?;
    let (tx, rx) = mpsc::channel(8);
    let engine = ctx.engine.clone();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter::new(tx);
        match exp.write(out) {
            Ok(()) => archive::event(&engine, &exp.row, "export", None),
            Err(e) => tracing::warn!(error = %e.message, "export stopped"),
        }
    });
    Ok(streaming("application/octet-stream", rx))
}

/// `GET /containers/{id}/changes`.
pub async fn changes(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || changes::changes(&engine, &name)).await?;
    ok_json(&v)
}

/// `POST /commit`.
pub async fn commit(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let headers = req.headers().clone();
    let body = super::response::read_body(req.into_body(), 2 << 20).await?;
    let m = super::json_body::object(&headers, &body)?;
    let config = if m.is_empty() {
        None
    } else {
        Some(
            crate::model::create::decode("", serde_json::Value::Object(m))
                .map_err(|e| ApiError::bad_request(e.message))?,
        )
    };
    let container = q.get("container").unwrap_or("").to_string();
    let request = CommitRequest {
        container,
        repo: q.get("repo").unwrap_or("").to_string(),
        tag: q.get("tag").unwrap_or("").to_string(),
        comment: q.get("comment").unwrap_or("").to_string(),
        author: q.get("author").unwrap_or("").to_string(),
        // moby: only an explicit false disables pausing.
        pause: q.get("pause").is_none() || q.bool("pause", true),
        changes: q.all("changes").iter().map(|s| s.to_string()).collect(),
        config,
    };
    let engine = ctx.engine.clone();
    let id = blocking(move || commit_container(&engine, request)).await?;
    Ok(json_resp(StatusCode::CREATED, &json!({"Id": id})))
}
