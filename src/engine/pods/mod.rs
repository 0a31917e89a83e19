//! Pods, as Podman has them: containers that share the network, IPC and UTS namespaces of one
//! infra container, which runs berth's pause process and owns the pod's published ports.
//! A pod is a row plus its members; its state is worked out from theirs on every call.

pub(crate) mod infra;
pub(crate) mod ops;
pub(crate) mod view;

use std::collections::BTreeMap;

use rusqlite::Transaction;
use serde::{Deserialize, Serialize};

use crate::model::{Config, CreateRequest, HostConfig, PortBinding};
use crate::store::pods::{self as rows, PodRow};
use crate::util::time::now_nanos;

use super::containers::state::{ContainerStatus, State, current};
use super::{Engine, EngineError, ErrorKind, Result};

/// The namespaces a pod's containers can share (Podman's `--share`).
pub const SHAREABLE: [&str; 3] = ["ipc", "net", "uts"];

/// One published port of a pod, in libpod's `PortMapping` shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortMapping {
    pub host_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub range: u16,
    pub protocol: String,
}

/// What a pod keeps besides its name and ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodConfig {
    pub labels: BTreeMap<String, String>,
    pub hostname: String,
    /// Of [`SHAREABLE`], sorted.
    pub shared: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub infra: bool,
    pub create_command: Vec<String>,
    pub exit_policy: String,
    /// `host` or the bridge network.
    pub network_mode: String,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub add_hosts: Vec<String>,
}

/// A request to make a pod.
#[derive(Debug, Clone, Default)]
pub struct PodCreate {
    pub name: Option<String>,
    pub config: PodConfig,
    /// The infra container's image and command; berth's pause image by default.
    pub infra_image: Option<String>,
    pub infra_command: Option<Vec<String>>,
    pub infra_name: Option<String>,
}

/// A pod and what its members are doing now.
pub struct PodState {
    pub row: PodRow,
    pub config: PodConfig,
    pub members: Vec<MemberState>,
}

pub struct MemberState {
    pub id: String,
    pub name: String,
    pub infra: bool,
    pub state: State,
}

impl MemberState {
    /// Podman's container status names (`paused` is a status there, not a flag).
    pub fn status(&self) -> &'static str {
        if self.state.paused && self.state.is_running() {
            "paused"
        } else if self.state.status == ContainerStatus::Restarting {
            "running"
        } else {
            self.state.status.as_str()
        }
    }
}

impl PodState {
    pub fn infra(&self) -> Option<&MemberState> {
        self.members.iter().find(|m| m.infra)
    }

    /// libpod's `createPodStatusResults`.
    pub fn status(&self) -> &'static str {
        let n = self.members.len();
        if n == 0 {
            return "Created";
        }
        let count = |s: &[&str]| {
            self.members
                .iter()
                .filter(|m| s.contains(&m.status()))
                .count()
        };
        let running = count(&["running"]);
        let paused = count(&["paused"]);
        let exited = count(&["exited", "dead"]);
        if running > 0 {
            return if running == n { "Running" } else { "Degraded" };
        }
        if paused == n {
            "Paused"
        } else if exited == n {
            "Exited"
        } else if exited > 0 {
            "Stopped"
        } else {
            "Created"
        }
    }
}

pub fn no_such_pod(name: &str) -> EngineError {
    EngineError::not_found(format!("no pod with name or ID {name} found: no such pod"))
}

/// A pod by full ID, name or unique ID prefix.
pub fn resolve(tx: &Transaction, name: &str) -> Result<PodRow> {
    if name.len() == 64
        && let Some(p) = rows::get(tx, name)?
    {
        return Ok(p);
    }
    if let Some(p) = rows::by_name(tx, name)? {
        return Ok(p);
    }
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        let ids = rows::ids_with_prefix(tx, name)?;
        if ids.len() > 1 {
            return Err(EngineError::conflict(format!(
                "more than one result for pod ID {name}"
            )));
        }
        if let Some(p) = ids
            .first()
            .map(|id| rows::get(tx, id))
            .transpose()?
            .flatten()
        {
            return Ok(p);
        }
    }
    Err(no_such_pod(name))
}

fn parse_config(row: &PodRow) -> PodConfig {
    serde_json::from_str(&row.config_json).unwrap_or_else(|e| {
        tracing::warn!(id = %row.id, error = %e, "unreadable stored pod config");
        PodConfig::default()
    })
}

/// A pod with its members' current states.
pub fn load(engine: &Engine, name: &str) -> Result<PodState> {
    let (row, members) = engine.store()?.read(|tx| {
        let row = resolve(tx, name)?;
        let mut out = Vec::new();
        for m in rows::members(tx, &row.id)? {
            if let Some(c) = crate::store::containers::get(tx, &m.container_id)? {
                out.push((c, m.infra));
            }
        }
        Ok::<_, EngineError>((row, out))
    })?;
    let members = members
        .into_iter()
        .map(|(c, infra)| MemberState {
            state: current(engine.paths(), &c.id, &State::parse(&c.state)),
            id: c.id,
            name: c.name,
            infra,
        })
        .collect();
    Ok(PodState {
        config: parse_config(&row),
        row,
        members,
    })
}

