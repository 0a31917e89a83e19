//! A container's network while it runs: a pinned network namespace, one netavark setup per
//! network it is attached to (the first one also carries the published ports), and the
//! addresses and host ports it holds, recorded in the store. Everything is undone by
//! [`bring_down`], which the monitor's exit callback, `docker rm`, the next start and
//! disconnect call; it carries on past errors and is safe to call again.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Map, json};

use crate::model::{Config, EndpointSettings, HostConfig};
use crate::network::ipam::Subnet;
use crate::network::netavark::{self, NetworkOptions, PerNetworkOptions, PortMapping};
use crate::network::ports::{self, PortRequest};
use crate::network::{Netavark, netns};
use crate::store::containers::ContainerRow;
use crate::store::networks::{self as rows, EndpointRow, HostPortRow, NetworkRow};

use super::super::{Engine, EngineError, Result};
use super::{network_event, subnets_of};

/// What the container's /etc files need to know of its network.
#[derive(Debug, Clone, Default)]
pub struct NetUp {
    pub netns: PathBuf,
    /// The container's own addresses, primary first.
    pub addresses: Vec<IpAddr>,
    /// Resolvers on networks with DNS (aardvark-dns on each gateway).
    pub dns_servers: Vec<IpAddr>,
    /// The primary network's gateway: an address of the host (`host-gateway`).
    pub gateway: Option<IpAddr>,
}

/// Where the container's namespace is pinned.
pub fn netns_path(engine: &Engine, id: &str) -> PathBuf {
    engine
        .paths()
        .run_root
        .join("netns")
        .join(&id[..id.len().min(16)])
}

/// The options each network was set up with, for its teardown.
fn options_dir(engine: &Engine, id: &str) -> PathBuf {
    engine.paths().container_run_dir(id).join("net")
}

fn netavark(engine: &Engine) -> Result<Netavark> {
    Netavark::locate(engine.paths().run_root.join("netavark"))
        .map_err(|e| EngineError::internal(e.to_string()).with_source(e))
}

/// Whether this network mode gets a namespace of its own with interfaces in it.
pub fn uses_bridge(hc: &HostConfig) -> bool {
    let m = hc.network_mode();
    !(m == "host" || m == "none" || m.starts_with("container:"))
}

/// Set up the container's networks before its start; `None` for host, none and container
/// modes.
pub fn bring_up(
    engine: &Engine,
    row: &ContainerRow,
    config: &Config,
    hc: &HostConfig,
) -> Result<Option<NetUp>> {
    if !uses_bridge(hc) {
        return Ok(None);
    }
    let nv = netavark(engine)?;
    let endpoints = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(rows::endpoints_of_container(tx, &row.id)?))?;
    if endpoints.is_empty() {
        return Err(EngineError::not_found(format!(
            "network {} not found",
            hc.network_mode()
        )));
    }
    let requests = publish_requests(config, hc)?;
    let path = netns_path(engine, &row.id);
    netns::remove(&path).map_err(EngineError::internal_cause)?;
    netns::create(&path).map_err(EngineError::internal_cause)?;
    let mut up = NetUp {
        netns: path,
        ..Default::default()
    };
    for (i, ep) in endpoints.iter().enumerate() {
        let publish = if i == 0 { &requests[..] } else { &[] };
        match up_one(engine, &nv, row, hc, ep, &format!("eth{i}"), publish) {
            Ok(one) => {
                up.addresses.extend(one.addresses);
                if let Some(d) = one.dns {
                    up.dns_servers.push(d);
                }
                if i == 0 {
                    up.gateway = one.gateway;
                }
            }
            Err(e) => {
                bring_down(engine, &row.id);
                return Err(e);
            }
        }
    }
    Ok(Some(up))
}

/// Ports to publish, checked.
pub fn publish_requests(config: &Config, hc: &HostConfig) -> Result<Vec<PortRequest>> {
    let exposed = config.exposed_port_keys();
    let reqs = ports::requests(&hc.port_bindings, hc.publish_all_ports, &exposed)
        .map_err(EngineError::invalid_cause)?;
    if reqs.iter().any(|r| r.host_ip.is_ipv6()) {
        return Err(EngineError::new(
            super::super::ErrorKind::NotImplemented,
            "publishing ports on IPv6 host addresses is not supported by berth yet",
        ));
    }
    Ok(reqs)
}

