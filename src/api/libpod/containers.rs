//! libpod's container endpoints, as far as `podman --remote run/ps/logs/rm/inspect/exec/
//! start/stop` use them. Each maps onto the engine functions the Docker endpoints call; what
//! differs is the shapes libpod's Go types decode.

use bytes::Bytes;
use hyper::{Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::api::Ctx;
use crate::api::json_body;
use crate::api::params::{Filters, Query};
use crate::api::response::{
    ApiError, ApiResult, blocking, empty, json, ok_json, read_body, streaming,
};
use crate::engine::containers::{create, inspect as ins, lifecycle, remove};
use crate::engine::pods;
use crate::engine::{Engine, EngineError, Result};

use super::specgen;

/// Go's zero `time.Time` as Unix seconds, which libpod lists for "never".
const ZERO_UNIX: i64 = -62135596800;

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, 4 << 20).await?;
    let body = json_body::object(&parts.headers, &bytes)?;
    let t = specgen::translate(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let engine = ctx.engine.clone();
    let c = blocking(move || {
        let mut request = t.request;
        let join = match &t.pod {
            Some(p) => Some(pods::join(
                &engine,
                p,
                &mut request.config,
                &mut request.host_config,
            )?),
            None => None,
        };
        create::create_in(&engine, t.name.as_deref(), request, join.as_ref())
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": c.id, "Warnings": c.warnings}),
    ))
}

fn unix_of(rfc3339: &Value) -> i64 {
    rfc3339
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .filter(|s| *s > 0)
        .unwrap_or(ZERO_UNIX)
}

/// Docker's inspect document reshaped as libpod's `InspectContainerData`.
pub fn inspect_value(engine: &Engine, name: &str) -> Result<Value> {
    let mut d = ins::inspect(engine, name)?;
    let id = d["Id"].as_str().unwrap_or_default().to_string();
    let membership = pods::view::membership(engine, &id)?;
    if let Some(n) = d["Name"]
        .as_str()
        .map(|n| n.trim_start_matches('/').to_string())
    {
        d["Name"] = json!(n);
    }
    d["ImageName"] = d["Config"]["Image"].clone();
    if let Some(img) = d["Image"]
        .as_str()
        .map(|i| i.trim_start_matches("sha256:").to_string())
    {
        d["Image"] = json!(img);
    }
    d["OCIRuntime"] = json!("runc");
    d["IsInfra"] = json!(membership.as_ref().is_some_and(|m| m.2));
    d["IsService"] = json!(false);
    d["Pod"] = json!(membership.as_ref().map(|m| m.0.as_str()).unwrap_or(""));
    let mut deps = Vec::new();
    if let Some(other) = d["HostConfig"]["NetworkMode"]
        .as_str()
        .and_then(|m| m.strip_prefix("container:"))
    {
        deps.push(json!(other));
    }
    d["Dependencies"] = json!(deps);
    let state = &mut d["State"];
    state["OciVersion"] = json!("1.0.2");
    if let Some(cfg) = d["Config"].as_object_mut() {
        let entrypoint = cfg
            .get("Entrypoint")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        cfg.insert("Entrypoint".into(), json!(entrypoint));
        let signal = cfg
            .get("StopSignal")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .and_then(|s| lifecycle::signal_number(s).ok())
            .unwrap_or(15);
        cfg.insert("StopSignal".into(), json!(signal));
        cfg.insert("OnBuild".into(), Value::Null);
        let annotations = d["HostConfig"]["Annotations"].clone();
        if let Some(cfg) = d["Config"].as_object_mut() {
            cfg.insert(
                "Annotations".into(),
                if annotations.is_null() {
                    json!({})
                } else {
                    annotations
                },
            );
        }
    }
    // libpod's IPAMConfig is a string map; Docker's holds a list.
    if let Some(nets) = d["NetworkSettings"]["Networks"].as_object_mut() {
        for n in nets.values_mut() {
            n["IPAMConfig"] = Value::Null;
        }
    }
    Ok(d)
}

pub async fn inspect(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    ok_json(&blocking(move || inspect_value(&engine, &name)).await?)
}

