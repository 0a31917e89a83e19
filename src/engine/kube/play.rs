//! `play kube`: Kubernetes YAML → volumes, a pod per Pod or Deployment, its containers.
//! The YAML is planned completely first (every field checked; what berth cannot do is an
//! error, not ignored), then made; a failure part-way removes the pod again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{KubeError, quantity};
use crate::engine::containers::create::create_in;
use crate::engine::pods::{self, PodConfig, PodCreate, PortMapping};
use crate::engine::{Engine, EngineError, ErrorKind, Result};
use crate::model::{Config, CreateRequest, HealthConfig, HostConfig, Mount, RestartPolicy};

type KResult<T> = std::result::Result<T, KubeError>;

/// One container to make, in Docker's terms.
#[derive(Debug)]
pub struct PlannedContainer {
    pub name: String,
    pub request: CreateRequest,
    pub pull_always: bool,
}

/// Files of a ConfigMap or Secret volume, written on the host and bound read-only.
#[derive(Debug)]
pub struct PlannedFiles {
    pub volume: String,
    pub files: Vec<(String, Vec<u8>, u32)>,
}

#[derive(Debug)]
pub struct PlannedPod {
    pub name: String,
    pub create: PodCreate,
    pub containers: Vec<PlannedContainer>,
    pub files: Vec<PlannedFiles>,
}

#[derive(Debug)]
pub struct Plan {
    pub volumes: Vec<(String, BTreeMap<String, String>)>,
    pub pods: Vec<PlannedPod>,
    pub warnings: Vec<String>,
}

impl Plan {
    /// Images to have before the containers are made: (reference, pull even if present).
    pub fn images(&self) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = Vec::new();
        for c in self.pods.iter().flat_map(|p| &p.containers) {
            if !out.iter().any(|(i, _)| *i == c.request.config.image) {
                out.push((c.request.config.image.clone(), c.pull_always));
            }
        }
        out
    }
}

fn unsupported(what: impl Into<String>) -> KubeError {
    KubeError::Unsupported(what.into())
}

fn invalid(what: impl Into<String>) -> KubeError {
    KubeError::Invalid(what.into())
}

/// Refuse keys of `v` other than `keys`; `defaults` are keys accepted only with that value.
fn allow(v: &Value, at: &str, keys: &[&str], defaults: &[(&str, Value)]) -> KResult<()> {
    let Some(o) = v.as_object() else {
        if v.is_null() {
            return Ok(());
        }
        return Err(invalid(format!("{at}: expected an object")));
    };
    for (k, x) in o {
        if keys.contains(&k.as_str()) || x.is_null() {
            continue;
        }
        if let Some((_, d)) = defaults.iter().find(|(n, _)| n == k) {
            if x == d {
                continue;
            }
            return Err(unsupported(format!(
                "{at}.{k}: berth supports only {d} here, not {x}"
            )));
        }
        return Err(unsupported(format!("{at}.{k} is not supported by berth")));
    }
    Ok(())
}

fn str_list(v: &Value, at: &str) -> KResult<Option<Vec<String>>> {
    match v {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(invalid(format!("{at}: expected strings"))),
            })
            .collect::<KResult<Vec<_>>>()
            .map(Some),
        _ => Err(invalid(format!("{at}: expected a list"))),
    }
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v["metadata"]["labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// ConfigMaps and Secrets by name: key → bytes.
#[derive(Default)]
struct Sources {
    config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Sources {
    fn get(&self, secret: bool, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        if secret {
            self.secrets.get(name)
        } else {
            self.config_maps.get(name)
        }
    }
}

fn what(secret: bool) -> &'static str {
    if secret { "secret" } else { "configmap" }
}

fn read_source(doc: &Value, secret: bool) -> KResult<(String, BTreeMap<String, Vec<u8>>)> {
    let name = name_of(doc);
    if name.is_empty() {
        return Err(invalid(format!("a {} has no metadata.name", what(secret))));
    }
    let mut out = BTreeMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain_key = if secret { "stringData" } else { "data" };
    let encoded_key = if secret { "data" } else { "binaryData" };
    for (k, v) in doc[plain_key].as_object().into_iter().flatten() {
        out.insert(
            k.clone(),
            v.as_str().unwrap_or_default().as_bytes().to_vec(),
        );
    }
    for (k, v) in doc[encoded_key].as_object().into_iter().flatten() {
        let bytes = b64
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| invalid(format!("{} {name}: {encoded_key}.{k}: {e}", what(secret))))?;
        out.insert(k.clone(), bytes);
    }
    Ok((name, out))
}

