//! Pods as libpod shows them: `pod inspect` (`InspectPodData`), `pod ps`
//! (`ListPodsReport`) and `pod stats` (`PodStatsReport`).

use serde_json::{Map, Value, json};

use super::{PodState, list};
use crate::engine::containers::{cgroup_stats, resolve};
use crate::engine::{Engine, EngineError, Result};
use crate::params::Filters;
use crate::util::time::{now_nanos, rfc3339_nano};

fn port_bindings(p: &PodState) -> Value {
    let mut out = Map::new();
    for m in &p.config.ports {
        let proto = if m.protocol.is_empty() {
            "tcp"
        } else {
            &m.protocol
        };
        for i in 0..m.range.max(1) {
            let host = if m.host_port == 0 {
                String::new()
            } else {
                (m.host_port + i).to_string()
            };
            let e = out
                .entry(format!("{}/{proto}", m.container_port + i))
                .or_insert_with(|| json!([]));
            if let Some(a) = e.as_array_mut() {
                a.push(json!({"HostIp": m.host_ip, "HostPort": host}));
            }
        }
    }
    Value::Object(out)
}

fn networks(p: &PodState) -> Value {
    if !p.config.infra {
        return json!([]);
    }
    match p.config.network_mode.as_str() {
        "host" => json!([]),
        _ => json!(["bridge"]),
    }
}

/// `GET /libpod/pods/{name}/json`.
pub fn inspect(p: &PodState) -> Value {
    let mut v = json!({
        "Id": p.row.id,
        "Name": p.row.name,
        "Created": rfc3339_nano(p.row.created),
        "CreateCommand": p.config.create_command,
        "ExitPolicy": if p.config.exit_policy.is_empty() { "continue" } else { &p.config.exit_policy },
        "State": p.status(),
        "Hostname": p.config.hostname,
    });
    if !p.config.labels.is_empty() {
        v["Labels"] = json!(p.config.labels);
    }
    v["CreateCgroup"] = json!(false);
    v["CreateInfra"] = json!(p.config.infra);
    if let Some(infra) = p.infra() {
        let opt = |l: &Vec<String>| if l.is_empty() { Value::Null } else { json!(l) };
        v["InfraContainerID"] = json!(infra.id);
        v["InfraConfig"] = json!({
            "PortBindings": port_bindings(p),
            "HostNetwork": p.config.network_mode == "host",
            "StaticIP": "",
            "StaticMAC": "",
            "NoManageResolvConf": false,
            "DNSServer": opt(&p.config.dns),
            "DNSSearch": opt(&p.config.dns_search),
            "DNSOption": opt(&p.config.dns_options),
            "NoManageHosts": false,
            "HostAdd": opt(&p.config.add_hosts),
            "Networks": networks(p),
            "NetworkOptions": null,
            "pid_ns": "private",
            "userns": "host",
            "uts_ns": "private",
        });
        v["SharedNamespaces"] = json!(p.config.shared);
    }
    v["NumContainers"] = json!(p.members.len());
    if !p.members.is_empty() {
        v["Containers"] = p
            .members
            .iter()
            .map(|m| json!({"Id": m.id, "Name": m.name, "State": m.status()}))
            .collect();
    }
    v
}

fn list_entry(p: &PodState) -> Value {
    json!({
        "Cgroup": "",
        "Containers": p.members.iter().map(|m| json!({
            "Id": m.id, "Names": m.name, "Status": m.status(),
        })).collect::<Vec<_>>(),
        "Created": rfc3339_nano(p.row.created),
        "Id": p.row.id,
        "InfraId": p.infra().map(|m| m.id.as_str()).unwrap_or(""),
        "Name": p.row.name,
        "Namespace": "",
        "Networks": networks(p),
        "Status": p.status(),
        "Labels": p.config.labels,
    })
}

