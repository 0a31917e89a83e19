//! Container endpoints that look into or adjust a running container: top, stats, pause,
//! unpause, update.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Request, StatusCode, body::Incoming};
use tokio::sync::mpsc;

use crate::engine::containers::ops;
use crate::engine::containers::state::ContainerStatus;

use super::Ctx;
use super::json_body;
use super::params::Query;
use super::response::{
    ApiError, ApiResult, ChannelWriter, blocking, empty, ok_json, read_body, streaming,
};

const BODY_LIMIT: usize = 1 << 20;

pub async fn top(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let ps_args = q.get("ps_args").unwrap_or("").to_string();
    let engine = ctx.engine.clone();
    let v = blocking(move || ops::top(&engine, &id, &ps_args)).await?;
    ok_json(&v)
}

fn line(v: &serde_json::Value) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

pub async fn stats(ctx: &Ctx, id: String, q: &Query) -> ApiResult {
    let stream = q.bool("stream", true);
    let one_shot = q.bool("one-shot", false);
    if stream && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let engine = ctx.engine.clone();
    let (row, state) = blocking(move || ops::load(&engine, &id)).await?;
    let running = state.status == ContainerStatus::Running;
    if !stream {
        let engine = ctx.engine.clone();
        let v = blocking(move || {
            if !running {
                return Ok(ops::stats_json(&row, None, None));
            }
            let first = ops::sample(&row);
            if one_shot {
                return Ok(ops::stats_json(&row, Some((first.0, &first.1)), None));
            }
            std::thread::sleep(Duration::from_secs(1));
            if !ops::is_running(&engine, &row.id) {
                return Ok(ops::stats_json(&row, None, None));
            }
            let second = ops::sample(&row);
            Ok(ops::stats_json(
                &row,
                Some((second.0, &second.1)),
                Some((first.0, &first.1)),
            ))
        })
        .await?;
        return ok_json(&v);
    }
    let engine = ctx.engine.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx);
        if !running {
            let _ = out.write_all(&line(&ops::stats_json(&row, None, None)));
            let _ = out.flush();
            return;
        }
        let mut prev: Option<(i64, ops::SampleOf)> = None;
        loop {
            if !ops::is_running(&engine, &row.id) {
                break;
            }
            let cur = ops::sample(&row);
            let v = ops::stats_json(
                &row,
                Some((cur.0, &cur.1)),
                prev.as_ref().map(|(t, s)| (*t, s)),
            );
            if out.write_all(&line(&v)).is_err() || out.flush().is_err() {
                break;
            }
            prev = Some(cur);
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    Ok(streaming("application/json", rx))
}

pub async fn pause(ctx: &Ctx, id: String) -> ApiResult {
    let engine = ctx.engine.clone();
    blocking(move || ops::pause(&engine, &id)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn unpause(ctx: &Ctx, id: String) -> ApiResult {
    let engine = ctx.engine.clone();
    blocking(move || ops::unpause(&engine, &id)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn update(ctx: &Ctx, id: String, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, BODY_LIMIT).await?;
    let body = json_body::object(&parts.headers, &bytes)?;
    let body = serde_json::Value::Object(body);
    let body: crate::model::UpdateConfig =
        crate::model::create::decode::<crate::model::Resources>("UpdateConfig", body.clone())
            .and_then(|_| crate::model::create::decode("UpdateConfig", body))
            .map_err(|e| ApiError::bad_request(e.message))?;
    let engine = ctx.engine.clone();
    let v = blocking(move || ops::update(&engine, &id, body)).await?;
    ok_json(&v)
}
