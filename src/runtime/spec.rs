//! Assembles `config.json` (Docker's `createSpec`).

use std::path::Path;

use std::collections::HashMap;

use oci_spec::runtime::{self as oci, Spec};
use serde_json::Value;

use super::mounts::{MountContext, build_mounts, user_mounts};
use super::resources::{devices, linux_resources, rlimits, validate_resources};
use super::{HostInfo, NamespaceMode, SpecError, SpecInput, apparmor, caps, seccomp, user};
use crate::model::{Config, HostConfig};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;
const MAX_HOSTNAME_LEN: usize = 64;
const INIT_PATH: &str = "/sbin/docker-init";

pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The process environment Docker gives: PATH, HOSTNAME, TERM=xterm with a tty, then the
/// config's Env replacing same-named entries (an entry without `=` removes the variable).
pub fn process_env(config: &Config, hostname: &str) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    if config.tty {
        env.push("TERM=xterm".into());
    }
    let overrides = config.env().iter().cloned();
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<Option<String>> = env.into_iter().map(Some).collect();
    for value in overrides {
        let pos = out
            .iter()
            .position(|e| e.as_deref().is_some_and(|e| key(e) == key(&value)));
        match (value.contains('='), pos) {
            (false, Some(i)) => out[i] = None,
            (false, None) => {}
            (true, Some(i)) => out[i] = Some(value),
            (true, None) => out.push(Some(value)),
        }
    }
    out.into_iter().flatten().collect()
}

/// Parsed `HostConfig.SecurityOpt` (Docker's parseSecurityOpt).
#[derive(Debug, Default, Clone)]
pub(crate) struct SecurityOpts {
    pub no_new_privileges: bool,
    pub writable_cgroups: Option<bool>,
    pub seccomp: Option<String>,
    pub apparmor: Option<String>,
    /// `label=…` values other than `disable`.
    pub labels: Vec<String>,
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub(crate) fn parse_security_opts(hc: &HostConfig) -> Result<SecurityOpts, SpecError> {
    let mut s = SecurityOpts::default();
    for opt in hc.security_opt() {
        match opt.as_str() {
            "no-new-privileges" => {
                s.no_new_privileges = true;
                continue;
            }
            "writable-cgroups" => {
                s.writable_cgroups = Some(true);
                continue;
            }
            "disable" => continue,
            _ => {}
        }
        let kv = if opt.contains('=') {
            opt.split_once('=')
        } else {
            opt.split_once(':')
        };
        let Some((k, v)) = kv else {
            return Err(SpecError::invalid(format!(
                "invalid --security-opt 1: {opt:?}"
            )));
        };
        let bad2 = || SpecError::invalid(format!("invalid --security-opt 2: {opt:?}"));
        match k {
            "label" if v != "disable" => s.labels.push(v.to_string()),
            "label" => {}
            "apparmor" => s.apparmor = Some(v.to_string()),
            "seccomp" => s.seccomp = Some(v.to_string()),
            "no-new-privileges" => s.no_new_privileges = parse_bool(v).ok_or_else(bad2)?,
            "writable-cgroups" => s.writable_cgroups = Some(parse_bool(v).ok_or_else(bad2)?),
            _ => return Err(bad2()),
        }
    }
    Ok(s)
}

fn valid_ns_mode(mode: &str, allow: &[&str], container: bool) -> bool {
    allow.contains(&mode)
        || (container
            && mode
                .strip_prefix("container:")
                .is_some_and(|c| !c.is_empty()))
}

const NAMESPACED_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

fn is_ipc_sysctl(k: &str) -> bool {
    NAMESPACED_SYSCTLS.contains(&k) || k.starts_with("fs.mqueue.")
}

/// Create-time validation with dockerd's texts (`verifyContainerSettings`). Returns warnings.
pub fn validate_host_config(config: &Config, hc: &HostConfig) -> Result<Vec<String>, SpecError> {
    validate_with(config, hc, HostInfo::get())
}

pub(crate) fn validate_with(
    config: &Config,
    hc: &HostConfig,
    host: &HostInfo,
) -> Result<Vec<String>, SpecError> {
    let hostname = &config.hostname;
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(inv(format!(
            "hostname {hostname:?} is too long (maximum {MAX_HOSTNAME_LEN} bytes)"
        )));
    }
    let wd = &config.working_dir;
    if !wd.is_empty() && !wd.starts_with('/') {
        return Err(inv(format!(
            "the working directory '{wd}' is invalid, it needs to be an absolute path"
        )));
    }
    for e in config.env() {
        if e.is_empty() || e.starts_with('=') {
            return Err(inv(format!("invalid environment variable: {e}")));
        }
    }
    user_mounts(hc, false, &[])?;
    caps::normalize_capabilities(hc.cap_add.as_deref().unwrap_or_default(), host)
        .map_err(|e| inv(format!("invalid CapAdd: {e}")))?;
    caps::normalize_capabilities(hc.cap_drop.as_deref().unwrap_or_default(), host)
        .map_err(|e| inv(format!("invalid CapDrop: {e}")))?;
    let res = validate_resources(hc, host)?;
    let mut warnings = res.warnings;

