//! Legacy links (`--link name:alias`) on the default bridge, as Docker 28 keeps them: stored
//! in `HostConfig.Links` as `/child:/parent/alias`; at start the parent gets the child's
//! address in /etc/hosts under the alias, the child's hostname and name, and the
//! `ALIAS_PORT_*`, `ALIAS_NAME`, `ALIAS_ENV_*` variables (moby's `links.ToEnv`). The child
//! shows the link name in `docker ps`; `DELETE /containers/parent/alias?link=true` drops it.

use std::collections::BTreeMap;

use rusqlite::Transaction;

use crate::model::{Config, HostConfig};
use crate::store::containers::{self as container_rows, ContainerRow};
use crate::store::networks as rows;

use super::super::containers::resolve;
use super::super::{Engine, EngineError, ErrorKind, Result};

/// `name:alias`, `name` (alias = name), or the stored `/name:/parent/alias`.
fn parse(link: &str) -> Result<(String, String)> {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(EngineError::invalid(format!("invalid link format: {link}")));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// The links of a new container named `parent`, checked and in Docker's stored form.
pub fn normalise(tx: &Transaction, parent: &str, hc: &HostConfig) -> Result<Option<Vec<String>>> {
    let Some(links) = hc.links.as_ref().filter(|l| !l.is_empty()) else {
        return Ok(hc.links.clone());
    };
    let mode = hc.network_mode();
    if mode == "host" {
        return Err(EngineError::invalid(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ));
    }
    if mode != "bridge" {
        return Err(EngineError::new(
            ErrorKind::NotImplemented,
            "legacy links (--link) outside the default bridge network are not supported by berth yet",
        ));
    }
    let mut out = Vec::new();
    for l in links {
        let (name, alias) = parse(l)?;
        let child = resolve(tx, &name).map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                EngineError::invalid(format!("could not get container for {name}: {}", e.message))
            } else {
                e
            }
        })?;
        if child.host_config().network_mode() == "host" {
            return Err(EngineError::invalid(
                "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
            ));
        }
        out.push(format!("/{}:/{parent}/{alias}", child.name));
    }
    Ok(Some(out))
}

/// What a starting container gets from its links: /etc/hosts lines and environment.
#[derive(Debug, Default, Clone)]
pub struct Linked {
    pub hosts: Vec<String>,
    pub env: Vec<String>,
}

/// Resolve the links of `row` now: every child must run and be on the default bridge.
pub fn at_start(engine: &Engine, row: &ContainerRow, hc: &HostConfig) -> Result<Linked> {
    let mut out = Linked::default();
    for l in hc.links.iter().flatten() {
        let (name, alias) = parse(l)?;
        let link_name = format!("/{}/{alias}", row.name);
        let (child, ip) = engine.store()?.read(|tx| {
            let child = resolve(tx, &name)?;
            let bridge = rows::by_name(tx, "bridge")?;
            let ip = rows::endpoints_of_container(tx, &child.id)?
                .into_iter()
                .find(|e| bridge.as_ref().is_some_and(|b| b.id == e.network_id))
                .and_then(|e| e.ipv4);
            Ok::<_, EngineError>((child, ip))
        })?;
        let state = super::super::containers::state::current(
            engine.paths(),
            &child.id,
            &super::super::containers::state::State::parse(&child.state),
        );
        if !state.is_running() {
            return Err(EngineError::internal(format!(
                "Cannot link to a non running container: /{} AS {link_name}",
                child.name
            )));
        }
        let Some(ip) = ip else {
            return Err(EngineError::internal(format!(
                "Cannot link to /{}, as it does not belong to the default network",
                child.name
            )));
        };
        let cfg = child.config();
        let mut names = vec![alias.clone(), cfg.hostname.clone()];
        if alias != child.name {
            names.push(child.name.clone());
        }
        names.dedup();
        out.hosts.push(format!("{ip}\t{}", names.join(" ")));
        out.env.extend(env_vars(&link_name, &ip, &cfg));
    }
    Ok(out)
}