fn env_of(c: &Value, at: &str, src: &Sources) -> KResult<Vec<String>> {
    let mut env = Vec::new();
    for (i, e) in c["envFrom"].as_array().into_iter().flatten().enumerate() {
        let at = format!("{at}.envFrom[{i}]");
        allow(e, &at, &["configMapRef", "secretRef", "prefix"], &[])?;
        let prefix = e["prefix"].as_str().unwrap_or_default();
        let (secret, r) = if e["secretRef"].is_object() {
            (true, &e["secretRef"])
        } else {
            (false, &e["configMapRef"])
        };
        allow(r, &at, &["name", "optional"], &[])?;
        let name = r["name"].as_str().unwrap_or_default();
        match src.get(secret, name) {
            Some(data) => {
                for (k, v) in data {
                    env.push(format!("{prefix}{k}={}", String::from_utf8_lossy(v)));
                }
            }
            None if r["optional"].as_bool() == Some(true) => {}
            None => {
                return Err(invalid(format!(
                    "{at}: {} {name:?} not found",
                    what(secret)
                )));
            }
        }
    }
    for (i, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        let at = format!("{at}.env[{i}]");
        allow(e, &at, &["name", "value", "valueFrom"], &[])?;
        let name = e["name"]
            .as_str()
            .ok_or_else(|| invalid(format!("{at}.name is missing")))?;
        if let Some(from) = e.get("valueFrom").filter(|v| !v.is_null()) {
            allow(
                from,
                &format!("{at}.valueFrom"),
                &["configMapKeyRef", "secretKeyRef"],
                &[],
            )?;
            let (secret, r) = if from["secretKeyRef"].is_object() {
                (true, &from["secretKeyRef"])
            } else {
                (false, &from["configMapKeyRef"])
            };
            allow(
                r,
                &format!("{at}.valueFrom"),
                &["name", "key", "optional"],
                &[],
            )?;
            let src_name = r["name"].as_str().unwrap_or_default();
            let key = r["key"].as_str().unwrap_or_default();
            match src.get(secret, src_name).and_then(|d| d.get(key)) {
                Some(v) => env.push(format!("{name}={}", String::from_utf8_lossy(v))),
                None if r["optional"].as_bool() == Some(true) => {}
                None => {
                    return Err(invalid(format!(
                        "{at}: key {key:?} of {} {src_name:?} not found",
                        what(secret)
                    )));
                }
            }
        } else {
            let value = match &e["value"] {
                // `$$` is the kubelet's escape of a literal `$`.
                Value::String(s) => s.replace("$$", "$"),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            env.push(format!("{name}={value}"));
        }
    }
    Ok(env)
}

fn probe_health(liveness: &Value, startup: &Value, at: &str) -> KResult<Option<HealthConfig>> {
    let check = |p: &Value, at: &str| -> KResult<()> {
        if p.is_null() {
            return Ok(());
        }
        if p["httpGet"].is_object() || p["tcpSocket"].is_object() || p["grpc"].is_object() {
            return Err(unsupported(format!(
                "{at}: httpGet, tcpSocket and grpc probes are not supported by berth, only exec"
            )));
        }
        allow(
            p,
            at,
            &[
                "exec",
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
            ],
            &[
                ("successThreshold", json!(1)),
                ("terminationGracePeriodSeconds", json!(30)),
            ],
        )?;
        allow(&p["exec"], &format!("{at}.exec"), &["command"], &[])
    };
    check(liveness, &format!("{at}.livenessProbe"))?;
    check(startup, &format!("{at}.startupProbe"))?;
    let secs = |p: &Value, k: &str, d: i64| p[k].as_i64().unwrap_or(d) * 1_000_000_000;
    let main = if liveness.is_object() {
        liveness
    } else {
        startup
    };
    if !main.is_object() {
        return Ok(None);
    }
    let command = str_list(&main["exec"]["command"], at)?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid(format!("{at}: a probe needs exec.command")))?;
    let mut test = vec!["CMD".to_string()];
    test.extend(command);
    let mut h = HealthConfig {
        test: Some(test),
        interval: secs(main, "periodSeconds", 10),
        timeout: secs(main, "timeoutSeconds", 1),
        retries: main["failureThreshold"].as_i64().unwrap_or(3),
        start_period: secs(main, "initialDelaySeconds", 0),
        start_interval: 0,
    };
    if liveness.is_object() && startup.is_object() {
        // The startup probe's whole allowance is the grace period of the liveness check.
        let period = secs(startup, "periodSeconds", 10);
        h.start_period = secs(startup, "initialDelaySeconds", 0)
            + period * startup["failureThreshold"].as_i64().unwrap_or(3);
        h.start_interval = period;
    }
    Ok(Some(h))
}

