//! netavark's JSON interface (v1.4, Debian 12's): `netavark --config DIR setup|teardown NETNS`
//! with the container's network options on stdin. One invocation per network a container
//! joins, so that `docker network connect/disconnect` are the same calls as start and stop;
//! the options are kept beside the container so teardown gets exactly what setup got.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum NetavarkError {
    #[error(
        "bridge networking needs netavark and aardvark-dns (Debian: apt-get install netavark aardvark-dns)"
    )]
    Missing,
    #[error("running netavark: {0}")]
    Spawn(#[source] std::io::Error),
    /// netavark's own message.
    #[error("{0}")]
    Failed(String),
    #[error("netavark answered something unexpected: {0}")]
    Reply(String),
}

/// One network as netavark knows it (`types::Network`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub dns_enabled: bool,
    pub driver: String,
    pub id: String,
    pub internal: bool,
    pub ipv6_enabled: bool,
    pub name: String,
    pub network_interface: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
    pub ipam_options: Option<BTreeMap<String, String>>,
    pub subnets: Option<Vec<Subnet>>,
    pub network_dns_servers: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: String,
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerNetworkOptions {
    pub aliases: Option<Vec<String>>,
    pub interface_name: String,
    pub static_ips: Option<Vec<String>>,
    pub static_mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_ip: String,
    pub host_port: u16,
    pub protocol: String,
    pub range: u16,
}

/// What a container asks of one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkOptions {
    pub container_id: String,
    pub container_name: String,
    pub networks: BTreeMap<String, PerNetworkOptions>,
    pub network_info: BTreeMap<String, Network>,
    pub port_mappings: Option<Vec<PortMapping>>,
    pub dns_servers: Option<Vec<String>>,
}

/// netavark's answer per network: the interfaces it made.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusBlock {
    #[serde(default)]
    pub interfaces: Option<BTreeMap<String, Interface>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Interface {
    pub mac_address: String,
}

/// The binaries and the state folder aardvark-dns keeps its per-network files in.
#[derive(Debug, Clone)]
pub struct Netavark {
    pub binary: PathBuf,
    pub aardvark: PathBuf,
    pub config_dir: PathBuf,
}

const SEARCH: &[&str] = &[
    "/usr/lib/podman",
    "/usr/libexec/podman",
    "/usr/local/libexec/podman",
];