    let ipc = hc.ipc_mode.as_str();
    if !valid_ns_mode(ipc, &["", "none", "private", "shareable", "host"], true) {
        return Err(inv(format!("invalid IPC mode: {ipc}")));
    }
    let pid = hc.pid_mode.as_str();
    if !valid_ns_mode(pid, &["", "host"], true) {
        return Err(inv(format!("invalid PID mode: {pid}")));
    }
    if hc.shm_size < 0 {
        return Err(inv("SHM size can not be less than 0"));
    }
    let uts = hc.uts_mode.as_str();
    if !valid_ns_mode(uts, &["", "host"], true) {
        return Err(inv(format!("invalid UTS mode: {uts}")));
    }
    let oom = hc.oom_score_adj;
    if !(-1000..=1000).contains(&oom) {
        return Err(inv(format!(
            "Invalid value {oom}, range for oom score adj is [-1000, 1000]"
        )));
    }
    let cgns = hc.cgroupns_mode.as_str();
    if !["", "private", "host"].contains(&cgns) {
        return Err(inv(format!("invalid cgroup namespace mode: {cgns}")));
    }
    rlimits(hc)?;
    let sec = parse_security_opts(hc)?;
    // Never accept a security option and ignore it: what the host cannot apply is refused.
    if let Some(p) = sec.apparmor.as_deref()
        && p != apparmor::UNCONFINED
        && !host.apparmor
    {
        return Err(inv(format!(
            "invalid --security-opt: AppArmor is not enabled on this host: \"apparmor={p}\""
        )));
    }
    if let Some(l) = sec.labels.first() {
        if !host.selinux {
            return Err(inv(format!(
                "invalid --security-opt: SELinux is not enabled on this host: \"label={l}\""
            )));
        }
        return Err(SpecError::NotSupported(format!(
            "SELinux labels are not supported by berth yet: \"label={l}\""
        )));
    }
    if let Some(p) = sec.seccomp.as_deref()
        && !matches!(p, "unconfined" | "builtin" | "")
    {
        seccomp::load_profile(p, &[], host)?;
    }
    if let Some(s) = &hc.sysctls {
        for (k, v) in s {
            if !(NAMESPACED_SYSCTLS.contains(&k.as_str())
                || k.starts_with("net.")
                || k.starts_with("fs.mqueue."))
            {
                return Err(inv(format!("sysctl '{k}={v}' is not allowed")));
            }
        }
    }
    if hc.auto_remove && !hc.restart_policy.is_none() {
        return Err(inv(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    warnings.dedup();
    Ok(warnings)
}

/// Build `config.json` for the running host.
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    build_spec_with(input, HostInfo::get())
}

/// Build `config.json` against explicit host facts (moby's `createSpec`).
///
/// oci-spec's `Default`s are a runnable example container (a shell, `nofile` 1024,
/// `noNewPrivileges`, default capabilities, namespaces and masked paths), and its builders
/// fill every field left unset from them: so each part is built from the crate's default
/// with every field set here, none inherited by accident.
pub fn build_spec_with(input: &SpecInput, host: &HostInfo) -> Result<Spec, SpecError> {
    let config = input.config;
    let hc = input.host_config;
    validate_with(config, hc, host)?;

    let privileged = hc.privileged;
    let readonly = hc.readonly_rootfs;
    let sec = parse_security_opts(hc)?;
    let ns = &input.namespaces;

    let capabilities = caps::tweak_capabilities(
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
        privileged,
        host,
    )?;
    let (uid, gid, additional) = user::resolve_user(
        input.rootfs,
        &config.user,
        hc.group_add.as_deref().unwrap_or_default(),
    )?;

    let mut args = config.command_line();
    if args.is_empty() {
        return Err(SpecError::invalid("No command specified"));
    }
    let mut init_binary: Option<&Path> = None;
    if hc.init == Some(true) && ns.pid == NamespaceMode::New {
        let Some(bin) = input.init_binary else {
            return Err(SpecError::system(
                "exec: \"docker-init\": executable file not found in $PATH",
            ));
        };
        init_binary = Some(bin);
        let mut a = vec![INIT_PATH.to_string(), "--".to_string()];
        a.extend(args);
        args = a;
    }

    let hostname = config.hostname.as_str();
    let cwd = match config.working_dir.as_str() {
        "" => "/".to_string(),
        wd => super::mounts::clean_path(wd),
    };
    let tty = config.tty;
    let console_size = match hc.console_size {
        [h, w] if tty && (h > 0 || w > 0) => {
            Some(oci::BoxBuilder::default().height(h).width(w).build()?)
        }
        _ => None,
    };
    let mut process_user = oci::User::default();
    process_user
        .set_uid(uid)
        .set_gid(gid)
        .set_umask(None)
        .set_additional_gids(Some(additional))
        .set_username(None);
    let cap_set = capability_set(&capabilities)?;
    let mut process_caps = oci::LinuxCapabilities::default();
    process_caps
        .set_bounding(Some(cap_set.clone()))
        .set_effective(Some(cap_set.clone()))
        .set_permitted(Some(cap_set))
        .set_inheritable(None)
        .set_ambient(None);
    let rlimits = rlimits(hc)?;
    let apparmor_profile = host
        .apparmor
        .then(|| apparmor::profile_for(sec.apparmor.as_deref(), privileged))
        .filter(|p| *p != apparmor::UNCONFINED)
        .map(String::from);
    let oom_score_adj = i32::try_from(hc.oom_score_adj).map_err(|_| {
        inv(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        ))
    })?;
    let mut process = oci::Process::default();
    process
        .set_terminal(Some(tty))
        .set_console_size(console_size)
        .set_user(process_user)
        .set_args(Some(args))
        .set_command_line(None)
        .set_env(Some(process_env(config, hostname)))
        .set_cwd(cwd.into())
        .set_capabilities(Some(process_caps))
        .set_rlimits(Some(rlimits).filter(|r| !r.is_empty()))
        .set_no_new_privileges(sec.no_new_privileges.then_some(true))
        .set_apparmor_profile(apparmor_profile)
        .set_oom_score_adj(Some(oom_score_adj))
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);