fn security(
    sc: &Value,
    pod_sc: &Value,
    at: &str,
    c: &mut Config,
    hc: &mut HostConfig,
) -> KResult<()> {
    allow(
        sc,
        &format!("{at}.securityContext"),
        &[
            "privileged",
            "readOnlyRootFilesystem",
            "runAsUser",
            "runAsGroup",
            "capabilities",
            "allowPrivilegeEscalation",
        ],
        &[],
    )?;
    allow(
        &sc["capabilities"],
        &format!("{at}.securityContext.capabilities"),
        &["add", "drop"],
        &[],
    )?;
    hc.privileged = sc["privileged"].as_bool() == Some(true);
    hc.readonly_rootfs = sc["readOnlyRootFilesystem"].as_bool() == Some(true);
    if sc["allowPrivilegeEscalation"].as_bool() == Some(false) {
        hc.security_opt = Some(vec!["no-new-privileges".into()]);
    }
    let caps = |k: &str| -> KResult<Option<Vec<String>>> {
        Ok(str_list(&sc["capabilities"][k], at)?.map(|l| {
            l.iter()
                .map(|c| {
                    let c = c.to_uppercase();
                    if c.starts_with("CAP_") {
                        c
                    } else {
                        format!("CAP_{c}")
                    }
                })
                .collect()
        }))
    };
    hc.cap_add = caps("add")?;
    hc.cap_drop = caps("drop")?;
    let id = |k: &str| sc[k].as_i64().or_else(|| pod_sc[k].as_i64());
    match (id("runAsUser"), id("runAsGroup")) {
        (Some(u), Some(g)) => c.user = format!("{u}:{g}"),
        (Some(u), None) => c.user = u.to_string(),
        (None, Some(g)) => c.user = format!("0:{g}"),
        (None, None) => {}
    }
    Ok(())
}

fn resources(r: &Value, at: &str, hc: &mut HostConfig) -> KResult<()> {
    let at = format!("{at}.resources");
    allow(r, &at, &["limits", "requests"], &[])?;
    for part in ["limits", "requests"] {
        allow(&r[part], &format!("{at}.{part}"), &["cpu", "memory"], &[])?;
    }
    let q = |v: &Value, what: &str| -> KResult<Option<f64>> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => quantity::parse(s)
                .map(Some)
                .ok_or_else(|| invalid(format!("{at}.{what}: invalid quantity {s:?}"))),
            Value::Number(n) => Ok(n.as_f64()),
            _ => Err(invalid(format!("{at}.{what}: invalid quantity {v}"))),
        }
    };
    if let Some(m) = q(&r["limits"]["memory"], "limits.memory")? {
        hc.resources.memory = m as i64;
    }
    if let Some(c) = q(&r["limits"]["cpu"], "limits.cpu")? {
        hc.resources.nano_cpus = (c * 1e9).round() as i64;
    }
    if let Some(m) = q(&r["requests"]["memory"], "requests.memory")? {
        hc.resources.memory_reservation = m as i64;
    }
    if let Some(c) = q(&r["requests"]["cpu"], "requests.cpu")? {
        hc.resources.cpu_shares = ((c * 1024.0).round() as i64).max(2);
    }
    Ok(())
}

/// A pod volume: what a volumeMount of it becomes.
enum PodVolume {
    Bind(String),
    Named(String),
    Tmpfs(i64),
    Anonymous,
    Files(usize),
}

