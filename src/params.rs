//! Query-string conventions of the Docker Engine API: Go `url.ParseQuery` decoding,
//! `httputils.BoolValue`, integer parameters and the `filters` JSON (moby
//! `api/types/filters`), with Docker's error texts. Every error here is a client error (400).

use crate::util::go_quote;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Errors with Docker's texts; all map to HTTP 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ParamError {
    /// moby `filters.invalidFilter`: `invalid filter`, `invalid filter 'k'`, `invalid filter 'k=[a b]'`.
    #[error("{}", invalid_filter_text(.filter, .values))]
    Filter {
        filter: Option<String>,
        values: Option<Vec<String>>,
    },
    /// Go `strconv.Atoi` error text for an integer parameter.
    #[error("strconv.Atoi: parsing {}: {}", go_quote(.value), if *.out_of_range { "value out of range" } else { "invalid syntax" })]
    Int { value: String, out_of_range: bool },
    /// Go `url.ParseQuery` errors (`invalid semicolon separator in query`, `invalid URL escape "%zz"`).
    #[error("{0}")]
    Query(String),
}

fn invalid_filter_text(filter: &Option<String>, values: &Option<Vec<String>>) -> String {
    let mut msg = String::from("invalid filter");
    if let Some(f) = filter.as_deref().filter(|f| !f.is_empty()) {
        msg.push_str(" '");
        msg.push_str(f);
        if let Some(v) = values {
            // Go formats a []string with %s as "[a b]".
            msg.push_str(&format!("=[{}]", v.join(" ")));
        }
        msg.push('\'');
    }
    msg
}

/// Docker's `httputils.BoolValue`: trimmed, lower-cased; `""`, `0`, `no`, `false`, `none` are
/// false and anything else (`1`, `True`, `yes`, `x`) is true.
pub fn bool_value(s: &str) -> bool {
    !matches!(
        s.trim().to_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go `url.QueryUnescape`: `+` is a space, `%XX` a byte. `strict` reports bad escapes the way
/// Go does; otherwise they are kept literally.
fn unescape(s: &str, strict: bool) -> Result<String, ParamError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let pair = (
                    b.get(i + 1).and_then(|&x| hex_val(x)),
                    b.get(i + 2).and_then(|&x| hex_val(x)),
                );
                if let (Some(h), Some(l)) = pair {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                if strict {
                    let end = (i + 3).min(b.len());
                    let bad = String::from_utf8_lossy(&b[i..end]);
                    return Err(ParamError::Query(format!(
                        "invalid URL escape {}",
                        go_quote(&bad)
                    )));
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn parse_pairs(q: &str, strict: bool) -> Result<Vec<(String, String)>, ParamError> {
    let mut out = Vec::new();
    for part in q.split('&') {
        if part.contains(';') {
            // Go (since 1.17) refuses ';' separators.
            if strict {
                return Err(ParamError::Query(
                    "invalid semicolon separator in query".into(),
                ));
            }
            continue;
        }
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((unescape(k, strict)?, unescape(v, strict)?));
    }
    Ok(out)
}

/// Parses a raw query string into ordered pairs, percent-decoding (`+` is a space) and keeping
/// repeated keys. Lenient: bad escapes stay literal and `;`-containing pairs are dropped.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    parse_pairs(q, false).unwrap_or_default()
}

/// Decoded query parameters in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Lenient parse (see [`parse_query`]); `None` is an empty query.
    pub fn parse(q: Option<&str>) -> Query {
        Query(q.map(parse_query).unwrap_or_default())
    }

    /// Like Go's `r.ParseForm()` as dockerd calls it: bad escapes and `;` are 400 errors.
    pub fn parse_strict(q: Option<&str>) -> Result<Query, ParamError> {
        Ok(Query(match q {
            Some(q) => parse_pairs(q, true)?,
            None => Vec::new(),
        }))
    }

    /// A query made of these pairs (handlers that rename a client's parameters).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Query {
        Query(pairs)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// First value of `k` (Go `Form.Get`).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `k` in order (repeated `t=`, `names=`, `changes=`…).
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `httputils.BoolValueOrDefault`: absent ⇒ `default`, present (even empty) ⇒ [`bool_value`].
    pub fn bool(&self, k: &str, default: bool) -> bool {
        match self.get(k) {
            Some(v) => bool_value(v),
            None => default,
        }
    }

    /// Integer parameter: absent or empty ⇒ `None` (as `Int64ValueOrDefault`), else parsed.
    pub fn int<T: FromStr>(&self, k: &str) -> Result<Option<T>, ParamError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| {
                let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
                ParamError::Int {
                    value: v.to_string(),
                    out_of_range: !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                }
            }),
        }
    }
}

