//! Docker's JSON progress messages (pull, push): status lines and progress bars, written as
//! moby's `streamformatter` does: one object per message, `\r\n` after each, fields in Go's
//! order (`status`, `progressDetail`, `progress`, `id`, … `errorDetail`, `error`, `aux`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::util::human_size;

/// The terminal width moby assumes on the daemon side (no winsize): bars are always drawn.
const WIDTH: usize = 200;

/// moby's `JSONProgress.String()` for byte counts, without the time-left part (berth sets no
/// start time, as moby's progress reader does not either).
pub fn progress_string(current: i64, total: i64) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{:>8}", human_size(current.max(0) as u64));
    }
    let percentage = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = if WIDTH > 110 {
        format!(
            "[{}>{}] ",
            "=".repeat(percentage),
            " ".repeat(50 - percentage)
        )
    } else {
        String::new()
    };
    let cur = human_size(current.max(0) as u64);
    let numbers = if current > total {
        format!("{cur:>8}")
    } else {
        format!("{cur:>8}/{}", human_size(total as u64))
    };
    bar + &numbers
}

/// `progress.Message`: `{"status":"Pulling from library/x","id":"latest"}` (no id when empty).
pub fn message(id: &str, status: &str) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), json!(status));
    if !id.is_empty() {
        m.insert("id".into(), json!(id));
    }
    Value::Object(m)
}

/// `progress.Update`: an action without counts, `{"status":"Pull complete","progressDetail":{},"id":…}`.
pub fn update(id: &str, action: &str) -> Value {
    counts(id, action, 0, 0)
}

/// A progress line with counts: `{"status":"Downloading","progressDetail":{"current":…,"total":…},"progress":"[==> ] …","id":…}`.
pub fn counts(id: &str, action: &str, current: i64, total: i64) -> Value {
    let mut detail = Map::new();
    if current != 0 {
        detail.insert("current".into(), json!(current));
    }
    if total != 0 {
        detail.insert("total".into(), json!(total));
    }
    let mut m = Map::new();
    m.insert("status".into(), json!(action));
    m.insert("progressDetail".into(), Value::Object(detail));
    let bar = progress_string(current, total);
    if !bar.is_empty() {
        m.insert("progress".into(), json!(bar));
    }
    if !id.is_empty() {
        m.insert("id".into(), json!(id));
    }
    Value::Object(m)
}

/// An in-stream error: `{"errorDetail":{"message":…},"error":…}`.
pub fn error(message: &str) -> Value {
    json!({"errorDetail": {"message": message}, "error": message})
}

/// An `aux` message as push ends with: `{"progressDetail":{},"aux":{…}}`.
pub fn aux(value: Value) -> Value {
    json!({"progressDetail": {}, "aux": value})
}

/// One message on the wire: compact JSON and `\r\n`.
pub fn encode(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// Sends progress messages to a streamed response (`api::response::streaming`). Cheap to
/// clone; usable from async code and from blocking threads. A send fails once the client has
/// gone; callers may stop their work then.
#[derive(Clone)]
pub struct ProgressSender {
    tx: mpsc::Sender<Bytes>,
}

impl ProgressSender {
    /// A sender and the receiver to hand to `api::response::streaming`.
    pub fn channel() -> (ProgressSender, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(64);
        (ProgressSender { tx }, rx)
    }

    pub async fn send(&self, v: &Value) -> bool {
        self.tx.send(encode(v)).await.is_ok()
    }

    /// From a blocking thread (never from the async runtime's own thread).
    pub fn blocking_send(&self, v: &Value) -> bool {
        self.tx.blocking_send(encode(v)).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// moby's progress reader sends at most one update per 100 ms (plus the last one).
pub struct Throttle {
    last: Option<Instant>,
    every: Duration,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            last: None,
            every: Duration::from_millis(100),
        }
    }
}

impl Throttle {
    /// Should an update go out now? `last` forces one (the final count).
    pub fn ready(&mut self, last: bool) -> bool {
        let now = Instant::now();
        if last
            || self
                .last
                .is_none_or(|t| now.duration_since(t) >= self.every)
        {
            self.last = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_match_moby() {
        assert_eq!(progress_string(0, 0), "");
        assert_eq!(
            progress_string(1_230_000, 4_560_000),
            format!("[{}>{}]   1.23MB/4.56MB", "=".repeat(13), " ".repeat(37))
        );
        assert_eq!(
            progress_string(4_261_376, 4_261_376),
            format!("[{}>]  4.261MB/4.261MB", "=".repeat(50))
        );
        assert_eq!(progress_string(512, 0), "    512B");
        // A wonky current larger than the total drops the total.
        assert!(progress_string(2000, 1000).ends_with("     2kB"));
        assert_eq!(
            progress_string(32, 1000),
            format!("[=>{}]      32B/1kB", " ".repeat(49))
        );
    }

    #[test]
    fn messages_have_dockers_shape() {
        let s = |v: &Value| String::from_utf8(encode(v).to_vec()).unwrap();
        assert_eq!(
            s(&message("latest", "Pulling from library/x")),
            "{\"status\":\"Pulling from library/x\",\"id\":\"latest\"}\r\n"
        );
        assert_eq!(
            s(&message("", "Digest: sha256:ab")),
            "{\"status\":\"Digest: sha256:ab\"}\r\n"
        );
        assert_eq!(
            s(&update("0123456789ab", "Pulling fs layer")),
            "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"0123456789ab\"}\r\n"
        );
        let v = counts("0123456789ab", "Downloading", 500, 1000);
        assert_eq!(v["progressDetail"], json!({"current": 500, "total": 1000}));
        assert_eq!(
            v["progress"],
            json!(format!(
                "[{}>{}]     500B/1kB",
                "=".repeat(25),
                " ".repeat(25)
            ))
        );
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["status", "progressDetail", "progress", "id"]);
        assert_eq!(
            s(&error("boom")),
            "{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n"
        );
        assert_eq!(
            s(&aux(json!({"Tag": "latest"}))),
            "{\"progressDetail\":{},\"aux\":{\"Tag\":\"latest\"}}\r\n"
        );
    }

    #[test]
    fn throttle_lets_the_last_through() {
        let mut t = Throttle::default();
        assert!(t.ready(false));
        assert!(!t.ready(false));
        assert!(t.ready(true));
    }
}