fn pod_volumes(
    spec: &Value,
    at: &str,
    src: &Sources,
    files: &mut Vec<PlannedFiles>,
    claims: &mut Vec<String>,
) -> KResult<BTreeMap<String, PodVolume>> {
    let mut out = BTreeMap::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let at = format!("{at}.volumes[{i}]");
        allow(
            v,
            &at,
            &[
                "name",
                "hostPath",
                "emptyDir",
                "persistentVolumeClaim",
                "configMap",
                "secret",
            ],
            &[],
        )?;
        let name = v["name"]
            .as_str()
            .ok_or_else(|| invalid(format!("{at}.name is missing")))?
            .to_string();
        let vol = if v["hostPath"].is_object() {
            allow(&v["hostPath"], &at, &["path", "type"], &[])?;
            let path = v["hostPath"]["path"].as_str().unwrap_or_default();
            let p = std::path::Path::new(path);
            match v["hostPath"]["type"].as_str().unwrap_or("") {
                "" | "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {}
                "DirectoryOrCreate" => {
                    std::fs::create_dir_all(p)
                        .map_err(|e| invalid(format!("{at}: creating {path}: {e}")))?;
                }
                "FileOrCreate" => {
                    if !p.exists() {
                        std::fs::write(p, b"")
                            .map_err(|e| invalid(format!("{at}: creating {path}: {e}")))?;
                    }
                }
                t => {
                    return Err(unsupported(format!(
                        "{at}.hostPath.type {t:?} is not supported"
                    )));
                }
            }
            PodVolume::Bind(path.to_string())
        } else if v["emptyDir"].is_object() {
            allow(&v["emptyDir"], &at, &["medium", "sizeLimit"], &[])?;
            match v["emptyDir"]["medium"].as_str().unwrap_or("") {
                "Memory" => {
                    let size = match v["emptyDir"]["sizeLimit"].as_str() {
                        Some(s) => quantity::parse(s).ok_or_else(|| {
                            invalid(format!("{at}.emptyDir.sizeLimit: invalid quantity {s:?}"))
                        })? as i64,
                        None => 0,
                    };
                    PodVolume::Tmpfs(size)
                }
                "" if v["emptyDir"]["sizeLimit"].is_null() => PodVolume::Anonymous,
                "" => {
                    return Err(unsupported(format!(
                        "{at}.emptyDir.sizeLimit needs medium Memory in berth"
                    )));
                }
                m => {
                    return Err(unsupported(format!(
                        "{at}.emptyDir.medium {m:?} is not supported"
                    )));
                }
            }
        } else if v["persistentVolumeClaim"].is_object() {
            allow(
                &v["persistentVolumeClaim"],
                &at,
                &["claimName", "readOnly"],
                &[],
            )?;
            let claim = v["persistentVolumeClaim"]["claimName"]
                .as_str()
                .ok_or_else(|| invalid(format!("{at}.persistentVolumeClaim.claimName is missing")))?
                .to_string();
            if !claims.contains(&claim) {
                claims.push(claim.clone());
            }
            PodVolume::Named(claim)
        } else if v["configMap"].is_object() || v["secret"].is_object() {
            let secret = v["secret"].is_object();
            let cm = if secret {
                &v["secret"]
            } else {
                &v["configMap"]
            };
            let name_key = if secret { "secretName" } else { "name" };
            allow(
                cm,
                &at,
                &[name_key, "items", "optional", "defaultMode"],
                &[],
            )?;
            let src_name = cm[name_key].as_str().unwrap_or_default();
            let mode = cm["defaultMode"].as_u64().unwrap_or(0o644) as u32;
            let data = match src.get(secret, src_name) {
                Some(d) => d.clone(),
                None if cm["optional"].as_bool() == Some(true) => BTreeMap::new(),
                None => {
                    return Err(invalid(format!(
                        "{at}: {} {src_name:?} not found",
                        what(secret)
                    )));
                }
            };
            let mut list = Vec::new();
            match cm["items"].as_array() {
                Some(items) => {
                    for (j, it) in items.iter().enumerate() {
                        allow(
                            it,
                            &format!("{at}.items[{j}]"),
                            &["key", "path", "mode"],
                            &[],
                        )?;
                        let key = it["key"].as_str().unwrap_or_default();
                        let path = it["path"].as_str().unwrap_or(key);
                        let bytes = data.get(key).ok_or_else(|| {
                            invalid(format!(
                                "{at}: key {key:?} of {} {src_name:?} not found",
                                what(secret)
                            ))
                        })?;
                        let m = it["mode"].as_u64().map(|m| m as u32).unwrap_or(mode);
                        list.push((path.to_string(), bytes.clone(), m));
                    }
                }
                None => {
                    for (k, b) in &data {
                        list.push((k.clone(), b.clone(), mode));
                    }
                }
            }
            for (p, _, _) in &list {
                if p.starts_with('/') || p.split('/').any(|c| c == ".." || c.is_empty()) {
                    return Err(invalid(format!(
                        "{at}: item path {p:?} must be relative, without .."
                    )));
                }
            }
            files.push(PlannedFiles {
                volume: name.clone(),
                files: list,
            });
            PodVolume::Files(files.len() - 1)
        } else {
            return Err(unsupported(format!(
                "{at}: this volume source is not supported by berth"
            )));
        };
        out.insert(name, vol);
    }
    Ok(out)
}

fn restart_of(spec: &Value) -> KResult<RestartPolicy> {
    let name = match spec["restartPolicy"].as_str().unwrap_or("Always") {
        "Always" => "always",
        "OnFailure" => "on-failure",
        "Never" => "",
        other => {
            return Err(invalid(format!(
                "spec.restartPolicy {other:?} is not one of Always, OnFailure, Never"
            )));
        }
    };
    Ok(RestartPolicy {
        name: name.into(),
        maximum_retry_count: 0,
    })
}

