//! libpod's `SpecGenerator` (the body of `POST /libpod/containers/create`, what
//! `podman --remote run/create` sends) as Docker's create request, which the engine runs.
//! Every field is either translated or, when it asks for something berth does not do,
//! refused; the fields podman always sends with their defaults pass.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{
    Config, CreateRequest, HealthConfig, HostConfig, Mount, PortBinding, RestartPolicy,
    mount::{TmpfsOptions, VolumeOptions},
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Invalid(String),
    #[error("berth does not support the container option {field:?} ({value}) yet")]
    Unsupported { field: String, value: String },
}

/// What the request asks for, in Docker's terms, with the pod to join.
#[derive(Debug)]
pub struct Translated {
    pub name: Option<String>,
    pub pod: Option<String>,
    pub request: CreateRequest,
}

/// Is a JSON value what Go leaves when a field is unset?
pub(crate) fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_unset),
    }
}

fn unsupported(field: &str, v: &Value) -> SpecError {
    let mut value = v.to_string();
    value.truncate(120);
    SpecError::Unsupported {
        field: field.to_string(),
        value,
    }
}

fn strings(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, SpecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| SpecError::Invalid(format!("{field}: expected strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(SpecError::Invalid(format!("{field}: expected a list"))),
    }
}

fn string_map(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, SpecError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(SpecError::Invalid(format!(
                    "{field}.{k}: expected a string"
                ))),
            })
            .collect(),
        Some(_) => Err(SpecError::Invalid(format!("{field}: expected an object"))),
    }
}

fn str_of<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

fn int_of(o: &Map<String, Value>, k: &str) -> i64 {
    o.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// A `Namespace` (`{"nsmode": "...", "value": "..."}`) as a Docker mode string, where
/// `allowed` lists the modes berth can give this namespace.
fn namespace(body: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<String, SpecError> {
    let Some(ns) = body.get(key).and_then(Value::as_object) else {
        return Ok(String::new());
    };
    let mode = str_of(ns, "nsmode");
    let value = str_of(ns, "value");
    let out = match mode {
        "" | "default" | "private" => String::new(),
        "host" => "host".into(),
        "bridge" => "bridge".into(),
        "none" | "noshare" => "none".into(),
        "container" => format!("container:{value}"),
        "shareable" => "shareable".into(),
        _ => return Err(unsupported(key, &Value::Object(ns.clone()))),
    };
    let kind = out.split(':').next().unwrap_or("");
    if !out.is_empty() && !allowed.contains(&kind) {
        return Err(unsupported(key, &Value::Object(ns.clone())));
    }
    Ok(out)
}

/// podman's `idmappings` when no user namespace is asked for: the host's IDs.
pub(crate) fn default_idmappings(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.iter().all(|(k, x)| {
            matches!(k.as_str(), "HostUIDMapping" | "HostGIDMapping") && x == &Value::Bool(true)
                || is_unset(x)
        })
    })
}

/// Fields podman sends on every create with values that mean "as Docker does".
fn default_valued(key: &str, v: &Value) -> bool {
    match key {
        "systemd" => matches!(v.as_str(), Some("true" | "false" | "")),
        "sdnotifyMode" => matches!(v.as_str(), Some("container" | "ignore" | "")),
        "umask" => matches!(v.as_str(), Some("0022" | "")),
        "seccomp_policy" => matches!(v.as_str(), Some("default" | "")),
        "cgroups_mode" => matches!(v.as_str(), Some("enabled" | "")),
        "image_volume_mode" => matches!(v.as_str(), Some("anonymous" | "")),
        // A passwd entry for a user missing from the image: berth runs such users by number.
        "manage_password" => true,
        "idmappings" => default_idmappings(v),
        // Informational: how the container was made, the image as typed, a faster overlay.
        "containerCreateCommand" | "raw_image_name" | "volatile" => true,
        _ => is_unset(v),
    }
}

