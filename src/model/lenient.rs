//! Go's `encoding/json` rules that Docker clients rely on, as serde helpers: `null` leaves a
//! field at its zero value, a `StrSlice` takes a string or an array, and empty values are left
//! out where moby's structs say `omitempty`.

use serde::{Deserialize, Deserializer};

/// `null` (or a missing field, with `#[serde(default)]`) is the zero value, as Go decodes it.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// moby's `strslice.StrSlice`: `"sh -c x"` is `["sh -c x"]`, an array is itself, `null` is
/// unset (kept apart from `[]`, which clients use to clear an image's value).
pub fn str_slice<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

/// The value of a Go `map[string]struct{}` (`ExposedPorts`, `Volumes`): always `{}` on the
/// wire; whatever a client sends there is ignored, as Go ignores it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Empty {}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Empty {})
    }
}

/// For `skip_serializing_if`: Go's `omitempty` on the types moby marks with it.
pub fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

pub fn is_none_or_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

pub fn is_none_or_empty_map<K, V>(v: &Option<std::collections::BTreeMap<K, V>>) -> bool {
    v.as_ref().is_none_or(std::collections::BTreeMap::is_empty)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct T {
        #[serde(deserialize_with = "super::str_slice")]
        cmd: Option<Vec<String>>,
        #[serde(deserialize_with = "super::null_default")]
        n: i64,
        #[serde(deserialize_with = "super::null_default")]
        s: String,
    }

    #[test]
    fn go_decoding_rules() {
        let t: T = serde_json::from_str(r#"{"cmd": "echo hi", "n": null, "s": null}"#).unwrap();
        assert_eq!(t.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!((t.n, t.s.as_str()), (0, ""));
        let t: T = serde_json::from_str(r#"{"cmd": [], "n": 5}"#).unwrap();
        assert_eq!((t.cmd, t.n), (Some(vec![]), 5));
        let t: T = serde_json::from_str(r#"{"cmd": null}"#).unwrap();
        assert_eq!(t.cmd, None);
        assert!(serde_json::from_str::<T>(r#"{"cmd": 5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"n": "5"}"#).is_err());
    }
}