fn plan_pod(
    name: String,
    labels: BTreeMap<String, String>,
    spec: &Value,
    at: &str,
    src: &Sources,
    claims: &mut Vec<String>,
) -> KResult<PlannedPod> {
    allow(
        spec,
        at,
        &[
            "containers",
            "volumes",
            "restartPolicy",
            "hostname",
            "hostAliases",
            "dnsConfig",
            "hostNetwork",
            "securityContext",
            "terminationGracePeriodSeconds",
        ],
        &[
            ("automountServiceAccountToken", json!(false)),
            ("enableServiceLinks", json!(false)),
            ("dnsPolicy", json!("ClusterFirst")),
            ("schedulerName", json!("default-scheduler")),
        ],
    )?;
    allow(
        &spec["securityContext"],
        &format!("{at}.securityContext"),
        &["runAsUser", "runAsGroup"],
        &[],
    )?;
    let mut files = Vec::new();
    let volumes = pod_volumes(spec, at, src, &mut files, claims)?;
    let restart = restart_of(spec)?;
    let stop_timeout = spec["terminationGracePeriodSeconds"].as_i64();
    let mut config = PodConfig {
        labels,
        hostname: spec["hostname"].as_str().unwrap_or_default().to_string(),
        shared: pods::SHAREABLE.iter().map(|s| s.to_string()).collect(),
        infra: true,
        exit_policy: "continue".into(),
        ..PodConfig::default()
    };
    if spec["hostNetwork"].as_bool() == Some(true) {
        config.network_mode = "host".into();
    }
    for (i, a) in spec["hostAliases"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        allow(
            a,
            &format!("{at}.hostAliases[{i}]"),
            &["ip", "hostnames"],
            &[],
        )?;
        let ip = a["ip"].as_str().unwrap_or_default();
        for h in str_list(&a["hostnames"], at)?.unwrap_or_default() {
            config.add_hosts.push(format!("{h}:{ip}"));
        }
    }
    let dns = &spec["dnsConfig"];
    allow(
        dns,
        &format!("{at}.dnsConfig"),
        &["nameservers", "searches", "options"],
        &[],
    )?;
    config.dns = str_list(&dns["nameservers"], at)?.unwrap_or_default();
    config.dns_search = str_list(&dns["searches"], at)?.unwrap_or_default();
    for o in dns["options"].as_array().into_iter().flatten() {
        allow(
            o,
            &format!("{at}.dnsConfig.options"),
            &["name", "value"],
            &[],
        )?;
        let n = o["name"].as_str().unwrap_or_default();
        config.dns_options.push(match o["value"].as_str() {
            Some(v) => format!("{n}:{v}"),
            None => n.to_string(),
        });
    }
    let list = spec["containers"]
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "{at}.containers: a pod needs at least one container"
            ))
        })?;
    let mut containers = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("{at}.containers[{i}]");
        allow(
            c,
            &at,
            &[
                "name",
                "image",
                "command",
                "args",
                "workingDir",
                "env",
                "envFrom",
                "ports",
                "volumeMounts",
                "resources",
                "securityContext",
                "livenessProbe",
                "startupProbe",
                "tty",
                "stdin",
                "imagePullPolicy",
            ],
            &[
                ("terminationMessagePath", json!("/dev/termination-log")),
                ("terminationMessagePolicy", json!("File")),
            ],
        )?;
        let cname = c["name"]
            .as_str()
            .ok_or_else(|| invalid(format!("{at}.name is missing")))?;
        let image = c["image"]
            .as_str()
            .ok_or_else(|| invalid(format!("{at}.image is missing")))?;
        let unescape = |l: Option<Vec<String>>| {
            l.map(|l| l.iter().map(|a| a.replace("$$", "$")).collect::<Vec<_>>())
        };
        let mut cfg = Config {
            image: image.to_string(),
            entrypoint: unescape(str_list(&c["command"], &at)?),
            cmd: unescape(str_list(&c["args"], &at)?),
            working_dir: c["workingDir"].as_str().unwrap_or_default().to_string(),
            tty: c["tty"].as_bool() == Some(true),
            open_stdin: c["stdin"].as_bool() == Some(true),
            stop_timeout,
            ..Config::default()
        };
        let env = env_of(c, &at, src)?;
        if !env.is_empty() {
            cfg.env = Some(env);
        }
        cfg.healthcheck = probe_health(&c["livenessProbe"], &c["startupProbe"], &at)?;
        let mut hc = HostConfig {
            restart_policy: restart.clone(),
            ..HostConfig::default()
        };
        security(
            &c["securityContext"],
            &spec["securityContext"],
            &at,
            &mut cfg,
            &mut hc,
        )?;
        resources(&c["resources"], &at, &mut hc)?;
        for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
            allow(
                p,
                &format!("{at}.ports[{j}]"),
                &["containerPort", "hostPort", "hostIP", "protocol", "name"],
                &[],
            )?;
            let cport = p["containerPort"]
                .as_u64()
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| invalid(format!("{at}.ports[{j}].containerPort must be 1-65535")))?;
            if let Some(h) = p["hostPort"].as_u64() {
                config.ports.push(PortMapping {
                    host_ip: p["hostIP"].as_str().unwrap_or_default().to_string(),
                    container_port: cport as u16,
                    host_port: u16::try_from(h).map_err(|_| {
                        invalid(format!("{at}.ports[{j}].hostPort must be 1-65535"))
                    })?,
                    range: 1,
                    protocol: p["protocol"].as_str().unwrap_or("TCP").to_lowercase(),
                });
            }
        }
        let mut mounts = Vec::new();
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mat = format!("{at}.volumeMounts[{j}]");
            allow(m, &mat, &["name", "mountPath", "readOnly"], &[])?;
            let vname = m["name"].as_str().unwrap_or_default();
            let target = m["mountPath"]
                .as_str()
                .filter(|p| p.starts_with('/'))
                .ok_or_else(|| invalid(format!("{mat}.mountPath must be an absolute path")))?
                .to_string();
            let read_only = m["readOnly"].as_bool() == Some(true);
            let vol = volumes
                .get(vname)
                .ok_or_else(|| invalid(format!("{mat}: no pod volume named {vname:?}")))?;
            let mount = match vol {
                PodVolume::Bind(path) => Mount {
                    r#type: "bind".into(),
                    source: path.clone(),
                    target,
                    read_only,
                    ..Mount::default()
                },
                PodVolume::Named(n) => Mount {
                    r#type: "volume".into(),
                    source: n.clone(),
                    target,
                    read_only,
                    ..Mount::default()
                },
                PodVolume::Anonymous => Mount {
                    r#type: "volume".into(),
                    target,
                    read_only,
                    ..Mount::default()
                },
                PodVolume::Tmpfs(size) => Mount {
                    r#type: "tmpfs".into(),
                    target,
                    tmpfs_options: Some(crate::model::mount::TmpfsOptions {
                        size_bytes: *size,
                        ..Default::default()
                    }),
                    ..Mount::default()
                },
                // The host folder is filled when the pod is made; its path is set then.
                PodVolume::Files(i) => Mount {
                    r#type: "bind".into(),
                    source: format!("kube-files:{i}"),
                    target,
                    read_only: true,
                    ..Mount::default()
                },
            };
            mounts.push(mount);
        }
        if !mounts.is_empty() {
            hc.mounts = Some(mounts);
        }
        containers.push(PlannedContainer {
            name: format!("{name}-{cname}"),
            request: CreateRequest {
                config: cfg,
                host_config: hc,
                networking_config: Default::default(),
            },
            pull_always: c["imagePullPolicy"].as_str() == Some("Always"),
        });
    }
    Ok(PlannedPod {
        create: PodCreate {
            name: Some(name.clone()),
            config,
            ..PodCreate::default()
        },
        name,
        containers,
        files,
    })
}

