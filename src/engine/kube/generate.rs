//! `generate kube`: Kubernetes YAML of pods or containers, for a real cluster. Built as JSON,
//! checked by decoding it into k8s-openapi's types, written with serde-saphyr. Nothing in it
//! is random or a timestamp, so a played-back pod generates the same document.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use serde_json::{Map, Value, json};

use super::{KubeError, quantity};
use crate::engine::containers::{inspect as ins, resolve};
use crate::engine::images;
use crate::engine::pods;
use crate::engine::{Engine, ErrorKind, Result};
use crate::image::config::ImageConfig;
use crate::model::{Config, HostConfig};
use crate::store::containers::ContainerRow;

/// Docker's default capabilities: `cap_add`/`cap_drop` are relative to these, as Kubernetes'
/// `capabilities` are relative to the runtime's defaults.
pub const HEADER: &str = concat!(
    "# Save the output of this file and use kubectl create -f to import\n",
    "# it into Kubernetes.\n#\n# Created with berth-",
    env!("CARGO_PKG_VERSION"),
    "\n"
);

pub enum Kind {
    Pod,
    Deployment { replicas: i32 },
}

/// One pod to write: its name, settings and member containers (no infra container).
struct Source {
    name: String,
    hostname: String,
    labels: BTreeMap<String, String>,
    /// The pod's published ports and DNS settings live on its infra container.
    infra: Option<ContainerRow>,
    members: Vec<ContainerRow>,
    /// Names of members start with `<pod>-` when play made them: that prefix is not theirs.
    strip_prefix: bool,
}

fn kube_err(e: impl std::fmt::Display) -> crate::engine::EngineError {
    crate::engine::EngineError::internal(format!("generating Kubernetes YAML: {e}"))
}

