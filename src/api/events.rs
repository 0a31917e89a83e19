//! `GET /events`: replay from the store, then follow new rows until `until` or the client
//! leaves (engine::events does the work).

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::engine::events::{self, ACCEPTED_FILTERS, EventQuery};
use crate::util::time::{now_nanos, parse_query_time};

use super::Ctx;
use super::params::{Filters, Query};
use super::response::{ApiError, ApiResult, blocking, streaming};

pub async fn stream(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    filters.validate(ACCEPTED_FILTERS)?;
    let now = now_nanos();
    let query = EventQuery {
        filters,
        since: parse_time(q, "since", now)?,
        until: parse_time(q, "until", now)?,
    };
    events::check_range(&query)?;
    let engine = ctx.engine.clone();
    let (query, start) = {
        let e = engine.clone();
        blocking(move || {
            let seq = events::start_seq(&e, &query)?;
            Ok((query, seq))
        })
        .await?
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let guard = ctx.activity.guard();
    tokio::spawn(async move {
        let _guard = guard;
        events::follow(engine, query, start, tx).await;
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