fn documents(yaml: &str) -> KResult<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml)
        .map_err(|e| invalid(format!("the YAML cannot be read: {e}")))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// A pod to make: its name, labels, pod spec and where in the YAML it is (for errors).
type PodDocument = (String, BTreeMap<String, String>, Value, String);

/// The pods (by name) a YAML makes, and the documents they come from.
fn pod_documents(docs: &[Value]) -> KResult<Vec<PodDocument>> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let kind = d["kind"].as_str().unwrap_or_default();
        let at = format!("document {} ({kind} {:?})", i + 1, name_of(d));
        match kind {
            "Pod" => {
                let _: k8s_openapi::api::core::v1::Pod =
                    serde_json::from_value(d.clone()).map_err(|e| invalid(format!("{at}: {e}")))?;
                out.push((
                    name_of(d),
                    labels_of(d),
                    d["spec"].clone(),
                    format!("{at}: spec"),
                ));
            }
            "Deployment" => {
                let _: k8s_openapi::api::apps::v1::Deployment =
                    serde_json::from_value(d.clone()).map_err(|e| invalid(format!("{at}: {e}")))?;
                let t = &d["spec"]["template"];
                let mut labels = labels_of(t);
                labels.extend(labels_of(d));
                out.push((
                    format!("{}-pod", name_of(d)),
                    labels,
                    t["spec"].clone(),
                    format!("{at}: spec.template.spec"),
                ));
            }
            _ => {}
        }
    }
    for (n, _, _, at) in &out {
        if n.is_empty() || n == "-pod" {
            return Err(invalid(format!("{at}: metadata.name is missing")));
        }
    }
    Ok(out)
}

/// Plan the whole YAML; nothing is made yet.
pub fn plan(yaml: &str) -> KResult<Plan> {
    let docs = documents(yaml)?;
    if docs.is_empty() {
        return Err(invalid("the YAML holds no documents"));
    }
    let mut src = Sources::default();
    let mut volumes = Vec::new();
    let mut warnings = Vec::new();
    let mut refused = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let kind = d["kind"]
            .as_str()
            .ok_or_else(|| invalid(format!("document {} has no kind", i + 1)))?;
        match kind {
            "ConfigMap" => {
                let (n, data) = read_source(d, false)?;
                src.config_maps.insert(n, data);
            }
            "Secret" => {
                let (n, data) = read_source(d, true)?;
                src.secrets.insert(n, data);
            }
            "PersistentVolumeClaim" => {
                let n = name_of(d);
                if n.is_empty() {
                    return Err(invalid(format!(
                        "document {}: a PersistentVolumeClaim has no metadata.name",
                        i + 1
                    )));
                }
                volumes.push((n, labels_of(d)));
            }
            "Pod" | "Deployment" => {
                if kind == "Deployment"
                    && let Some(r) = d["spec"]["replicas"].as_i64()
                    && r > 1
                {
                    warnings.push(format!(
                        "Deployment {:?} asks for {r} replicas: berth runs one pod",
                        name_of(d)
                    ));
                }
            }
            // A Service needs no local object: the pods it selects publish their hostPorts.
            "Service" => warnings.push(format!(
                "Service {:?} is not played: berth publishes the pods' hostPorts instead",
                name_of(d)
            )),
            other => refused.push(format!("{other} {:?}", name_of(d))),
        }
    }
    if !refused.is_empty() {
        return Err(unsupported(format!(
            "berth cannot play these kinds: {} (it plays Pod, Deployment, PersistentVolumeClaim, ConfigMap, Secret)",
            refused.join(", ")
        )));
    }
    let mut claims = Vec::new();
    let mut pods_out = Vec::new();
    for (name, labels, spec, at) in pod_documents(&docs)? {
        pods_out.push(plan_pod(name, labels, &spec, &at, &src, &mut claims)?);
    }
    for c in claims {
        if !volumes.iter().any(|(n, _)| *n == c) {
            volumes.push((c, BTreeMap::new()));
        }
    }
    Ok(Plan {
        volumes,
        pods: pods_out,
        warnings,
    })
}

