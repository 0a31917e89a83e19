//! `openapi/berth.yaml` must describe exactly the routes berth serves: the same (method, path)
//! pairs as `berth::api::routes::ROUTES`. Regenerate it with `python3 openapi/generate.py`.
//!
//! No YAML crate is available, so this scans lines: the top-level `paths:` key, path keys at two
//! spaces (`  /x:`, maybe quoted) and method keys at four (`    get:`) until the next top-level key.

use std::collections::BTreeSet;

use berth::api::routes::ROUTES;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The key of a `key:` line indented by exactly `indent` spaces, unquoted.
fn key_at(line: &str, indent: usize) -> Option<&str> {
    let rest = line.strip_prefix(&" ".repeat(indent))?;
    if rest.starts_with(' ') || rest.starts_with('#') || rest.starts_with('-') {
        return None;
    }
    let rest = rest.trim_end();
    let key = match rest.strip_suffix(':') {
        Some(k) => k,
        None => rest.split_once(": ")?.0,
    };
    let unquoted = ['\'', '"']
        .iter()
        .find_map(|q| key.strip_prefix(*q).and_then(|k| k.strip_suffix(*q)));
    Some(unquoted.unwrap_or(key))
}

fn spec_routes(yaml: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in yaml.lines() {
        let top_level = !line.is_empty() && !line.starts_with(' ') && !line.starts_with('#');
        if top_level {
            in_paths = line.trim_end() == "paths:";
            path = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = key_at(line, 2) {
            path = p.starts_with('/').then(|| p.to_string());
        } else if let (Some(m), Some(p)) = (key_at(line, 4), &path)
            && METHODS.contains(&m)
        {
            out.insert((m.to_ascii_uppercase(), p.clone()));
        }
    }
    out
}

#[test]
fn openapi_paths_match_routes() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/berth.yaml");
    let yaml = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    let documented = spec_routes(&yaml);
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(served.len(), ROUTES.len(), "ROUTES has duplicate entries");

    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    let mut msg = String::new();
    for (m, p) in &missing {
        msg += &format!("  served but not in berth.yaml: {m} {p}\n");
    }
    for (m, p) in &extra {
        msg += &format!("  in berth.yaml but not served: {m} {p}\n");
    }
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi/berth.yaml and berth::api::routes::ROUTES differ \
         (run `python3 openapi/generate.py`):\n{msg}"
    );
}

#[test]
fn scanner_reads_quoted_and_plain_keys() {
    let yaml = "openapi: 3.0.3\npaths:\n  /_ping:\n    get:\n      summary: x\n    head:\n      \
                responses: {}\n  '/images/{name}':\n    parameters: []\n    delete:\n      \
                summary: y\n  \"/a\":\n    post: {}\ncomponents:\n  /nope:\n    get: {}\n";
    let got: Vec<_> = spec_routes(yaml).into_iter().collect();
    let want: Vec<(String, String)> = [
        ("DELETE", "/images/{name}"),
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("POST", "/a"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(got, want);
}
