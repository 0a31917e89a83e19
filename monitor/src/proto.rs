//! The `R/monitor.sock` protocol: one JSON request line, then Docker-framed output.

use serde::{Deserialize, Serialize};

/// The first line a client sends (newline-terminated JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Request {
    /// Receive output frames of the chosen streams; send raw stdin bytes when `stdin`.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    /// Resize the tty; answered with `{"ok":true}` or `{"error":"…"}`.
    Resize { height: u16, width: u16 },
    /// Answered with the content of `state.json`.
    State,
}

impl Request {
    /// The request as the line a client writes.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The longest request line accepted; a client sending more without `\n` is dropped.
pub const MAX_REQUEST_LINE: usize = 4096;

/// Docker's multiplexed stream header: `[stream, 0, 0, 0, len u32 BE]`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Parse a frame header: (stream, payload length).
pub fn parse_frame_header(h: &[u8; 8]) -> (u8, usize) {
    (h[0], u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize)
}

/// A one-line JSON reply to a resize request: `ok`, or the error's text.
pub fn reply_line(error: Option<&str>) -> Vec<u8> {
    let v = match error {
        None => serde_json::json!({"ok": true}),
        Some(e) => serde_json::json!({"error": e}),
    };
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_dockers() {
        assert_eq!(frame_header(1, 5), [1, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(frame_header(2, 0x0102_0304), [2, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(parse_frame_header(&frame_header(2, 70_000)), (2, 70_000));
    }

    #[test]
    fn requests_parse() {
        let r: Request =
            serde_json::from_str(r#"{"type":"attach","stdin":true,"stdout":true}"#).unwrap();
        assert_eq!(
            r,
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: false
            }
        );
        let r: Request =
            serde_json::from_str(r#"{"type":"resize","height":24,"width":80}"#).unwrap();
        assert_eq!(
            r,
            Request::Resize {
                height: 24,
                width: 80
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"type":"state"}"#).unwrap(),
            Request::State
        );
        assert!(serde_json::from_str::<Request>(r#"{"type":"nope"}"#).is_err());
        assert_eq!(Request::State.to_line(), "{\"type\":\"state\"}\n");
        assert_eq!(reply_line(None), b"{\"ok\":true}\n");
        assert_eq!(reply_line(Some("x")), b"{\"error\":\"x\"}\n");
    }
}
