//! How containers look from outside: `GET /containers/{id}/json`, `GET /containers/json` with
//! its filters and status texts, and the attributes of container events.

use rusqlite::Transaction;
use serde_json::{Map, Value, json};

use crate::monitor::health::HealthStatus;
use crate::params::Filters;
use crate::store::containers::{self as rows, ContainerRow};
use crate::store::images as image_rows;
use crate::util::digest_hex;
use crate::util::time::{now_nanos, parse_query_time, rfc3339_nano};

use super::super::{Engine, EngineError, Result};
use super::resolve;
use super::state::{ContainerStatus, State, current};
use crate::model::Config;

/// Path and Args as Docker splits the command (entrypoint + cmd).
pub fn path_and_args(config: &Config) -> (String, Vec<String>) {
    let mut all = config.command_line();
    if all.is_empty() {
        return (String::new(), Vec::new());
    }
    let path = all.remove(0);
    (path, all)
}

/// `Mounts` of inspect and `docker ps` (moby's `MountPoint`s): binds, volumes and tmpfs
/// mounts, by destination.
pub fn mount_points(
    engine: &Engine,
    id: &str,
    hc: &crate::model::HostConfig,
) -> Result<Vec<Value>> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let volume_modes: std::collections::HashMap<String, String> = hc
        .binds
        .iter()
        .flatten()
        .filter_map(|b| crate::runtime::parse_bind(b).ok())
        .filter(|b| b.volume)
        .map(|b| {
            (
                b.destination,
                if b.mode.is_empty() {
                    "z".into()
                } else {
                    b.mode
                },
            )
        })
        .collect();
    for (m, data) in crate::engine::volumes::mounts_for(engine, id)? {
        let mode = volume_modes
            .get(&m.destination)
            .cloned()
            .unwrap_or_default();
        out.push((
            m.destination.clone(),
            json!({
                "Type": "volume", "Name": m.volume, "Source": data, "Destination": m.destination,
                "Driver": "local", "Mode": mode, "RW": !m.read_only, "Propagation": "",
            }),
        ));
    }
    for b in crate::engine::volumes::inherited_binds(engine, id)? {
        out.push((
            b.destination.clone(),
            json!({
                "Type": "bind", "Source": b.source, "Destination": b.destination,
                "Mode": "", "RW": !b.read_only, "Propagation": "rprivate",
            }),
        ));
    }
    for b in hc.binds.iter().flatten() {
        if let Ok(b) = crate::runtime::parse_bind(b)
            && !b.volume
        {
            out.push((
                b.destination.clone(),
                json!({
                    "Type": "bind", "Source": b.source, "Destination": b.destination,
                    "Mode": b.mode, "RW": !b.read_only, "Propagation": b.propagation,
                }),
            ));
        }
    }
    for m in hc.mounts.iter().flatten() {
        let dest = crate::runtime::clean_path(&m.target);
        let v = match m.r#type.as_str() {
            "bind" => json!({
                "Type": "bind", "Source": m.source, "Destination": dest, "Mode": "",
                "RW": !m.read_only,
                "Propagation": m.bind_options.as_ref().map(|o| o.propagation.as_str())
                    .filter(|p| !p.is_empty()).unwrap_or("rprivate"),
            }),
            "tmpfs" => json!({
                "Type": "tmpfs", "Source": "", "Destination": dest, "Mode": "",
                "RW": !m.read_only, "Propagation": "",
            }),
            _ => continue,
        };
        out.push((dest, v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// go-units `HumanDuration`.
pub fn human_duration(nanos: i64) -> String {
    let secs = nanos / 1_000_000_000;
    let mins = secs / 60;
    let hours = ((nanos as f64) / 3.6e12 + 0.5) as i64;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if mins == 1 {
        "About a minute".into()
    } else if mins < 60 {
        format!("{mins} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", nanos / 3_600_000_000_000 / 24 / 365)
    }
}

/// The `Status` column of `docker ps` (moby `State.String`).
pub fn status_text(s: &State, now: i64) -> String {
    match s.status {
        ContainerStatus::Running if s.paused => {
            format!("Up {} (Paused)", human_duration(now - s.started_at))
        }
        ContainerStatus::Running => match &s.health {
            // moby `Health.String`: `health: starting`, else the status itself.
            Some(h) => format!(
                "Up {} ({})",
                human_duration(now - s.started_at),
                match h.status {
                    HealthStatus::Starting => "health: starting",
                    other => other.as_str(),
                }
            ),
            None => format!("Up {}", human_duration(now - s.started_at)),
        },
        ContainerStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(now - s.finished_at)
        ),
        ContainerStatus::Removing => "Removal In Progress".into(),
        ContainerStatus::Dead => "Dead".into(),
        ContainerStatus::Created => "Created".into(),
        _ if s.started_at == 0 => "Created".into(),
        _ if s.finished_at == 0 => String::new(),
        _ => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(now - s.finished_at)
        ),
    }
}

