//! `POST /containers/create`: merge the request with the image's config (moby's `merge`),
//! check it, and record the container. Nothing runs until start.

use serde_json::{Map, Value, json};

use crate::image::config::ImageConfig;
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

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map(|(k, _)| k).unwrap_or(e)
}

/// moby `daemon.merge`: the image's config fills what the request leaves empty.
pub fn merge(user: &mut Map<String, Value>, image: &Map<String, Value>) {
    let take = |user: &mut Map<String, Value>, k: &str| {
        if is_empty(user.get(k))
            && let Some(v) = image.get(k)
        {
            user.insert(k.into(), v.clone());
        }
    };
    take(user, "User");
    // Exposed ports: union.
    if let Some(Value::Object(img_ports)) = image.get("ExposedPorts") {
        let entry = user
            .entry("ExposedPorts")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(ports) = entry {
            for (p, v) in img_ports {
                ports.entry(p.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    // Env: the request's, then the image's variables it does not set.
    let img_env: Vec<String> = image
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if is_empty(user.get("Env")) {
        if !img_env.is_empty() {
            user.insert("Env".into(), json!(img_env));
        }
    } else {
        let mut env: Vec<String> = user
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for ie in img_env {
            if !env.iter().any(|e| env_key(e) == env_key(&ie)) {
                env.push(ie);
            }
        }
        user.insert("Env".into(), json!(env));
    }
    // Labels: the image's unless the request sets the same key.
    let mut labels = match user.get("Labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Object(img_labels)) = image.get("Labels") {
        for (k, v) in img_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    user.insert("Labels".into(), Value::Object(labels));
    if is_empty(user.get("Entrypoint")) {
        if is_empty(user.get("Cmd")) {
            user.insert(
                "Cmd".into(),
                image.get("Cmd").cloned().unwrap_or(Value::Null),
            );
            if let Some(a) = image.get("ArgsEscaped") {
                user.insert("ArgsEscaped".into(), a.clone());
            }
        }
        if user.get("Entrypoint").is_none_or(Value::is_null) {
            user.insert(
                "Entrypoint".into(),
                image.get("Entrypoint").cloned().unwrap_or(Value::Null),
            );
        }
    }
    if let Some(Value::Object(ih)) = image.get("Healthcheck") {
        let mut h = match user.get("Healthcheck") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for (k, v) in ih {
            if is_empty(h.get(k)) || h.get(k).and_then(Value::as_i64) == Some(0) {
                h.insert(k.clone(), v.clone());
            }
        }
        user.insert("Healthcheck".into(), Value::Object(h));
    }
    take(user, "WorkingDir");
    if let Some(Value::Object(iv)) = image.get("Volumes") {
        let entry = user
            .entry("Volumes")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(v) = entry {
            for (k, x) in iv {
                v.insert(k.clone(), x.clone());
            }
        }
    }
    take(user, "StopSignal");
    take(user, "Shell");
}

/// The fields `docker inspect` shows in `Config`, with Docker's empty values.
fn normalise_config(c: &mut Map<String, Value>, id: &str) {
    let defaults: [(&str, Value); 15] = [
        ("Hostname", json!(id[..12].to_string())),
        ("Domainname", json!("")),
        ("User", json!("")),
        ("AttachStdin", json!(false)),
        ("AttachStdout", json!(false)),
        ("AttachStderr", json!(false)),
        ("Tty", json!(false)),
        ("OpenStdin", json!(false)),
        ("StdinOnce", json!(false)),
        ("Env", Value::Null),
        ("Cmd", Value::Null),
        ("Image", json!("")),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
        ("Entrypoint", Value::Null),
    ];
    for (k, v) in defaults {
        let empty = c
            .get(k)
            .is_none_or(|x| x.is_null() || x.as_str() == Some(""));
        if empty && (!v.is_null() || !c.contains_key(k)) {
            c.insert(k.into(), v);
        }
    }
    for k in ["OnBuild", "Labels"] {
        c.entry(k).or_insert(Value::Null);
    }
    // Fields that are empty are left out, as Go's omitempty does.
    for k in [
        "ExposedPorts",
        "Healthcheck",
        "StopSignal",
        "Shell",
        "MacAddress",
    ] {
        if is_empty(c.get(k)) {
            c.remove(k);
        }
    }
    if c.get("StopTimeout").is_some_and(Value::is_null) {
        c.remove("StopTimeout");
    }
}

/// The restart policy checks moby makes at create.
fn check_host_config(hc: &Map<String, Value>) -> Result<()> {
    let policy = hc.get("RestartPolicy").and_then(Value::as_object);
    let name = policy
        .and_then(|p| p.get("Name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let retries = policy
        .and_then(|p| p.get("MaximumRetryCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match name {
        "" | "no" | "always" | "unless-stopped" => {
            if retries != 0 {
                return Err(EngineError::invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
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
    let auto_remove = hc.get("AutoRemove").and_then(Value::as_bool) == Some(true);
    if auto_remove && !matches!(name, "" | "no") {
        return Err(EngineError::invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    Ok(())
}

/// What berth cannot do yet is refused at create instead of being stored and ignored (a
/// `-p` that publishes nothing, a `-v` that mounts nothing); the rest of the host config is
/// validated here as Docker's `verifyContainerSettings` does, its warnings returned.
fn refuse_unsupported(config: &Map<String, Value>, hc: &Map<String, Value>) -> Result<Vec<String>> {
    let not_yet = |what: &str| {
        EngineError::new(
            ErrorKind::NotImplemented,
            format!("{what} are not supported by berth yet"),
        )
    };
    let non_empty = |v: Option<&Value>| match v {
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    // Clients also list bind and tmpfs targets in Config.Volumes (docker-py does; moby makes
    // no volume where a mount covers the path): only the uncovered ones would be volumes.
    if let Some(Value::Object(vols)) = config.get("Volumes") {
        let covered = mount_destinations(hc);
        if let Some(path) = vols
            .keys()
            .find(|k| !covered.contains(&crate::runtime::clean_path(k)))
        {
            return Err(not_yet(&format!(
                "volumes (-v without a host path, Config.Volumes: {path})"
            )));
        }
    }
    if non_empty(hc.get("VolumesFrom")) {
        return Err(not_yet("--volumes-from"));
    }
    if non_empty(hc.get("PortBindings")) {
        return Err(not_yet("published ports (-p, PortBindings)"));
    }
    if hc.get("PublishAllPorts").and_then(Value::as_bool) == Some(true) {
        return Err(not_yet("published ports (-P, PublishAllPorts)"));
    }
    Ok(crate::runtime::validate_host_config(config, hc)?)
}

/// The container paths that `Binds`, `Mounts` and `Tmpfs` mount something on.
fn mount_destinations(hc: &Map<String, Value>) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    if let Some(Value::Array(binds)) = hc.get("Binds") {
        for b in binds.iter().filter_map(Value::as_str) {
            if let Ok(spec) = crate::runtime::parse_bind(b) {
                out.insert(spec.destination);
            }
        }
    }
    if let Some(Value::Array(mounts)) = hc.get("Mounts") {
        for m in mounts {
            if let Some(t) = m.get("Target").and_then(Value::as_str) {
                out.insert(crate::runtime::clean_path(t));
            }
        }
    }
    if let Some(Value::Object(t)) = hc.get("Tmpfs") {
        out.extend(t.keys().map(|k| crate::runtime::clean_path(k)));
    }
    out
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
fn normalise_log_config(hc: &mut Map<String, Value>) -> Result<()> {
    let given = hc.get("LogConfig").and_then(Value::as_object);
    let driver = given
        .and_then(|l| l.get("Type"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or("json-file")
        .to_string();
    let opts = match given.and_then(|l| l.get("Config")) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(EngineError::invalid(
                "invalid LogConfig.Config: not an object",
            ));
        }
    };
    let opt = |k: &str| opts.get(k).and_then(Value::as_str).unwrap_or_default();
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
                let v = v.as_str().unwrap_or_default();
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
    hc.insert(
        "LogConfig".into(),
        json!({"Type": driver, "Config": Value::Object(opts)}),
    );
    Ok(())
}

/// Create a container from the request body (Config fields plus HostConfig and NetworkingConfig).
pub fn create(
    engine: &Engine,
    name: Option<&str>,
    mut body: Map<String, Value>,
) -> Result<Created> {
    let mut host_config = match body.remove("HostConfig") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let networking = body.remove("NetworkingConfig");
    let mut config = body;
    let wanted = match name.filter(|n| !n.is_empty()) {
        Some(n) => Some(names::validate(n)?),
        None => None,
    };
    let image_name = config
        .get("Image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if image_name.is_empty() {
        return Err(EngineError::invalid(
            "Config cannot be empty in order to create a container",
        ));
    }
    check_host_config(&host_config)?;
    let warnings = refuse_unsupported(&config, &host_config)?;
    normalise_log_config(&mut host_config)?;
    // moby's createContainerOSSpecificSettings: the default masked and read-only paths are
    // stored (and shown by inspect) unless privileged or given.
    if host_config.get("Privileged").and_then(Value::as_bool) != Some(true) {
        for (k, list) in [
            ("MaskedPaths", &crate::runtime::MASKED_PATHS[..]),
            ("ReadonlyPaths", &crate::runtime::READONLY_PATHS[..]),
        ] {
            if host_config.get(k).is_none_or(Value::is_null) {
                host_config.insert(k.into(), json!(list));
            }
        }
    }
    if let Some(Ok(h)) = config
        .get("Healthcheck")
        .filter(|h| h.is_object())
        .map(|h| serde_json::from_value::<crate::monitor::HealthConfig>(h.clone()))
    {
        h.validate().map_err(EngineError::invalid)?;
    }
    // `default` is the bridge network; until networks exist it means a private network namespace.
    let mode = host_config
        .get("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or("");
    if mode.is_empty() || mode == "default" {
        host_config.insert("NetworkMode".into(), json!("bridge"));
    }
    let _ = networking;
    let id = crate::util::random_id();
    let mut store = engine.store()?;
    let created = store.write(|tx| {
        let image = crate::engine::images::resolve(tx, &image_name)?;
        let img_cfg = ImageConfig::parse(&image.config)
            .map_err(|e| EngineError::internal(e.to_string()))?;
        merge(&mut config, &img_cfg.container_config());
        let no_cmd = is_empty(config.get("Entrypoint")) && is_empty(config.get("Cmd"));
        if no_cmd {
            return Err(EngineError::invalid("no command specified"));
        }
        normalise_config(&mut config, &id);
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
        let row = ContainerRow {
            id: id.clone(),
            name: name.clone(),
            image: image_name.clone(),
            image_id: image.id.clone(),
            created: now_nanos(),
            config: Value::Object(config.clone()).to_string(),
            host_config: Value::Object(host_config.clone()).to_string(),
            state: State::created().to_text(),
        };
        rows::insert(tx, &row, &chains)?;
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

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_follows_moby() {
        let mut user =
            obj(json!({"Env": ["A=1", "PATH=/x"], "Cmd": null, "Labels": {"k": "user"}}));
        let image = obj(json!({
            "Env": ["PATH=/usr/bin", "B=2"], "Cmd": ["sh"], "Entrypoint": null,
            "Labels": {"k": "img", "j": "img"}, "WorkingDir": "/w", "ExposedPorts": {"80/tcp": {}}
        }));
        merge(&mut user, &image);
        assert_eq!(user["Env"], json!(["A=1", "PATH=/x", "B=2"]));
        assert_eq!(user["Cmd"], json!(["sh"]));
        assert_eq!(user["Labels"], json!({"k": "user", "j": "img"}));
        assert_eq!(user["WorkingDir"], json!("/w"));
        assert_eq!(user["ExposedPorts"], json!({"80/tcp": {}}));
        // An entrypoint from the request drops the image's Cmd.
        let mut user = obj(json!({"Entrypoint": ["echo"]}));
        merge(&mut user, &image);
        assert!(user.get("Cmd").is_none_or(Value::is_null));
    }

    #[test]
    fn restart_policy_checks() {
        let hc = |v: Value| obj(v);
        assert!(check_host_config(&hc(json!({"RestartPolicy": {"Name": "always"}}))).is_ok());
        assert!(check_host_config(&hc(json!({"RestartPolicy": {"Name": "bogus"}}))).is_err());
        assert!(
            check_host_config(&hc(
                json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}})
            ))
            .is_err()
        );
        assert!(
            check_host_config(&hc(
                json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
            ))
            .is_ok()
        );
    }
}