struct OneUp {
    addresses: Vec<IpAddr>,
    dns: Option<IpAddr>,
    gateway: Option<IpAddr>,
}

/// Allocate, record and set up one network; undone on failure.
fn up_one(
    engine: &Engine,
    nv: &Netavark,
    row: &ContainerRow,
    hc: &HostConfig,
    ep: &EndpointRow,
    interface: &str,
    publish: &[PortRequest],
) -> Result<OneUp> {
    let settings: EndpointSettings = serde_json::from_str(&ep.settings).unwrap_or_default();
    let endpoint_id = crate::util::random_id();
    let (net, live, held) = engine.store()?.write(|tx| {
        let net = rows::get(tx, &ep.network_id)?.ok_or_else(|| {
            EngineError::not_found(format!("network {} not found", ep.network_id))
        })?;
        let used: HashSet<IpAddr> = rows::used_addresses(tx, &net.id)?
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let mut live = ep.clone();
        live.endpoint_id = Some(endpoint_id.clone());
        live.interface = Some(interface.to_string());
        live.mac = (!settings.mac_address.is_empty()).then(|| settings.mac_address.clone());
        for subnet in subnets_of(&net) {
            let asked = match subnet.is_ipv6() {
                false => settings
                    .ipam_config
                    .as_ref()
                    .map(|c| c.ipv4_address.as_str()),
                true => settings
                    .ipam_config
                    .as_ref()
                    .map(|c| c.ipv6_address.as_str()),
            }
            .filter(|s| !s.is_empty());
            let slot = if subnet.is_ipv6() {
                &mut live.ipv6
            } else {
                &mut live.ipv4
            };
            if slot.is_some() {
                continue; // a second subnet of the same family: the first one serves
            }
            let ip = match asked {
                Some(a) => {
                    let ip: IpAddr = a
                        .parse()
                        .map_err(|_| EngineError::invalid(format!("invalid IP address: {a}")))?;
                    if !subnet.net.contains(&ip) {
                        continue; // belongs to the other family's subnet, or none
                    }
                    if !subnet.usable(ip) || used.contains(&ip) {
                        return Err(EngineError::conflict(format!(
                            "failed to set up container networking: Address already in use: {ip}"
                        )));
                    }
                    ip
                }
                None => subnet
                    .next_free(&used)
                    .map_err(|e| EngineError::internal(e.to_string()))?,
            };
            *slot = Some(ip.to_string());
        }
        if !rows::set_live(tx, &live)? {
            return Err(EngineError::conflict(
                "failed to set up container networking: Address already in use",
            ));
        }
        let held = allocate_ports(tx, row, &endpoint_id, publish)?;
        Ok::<_, EngineError>((net, live, held))
    })?;
    let opts = options(row, hc, &net, &live, &settings, &held);
    let file = options_dir(engine, &row.id).join(format!("{}.json", net.id));
    let undo = |engine: &Engine| {
        let _ = std::fs::remove_file(&file);
        let _ = engine.store().and_then(|mut s| {
            s.write(|tx| {
                rows::clear_live(tx, &row.id, &net.id)?;
                if !publish.is_empty() {
                    rows::release_host_ports(tx, &row.id)?;
                }
                Ok::<_, EngineError>(())
            })
        });
    };
    // Written before the setup: whatever it leaves behind, teardown finds its options.
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(file.parent().expect("in a folder"))?;
        std::fs::write(
            &file,
            serde_json::to_vec(&opts).map_err(std::io::Error::other)?,
        )
    };
    if let Err(e) = write() {
        undo(engine);
        return Err(e.into());
    }
    let macs = match nv.setup(&netns_path(engine, &row.id), &opts) {
        Ok(m) => m,
        Err(e) => {
            undo(engine);
            return Err(setup_error(row, &endpoint_id, e));
        }
    };
    // The default bridge stays between containers, as docker0 does (see network::keeper).
    if net.name == "bridge"
        && let Some(bridge) = &net.interface
        && let Err(e) = crate::network::keeper::keep(bridge)
    {
        tracing::warn!(bridge = %bridge, error = %e, "keeping the default bridge");
    }
    if net.dns
        && let Some(pid) = nv.aardvark_pid()
    {
        // aardvark-dns outlives this process: not in the API unit's cgroup.
        crate::monitor::cgroup::move_to_monitors_cgroup(pid);
    }
    let mut live = live;
    if let Some(mac) = macs.get(interface) {
        live.mac = Some(mac.clone());
    }
    engine.store()?.write(|tx| {
        rows::set_live(tx, &live)?;
        let mut attrs = Map::new();
        attrs.insert("container".into(), json!(row.id));
        network_event(tx, "connect", &net, attrs)
    })?;
    let addresses = [&live.ipv4, &live.ipv6]
        .into_iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect();
    let gateway = subnets_of(&net).first().map(|s| s.gateway);
    Ok(OneUp {
        addresses,
        dns: if net.dns { gateway } else { None },
        gateway,
    })
}