    // mounts
    let shm_size = match hc.shm_size {
        0 => DEFAULT_SHM_SIZE,
        n => n,
    };
    let ctx = MountContext {
        host,
        privileged,
        readonly_rootfs: readonly,
        writable_cgroups: sec.writable_cgroups.unwrap_or(privileged),
        ipc_none: hc.ipc_mode == "none",
        shm_size,
        shm_path: input.shm_path,
        init_binary,
        etc: &input.etc,
        volumes: &input.volumes,
    };
    let (mounts, rootfs_propagation) = build_mounts(hc, &ctx)?;
    let mounts = mounts
        .iter()
        .map(|m| m.to_oci())
        .collect::<Result<Vec<_>, _>>()?;

    // linux
    let mut sysctl = HashMap::new();
    if matches!(ns.network, NamespaceMode::New | NamespaceMode::Own(_)) {
        if Path::new("/proc/sys/net/ipv4/ping_group_range").exists() {
            sysctl.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
        }
        if Path::new("/proc/sys/net/ipv4/ip_unprivileged_port_start").exists() {
            sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        }
    }
    if !config.domainname.is_empty() && ns.uts == NamespaceMode::New {
        sysctl.insert("kernel.domainname".into(), config.domainname.clone());
    }
    for (k, v) in hc.sysctls.iter().flatten() {
        if k.starts_with("net.") && ns.network == NamespaceMode::Host {
            return Err(SpecError::invalid(format!(
                "sysctl {k:?} is not allowed in the host's network namespace"
            )));
        }
        if is_ipc_sysctl(k) && ns.ipc == NamespaceMode::Host {
            return Err(SpecError::invalid(format!(
                "sysctl {k:?} is not allowed in the host's IPC namespace"
            )));
        }
        sysctl.insert(k.clone(), v.clone());
    }

