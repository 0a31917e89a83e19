//! Container endpoints: create, list, inspect, remove, rename, prune, kill, stop, wait, logs.

use bytes::Bytes;
use hyper::{Request, StatusCode, body::Incoming};
use serde_json::json;
use tokio::sync::mpsc;

use crate::engine::containers::{create, inspect as ins, lifecycle, logs, remove};
use crate::util::time::{now_nanos, parse_query_time};

use super::Ctx;
use super::json_body;
use super::params::{Filters, Query};
use super::response::{
    ApiError, ApiResult, ChannelWriter, blocking, empty, json, ok_json, read_body, streaming,
};

const BODY_LIMIT: usize = 4 << 20;

pub async fn create(ctx: &Ctx, q: &Query, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let body = json_body::object(&parts.headers, &bytes)?;
    json_body::check_create_integers(&body)?;
    let body = crate::model::CreateRequest::from_body(body)
        .map_err(|e| ApiError::bad_request(e.message))?;
    let name = q.get("name").map(String::from);
    let engine = ctx.engine.clone();
    let c = blocking(move || create::create(&engine, name.as_deref(), body)).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": c.id, "Warnings": c.warnings}),
    ))
}

pub async fn list(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let all = q.bool("all", false);
    let limit: i64 = q.int("limit")?.unwrap_or(-1);
    let engine = ctx.engine.clone();
    let v = blocking(move || ins::list(&engine, all, limit, &filters)).await?;
    ok_json(&v)
}

pub async fn inspect(ctx: &Ctx, id: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let v = blocking(move || ins::inspect(&engine, &id)).await?;
    ok_json(&v)
}

pub async fn delete(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let force = q.bool("force", false);
    if q.bool("link", false) {
        let engine = ctx.engine.clone();
        blocking(move || crate::engine::networks::links::remove_link(&engine, &id)).await?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let volumes = q.bool("v", false);
    let engine = ctx.engine.clone();
    blocking(move || remove::remove(&engine, &id, force, volumes)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn rename(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let new_name = q.get("name").unwrap_or("").to_string();
    let engine = ctx.engine.clone();
    blocking(move || remove::rename(&engine, &id, &new_name)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn prune(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || remove::prune(&engine, &filters)).await?;
    ok_json(&v)
}

pub async fn kill(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let signal = q.get("signal").map(String::from);
    let engine = ctx.engine.clone();
    blocking(move || lifecycle::kill(&engine, &id, signal.as_deref())).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn stop(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let t: Option<i64> = q.int("t")?;
    let signal = q.get("signal").map(String::from);
    let engine = ctx.engine.clone();
    let stopped = blocking(move || lifecycle::stop(&engine, &id, t, signal.as_deref())).await?;
    Ok(empty(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/wait`: headers at once (the CLI sends start only after them), the
/// result when the condition is met.
pub async fn wait(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let condition = q.get("condition").unwrap_or("").to_string();
    if !matches!(
        condition.as_str(),
        "" | "not-running" | "next-exit" | "removed"
    ) {
        return Err(ApiError::bad_request(format!(
            "invalid condition: \"{condition}\""
        )));
    }
    // Unknown containers are an HTTP error, before the stream starts.
    {
        let engine = ctx.engine.clone();
        let id = id.clone();
        blocking(move || crate::engine::containers::check_exists(&engine, &id)).await?;
    }
    let engine = ctx.engine.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    // Dropped with the blocking task, so it never holds the stream open.
    let probe = tx.clone();
    tokio::spawn(async move {
        let result = tokio::task::spawn_blocking(move || {
            lifecycle::wait(&engine, &id, &condition, &|| probe.is_closed())
        })
        .await;
        let body = match result {
            Ok(Ok((code, _))) => json!({"StatusCode": code, "Error": null}),
            Ok(Err(e)) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let mut line = serde_json::to_vec(&body).unwrap_or_default();
        line.push(b'\n');
        let _ = tx.send(Bytes::from(line)).await;
    });
    Ok(streaming("application/json", rx))
}

fn log_time(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty() && *v != "0") {
        None => Ok(None),
        Some(v) => parse_query_time(v, now_nanos())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid value for \"{key}\": {v}"))),
    }
}

pub async fn logs(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let opts = logs::LogOptions {
        stdout: q.bool("stdout", false),
        stderr: q.bool("stderr", false),
        since: log_time(q, "since")?,
        until: log_time(q, "until")?,
        tail: q.get("tail").and_then(|t| t.parse::<usize>().ok()),
        timestamps: q.bool("timestamps", false),
        follow: q.bool("follow", false),
        gone: None,
    };
    let src = {
        let engine = ctx.engine.clone();
        let opts = opts.clone();
        blocking(move || logs::open(&engine, &id, &opts)).await?
    };
    let content_type = if src.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let engine = ctx.engine.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    // A second sender only to look at; it goes with the task, so the stream still ends.
    let probe = tx.clone();
    let mut opts = opts;
    opts.gone = Some(std::sync::Arc::new(move || probe.is_closed()));
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx);
        let tty = src.tty;
        let stamps = opts.timestamps;
        let _ = logs::stream(&engine, &src, &opts, &mut |e| {
            use std::io::Write;
            let Some(e) = e else { return out.flush() };
            let mut payload = Vec::with_capacity(e.text.len() + 32);
            if stamps {
                payload.extend_from_slice(logs::timestamp(e.time).as_bytes());
                payload.push(b' ');
            }
            payload.extend_from_slice(&e.text);
            if !tty {
                let len = (payload.len() as u32).to_be_bytes();
                out.write_all(&[e.stream, 0, 0, 0])?;
                out.write_all(&len)?;
            }
            out.write_all(&payload)
        });
    });
    Ok(streaming(content_type, rx))
}

pub async fn start(ctx: &Ctx, id: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let started = blocking(move || crate::engine::containers::start::start(&engine, &id)).await?;
    Ok(empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

pub async fn restart(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let t: Option<i64> = q.int("t")?;
    let signal = q.get("signal").map(String::from);
    let engine = ctx.engine.clone();
    blocking(move || lifecycle::restart(&engine, &id, t, signal.as_deref())).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