/// Docker's text for a failed port programming; netavark's own otherwise.
fn setup_error(row: &ContainerRow, endpoint_id: &str, e: netavark::NetavarkError) -> EngineError {
    EngineError::internal(format!(
        "failed to set up container networking for {} ({}): {e}",
        row.name,
        &endpoint_id[..12]
    ))
    .with_source(e)
}

/// Take host ports for the requests, in the store (unique there) and free on the host.
fn allocate_ports(
    tx: &rusqlite::Transaction,
    row: &ContainerRow,
    endpoint_id: &str,
    reqs: &[PortRequest],
) -> Result<Vec<HostPortRow>> {
    let mut taken = rows::host_ports(tx)?;
    let mut out = Vec::new();
    for r in reqs {
        let (lo, hi) = r.host_ports.unwrap_or(ports::RANDOM_RANGE);
        let mut in_store = false;
        let mut bind_error = None;
        let mut chosen = None;
        for p in lo..=hi {
            let clash = taken.iter().any(|t| {
                t.protocol == r.protocol
                    && t.host_port == p
                    && t.host_ip
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ports::ips_collide(&ip, &r.host_ip))
            });
            if clash {
                in_store = true;
                continue;
            }
            if let Err(e) = ports::bindable(r.host_ip, p, &r.protocol) {
                bind_error = Some(e);
                continue;
            }
            chosen = Some(p);
            break;
        }
        let Some(port) = chosen else {
            let spec = if lo == hi {
                format!("{}:{lo}", r.host_ip)
            } else {
                format!("{}:{lo}-{hi}", r.host_ip)
            };
            let ep = format!("{} ({})", row.name, &endpoint_id[..12]);
            return Err(match (in_store, bind_error) {
                (false, Some(e)) => EngineError::internal(format!(
                    "driver failed programming external connectivity on endpoint {ep}: failed to bind host port for {spec}:{}/{}: {}",
                    r.container_port,
                    r.protocol,
                    io_text(&e)
                )),
                _ => EngineError::internal(format!(
                    "driver failed programming external connectivity on endpoint {ep}: Bind for {spec} failed: port is already allocated"
                )),
            });
        };
        let hp = HostPortRow {
            protocol: r.protocol.clone(),
            host_ip: r.host_ip.to_string(),
            host_port: port,
            container_id: row.id.clone(),
            container_port: r.container_port,
        };
        if !rows::add_host_port(tx, &hp)? {
            return Err(EngineError::internal(format!(
                "Bind for {}:{port} failed: port is already allocated",
                r.host_ip
            )));
        }
        taken.push(hp.clone());
        out.push(hp);
    }
    Ok(out)
}

/// Go's text for the common bind errors.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        _ => e.to_string(),
    }
}