    let res = validate_resources(hc, host)?;
    let mut resources = linux_resources(hc, &res)?;
    let (devs, rules) = devices(hc, privileged)?;
    resources.set_devices(Some(rules));

    let mut namespaces = vec![namespace(oci::LinuxNamespaceType::Mount, None)];
    for (typ, mode) in [
        (oci::LinuxNamespaceType::Network, &ns.network),
        (oci::LinuxNamespaceType::Uts, &ns.uts),
        (oci::LinuxNamespaceType::Pid, &ns.pid),
        (oci::LinuxNamespaceType::Ipc, &ns.ipc),
    ] {
        match mode {
            NamespaceMode::New => namespaces.push(namespace(typ, None)),
            NamespaceMode::Host => {}
            NamespaceMode::Path(p) | NamespaceMode::Own(p) => {
                namespaces.push(namespace(typ, Some(p.clone())))
            }
        }
    }
    let cgroupns = match hc.cgroupns_mode.as_str() {
        "private" => true,
        "host" => false,
        _ => host.cgroup_v2,
    };
    if cgroupns {
        namespaces.push(namespace(oci::LinuxNamespaceType::Cgroup, None));
    }

    let profile = sec.seccomp.as_deref().unwrap_or("");
    let seccomp = match profile {
        "unconfined" => None,
        "" if privileged => None,
        "" | "builtin" => seccomp::load_profile(seccomp::DEFAULT_PROFILE, &capabilities, host)?,
        custom => seccomp::load_profile(custom, &capabilities, host)?,
    };
    let seccomp = seccomp
        .map(serde_json::from_value::<oci::LinuxSeccomp>)
        .transpose()
        .map_err(|e| SpecError::system(format!("seccomp profile: {e}")))?;

    let mut masked: Vec<String> = Vec::new();
    let mut ro_paths: Vec<String> = Vec::new();
    if !privileged {
        masked = MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        masked.extend(host.extra_masked_paths.iter().cloned());
        ro_paths = READONLY_PATHS.iter().map(|s| s.to_string()).collect();
    }
    if let Some(given) = hc.masked_paths.clone() {
        // Docker's default list, as create stores it, still gets this host's extra paths.
        if given
            .iter()
            .map(String::as_str)
            .ne(MASKED_PATHS.iter().copied())
        {
            masked = given;
        }
    }
    if let Some(given) = hc.readonly_paths.clone() {
        ro_paths = given;
    }

    let mut linux = oci::Linux::default();
    linux
        .set_net_devices(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(Some(sysctl).filter(|s| !s.is_empty()))
        .set_resources(Some(resources))
        .set_cgroups_path(Some(input.cgroups_path.clone().into()))
        .set_namespaces(Some(namespaces))
        .set_devices(Some(devs))
        .set_seccomp(seccomp)
        .set_rootfs_propagation(rootfs_propagation)
        .set_masked_paths(Some(masked).filter(|m| !m.is_empty()))
        .set_readonly_paths(Some(ro_paths).filter(|r| !r.is_empty()))
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);