/// A container event with moby's attributes: image, name, labels, plus `extra`.
pub fn container_event(
    tx: &Transaction,
    action: &str,
    row: &ContainerRow,
    extra: Map<String, Value>,
) -> Result<()> {
    let mut attrs = Map::new();
    for (k, v) in row.config().labels() {
        attrs.insert(k, json!(v));
    }
    attrs.insert("image".into(), json!(row.image));
    attrs.insert("name".into(), json!(row.name));
    for (k, v) in extra {
        attrs.insert(k, v);
    }
    crate::store::events::append(tx, now_nanos(), "container", action, &row.id, &attrs)?;
    Ok(())
}

/// `GET /containers/{id}/json`.
pub fn inspect(engine: &Engine, name: &str) -> Result<Value> {
    let paths = engine.paths().clone();
    let mut store = engine.store()?;
    let (row, layers) = store.read(|tx| {
        let row = resolve(tx, name)?;
        let layers = image_rows::image_layers(tx, &row.image_id)?;
        Ok::<_, EngineError>((row, layers))
    })?;
    let stored = State::parse(&row.state);
    let state = current(&paths, &row.id, &stored);
    let config = row.config();
    let hc = row.host_config();
    let (path, args) = path_and_args(&config);
    let dir = paths.container_dir(&row.id);
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| {
            paths
                .layer_dir(digest_hex(&l.chain_id))
                .join("diff")
                .display()
                .to_string()
        })
        .collect();
    let log_path = if super::log_settings(&hc).driver == "none" {
        String::new()
    } else {
        super::log_path(engine, &row.id).display().to_string()
    };
    let sandbox = crate::engine::networks::attach::netns_path(engine, &row.id);
    let network_settings = store.read(|tx| {
        crate::engine::networks::settings::network_settings(
            tx,
            &row,
            &config,
            &hc,
            state.is_running(),
            &sandbox.display().to_string(),
        )
    })?;
    let started = state.started_at != 0;
    let file = |n: &str| {
        if started {
            dir.join(n).display().to_string()
        } else {
            String::new()
        }
    };
    Ok(json!({
        "Id": row.id,
        "Created": rfc3339_nano(row.created),
        "Path": path,
        "Args": args,
        "State": state.inspect_json(),
        "Image": row.image_id,
        "ResolvConfPath": file("resolv.conf"),
        "HostnamePath": file("hostname"),
        "HostsPath": file("hosts"),
        "LogPath": log_path,
        "Name": format!("/{}", row.name),
        "RestartCount": state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": hc.for_inspect(),
        "GraphDriver": {
            "Data": {
                "LowerDir": lower.join(":"),
                "MergedDir": dir.join("merged").display().to_string(),
                "UpperDir": dir.join("diff").display().to_string(),
                "WorkDir": dir.join("work").display().to_string(),
            },
            "Name": "overlay2",
        },
        "Mounts": mount_points(engine, &row.id, &hc)?,
        "Config": config,
        "NetworkSettings": network_settings,
    }))
}

/// moby's `Command` column: path and args, args with spaces in single quotes.
fn command_text(config: &Config) -> String {
    let (path, args) = path_and_args(config);
    if args.is_empty() {
        return path;
    }
    let args: Vec<String> = args
        .into_iter()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect();
    format!("{path} {}", args.join(" "))
}

/// A small subset of Go regexps for the `name` and `id` filters: `^` and `$` anchors around
/// literal text; anything else is matched as a substring.
pub(crate) fn regex_like(pattern: &str, text: &str) -> bool {
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    match (start, end) {
        (true, true) => text == p,
        (true, false) => text.starts_with(p),
        (false, true) => text.ends_with(p),
        (false, false) => text.contains(p),
    }
}