/// The netavark input for one network of one container.
fn options(
    row: &ContainerRow,
    hc: &HostConfig,
    net: &NetworkRow,
    live: &EndpointRow,
    settings: &EndpointSettings,
    held: &[HostPortRow],
) -> NetworkOptions {
    let mut aliases: Vec<String> = settings.aliases.clone().unwrap_or_default();
    aliases.retain(|a| a != &row.name);
    // Docker's DNSNames: the name, the aliases and the short ID.
    aliases.push(row.id[..12].to_string());
    aliases.dedup();
    let static_ips: Vec<String> = [&live.ipv4, &live.ipv6]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let mut per = BTreeMap::new();
    per.insert(
        net.name.clone(),
        PerNetworkOptions {
            aliases: net.dns.then_some(aliases),
            interface_name: live.interface.clone().unwrap_or_default(),
            static_ips: Some(static_ips),
            static_mac: (!settings.mac_address.is_empty()).then(|| settings.mac_address.clone()),
        },
    );
    let mut info = BTreeMap::new();
    info.insert(net.name.clone(), netavark_network(net));
    let mappings: Vec<PortMapping> = held
        .iter()
        .map(|p| PortMapping {
            container_port: p.container_port,
            host_ip: if p.host_ip == "0.0.0.0" {
                String::new()
            } else {
                p.host_ip.clone()
            },
            host_port: p.host_port,
            protocol: p.protocol.clone(),
            range: 1,
        })
        .collect();
    NetworkOptions {
        container_id: row.id.clone(),
        container_name: row.name.clone(),
        networks: per,
        network_info: info,
        port_mappings: (!mappings.is_empty()).then_some(mappings),
        // --dns on a network with DNS: aardvark-dns forwards to these instead of the host's.
        dns_servers: hc.dns.clone().filter(|d| !d.is_empty() && net.dns),
    }
}

fn netavark_network(net: &NetworkRow) -> netavark::Network {
    let opts: BTreeMap<String, String> = serde_json::from_str(&net.options).unwrap_or_default();
    let mut options = BTreeMap::new();
    // Docker isolates bridge networks from each other.
    options.insert("isolate".to_string(), "true".to_string());
    if let Some(mtu) = opts.get("com.docker.network.driver.mtu") {
        options.insert("mtu".to_string(), mtu.clone());
    }
    let mut ipam = BTreeMap::new();
    ipam.insert("driver".to_string(), "host-local".to_string());
    netavark::Network {
        dns_enabled: net.dns,
        driver: "bridge".into(),
        id: net.id.clone(),
        internal: net.internal,
        ipv6_enabled: net.ipv6,
        name: net.name.clone(),
        network_interface: net.interface.clone(),
        options: Some(options),
        ipam_options: Some(ipam),
        subnets: Some(
            subnets_of(net)
                .into_iter()
                .map(|s: Subnet| netavark::Subnet {
                    subnet: s.net.to_string(),
                    gateway: Some(s.gateway.to_string()),
                })
                .collect(),
        ),
        network_dns_servers: None,
    }
}

/// Tear one network of a container down (disconnect); the store forgets its addresses.
pub fn down_one(engine: &Engine, id: &str, network_id: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let file = options_dir(engine, id).join(format!("{network_id}.json"));
    if file.exists() {
        match (netavark(engine), std::fs::read(&file)) {
            (Ok(nv), Ok(bytes)) => match serde_json::from_slice::<NetworkOptions>(&bytes) {
                Ok(opts) => {
                    if let Err(e) = nv.teardown(&netns_path(engine, id), &opts) {
                        errors.push(e.to_string());
                    }
                    if opts.port_mappings.is_some() {
                        release_ports(engine, id, &mut errors);
                    }
                }
                Err(e) => errors.push(e.to_string()),
            },
            (Err(e), _) => errors.push(e.message),
            (_, Err(e)) => errors.push(e.to_string()),
        }
        let _ = std::fs::remove_file(&file);
    }
    let r = engine.store().and_then(|mut s| {
        s.write(|tx| {
            let was_up = rows::endpoints_of_container(tx, id)?
                .iter()
                .any(|e| e.network_id == network_id && e.endpoint_id.is_some());
            rows::clear_live(tx, id, network_id)?;
            if was_up && let Some(net) = rows::get(tx, network_id)? {
                let mut attrs = Map::new();
                attrs.insert("container".into(), json!(id));
                network_event(tx, "disconnect", &net, attrs)?;
            }
            Ok::<_, EngineError>(())
        })
    });
    if let Err(e) = r {
        errors.push(e.message);
    }
    errors
}