    let mut root = oci::Root::default();
    root.set_path(input.rootfs.to_path_buf())
        .set_readonly(Some(readonly));
    let annotations = hc
        .annotations
        .as_ref()
        .filter(|a| !a.is_empty())
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.into())
        .set_root(Some(root))
        .set_mounts(Some(mounts))
        .set_process(Some(process))
        .set_hostname(
            (ns.uts == NamespaceMode::New && !hostname.is_empty()).then(|| hostname.into()),
        )
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(annotations)
        .set_linux(Some(linux))
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None);
    let _ = input.id;
    Ok(spec)
}

/// The runtime spec version berth writes (runc accepts 1.0.x and later).
const OCI_VERSION: &str = "1.0.2-dev";

fn namespace(
    typ: oci::LinuxNamespaceType,
    path: Option<std::path::PathBuf>,
) -> oci::LinuxNamespace {
    let mut n = oci::LinuxNamespace::default();
    n.set_typ(typ).set_path(path);
    n
}

/// Capability names (`CAP_CHOWN`) as the runtime spec's set.
pub(crate) fn capability_set(names: &[String]) -> Result<oci::Capabilities, SpecError> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<oci::Capability>(Value::String(n.clone()))
                .map_err(|_| SpecError::system(format!("unknown capability {n:?}")))
        })
        .collect()
}

