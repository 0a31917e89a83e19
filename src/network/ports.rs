//! Published ports: what `HostConfig.PortBindings` and `PublishAllPorts` ask for, as moby's
//! `nat.ParsePortSpecs` left them (`"80/tcp": [{"HostIp": "", "HostPort": "8080"}]`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::PortBinding;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("invalid port specification: {0:?}")]
    Spec(String),
    #[error("invalid protocol {0:?}: only tcp, udp and sctp")]
    Protocol(String),
    #[error("invalid host IP address {0:?}")]
    HostIp(String),
}

/// Where random host ports come from: Linux's default ephemeral range, as dockerd uses.
pub const RANDOM_RANGE: (u16, u16) = (32768, 60999);

/// One container port to publish on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub container_port: u16,
    pub protocol: String,
    /// `0.0.0.0` when the binding named none.
    pub host_ip: IpAddr,
    /// The host ports it may take: a single one, a range (any one of them), or `None` for
    /// a random one.
    pub host_ports: Option<(u16, u16)>,
}

/// `80/tcp`, `53/udp`, `80` (tcp): the port and protocol of a `PortBindings` key.
pub fn parse_key(key: &str) -> Result<(u16, String), PortError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(PortError::Protocol(proto));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| PortError::Spec(key.to_string()))?;
    Ok((port, proto))
}

fn parse_host_ports(s: &str) -> Result<Option<(u16, u16)>, PortError> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    let bad = || PortError::Spec(s.to_string());
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// Every binding asked for, explicit ones first; with `publish_all`, each exposed port
/// that has none gets a random host port (moby's `nat` behaviour).
pub fn requests(
    bindings: &BTreeMap<String, Option<Vec<PortBinding>>>,
    publish_all: bool,
    exposed: &[String],
) -> Result<Vec<PortRequest>, PortError> {
    let mut out = Vec::new();
    let mut push = |key: &str, b: Option<&PortBinding>| -> Result<(), PortError> {
        let (container_port, protocol) = parse_key(key)?;
        let ip_text = b.map(|b| b.host_ip.trim()).unwrap_or("");
        let host_ip: IpAddr = if ip_text.is_empty() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            ip_text
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| PortError::HostIp(ip_text.to_string()))?
        };
        let host_ports = parse_host_ports(b.map(|b| b.host_port.as_str()).unwrap_or(""))?;
        out.push(PortRequest {
            container_port,
            protocol,
            host_ip,
            host_ports,
        });
        Ok(())
    };
    for (key, list) in bindings {
        match list.as_deref() {
            None | Some([]) => push(key, None)?,
            Some(list) => {
                for b in list {
                    push(key, Some(b))?;
                }
            }
        }
    }
    if publish_all {
        for key in exposed {
            if !bindings.contains_key(key) {
                push(key, None)?;
            }
        }
    }
    Ok(out)
}

/// Whether two host addresses can collide on one port: the same, or one of them is "all".
pub fn ips_collide(a: &IpAddr, b: &IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

/// Whether the host lets us bind `ip:port` now (nothing else listens there). The DNAT rule
/// would silently take the port from a process already serving it; dockerd's proxy fails.
pub fn bindable(ip: IpAddr, port: u16, protocol: &str) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::new(ip, port);
    match protocol {
        "udp" => std::net::UdpSocket::bind(addr).map(drop),
        // sctp: no std socket; the DNAT rule is all there is.
        "sctp" => Ok(()),
        _ => std::net::TcpListener::bind(addr).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: ip.into(),
            host_port: port.into(),
        }
    }

    #[test]
    fn keys_and_specs() {
        assert_eq!(parse_key("80/tcp").unwrap(), (80, "tcp".into()));
        assert_eq!(parse_key("53/UDP").unwrap(), (53, "udp".into()));
        assert_eq!(parse_key("8080").unwrap(), (8080, "tcp".into()));
        assert!(parse_key("x/tcp").is_err());
        assert!(parse_key("80/icmp").is_err());
        assert!(parse_key("0/tcp").is_err());
    }

    #[test]
    fn bindings_expand() {
        let mut m = BTreeMap::new();
        m.insert(
            "80/tcp".to_string(),
            Some(vec![b("", "8080"), b("127.0.0.1", "")]),
        );
        m.insert("53/udp".to_string(), Some(vec![b("", "5300-5310")]));
        let r = requests(&m, true, &["80/tcp".into(), "443/tcp".into()]).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].container_port, 53);
        assert_eq!(r[0].host_ports, Some((5300, 5310)));
        assert_eq!(r[1].host_ports, Some((8080, 8080)));
        assert!(r[1].host_ip.is_unspecified());
        assert_eq!(r[2].host_ip.to_string(), "127.0.0.1");
        assert_eq!(r[2].host_ports, None);
        assert_eq!(r[3].container_port, 443);
        let mut bad = BTreeMap::new();
        bad.insert("80/tcp".to_string(), Some(vec![b("", "http")]));
        assert_eq!(
            requests(&bad, false, &[]),
            Err(PortError::Spec("http".into()))
        );
        let mut bad = BTreeMap::new();
        bad.insert("80/tcp".to_string(), Some(vec![b("localhost", "80")]));
        assert!(requests(&bad, false, &[]).is_err());
    }

    #[test]
    fn collisions() {
        let all: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(ips_collide(&all, &lo));
        assert!(ips_collide(&lo, &lo));
        assert!(!ips_collide(&lo, &other));
    }
}