fn sources(engine: &Engine, names: &[String]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    let mut loose = Vec::new();
    for n in names {
        match pods::load(engine, n) {
            Ok(p) => {
                let mut infra = None;
                let mut members = Vec::new();
                let mut store = engine.store()?;
                for m in &p.members {
                    let row = store.read(|tx| resolve(tx, &m.id))?;
                    if m.infra {
                        infra = Some(row);
                    } else {
                        members.push(row);
                    }
                }
                out.push(Source {
                    name: p.row.name.clone(),
                    hostname: p.config.hostname.clone(),
                    labels: p.config.labels.clone(),
                    infra,
                    members,
                    strip_prefix: true,
                });
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                let row = engine.store()?.read(|tx| resolve(tx, n)).map_err(|_| {
                    crate::engine::EngineError::not_found(format!(
                        "name or ID {n:?} not found: no such pod or container"
                    ))
                })?;
                loose.push(row);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(first) = loose.first() {
        out.push(Source {
            name: format!("{}-pod", first.name),
            hostname: String::new(),
            labels: BTreeMap::new(),
            infra: None,
            members: loose,
            strip_prefix: false,
        });
    }
    Ok(out)
}

fn image_config(engine: &Engine, row: &ContainerRow) -> Config {
    engine
        .store()
        .and_then(|mut s| s.read(|tx| images::resolve(tx, &row.image_id)))
        .ok()
        .and_then(|i| ImageConfig::parse(&i.config).ok())
        .map(|c| c.config())
        .unwrap_or_default()
}

/// Published ports of a container's `HostConfig` as Kubernetes container ports.
fn ports(hc: &HostConfig) -> Vec<Value> {
    let mut out = Vec::new();
    for (key, binds) in &hc.port_bindings {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        for b in binds.iter().flatten() {
            let mut p = json!({"containerPort": port});
            if let Ok(h) = b.host_port.parse::<u16>() {
                p["hostPort"] = json!(h);
            }
            if !b.host_ip.is_empty() && b.host_ip != "0.0.0.0" {
                p["hostIP"] = json!(b.host_ip);
            }
            if proto != "tcp" {
                p["protocol"] = json!(proto.to_uppercase());
            }
            out.push(p);
        }
    }
    out
}

fn env_diff(c: &Config, image: &Config) -> Vec<Value> {
    let image_env: BTreeMap<&str, &str> = image
        .env()
        .iter()
        .filter_map(|e| e.split_once('='))
        .collect();
    c.env()
        .iter()
        .filter_map(|e| e.split_once('=').or(Some((e.as_str(), ""))))
        .filter(|(k, v)| *k != "HOSTNAME" && *k != "container" && image_env.get(k) != Some(v))
        .map(|(k, v)| json!({"name": k, "value": escape_dollars(v)}))
        .collect()
}

fn seconds(ns: i64, default: i64) -> i64 {
    if ns <= 0 {
        default
    } else {
        ((ns + 999_999_999) / 1_000_000_000).max(1)
    }
}

fn probe(c: &Config) -> Option<Value> {
    let h = c.healthcheck.as_ref()?;
    let test = h.test.as_ref()?;
    let command: Vec<String> = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec![
            "/bin/sh".into(),
            "-c".into(),
            test.get(1).cloned().unwrap_or_default(),
        ],
        _ => return None,
    };
    let mut p = json!({
        "exec": {"command": command},
        "periodSeconds": seconds(h.interval, 30),
        "timeoutSeconds": seconds(h.timeout, 30),
        "failureThreshold": if h.retries > 0 { h.retries } else { 3 },
    });
    if h.start_period > 0 {
        p["initialDelaySeconds"] = json!(seconds(h.start_period, 0));
    }
    Some(p)
}

fn cap_names(l: &Option<Vec<String>>) -> Vec<String> {
    l.iter()
        .flatten()
        .map(|c| c.to_uppercase().trim_start_matches("CAP_").to_string())
        .collect()
}

fn security(c: &Config, hc: &HostConfig) -> Option<Value> {
    let mut s = Map::new();
    if hc.privileged {
        s.insert("privileged".into(), json!(true));
    }
    if hc.readonly_rootfs {
        s.insert("readOnlyRootFilesystem".into(), json!(true));
    }
    let (user, group) = c.user.split_once(':').unwrap_or((&c.user, ""));
    if let Ok(u) = user.parse::<i64>() {
        s.insert("runAsUser".into(), json!(u));
    }
    if let Ok(g) = group.parse::<i64>() {
        s.insert("runAsGroup".into(), json!(g));
    }
    let add = cap_names(&hc.cap_add);
    let drop = cap_names(&hc.cap_drop);
    if !add.is_empty() || !drop.is_empty() {
        let mut caps = Map::new();
        if !add.is_empty() {
            caps.insert("add".into(), json!(add));
        }
        if !drop.is_empty() {
            caps.insert("drop".into(), json!(drop));
        }
        s.insert("capabilities".into(), Value::Object(caps));
    }
    (!s.is_empty()).then_some(Value::Object(s))
}

fn resources(hc: &HostConfig) -> Value {
    let r = &hc.resources;
    let mut limits = Map::new();
    let mut requests = Map::new();
    if r.memory > 0 {
        limits.insert("memory".into(), json!(quantity::bytes(r.memory)));
    }
    let nano = if r.nano_cpus > 0 {
        r.nano_cpus
    } else if r.cpu_quota > 0 && r.cpu_period > 0 {
        r.cpu_quota * 1_000_000_000 / r.cpu_period
    } else {
        0
    };
    if nano > 0 {
        limits.insert("cpu".into(), json!(quantity::millicores(nano)));
    }
    if r.memory_reservation > 0 {
        requests.insert(
            "memory".into(),
            json!(quantity::bytes(r.memory_reservation)),
        );
    }
    let mut out = Map::new();
    if !limits.is_empty() {
        out.insert("limits".into(), Value::Object(limits));
    }
    if !requests.is_empty() {
        out.insert("requests".into(), Value::Object(requests));
    }
    Value::Object(out)
}

/// A name as a Kubernetes DNS label: lower case, `[a-z0-9-]`, at most 63, starting and
/// ending alphanumeric (Docker names may hold `_`, `.` and capitals).
fn dns_label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "x".into() } else { out }
}

/// The kubelet expands `$(VAR)` in commands, args and env values: `$$` keeps a `$` literal.
fn escape_dollars(s: &str) -> String {
    s.replace('$', "$$")
}