pub async fn exists(ctx: &Ctx, name: String) -> ApiResult {
    let engine = ctx.engine.clone();
    blocking(move || crate::engine::containers::check_exists(&engine, &name)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// One entry of `GET /libpod/containers/json` (libpod's `ListContainer`).
fn list_entry(engine: &Engine, id: &str) -> Result<Value> {
    let d = ins::inspect(engine, id)?;
    let membership = pods::view::membership(engine, id)?;
    let state = &d["State"];
    let status = state["Status"].as_str().unwrap_or("").to_string();
    let mut ports = Vec::new();
    let hc = &d["HostConfig"];
    // A pod member shows its pod's ports, as podman does (they are the infra container's).
    let port_source = match (&membership, hc["NetworkMode"].as_str()) {
        (Some(_), Some(m)) if m.starts_with("container:") => {
            ins::inspect(engine, &m["container:".len()..])
                .map(|o| o["HostConfig"]["PortBindings"].clone())
                .unwrap_or(Value::Null)
        }
        _ => hc["PortBindings"].clone(),
    };
    if let Some(pb) = port_source.as_object() {
        for (key, binds) in pb {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            for b in binds.as_array().into_iter().flatten() {
                ports.push(json!({
                    "host_ip": b["HostIp"].as_str().unwrap_or(""),
                    "container_port": port.parse::<u16>().unwrap_or(0),
                    "host_port": b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0),
                    "range": 1,
                    "protocol": proto,
                }));
            }
        }
    }
    let networks: Vec<String> = d["NetworkSettings"]["Networks"]
        .as_object()
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let cmd = d["Config"]["Cmd"].clone();
    let infra = membership.as_ref().is_some_and(|m| m.2);
    Ok(json!({
        "AutoRemove": hc["AutoRemove"].as_bool().unwrap_or(false),
        "Command": if infra { Value::Null } else { cmd },
        "Created": d["Created"],
        "CreatedAt": "",
        "Exited": status == "exited",
        "ExitedAt": unix_of(&state["FinishedAt"]),
        "ExitCode": state["ExitCode"],
        "Id": d["Id"],
        "Image": d["Config"]["Image"],
        "ImageID": d["Image"].as_str().unwrap_or("").trim_start_matches("sha256:"),
        "IsInfra": infra,
        "Labels": d["Config"]["Labels"],
        "Mounts": d["Mounts"].as_array().into_iter().flatten().map(|m| m["Destination"].clone()).collect::<Vec<_>>(),
        "Names": [d["Name"].as_str().unwrap_or("").trim_start_matches('/')],
        "Namespaces": {},
        "Networks": networks,
        "Pid": state["Pid"],
        "Pod": membership.as_ref().map(|m| m.0.as_str()).unwrap_or(""),
        "PodName": membership.as_ref().map(|m| m.1.as_str()).unwrap_or(""),
        "Ports": ports,
        "Size": null,
        "StartedAt": unix_of(&state["StartedAt"]),
        "State": status,
        "Status": "",
    }))
}

pub async fn list(ctx: &Ctx, q: &Query) -> ApiResult {
    if q.bool("size", false) {
        return Err(ApiError::bad_request(
            "berth does not compute container sizes for libpod lists yet (size=true)",
        ));
    }
    let all = q.bool("all", false);
    let limit: i64 = q.int("last")?.or(q.int("limit")?).unwrap_or(-1);
    // `pod` is libpod's own filter; the rest are Docker's, which the engine applies.
    let mut raw: Map<String, Value> = match q.get("filters").filter(|f| !f.is_empty()) {
        Some(f) => serde_json::from_str(f).map_err(|_| ApiError::bad_request("invalid filter"))?,
        None => Map::new(),
    };
    let pod_filter = raw.remove("pod");
    let docker = Filters::parse(Some(&Value::Object(raw).to_string()))?;
    let pods_wanted: Vec<String> = Filters::parse(Some(
        &json!({"pod": pod_filter.unwrap_or(Value::Null)}).to_string(),
    ))?
    .values("pod")
    .iter()
    .map(|s| s.to_string())
    .collect();
    let engine = ctx.engine.clone();
    let v = blocking(move || {
        // libpod lists oldest first (a pod's infra container before its members).
        let mut listed = ins::list(&engine, all, limit, &docker)?;
        listed.reverse();
        let mut out = Vec::new();
        for c in listed {
            let id = c["Id"].as_str().unwrap_or_default().to_string();
            if !pods_wanted.is_empty() {
                let m = pods::view::membership(&engine, &id)?;
                let hit = m.is_some_and(|(pid, pname, _)| {
                    pods_wanted
                        .iter()
                        .any(|w| pid.starts_with(w.as_str()) || &pname == w)
                });
                if !hit {
                    continue;
                }
            }
            match list_entry(&engine, &id) {
                Ok(e) => out.push(e),
                Err(e) if e.kind == crate::engine::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<_, EngineError>(out)
    })
    .await?;
    ok_json(&v)
}

/// `DELETE /libpod/containers/{name}`: a report list (`[{"Id","RawInput"}]`).
pub async fn delete(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    if q.bool("depend", false) {
        return Err(ApiError::bad_request(
            "berth does not remove dependent containers (depend=true) yet",
        ));
    }
    let force = q.bool("force", false);
    let volumes = q.bool("volumes", false) || q.bool("v", false);
    let ignore = q.bool("ignore", false);
    let engine = ctx.engine.clone();
    let raw = name.clone();
    let result = blocking(move || {
        let id = engine
            .store()?
            .read(|tx| crate::engine::containers::resolve(tx, &name).map(|c| c.id))?;
        remove::remove(&engine, &id, force, volumes)?;
        Ok::<_, EngineError>(id)
    })
    .await;
    match result {
        Ok(id) => ok_json(&json!([{"Id": id, "RawInput": raw}])),
        Err(e) if ignore && e.status == StatusCode::NOT_FOUND => ok_json(&json!([])),
        Err(e) => Err(e),
    }
}

pub async fn stop(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let t: Option<i64> = q.int("timeout")?.or(q.int("t")?);
    let ignore = q.bool("ignore", false);
    let engine = ctx.engine.clone();
    match blocking(move || lifecycle::stop(&engine, &name, t, None)).await {
        Ok(true) => Ok(empty(StatusCode::NO_CONTENT)),
        Ok(false) => Ok(empty(StatusCode::NOT_MODIFIED)),
        Err(e) if ignore && e.status == StatusCode::NOT_FOUND => Ok(empty(StatusCode::NO_CONTENT)),
        Err(e) => Err(e),
    }
}

/// `POST /libpod/containers/{name}/wait`: the exit code as plain text once it stopped.
pub async fn wait(ctx: &Ctx, name: String, q: &Query) -> ApiResult {
    let conditions = q.all("condition");
    for c in &conditions {
        if !matches!(*c, "stopped" | "exited") {
            return Err(ApiError::bad_request(format!(
                "berth waits only for the conditions stopped and exited, not {c:?}"
            )));
        }
    }
    {
        let engine = ctx.engine.clone();
        let name = name.clone();
        blocking(move || crate::engine::containers::check_exists(&engine, &name)).await?;
    }
    let engine = ctx.engine.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let probe = tx.clone();
    tokio::spawn(async move {
        let result = tokio::task::spawn_blocking(move || {
            lifecycle::wait(&engine, &name, "not-running", &|| probe.is_closed())
        })
        .await;
        let body = match result {
            Ok(Ok((code, _))) => format!("{code}\n"),
            _ => "-1\n".to_string(),
        };
        let _ = tx.send(Bytes::from(body)).await;
    });
    Ok(streaming("text/plain; charset=us-ascii", rx))
}

/// libpod's logs take Go's zero time for "no bound" and `tail=-1` for all.
pub fn docker_log_query(q: &Query) -> Query {
    let pairs = q
        .pairs()
        .iter()
        .filter(|(k, v)| {
            !((k == "since" || k == "until") && v.starts_with("0001-01-01T00:00:00"))
                && !(k == "tail" && v == "-1")
        })
        .cloned()
        .collect();
    Query::from_pairs(pairs)
}

/// A Docker-style query with `from` renamed to `to` (libpod's `timeout` for Docker's `t`).
pub fn renamed(q: &Query, from: &str, to: &str) -> Query {
    Query::from_pairs(
        q.pairs()
            .iter()
            .map(|(k, v)| {
                if k == from {
                    (to.to_string(), v.clone())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect(),
    )
}

/// `POST /libpod/containers/{name}/exec`: Docker's exec, except that stdin is refused: podman
/// sends it over an exec start that is not upgraded, where berth cannot read it.
pub async fn exec_create(ctx: &Ctx, name: String, req: Request<Incoming>) -> ApiResult {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, 1 << 20).await?;
    let v = json_body::object(&parts.headers, &bytes)?;
    if v.get("AttachStdin").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(
            "berth does not pass stdin to libpod exec sessions yet (podman exec -i); docker exec -i works",
        ));
    }
    crate::api::exec::create_from_body(ctx, name, &parts.headers, &bytes).await
}
