//! Rows for networks, the containers attached to them (endpoints), and the host ports
//! containers publish while they run.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: i64,
    pub interface: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub ipv6: bool,
    pub dns: bool,
    /// JSON `[{"Subnet","Gateway","IPRange"}]`.
    pub subnets: String,
    pub options: String,
    pub labels: String,
    pub ipam_options: String,
}

/// One container's attachment to one network; the live columns are set while it is up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRow {
    pub container_id: String,
    pub network_id: String,
    pub ordinal: i64,
    pub settings: String,
    pub endpoint_id: Option<String>,
    pub interface: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub mac: Option<String>,
}

/// A host port held by a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortRow {
    pub protocol: String,
    pub host_ip: String,
    pub host_port: u16,
    pub container_id: String,
    pub container_port: u16,
}

const COLS: &str = "id, name, driver, created, interface, internal, attachable, ipv6, dns, \
                    subnets, options, labels, ipam_options";
const EP_COLS: &str =
    "container_id, network_id, ordinal, settings, endpoint_id, interface, ipv4, ipv6, mac";

fn row(r: &Row) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow {
        id: r.get(0)?,
        name: r.get(1)?,
        driver: r.get(2)?,
        created: r.get(3)?,
        interface: r.get(4)?,
        internal: r.get(5)?,
        attachable: r.get(6)?,
        ipv6: r.get(7)?,
        dns: r.get(8)?,
        subnets: r.get(9)?,
        options: r.get(10)?,
        labels: r.get(11)?,
        ipam_options: r.get(12)?,
    })
}

fn ep_row(r: &Row) -> rusqlite::Result<EndpointRow> {
    Ok(EndpointRow {
        container_id: r.get(0)?,
        network_id: r.get(1)?,
        ordinal: r.get(2)?,
        settings: r.get(3)?,
        endpoint_id: r.get(4)?,
        interface: r.get(5)?,
        ipv4: r.get(6)?,
        ipv6: r.get(7)?,
        mac: r.get(8)?,
    })
}

/// `false` where a UNIQUE (or other) constraint refused the write.
fn unless_constraint(r: rusqlite::Result<usize>) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn get(tx: &Transaction, id: &str) -> Result<Option<NetworkRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLS} FROM networks WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?)
}

pub fn by_name(tx: &Transaction, name: &str) -> Result<Option<NetworkRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLS} FROM networks WHERE name = ?1"),
            [name],
            row,
        )
        .optional()?)
}

pub fn list(tx: &Transaction) -> Result<Vec<NetworkRow>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {COLS} FROM networks ORDER BY created, name"
    ))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Insert a network; `false` when the name (or the bridge) is taken.
pub fn insert(tx: &Transaction, n: &NetworkRow) -> Result<bool> {
    let r = tx.execute(
        &format!(
            "INSERT INTO networks ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            n.id,
            n.name,
            n.driver,
            n.created,
            n.interface,
            n.internal,
            n.attachable,
            n.ipv6,
            n.dns,
            n.subnets,
            n.options,
            n.labels,
            n.ipam_options
        ],
    );
    unless_constraint(r)
}

pub fn delete(tx: &Transaction, id: &str) -> Result<()> {
    tx.execute("DELETE FROM networks WHERE id = ?1", [id])?;
    Ok(())
}

pub fn endpoints_of_container(tx: &Transaction, container_id: &str) -> Result<Vec<EndpointRow>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {EP_COLS} FROM endpoints WHERE container_id = ?1 ORDER BY ordinal"
    ))?;
    let rows = stmt.query_map([container_id], ep_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn endpoints_of_network(tx: &Transaction, network_id: &str) -> Result<Vec<EndpointRow>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {EP_COLS} FROM endpoints WHERE network_id = ?1 ORDER BY container_id"
    ))?;
    let rows = stmt.query_map([network_id], ep_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Attach a container to a network (not yet up); `false` if it already is.
pub fn add_endpoint(
    tx: &Transaction,
    container_id: &str,
    network_id: &str,
    settings: &str,
) -> Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO endpoints (container_id, network_id, ordinal, settings)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(ordinal), -1) + 1 FROM endpoints
                          WHERE container_id = ?1), ?3)",
        params![container_id, network_id, settings],
    )?;
    Ok(n == 1)
}

pub fn remove_endpoint(tx: &Transaction, container_id: &str, network_id: &str) -> Result<bool> {
    let n = tx.execute(
        "DELETE FROM endpoints WHERE container_id = ?1 AND network_id = ?2",
        params![container_id, network_id],
    )?;
    Ok(n == 1)
}

/// Record what an endpoint holds while it is up; `false` if an address is taken.
pub fn set_live(tx: &Transaction, ep: &EndpointRow) -> Result<bool> {
    let r = tx.execute(
        "UPDATE endpoints SET endpoint_id = ?3, interface = ?4, ipv4 = ?5, ipv6 = ?6, mac = ?7
         WHERE container_id = ?1 AND network_id = ?2",
        params![
            ep.container_id,
            ep.network_id,
            ep.endpoint_id,
            ep.interface,
            ep.ipv4,
            ep.ipv6,
            ep.mac
        ],
    );
    unless_constraint(r)
}

/// The endpoint is down: its addresses are free again.
pub fn clear_live(tx: &Transaction, container_id: &str, network_id: &str) -> Result<()> {
    tx.execute(
        "UPDATE endpoints SET endpoint_id = NULL, interface = NULL, ipv4 = NULL, ipv6 = NULL,
         mac = NULL WHERE container_id = ?1 AND network_id = ?2",
        params![container_id, network_id],
    )?;
    Ok(())
}

/// Addresses in use on a network.
pub fn used_addresses(tx: &Transaction, network_id: &str) -> Result<Vec<String>> {
    let mut stmt = tx.prepare(
        "SELECT ipv4 FROM endpoints WHERE network_id = ?1 AND ipv4 IS NOT NULL
         UNION ALL SELECT ipv6 FROM endpoints WHERE network_id = ?1 AND ipv6 IS NOT NULL",
    )?;
    let rows = stmt.query_map([network_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn host_port_row(r: &Row) -> rusqlite::Result<HostPortRow> {
    Ok(HostPortRow {
        protocol: r.get(0)?,
        host_ip: r.get(1)?,
        host_port: r.get(2)?,
        container_id: r.get(3)?,
        container_port: r.get(4)?,
    })
}

const HP_COLS: &str = "protocol, host_ip, host_port, container_id, container_port";

pub fn host_ports(tx: &Transaction) -> Result<Vec<HostPortRow>> {
    let mut stmt = tx.prepare(&format!("SELECT {HP_COLS} FROM host_ports"))?;
    let rows = stmt.query_map([], host_port_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn host_ports_of(tx: &Transaction, container_id: &str) -> Result<Vec<HostPortRow>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {HP_COLS} FROM host_ports WHERE container_id = ?1 ORDER BY host_port"
    ))?;
    let rows = stmt.query_map([container_id], host_port_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Hold a host port; `false` if it is taken.
pub fn add_host_port(tx: &Transaction, p: &HostPortRow) -> Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO host_ports (protocol, host_ip, host_port, container_id,
         container_port) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            p.protocol,
            p.host_ip,
            p.host_port,
            p.container_id,
            p.container_port
        ],
    )?;
    Ok(n == 1)
}

pub fn release_host_ports(tx: &Transaction, container_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM host_ports WHERE container_id = ?1",
        [container_id],
    )?;
    Ok(())
}