/// moby's container-list filters on networks, ports, volumes and swarm tasks.
fn more_filters_match(
    engine: &Engine,
    row: &ContainerRow,
    config: &Config,
    filters: &Filters,
) -> Result<bool> {
    let hc = row.host_config();
    // Swarm tasks and Hyper-V isolation do not exist here.
    if filters
        .values("is-task")
        .iter()
        .any(|v| crate::params::bool_value(v))
    {
        return Ok(false);
    }
    if filters.contains("isolation")
        && !filters
            .values("isolation")
            .iter()
            .any(|v| matches!(*v, "default" | ""))
    {
        return Ok(false);
    }
    let port_key = |v: &str| {
        if v.contains('/') {
            v.to_string()
        } else {
            format!("{v}/tcp")
        }
    };
    if filters.contains("publish") {
        let exposed = config.exposed_port_keys();
        let published = |k: &str| {
            hc.port_bindings.contains_key(k)
                || (hc.publish_all_ports && exposed.iter().any(|e| e == k))
        };
        if !filters
            .values("publish")
            .iter()
            .any(|v| published(&port_key(v)))
        {
            return Ok(false);
        }
    }
    if filters.contains("expose") {
        let exposed = |k: &str| config.exposed_ports.iter().flatten().any(|(e, _)| e == k);
        if !filters
            .values("expose")
            .iter()
            .any(|v| exposed(&port_key(v)))
        {
            return Ok(false);
        }
    }
    if filters.contains("network") || filters.contains("volume") {
        let (nets, mounts, binds) = engine.store()?.read(|tx| {
            let mut nets = Vec::new();
            for e in crate::store::networks::endpoints_of_container(tx, &row.id)? {
                if let Some(n) = crate::store::networks::get(tx, &e.network_id)? {
                    nets.push((n.name, n.id));
                }
            }
            if let Some(n) = crate::store::networks::by_name(tx, hc.network_mode())? {
                nets.push((n.name, n.id));
            }
            let mounts = crate::store::volumes::mounts_of(tx, &row.id)?;
            let binds = crate::store::volumes::binds_of(tx, &row.id)?;
            Ok::<_, EngineError>((nets, mounts, binds))
        })?;
        if filters.contains("network")
            && !filters.values("network").iter().any(|v| {
                nets.iter()
                    .any(|(name, id)| name == v || (!v.is_empty() && id.starts_with(v)))
            })
        {
            return Ok(false);
        }
        if filters.contains("volume") {
            let host_binds: Vec<(String, String)> = hc
                .binds
                .iter()
                .flatten()
                .filter_map(|b| {
                    let mut it = b.split(':');
                    Some((it.next()?.to_string(), it.next()?.to_string()))
                })
                .collect();
            let hit = |v: &str| {
                mounts.iter().any(|m| m.volume == v || m.destination == v)
                    || binds.iter().any(|b| b.source == v || b.destination == v)
                    || host_binds.iter().any(|(s, d)| s == v || d == v)
                    || hc
                        .mounts
                        .iter()
                        .flatten()
                        .any(|m| m.source == v || m.target == v)
            };
            if !filters.values("volume").iter().any(|v| hit(v)) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

const LIST_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "expose",
    "since",
    "status",
    "volume",
];

const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// `GET /containers/json`.
pub fn list(engine: &Engine, all: bool, limit: i64, filters: &Filters) -> Result<Vec<Value>> {
    filters
        .validate(LIST_FILTERS)
        .map_err(EngineError::invalid_cause)?;
    for s in filters.values("status") {
        if !STATUSES.contains(&s) {
            return Err(EngineError::invalid(format!("invalid filter 'status={s}'")));
        }
    }
    for h in filters.values("health") {
        if !["starting", "healthy", "unhealthy", "none"].contains(&h) {
            return Err(EngineError::invalid(format!(
                "invalid filter 'health={h}': invalid value for health ({h}): must be one of none, starting, healthy, unhealthy"
            )));
        }
    }
    let paths = engine.paths().clone();
    let mut store = engine.store()?;
    let (rows, bounds, ancestors) = store.read(|tx| {
        let rows = rows::list(tx)?;
        let bound = |k: &str| -> Result<Option<i64>> {
            match filters.values(k).first() {
                Some(n) => Ok(Some(resolve(tx, n)?.created)),
                None => Ok(None),
            }
        };
        let bounds = (bound("before")?, bound("since")?);
        let mut ancestors = Vec::new();
        for a in filters.values("ancestor") {
            if let Ok(img) = crate::engine::images::resolve(tx, a) {
                ancestors.push(img.id);
            }
        }
        Ok::<_, EngineError>((rows, bounds, ancestors))
    })?;
    let (before, since) = bounds;
    let link_names = crate::engine::networks::links::names_by_child(&rows);
    // `status`, `exited` and `limit` imply all.
    let all = all || filters.contains("status") || filters.contains("exited") || limit > 0;
    let now = now_nanos();
    let mut out = Vec::new();
    for row in rows {
        let state = current(&paths, &row.id, &State::parse(&row.state));
        let config = row.config();
        let labels = config.labels();
        let status = if state.paused && state.status == ContainerStatus::Running {
            "paused".to_string()
        } else {
            state.status.as_str().to_string()
        };
        if !all && !state.is_running() {
            continue;
        }
        if before.is_some_and(|b| row.created >= b) || since.is_some_and(|s| row.created <= s) {
            continue;
        }
        if filters.contains("status") && !filters.values("status").contains(&status.as_str()) {
            continue;
        }
        if filters.contains("exited") {
            let codes = filters.values("exited");
            let ok = status == "exited"
                && codes
                    .iter()
                    .any(|c| c.parse::<i64>().ok() == Some(state.exit_code));
            if !ok {
                continue;
            }
        }
        if filters.contains("name")
            && !filters
                .values("name")
                .iter()
                .any(|p| regex_like(p, &row.name) || regex_like(p, &format!("/{}", row.name)))
        {
            continue;
        }
        if filters.contains("id") && !filters.values("id").iter().any(|p| regex_like(p, &row.id)) {
            continue;
        }
        if filters.contains("label") && !filters.match_kv("label", &labels) {
            continue;
        }
        if !more_filters_match(engine, &row, &config, filters)? {
            continue;
        }
        if filters.contains("ancestor")
            && !(ancestors.contains(&row.image_id)
                || filters.values("ancestor").contains(&row.image.as_str()))
        {
            continue;
        }
        if filters.contains("health") && !filters.values("health").contains(&state.health_status())
        {
            continue;
        }
        let hc = row.host_config();
        let mut names = vec![format!("/{}", row.name)];
        names.extend(link_names.get(&row.name).cloned().unwrap_or_default());
        let mode = hc.network_mode().to_string();
        let (ports, networks) = store.read(|tx| {
            let running = state.is_running();
            let ports = crate::engine::networks::settings::ps_ports(tx, &row, &config, running)?;
            let settings = crate::engine::networks::settings::network_settings(
                tx, &row, &config, &hc, running, "",
            )?;
            Ok::<_, EngineError>((ports, settings["Networks"].clone()))
        })?;
        out.push(json!({
            "Id": row.id,
            "Names": names,
            "Image": row.image,
            "ImageID": row.image_id,
            "Command": command_text(&config),
            "Created": row.created.div_euclid(1_000_000_000),
            "Ports": ports,
            "Labels": labels,
            "State": status,
            "Status": status_text(&state, now),
            "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"Networks": networks},
            "Mounts": mount_points(engine, &row.id, &row.host_config())?,
        }));
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    let _ = parse_query_time;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go_units() {
        let s = 1_000_000_000;
        assert_eq!(human_duration(s / 2), "Less than a second");
        assert_eq!(human_duration(s), "1 second");
        assert_eq!(human_duration(42 * s), "42 seconds");
        assert_eq!(human_duration(61 * s), "About a minute");
        assert_eq!(human_duration(3 * 60 * s), "3 minutes");
        assert_eq!(human_duration(3600 * s), "About an hour");
        assert_eq!(human_duration(5 * 3600 * s), "5 hours");
    }

    #[test]
    fn status_texts() {
        let now = 100_000_000_000;
        let s = State {
            status: ContainerStatus::Exited,
            exit_code: 3,
            started_at: 1,
            finished_at: now - 2_000_000_000,
            ..State::default()
        };
        assert_eq!(status_text(&s, now), "Exited (3) 2 seconds ago");
        assert_eq!(status_text(&State::created(), now), "Created");
        let mut up = State {
            status: ContainerStatus::Running,
            started_at: now - 3_000_000_000,
            health: Some(Default::default()),
            ..State::default()
        };
        assert_eq!(status_text(&up, now), "Up 3 seconds (health: starting)");
        up.health.as_mut().unwrap().status = HealthStatus::Healthy;
        assert_eq!(status_text(&up, now), "Up 3 seconds (healthy)");
        up.health.as_mut().unwrap().status = HealthStatus::Unhealthy;
        assert_eq!(status_text(&up, now), "Up 3 seconds (unhealthy)");
        // Paused wins, as in moby.
        up.paused = true;
        assert_eq!(status_text(&up, now), "Up 3 seconds (Paused)");
    }

    #[test]
    fn commands_and_names() {
        let c = json!({"Entrypoint": null, "Cmd": ["sh", "-c", "exit 3"]});
        assert_eq!(
            command_text(&serde_json::from_value(c).unwrap()),
            "sh -c 'exit 3'"
        );
        assert!(regex_like("^web$", "web"));
        assert!(!regex_like("^web$", "web2"));
        assert!(regex_like("eb", "web"));
    }
}
