//! `GET /events`: replay from the store, then follow new rows until `until` or the client leaves.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::events::to_json;
use crate::store::events::{self, EventRow};
use crate::util::time::{now_nanos, parse_query_time};

use super::Ctx;
use super::params::{Filters, Query};
use super::response::{ApiError, ApiResult, blocking, streaming};

const ACCEPTED: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// How often a follower looks for new rows; events come from other processes.
const POLL: Duration = Duration::from_millis(100);

pub async fn stream(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    filters.validate(ACCEPTED)?;
    let now = now_nanos();
    let since = parse_time(q, "since", now)?;
    let until = parse_time(q, "until", now)?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ApiError::bad_request("`since` time must be before `until`"));
    }
    let engine = ctx.engine.clone();
    // Without `since` only new events are sent: start after the newest row.
    let start_seq = if since.is_some() {
        0
    } else {
        let e = engine.clone();
        blocking(move || Ok(events::last_seq(e.store()?.conn())?)).await?
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let guard = ctx.activity.guard();
    tokio::spawn(async move {
        let _guard = guard;
        let mut seq = start_seq;
        let since = since.unwrap_or(0);
        loop {
            let e = engine.clone();
            let rows = tokio::task::spawn_blocking(move || -> Option<Vec<EventRow>> {
                events::after(e.store().ok()?.conn(), seq, since, 1000).ok()
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
            for row in rows {
                seq = row.seq;
                if until.is_some_and(|u| row.time_nano > u) {
                    return;
                }
                if !matches(&filters, &row) {
                    continue;
                }
                let mut line = serde_json::to_vec(&to_json(&row)).unwrap_or_default();
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() {
                    return;
                }
            }
            if until.is_some_and(|u| now_nanos() > u) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(streaming("application/json", rx))
}

fn parse_time(q: &Query, key: &str, now: i64) -> Result<Option<i64>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_query_time(v, now).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("failed to parse value {v} as a timestamp"))
        }),
    }
}

fn attr<'a>(row: &'a EventRow, k: &str) -> Option<&'a str> {
    row.attributes.get(k).and_then(Value::as_str)
}

/// moby's `events.Filter.Include`, for the kinds of events berth records.
fn matches(f: &Filters, row: &EventRow) -> bool {
    let any = |key: &str, candidates: &[&str]| {
        let wanted = f.values(key);
        wanted.is_empty()
            || wanted
                .iter()
                .any(|w| candidates.iter().any(|c| !c.is_empty() && c == w))
    };
    if !any("type", &[&row.typ]) {
        return false;
    }
    let action_base = row.action.split(':').next().unwrap_or("");
    if !any("event", &[&row.action, action_base]) {
        return false;
    }
    if !any("scope", &["local"]) {
        return false;
    }
    let name = attr(row, "name").unwrap_or("");
    if !f.values("image").is_empty() {
        let image_attr = attr(row, "image").unwrap_or("");
        let candidates: Vec<&str> = if row.typ == "image" {
            vec![&row.actor_id, name, crate::util::digest_hex(&row.actor_id)]
        } else {
            vec![image_attr]
        };
        if !any("image", &candidates) {
            return false;
        }
    }
    if !f.values("container").is_empty()
        && (row.typ != "container" || !any("container", &[&row.actor_id, name]))
    {
        return false;
    }
    for (key, typ) in [
        ("network", "network"),
        ("volume", "volume"),
        ("daemon", "daemon"),
    ] {
        if !f.values(key).is_empty() && (row.typ != typ || !any(key, &[&row.actor_id, name])) {
            return false;
        }
    }
    if f.contains("label") {
        let labels = row
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        if !f.match_kv("label", &labels) {
            return false;
        }
    }
    true
}