/// The proxy variables of the server's environment, which podman's `httpproxy` passes on.
fn proxy_env() -> Vec<String> {
    [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "ftp_proxy",
        "FTP_PROXY",
        "no_proxy",
        "NO_PROXY",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
    .collect()
}

fn mounts(body: &Map<String, Value>) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::new();
    for m in body
        .get("mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let o = m
            .as_object()
            .ok_or_else(|| SpecError::Invalid("mounts: expected objects".into()))?;
        let kind = str_of(o, "type");
        let mut mount = Mount {
            r#type: match kind {
                "bind" | "tmpfs" => kind.to_string(),
                _ => return Err(unsupported("mounts.type", &Value::String(kind.into()))),
            },
            source: str_of(o, "source").to_string(),
            target: str_of(o, "destination").to_string(),
            ..Mount::default()
        };
        let mut tmpfs = TmpfsOptions::default();
        for opt in strings(o.get("options"), "mounts.options")?.unwrap_or_default() {
            match opt.as_str() {
                "ro" => mount.read_only = true,
                "rw" | "rbind" | "bind" | "rprivate" | "private" => {}
                o if kind == "tmpfs" && o.starts_with("size=") => {
                    tmpfs.size_bytes = crate::engine::containers::start::parse_size(&o[5..])
                        .map_err(|e| SpecError::Invalid(e.message))?
                        as i64;
                }
                o if kind == "tmpfs" && o.starts_with("mode=") => {
                    tmpfs.mode = u32::from_str_radix(&o[5..], 8)
                        .map_err(|_| SpecError::Invalid(format!("invalid tmpfs mode {o:?}")))?;
                }
                "nosuid" | "nodev" | "noexec" | "tmpcopyup" if kind == "tmpfs" => {}
                other => return Err(unsupported("mounts.options", &Value::String(other.into()))),
            }
        }
        if kind == "tmpfs" {
            mount.source.clear();
            mount.tmpfs_options = Some(tmpfs);
        }
        out.push(mount);
    }
    for v in body
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let o = v
            .as_object()
            .ok_or_else(|| SpecError::Invalid("volumes: expected objects".into()))?;
        let mut mount = Mount {
            r#type: "volume".into(),
            source: str_of(o, "Name").to_string(),
            target: str_of(o, "Dest").to_string(),
            ..Mount::default()
        };
        for opt in strings(o.get("Options"), "volumes.Options")?.unwrap_or_default() {
            match opt.as_str() {
                "ro" => mount.read_only = true,
                "rw" => {}
                "nocopy" => {
                    mount.volume_options = Some(VolumeOptions {
                        no_copy: true,
                        ..VolumeOptions::default()
                    })
                }
                other => return Err(unsupported("volumes.Options", &Value::String(other.into()))),
            }
        }
        if !str_of(o, "SubPath").is_empty() {
            return Err(unsupported("volumes.SubPath", &o["SubPath"]));
        }
        out.push(mount);
    }
    Ok(out)
}

fn ports(
    body: &Map<String, Value>,
    hc: &mut HostConfig,
    config: &mut Config,
) -> Result<(), SpecError> {
    let mut exposed = config.exposed_ports.take().unwrap_or_default();
    for p in body
        .get("portmappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let o = p
            .as_object()
            .ok_or_else(|| SpecError::Invalid("portmappings: expected objects".into()))?;
        let cport = int_of(o, "container_port");
        let hport = int_of(o, "host_port");
        let range = int_of(o, "range").max(1);
        let protos = str_of(o, "protocol");
        for proto in protos
            .split(',')
            .map(|p| if p.is_empty() { "tcp" } else { p })
        {
            for i in 0..range {
                let key = format!("{}/{proto}", cport + i);
                hc.port_bindings
                    .entry(key.clone())
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: str_of(o, "host_ip").to_string(),
                        host_port: if hport == 0 {
                            String::new()
                        } else {
                            (hport + i).to_string()
                        },
                    });
                exposed.insert(key, Default::default());
            }
        }
    }
    if let Some(e) = body.get("expose").and_then(Value::as_object) {
        for (port, proto) in e {
            let proto = proto.as_str().filter(|p| !p.is_empty()).unwrap_or("tcp");
            exposed.insert(format!("{port}/{proto}"), Default::default());
        }
    }
    if !exposed.is_empty() {
        config.exposed_ports = Some(exposed);
    }
    Ok(())
}