/// The names of the pods a YAML makes (`play kube --down`).
pub fn pod_names(yaml: &str) -> KResult<Vec<String>> {
    let docs = documents(yaml)?;
    Ok(pod_documents(&docs)?.into_iter().map(|(n, ..)| n).collect())
}

/// Where a played pod's ConfigMap and Secret files live on the host.
pub fn files_dir(engine: &Engine, pod: &str) -> PathBuf {
    engine.paths().data_root().join("kube").join(pod)
}

fn write_files(dir: &std::path::Path, f: &PlannedFiles) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join(&f.volume);
    std::fs::create_dir_all(&root)?;
    for (path, bytes, mode) in &f.files {
        let p = root.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode & 0o7777))?;
    }
    Ok(root)
}

/// What `apply` made: per pod its ID and containers; the volumes it created.
pub struct Applied {
    pub pods: Vec<(String, Vec<String>)>,
    pub volumes: Vec<String>,
}

/// Make what the plan describes and start the pods.
pub fn apply(engine: &Engine, plan: Plan) -> Result<Applied> {
    let mut made_volumes = Vec::new();
    for (name, labels) in &plan.volumes {
        match crate::engine::volumes::inspect(engine, name) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {
                crate::engine::volumes::create(
                    engine,
                    crate::engine::volumes::CreateOptions {
                        name: name.clone(),
                        driver: "local".into(),
                        driver_opts: None,
                        labels: Some(labels.clone()),
                    },
                )?;
                made_volumes.push(name.clone());
            }
            Err(e) => return Err(e),
        }
    }
    let mut pods_out = Vec::new();
    for p in plan.pods {
        let pod_id = pods::create(engine, p.create)?;
        let made = (|| -> Result<Vec<String>> {
            let dir = files_dir(engine, &p.name);
            let _ = std::fs::remove_dir_all(&dir);
            let mut roots = Vec::new();
            for f in &p.files {
                roots.push(write_files(&dir, f)?);
            }
            let mut ids = Vec::new();
            for c in p.containers {
                let mut request = c.request;
                for m in request.host_config.mounts.iter_mut().flatten() {
                    if let Some(i) = m
                        .source
                        .strip_prefix("kube-files:")
                        .and_then(|i| i.parse::<usize>().ok())
                    {
                        m.source = roots[i].display().to_string();
                    }
                }
                let join = pods::join(
                    engine,
                    &pod_id,
                    &mut request.config,
                    &mut request.host_config,
                )?;
                ids.push(create_in(engine, Some(&c.name), request, Some(&join))?.id);
            }
            if let Some(r) = pods::ops::start(engine, &pod_id)?
                && !r.errors.is_empty()
            {
                return Err(EngineError::internal(format!(
                    "starting pod {}: {}",
                    p.name,
                    r.errors.join("; ")
                )));
            }
            Ok(ids)
        })();
        match made {
            Ok(ids) => pods_out.push((pod_id, ids)),
            Err(e) => {
                let _ = pods::ops::remove(engine, &pod_id, true);
                let _ = std::fs::remove_dir_all(files_dir(engine, &p.name));
                return Err(e);
            }
        }
    }
    Ok(Applied {
        pods: pods_out,
        volumes: made_volumes,
    })
}

/// `play kube --down`: stop and remove the pods the YAML names. Volumes stay (their data).
pub fn down(engine: &Engine, yaml: &str) -> Result<Value> {
    let names = pod_names(yaml)?;
    let mut stopped = Vec::new();
    let mut removed = Vec::new();
    for n in names {
        let id = match pods::load(engine, &n) {
            Ok(p) => p.row.id,
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let stop = pods::ops::stop(engine, &id, Some(10))?;
        stopped.push(json!({"Errs": stop.map(|r| r.errors).filter(|e| !e.is_empty()), "Id": id}));
        pods::ops::remove(engine, &id, true)?;
        let _ = std::fs::remove_dir_all(files_dir(engine, &n));
        removed.push(json!({"Err": null, "Id": id}));
    }
    let list = |v: Vec<Value>| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::Array(v)
        }
    };
    Ok(json!({
        "Pods": null, "Volumes": null,
        "StopReport": list(stopped), "RmReport": list(removed), "Secrets": null,
    }))
}