fn inv(msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{EtcFiles, NamespaceModes};
    use serde_json::json;

    fn host() -> HostInfo {
        HostInfo::for_tests(caps::caps_from_mask(0x1fffeffffff, 40))
    }
    fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }
    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nu:x:1000:\n").unwrap();
        d
    }
    fn spec(config: Value, hc: Value) -> Result<Value, SpecError> {
        spec_ns(config, hc, NamespaceModes::default())
    }
    fn spec_ns(config: Value, hc: Value, namespaces: NamespaceModes) -> Result<Value, SpecError> {
        let r = rootfs();
        let config: Config = obj(config);
        let hc: HostConfig = obj(hc);
        let input = SpecInput {
            id: "abc",
            rootfs: r.path(),
            config: &config,
            host_config: &hc,
            etc: EtcFiles::default(),
            cgroups_path: "/berth/abc".into(),
            namespaces,
            init_binary: Some(Path::new("/usr/bin/tini")),
            shm_path: None,
            volumes: Vec::new(),
        };
        build_spec_with(&input, &host()).map(|s| serde_json::to_value(s).unwrap())
    }

    #[test]
    fn env_merge() {
        let c = obj(json!({"Tty": true, "Env": ["A=1", "PATH=/x", "HOSTNAME", "TERM=dumb", "B"]}));
        assert_eq!(process_env(&c, "h"), ["PATH=/x", "TERM=dumb", "A=1"]);
        let c = obj(json!({"Env": null}));
        assert_eq!(
            process_env(&c, "box"),
            [format!("PATH={DEFAULT_PATH}"), "HOSTNAME=box".into()]
        );
    }

    #[test]
    fn security_opts() {
        let s = parse_security_opts(&obj(json!({"SecurityOpt": ["no-new-privileges:true", "seccomp=unconfined", "label=disable"]}))).unwrap();
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp.as_deref(), Some("unconfined"));
        let s = parse_security_opts(&obj(
            json!({"SecurityOpt": ["no-new-privileges", "no-new-privileges=false"]}),
        ))
        .unwrap();
        assert!(!s.no_new_privileges);
        let s = parse_security_opts(&obj(
            json!({"SecurityOpt": [r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#]}),
        ))
        .unwrap();
        assert_eq!(
            s.seccomp.as_deref(),
            Some(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)
        );
        let e = parse_security_opts(&obj(json!({"SecurityOpt": ["bogus"]}))).unwrap_err();
        assert_eq!(e.to_string(), "invalid --security-opt 1: \"bogus\"");
        let e = parse_security_opts(&obj(json!({"SecurityOpt": ["foo=bar"]}))).unwrap_err();
        assert_eq!(e.to_string(), "invalid --security-opt 2: \"foo=bar\"");
    }

    #[test]
    fn default_spec() {
        let s = spec(
            json!({"Hostname": "box", "Domainname": "example.com", "Cmd": ["sh", "-c", "true"], "Entrypoint": null, "Env": ["X=1"]}),
            json!({}),
        )
        .unwrap();
        assert_eq!(s["ociVersion"], "1.0.2-dev");
        assert_eq!(s["hostname"], "box");
        let p = &s["process"];
        assert_eq!(p["terminal"], false);
        assert_eq!(p["args"], json!(["sh", "-c", "true"]));
        assert_eq!(p["cwd"], "/");
        assert_eq!(
            p["user"],
            json!({"uid": 0, "gid": 0, "additionalGids": [0]})
        );
        assert_eq!(p["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert!(p["capabilities"].get("inheritable").is_none());
        assert!(p["capabilities"].get("ambient").is_none());
        assert!(p.get("rlimits").is_none());
        assert!(p.get("noNewPrivileges").is_none());
        assert_eq!(p["oomScoreAdj"], 0);
        assert!(p["env"].as_array().unwrap().contains(&json!("X=1")));
        let l = &s["linux"];
        assert_eq!(l["cgroupsPath"], "/berth/abc");
        assert_eq!(
            l["namespaces"],
            json!([{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}])
        );
        assert_eq!(l["sysctl"]["kernel.domainname"], "example.com");
        assert_eq!(l["maskedPaths"].as_array().unwrap().len(), 12);
        assert_eq!(l["readonlyPaths"].as_array().unwrap().len(), 5);
        assert_eq!(l["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(l["resources"]["devices"].as_array().unwrap().len(), 8);
        assert_eq!(l["devices"], json!([]));
        assert!(l.get("rootfsPropagation").is_none());
        assert_eq!(s["mounts"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn init_tty_user_and_modes() {
        let s = spec_ns(
            json!({"Entrypoint": ["/ep"], "Cmd": ["a"], "Tty": true, "User": "u", "WorkingDir": "/w/../x", "Hostname": "h"}),
            json!({"Init": true, "ConsoleSize": [24, 80], "GroupAdd": ["55"], "OomScoreAdj": 100,
                   "SecurityOpt": ["no-new-privileges"], "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}]}),
            NamespaceModes {
                network: NamespaceMode::Host,
                ipc: NamespaceMode::Path("/proc/1/ns/ipc".into()),
                pid: NamespaceMode::New,
                uts: NamespaceMode::Host,
            },
        )
        .unwrap();
        let p = &s["process"];
        assert_eq!(p["args"], json!(["/sbin/docker-init", "--", "/ep", "a"]));
        assert_eq!(p["consoleSize"], json!({"height": 24, "width": 80}));
        assert_eq!(
            p["user"],
            json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 55]})
        );
        assert_eq!(p["cwd"], "/x");
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["oomScoreAdj"], 100);
        assert_eq!(
            p["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}])
        );
        assert!(p["env"].as_array().unwrap().contains(&json!("TERM=xterm")));
        assert!(s.get("hostname").is_none());
        assert_eq!(
            s["linux"]["namespaces"],
            json!([{"type": "mount"}, {"type": "pid"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}])
        );
        assert!(s["linux"].get("sysctl").is_none());
        let init = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == INIT_PATH)
            .unwrap();
        assert_eq!(init["source"], "/usr/bin/tini");

        // Init with a shared pid namespace: no init (Docker only adds it with a private one)
        let s = spec_ns(
            json!({"Cmd": ["a"]}),
            json!({"Init": true}),
            NamespaceModes {
                pid: NamespaceMode::Host,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s["process"]["args"], json!(["a"]));
    }

    #[test]
    fn privileged() {
        let s = spec(json!({"Cmd": ["a"]}), json!({"Privileged": true})).unwrap();
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            40
        );
        let l = &s["linux"];
        assert!(l.get("seccomp").is_none());
        assert!(l.get("maskedPaths").is_none());
        assert!(l.get("readonlyPaths").is_none());
        assert_eq!(
            l["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert!(!l["devices"].as_array().unwrap().is_empty());
        let sys = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap();
        assert!(!sys["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn seccomp_choices() {
        let s = spec(
            json!({"Cmd": ["a"]}),
            json!({"SecurityOpt": ["seccomp=unconfined"]}),
        )
        .unwrap();
        assert!(s["linux"].get("seccomp").is_none());
        let s = spec(
            json!({"Cmd": ["a"]}),
            json!({"SecurityOpt": [r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#]}),
        )
        .unwrap();
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        // conditional rules follow the final capability set
        let names = |s: &Value| -> Vec<String> {
            s["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r["names"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap().to_string())
                })
                .collect()
        };
        let plain = spec(json!({"Cmd": ["a"]}), json!({})).unwrap();
        let admin = spec(json!({"Cmd": ["a"]}), json!({"CapAdd": ["SYS_ADMIN"]})).unwrap();
        assert!(!names(&plain).contains(&"mount".to_string()));
        assert!(names(&admin).contains(&"mount".to_string()));
        let nochroot = spec(json!({"Cmd": ["a"]}), json!({"CapDrop": ["SYS_CHROOT"]})).unwrap();
        assert!(names(&plain).contains(&"chroot".to_string()));
        assert!(!names(&nochroot).contains(&"chroot".to_string()));
    }

    #[test]
    fn errors() {
        let e = |c: Value, h: Value| spec(c, h).unwrap_err();
        assert_eq!(e(json!({}), json!({})).to_string(), "No command specified");
        let err = e(json!({"Cmd": ["a"]}), json!({"CapAdd": ["FOO"]}));
        assert_eq!(
            err.to_string(),
            "invalid CapAdd: unknown capability: \"CAP_FOO\""
        );
        assert!(err.is_user_error());
        assert_eq!(
            e(json!({"Cmd": ["a"], "User": "nobody"}), json!({})).to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert_eq!(
            e(json!({"Cmd": ["a"]}), json!({"Memory": 1})).to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            e(
                json!({"Cmd": ["a"]}),
                json!({"Sysctls": {"kernel.hostname": "x"}})
            )
            .to_string(),
            "sysctl 'kernel.hostname=x' is not allowed"
        );
        assert_eq!(
            e(json!({"Cmd": ["a"]}), json!({"IpcMode": "bogus"})).to_string(),
            "invalid IPC mode: bogus"
        );
        assert_eq!(
            e(json!({"Cmd": ["a"]}), json!({"OomScoreAdj": 2000})).to_string(),
            "Invalid value 2000, range for oom score adj is [-1000, 1000]"
        );
        assert_eq!(
            e(json!({"Cmd": ["a"], "WorkingDir": "rel"}), json!({})).to_string(),
            "the working directory 'rel' is invalid, it needs to be an absolute path"
        );
        assert_eq!(
            e(json!({"Cmd": ["a"]}), json!({"ShmSize": -1})).to_string(),
            "SHM size can not be less than 0"
        );
        let err = spec_ns(
            json!({"Cmd": ["a"]}),
            json!({"Sysctls": {"net.core.somaxconn": "1"}}),
            NamespaceModes {
                network: NamespaceMode::Host,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("host's network namespace"));
    }

    #[test]
    fn sysctls_and_paths_override() {
        let s = spec(
            json!({"Cmd": ["a"]}),
            json!({"Sysctls": {"net.core.somaxconn": "1024"}, "MaskedPaths": ["/proc/x"], "ReadonlyPaths": [],
                   "Annotations": {"a": "b"}, "ShmSize": 1048576, "ReadonlyRootfs": true}),
        )
        .unwrap();
        assert_eq!(s["linux"]["sysctl"]["net.core.somaxconn"], "1024");
        assert_eq!(s["linux"]["maskedPaths"], json!(["/proc/x"]));
        assert!(s["linux"].get("readonlyPaths").is_none());
        assert_eq!(s["annotations"], json!({"a": "b"}));
        assert_eq!(s["root"]["readonly"], true);
        let shm = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .unwrap();
        assert!(
            shm["options"]
                .as_array()
                .unwrap()
                .contains(&json!("size=1048576"))
        );
    }
}