fn resources(body: &Map<String, Value>, hc: &mut HostConfig) -> Result<(), SpecError> {
    let Some(r) = body.get("resource_limits").and_then(Value::as_object) else {
        return Ok(());
    };
    for (k, v) in r {
        let o = v.as_object().cloned().unwrap_or_default();
        match k.as_str() {
            "memory" => {
                hc.resources.memory = int_of(&o, "limit");
                hc.resources.memory_reservation = int_of(&o, "reservation");
                hc.resources.memory_swap = int_of(&o, "swap");
                if let Some(s) = o.get("swappiness").and_then(Value::as_i64) {
                    hc.resources.memory_swappiness = Some(s);
                }
                if let Some(extra) = o.keys().find(|k| {
                    !matches!(k.as_str(), "limit" | "reservation" | "swap" | "swappiness")
                        && !is_unset(&o[k.as_str()])
                }) {
                    return Err(unsupported(
                        &format!("resource_limits.memory.{extra}"),
                        &o[extra],
                    ));
                }
            }
            "cpu" => {
                hc.resources.cpu_shares = int_of(&o, "shares");
                hc.resources.cpu_quota = int_of(&o, "quota");
                hc.resources.cpu_period = int_of(&o, "period");
                hc.resources.cpuset_cpus = str_of(&o, "cpus").to_string();
                hc.resources.cpuset_mems = str_of(&o, "mems").to_string();
                if let Some(extra) = o.keys().find(|k| {
                    !matches!(k.as_str(), "shares" | "quota" | "period" | "cpus" | "mems")
                        && !is_unset(&o[k.as_str()])
                }) {
                    return Err(unsupported(
                        &format!("resource_limits.cpu.{extra}"),
                        &o[extra],
                    ));
                }
            }
            "pids" => {
                let l = int_of(&o, "limit");
                if l != 0 {
                    hc.resources.pids_limit = Some(l);
                }
            }
            _ if is_unset(v) => {}
            _ => return Err(unsupported(&format!("resource_limits.{k}"), v)),
        }
    }
    Ok(())
}

fn health(v: &Value) -> Result<HealthConfig, SpecError> {
    let o = v
        .as_object()
        .ok_or_else(|| SpecError::Invalid("healthconfig: expected an object".into()))?;
    Ok(HealthConfig {
        test: strings(o.get("Test"), "healthconfig.Test")?,
        interval: int_of(o, "Interval"),
        timeout: int_of(o, "Timeout"),
        start_period: int_of(o, "StartPeriod"),
        start_interval: int_of(o, "StartInterval"),
        retries: int_of(o, "Retries"),
    })
}

