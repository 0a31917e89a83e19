//! Address management for bridge networks: subnets as Docker's `IPAM.Config` writes them,
//! the next free address, and a free subnet for a network created without one.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// One entry of a network's `IPAM.Config`, as stored and shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    #[serde(rename = "Subnet", default)]
    pub subnet: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(rename = "Gateway", default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Addresses kept out of allocation (Docker's `--aux-address name=ip`).
    #[serde(
        rename = "AuxiliaryAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    BadCidr(String),
    #[error("invalid gateway address {0}")]
    BadGateway(String),
    #[error("no matching subnet for aux-address {0}")]
    BadAux(String),
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    Exhausted(String),
    #[error("no free address pool left for a new network")]
    NoPool,
}

/// A subnet parsed: the network, where addresses are handed out, and the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub net: IpNet,
    pub range: IpNet,
    pub gateway: IpAddr,
    pub aux: BTreeMap<String, IpAddr>,
}

impl Subnet {
    /// Parse and complete a configured subnet (Docker's default gateway: the first address).
    /// Docker accepts `172.28.5.1/24` for `172.28.5.0/24`; so does this.
    pub fn parse(c: &SubnetConfig) -> Result<Subnet, IpamError> {
        let net: IpNet = c
            .subnet
            .parse()
            .map_err(|_| IpamError::BadCidr(c.subnet.clone()))?;
        let net = net.trunc();
        let range = if c.ip_range.is_empty() {
            net
        } else {
            let r: IpNet = c
                .ip_range
                .parse()
                .map_err(|_| IpamError::BadCidr(c.ip_range.clone()))?;
            let r = r.trunc();
            if !net.contains(&r) {
                return Err(IpamError::BadCidr(c.ip_range.clone()));
            }
            r
        };
        let gateway = if c.gateway.is_empty() {
            first_host(&net).ok_or_else(|| IpamError::BadCidr(c.subnet.clone()))?
        } else {
            let g: IpAddr = c
                .gateway
                .parse()
                .map_err(|_| IpamError::BadGateway(c.gateway.clone()))?;
            if !net.contains(&g) {
                return Err(IpamError::BadGateway(c.gateway.clone()));
            }
            g
        };
        let mut aux = BTreeMap::new();
        for (k, v) in &c.auxiliary_addresses {
            let ip: IpAddr = v
                .parse()
                .ok()
                .filter(|ip| net.contains(ip))
                .ok_or_else(|| IpamError::BadAux(v.clone()))?;
            aux.insert(k.clone(), ip);
        }
        Ok(Subnet {
            net,
            range,
            gateway,
            aux,
        })
    }

    pub fn is_ipv6(&self) -> bool {
        matches!(self.net, IpNet::V6(_))
    }

    /// The config as shown: the completed gateway included.
    pub fn config(&self, ip_range: &str) -> SubnetConfig {
        SubnetConfig {
            subnet: self.net.to_string(),
            ip_range: ip_range.to_string(),
            gateway: self.gateway.to_string(),
            auxiliary_addresses: self
                .aux
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        }
    }

    /// The lowest address of the range that is not the network's own, its broadcast, the
    /// gateway, or in `used`.
    pub fn next_free(&self, used: &HashSet<IpAddr>) -> Result<IpAddr, IpamError> {
        // An IPv6 /64 has more hosts than any network will hold: the first million suffice.
        for ip in self.range.hosts().take(1 << 20) {
            if ip == self.gateway || used.contains(&ip) || !self.usable(ip) {
                continue;
            }
            return Ok(ip);
        }
        Err(IpamError::Exhausted(self.net.to_string()))
    }

    /// Whether `ip` may be given to a container: inside the subnet, not its network or
    /// broadcast address, not the gateway, not reserved.
    pub fn usable(&self, ip: IpAddr) -> bool {
        if !self.net.contains(&ip)
            || ip == self.gateway
            || ip == self.net.network()
            || self.aux.values().any(|a| *a == ip)
        {
            return false;
        }
        match self.net {
            IpNet::V4(n) if n.prefix_len() < 31 => ip != IpAddr::V4(n.broadcast()),
            _ => true,
        }
    }
}

/// ipnet counts an IPv6 subnet's own address (the subnet-router anycast) as a host: skipped.
fn first_host(net: &IpNet) -> Option<IpAddr> {
    net.hosts().find(|ip| *ip != net.network())
}

