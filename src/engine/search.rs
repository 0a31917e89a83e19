//! `docker search`: Docker's v1 search (`GET /v1/search?q=&n=`) against the index a term names
//! (Docker Hub's `index.docker.io` unless the first component is a host), with moby's filters
//! and error texts. A registry without v1 search (the CNCF registry) answers 404, which moby
//! reports as `Unexpected status code 404`.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::params::Filters;
use crate::registry::AuthConfig;
use crate::registry::client::form_encode;
use crate::registry::error as reg_error;
use crate::util::go_quote;

use super::{Engine, EngineError, ErrorKind, Result};

const INDEX_SERVER: &str = "https://index.docker.io/v1/";
const DEFAULT_LIMIT: i64 = 25;
const ACCEPTED_FILTERS: &[&str] = &["is-automated", "is-official", "stars"];

/// moby's `registry.SearchResult`, fields in its order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SearchResult {
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_automated: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// Search, filter and return results as the API sends them.
pub async fn search(
    engine: &Engine,
    filters: &Filters,
    term: &str,
    limit: i64,
    creds: AuthConfig,
) -> Result<Vec<SearchResult>> {
    filters.validate(ACCEPTED_FILTERS).map_err(invalid)?;
    // "is-automated" is deprecated: asking for automated images finds none.
    if filters
        .bool_or_default("is-automated", false)
        .map_err(invalid)?
    {
        return Ok(Vec::new());
    }
    let official = filters
        .bool_or_default("is-official", false)
        .map_err(invalid)?;
    let mut min_stars = 0;
    for s in filters.values("stars") {
        let n: i64 = s.parse().map_err(|_| {
            EngineError::invalid(format!(
                "invalid filter 'stars={s}': strconv.Atoi: parsing {}: invalid syntax",
                go_quote(s)
            ))
        })?;
        min_stars = min_stars.max(n);
    }
    let results = search_unfiltered(engine, term, limit, &creds).await?;
    Ok(results
        .into_iter()
        .filter(|r| !filters.contains("is-official") || r.is_official == official)
        .filter(|r| !filters.contains("stars") || r.star_count >= min_stars)
        .map(|mut r| {
            r.is_automated = false;
            r
        })
        .collect())
}

fn invalid(e: crate::params::ParamError) -> EngineError {
    EngineError::invalid_cause(e)
}

/// moby's `splitReposSearchTerm`: a first component with `.` or `:` (or `localhost`) is a host.
fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            let host = if host == "index.docker.io" {
                "docker.io"
            } else {
                host
            };
            (host.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), term.to_string()),
    }
}

async fn search_unfiltered(
    engine: &Engine,
    term: &str,
    limit: i64,
    creds: &AuthConfig,
) -> Result<Vec<SearchResult>> {
    if term.starts_with("http://") || term.starts_with("https://") {
        return Err(EngineError::invalid(format!(
            "invalid repository name: repository name ({term}) should not have a scheme"
        )));
    }
    let (index, mut remote) = split_term(term);
    let official = index == "docker.io";
    let insecure = !official && engine.config().registry.is_insecure(&index);
    // The registry client's TLS settings, so certs.d (private CAs, client certificates)
    // applies to search as to pull and push.
    let certs_host = if official {
        "index.docker.io"
    } else {
        index.as_str()
    };
    let client =
        crate::registry::client::http_client_for(&engine.config().registry, certs_host, insecure)
            .map_err(EngineError::internal_cause)?;
    let base = if official {
        remote = remote
            .strip_prefix("library/")
            .unwrap_or(&remote)
            .to_string();
        INDEX_SERVER.to_string()
    } else {
        endpoint(&client, &index, insecure).await?
    };
    let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
    if !(1..=100).contains(&limit) {
        return Err(EngineError::invalid(format!(
            "limit {limit} is outside the range of [1, 100]"
        )));
    }
    let url = format!("{base}search?q={}&n={limit}", form_encode(&remote));
    let mut req = client.get(&url).header("X-Docker-Token", "true");
    if !creds.username.is_empty() {
        req = req.basic_auth(&creds.username, Some(&creds.password));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| system(reg_error::transport(&Method::GET, &url, &e).to_string()))?;
    if resp.status() != StatusCode::OK {
        return Err(system(format!(
            "Unexpected status code {}",
            resp.status().as_u16()
        )));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| system(reg_error::transport(&Method::GET, &url, &e).to_string()))?;
    let parsed: SearchResults = serde_json::from_slice(&body)
        .map_err(|e| system(format!("error decoding registry search results: {e}")))?;
    Ok(parsed.results)
}

/// moby's `newV1Endpoint`: ping `https://host/v1/_ping`, and for an insecure registry fall
/// back to plain HTTP. Any HTTP answer will do (a v2-only registry's 404 too).
async fn endpoint(client: &reqwest::Client, host: &str, insecure: bool) -> Result<String> {
    let https = format!("https://{host}/v1/");
    let Err(e) = ping(client, &https).await else {
        return Ok(https);
    };
    if !insecure {
        return Err(EngineError::invalid(format!(
            "invalid registry endpoint {https}: {e}. If this private registry supports only HTTP or HTTPS with an unknown CA certificate, please add `--insecure-registry {host}` to the daemon's arguments. In the case of HTTPS, if you have access to the registry's CA certificate, no need for the flag; simply place the CA certificate at /etc/docker/certs.d/{host}/ca.crt"
        )));
    }
    let http = format!("http://{host}/v1/");
    match ping(client, &http).await {
        Ok(()) => Ok(http),
        Err(e2) => Err(EngineError::invalid(format!(
            "invalid registry endpoint {}. HTTPS attempt: {e}. HTTP attempt: {e2}",
            go_quote(&http)
        ))),
    }
}

async fn ping(
    client: &reqwest::Client,
    base: &str,
) -> std::result::Result<(), crate::registry::RegistryError> {
    let url = format!("{base}_ping");
    client
        .get(&url)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| reg_error::transport(&Method::GET, &url, &e))
}

/// A 500 (moby's `systemErr`/`errUnknown`).
fn system(message: String) -> EngineError {
    EngineError::new(ErrorKind::Internal, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_index() {
        assert_eq!(
            split_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_term("library/busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
        assert_eq!(
            split_term("127.0.0.1:5000/x"),
            ("127.0.0.1:5000".into(), "x".into())
        );
        assert_eq!(
            split_term("localhost/a/b"),
            ("localhost".into(), "a/b".into())
        );
        assert_eq!(
            split_term("index.docker.io/foo"),
            ("docker.io".into(), "foo".into())
        );
    }

    #[test]
    fn results_serialize_in_mobys_field_order() {
        let r = SearchResult {
            star_count: 3,
            is_official: true,
            name: "busybox".into(),
            is_automated: false,
            description: "d".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"star_count":3,"is_official":true,"name":"busybox","is_automated":false,"description":"d"}"#
        );
        assert_eq!(form_encode("a b/c"), "a+b%2Fc");
    }
}
