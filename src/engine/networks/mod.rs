//! Networks (`/networks…`): Docker's predefined `bridge`, `host` and `none`, and user-defined
//! bridge networks with DNS between their containers. The store holds networks and which
//! container is attached to which (an endpoint); [`attach`] brings endpoints up at start.

pub mod attach;
pub mod links;
pub mod settings;

use std::collections::BTreeMap;

use ipnet::IpNet;
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::model::EndpointSettings;
use crate::model::lenient::null_default;
use crate::network::ipam::{self, Subnet, SubnetConfig};
use crate::params::Filters;
use crate::store::containers as container_rows;
use crate::store::networks::{self as rows, NetworkRow};
use crate::util::time::{now_nanos, rfc3339_nano};

use super::containers::inspect::regex_like;
use super::{Engine, EngineError, ErrorKind, Result};

/// The networks every installation has (Docker's `runconfig.IsPreDefinedNetwork`).
pub const PREDEFINED: &[&str] = &["bridge", "host", "none"];

/// One subnet as stored: Docker's IPAM config, and whether berth chose it (`--ip` needs a
/// subnet the user configured, as in Docker).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSubnet {
    #[serde(flatten)]
    pub config: SubnetConfig,
    #[serde(rename = "Auto", default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
}

pub fn stored_subnets(net: &NetworkRow) -> Vec<StoredSubnet> {
    serde_json::from_str(&net.subnets).unwrap_or_default()
}

/// The network's subnets, parsed (IPv4 first, as stored).
pub fn subnets_of(net: &NetworkRow) -> Vec<Subnet> {
    stored_subnets(net)
        .iter()
        .filter_map(|s| Subnet::parse(&s.config).ok())
        .collect()
}

pub fn is_predefined(net: &NetworkRow) -> bool {
    PREDEFINED.contains(&net.name.as_str())
}

fn not_found(name: &str) -> EngineError {
    EngineError::not_found(format!("network {name} not found"))
}

/// A network by name, full ID, or unique ID prefix (moby's `FindNetwork` order).
pub fn find(tx: &Transaction, name: &str) -> Result<NetworkRow> {
    if let Some(n) = rows::by_name(tx, name)? {
        return Ok(n);
    }
    if let Some(n) = rows::get(tx, name)? {
        return Ok(n);
    }
    if name.is_empty() {
        return Err(not_found(name));
    }
    let matches: Vec<NetworkRow> = rows::list(tx)?
        .into_iter()
        .filter(|n| n.id.starts_with(name))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(not_found(name)),
        n => Err(EngineError::invalid(format!(
            "network {name} is ambiguous ({n} matches found based on ID prefix)"
        ))),
    }
}