/// libpod's `PlayKubeReport` for what `apply` made.
pub fn report(applied: &Applied, warnings: &[String]) -> Value {
    let mut m = Map::new();
    m.insert(
        "Pods".into(),
        applied
            .pods
            .iter()
            .map(|(id, ctrs)| json!({"ID": id, "Containers": ctrs, "InitContainers": null, "Logs": null, "ContainerErrors": null}))
            .collect(),
    );
    m.insert(
        "Volumes".into(),
        if applied.volumes.is_empty() {
            Value::Null
        } else {
            applied.volumes.iter().map(|v| json!({"Name": v})).collect()
        },
    );
    m.insert("StopReport".into(), Value::Null);
    m.insert("RmReport".into(), Value::Null);
    m.insert("Secrets".into(), Value::Null);
    m.insert("Warnings".into(), json!(warnings));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data:
  GREETING: hello
  index.html: "<h1>hi</h1>"
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data:
  password: c2VjcmV0
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: srv
        image: busybox
        args: [httpd, -f, -p, "80", -h, /www]
        env:
        - name: GREETING
          valueFrom: {configMapKeyRef: {name: web-config, key: GREETING}}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
        envFrom:
        - prefix: CFG_
          configMapRef: {name: web-config}
        ports: [{containerPort: 80, hostPort: 8089}]
        resources: {limits: {memory: 64Mi, cpu: 500m}}
        volumeMounts:
        - {name: www, mountPath: /www}
        - {name: data, mountPath: /data}
        livenessProbe:
          exec: {command: [wget, -q, -O, /dev/null, localhost]}
          periodSeconds: 5
      volumes:
      - name: www
        configMap: {name: web-config, items: [{key: index.html, path: index.html}]}
      - name: data
        persistentVolumeClaim: {claimName: data}
"#;

    #[test]
    fn plans_a_deployment_with_config_and_claims() {
        let p = plan(MULTI).unwrap();
        assert_eq!(p.volumes.len(), 1);
        assert_eq!(p.volumes[0].0, "data");
        let pod = &p.pods[0];
        assert_eq!(pod.name, "web-pod");
        assert_eq!(pod.create.config.ports[0].host_port, 8089);
        let c = &pod.containers[0];
        assert_eq!(c.name, "web-pod-srv");
        let env = c.request.config.env.clone().unwrap();
        assert!(env.contains(&"GREETING=hello".to_string()), "{env:?}");
        assert!(env.contains(&"PASSWORD=secret".to_string()), "{env:?}");
        assert!(
            env.contains(&"CFG_index.html=<h1>hi</h1>".to_string()),
            "{env:?}"
        );
        assert_eq!(c.request.host_config.resources.memory, 64 << 20);
        assert_eq!(c.request.host_config.resources.nano_cpus, 500_000_000);
        assert_eq!(pod.files[0].files[0].0, "index.html");
        let h = c.request.config.healthcheck.as_ref().unwrap();
        assert_eq!(h.interval, 5_000_000_000);
        assert_eq!(c.request.host_config.restart_policy.name, "always");
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let with = |extra: &str| {
            MULTI.replace(
                "        image: busybox\n",
                &format!("        image: busybox\n{extra}"),
            )
        };
        let e = plan(&with(
            "        lifecycle: {postStart: {exec: {command: [x]}}}\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("lifecycle is not supported"), "{e}");
        let e = plan(&with("        readinessProbe: {exec: {command: [x]}}\n")).unwrap_err();
        assert!(e.to_string().contains("readinessProbe"), "{e}");
        let e =
            plan(&MULTI.replace("mountPath: /data}", "mountPath: /data, subPath: x}")).unwrap_err();
        assert!(e.to_string().contains("subPath"), "{e}");
        let e = plan(&MULTI.replace(
            "exec: {command: [wget, -q, -O, /dev/null, localhost]}",
            "httpGet: {port: 80}",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("only exec"), "{e}");
        let e = plan(&MULTI.replace("memory: 64Mi", "memory: 64Qi")).unwrap_err();
        assert!(e.to_string().contains("invalid quantity"), "{e}");
        let e = plan(&MULTI.replace("key: GREETING}", "key: NOPE}")).unwrap_err();
        assert!(e.to_string().contains("NOPE"), "{e}");
        let e = plan(&format!(
            "{MULTI}---\napiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("Job \"j\""), "{e}");
        assert!(plan("").is_err());
        assert!(plan("kind: [").is_err());
    }

    #[test]
    fn services_are_reported_and_names_listed() {
        let yaml = format!(
            "{MULTI}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n"
        );
        let p = plan(&yaml).unwrap();
        assert!(p.warnings.iter().any(|w| w.contains("Service")));
        assert_eq!(pod_names(&yaml).unwrap(), ["web-pod"]);
    }
}
