//! JSON request bodies as moby reads them (`httputils.CheckForJSON` + a JSON decoder), with
//! Go's texts for the common syntax errors so clients see Docker's messages.

use hyper::{HeaderMap, header};
use serde_json::{Map, Value};

use super::response::ApiError;

/// moby's CheckForJSON: a body needs `Content-Type: application/json` (parameters allowed).
pub fn check_content_type(headers: &HeaderMap, body_len: usize) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.is_empty() && body_len == 0 {
        return Ok(());
    }
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "unsupported Content-Type header ({ct}): must be 'application/json'"
    )))
}

/// Decode a JSON object body; empty means an empty object. `null` is an empty object too.
pub fn object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    check_content_type(headers, body.len())?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(ApiError::bad_request(format!(
            "invalid JSON: json: cannot unmarshal {} into Go value of type container.Config",
            go_kind(&other)
        ))),
        Err(e) => Err(ApiError::bad_request(format!(
            "invalid JSON: {}",
            go_message(body, &e)
        ))),
    }
}

/// Decode a JSON object body into one of the model's types, with Go's texts for wrong types.
pub fn typed<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &[u8],
    section: &str,
) -> Result<T, ApiError> {
    let m = object(headers, body)?;
    crate::model::create::decode(section, Value::Object(m))
        .map_err(|e| ApiError::bad_request(e.message))
}

/// Go's decoder refuses a number that does not fit the field's integer type; without that
/// check a `1e30` would be stored and break every client that reads it back.
const CREATE_INTEGERS: &[(&str, &[&str])] = &[
    ("Config", &["StopTimeout"]),
    (
        "HostConfig",
        &[
            "Memory",
            "MemorySwap",
            "MemoryReservation",
            "KernelMemory",
            "KernelMemoryTCP",
            "MemorySwappiness",
            "NanoCpus",
            "CpuShares",
            "CpuPeriod",
            "CpuQuota",
            "CpuRealtimePeriod",
            "CpuRealtimeRuntime",
            "CpuCount",
            "CpuPercent",
            "PidsLimit",
            "ShmSize",
            "OomScoreAdj",
            "BlkioWeight",
            "IOMaximumIOps",
            "IOMaximumBandwidth",
        ],
    ),
];

/// `POST /containers/create`'s integer fields (top level is Config; HostConfig inside).
pub fn check_create_integers(body: &Map<String, Value>) -> Result<(), ApiError> {
    for (section, fields) in CREATE_INTEGERS {
        let m = if *section == "Config" {
            Some(body)
        } else {
            body.get(*section).and_then(Value::as_object)
        };
        let Some(m) = m else { continue };
        for f in *fields {
            match m.get(*f) {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) if n.as_i64().is_some() => {}
                Some(v) => {
                    let shown = match v {
                        Value::Number(n) => format!("number {}", go_number(n)),
                        other => go_kind(other).to_string(),
                    };
                    return Err(ApiError::bad_request(format!(
                        "json: cannot unmarshal {shown} into Go struct field {section}.{f} of type int64"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A JSON number as Go's error shows it (`1e+30`, `1.5`).
fn go_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.as_u64().is_none() && f.abs() >= 1e21 => {
            let s = format!("{f:e}");
            match s.split_once('e') {
                Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
                _ => s,
            }
        }
        _ => n.to_string(),
    }
}

fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "object",
    }
}

/// The byte at serde's (1-based) line and column.
fn byte_at(body: &[u8], line: usize, column: usize) -> Option<u8> {
    let mut l = 1;
    let mut start = 0;
    for (i, b) in body.iter().enumerate() {
        if l == line {
            start = i;
            break;
        }
        if *b == b'\n' {
            l += 1;
        }
    }
    body.get(start + column.saturating_sub(1)).copied()
}

/// Go's `encoding/json` text for a serde syntax error.
fn go_message(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected EOF".into();
    }
    let text = e.to_string();
    let context = if text.starts_with("key must be a string") {
        "looking for beginning of object key string"
    } else if text.starts_with("expected value") || text.starts_with("expected ident") {
        "looking for beginning of value"
    } else if text.starts_with("expected `:`") {
        "after object key"
    } else if text.starts_with("expected `,` or `}`") {
        "after object key:value pair"
    } else if text.starts_with("expected `,` or `]`") {
        "after array element"
    } else if text.starts_with("trailing characters") {
        return "unexpected content after JSON".into();
    } else {
        return text;
    };
    match byte_at(body, e.line(), e.column()) {
        Some(c) => format!("invalid character {} {context}", go_quote(c)),
        None => "unexpected EOF".into(),
    }
}

/// Go's `quoteChar`.
fn go_quote(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        0x20..=0x7e => format!("'{}'", c as char),
        b'\n' => "'\\n'".into(),
        b'\t' => "'\\t'".into(),
        b'\r' => "'\\r'".into(),
        _ => format!("'\\x{c:02x}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h
    }

    #[test]
    fn go_texts_for_syntax_errors() {
        let e = object(&json_headers(), b"{bad json").unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: invalid character 'b' looking for beginning of object key string"
        );
        let e = object(&json_headers(), b"{\"a\":}").unwrap_err();
        assert_eq!(
            e.message,
            "invalid JSON: invalid character '}' looking for beginning of value"
        );
        let e = object(&json_headers(), b"{\"a\":1").unwrap_err();
        assert_eq!(e.message, "invalid JSON: unexpected EOF");
        assert!(object(&json_headers(), b"").unwrap().is_empty());
    }

    #[test]
    fn content_type_is_checked() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            object(&h, b"{}").unwrap_err().message,
            "unsupported Content-Type header (text/plain): must be 'application/json'"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(object(&h, b"{}").is_ok());
    }
}
