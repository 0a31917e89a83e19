//! The body of `POST /containers/create`: `Config` at the top level, with `HostConfig` and
//! `NetworkingConfig` beside its fields (moby's `CreateRequest`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Config, HostConfig, NetworkingConfig, Resources};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    pub config: Config,
    pub host_config: HostConfig,
    pub networking_config: NetworkingConfig,
}

/// A field of the wrong JSON type, with the text Go's decoder gives
/// (`json: cannot unmarshal string into Go struct field HostConfig.Memory of type int64`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub message: String,
}

impl CreateRequest {
    pub fn from_body(mut body: Map<String, Value>) -> Result<CreateRequest, DecodeError> {
        let host_config = body.remove("HostConfig").unwrap_or(Value::Null);
        let networking = body.remove("NetworkingConfig").unwrap_or(Value::Null);
        // The embedded Resources are flattened into HostConfig, where serde loses the field
        // path: decoding them alone first names the field in the error.
        decode::<Resources>("HostConfig", host_config.clone())?;
        Ok(CreateRequest {
            host_config: decode("HostConfig", host_config)?,
            networking_config: decode("NetworkingConfig", networking)?,
            config: decode("Config", Value::Object(body))?,
        })
    }
}

/// Decode one section; `null` is the zero value.
pub fn decode<T: DeserializeOwned + Default>(section: &str, v: Value) -> Result<T, DecodeError> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(&v).map_err(|e| {
        // Go names the struct field, not the element: `HostConfig.Binds`, not `Binds[0]`.
        let path = field_path(e.path());
        let field = if path.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{path}")
        };
        let kind = value_at(&v, e.path()).map(go_kind).unwrap_or("value");
        let message = match go_type(&e.inner().to_string()) {
            Some(t) => {
                format!("json: cannot unmarshal {kind} into Go struct field {field} of type {t}")
            }
            None => format!(
                "json: cannot unmarshal {kind} into Go struct field {field}: {}",
                e.inner()
            ),
        };
        DecodeError { message }
    })
}

fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let names: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    names.join(".")
}

fn value_at<'a>(v: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    use serde_path_to_error::Segment;
    let mut cur = v;
    for seg in path.iter() {
        cur = match seg {
            Segment::Map { key } => cur.get(key)?,
            Segment::Seq { index } => cur.get(index)?,
            Segment::Enum { .. } | Segment::Unknown => return Some(cur),
        };
    }
    Some(cur)
}

/// Go's name for a JSON value's kind.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The Go type serde expected, from its "expected …" text.
fn go_type(serde_text: &str) -> Option<&'static str> {
    let expected = serde_text.rsplit_once("expected ")?.1;
    Some(
        match expected.trim_end_matches(|c: char| !c.is_alphanumeric()) {
            "i64" => "int64",
            "u64" => "uint64",
            "u32" => "uint32",
            "u16" => "uint16",
            "a boolean" => "bool",
            "a string" => "string",
            "a sequence" => "[]string",
            "a map" => "map[string]string",
            _ => return None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn sections_are_split() {
        let r = CreateRequest::from_body(body(json!({
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"Privileged": true, "Memory": 5},
            "NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["a"]}}}
        })))
        .unwrap();
        assert_eq!(r.config.image, "busybox");
        assert!(r.host_config.privileged);
        assert_eq!(r.host_config.resources.memory, 5);
        let eps = r.networking_config.endpoints_config.unwrap();
        assert_eq!(
            eps["app"].as_ref().unwrap().aliases.as_ref().unwrap()[0],
            "a"
        );
        // docker-py leaves HostConfig out entirely.
        let r = CreateRequest::from_body(body(json!({"Image": "x"}))).unwrap();
        assert_eq!(r.host_config, HostConfig::default());
    }

    #[test]
    fn wrong_types_get_gos_text() {
        let e = CreateRequest::from_body(body(
            json!({"Image": "x", "HostConfig": {"Privileged": "yes"}}),
        ))
        .unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal string into Go struct field HostConfig.Privileged of type bool"
        );
        let e = CreateRequest::from_body(body(json!({"Image": "x", "Env": "A=1"}))).unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal string into Go struct field Config.Env of type []string"
        );
        let e = CreateRequest::from_body(body(json!({"Image": "x", "HostConfig": {"Binds": [5]}})))
            .unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal number into Go struct field HostConfig.Binds of type string"
        );
        let e = CreateRequest::from_body(body(
            json!({"Image": "x", "HostConfig": {"BlkioWeight": 70000}}),
        ))
        .unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal number into Go struct field HostConfig.BlkioWeight of type uint16"
        );
        let e = CreateRequest::from_body(body(json!({"Image": 5}))).unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal number into Go struct field Config.Image of type string"
        );
    }
}
