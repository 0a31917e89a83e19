//! Recording events in the store for `GET /events`.

use rusqlite::Transaction;
use serde_json::{Map, Value, json};

use crate::store::{self, events::EventRow};
use crate::util::time::now_nanos;

use super::Result;

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