/// `network` events carry the network's name and driver.
pub fn network_event(
    tx: &Transaction,
    action: &str,
    net: &NetworkRow,
    mut attrs: Map<String, Value>,
) -> Result<()> {
    attrs.insert("name".into(), json!(net.name));
    attrs.insert("type".into(), json!(net.driver));
    crate::store::events::append(tx, now_nanos(), "network", action, &net.id, &attrs)?;
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamRequest {
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    pub config: Option<Vec<IpamConfigRequest>>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IpamConfigRequest {
    #[serde(rename = "Subnet", deserialize_with = "null_default")]
    pub subnet: String,
    #[serde(rename = "IPRange", deserialize_with = "null_default")]
    pub ip_range: String,
    #[serde(rename = "Gateway", deserialize_with = "null_default")]
    pub gateway: String,
    #[serde(rename = "AuxiliaryAddresses")]
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

/// The body of `POST /networks/create` (moby's `network.CreateRequest`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateOptions {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub check_duplicate: bool,
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    #[serde(deserialize_with = "null_default")]
    pub scope: String,
    #[serde(deserialize_with = "null_default")]
    pub internal: bool,
    #[serde(deserialize_with = "null_default")]
    pub attachable: bool,
    #[serde(deserialize_with = "null_default")]
    pub ingress: bool,
    #[serde(deserialize_with = "null_default")]
    pub config_only: bool,
    pub config_from: Option<Value>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequest>,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

fn not_yet(what: &str) -> EngineError {
    EngineError::new(
        ErrorKind::NotImplemented,
        format!("{what} not supported by berth yet"),
    )
}

/// Bridge driver options berth applies; others of Docker's namespace are refused, not
/// ignored. Keys outside it are kept and shown, as Docker does.
fn check_driver_options(opts: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in opts {
        let ok = match k.as_str() {
            "com.docker.network.bridge.name" => {
                if v.is_empty() || v.len() > 15 || v.contains('/') || v.contains(' ') {
                    return Err(EngineError::invalid(format!(
                        "invalid bridge name {v:?}: at most 15 characters, no '/' or spaces"
                    )));
                }
                true
            }
            "com.docker.network.driver.mtu" => {
                if v.parse::<u32>()
                    .map_or(true, |m| !(68..=65535).contains(&m))
                {
                    return Err(EngineError::invalid(format!("invalid MTU number: {v}")));
                }
                true
            }
            "com.docker.network.bridge.enable_icc"
            | "com.docker.network.bridge.enable_ip_masquerade" => crate::params::bool_value(v),
            "com.docker.network.bridge.host_binding_ipv4" => v == "0.0.0.0",
            "com.docker.network.bridge.default_bridge" => false,
            other => !other.starts_with("com.docker.network."),
        };
        if !ok {
            return Err(not_yet(&format!("the network option {k}={v} is")));
        }
    }
    Ok(())
}

/// `POST /networks/create`: 201 `{"Id", "Warning"}`.
pub fn create(engine: &Engine, opts: CreateOptions) -> Result<Value> {
    let name = opts.name.trim().to_string();
    if name.is_empty() {
        return Err(EngineError::invalid("invalid name: name is empty"));
    }
    if PREDEFINED.contains(&name.as_str()) || name == "default" {
        return Err(EngineError::new(
            ErrorKind::Forbidden,
            format!("operation is not permitted on predefined {name} network "),
        ));
    }
    match opts.driver.as_str() {
        "" | "bridge" => {}
        "host" | "null" => {
            return Err(EngineError::new(
                ErrorKind::Forbidden,
                format!(
                    "only one instance of \"{}\" network is allowed",
                    opts.driver
                ),
            ));
        }
        "macvlan" | "ipvlan" | "overlay" => {
            return Err(not_yet(&format!("the {} network driver is", opts.driver)));
        }
        d => {
            return Err(EngineError::not_found(format!(
                "could not find plugin {d} in v1 plugin registry: plugin not found"
            )));
        }
    }
    if !matches!(opts.scope.as_str(), "" | "local") {
        return Err(not_yet(&format!("the network scope {:?} is", opts.scope)));
    }
    if opts.ingress || opts.config_only || opts.config_from.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(not_yet("ingress, config-only and config-from networks are"));
    }
    if opts.enable_ipv4 == Some(false) {
        return Err(not_yet("networks without IPv4 are"));
    }
    let options = opts.options.clone().unwrap_or_default();
    check_driver_options(&options)?;
    let ipam = opts.ipam.clone().unwrap_or_default();
    if !matches!(ipam.driver.as_str(), "" | "default") {
        return Err(EngineError::not_found(format!(
            "could not find plugin {} in v1 plugin registry: plugin not found",
            ipam.driver
        )));
    }
    let mut subnets = Vec::new();
    for c in ipam.config.iter().flatten() {
        if c.subnet.is_empty() {
            return Err(EngineError::invalid(
                "invalid network config: a subnet is required for each IPAM config",
            ));
        }
        let config = SubnetConfig {
            subnet: c.subnet.clone(),
            ip_range: c.ip_range.clone(),
            gateway: c.gateway.clone(),
            auxiliary_addresses: c.auxiliary_addresses.clone().unwrap_or_default(),
        };
        let parsed = Subnet::parse(&config).map_err(EngineError::invalid_cause)?;
        subnets.push((parsed, c.ip_range.clone(), false));
    }
    let ipv6 = opts.enable_ipv6.unwrap_or(false) || subnets.iter().any(|s| s.0.is_ipv6());
    let id = crate::util::random_id();
    let interface = options
        .get("com.docker.network.bridge.name")
        .cloned()
        .unwrap_or_else(|| format!("br-{}", &id[..12]));
    let mut store = engine.store()?;
    let row = store.write(|tx| {
        if let Some(existing) = rows::by_name(tx, &name)? {
            return Err(EngineError::conflict(format!(
                "network with name {} already exists",
                existing.name
            )));
        }
        let taken: Vec<IpNet> = rows::list(tx)?
            .iter()
            .flat_map(subnets_of)
            .map(|s| s.net)
            .collect();
        for (s, _, _) in &subnets {
            if taken.iter().any(|t| ipam::overlaps(t, &s.net)) {
                return Err(EngineError::new(
                    ErrorKind::Forbidden,
                    "invalid pool request: Pool overlaps with other one on this address space",
                ));
            }
        }
        let mut all = subnets.clone();
        if !all.iter().any(|s| !s.0.is_ipv6()) {
            let net = ipam::free_subnet(&taken).map_err(EngineError::internal_cause)?;
            let s = Subnet::parse(&SubnetConfig {
                subnet: net.to_string(),
                ..Default::default()
            })
            .map_err(EngineError::internal_cause)?;
            all.insert(0, (s, String::new(), true));
        }
        if ipv6 && !all.iter().any(|s| s.0.is_ipv6()) {
            let s = Subnet::parse(&SubnetConfig {
                subnet: ipam::random_ula().to_string(),
                ..Default::default()
            })
            .map_err(EngineError::internal_cause)?;
            all.push((s, String::new(), true));
        }
        all.sort_by_key(|s| s.0.is_ipv6());
        let stored: Vec<StoredSubnet> = all
            .iter()
            .map(|(s, range, auto)| StoredSubnet {
                config: s.config(range),
                auto: *auto,
            })
            .collect();
        let row = NetworkRow {
            id: id.clone(),
            name: name.clone(),
            driver: "bridge".into(),
            created: now_nanos(),
            interface: Some(interface.clone()),
            internal: opts.internal,
            attachable: opts.attachable,
            ipv6,
            dns: true,
            subnets: serde_json::to_string(&stored).map_err(EngineError::internal_cause)?,
            options: serde_json::to_string(&options).map_err(EngineError::internal_cause)?,
            labels: serde_json::to_string(&opts.labels.clone().unwrap_or_default())
                .map_err(EngineError::internal_cause)?,
            // Echoed as given: null when the client sent none (docker-py), {} from the CLI.
            ipam_options: serde_json::to_string(&ipam.options)
                .map_err(EngineError::internal_cause)?,
        };
        if !rows::insert(tx, &row)? {
            return Err(EngineError::conflict(format!(
                "network with name {name} already exists, or bridge {interface} is taken"
            )));
        }
        network_event(tx, "create", &row, Map::new())?;
        Ok(row)
    })?;
    Ok(json!({"Id": row.id, "Warning": ""}))
}

fn labels_of(net: &NetworkRow) -> BTreeMap<String, String> {
    serde_json::from_str(&net.labels).unwrap_or_default()
}

/// A network as inspect shows it; `containers` for inspect (list leaves it empty).
pub fn network_json(tx: &Transaction, net: &NetworkRow, containers: bool) -> Result<Value> {
    let mut cs = Map::new();
    if containers {
        let subnets = subnets_of(net);
        let prefix = |ip: &str| -> String {
            let p = ip
                .parse::<std::net::IpAddr>()
                .ok()
                .and_then(|a| subnets.iter().find(|s| s.net.contains(&a)))
                .map(|s| s.net.prefix_len())
                .unwrap_or(0);
            format!("{ip}/{p}")
        };
        for ep in rows::endpoints_of_network(tx, &net.id)? {
            let Some(endpoint_id) = &ep.endpoint_id else {
                continue;
            };
            let name = container_rows::get(tx, &ep.container_id)?
                .map(|c| c.name)
                .unwrap_or_default();
            cs.insert(
                ep.container_id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": endpoint_id,
                    "MacAddress": ep.mac.clone().unwrap_or_default(),
                    "IPv4Address": ep.ipv4.as_deref().map(prefix).unwrap_or_default(),
                    "IPv6Address": ep.ipv6.as_deref().map(prefix).unwrap_or_default(),
                }),
            );
        }
    }
    let config: Vec<SubnetConfig> = stored_subnets(net).into_iter().map(|s| s.config).collect();
    let options: Value = serde_json::from_str(&net.options).unwrap_or(json!({}));
    let ipam_options: Value = serde_json::from_str(&net.ipam_options).unwrap_or(Value::Null);
    Ok(json!({
        "Name": net.name,
        "Id": net.id,
        "Created": rfc3339_nano(net.created),
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv4": true,
        "EnableIPv6": net.ipv6,
        "IPAM": {
            "Driver": "default",
            "Options": if is_predefined(net) { Value::Null } else { ipam_options },
            "Config": config,
        },
        "Internal": net.internal,
        "Attachable": net.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": cs,
        "Options": options,
        "Labels": labels_of(net),
    }))
}

