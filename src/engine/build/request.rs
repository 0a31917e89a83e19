//! `POST /build` query parameters, read and checked as moby's `newImageBuildOptions` does;
//! what berth cannot honour is refused here, before the context is read.

use std::collections::BTreeMap;

use crate::engine::{EngineError, ErrorKind, Result};
use crate::image::reference::{self, Reference};
use crate::params::Query;

/// One build's options.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    /// `null` values are "mentioned without a value".
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: String,
    pub nocache: bool,
    pub pull: bool,
    pub rm: bool,
    pub forcerm: bool,
    pub quiet: bool,
    pub cache_from: Vec<String>,
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    pub shm_size: i64,
    pub memory: i64,
    pub memswap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// `X-Registry-Config`: registry → credentials, for pulls of FROM images.
    pub registry_config: String,
}

fn json_param<T: serde::de::DeserializeOwned + Default>(
    q: &Query,
    key: &str,
    what: &str,
) -> Result<T> {
    match q.get(key) {
        None | Some("") => Ok(T::default()),
        Some(raw) => serde_json::from_str(raw)
            .map_err(|e| EngineError::invalid(format!("error reading {what}: {e}"))),
    }
}

/// Go's `strconv.ParseInt` as moby reads the resource numbers: anything invalid is 0.
fn int_param(q: &Query, key: &str) -> i64 {
    q.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn not_supported(what: &str) -> EngineError {
    EngineError::new(
        ErrorKind::NotImplemented,
        format!("berth's builder does not support {what} yet"),
    )
}

impl BuildRequest {
    pub fn from_query(q: &Query, registry_config: Option<&str>) -> Result<BuildRequest> {
        if let Some(v) = q.get("version")
            && !v.is_empty()
            && v != "1"
        {
            if v == "2" {
                return Err(not_supported(
                    "BuildKit (version=2); use the legacy builder (DOCKER_BUILDKIT=0)",
                ));
            }
            return Err(EngineError::invalid(format!("invalid version \"{v}\"")));
        }
        if q.bool("squash", false) {
            return Err(EngineError::invalid(
                "squash is only supported with experimental mode",
            ));
        }
        if !q.all("securityopt").is_empty() {
            return Err(EngineError::invalid(
                "security options are not supported on linux",
            ));
        }
        if let Some(i) = q.get("isolation")
            && !i.is_empty()
            && !i.eq_ignore_ascii_case("default")
        {
            return Err(EngineError::invalid(format!(
                "unsupported isolation: \"{i}\""
            )));
        }
        if let Some(r) = q.get("remote").filter(|r| !r.is_empty()) {
            if r == "client-session" {
                return Err(EngineError::invalid(
                    "experimental session with v1 builder is no longer supported, use builder version v2 (BuildKit) instead",
                ));
            }
            return Err(not_supported("remote build contexts (remote=)"));
        }
        let ulimits: Vec<serde_json::Value> = json_param(q, "ulimits", "ulimit settings")?;
        if !ulimits.is_empty() {
            return Err(not_supported("ulimits for RUN"));
        }
        if q.get("cgroupparent").is_some_and(|c| !c.is_empty()) {
            return Err(not_supported("cgroupparent for RUN"));
        }
        let outputs: Vec<serde_json::Value> = json_param(q, "outputs", "outputs")?;
        if !outputs.is_empty() {
            return Err(not_supported("build outputs"));
        }
        if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
            let want = format!("linux/{}", crate::engine::images::import::arch());
            let norm = p.to_ascii_lowercase();
            if norm != want && norm != "linux" {
                return Err(not_supported(&format!(
                    "building for platform {p} (only {want})"
                )));
            }
        }
        let shm_size = match q.get("shmsize").filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s.parse::<i64>().map_err(|_| {
                EngineError::internal(format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"))
            })?,
        };
        let mut tags: Vec<Reference> = Vec::new();
        for t in q.all("t") {
            if t.is_empty() {
                continue;
            }
            let r = reference::parse_normalized(t)?;
            if r.digest().is_some() {
                return Err(EngineError::invalid("build tag cannot contain a digest"));
            }
            let r = r.with_default_tag();
            if !tags.iter().any(|x| x.full() == r.full()) {
                tags.push(r);
            }
        }
        let forcerm = q.bool("forcerm", false);
        Ok(BuildRequest {
            dockerfile: q
                .get("dockerfile")
                .filter(|d| !d.is_empty())
                .unwrap_or("Dockerfile")
                .to_string(),
            tags,
            build_args: json_param(q, "buildargs", "build args")?,
            labels: json_param(q, "labels", "labels")?,
            target: q.get("target").unwrap_or("").to_string(),
            nocache: q.bool("nocache", false),
            pull: q.bool("pull", false),
            rm: forcerm || q.bool("rm", true),
            forcerm,
            quiet: q.bool("q", false),
            cache_from: json_param(q, "cachefrom", "cache-from")?,
            network_mode: q.get("networkmode").unwrap_or("").to_string(),
            extra_hosts: q.all("extrahosts").iter().map(|s| s.to_string()).collect(),
            shm_size,
            memory: int_param(q, "memory"),
            memswap: int_param(q, "memswap"),
            cpu_shares: int_param(q, "cpushares"),
            cpu_period: int_param(q, "cpuperiod"),
            cpu_quota: int_param(q, "cpuquota"),
            cpuset_cpus: q.get("cpusetcpus").unwrap_or("").to_string(),
            cpuset_mems: q.get("cpusetmems").unwrap_or("").to_string(),
            registry_config: registry_config.unwrap_or("").to_string(),
        })
    }
}