fn release_ports(engine: &Engine, id: &str, errors: &mut Vec<String>) {
    if let Err(e) = engine
        .store()
        .and_then(|mut s| s.write(|tx| Ok::<_, EngineError>(rows::release_host_ports(tx, id)?)))
    {
        errors.push(e.message);
    }
}

/// Undo everything of the container's network; errors are logged, not returned: the
/// caller is cleaning up and must go on.
pub fn bring_down(engine: &Engine, id: &str) {
    let mut errors = Vec::new();
    let dir = options_dir(engine, id);
    let mut networks: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    // Endpoints the store thinks are up but whose options are gone (a crash between the two).
    if let Ok(eps) = engine
        .store()
        .and_then(|mut s| s.read(|tx| Ok::<_, EngineError>(rows::endpoints_of_container(tx, id)?)))
    {
        for e in eps.into_iter().filter(|e| e.endpoint_id.is_some()) {
            if !networks.contains(&e.network_id) {
                networks.push(e.network_id);
            }
        }
    }
    for n in &networks {
        errors.extend(down_one(engine, id, n));
    }
    release_ports(engine, id, &mut errors);
    if let Err(e) = netns::remove(&netns_path(engine, id)) {
        errors.push(e.to_string());
    }
    let _ = std::fs::remove_dir(&dir);
    for e in errors {
        tracing::warn!(container = %id, error = %e, "network teardown");
    }
}

/// Connect a running container to one more network (`docker network connect`).
pub fn connect_running(
    engine: &Engine,
    row: &ContainerRow,
    hc: &HostConfig,
    network_id: &str,
) -> Result<()> {
    let nv = netavark(engine)?;
    let eps = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(rows::endpoints_of_container(tx, &row.id)?))?;
    let ep = eps
        .iter()
        .find(|e| e.network_id == network_id)
        .ok_or_else(|| EngineError::internal("endpoint vanished"))?;
    let used: HashSet<&str> = eps.iter().filter_map(|e| e.interface.as_deref()).collect();
    let interface = (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !used.contains(n.as_str()))
        .expect("unbounded");
    up_one(engine, &nv, row, hc, ep, &interface, &[]).map(|_| ())
}

/// For `berth boot`: the kernel's side went with the reboot; the store forgets it too.
pub fn forget_all(tx: &rusqlite::Transaction) -> Result<()> {
    tx.execute_batch(
        "UPDATE endpoints SET endpoint_id = NULL, interface = NULL, ipv4 = NULL, ipv6 = NULL,
         mac = NULL; DELETE FROM host_ports;",
    )
    .map_err(crate::store::StoreError::from)?;
    Ok(())
}

/// One container's run state is known lost (its run folder is gone): forget its addresses.
pub fn forget_container(tx: &rusqlite::Transaction, id: &str) -> Result<()> {
    for e in rows::endpoints_of_container(tx, id)? {
        rows::clear_live(tx, id, &e.network_id)?;
    }
    rows::release_host_ports(tx, id)?;
    Ok(())
}

/// `docker rename` of a container: its name in the DNS of the networks it is up on.
pub fn renamed(engine: &Engine, id: &str, old: &str, new: &str) {
    let Ok(nv) = netavark(engine) else { return };
    let nets = engine.store().and_then(|mut s| {
        s.read(|tx| {
            let mut out = Vec::new();
            for e in rows::endpoints_of_container(tx, id)? {
                if e.endpoint_id.is_some()
                    && let Some(n) = rows::get(tx, &e.network_id)?
                    && n.dns
                {
                    out.push(n.name);
                }
            }
            Ok::<_, EngineError>(out)
        })
    });
    for n in nets.unwrap_or_default() {
        if let Err(e) = nv.rename_dns(&n, id, old, new) {
            tracing::warn!(container = %id, network = %n, error = %e, "renaming in DNS");
        }
    }
}