/// Every pod, newest first.
pub fn list(engine: &Engine) -> Result<Vec<PodState>> {
    let ids: Vec<String> = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(rows::list(tx)?.into_iter().map(|p| p.id).collect()))?;
    let mut out = Vec::new();
    for id in ids {
        match load(engine, &id) {
            Ok(p) => out.push(p),
            // Removed meanwhile.
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The pod a container is in, if any: (pod ID, is the infra container).
pub fn pod_of(engine: &Engine, container_id: &str) -> Result<Option<(String, bool)>> {
    Ok(engine.store()?.read(|tx| rows::pod_of(tx, container_id))?)
}

fn validate_name(name: &str) -> Result<()> {
    let ok = name.len() > 1 || name.bytes().all(|b| b.is_ascii_alphanumeric());
    let first = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    let rest = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if name.is_empty() || !(ok && first && rest) {
        return Err(EngineError::invalid(format!(
            "invalid pod name {name:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument"
        )));
    }
    Ok(())
}

/// Make a pod and, unless `config.infra` is false, its infra container. Returns the pod ID.
pub fn create(engine: &Engine, req: PodCreate) -> Result<String> {
    let mut config = req.config;
    config.shared.sort();
    config.shared.dedup();
    for ns in &config.shared {
        if !SHAREABLE.contains(&ns.as_str()) {
            return Err(EngineError::invalid(format!(
                "invalid kernel namespace to share: {ns}: berth pods share {}",
                SHAREABLE.join(", ")
            )));
        }
    }
    if !config.infra && (!config.ports.is_empty() || !config.shared.is_empty()) {
        let what = if config.ports.is_empty() {
            "namespaces"
        } else {
            "ports"
        };
        return Err(EngineError::invalid(format!(
            "you must have an infra container to publish port bindings or share {what}: invalid argument"
        )));
    }
    for p in &config.ports {
        if p.container_port == 0 {
            return Err(EngineError::invalid("container port cannot be 0"));
        }
        if !matches!(p.protocol.as_str(), "" | "tcp" | "udp" | "sctp") {
            return Err(EngineError::invalid(format!(
                "unrecognized protocol {:?} in port mapping",
                p.protocol
            )));
        }
    }
    let id = crate::util::random_id();
    let name = match req.name.filter(|n| !n.is_empty()) {
        Some(n) => {
            validate_name(&n)?;
            n
        }
        None => super::containers::names::generate(0) + "_pod",
    };
    if config.hostname.is_empty() && config.shared.iter().any(|s| s == "uts") {
        config.hostname = name.clone();
    }
    let row = PodRow {
        id: id.clone(),
        name: name.clone(),
        created: now_nanos(),
        config_json: serde_json::to_string(&config).map_err(EngineError::internal_cause)?,
    };
    let conflict = || {
        EngineError::conflict(format!(
            "adding pod to state: name \"{name}\" is in use: pod already exists"
        ))
    };
    let made = if config.infra {
        infra::create_infra(
            engine,
            row,
            &config,
            req.infra_image.as_deref(),
            req.infra_command,
            req.infra_name.as_deref(),
        )
        .map(|_| ())
    } else {
        engine
            .store()?
            .write(|tx| rows::insert(tx, &row))
            .map_err(EngineError::from)
    };
    match made {
        Err(e) if e.message.contains("UNIQUE constraint failed: pods.name") => Err(conflict()),
        other => other,
    }?;
    Ok(id)
}

/// Fit a container's create request into its pod: the shared namespaces are the infra
/// container's. Returns what `containers::create_in` records.
pub fn join(
    engine: &Engine,
    pod: &str,
    config: &mut Config,
    hc: &mut HostConfig,
) -> Result<super::containers::create::PodJoin> {
    let p = load(engine, pod)?;
    let Some(infra) = p.infra() else {
        return Ok(super::containers::create::PodJoin {
            pod_id: p.row.id,
            infra: false,
            new_pod: None,
        });
    };
    let shared = |ns: &str| p.config.shared.iter().any(|s| s == ns);
    let target = format!("container:{}", infra.id);
    if shared("net") {
        if !hc.port_bindings.is_empty() || hc.publish_all_ports {
            return Err(EngineError::invalid(
                "invalid config provided: published or exposed ports must be defined when the pod is created: network cannot be configured when it is shared with a pod",
            ));
        }
        if !matches!(hc.network_mode.as_str(), "" | "default" | "bridge") {
            return Err(EngineError::invalid(
                "invalid config provided: networks must be defined when the pod is created: network cannot be configured when it is shared with a pod",
            ));
        }
        hc.network_mode = target.clone();
        if hc.dns.as_ref().is_some_and(|d| !d.is_empty())
            || hc.extra_hosts.as_ref().is_some_and(|d| !d.is_empty())
        {
            return Err(EngineError::invalid(
                "invalid config provided: DNS servers and extra hosts must be set on the pod: network cannot be configured when it is shared with a pod",
            ));
        }
    }
    if shared("ipc") {
        hc.ipc_mode = target.clone();
    }
    if shared("uts") {
        if !config.hostname.is_empty() {
            return Err(EngineError::invalid(
                "invalid config provided: cannot set hostname when joining the pod UTS namespace",
            ));
        }
        hc.uts_mode = target;
        config.hostname = p.config.hostname.clone();
    }
    Ok(super::containers::create::PodJoin {
        pod_id: p.row.id,
        infra: false,
        new_pod: None,
    })
}

/// Before a pod member starts: its infra container must run, as the namespaces are there.
pub fn before_start(engine: &Engine, container_id: &str) -> Result<()> {
    let Some((pod_id, false)) = pod_of(engine, container_id)? else {
        return Ok(());
    };
    let p = load(engine, &pod_id)?;
    if let Some(infra) = p.infra()
        && !infra.state.is_running()
    {
        super::containers::start::start(engine, &infra.id)?;
    }
    Ok(())
}

/// The infra container may go only with its pod.
pub fn check_removable(engine: &Engine, container_id: &str) -> Result<()> {
    if let Some((pod_id, true)) = pod_of(engine, container_id)? {
        return Err(EngineError::conflict(format!(
            "container {container_id} is the infra container of pod {pod_id} and cannot be removed without removing the pod"
        )));
    }
    Ok(())
}

/// The request of a pod's infra container.
pub fn infra_request(
    config: &PodConfig,
    image: &str,
    command: Option<Vec<String>>,
    labels: BTreeMap<String, String>,
) -> CreateRequest {
    let mut port_bindings: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    let mut exposed = BTreeMap::new();
    for p in &config.ports {
        let proto = if p.protocol.is_empty() {
            "tcp"
        } else {
            &p.protocol
        };
        for i in 0..p.range.max(1) {
            let key = format!("{}/{proto}", p.container_port + i);
            let host_port = if p.host_port == 0 {
                String::new()
            } else {
                (p.host_port + i).to_string()
            };
            port_bindings
                .entry(key.clone())
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port,
                });
            exposed.insert(key, Default::default());
        }
    }
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    CreateRequest {
        config: Config {
            image: image.to_string(),
            hostname: config.hostname.clone(),
            entrypoint: command,
            labels: Some(labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            ..Config::default()
        },
        host_config: HostConfig {
            network_mode: if config.network_mode.is_empty() {
                "bridge".into()
            } else {
                config.network_mode.clone()
            },
            port_bindings,
            ipc_mode: "shareable".into(),
            dns: non_empty(&config.dns),
            dns_search: non_empty(&config.dns_search),
            dns_options: non_empty(&config.dns_options),
            extra_hosts: non_empty(&config.add_hosts),
            ..HostConfig::default()
        },
        networking_config: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: ContainerStatus, paused: bool) -> MemberState {
        MemberState {
            id: String::new(),
            name: String::new(),
            infra: false,
            state: State {
                status,
                paused,
                ..State::default()
            },
        }
    }

    fn pod(members: Vec<MemberState>) -> PodState {
        PodState {
            row: PodRow {
                id: String::new(),
                name: String::new(),
                created: 0,
                config_json: String::new(),
            },
            config: PodConfig::default(),
            members,
        }
    }

    #[test]
    fn pod_status_follows_libpod() {
        use ContainerStatus::*;
        assert_eq!(pod(vec![]).status(), "Created");
        assert_eq!(pod(vec![member(Running, false)]).status(), "Running");
        assert_eq!(
            pod(vec![member(Running, false), member(Exited, false)]).status(),
            "Degraded"
        );
        assert_eq!(
            pod(vec![member(Running, true), member(Running, true)]).status(),
            "Paused"
        );
        assert_eq!(
            pod(vec![member(Exited, false), member(Exited, false)]).status(),
            "Exited"
        );
        assert_eq!(
            pod(vec![member(Exited, false), member(Created, false)]).status(),
            "Stopped"
        );
        assert_eq!(pod(vec![member(Created, false)]).status(), "Created");
    }

    #[test]
    fn pod_names() {
        assert!(validate_name("my-pod").is_ok());
        assert!(validate_name("a").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("").is_err());
    }

    #[test]
    fn infra_request_publishes_the_pod_ports() {
        let cfg = PodConfig {
            hostname: "h".into(),
            ports: vec![PortMapping {
                container_port: 80,
                host_port: 8080,
                range: 2,
                ..PortMapping::default()
            }],
            ..PodConfig::default()
        };
        let r = infra_request(&cfg, "img", None, BTreeMap::new());
        let keys: Vec<_> = r.host_config.port_bindings.keys().cloned().collect();
        assert_eq!(keys, ["80/tcp", "81/tcp"]);
        let b = r.host_config.port_bindings["81/tcp"].as_ref().unwrap();
        assert_eq!(b[0].host_port, "8081");
        assert_eq!(r.host_config.ipc_mode, "shareable");
        assert_eq!(r.config.hostname, "h");
    }
}
