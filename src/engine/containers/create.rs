//! `POST /containers/create`: merge the request with the image's config (moby's `merge`),
//! check it, and record the container. Nothing runs until start.

use serde_json::Map;

use crate::image::config::ImageConfig;
use crate::model::{Config, CreateRequest, HostConfig, LogConfig};
use crate::store::containers::{self as rows, ContainerRow};
use crate::store::images as image_rows;
use crate::util::time::now_nanos;

use super::super::{Engine, EngineError, ErrorKind, Result};
use super::state::State;
use super::{names, resolve};

pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map(|(k, _)| k).unwrap_or(e)
}

/// moby `daemon.merge`: the image's config fills what the request leaves empty.
pub fn merge(user: &mut Config, image: &Config) {
    if user.user.is_empty() {
        user.user = image.user.clone();
    }
    if let Some(img) = &image.exposed_ports {
        match &mut user.exposed_ports {
            Some(ports) if !ports.is_empty() => {
                for p in img.keys() {
                    ports.entry(p.clone()).or_default();
                }
            }
            ports => *ports = Some(img.clone()),
        }
    }
    if user.env().is_empty() {
        user.env = image.env.clone();
    } else if let Some(env) = &mut user.env {
        for ie in image.env() {
            if !env.iter().any(|e| env_key(e) == env_key(ie)) {
                env.push(ie.clone());
            }
        }
    }
    let labels = user.labels.get_or_insert_default();
    for (k, v) in image.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if user.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if user.cmd.as_ref().is_none_or(Vec::is_empty) {
            user.cmd = image.cmd.clone();
            user.args_escaped = image.args_escaped;
        }
        if user.entrypoint.is_none() {
            user.entrypoint = image.entrypoint.clone();
        }
    }
    if let Some(ih) = &image.healthcheck {
        match &mut user.healthcheck {
            None => user.healthcheck = Some(ih.clone()),
            Some(h) => {
                if h.test.as_ref().is_none_or(Vec::is_empty) {
                    h.test = ih.test.clone();
                }
                for (mine, theirs) in [
                    (&mut h.interval, ih.interval),
                    (&mut h.timeout, ih.timeout),
                    (&mut h.start_period, ih.start_period),
                    (&mut h.start_interval, ih.start_interval),
                    (&mut h.retries, ih.retries),
                ] {
                    if *mine == 0 {
                        *mine = theirs;
                    }
                }
            }
        }
    }
    if user.working_dir.is_empty() {
        user.working_dir = image.working_dir.clone();
    }
    if let Some(img) = &image.volumes {
        match &mut user.volumes {
            Some(v) if !v.is_empty() => v.extend(img.clone()),
            v => *v = Some(img.clone()),
        }
    }
    if user.stop_signal.is_empty() {
        user.stop_signal = image.stop_signal.clone();
    }
    if user.shell.as_ref().is_none_or(Vec::is_empty) {
        user.shell = image.shell.clone();
    }
}