/// `GET /networks/{id}`.
pub fn inspect(engine: &Engine, name: &str) -> Result<Value> {
    engine.store()?.read(|tx| {
        let net = find(tx, name)?;
        network_json(tx, &net, true)
    })
}

const LIST_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

/// `GET /networks` with moby's filters.
pub fn list(engine: &Engine, filters: &Filters) -> Result<Value> {
    filters
        .validate(LIST_FILTERS)
        .map_err(EngineError::invalid_cause)?;
    for t in filters.values("type") {
        if t != "custom" && t != "builtin" {
            return Err(EngineError::invalid(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = filters
        .optional_bool("dangling")
        .map_err(EngineError::invalid_cause)?;
    engine.store()?.read(|tx| {
        let mut out = Vec::new();
        for net in rows::list(tx)? {
            let any = |key: &str, f: &dyn Fn(&str) -> bool| {
                let v = filters.values(key);
                v.is_empty() || v.iter().any(|p| f(p))
            };
            if !any("driver", &|d| d == net.driver)
                || !any("id", &|p| regex_like(p, &net.id))
                || !any("name", &|p| regex_like(p, &net.name))
                || !any("scope", &|s| s == "local")
                || !any("type", &|t| (t == "builtin") == is_predefined(&net))
                || !filters.match_kv("label", &labels_of(&net))
            {
                continue;
            }
            if let Some(d) = dangling {
                let attached = !rows::endpoints_of_network(tx, &net.id)?.is_empty();
                if d == (attached || is_predefined(&net)) {
                    continue;
                }
            }
            out.push(network_json(tx, &net, false)?);
        }
        Ok(Value::Array(out))
    })
}

/// `DELETE /networks/{id}`.
pub fn remove(engine: &Engine, name: &str) -> Result<()> {
    engine.store()?.write(|tx| {
        let net = find(tx, name)?;
        if is_predefined(&net) {
            return Err(EngineError::new(
                ErrorKind::Forbidden,
                format!(
                    "{} is a pre-defined network and cannot be removed",
                    net.name
                ),
            ));
        }
        let active = rows::endpoints_of_network(tx, &net.id)?
            .iter()
            .any(|e| e.endpoint_id.is_some());
        if active {
            return Err(EngineError::new(
                ErrorKind::Forbidden,
                format!(
                    "error while removing network: network {} id {} has active endpoints",
                    net.name, net.id
                ),
            ));
        }
        rows::delete(tx, &net.id)?;
        network_event(tx, "destroy", &net, Map::new())
    })
}

/// `POST /networks/prune`: user-defined networks no running container uses.
pub fn prune(engine: &Engine, filters: &Filters) -> Result<Value> {
    filters
        .validate(&["until", "label", "label!"])
        .map_err(EngineError::invalid_cause)?;
    let until = super::images::until_filter(filters)?;
    let candidates = engine.store()?.read(|tx| {
        let mut out = Vec::new();
        for net in rows::list(tx)? {
            if is_predefined(&net) || until.is_some_and(|u| net.created >= u) {
                continue;
            }
            if !super::images::prune_labels_match(filters, &labels_of(&net)) {
                continue;
            }
            out.push(net.name);
        }
        Ok::<_, EngineError>(out)
    })?;
    let mut deleted = Vec::new();
    for name in candidates {
        match remove(engine, &name) {
            Ok(()) => deleted.push(name),
            Err(e) if e.kind == ErrorKind::Forbidden || e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({"NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }}))
}

/// `POST /networks/{id}/connect`.
pub fn connect(
    engine: &Engine,
    network: &str,
    container: &str,
    endpoint: Option<EndpointSettings>,
) -> Result<()> {
    let (net, row) = engine.store()?.read(|tx| {
        let net = find(tx, network)?;
        let row = super::containers::resolve(tx, container)?;
        Ok::<_, EngineError>((net, row))
    })?;
    let _lock = engine.lock_container(&row.id)?;
    let hc = row.host_config();
    if !attach::uses_bridge(&hc) || net.driver != "bridge" {
        return Err(EngineError::invalid(
            if hc.network_mode().starts_with("container:") {
                "container sharing network namespace with another container or host cannot be connected to any other network"
            } else {
                "container cannot be disconnected from host network or connected to host network"
            },
        ));
    }
    let settings = endpoint.unwrap_or_default();
    settings::check(&net, &settings)?;
    let added = engine.store()?.write(|tx| {
        Ok::<_, EngineError>(rows::add_endpoint(
            tx,
            &row.id,
            &net.id,
            &serde_json::to_string(&settings).map_err(EngineError::internal_cause)?,
        )?)
    })?;
    if !added {
        return Err(EngineError::new(
            ErrorKind::Forbidden,
            format!(
                "endpoint with name {} already exists in network {}",
                row.name, net.name
            ),
        ));
    }
    let state = super::containers::state::current(
        engine.paths(),
        &row.id,
        &super::containers::state::State::parse(&row.state),
    );
    if state.is_running()
        && let Err(e) = attach::connect_running(engine, &row, &hc, &net.id)
    {
        let _ = engine
            .store()?
            .write(|tx| Ok::<_, EngineError>(rows::remove_endpoint(tx, &row.id, &net.id)?));
        return Err(e);
    }
    Ok(())
}

/// `POST /networks/{id}/disconnect`.
pub fn disconnect(engine: &Engine, network: &str, container: &str, force: bool) -> Result<()> {
    let (net, row) = engine.store()?.read(|tx| {
        let net = find(tx, network)?;
        let row = super::containers::resolve(tx, container);
        Ok::<_, EngineError>((net, row))
    })?;
    let row = match row {
        Ok(r) => r,
        Err(e) if e.kind == ErrorKind::NotFound && force => return Ok(()),
        Err(e) => return Err(e),
    };
    let hc = row.host_config();
    if !attach::uses_bridge(&hc) || net.driver != "bridge" {
        return Err(EngineError::invalid(
            "container cannot be disconnected from host network or connected to host network",
        ));
    }
    let _lock = engine.lock_container(&row.id)?;
    let attached = engine.store()?.read(|tx| {
        Ok::<_, EngineError>(
            rows::endpoints_of_container(tx, &row.id)?
                .into_iter()
                .any(|e| e.network_id == net.id),
        )
    })?;
    if !attached {
        return Err(EngineError::new(
            ErrorKind::Forbidden,
            format!(
                "container {} is not connected to network {}",
                row.id, net.name
            ),
        ));
    }
    for e in attach::down_one(engine, &row.id, &net.id) {
        tracing::warn!(container = %row.id, error = %e, "network disconnect");
    }
    engine
        .store()?
        .write(|tx| Ok::<_, EngineError>(rows::remove_endpoint(tx, &row.id, &net.id)?))?;
    Ok(())
}
