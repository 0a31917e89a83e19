//! `POST /containers/{id}/start`: mount the root, write the bundle, hand the container to a new
//! monitor, and record what happened. Also the monitor's callbacks (`berth internal
//! container-event <id> died|restarted`), which bring the store up to date.

use std::path::{Path, PathBuf};

use serde_json::{Map, json};

use crate::monitor::launch;
use crate::runtime::{self, EtcFiles, NamespaceMode, NamespaceModes, SpecInput};
use crate::store::containers::{self as rows, ContainerRow};

use super::super::{Engine, EngineError, ErrorKind, Result};
use super::inspect::container_event;
use super::state::{ContainerStatus, State, current};
use super::{resolve, rootfs};
use crate::engine::networks::attach::NetUp;
use crate::model::HostConfig;

/// Where the monitor binary is: beside the running `berth`.
fn monitor_bin() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.with_file_name("berth-monitor"))
}

fn save_state(engine: &Engine, row: &ContainerRow, s: &State) -> Result<()> {
    engine
        .store()?
        .write(|tx| Ok::<_, EngineError>(rows::set_state(tx, &row.id, &s.to_text())?))
}

/// The namespace a `*Mode` asks for: `host`, `container:<name|id>`, or a new one.
fn namespace(engine: &Engine, mode: &str, kind: &str) -> Result<NamespaceMode> {
    if mode == "host" {
        return Ok(NamespaceMode::Host);
    }
    if let Some(other) = mode.strip_prefix("container:") {
        let row = engine.store()?.read(|tx| resolve(tx, other))?;
        let s = current(engine.paths(), &row.id, &State::parse(&row.state));
        if s.status != ContainerStatus::Running {
            return Err(EngineError::conflict(format!(
                "cannot join network namespace of a non running container: container {} is {}",
                row.id, s.status
            )));
        }
        return Ok(NamespaceMode::Path(PathBuf::from(format!(
            "/proc/{}/ns/{kind}",
            s.pid
        ))));
    }
    Ok(NamespaceMode::New)
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container, written into its folder.
fn write_etc(
    dir: &Path,
    hostname: &str,
    host_network: bool,
    hc: &HostConfig,
    net: Option<&NetUp>,
    link_hosts: &[String],
) -> Result<EtcFiles> {
    let hostname_path = dir.join("hostname");
    std::fs::write(&hostname_path, format!("{hostname}\n"))?;
    let hosts_path = dir.join("hosts");
    let mut hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
    };
    for extra in hc.extra_hosts.iter().flatten() {
        // host:ip (or host=ip in newer clients); `host-gateway` is an address of the host.
        if let Some((h, ip)) = extra.split_once('=').or_else(|| extra.split_once(':')) {
            let ip = match (ip, net.and_then(|n| n.gateway)) {
                ("host-gateway", Some(gw)) => gw.to_string(),
                ("host-gateway", None) if host_network => "127.0.0.1".to_string(),
                ("host-gateway", None) => {
                    return Err(EngineError::invalid(
                        "host-gateway needs a bridge network: the container has none",
                    ));
                }
                (ip, _) => ip.to_string(),
            };
            hosts.push_str(&format!("{ip}\t{h}\n"));
        }
    }
    for line in link_hosts {
        hosts.push_str(line);
        hosts.push('\n');
    }
    // The container's own addresses under its hostname, as Docker writes them.
    for ip in net.iter().flat_map(|n| n.addresses.iter()) {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    std::fs::write(&hosts_path, hosts)?;
    let resolv_path = dir.join("resolv.conf");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let search = hc.dns_search.clone().unwrap_or_default();
    let options = hc.dns_options.clone().unwrap_or_default();
    let mut out = String::new();
    let mut servers = hc.dns.clone().unwrap_or_default();
    // On a network with DNS its resolver answers (and forwards --dns or the host's servers).
    if let Some(n) = net.filter(|n| !n.dns_servers.is_empty()) {
        servers = n.dns_servers.iter().map(|s| s.to_string()).collect();
    }
    if servers.is_empty() {
        servers = host_resolv
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .map(|s| s.trim().to_string())
            .filter(|s| host_network || !(s.starts_with("127.") || s == "::1"))
            .collect();
        // A private network namespace cannot reach the host's loopback resolver: Docker's defaults.
        if servers.is_empty() {
            servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    } else if let Some(l) = host_resolv.lines().find(|l| l.starts_with("search ")) {
        out.push_str(l);
        out.push('\n');
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    std::fs::write(&resolv_path, out)?;
    Ok(EtcFiles {
        hosts: hosts_path,
        hostname: hostname_path,
        resolv_conf: resolv_path,
    })
}

/// The /etc files of the container whose network namespace this one joins, copied.
fn copy_etc(other: &Path, dir: &Path) -> Result<EtcFiles> {
    let copy = |name: &str| -> Result<PathBuf> {
        let to = dir.join(name);
        std::fs::copy(other.join(name), &to)?;
        Ok(to)
    };
    Ok(EtcFiles {
        hosts: copy("hosts")?,
        hostname: copy("hostname")?,
        resolv_conf: copy("resolv.conf")?,
    })
}

fn init_binary() -> Option<PathBuf> {
    [
        "/usr/bin/catatonit",
        "/usr/libexec/podman/catatonit",
        "/usr/bin/tini-static",
        "/usr/bin/tini",
        "/usr/sbin/docker-init",
        "/usr/bin/docker-init",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Start a container; `Ok(false)` if it was already running (304).
pub fn start(engine: &Engine, name: &str) -> Result<bool> {
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    // A pod member lives in its infra container's namespaces: that one runs first.
    crate::engine::pods::before_start(engine, &row.id)?;
    let _lock = engine.lock_container(&row.id)?;
    // Re-read under the lock: another process may have started it meanwhile.
    let row = engine.store()?.read(|tx| resolve(tx, &row.id))?;
    let stored = State::parse(&row.state);
    let state = current(engine.paths(), &row.id, &stored);
    if state.paused {
        return Err(EngineError::conflict(
            "cannot start a paused container, try unpause instead",
        ));
    }
    if state.is_running() {
        return Ok(false);
    }
    let hc = row.host_config();
    let result = launch(engine, &row, &stored, &state, &hc);
    drop(_lock);
    // moby: a start that fails removes an AutoRemove container, so that a client waiting
    // for `condition=removed` (docker run --rm) is answered instead of waiting forever.
    if result.is_err()
        && hc.auto_remove
        && let Err(e) = super::remove::remove(engine, &row.id, true, true)
    {
        tracing::warn!(id = %row.id, error = %e.message, "removing an AutoRemove container whose start failed");
    }
    result
}

/// Everything of a start after the checks: root, spec, monitor; undone on failure.
fn launch(
    engine: &Engine,
    row: &ContainerRow,
    stored: &State,
    state: &State,
    hc: &HostConfig,
) -> Result<bool> {
    let config = row.config();
    let paths = engine.paths().clone();
    let dir = paths.container_dir(&row.id);
    let run = paths.container_run_dir(&row.id);
    std::fs::create_dir_all(&dir)?;
    // What a previous run's network left (its exit callback may not have come yet).
    crate::engine::networks::attach::bring_down(engine, &row.id);
    // Nothing of a previous run may confuse the new monitor, but clients already waiting to
    // attach (their files in attach-pending/) must stay announced.
    std::fs::create_dir_all(run.join(crate::monitor::ATTACH_PENDING_DIR))?;
    if let Ok(entries) = std::fs::read_dir(&run) {
        for e in entries.flatten() {
            if e.file_name() != crate::monitor::ATTACH_PENDING_DIR {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    let root = rootfs::setup(engine, &row.id, &row.image_id)?;
    let net_mode = hc.network_mode();
    let result = (|| -> Result<launch::StartReport> {
        let mut config = config.clone();
        let mut hostname = match config.hostname.as_str() {
            "" => row.id[..12].to_string(),
            h => h.to_string(),
        };
        // moby: a container in another's network namespace takes its hostname and /etc files.
        let network_owner = match net_mode.strip_prefix("container:") {
            Some(other) => {
                let o = engine.store()?.read(|tx| resolve(tx, other))?;
                let h = o.config().hostname;
                if !h.is_empty() {
                    hostname = h.clone();
                    config.hostname = h;
                }
                Some(paths.container_dir(&o.id))
            }
            None => None,
        };
        let net = crate::engine::networks::attach::bring_up(engine, row, &config, hc)?;
        let linked = crate::engine::networks::links::at_start(engine, row, hc)?;
        // Docker puts the link variables before the container's own (which win).
        if !linked.env.is_empty() {
            let mut env = linked.env.clone();
            env.extend(config.env().iter().cloned());
            config.env = Some(env);
        }
        let etc = match &network_owner {
            Some(other_dir) => copy_etc(other_dir, &dir)?,
            None => write_etc(
                &dir,
                &hostname,
                net_mode == "host",
                hc,
                net.as_ref(),
                &linked.hosts,
            )?,
        };
        let network = match &net {
            Some(up) => NamespaceMode::Own(up.netns.clone()),
            None => namespace(engine, net_mode, "net")?,
        };
        let namespaces = NamespaceModes {
            network,
            ipc: namespace(engine, &hc.ipc_mode, "ipc")?,
            pid: namespace(engine, &hc.pid_mode, "pid")?,
            uts: namespace(engine, &hc.uts_mode, "uts")?,
        };
        let init = if hc.init == Some(true) {
            Some(init_binary().ok_or_else(|| {
                EngineError::internal("--init needs catatonit or tini on the host")
            })?)
        } else {
            None
        };
        let volumes = volume_mounts(engine, &row.id, &root)?;
        let spec = runtime::build_spec(&SpecInput {
            id: &row.id,
            rootfs: &root,
            config: &config,
            host_config: hc,
            etc,
            cgroups_path: format!("/berth/{}", row.id),
            namespaces,
            init_binary: init.as_deref(),
            shm_path: None,
            volumes,
        })
        .map_err(EngineError::from)?;
        let profile = spec
            .process()
            .as_ref()
            .and_then(|p| p.apparmor_profile().as_deref());
        if profile == Some(runtime::apparmor::DEFAULT_PROFILE) {
            runtime::apparmor::ensure_default_loaded().map_err(EngineError::internal_cause)?;
        }
        let spec_bytes = serde_json::to_vec_pretty(&spec).map_err(EngineError::internal_cause)?;
        std::fs::write(dir.join("config.json"), spec_bytes)?;
        let log = super::log_settings(hc);
        let max_size = log
            .max_size
            .as_deref()
            .map(parse_size)
            .transpose()?
            .unwrap_or(0);
        let policy = &hc.restart_policy;
        let me = std::env::current_exe()?;
        let monitor_config = json!({
            "id": row.id,
            "runtime": engine.config().runtime,
            "runtime_root": paths.runtime_root(),
            "bundle": dir,
            "log": {
                "driver": if log.driver == "none" { "none" } else { "json-file" },
                "path": super::log_path(engine, &row.id),
                "max_size": max_size,
                "max_file": log.max_file.max(1),
            },
            "tty": config.tty,
            "open_stdin": config.open_stdin,
            "stdin_once": config.stdin_once,
            "restart": {
                "name": if policy.is_none() { "no" } else { policy.name.as_str() },
                "max_retries": policy.maximum_retry_count,
            },
            "event_command": [
                me, "internal", "container-event",
                "--data-root", paths.data_root, "--run-root", paths.run_root,
                "--runtime", engine.config().runtime, row.id,
            ],
            // Health checks run in the monitor; earlier results stay in the log.
            "healthcheck": config.healthcheck,
            "shell": config.shell,
            "health": state.health,
        });
        std::fs::write(
            run.join(crate::monitor::CONFIG_FILE),
            serde_json::to_vec(&monitor_config).map_err(EngineError::internal_cause)?,
        )?;
        launch::spawn(&run, &monitor_bin()?).map_err(|e| start_error(&e.to_string()))
    })();
    match result {
        Ok(report) => {
            let mut s = current(engine.paths(), &row.id, stored);
            if s.status != ContainerStatus::Running && s.status != ContainerStatus::Exited {
                s.status = ContainerStatus::Running;
            }
            s.pid = report.pid as i64;
            s.error.clear();
            save_state(engine, row, &s)?;
            engine
                .store()?
                .write(|tx| container_event(tx, "start", row, Map::new()))?;
            Ok(true)
        }
        Err(e) => {
            let mut s = stored.clone();
            s.error = e.message.clone();
            if e.kind == ErrorKind::InvalidParameter {
                s.exit_code = if e.message.contains("permission denied") {
                    126
                } else {
                    127
                };
            }
            let _ = save_state(engine, row, &s);
            crate::engine::networks::attach::bring_down(engine, &row.id);
            let _ = rootfs::teardown(engine, &row.id);
            Err(e)
        }
    }
}

/// The container's volumes, a new one filled from the image first (copy-up); each one's
/// `mount` event as moby sends it.
fn volume_mounts(engine: &Engine, id: &str, root: &Path) -> Result<Vec<runtime::VolumeMount>> {
    let mut out = Vec::new();
    for (m, data) in crate::engine::volumes::mounts_for(engine, id)? {
        std::fs::create_dir_all(&data)?;
        crate::engine::volume_options::mount_if_needed(engine, &m.volume, &data)?;
        if m.copy_up {
            crate::engine::volumes::copy_up(root, &m.destination, &data).map_err(|e| {
                EngineError::internal(format!(
                    "copying the image's {} into volume {}: {e}",
                    m.destination, m.volume
                ))
            })?;
        }
        let mut attrs = Map::new();
        attrs.insert("container".into(), json!(id));
        attrs.insert("destination".into(), json!(m.destination));
        attrs.insert("driver".into(), json!("local"));
        attrs.insert("propagation".into(), json!(""));
        attrs.insert("read/write".into(), json!((!m.read_only).to_string()));
        engine.store()?.write(|tx| {
            Ok::<_, EngineError>(crate::store::events::append(
                tx,
                crate::util::time::now_nanos(),
                "volume",
                "mount",
                &m.volume,
                &attrs,
            )?)
        })?;
        out.push(runtime::VolumeMount {
            destination: m.destination,
            source: data,
            read_only: m.read_only,
        });
    }
    // Host folders taken with --volumes-from are bound the same way.
    for b in crate::engine::volumes::inherited_binds(engine, id)? {
        out.push(runtime::VolumeMount {
            destination: b.destination,
            source: b.source.into(),
            read_only: b.read_only,
        });
    }
    Ok(out)
}

/// Docker's classification of a runtime start error: a missing or non-executable command is
/// the user's (400), anything else is ours.
fn start_error(msg: &str) -> EngineError {
    let user = [
        "executable file not found",
        "no such file or directory",
        "permission denied",
        "not a directory",
        "unable to find user",
    ];
    if user.iter().any(|u| msg.contains(u)) {
        EngineError::invalid(msg.to_string())
    } else {
        EngineError::internal(msg.to_string())
    }
}

/// `10m`, `1g`, `512k`, `100` (bytes) as docker's `--log-opt max-size` takes them.
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].trim_end_matches('b').trim_end_matches('i');
            let m: u64 = match unit {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(EngineError::invalid(format!("invalid size: '{s}'"))),
            };
            (&t[..i], m)
        }
        None => (t.as_str(), 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| EngineError::invalid(format!("invalid size: '{s}'")))?;
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("10x").is_err());
    }
}