/// Pod volume names from host paths, as podman makes them (`/srv/data` → `srv-data-host-0`),
/// short enough to stay a DNS label with a suffix.
fn host_volume_name(path: &str, n: usize) -> String {
    let trimmed = path.trim_matches('/');
    let mut base = if trimmed.is_empty() {
        "root".to_string()
    } else {
        dns_label(trimmed)
    };
    base.truncate(40);
    format!("{}-host-{n}", base.trim_end_matches('-'))
}

struct Built {
    pod_spec: Value,
    claims: Vec<String>,
    ports: Vec<Value>,
}

fn pod_spec(engine: &Engine, src: &Source) -> Result<Built> {
    let mut containers = Vec::new();
    let mut volumes: Vec<Value> = Vec::new();
    let mut claims = Vec::new();
    let mut all_ports = Vec::new();
    let pod_hc = src.infra.as_ref().map(|i| i.host_config());
    let mut restart = "Never";
    for (i, row) in src.members.iter().enumerate() {
        let c = row.config();
        let hc = row.host_config();
        let image = image_config(engine, row);
        let mut k = Map::new();
        let name = match src.strip_prefix {
            true => row
                .name
                .strip_prefix(&format!("{}-", src.name))
                .unwrap_or(&row.name),
            false => &row.name,
        };
        k.insert("name".into(), json!(dns_label(name)));
        k.insert("image".into(), json!(row.image));
        let ep = c.entrypoint.clone().unwrap_or_default();
        let cmd = c.cmd.clone().unwrap_or_default();
        let image_ep = image.entrypoint.clone().unwrap_or_default();
        let image_cmd = image.cmd.clone().unwrap_or_default();
        let write_command = ep != image_ep;
        let escaped = |l: &[String]| l.iter().map(|a| escape_dollars(a)).collect::<Vec<_>>();
        if write_command {
            k.insert("command".into(), json!(escaped(&ep)));
        }
        if (cmd != image_cmd || write_command) && !cmd.is_empty() {
            k.insert("args".into(), json!(escaped(&cmd)));
        }
        let env = env_diff(&c, &image);
        if !env.is_empty() {
            k.insert("env".into(), json!(env));
        }
        if !c.working_dir.is_empty() && c.working_dir != image.working_dir {
            k.insert("workingDir".into(), json!(c.working_dir));
        }
        // The pod's published ports go on its first container, as podman writes them.
        let mut ports = ports(&hc);
        if i == 0
            && let Some(phc) = &pod_hc
        {
            ports.extend(self::ports(phc));
        }
        all_ports.extend(ports.iter().cloned());
        if !ports.is_empty() {
            k.insert("ports".into(), json!(ports));
        }
        let mut mounts = Vec::new();
        let inspected = ins::inspect(engine, &row.id)?;
        for m in inspected["Mounts"].as_array().into_iter().flatten() {
            let dest = m["Destination"].as_str().unwrap_or_default();
            let read_only = m["RW"].as_bool() == Some(false);
            let vol_name = match m["Type"].as_str() {
                Some("bind") => {
                    let source = m["Source"].as_str().unwrap_or_default();
                    let name = host_volume_name(source, volumes.len());
                    let kind = if std::path::Path::new(source).is_file() {
                        "File"
                    } else {
                        "Directory"
                    };
                    volumes.push(json!({"name": name, "hostPath": {"path": source, "type": kind}}));
                    name
                }
                Some("volume") => {
                    let claim = m["Name"].as_str().unwrap_or_default().to_string();
                    let name = format!("{claim}-pvc");
                    if !volumes.iter().any(|v| v["name"] == json!(name)) {
                        volumes.push(
                            json!({"name": name, "persistentVolumeClaim": {"claimName": claim}}),
                        );
                    }
                    if !claims.contains(&claim) {
                        claims.push(claim);
                    }
                    name
                }
                _ => continue,
            };
            let mut vm = json!({"name": vol_name, "mountPath": dest});
            if read_only {
                vm["readOnly"] = json!(true);
            }
            mounts.push(vm);
        }
        let mut tmpfs: Vec<(String, i64)> = hc
            .tmpfs
            .iter()
            .flatten()
            .map(|(d, opts)| {
                let size = opts
                    .split(',')
                    .find_map(|o| o.strip_prefix("size="))
                    .and_then(|s| crate::engine::containers::start::parse_size(s).ok())
                    .unwrap_or(0) as i64;
                (d.clone(), size)
            })
            .collect();
        for m in hc.mounts.iter().flatten().filter(|m| m.r#type == "tmpfs") {
            let size = m.tmpfs_options.as_ref().map_or(0, |t| t.size_bytes);
            tmpfs.push((m.target.clone(), size));
        }
        for (dest, size) in tmpfs {
            let name = format!("{}-tmpfs", host_volume_name(&dest, volumes.len()));
            let mut ed = json!({"medium": "Memory"});
            if size > 0 {
                ed["sizeLimit"] = json!(quantity::bytes(size));
            }
            volumes.push(json!({"name": name, "emptyDir": ed}));
            mounts.push(json!({"name": name, "mountPath": dest}));
        }
        if !mounts.is_empty() {
            k.insert("volumeMounts".into(), json!(mounts));
        }
        let res = resources(&hc);
        k.insert("resources".into(), res);
        if let Some(s) = security(&c, &hc) {
            k.insert("securityContext".into(), s);
        }
        if let Some(p) = probe(&c) {
            k.insert("livenessProbe".into(), p);
        }
        if c.tty {
            k.insert("tty".into(), json!(true));
        }
        if c.open_stdin {
            k.insert("stdin".into(), json!(true));
        }
        if i == 0 {
            restart = match hc.restart_policy.name.as_str() {
                "always" | "unless-stopped" => "Always",
                "on-failure" => "OnFailure",
                _ => "Never",
            };
        }
        containers.push(Value::Object(k));
    }
    let mut spec = Map::new();
    spec.insert("automountServiceAccountToken".into(), json!(false));
    spec.insert("containers".into(), json!(containers));
    spec.insert("enableServiceLinks".into(), json!(false));
    if !src.hostname.is_empty() {
        spec.insert("hostname".into(), json!(src.hostname));
    }
    // DNS and extra hosts: the pod's (its infra container's), else the first container's.
    let dns_hc = pod_hc
        .clone()
        .or_else(|| src.members.first().map(|r| r.host_config()))
        .unwrap_or_default();
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in dns_hc.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = h.split_once('=').or_else(|| h.split_once(':')) {
            aliases
                .entry(ip.to_string())
                .or_default()
                .push(name.to_string());
        }
    }
    if !aliases.is_empty() {
        spec.insert(
            "hostAliases".into(),
            aliases
                .into_iter()
                .map(|(ip, hostnames)| json!({"ip": ip, "hostnames": hostnames}))
                .collect(),
        );
    }
    let mut dns = Map::new();
    if let Some(s) = dns_hc.dns.as_ref().filter(|s| !s.is_empty()) {
        dns.insert("nameservers".into(), json!(s));
    }
    if let Some(s) = dns_hc.dns_search.as_ref().filter(|s| !s.is_empty()) {
        dns.insert("searches".into(), json!(s));
    }
    if let Some(o) = dns_hc.dns_options.as_ref().filter(|s| !s.is_empty()) {
        let opts: Vec<Value> = o
            .iter()
            .map(|o| match o.split_once(':') {
                Some((n, v)) => json!({"name": n, "value": v}),
                None => json!({"name": o}),
            })
            .collect();
        dns.insert("options".into(), json!(opts));
    }
    if !dns.is_empty() {
        spec.insert("dnsConfig".into(), Value::Object(dns));
    }
    spec.insert("restartPolicy".into(), json!(restart));
    if !volumes.is_empty() {
        spec.insert("volumes".into(), json!(volumes));
    }
    Ok(Built {
        pod_spec: Value::Object(spec),
        claims,
        ports: all_ports,
    })
}

