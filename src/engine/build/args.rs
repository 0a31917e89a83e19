//! Build arguments as moby's `BuildArgs` keeps them: the request's values, the ARGs before
//! the first FROM (meta args), and per stage the ARGs declared so far.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Proxy variables usable without an ARG, never warned about, left out of the history.
pub const BUILTIN: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    /// From the request (`None`: named without a value).
    pub options: BTreeMap<String, Option<String>>,
    /// Meta args (before the first FROM) with their values.
    pub meta: BTreeMap<String, Option<String>>,
    /// Declared in the current stage, with their Dockerfile defaults.
    pub allowed: BTreeMap<String, Option<String>>,
    /// Every name some ARG declared (for the "not consumed" warning).
    pub referenced: BTreeSet<String>,
}

impl BuildArgs {
    pub fn new(options: BTreeMap<String, Option<String>>) -> BuildArgs {
        BuildArgs {
            options,
            ..Default::default()
        }
    }

    /// `getBuildArg`: the request's value, else the ARG default, else the meta value.
    fn value(&self, key: &str, default: &Option<String>) -> Option<String> {
        if let Some(Some(v)) = self.options.get(key) {
            return Some(v.clone());
        }
        if default.is_some() {
            return default.clone();
        }
        self.meta.get(key).cloned().flatten()
    }

    /// Declare an ARG in the stage (or before FROM with `meta`).
    pub fn declare(&mut self, key: &str, default: Option<String>, meta: bool) {
        self.referenced.insert(key.to_string());
        if meta {
            let v = self.value(key, &default);
            self.meta.insert(key.to_string(), v);
        } else {
            self.allowed.insert(key.to_string(), default);
        }
    }

    /// A new stage starts with no declared args.
    pub fn reset(&mut self) {
        self.allowed.clear();
    }

    /// Values for expansion in the stage: declared args plus the builtin proxies given.
    pub fn expansion_env(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for (k, d) in &self.allowed {
            if let Some(v) = self.value(k, d) {
                m.insert(k.clone(), v);
            }
        }
        for b in BUILTIN {
            if let Some(Some(v)) = self.options.get(*b) {
                m.entry(b.to_string()).or_insert_with(|| v.clone());
            }
        }
        m
    }

    /// Meta args' values, for FROM.
    pub fn meta_env(&self) -> HashMap<String, String> {
        self.meta
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// `K=V` of the args a RUN sees that ENV does not shadow, and the sorted `|N …` prefix
    /// of its history entry (undeclared proxies left out of the prefix).
    pub fn for_run(&self, env_keys: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
        let env = self.expansion_env();
        let mut all: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| !env_keys.contains(k))
            .collect();
        all.sort();
        let kv: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let prefix: Vec<String> = all
            .iter()
            .filter(|(k, _)| self.allowed.contains_key(k) || !BUILTIN.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (kv, prefix)
    }

    /// Request args no ARG declared (the builtin proxies excepted), sorted.
    pub fn unused(&self) -> Vec<String> {
        self.options
            .keys()
            .filter(|k| !self.referenced.contains(*k) && !BUILTIN.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_prefix() {
        let mut opts = BTreeMap::new();
        opts.insert("A".to_string(), Some("from-request".to_string()));
        opts.insert("HTTP_PROXY".to_string(), Some("p".to_string()));
        opts.insert("UNUSED".to_string(), None);
        let mut a = BuildArgs::new(opts);
        a.declare("V", Some("meta".into()), true);
        a.reset();
        a.declare("A", Some("default".into()), false);
        a.declare("V", None, false);
        a.declare("B", Some("bee".into()), false);
        let env = a.expansion_env();
        assert_eq!(env["A"], "from-request");
        assert_eq!(env["V"], "meta");
        assert_eq!(env["HTTP_PROXY"], "p");
        let (kv, prefix) = a.for_run(&["B".to_string()].into_iter().collect());
        assert_eq!(kv, vec!["A=from-request", "HTTP_PROXY=p", "V=meta"]);
        assert_eq!(prefix, vec!["A=from-request", "V=meta"]);
        assert_eq!(a.unused(), vec!["UNUSED"]);
    }
}