fn find(name: &str) -> Option<PathBuf> {
    SEARCH
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Netavark {
    /// Find netavark and aardvark-dns where Debian and Fedora put them.
    pub fn locate(config_dir: PathBuf) -> Result<Netavark, NetavarkError> {
        Ok(Netavark {
            binary: find("netavark").ok_or(NetavarkError::Missing)?,
            aardvark: find("aardvark-dns").ok_or(NetavarkError::Missing)?,
            config_dir,
        })
    }

    fn run(
        &self,
        verb: &str,
        netns: &Path,
        opts: &NetworkOptions,
    ) -> Result<String, NetavarkError> {
        std::fs::create_dir_all(&self.config_dir).map_err(NetavarkError::Spawn)?;
        // netavark does not lock: a teardown deleting a bridge while a setup adds a veth to it
        // breaks both (Podman serialises the calls too). Bridges are the host's, so is the lock.
        let _lock = host_lock().map_err(NetavarkError::Spawn)?;
        let input = serde_json::to_vec(opts).map_err(|e| NetavarkError::Reply(e.to_string()))?;
        let mut child = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config_dir)
            .arg("--aardvark-binary")
            .arg(&self.aardvark)
            .arg(verb)
            .arg(netns)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(NetavarkError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&input).map_err(NetavarkError::Spawn)?;
        }
        let out = child.wait_with_output().map_err(NetavarkError::Spawn)?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            return Ok(stdout);
        }
        Err(NetavarkError::Failed(failure_text(
            &stdout,
            &String::from_utf8_lossy(&out.stderr),
        )))
    }

    /// Set the container's side up for each network in `opts`; the MAC address of each
    /// interface made, by interface name.
    pub fn setup(
        &self,
        netns: &Path,
        opts: &NetworkOptions,
    ) -> Result<BTreeMap<String, String>, NetavarkError> {
        let out = self.run("setup", netns, opts)?;
        let reply: BTreeMap<String, StatusBlock> =
            serde_json::from_str(&out).map_err(|e| NetavarkError::Reply(format!("{e}: {out}")))?;
        let mut macs = BTreeMap::new();
        for block in reply.into_values() {
            for (name, i) in block.interfaces.unwrap_or_default() {
                macs.insert(name, i.mac_address);
            }
        }
        Ok(macs)
    }

    pub fn teardown(&self, netns: &Path, opts: &NetworkOptions) -> Result<(), NetavarkError> {
        self.run("teardown", netns, opts).map(|_| ())
    }

    /// A container's DNS name changed (`docker rename`): rewrite its entry in aardvark-dns's
    /// file for `network` and have it reload (SIGHUP, as netavark does). netavark 1.4 has no
    /// call for this; the file is one line per container: `id ipv4 ipv6 name,alias,...`.
    pub fn rename_dns(
        &self,
        network: &str,
        container_id: &str,
        old: &str,
        new: &str,
    ) -> std::io::Result<()> {
        let _lock = host_lock()?;
        let path = self.config_dir.join("aardvark-dns").join(network);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let out = rename_in_entries(&text, container_id, old, new);
        if out == text {
            return Ok(());
        }
        let tmp = path.with_extension("berth-tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &path)?;
        if let Some(pid) = self.aardvark_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
        Ok(())
    }

    /// aardvark-dns's pid while it runs (it keeps its pid file in the config folder).
    pub fn aardvark_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.config_dir.join("aardvark-dns/aardvark.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// An exclusive lock for the whole host, released when the file is dropped.
fn host_lock() -> std::io::Result<std::fs::File> {
    let dir = Path::new("/run/lock");
    let path = if dir.is_dir() {
        dir.join("berth-netavark.lock")
    } else {
        std::env::temp_dir().join("berth-netavark.lock")
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    use std::os::fd::AsRawFd;
    // Bounded: a netavark stuck elsewhere must not hang this request (and its client).
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(e);
        }
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "another netavark call has held the network lock for 60 s",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The entries of one aardvark-dns network file with `old` replaced by `new` in the names of
/// `container_id`'s line; the first line (the gateway) and other lines are kept as they are.
fn rename_in_entries(text: &str, container_id: &str, old: &str, new: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let fields: Vec<&str> = body.split(' ').collect();
        if fields.len() == 4 && fields[0] == container_id {
            let names: Vec<&str> = fields[3]
                .split(',')
                .map(|n| if n == old { new } else { n })
                .collect();
            out.push_str(&format!(
                "{} {} {} {}",
                fields[0],
                fields[1],
                fields[2],
                names.join(",")
            ));
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// netavark prints `{"error": "..."}` on failure (and logs to stderr).
fn failure_text(stdout: &str, stderr: &str) -> String {
    #[derive(Deserialize)]
    struct Reply {
        error: String,
    }
    if let Ok(r) = serde_json::from_str::<Reply>(stdout.trim()) {
        return r.error;
    }
    let err: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("failed to connect to syslog"))
        .collect();
    let text = format!("{} {}", stdout.trim(), err.join(" ").trim());
    text.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_serialise_as_netavark_reads_them() {
        let mut networks = BTreeMap::new();
        networks.insert(
            "app".to_string(),
            PerNetworkOptions {
                aliases: Some(vec!["db".into()]),
                interface_name: "eth0".into(),
                static_ips: Some(vec!["10.202.0.2".into()]),
                static_mac: None,
            },
        );
        let opts = NetworkOptions {
            container_id: "c".into(),
            container_name: "n".into(),
            networks,
            network_info: BTreeMap::new(),
            port_mappings: Some(vec![PortMapping {
                container_port: 80,
                host_ip: String::new(),
                host_port: 8080,
                protocol: "tcp".into(),
                range: 1,
            }]),
            dns_servers: None,
        };
        let v = serde_json::to_value(&opts).unwrap();
        assert_eq!(v["networks"]["app"]["static_ips"][0], "10.202.0.2");
        assert_eq!(v["port_mappings"][0]["host_port"], 8080);
        assert!(v["dns_servers"].is_null());
    }

    #[test]
    fn renames_only_the_containers_entry() {
        let text = "10.0.0.1\nabc 10.0.0.2  web,abc12\ndef 10.0.0.3  web2,def12\n";
        assert_eq!(
            rename_in_entries(text, "abc", "web", "site"),
            "10.0.0.1\nabc 10.0.0.2  site,abc12\ndef 10.0.0.3  web2,def12\n"
        );
        assert_eq!(rename_in_entries(text, "zzz", "web", "site"), text);
    }

    #[test]
    fn failure_text_prefers_the_json_error() {
        assert_eq!(
            failure_text(
                r#"{"error":"IO error: boom"}"#,
                "failed to connect to syslog: x"
            ),
            "IO error: boom"
        );
        assert_eq!(
            failure_text("", "failed to connect to syslog: x\nbad"),
            "bad"
        );
    }
}