fn with_restart(mut spec: Value, policy: &str) -> Value {
    spec["restartPolicy"] = json!(policy);
    spec
}

/// Decode into the k8s-openapi type (the schema check) and write it as YAML.
fn typed_yaml<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Result<String> {
    let typed: T = serde_json::from_value(v).map_err(kube_err)?;
    serde_saphyr::to_string(&typed).map_err(kube_err)
}

/// The YAML of `names` (pods, or containers gathered into one pod).
pub fn generate(engine: &Engine, names: &[String], kind: Kind, service: bool) -> Result<String> {
    if names.is_empty() {
        return Err(KubeError::Invalid("no pods or containers named".into()).into());
    }
    let mut docs = Vec::new();
    let mut claims_done = Vec::new();
    let mut bodies = Vec::new();
    for src in sources(engine, names)? {
        if src.members.is_empty() {
            return Err(KubeError::Invalid(format!(
                "pod {} has no containers besides its infra container: nothing to generate",
                src.name
            ))
            .into());
        }
        let built = pod_spec(engine, &src)?;
        for c in &built.claims {
            if !claims_done.contains(c) {
                claims_done.push(c.clone());
                docs.push(typed_yaml::<PersistentVolumeClaim>(json!({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": c},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }))?);
            }
        }
        let mut labels = src.labels.clone();
        labels.insert("app".into(), src.name.clone());
        let body = match kind {
            Kind::Pod => typed_yaml::<Pod>(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": dns_label(&src.name), "labels": labels},
                "spec": built.pod_spec,
            }))?,
            Kind::Deployment { replicas } => typed_yaml::<Deployment>(json!({
                // A Deployment's pods restart always: the API server refuses anything else.
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": dns_label(&format!("{}-deployment", src.name)), "labels": labels},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": src.name}},
                    "template": {"metadata": {"labels": labels}, "spec": with_restart(built.pod_spec.clone(), "Always")},
                },
            }))?,
        };
        bodies.push(body);
        if service {
            let ports: Vec<Value> = built
                .ports
                .iter()
                .map(|p| {
                    let port = p["containerPort"].as_u64().unwrap_or(0);
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    json!({
                        "name": format!("{port}-{}", proto.to_lowercase()),
                        "port": port, "targetPort": port, "protocol": proto,
                    })
                })
                .collect();
            if ports.is_empty() {
                return Err(KubeError::Invalid(format!(
                    "pod {} publishes no ports: a Service would have none",
                    src.name
                ))
                .into());
            }
            bodies.push(typed_yaml::<Service>(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": dns_label(&src.name), "labels": {"app": src.name}},
                "spec": {"type": "NodePort", "selector": {"app": src.name}, "ports": ports},
            }))?);
        }
    }
    docs.extend(bodies);
    Ok(format!("{HEADER}{}", docs.join("---\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dollars_for_kubernetes() {
        assert_eq!(dns_label("My_Web.1"), "my-web-1");
        assert_eq!(dns_label("_x_"), "x");
        assert_eq!(escape_dollars("echo $(date) $HOME"), "echo $$(date) $$HOME");
    }

    #[test]
    fn host_paths_name_volumes() {
        assert_eq!(host_volume_name("/srv/Data", 0), "srv-data-host-0");
        assert_eq!(host_volume_name("/", 2), "root-host-2");
        assert!(host_volume_name(&"/a".repeat(80), 1).len() <= 63);
    }

    #[test]
    fn probes_from_health_checks() {
        let c: Config = serde_json::from_value(json!({"Healthcheck": {
            "Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000i64, "Retries": 2}}))
        .unwrap();
        let p = probe(&c).unwrap();
        assert_eq!(
            p["exec"]["command"],
            json!(["/bin/sh", "-c", "wget -q localhost"])
        );
        assert_eq!(p["periodSeconds"], json!(5));
        assert_eq!(p["failureThreshold"], json!(2));
        let none: Config =
            serde_json::from_value(json!({"Healthcheck": {"Test": ["NONE"]}})).unwrap();
        assert!(probe(&none).is_none());
    }

    #[test]
    fn env_only_what_differs() {
        let c: Config =
            serde_json::from_value(json!({"Env": ["PATH=/bin", "A=1", "HOSTNAME=x", "B=2"]}))
                .unwrap();
        let i: Config = serde_json::from_value(json!({"Env": ["PATH=/bin", "B=3"]})).unwrap();
        assert_eq!(
            env_diff(&c, &i),
            vec![
                json!({"name": "A", "value": "1"}),
                json!({"name": "B", "value": "2"})
            ]
        );
    }
}
