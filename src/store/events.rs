//! The event log: every process appends; `GET /events` replays and then follows it.

use rusqlite::{Connection, Transaction, params};
use serde_json::{Map, Value};

use super::Result;

/// Rows kept; older ones are dropped as new ones come (Docker keeps 256 in memory).
const KEEP: i64 = 10_000;

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub time_nano: i64,
    pub typ: String,
    pub action: String,
    pub actor_id: String,
    pub attributes: Map<String, Value>,
}

pub fn append(
    tx: &Transaction,
    time_nano: i64,
    typ: &str,
    action: &str,
    actor_id: &str,
    attributes: &Map<String, Value>,
) -> Result<()> {
    let attrs = Value::Object(attributes.clone()).to_string();
    tx.execute(
        "INSERT INTO events (time_nano, type, action, actor_id, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![time_nano, typ, action, actor_id, attrs],
    )?;
    let last = tx.last_insert_rowid();
    if last % 100 == 0 {
        tx.execute("DELETE FROM events WHERE seq <= ?1", [last - KEEP])?;
    }
    Ok(())
}

/// Events after sequence number `after_seq` with a time at or after `since_nano`, oldest first.
pub fn after(
    conn: &Connection,
    after_seq: i64,
    since_nano: i64,
    limit: i64,
) -> Result<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, time_nano, type, action, actor_id, attributes FROM events
         WHERE seq > ?1 AND time_nano >= ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after_seq, since_nano, limit], |r| {
        let attrs: String = r.get(5)?;
        Ok(EventRow {
            seq: r.get(0)?,
            time_nano: r.get(1)?,
            typ: r.get(2)?,
            action: r.get(3)?,
            actor_id: r.get(4)?,
            attributes: match serde_json::from_str::<Value>(&attrs) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The newest event of `action` for `actor_id`, if any is still kept.
pub fn last_of(conn: &Connection, actor_id: &str, action: &str) -> Result<Option<EventRow>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row(
            "SELECT seq, time_nano, type, action, actor_id, attributes FROM events
             WHERE actor_id = ?1 AND action = ?2 ORDER BY seq DESC LIMIT 1",
            params![actor_id, action],
            |r| {
                let attrs: String = r.get(5)?;
                Ok(EventRow {
                    seq: r.get(0)?,
                    time_nano: r.get(1)?,
                    typ: r.get(2)?,
                    action: r.get(3)?,
                    actor_id: r.get(4)?,
                    attributes: match serde_json::from_str::<Value>(&attrs) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    },
                })
            },
        )
        .optional()?)
}

pub fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?)
}