/// Translate a SpecGenerator body.
pub fn translate(mut body: Map<String, Value>) -> Result<Translated, SpecError> {
    let mut config = Config::default();
    let mut hc = HostConfig::default();
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    let pod = body
        .get("pod")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    config.image = str_of(&body, "image").to_string();
    if config.image.is_empty() {
        return Err(SpecError::Invalid(
            "invalid config provided: image must be specified".into(),
        ));
    }
    config.cmd = strings(body.get("command"), "command")?;
    config.entrypoint = strings(body.get("entrypoint"), "entrypoint")?;
    let mut env: Vec<String> = string_map(body.get("env"), "env")?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if body.get("httpproxy").and_then(Value::as_bool) == Some(true) {
        env.extend(proxy_env());
    }
    if !env.is_empty() {
        config.env = Some(env);
    }
    config.tty = body.get("terminal").and_then(Value::as_bool) == Some(true);
    config.open_stdin = body.get("stdin").and_then(Value::as_bool) == Some(true);
    // conmon closes a container's stdin when its attached client half-closes (podman's
    // default without --leave-stdin-open): Docker's StdinOnce.
    config.stdin_once = config.open_stdin;
    config.hostname = str_of(&body, "hostname").to_string();
    config.working_dir = str_of(&body, "work_dir").to_string();
    config.user = str_of(&body, "user").to_string();
    let labels = string_map(body.get("labels"), "labels")?;
    if !labels.is_empty() {
        config.labels = Some(labels);
    }
    let annotations = string_map(body.get("annotations"), "annotations")?;
    if !annotations.is_empty() {
        hc.annotations = Some(annotations);
    }
    if let Some(t) = body.get("stop_timeout").and_then(Value::as_i64) {
        config.stop_timeout = Some(t);
    }
    if let Some(s) = body
        .get("stop_signal")
        .and_then(Value::as_i64)
        .filter(|s| *s != 0)
    {
        config.stop_signal = s.to_string();
    }
    if let Some(h) = body.get("healthconfig").filter(|v| !v.is_null()) {
        config.healthcheck = Some(health(h)?);
    }
    hc.auto_remove = body.get("remove").and_then(Value::as_bool) == Some(true);
    hc.privileged = body.get("privileged").and_then(Value::as_bool) == Some(true);
    hc.readonly_rootfs = body.get("read_only_filesystem").and_then(Value::as_bool) == Some(true);
    hc.cap_add = strings(body.get("cap_add"), "cap_add")?;
    hc.cap_drop = strings(body.get("cap_drop"), "cap_drop")?;
    hc.dns = strings(body.get("dns_server"), "dns_server")?;
    hc.dns_search = strings(body.get("dns_search"), "dns_search")?;
    hc.dns_options = strings(body.get("dns_option"), "dns_option")?;
    hc.extra_hosts = strings(body.get("hostadd"), "hostadd")?;
    hc.publish_all_ports = body.get("publish_image_ports").and_then(Value::as_bool) == Some(true);
    if body.get("init").and_then(Value::as_bool) == Some(true) {
        hc.init = Some(true);
    }
    if body.get("no_new_privileges").and_then(Value::as_bool) == Some(true) {
        hc.security_opt = Some(vec!["no-new-privileges".into()]);
    }
    if let Some(s) = body.get("shm_size").and_then(Value::as_i64) {
        hc.shm_size = s;
    }
    let policy = str_of(&body, "restart_policy");
    if !policy.is_empty() {
        hc.restart_policy = RestartPolicy {
            name: policy.to_string(),
            maximum_retry_count: int_of(&body, "restart_tries"),
        };
    }
    if let Some(l) = body.get("log_configuration").and_then(Value::as_object) {
        let driver = match str_of(l, "driver") {
            "" | "k8s-file" | "json-file" => "json-file",
            "none" => "none",
            d => {
                return Err(unsupported(
                    "log_configuration.driver",
                    &Value::String(d.into()),
                ));
            }
        };
        let opts = string_map(l.get("options"), "log_configuration.options")?;
        if let Some(k) = l
            .keys()
            .find(|k| !matches!(k.as_str(), "driver" | "options") && !is_unset(&l[k.as_str()]))
        {
            return Err(unsupported(
                &format!("log_configuration.{k}"),
                &l[k.as_str()],
            ));
        }
        if driver != "json-file" || !opts.is_empty() {
            hc.log_config = crate::model::LogConfig {
                r#type: driver.into(),
                config: Some(opts),
            };
        }
    }
    let m = mounts(&body)?;
    if !m.is_empty() {
        hc.mounts = Some(m);
    }
    ports(&body, &mut hc, &mut config)?;
    resources(&body, &mut hc)?;
    hc.network_mode = namespace(&body, "netns", &["bridge", "host", "none", "container"])?;
    if let Some(nets) = body.get("Networks").and_then(Value::as_object) {
        match nets.len() {
            0 => {}
            1 if hc.network_mode.is_empty() || hc.network_mode == "bridge" => {
                let (n, opts) = nets.iter().next().expect("one");
                if !is_unset(opts) {
                    return Err(unsupported("Networks", &Value::Object(nets.clone())));
                }
                hc.network_mode = n.clone();
            }
            _ => return Err(unsupported("Networks", &Value::Object(nets.clone()))),
        }
    }
    hc.ipc_mode = namespace(&body, "ipcns", &["host", "none", "container", "shareable"])?;
    hc.pid_mode = namespace(&body, "pidns", &["host", "container"])?;
    hc.uts_mode = namespace(&body, "utsns", &["host", "container"])?;
    const HANDLED: &[&str] = &[
        "name",
        "pod",
        "image",
        "command",
        "entrypoint",
        "env",
        "httpproxy",
        "terminal",
        "stdin",
        "hostname",
        "work_dir",
        "user",
        "labels",
        "annotations",
        "stop_timeout",
        "stop_signal",
        "healthconfig",
        "remove",
        "privileged",
        "read_only_filesystem",
        "cap_add",
        "cap_drop",
        "dns_server",
        "dns_search",
        "dns_option",
        "hostadd",
        "publish_image_ports",
        "init",
        "no_new_privileges",
        "shm_size",
        "restart_policy",
        "restart_tries",
        "log_configuration",
        "mounts",
        "volumes",
        "portmappings",
        "expose",
        "resource_limits",
        "netns",
        "Networks",
        "ipcns",
        "pidns",
        "utsns",
    ];
    for k in HANDLED {
        body.remove(*k);
    }
    if let Some((k, v)) = body.iter().find(|(k, v)| !default_valued(k, v)) {
        return Err(unsupported(k, v));
    }
    Ok(Translated {
        name,
        pod,
        request: CreateRequest {
            config,
            host_config: hc,
            networking_config: Default::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `podman --remote run -d --pod my-pod --name web busybox httpd -f -p 80` sends.
    fn podman_run() -> Map<String, Value> {
        json!({"name":"web","pod":"my-pod","command":["httpd","-f","-p","80"],"httpproxy":true,
            "annotations":{"io.kubernetes.cri-o.TTY":"false"},"stop_timeout":10,"log_configuration":{},
            "raw_image_name":"localhost/busybox","systemd":"true","sdnotifyMode":"container","pidns":{},
            "utsns":{},"containerCreateCommand":["podman","run"],"init_container_type":"","manage_password":true,
            "image":"localhost/busybox","image_volume_mode":"anonymous","ipcns":{},"seccomp_policy":"default",
            "userns":{},"idmappings":{"HostUIDMapping":true,"HostGIDMapping":true,"UIDMap":null,"GIDMap":null,
            "AutoUserNs":false,"AutoUserNsOpts":{"Size":0,"InitialSize":0,"PasswdFile":"","GroupFile":"",
            "AdditionalUIDMappings":null,"AdditionalGIDMappings":null}},"umask":"0022","cgroupns":{},
            "cgroups_mode":"enabled","netns":{},"Networks":null,"use_image_hosts":false})
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn podman_run_translates() {
        let t = translate(podman_run()).unwrap();
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.pod.as_deref(), Some("my-pod"));
        let c = &t.request.config;
        assert_eq!(c.image, "localhost/busybox");
        assert_eq!(c.cmd.as_deref().unwrap(), ["httpd", "-f", "-p", "80"]);
        assert_eq!(c.stop_timeout, Some(10));
        assert_eq!(t.request.host_config.network_mode, "");
    }

    #[test]
    fn options_berth_lacks_are_refused() {
        let mut b = podman_run();
        b.insert("secrets".into(), json!([{"Source": "s"}]));
        let e = translate(b).unwrap_err().to_string();
        assert!(e.contains("\"secrets\""), "{e}");
        let mut b = podman_run();
        b.insert("umask".into(), json!("0077"));
        assert!(translate(b).is_err());
        let mut b = podman_run();
        b.insert("userns".into(), json!({"nsmode": "auto"}));
        assert!(translate(b).is_err());
    }

    #[test]
    fn ports_mounts_and_limits() {
        let mut b = podman_run();
        b.insert(
            "portmappings".into(),
            json!([{"host_ip":"127.0.0.1","container_port":80,"host_port":8080,"range":2,"protocol":"tcp,udp"}]),
        );
        b.insert(
            "mounts".into(),
            json!([{"destination":"/d","type":"bind","source":"/tmp","options":["ro","rbind"]},
                   {"destination":"/t","type":"tmpfs","source":"tmpfs","options":["size=1m"]}]),
        );
        b.insert(
            "volumes".into(),
            json!([{"Name":"v1","Dest":"/v","Options":[]}]),
        );
        b.insert(
            "resource_limits".into(),
            json!({"memory":{"limit":67108864},"cpu":{"quota":50000,"period":100000}}),
        );
        let t = translate(b).unwrap();
        let hc = &t.request.host_config;
        assert_eq!(hc.port_bindings.len(), 4);
        assert_eq!(
            hc.port_bindings["81/udp"].as_ref().unwrap()[0].host_port,
            "8081"
        );
        let m = hc.mounts.as_ref().unwrap();
        assert_eq!((m[0].r#type.as_str(), m[0].read_only), ("bind", true));
        assert_eq!(m[1].tmpfs_options.as_ref().unwrap().size_bytes, 1 << 20);
        assert_eq!(
            (m[2].r#type.as_str(), m[2].source.as_str()),
            ("volume", "v1")
        );
        assert_eq!(hc.resources.memory, 67108864);
        assert_eq!(hc.resources.cpu_quota, 50000);
    }
}