/// Docker's filter arguments: key → set of values. Values carry the boolean of the current
/// wire form (`{"k":{"v":true}}`); the legacy form (`{"k":["v"]}`) sets them all true.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: Vec<(String, Vec<(String, bool)>)>,
}

impl Filters {
    /// moby `filters.FromJSON`; `None`, `""` and `null` are no filters; bad input ⇒ `invalid filter`.
    pub fn parse(s: Option<&str>) -> Result<Filters, ParamError> {
        let invalid = || ParamError::Filter {
            filter: None,
            values: None,
        };
        let s = match s {
            None | Some("") => return Ok(Filters::default()),
            Some(s) => s,
        };
        let v: serde_json::Value = serde_json::from_str(s).map_err(|_| invalid())?;
        let obj = match v {
            serde_json::Value::Null => return Ok(Filters::default()),
            serde_json::Value::Object(o) => o,
            _ => return Err(invalid()),
        };
        Self::from_current(&obj)
            .or_else(|| Self::from_legacy(&obj))
            .ok_or_else(invalid)
    }

    /// `map[string]map[string]bool`; JSON null decodes to an empty set / false like Go.
    fn from_current(obj: &serde_json::Map<String, serde_json::Value>) -> Option<Filters> {
        let mut f = Filters::default();
        for (k, v) in obj {
            let mut vals = Vec::new();
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::Object(m) => {
                    for (val, b) in m {
                        let b = match b {
                            serde_json::Value::Bool(b) => *b,
                            serde_json::Value::Null => false,
                            _ => return None,
                        };
                        vals.push((val.clone(), b));
                    }
                }
                _ => return None,
            }
            f.fields.push((k.clone(), vals));
        }
        Some(f)
    }

    /// Legacy `map[string][]string` (docker-py sends it).
    fn from_legacy(obj: &serde_json::Map<String, serde_json::Value>) -> Option<Filters> {
        let mut f = Filters::default();
        for (k, v) in obj {
            let mut vals: Vec<(String, bool)> = Vec::new();
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::Array(a) => {
                    for item in a {
                        let s = match item {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            _ => return None,
                        };
                        if !vals.iter().any(|(x, _)| *x == s) {
                            vals.push((s, true));
                        }
                    }
                }
                _ => return None,
            }
            f.fields.push((k.clone(), vals));
        }
        Some(f)
    }

    fn field(&self, key: &str) -> Option<&Vec<(String, bool)>> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// moby `Args.Validate`: every key must be accepted, else `invalid filter 'k'`.
    pub fn validate(&self, accepted: &[&str]) -> Result<(), ParamError> {
        match self
            .fields
            .iter()
            .find(|(k, _)| !accepted.contains(&k.as_str()))
        {
            Some((k, _)) => Err(ParamError::Filter {
                filter: Some(k.clone()),
                values: None,
            }),
            None => Ok(()),
        }
    }

    /// All values of `key` (moby `Args.Get`, whatever their boolean).
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.field(key)
            .map(|v| v.iter().map(|(s, _)| s.as_str()).collect())
            .unwrap_or_default()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.field(key).is_some()
    }

    /// moby `Args.GetBoolOrDefault`: absent ⇒ default; the values must say exactly one of
    /// true (`1`/`true`) or false (`0`/`false`), else `invalid filter 'k=[v…]'`.
    pub fn bool_or_default(&self, key: &str, default: bool) -> Result<bool, ParamError> {
        let Some(vals) = self.field(key) else {
            return Ok(default);
        };
        if vals.is_empty() {
            return Err(ParamError::Filter {
                filter: Some(key.to_string()),
                values: None,
            });
        }
        let set = |name: &str| vals.iter().any(|(v, b)| *b && v == name);
        let is_false = set("0") || set("false");
        let is_true = set("1") || set("true");
        if is_false == is_true {
            return Err(ParamError::Filter {
                filter: Some(key.to_string()),
                values: Some(vals.iter().map(|(v, _)| v.clone()).collect()),
            });
        }
        Ok(is_true)
    }

    /// A boolean filter that may be absent (`dangling`): `None` when not given.
    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        if self.contains(key) {
            self.bool_or_default(key, false).map(Some)
        } else {
            Ok(None)
        }
    }

    /// moby `Args.MatchKVList` (the `label` filter): no values ⇒ true; each value `k` or
    /// `k=v` must be present in `labels`. (`label!` is a separate key handled by callers.)
    pub fn match_kv(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        let vals = match self.field(key) {
            Some(v) if !v.is_empty() => v,
            _ => return true,
        };
        if labels.is_empty() {
            return false;
        }
        vals.iter().all(|(value, _)| {
            let (k, want) = match value.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (value.as_str(), None),
            };
            match (labels.get(k), want) {
                (None, _) => false,
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
            }
        })
    }

    /// The `label!` filter: does any of its values (`k` or `k=v`) match `labels`?
    pub fn match_kv_any_negated(&self, labels: &BTreeMap<String, String>) -> bool {
        self.values("label!").iter().any(|value| {
            let (k, want) = match value.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (*value, None),
            };
            match (labels.get(k), want) {
                (None, _) => false,
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
            }
        })
    }

    /// No filter keys at all (moby `Args.Len() == 0`).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools() {
        for f in [
            "", "0", "no", "false", "none", " FALSE ", "No", "NONE", "\t0\n",
        ] {
            assert!(!bool_value(f), "{f:?}");
        }
        for t in ["1", "true", "True", "yes", "x", "2", "on", "-1"] {
            assert!(bool_value(t), "{t:?}");
        }
        let q = Query::parse(Some("a=&b=True&c=0&d"));
        assert!(!q.bool("a", true));
        assert!(q.bool("b", false));
        assert!(!q.bool("c", true));
        assert!(!q.bool("d", true));
        assert!(q.bool("missing", true));
        assert!(!q.bool("missing", false));
    }

    #[test]
    fn query_decoding() {
        let pairs = parse_query("t=a%3Ab&t=c+d&x=%zz&&=v&k&changes=CMD%20%5B%22sh%22%5D");
        assert_eq!(
            pairs,
            vec![
                ("t".into(), "a:b".into()),
                ("t".into(), "c d".into()),
                ("x".into(), "%zz".into()),
                ("".into(), "v".into()),
                ("k".into(), "".into()),
                ("changes".into(), "CMD [\"sh\"]".into()),
            ]
        );
        let q = Query::parse(Some("t=a&t=b&n=5"));
        assert_eq!(q.get("t"), Some("a"));
        assert_eq!(q.all("t"), vec!["a", "b"]);
        assert_eq!(q.get("zz"), None);
        assert_eq!(Query::parse(None), Query::default());
        assert_eq!(
            Query::parse_strict(Some("a=%zz")).unwrap_err().to_string(),
            "invalid URL escape \"%zz\""
        );
        assert_eq!(
            Query::parse_strict(Some("a=%4")).unwrap_err().to_string(),
            "invalid URL escape \"%4\""
        );
        assert_eq!(
            Query::parse_strict(Some("a=1;b=2"))
                .unwrap_err()
                .to_string(),
            "invalid semicolon separator in query"
        );
        assert_eq!(parse_query("a=1;b=2&c=3"), vec![("c".into(), "3".into())]);
        assert_eq!(parse_query("a=%ff"), vec![("a".into(), "\u{FFFD}".into())]);
    }

    #[test]
    fn ints() {
        let q = Query::parse(Some("n=5&e=&bad=x&big=99999999999&neg=-3&plus=%2B4"));
        assert_eq!(q.int::<i64>("n"), Ok(Some(5)));
        assert_eq!(q.int::<i64>("e"), Ok(None));
        assert_eq!(q.int::<i64>("absent"), Ok(None));
        assert_eq!(q.int::<i64>("neg"), Ok(Some(-3)));
        assert_eq!(q.int::<i64>("plus"), Ok(Some(4)));
        assert_eq!(
            q.int::<i64>("bad").unwrap_err().to_string(),
            "strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            q.int::<i32>("big").unwrap_err().to_string(),
            "strconv.Atoi: parsing \"99999999999\": value out of range"
        );
        assert!(q.int::<u32>("neg").is_err());
    }

    #[test]
    fn filters_forms() {
        let f = Filters::parse(Some(
            r#"{"status":{"running":true,"paused":true},"label":{"a=b":true}}"#,
        ))
        .unwrap();
        assert_eq!(f.values("status"), vec!["running", "paused"]);
        assert!(f.contains("label"));
        assert!(!f.contains("name"));
        let legacy = Filters::parse(Some(r#"{"name":["foo","bar"],"dangling":["true"]}"#)).unwrap();
        assert_eq!(legacy.values("name"), vec!["foo", "bar"]);
        assert_eq!(legacy.bool_or_default("dangling", false), Ok(true));
        assert!(Filters::parse(None).unwrap().is_empty());
        assert!(Filters::parse(Some("")).unwrap().is_empty());
        assert!(Filters::parse(Some("null")).unwrap().is_empty());
        assert!(Filters::parse(Some("{}")).unwrap().is_empty());
        for bad in [
            "{",
            "[]",
            "\"x\"",
            r#"{"a":"b"}"#,
            r#"{"a":{"x":true},"b":["y"]}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{"x":1}}"#,
        ] {
            assert_eq!(
                Filters::parse(Some(bad)).unwrap_err().to_string(),
                "invalid filter",
                "{bad}"
            );
        }
        let n = Filters::parse(Some(r#"{"a":null}"#)).unwrap();
        assert!(n.contains("a"));
        assert!(n.values("a").is_empty());
    }

    #[test]
    fn filters_validate_and_bools() {
        let f = Filters::parse(Some(r#"{"dangling":{"xyz":true},"foo":{"1":true}}"#)).unwrap();
        assert_eq!(
            f.validate(&["dangling", "label"]).unwrap_err().to_string(),
            "invalid filter 'foo'"
        );
        assert!(f.validate(&["dangling", "foo"]).is_ok());
        assert_eq!(
            f.bool_or_default("dangling", false)
                .unwrap_err()
                .to_string(),
            "invalid filter 'dangling=[xyz]'"
        );
        assert_eq!(f.bool_or_default("foo", false), Ok(true));
        assert_eq!(f.bool_or_default("absent", true), Ok(true));
        let both = Filters::parse(Some(r#"{"dangling":["true","false"]}"#)).unwrap();
        assert_eq!(
            both.bool_or_default("dangling", false)
                .unwrap_err()
                .to_string(),
            "invalid filter 'dangling=[true false]'"
        );
        let f0 = Filters::parse(Some(r#"{"dangling":{"0":true}}"#)).unwrap();
        assert_eq!(f0.bool_or_default("dangling", true), Ok(false));
        let empty = Filters::parse(Some(r#"{"dangling":{}}"#)).unwrap();
        assert_eq!(
            empty
                .bool_or_default("dangling", true)
                .unwrap_err()
                .to_string(),
            "invalid filter 'dangling'"
        );
        // A value sent as false does not count (Go reads the map's bool).
        let off = Filters::parse(Some(r#"{"dangling":{"true":false}}"#)).unwrap();
        assert!(off.bool_or_default("dangling", true).is_err());
    }

    #[test]
    fn label_matching() {
        let labels: BTreeMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "".to_string()),
        ]
        .into();
        let f = |s: &str| Filters::parse(Some(s)).unwrap();
        assert!(f(r#"{"label":["a"]}"#).match_kv("label", &labels));
        assert!(f(r#"{"label":["a=1","b"]}"#).match_kv("label", &labels));
        assert!(f(r#"{"label":["b="]}"#).match_kv("label", &labels));
        assert!(!f(r#"{"label":["a=2"]}"#).match_kv("label", &labels));
        assert!(!f(r#"{"label":["c"]}"#).match_kv("label", &labels));
        assert!(!f(r#"{"label":["a","c"]}"#).match_kv("label", &labels));
        assert!(f(r#"{"other":["x"]}"#).match_kv("label", &labels));
        assert!(!f(r#"{"label":["a"]}"#).match_kv("label", &BTreeMap::new()));
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for s in [
            "%",
            "%%",
            "%e",
            "&&&",
            "==",
            "=",
            "a=b=c",
            "é=%C3%A9",
            "+",
            ";",
            "%00",
            "a%2",
            "\u{0}",
        ] {
            let _ = parse_query(s);
            let _ = Query::parse_strict(Some(s));
            let q = Query::parse(Some(s));
            let _ = q.int::<u8>("a");
            let _ = Filters::parse(Some(s));
        }
        assert_eq!(parse_query("é=%C3%A9"), vec![("é".into(), "é".into())]);
    }

    use crate::util::fuzz_strings;

    #[test]
    fn fuzz_no_panic() {
        let alpha = [
            "a", "=", "&", ";", "%", "2", "f", "+", "é", "{", "}", "[", "]", "\"", ":", ",",
            "true", "null", " ",
        ];
        for s in fuzz_strings(&alpha, 4000) {
            let q = Query::parse(Some(&s));
            let _ = Query::parse_strict(Some(&s));
            let _ = q.int::<i64>("a");
            let _ = q.bool("a", true);
            if let Ok(f) = Filters::parse(Some(&s)) {
                let _ = f.bool_or_default("a", false);
                let _ = f.validate(&["a"]);
                let _ = f.match_kv("a", &BTreeMap::new());
            }
        }
    }
}