/// Whether two subnets share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Where networks created without a subnet get theirs: /24s of 10.202.0.0/16 (the default
/// bridge is 10.201.0.0/16), skipping any that overlaps a network or a host route.
pub fn free_subnet(taken: &[IpNet]) -> Result<Ipv4Net, IpamError> {
    let pool: Ipv4Net = "10.202.0.0/16".parse().expect("constant");
    let routes = host_routes();
    pool.subnets(24)
        .map_err(|_| IpamError::NoPool)?
        .find(|s| {
            let s = IpNet::V4(*s);
            !taken.iter().chain(routes.iter()).any(|t| overlaps(t, &s))
        })
        .ok_or(IpamError::NoPool)
}

/// A unique local /64 for an IPv6 network created without an IPv6 subnet (Docker allocates
/// from its ULA pool the same way).
pub fn random_ula() -> IpNet {
    let b: [u8; 5] = rand::random();
    let s = format!(
        "fd{:02x}:{:02x}{:02x}:{:02x}{:02x}::/64",
        b[0], b[1], b[2], b[3], b[4]
    );
    s.parse().expect("well-formed")
}

/// The host's IPv4 routes (not the default one): a new network must not shadow them.
fn host_routes() -> Vec<IpNet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None;
            }
            // /proc/net/route prints addresses in host (little-endian) order.
            let dest = std::net::Ipv4Addr::from(u32::from_be(dest));
            let prefix = u32::from_be(mask).leading_ones() as u8;
            Ipv4Net::new(dest, prefix).ok().map(IpNet::V4)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str, g: &str, r: &str) -> SubnetConfig {
        SubnetConfig {
            subnet: s.into(),
            gateway: g.into(),
            ip_range: r.into(),
            ..Default::default()
        }
    }

    #[test]
    fn aux_addresses_are_reserved() {
        let mut c = cfg("10.9.0.0/24", "", "");
        c.auxiliary_addresses.insert("a".into(), "10.9.0.2".into());
        let s = Subnet::parse(&c).unwrap();
        assert_eq!(
            s.next_free(&HashSet::new()).unwrap().to_string(),
            "10.9.0.3"
        );
        assert!(!s.usable("10.9.0.2".parse().unwrap()));
        assert_eq!(s.config("").auxiliary_addresses["a"], "10.9.0.2");
        c.auxiliary_addresses.insert("b".into(), "10.8.0.1".into());
        assert_eq!(Subnet::parse(&c), Err(IpamError::BadAux("10.8.0.1".into())));
    }

    #[test]
    fn gateway_defaults_to_the_first_address() {
        let s = Subnet::parse(&cfg("172.28.5.7/24", "", "")).unwrap();
        assert_eq!(s.net.to_string(), "172.28.5.0/24");
        assert_eq!(s.gateway.to_string(), "172.28.5.1");
        let s = Subnet::parse(&cfg("2001:db8::/64", "", "")).unwrap();
        assert_eq!(s.gateway.to_string(), "2001:db8::1");
        assert!(s.is_ipv6());
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            Subnet::parse(&cfg("nonsense", "", "")),
            Err(IpamError::BadCidr("nonsense".into()))
        );
        assert!(Subnet::parse(&cfg("10.0.0.0/24", "10.0.1.1", "")).is_err());
        assert!(Subnet::parse(&cfg("10.0.0.0/24", "", "10.0.1.0/28")).is_err());
    }

    #[test]
    fn next_free_skips_gateway_used_and_broadcast() {
        let s = Subnet::parse(&cfg("10.9.0.0/30", "", "")).unwrap();
        let mut used = HashSet::new();
        assert_eq!(s.next_free(&used).unwrap().to_string(), "10.9.0.2");
        used.insert("10.9.0.2".parse().unwrap());
        assert!(
            s.next_free(&used).is_err(),
            "only .1 (gateway) and .2 are hosts"
        );
        let s = Subnet::parse(&cfg("10.9.0.0/24", "10.9.0.254", "10.9.0.128/25")).unwrap();
        assert_eq!(
            s.next_free(&HashSet::new()).unwrap().to_string(),
            "10.9.0.129"
        );
        assert!(!s.usable("10.9.0.255".parse().unwrap()));
        assert!(!s.usable("10.9.0.254".parse().unwrap()));
        assert!(s.usable("10.9.0.3".parse().unwrap()));
    }

    #[test]
    fn free_subnets_avoid_taken_ones() {
        let a = free_subnet(&[]).unwrap();
        let b = free_subnet(&[IpNet::V4(a)]).unwrap();
        assert_ne!(a, b);
        assert!(!overlaps(&IpNet::V4(a), &IpNet::V4(b)));
        let big: IpNet = "10.202.0.0/17".parse().unwrap();
        let c = free_subnet(&[big]).unwrap();
        assert!(!overlaps(&big, &IpNet::V4(c)));
        assert!(random_ula().to_string().starts_with("fd"));
    }
}
