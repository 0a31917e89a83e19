//! Events: recorded in the store by every process, and `GET /events`' replay and follow with
//! moby's filters.

use std::time::Duration;

use bytes::Bytes;
use rusqlite::Transaction;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::params::Filters;
use crate::store::{self, events::EventRow};
use crate::util::time::now_nanos;

use super::{Engine, EngineError, Result};

/// The filter keys moby's events route accepts.
pub const ACCEPTED_FILTERS: &[&str] = &[
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

/// What one `GET /events` asks for.
pub struct EventQuery {
    pub filters: Filters,
    /// Unix nanoseconds; `None` = only events from now on.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Where a follower starts: every stored row with `since`, else after the newest one.
pub fn start_seq(engine: &Engine, q: &EventQuery) -> Result<i64> {
    if q.since.is_some() {
        return Ok(0);
    }
    Ok(store::events::last_seq(engine.store()?.conn())?)
}

/// Send the matching events as JSON lines from `seq` on, until `until` or the receiver is
/// gone.
pub async fn follow(engine: Engine, q: EventQuery, mut seq: i64, tx: mpsc::Sender<Bytes>) {
    let since = q.since.unwrap_or(0);
    loop {
        let e = engine.clone();
        let rows = tokio::task::spawn_blocking(move || -> Option<Vec<EventRow>> {
            store::events::after(e.store().ok()?.conn(), seq, since, 1000).ok()
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        for row in rows {
            seq = row.seq;
            if q.until.is_some_and(|u| row.time_nano > u) {
                return;
            }
            if !matches(&q.filters, &row) {
                continue;
            }
            let mut line = serde_json::to_vec(&to_json(&row)).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
        if q.until.is_some_and(|u| now_nanos() > u) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

/// `since` after `until` is the client's mistake.
pub fn check_range(q: &EventQuery) -> Result<()> {
    if let (Some(s), Some(u)) = (q.since, q.until)
        && s > u
    {
        return Err(EngineError::invalid("`since` time must be before `until`"));
    }
    Ok(())
}

/// Record an image event as moby's `LogImageEvent(id, refName, action)` does.
pub fn image_event(tx: &Transaction, action: &str, image_id: &str, name: &str) -> Result<()> {
    let mut attrs = Map::new();
    attrs.insert("name".into(), json!(name));
    store::events::append(tx, now_nanos(), "image", action, image_id, &attrs)?;
    Ok(())
}

/// The wire shape of an event (API 1.50 still carries `status`, `id`, `from`).
pub fn to_json(e: &EventRow) -> Value {
    let mut m = Map::new();
    if e.typ == "container" || e.typ == "image" {
        m.insert("status".into(), json!(e.action));
        m.insert("id".into(), json!(e.actor_id));
        if let Some(from) = e.attributes.get("image").filter(|_| e.typ == "container") {
            m.insert("from".into(), from.clone());
        }
    }
    m.insert("Type".into(), json!(e.typ));
    m.insert("Action".into(), json!(e.action));
    m.insert(
        "Actor".into(),
        json!({"ID": e.actor_id, "Attributes": e.attributes}),
    );
    m.insert("scope".into(), json!("local"));
    m.insert("time".into(), json!(e.time_nano / 1_000_000_000));
    m.insert("timeNano".into(), json!(e.time_nano));
    Value::Object(m)
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