fn matches(p: &PodState, filters: &Filters) -> bool {
    let any = |key: &str, f: &dyn Fn(&str) -> bool| {
        let vals = filters.values(key);
        vals.is_empty() || vals.iter().any(|v| f(v))
    };
    any("id", &|v| p.row.id.starts_with(v))
        && any("name", &|v| {
            crate::engine::containers::inspect::regex_like(v, &p.row.name)
        })
        && any("status", &|v| p.status().eq_ignore_ascii_case(v))
        && filters
            .values("label")
            .iter()
            .all(|l| match l.split_once('=') {
                Some((k, val)) => p.config.labels.get(k).is_some_and(|x| x == val),
                None => p.config.labels.contains_key(*l),
            })
        && any("ctr-names", &|v| p.members.iter().any(|m| m.name == v))
        && any("ctr-ids", &|v| {
            p.members.iter().any(|m| m.id.starts_with(v))
        })
        && any("ctr-number", &|v| v.parse() == Ok(p.members.len()))
}

/// `GET /libpod/pods/json?filters=`.
pub fn list_json(engine: &Engine, filters: &Filters) -> Result<Value> {
    filters
        .validate(&[
            "id",
            "name",
            "status",
            "label",
            "ctr-names",
            "ctr-ids",
            "ctr-number",
        ])
        .map_err(EngineError::invalid_cause)?;
    Ok(list(engine)?
        .iter()
        .filter(|p| matches(p, filters))
        .map(list_entry)
        .collect())
}

/// Bytes as Podman's `units.HumanSize` (decimal) and `BytesSize` (binary) print them.
fn human(n: f64, base: f64, units: &[&str]) -> String {
    let mut v = n;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    // Go's `%.4g`: four significant digits, no trailing zeros.
    let decimals = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let d = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{d}{}", units[i])
}

fn decimal(n: u64) -> String {
    human(n as f64, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"])
}

fn binary(n: u64) -> String {
    human(n as f64, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

/// `GET /libpod/pods/stats?namesOrIDs=&all=`: one line per running member.
pub fn stats(engine: &Engine, names: &[String], all: bool) -> Result<Value> {
    let pods: Vec<PodState> = if all || names.is_empty() {
        list(engine)?
    } else {
        names
            .iter()
            .map(|n| super::load(engine, n))
            .collect::<Result<_>>()?
    };
    let mut out = Vec::new();
    for p in &pods {
        for m in p.members.iter().filter(|m| m.state.is_running()) {
            let s = cgroup_stats::sample(&m.id);
            let cpu_ns = s.cpu["cpu_usage"]["total_usage"].as_u64().unwrap_or(0) as f64;
            let elapsed = (now_nanos() - m.state.started_at).max(1) as f64;
            let usage = s.memory["usage"].as_u64().unwrap_or(0);
            let limit = s.memory["limit"].as_u64().unwrap_or(0);
            let mem_pct = if limit > 0 {
                usage as f64 * 100.0 / limit as f64
            } else {
                0.0
            };
            out.push(json!({
                "CPU": format!("{:.2}%", cpu_ns * 100.0 / elapsed),
                "MemUsage": format!("{} / {}", decimal(usage), decimal(limit)),
                "MemUsageBytes": format!("{} / {}", binary(usage), binary(limit)),
                "Mem": format!("{mem_pct:.2}%"),
                "NetIO": "-- / --",
                "BlockIO": "-- / --",
                "PIDS": s.pids["current"].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "--".into()),
                "Pod": p.row.id[..12],
                "CID": m.id[..12],
                "Name": m.name,
            }));
        }
    }
    Ok(Value::Array(out))
}

/// For container lists: the pod (ID, name) of a container and whether it is the infra one.
pub fn membership(engine: &Engine, container: &str) -> Result<Option<(String, String, bool)>> {
    engine.store()?.read(|tx| {
        let c = resolve(tx, container)?;
        let Some((pod_id, infra)) = crate::store::pods::pod_of(tx, &c.id)? else {
            return Ok(None);
        };
        let name = crate::store::pods::get(tx, &pod_id)?
            .map(|p| p.name)
            .unwrap_or_default();
        Ok(Some((pod_id, name, infra)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_podman_prints_them() {
        assert_eq!(decimal(827_400), "827.4kB");
        assert_eq!(decimal(25_280_000_000), "25.28GB");
        assert_eq!(binary(808 * 1024), "808KiB");
        assert_eq!(decimal(0), "0B");
    }
}