/// The restart policy checks moby makes at create.
fn check_host_config(hc: &HostConfig) -> Result<()> {
    let policy = &hc.restart_policy;
    let retries = policy.maximum_retry_count;
    match policy.name.as_str() {
        "" => {}
        "no" | "always" | "unless-stopped" => {
            if retries != 0 {
                let mut msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                if retries < 0 {
                    msg.push_str(" and cannot be negative");
                }
                return Err(EngineError::invalid(msg));
            }
        }
        "on-failure" => {
            if retries < 0 {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        other => {
            return Err(EngineError::invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )));
        }
    }
    if hc.auto_remove && !policy.is_none() {
        return Err(EngineError::invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    Ok(())
}

/// What berth cannot do yet is refused at create instead of being stored and ignored (a
/// `-p` that publishes nothing, a `-v` that mounts nothing); the rest of the host config is
/// validated here as Docker's `verifyContainerSettings` does, its warnings returned.
fn refuse_unsupported(config: &Config, hc: &HostConfig) -> Result<Vec<String>> {
    // (Volumes, named or anonymous, are made with the container: see engine::volumes::plan.)
    // Port specs are checked here (400), held at start.
    crate::engine::networks::attach::publish_requests(config, hc)?;
    Ok(crate::runtime::validate_host_config(config, hc)?)
}

/// Log drivers Docker ships that berth does not (refused, not ignored).
const OTHER_LOG_DRIVERS: &[&str] = &[
    "local",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// `HostConfig.LogConfig` as Docker stores it: the daemon's default driver (`json-file`) when
/// none is named, `Config` an object; the driver and its options checked as moby's
/// `ValidateLogOpt` and the json-file driver do.
fn normalise_log_config(hc: &mut HostConfig) -> Result<()> {
    let driver = hc.log_driver().to_string();
    let opts = hc.log_config.config.clone().unwrap_or_default();
    let opt = |k: &str| opts.get(k).map(String::as_str).unwrap_or_default();
    // moby's ValidateLogOpts: `none` takes anything; the others share `mode` and
    // `max-buffer-size`, checked before the driver's own options.
    if driver != "none" {
        match opt("mode") {
            "" | "blocking" => {}
            "non-blocking" => {
                return Err(EngineError::new(
                    ErrorKind::NotImplemented,
                    "log opt 'mode=non-blocking' is not supported by berth yet",
                ));
            }
            m => {
                return Err(EngineError::invalid(format!(
                    "logger: logging mode not supported: {m}"
                )));
            }
        }
        if opts.contains_key("max-buffer-size") {
            return Err(EngineError::invalid(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
            ));
        }
    }
    match driver.as_str() {
        "json-file" => {
            for (k, v) in &opts {
                let v = v.as_str();
                match k.as_str() {
                    "mode" => {}
                    "max-size" => {
                        super::start::parse_size(v)?;
                    }
                    "max-file" => {
                        let n: i64 = v.parse().map_err(|_| {
                            EngineError::invalid(format!(
                                "strconv.Atoi: parsing {}: invalid syntax",
                                crate::util::go_quote(v)
                            ))
                        })?;
                        if n < 1 {
                            return Err(EngineError::invalid("max-file cannot be less than 1"));
                        }
                    }
                    "compress" => match crate::runtime::parse_bool(v) {
                        Some(false) => {}
                        Some(true) => {
                            return Err(EngineError::new(
                                ErrorKind::NotImplemented,
                                "log opt 'compress' of the json-file log driver is not supported by berth yet",
                            ));
                        }
                        None => {
                            return Err(EngineError::invalid(format!(
                                "strconv.ParseBool: parsing {}: invalid syntax",
                                crate::util::go_quote(v)
                            )));
                        }
                    },
                    "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {
                        return Err(EngineError::new(
                            ErrorKind::NotImplemented,
                            format!(
                                "log opt '{k}' of the json-file log driver is not supported by berth yet"
                            ),
                        ));
                    }
                    _ => {
                        return Err(EngineError::invalid(format!(
                            "unknown log opt '{k}' for json-file log driver"
                        )));
                    }
                }
            }
        }
        "none" => {}
        d if OTHER_LOG_DRIVERS.contains(&d) => {
            return Err(EngineError::new(
                ErrorKind::NotImplemented,
                format!("the {d} log driver is not supported by berth yet"),
            ));
        }
        d => {
            return Err(EngineError::invalid(format!(
                "logger: no log driver named '{d}' is registered"
            )));
        }
    }
    hc.log_config = LogConfig {
        r#type: driver,
        config: Some(opts),
    };
    Ok(())
}

/// A container made as a member of a pod.
#[derive(Debug, Clone)]
pub struct PodJoin {
    pub pod_id: String,
    /// The pod's infra container.
    pub infra: bool,
    /// A pod made with its infra container, in the same transaction: a pod is never without
    /// the container that holds its namespaces.
    pub new_pod: Option<crate::store::pods::PodRow>,
}

/// Create a container from the decoded request.
pub fn create(engine: &Engine, name: Option<&str>, request: CreateRequest) -> Result<Created> {
    create_in(engine, name, request, None)
}

/// Create a container, recorded as a member of `pod` in the same transaction.
pub fn create_in(
    engine: &Engine,
    name: Option<&str>,
    request: CreateRequest,
    pod: Option<&PodJoin>,
) -> Result<Created> {
    let CreateRequest {
        mut config,
        host_config: mut hc,
        networking_config,
    } = request;
    let wanted = match name.filter(|n| !n.is_empty()) {
        Some(n) => Some(names::validate(n)?),
        None => None,
    };
    let image_name = config.image.clone();
    if image_name.is_empty() {
        return Err(EngineError::invalid(
            "Config cannot be empty in order to create a container",
        ));
    }
    check_host_config(&hc)?;
    let warnings = refuse_unsupported(&config, &hc)?;
    normalise_log_config(&mut hc)?;
    // moby's createContainerOSSpecificSettings: the default masked and read-only paths are
    // stored (and shown by inspect) unless privileged or given.
    if !hc.privileged {
        let list = |l: &[&str]| Some(l.iter().map(|p| p.to_string()).collect());
        hc.masked_paths = hc
            .masked_paths
            .or_else(|| list(&crate::runtime::MASKED_PATHS));
        hc.readonly_paths = hc
            .readonly_paths
            .or_else(|| list(&crate::runtime::READONLY_PATHS));
    }
    if let Some(h) = &config.healthcheck {
        h.validate().map_err(EngineError::invalid_cause)?;
    }
    // `default` is the bridge network.
    if matches!(hc.network_mode.as_str(), "" | "default") {
        hc.network_mode = "bridge".into();
    }
    let id = crate::util::random_id();
    let mut store = engine.store()?;
    let created = store.write(|tx| {
        let image = crate::engine::images::resolve(tx, &image_name)?;
        let img_cfg = ImageConfig::parse(&image.config)
            .map_err(EngineError::internal_cause)?;
        merge(&mut config, &img_cfg.config());
        if config.command_line().is_empty() {
            return Err(EngineError::invalid("no command specified"));
        }
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        let chains: Vec<String> = image_rows::image_layers(tx, &image.id)?
            .into_iter()
            .map(|l| l.chain_id)
            .collect();
        let name = match &wanted {
            Some(n) => {
                if let Some(other) = rows::by_name(tx, n)? {
                    return Err(EngineError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    )));
                }
                n.clone()
            }
            None => {
                let mut attempt = 0;
                loop {
                    let n = names::generate(attempt);
                    if rows::by_name(tx, &n)?.is_none() {
                        break n;
                    }
                    attempt += 1;
                }
            }
        };
        let mut hc = hc.clone();
        hc.links = crate::engine::networks::links::normalise(tx, &name, &hc)?;
        let row = ContainerRow {
            id: id.clone(),
            name: name.clone(),
            image: image_name.clone(),
            image_id: image.id.clone(),
            created: now_nanos(),
            config_json: super::to_stored(&config)?,
            host_config_json: super::to_stored(&hc)?,
            state: State::created().to_text(),
        };
        rows::insert(tx, &row, &chains)?;
        if let Some(p) = pod {
            if let Some(row) = &p.new_pod {
                crate::store::pods::insert(tx, row)?;
            }
            crate::store::pods::add_member(tx, &p.pod_id, &id, p.infra)?;
        }
        crate::engine::volumes::plan(tx, &id, &config, &hc)?;
        crate::engine::networks::settings::plan(tx, &id, &config, &hc, &networking_config)?;
        super::inspect::container_event(tx, "create", &row, Map::new())?;
        Ok(Created {
            id: id.clone(),
            warnings: warnings.clone(),
        })
    });
    // Two creates racing for one name: the UNIQUE constraint decides, with Docker's text.
    match created {
        Err(e)
            if e.message
                .contains("UNIQUE constraint failed: containers.name") =>
        {
            let n = wanted.unwrap_or_default();
            let other = store
                .read(|tx| resolve(tx, &n).map(|c| c.id))
                .unwrap_or_default();
            Err(EngineError::conflict(format!(
                "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )))
        }
        other => {
            let c = other?;
            std::fs::create_dir_all(engine.paths().container_dir(&c.id))?;
            Ok(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn merge_follows_moby() {
        let mut user: Config =
            obj(json!({"Env": ["A=1", "PATH=/x"], "Cmd": null, "Labels": {"k": "user"}}));
        let image: Config = obj(json!({
            "Env": ["PATH=/usr/bin", "B=2"], "Cmd": ["sh"], "Entrypoint": null,
            "Labels": {"k": "img", "j": "img"}, "WorkingDir": "/w", "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}
        }));
        merge(&mut user, &image);
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(v["Env"], json!(["A=1", "PATH=/x", "B=2"]));
        assert_eq!(v["Cmd"], json!(["sh"]));
        assert_eq!(v["Labels"], json!({"j": "img", "k": "user"}));
        assert_eq!(v["WorkingDir"], json!("/w"));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(
            v["Healthcheck"],
            json!({"Test": ["CMD", "true"], "Interval": 5, "Retries": 2})
        );
        // An entrypoint from the request drops the image's Cmd; its health check values
        // are kept where given.
        let mut user: Config = obj(json!({"Entrypoint": ["echo"], "Healthcheck": {"Interval": 7}}));
        merge(&mut user, &image);
        assert_eq!(user.cmd, None);
        let h = user.healthcheck.unwrap();
        assert_eq!((h.interval, h.retries), (7, 2));
        // What the request has and the image lacks stays.
        let mut user: Config = obj(json!({"ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}}}));
        merge(&mut user, &Config::default());
        let v = serde_json::to_value(&user).unwrap();
        assert_eq!(
            (&v["ExposedPorts"], &v["Volumes"]),
            (&json!({"80/tcp": {}}), &json!({"/v": {}}))
        );
        // An empty entrypoint (`--entrypoint ""`) clears the image's.
        let with_ep: Config = obj(json!({"Entrypoint": ["/init"], "Cmd": ["x"]}));
        let mut user: Config = obj(json!({"Entrypoint": [], "Cmd": ["sh"]}));
        merge(&mut user, &with_ep);
        assert_eq!(user.command_line(), ["sh"]);
    }

    #[test]
    fn restart_policy_checks() {
        let check = |v: Value| check_host_config(&obj(v));
        assert!(check(json!({"RestartPolicy": {"Name": "always"}})).is_ok());
        assert!(check(json!({"RestartPolicy": {"Name": "bogus"}})).is_err());
        assert!(check(json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}})).is_err());
        assert!(
            check(json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})).is_ok()
        );
        let e = check(json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": -1}}))
            .unwrap_err();
        assert!(
            e.message.ends_with("and cannot be negative"),
            "{}",
            e.message
        );
    }
}
