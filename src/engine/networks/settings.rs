//! A container's side of networks: the endpoints made at create from `NetworkMode` and
//! `NetworkingConfig`, their checks, and `NetworkSettings` as inspect and ps show them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rusqlite::Transaction;
use serde_json::{Map, Value, json};

use crate::model::{Config, EndpointSettings, HostConfig, NetworkingConfig};
use crate::store::containers::ContainerRow;
use crate::store::networks::{self as rows, NetworkRow};

use super::super::{EngineError, ErrorKind, Result};
use super::{find, stored_subnets, subnets_of};

fn not_yet(what: &str) -> EngineError {
    EngineError::new(
        ErrorKind::NotImplemented,
        format!("{what} not supported by berth yet"),
    )
}

/// moby's checks of one endpoint's settings against its network.
pub fn check(net: &NetworkRow, ep: &EndpointSettings) -> Result<()> {
    if ep.links.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(not_yet("legacy links (--link) are"));
    }
    // The bridge driver reads only its own (com.docker.network.*) endpoint options; others
    // are kept and shown, as Docker does.
    if let Some(k) = ep
        .driver_opts
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| k.starts_with("com.docker.network."))
    {
        return Err(not_yet(&format!("the endpoint driver option {k} is")));
    }
    if ep.gw_priority != 0 {
        return Err(not_yet("gateway priorities (gw-priority) are"));
    }
    let ipam = ep.ipam_config.clone().unwrap_or_default();
    if ipam.link_local_ips.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(not_yet("link-local addresses are"));
    }
    let user_defined = !super::is_predefined(net);
    if !user_defined && ep.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(EngineError::invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    for (text, v6) in [(&ipam.ipv4_address, false), (&ipam.ipv6_address, true)] {
        if text.is_empty() {
            continue;
        }
        if !user_defined {
            return Err(EngineError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let family = if v6 { "IPv6" } else { "IPv4" };
        let ip: IpAddr = text
            .parse()
            .ok()
            .filter(|ip: &IpAddr| ip.is_ipv6() == v6)
            .ok_or_else(|| EngineError::invalid(format!("invalid {family} address: {text}")))?;
        let configured = stored_subnets(net).into_iter().any(|s| {
            !s.auto
                && s.config
                    .subnet
                    .parse::<ipnet::IpNet>()
                    .is_ok_and(|n| n.contains(&ip))
        });
        if !configured {
            let any_user = stored_subnets(net).iter().any(|s| !s.auto);
            return Err(EngineError::invalid(if any_user {
                format!("no configured subnet or ip-range contain the IP address {ip}")
            } else {
                "user specified IP address is supported only when connecting to networks with user configured subnets".to_string()
            }));
        }
        if !subnets_of(net).iter().any(|s| s.usable(ip)) {
            return Err(EngineError::invalid(format!(
                "invalid address {ip}: the network address, the broadcast address or the gateway"
            )));
        }
    }
    if !ep.mac_address.is_empty() && !valid_mac(&ep.mac_address) {
        return Err(EngineError::invalid(format!(
            "invalid MAC address: {}",
            ep.mac_address
        )));
    }
    Ok(())
}

fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Record the endpoints a new container asks for: its `NetworkMode`'s network first, then the
/// other `EndpointsConfig` entries (API ≥ 1.44 may name several).
pub fn plan(
    tx: &Transaction,
    id: &str,
    config: &Config,
    hc: &HostConfig,
    networking: &NetworkingConfig,
) -> Result<()> {
    let mode = hc.network_mode();
    let endpoints = networking.endpoints_config.clone().unwrap_or_default();
    if !super::attach::uses_bridge(hc) {
        if let Some(other) = endpoints.keys().find(|k| *k != mode && *k != "default") {
            let other_net = find(tx, other)?;
            if other_net.name != mode {
                return Err(EngineError::invalid(
                    "conflicting options: container sharing network namespace with another container or host cannot be connected to any other network",
                ));
            }
        }
        if !config.mac_address.is_empty() {
            return Err(EngineError::invalid(
                "conflicting options: mac-address and the network mode",
            ));
        }
        return Ok(());
    }
    let primary = find(tx, mode)?;
    let mut planned: Vec<(NetworkRow, EndpointSettings)> = Vec::new();
    let mut first = None;
    let mut rest = Vec::new();
    for (key, settings) in endpoints {
        // The CLI names the default network `default` (moby: the bridge).
        let key = if key == "default" {
            "bridge".to_string()
        } else {
            key
        };
        let net = find(tx, &key)?;
        let settings = settings.unwrap_or_default();
        if net.id == primary.id {
            first = Some(settings);
        } else {
            rest.push((net, settings));
        }
    }
    let mut first = first.unwrap_or_default();
    if first.mac_address.is_empty() && !config.mac_address.is_empty() {
        first.mac_address = config.mac_address.clone();
    }
    planned.push((primary, first));
    planned.extend(rest);
    for (net, settings) in &planned {
        if net.driver != "bridge" {
            return Err(EngineError::invalid(
                "conflicting options: container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        check(net, settings)?;
        let text = serde_json::to_string(settings).map_err(EngineError::internal_cause)?;
        rows::add_endpoint(tx, id, &net.id, &text)?;
    }
    Ok(())
}

fn empty_endpoint() -> Value {
    json!({
        "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
        "DriverOpts": null, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
    })
}

/// `NetworkSettings` of a container: its endpoints, the addresses they hold while it runs,
/// the ports it publishes.
pub fn network_settings(
    tx: &Transaction,
    row: &ContainerRow,
    config: &Config,
    hc: &HostConfig,
    running: bool,
    sandbox_key: &str,
) -> Result<Value> {
    let mut networks = Map::new();
    let mut top = json!({
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
        "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "EndpointID": "",
        "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
    });
    let mode = hc.network_mode();
    if mode == "host" || mode == "none" {
        let mut ep = empty_endpoint();
        if let Some(net) = rows::by_name(tx, mode)? {
            ep["NetworkID"] = json!(net.id);
        }
        networks.insert(mode.to_string(), ep);
    }
    let mut up = false;
    for e in rows::endpoints_of_container(tx, &row.id)? {
        let Some(net) = rows::get(tx, &e.network_id)? else {
            continue;
        };
        let settings: EndpointSettings = serde_json::from_str(&e.settings).unwrap_or_default();
        let mut ep = empty_endpoint();
        ep["IPAMConfig"] = match &settings.ipam_config {
            Some(c) => json!(c),
            None => Value::Null,
        };
        ep["Aliases"] = match &settings.aliases {
            Some(a) if !a.is_empty() => json!(a),
            _ => Value::Null,
        };
        ep["NetworkID"] = json!(net.id);
        ep["MacAddress"] = json!(settings.mac_address);
        if let Some(d) = &settings.driver_opts {
            ep["DriverOpts"] = json!(d);
        }
        let user_defined = !super::is_predefined(&net);
        if user_defined {
            let mut names = vec![row.name.clone()];
            names.extend(settings.aliases.clone().unwrap_or_default());
            names.push(row.id[..12].to_string());
            names.dedup();
            ep["DNSNames"] = json!(names);
        }
        if running && let Some(endpoint_id) = &e.endpoint_id {
            up = true;
            let subnets = subnets_of(&net);
            let of = |ip: &Option<String>| -> Option<(String, u8, String)> {
                let ip: IpAddr = ip.as_deref()?.parse().ok()?;
                let s = subnets.iter().find(|s| s.net.contains(&ip))?;
                Some((ip.to_string(), s.net.prefix_len(), s.gateway.to_string()))
            };
            ep["EndpointID"] = json!(endpoint_id);
            ep["MacAddress"] = json!(e.mac.clone().unwrap_or_default());
            if let Some((ip, p, gw)) = of(&e.ipv4) {
                ep["IPAddress"] = json!(ip);
                ep["IPPrefixLen"] = json!(p);
                ep["Gateway"] = json!(gw);
            }
            if let Some((ip, p, gw)) = of(&e.ipv6) {
                ep["GlobalIPv6Address"] = json!(ip);
                ep["GlobalIPv6PrefixLen"] = json!(p);
                ep["IPv6Gateway"] = json!(gw);
            }
            // The deprecated top-level fields describe the default bridge only (moby).
            if net.name == "bridge" {
                for k in [
                    "EndpointID",
                    "Gateway",
                    "IPAddress",
                    "IPPrefixLen",
                    "IPv6Gateway",
                    "GlobalIPv6Address",
                    "GlobalIPv6PrefixLen",
                    "MacAddress",
                ] {
                    top[k] = ep[k].clone();
                }
            }
        }
        networks.insert(net.name.clone(), ep);
    }
    if running && up {
        top["SandboxKey"] = json!(sandbox_key);
        top["SandboxID"] = json!(sandbox_id(&row.id));
        top["Ports"] = ports_map(tx, row, config, hc)?;
    }
    top["Networks"] = Value::Object(networks);
    Ok(top)
}

/// A stable 64-hex ID for the container's network namespace (moby's sandbox).
fn sandbox_id(id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("sandbox:{id}").as_bytes()))
}

/// `NetworkSettings.Ports`: every exposed or published port, with the host ports held
/// (`null` for a port exposed but not published).
fn ports_map(
    tx: &Transaction,
    row: &ContainerRow,
    config: &Config,
    hc: &HostConfig,
) -> Result<Value> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let keys = config
        .exposed_ports
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .chain(hc.port_bindings.keys().cloned());
    for k in keys {
        let k = if k.contains('/') {
            k
        } else {
            format!("{k}/tcp")
        };
        m.entry(k).or_default();
    }
    for p in rows::host_ports_of(tx, &row.id)? {
        m.entry(format!("{}/{}", p.container_port, p.protocol))
            .or_default()
            .push(json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}));
    }
    Ok(Value::Object(
        m.into_iter()
            .map(|(k, v)| (k, if v.is_empty() { Value::Null } else { json!(v) }))
            .collect(),
    ))
}

/// `Ports` of `GET /containers/json`: published ones, and exposed ones without a host port.
pub fn ps_ports(
    tx: &Transaction,
    row: &ContainerRow,
    config: &Config,
    running: bool,
) -> Result<Value> {
    if !running {
        return Ok(json!([]));
    }
    let held = rows::host_ports_of(tx, &row.id)?;
    let mut out = Vec::new();
    for p in &held {
        out.push(json!({
            "IP": p.host_ip, "PrivatePort": p.container_port, "PublicPort": p.host_port,
            "Type": p.protocol,
        }));
    }
    for (k, _) in config.exposed_ports.iter().flatten() {
        if let Ok((port, proto)) = crate::network::ports::parse_key(k)
            && !held
                .iter()
                .any(|h| h.container_port == port && h.protocol == proto)
        {
            out.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    Ok(Value::Array(out))
}