/// moby's `links.ToEnv`: ports sorted tcp first, ranges of consecutive ports, the name, the
/// child's environment but HOME and PATH.
pub fn env_vars(link_name: &str, ip: &str, child: &Config) -> Vec<String> {
    let alias = link_name
        .rsplit('/')
        .next()
        .unwrap_or(link_name)
        .to_uppercase()
        .replace('-', "_");
    let mut ports: Vec<(u16, String)> = child
        .exposed_ports
        .iter()
        .flatten()
        .filter_map(|(k, _)| crate::network::ports::parse_key(k).ok())
        .collect();
    ports.sort_by(|a, b| {
        let rank = |p: &str| if p == "tcp" { 0 } else { 1 };
        (rank(&a.1), &a.1, a.0).cmp(&(rank(&b.1), &b.1, b.0))
    });
    let mut env = Vec::new();
    let mut start = None::<(u16, String)>;
    let mut end = None::<(u16, String)>;
    for (i, (num, proto)) in ports.iter().enumerate() {
        if i == 0 {
            start = Some((*num, proto.clone()));
            end = start.clone();
            env.push(format!("{alias}_PORT={proto}://{ip}:{num}"));
        }
        let prefix = format!("{alias}_PORT_{num}_{}", proto.to_uppercase());
        env.push(format!("{prefix}={proto}://{ip}:{num}"));
        env.push(format!("{prefix}_ADDR={ip}"));
        env.push(format!("{prefix}_PORT={num}"));
        env.push(format!("{prefix}_PROTO={proto}"));
        let (e_num, e_proto) = end.clone().expect("set at the first port");
        if *num == e_num + 1 && *proto == e_proto {
            end = Some((*num, proto.clone()));
            if i < ports.len() - 1 {
                continue;
            }
        }
        let (s_num, s_proto) = start.clone().expect("set at the first port");
        let (e_num, e_proto) = end.clone().expect("set at the first port");
        if (s_num, &s_proto) != (e_num, &e_proto) {
            let prefix = format!("{alias}_PORT_{s_num}_{}", s_proto.to_uppercase());
            env.push(format!("{prefix}_START={s_proto}://{ip}:{s_num}"));
            env.push(format!("{prefix}_PORT_START={s_num}"));
            env.push(format!("{prefix}_END={e_proto}://{ip}:{e_num}"));
            env.push(format!("{prefix}_PORT_END={e_num}"));
        }
        start = Some((*num, proto.clone()));
        end = start.clone();
    }
    env.push(format!("{alias}_NAME={link_name}"));
    for v in child.env() {
        if let Some((k, val)) = v.split_once('=')
            && k != "HOME"
            && k != "PATH"
        {
            env.push(format!("{alias}_ENV_{k}={val}"));
        }
    }
    env
}

/// Link names by child container name (`/parent/alias`), for `docker ps`.
pub fn names_by_child(all: &[ContainerRow]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for parent in all {
        for l in parent.host_config().links.iter().flatten() {
            if let Ok((child, alias)) = parse(l) {
                m.entry(child)
                    .or_default()
                    .push(format!("/{}/{alias}", parent.name));
            }
        }
    }
    m
}

/// `DELETE /containers/parent/alias?link=true`.
pub fn remove_link(engine: &Engine, name: &str) -> Result<()> {
    let full = format!("/{}", name.trim_start_matches('/'));
    let (parent, alias) = full.rsplit_once('/').unwrap_or(("", &full));
    if parent.is_empty() {
        return Err(EngineError::internal(
            "Conflict, cannot remove the default link name of the container",
        ));
    }
    let parent = parent.trim_start_matches('/').to_string();
    let alias = alias.to_string();
    engine.store()?.write(|tx| {
        let row = resolve(tx, &parent).map_err(|_| {
            EngineError::internal(format!("Cannot get parent /{parent} for link name {full}"))
        })?;
        let mut hc = row.host_config();
        let before = hc.links.as_ref().map_or(0, |l| l.len());
        if let Some(l) = hc.links.as_mut() {
            l.retain(|x| parse(x).map(|(_, a)| a != alias).unwrap_or(true));
        }
        if hc.links.as_ref().map_or(0, |l| l.len()) == before {
            return Err(EngineError::not_found(format!("No such container: {name}")));
        }
        let text = serde_json::to_string(&hc).map_err(EngineError::internal_cause)?;
        container_rows::set_host_config(tx, &row.id, &text)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_like_mobys() {
        let child: Config = serde_json::from_value(serde_json::json!({
            "Env": ["FOO=1", "PATH=/bin", "HOME=/root"],
            "ExposedPorts": {"53/udp": {}, "81/tcp": {}, "80/tcp": {}, "90/tcp": {}},
        }))
        .unwrap();
        let env = env_vars("/web/db-x", "10.0.0.2", &child);
        assert_eq!(env[0], "DB_X_PORT=tcp://10.0.0.2:80");
        assert!(env.contains(&"DB_X_PORT_80_TCP=tcp://10.0.0.2:80".to_string()));
        assert!(env.contains(&"DB_X_PORT_80_TCP_START=tcp://10.0.0.2:80".to_string()));
        assert!(env.contains(&"DB_X_PORT_80_TCP_PORT_END=81".to_string()));
        assert!(env.contains(&"DB_X_PORT_53_UDP_PROTO=udp".to_string()));
        assert!(env.contains(&"DB_X_NAME=/web/db-x".to_string()));
        assert!(env.contains(&"DB_X_ENV_FOO=1".to_string()));
        assert!(
            !env.iter()
                .any(|e| e.contains("ENV_PATH") || e.contains("ENV_HOME"))
        );
        // 90 stands alone: no range for it.
        assert!(!env.iter().any(|e| e.starts_with("DB_X_PORT_90_TCP_START")));
    }

    #[test]
    fn link_forms() {
        assert_eq!(parse("db:alias").unwrap(), ("db".into(), "alias".into()));
        assert_eq!(
            parse("/db:/web/alias").unwrap(),
            ("db".into(), "alias".into())
        );
        assert_eq!(parse("db").unwrap(), ("db".into(), "db".into()));
        assert!(parse(":x").is_err());
    }
}
