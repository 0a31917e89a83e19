//! libpod's pod endpoints (`/libpod/pods/…`).

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};

use crate::api::Ctx;
use crate::api::json_body;
use crate::api::params::{Filters, Query};
use crate::api::response::{ApiError, ApiResult, blocking, empty, json, ok_json, read_body};
use crate::engine::pods::{self, PodConfig, PodCreate, PortMapping, ops, view};

use super::specgen::{default_idmappings, is_unset};

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// libpod's `PodSpecGenerator` as a pod request; what berth cannot do is refused.
pub fn pod_request(mut body: Map<String, Value>) -> Result<PodCreate, ApiError> {
    let bad = |field: &str, v: &Value| {
        let mut value = v.to_string();
        value.truncate(120);
        ApiError::bad_request(format!(
            "berth does not support the pod option {field:?} ({value}) yet"
        ))
    };
    let mut config = PodConfig {
        infra: body.get("no_infra").and_then(Value::as_bool) != Some(true),
        hostname: body
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        create_command: strings(body.get("pod_create_command")),
        exit_policy: body
            .get("exit_policy")
            .and_then(Value::as_str)
            .unwrap_or("continue")
            .into(),
        dns: strings(body.get("dns_server")),
        dns_search: strings(body.get("dns_search")),
        dns_options: strings(body.get("dns_option")),
        add_hosts: strings(body.get("hostadd")),
        ..PodConfig::default()
    };
    if !matches!(config.exit_policy.as_str(), "continue" | "") {
        return Err(bad("exit_policy", &body["exit_policy"]));
    }
    if let Some(l) = body.get("labels").and_then(Value::as_object) {
        for (k, v) in l {
            config
                .labels
                .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    // libpod's default share is ipc, net and uts (`--share`); `cgroup` is libpod's cgroup
    // parent, which berth has no counterpart for.
    config.shared = match body.get("shared_namespaces") {
        None | Some(Value::Null) if config.infra => {
            pods::SHAREABLE.iter().map(|s| s.to_string()).collect()
        }
        _ => strings(body.get("shared_namespaces")),
    };
    config.shared.retain(|s| !s.is_empty());
    for p in body
        .get("portmappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let m: PortMapping = serde_json::from_value(p.clone())
            .map_err(|e| ApiError::bad_request(format!("portmappings: {e}")))?;
        config.ports.push(m);
    }
    if let Some(ns) = body.get("netns").and_then(Value::as_object) {
        match ns.get("nsmode").and_then(Value::as_str).unwrap_or("") {
            "" | "bridge" | "private" | "default" => {}
            "host" => config.network_mode = "host".into(),
            _ => return Err(bad("netns", &Value::Object(ns.clone()))),
        }
    }
    if let Some(ns) = body.get("pidns").and_then(Value::as_object)
        && !matches!(
            ns.get("nsmode").and_then(Value::as_str).unwrap_or(""),
            "" | "private"
        )
    {
        return Err(bad("pidns", &Value::Object(ns.clone())));
    }
    let req = PodCreate {
        name: body.get("name").and_then(Value::as_str).map(String::from),
        infra_image: body
            .get("infra_image")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        infra_command: Some(strings(body.get("infra_command"))).filter(|c| !c.is_empty()),
        infra_name: body
            .get("infra_name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        config,
    };
    const HANDLED: &[&str] = &[
        "name",
        "no_infra",
        "hostname",
        "pod_create_command",
        "exit_policy",
        "dns_server",
        "dns_search",
        "dns_option",
        "hostadd",
        "labels",
        "shared_namespaces",
        "portmappings",
        "netns",
        "pidns",
        "infra_image",
        "infra_command",
        "infra_name",
        // Defaults podman always sends: its own process is the parent of the pod's cgroup.
        "share_parent",
    ];
    for k in HANDLED {
        body.remove(*k);
    }
    if let Some((k, v)) = body
        .iter()
        .find(|(k, v)| !(is_unset(v) || (k.as_str() == "idmappings" && default_idmappings(v))))
    {
        return Err(bad(k, v));
    }
    Ok(req)
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, 1 << 20).await?;
    let body = json_body::object(&parts.headers, &bytes)?;
    let request = pod_request(body)?;
    let engine = ctx.engine.clone();
    let id = blocking(move || pods::create(&engine, request)).await?;
    Ok(json(StatusCode::CREATED, &json!({"Id": id})))
}

pub async fn list(ctx: &Ctx, q: &Query) -> ApiResult {
    let filters = Filters::parse(q.get("filters"))?;
    let engine = ctx.engine.clone();
    ok_json(&blocking(move || view::list_json(&engine, &filters)).await?)
}

pub async fn inspect(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    let p = blocking(move || pods::load(&engine, &name)).await?;
    ok_json(&view::inspect(&p))
}

pub async fn exists(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    blocking(move || pods::load(&engine, &name).map(|_| ())).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn report(r: Option<ops::Report>) -> ApiResult {
    match r {
        None => Ok(empty(StatusCode::NOT_MODIFIED)),
        Some(r) if r.errors.is_empty() => ok_json(&r.json()),
        Some(r) => Ok(json(StatusCode::CONFLICT, &r.json())),
    }
}

pub async fn start(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    report(blocking(move || ops::start(&engine, &name)).await?)
}

pub async fn stop(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    // -1: each container's own stop timeout.
    let t: Option<i64> = q.int::<i64>("timeout")?.or(q.int("t")?).filter(|t| *t >= 0);
    let engine = ctx.engine.clone();
    report(blocking(move || ops::stop(&engine, &name, t)).await?)
}

pub async fn restart(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    report(Some(blocking(move || ops::restart(&engine, &name)).await?))
}

pub async fn kill(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let signal = q.get("signal").unwrap_or("SIGKILL").to_string();
    let engine = ctx.engine.clone();
    report(Some(
        blocking(move || ops::kill(&engine, &name, &signal)).await?,
    ))
}

pub async fn pause(ctx: &Ctx, name: String, paused: bool) -> ApiResult {
    let engine = ctx.engine.clone();
    report(Some(
        blocking(move || ops::pause(&engine, &name, paused)).await?,
    ))
}

pub async fn delete(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let force = q.bool("force", false);
    let engine = ctx.engine.clone();
    let id = blocking(move || ops::remove(&engine, &name, force)).await?;
    ok_json(&json!({"Err": null, "Id": id}))
}

pub async fn prune(ctx: &Ctx) -> ApiResult {
    let engine = ctx.engine.clone();
    let ids = blocking(move || ops::prune(&engine)).await?;
    ok_json(
        &ids.iter()
            .map(|id| json!({"Err": null, "Id": id}))
            .collect::<Vec<_>>(),
    )
}

pub async fn top(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let ps_args = q.get("ps_args").unwrap_or("").to_string();
    let engine = ctx.engine.clone();
    ok_json(&blocking(move || ops::top(&engine, &name, &ps_args)).await?)
}

pub async fn stats(ctx: &Ctx, q: &Query) -> ApiResult {
    let names: Vec<String> = q.all("namesOrIDs").iter().map(|s| s.to_string()).collect();
    let all = q.bool("all", false);
    let engine = ctx.engine.clone();
    ok_json(&blocking(move || view::stats(&engine, &names, all)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_pod_create_body() {
        let body = json!({"name":"my-pod","exit_policy":"continue","shared_namespaces":["ipc","net","uts"],
            "share_parent":true,"pod_create_command":["podman","pod","create"],"pidns":{"nsmode":"private"},
            "userns":{},"utsns":{},"netns":{},"portmappings":[{"host_ip":"","container_port":80,"host_port":8080,"range":1,"protocol":""}],
            "Networks":null,"resource_limits":{"cpu":{}},"idmappings":{"HostUIDMapping":true,"HostGIDMapping":true,"UIDMap":null,
            "GIDMap":null,"AutoUserNs":false,"AutoUserNsOpts":{"Size":0,"InitialSize":0,"PasswdFile":"","GroupFile":"",
            "AdditionalUIDMappings":null,"AdditionalGIDMappings":null}}});
        let r = pod_request(body.as_object().cloned().unwrap()).unwrap();
        assert_eq!(r.name.as_deref(), Some("my-pod"));
        assert_eq!(r.config.ports[0].host_port, 8080);
        assert_eq!(r.config.shared, ["ipc", "net", "uts"]);
        assert!(r.config.infra);
        let mut bad = body.as_object().cloned().unwrap();
        bad.insert("resource_limits".into(), json!({"cpu": {"quota": 5000}}));
        assert!(pod_request(bad).is_err());
    }
}
