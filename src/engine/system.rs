//! Facts about the host and the engine for `/version`, `/info` and `/system/df`.

use std::process::Command;

use serde_json::{Value, json};

use crate::params::Filters;
use crate::store::{self, images as rows};

use super::images::import::arch;
use super::{Engine, Result, images};

pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn uname() -> nix::sys::utsname::UtsName {
    nix::sys::utsname::uname().expect("uname cannot fail")
}

pub fn kernel_version() -> String {
    uname().release().to_string_lossy().into_owned()
}

fn hostname() -> String {
    uname().nodename().to_string_lossy().into_owned()
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let pretty = field("PRETTY_NAME");
    (
        if pretty.is_empty() {
            "Linux".into()
        } else {
            pretty
        },
        field("VERSION_ID"),
    )
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// "2" when the unified hierarchy is mounted at /sys/fs/cgroup, else "1" (v1 or hybrid).
pub fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

/// Find a binary the way a shell would: a path as is, else the first match on `PATH`.
fn which(bin: &str) -> Option<std::path::PathBuf> {
    if bin.contains('/') {
        return Some(bin.into());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// The runtime's version and commit, as `<runtime> --version` prints them. Running it costs
/// milliseconds, so the answer is kept in the run root, keyed by the binary's identity.
fn runtime_version(engine: &Engine) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let runtime = &engine.config().runtime;
    let Some(path) = which(runtime) else {
        return (String::new(), String::new());
    };
    let key = match std::fs::metadata(&path) {
        Ok(m) => format!(
            "{}:{}:{}:{}",
            path.display(),
            m.ino(),
            m.size(),
            m.mtime_nsec() + m.mtime() * 1_000_000_000
        ),
        Err(_) => return (String::new(), String::new()),
    };
    let cache = engine.config().paths.run_root.join("runtime-version");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let mut lines = text.lines();
        if lines.next() == Some(key.as_str()) {
            let v = lines.next().unwrap_or("").to_string();
            let c = lines.next().unwrap_or("").to_string();
            return (v, c);
        }
    }
    let (v, c) = ask_runtime_version(&path, runtime);
    if !v.is_empty() && std::fs::create_dir_all(&engine.config().paths.run_root).is_ok() {
        let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, format!("{key}\n{v}\n{c}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &cache);
        }
    }
    (v, c)
}

fn ask_runtime_version(path: &std::path::Path, runtime: &str) -> (String, String) {
    let out = Command::new(path).arg("--version").output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => return (String::new(), String::new()),
    };
    let name = std::path::Path::new(runtime)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut version = String::new();
    let mut commit = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix(&format!("{name} version ")) {
            version = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("commit: ") {
            commit = v.trim().to_string();
        }
    }
    (version, commit)
}

/// `GET /version`.
pub fn version(engine: &Engine) -> Value {
    let kernel = kernel_version();
    let runtime = &engine.config().runtime;
    let (rv, rc) = runtime_version(engine);
    let details = json!({
        "ApiVersion": API_VERSION,
        "Arch": arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
        "GoVersion": "",
        "KernelVersion": kernel,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    });
    json!({
        "Platform": {"Name": "berth"},
        "Components": [
            {"Name": "Engine", "Version": VERSION, "Details": details},
            {"Name": runtime, "Version": rv, "Details": {"GitCommit": rc}},
        ],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

/// `GET /info`.
pub fn info(engine: &Engine) -> Result<Value> {
    let mut st = engine.store()?;
    let (images, id, containers) = st.read(|tx| {
        Ok::<_, super::EngineError>((
            rows::count_images(tx)?,
            store::engine_id(tx)?,
            store::containers::list(tx)?,
        ))
    })?;
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    for c in &containers {
        let s = super::containers::state::current(
            engine.paths(),
            &c.id,
            &super::containers::state::State::parse(&c.state),
        );
        use super::containers::state::ContainerStatus;
        match s.status {
            ContainerStatus::Running if s.paused => paused += 1,
            ContainerStatus::Running | ContainerStatus::Restarting => running += 1,
            _ => stopped += 1,
        }
    }
    let (os, os_version) = os_release();
    let runtime = engine.config().runtime.clone();
    let cgv = cgroup_version();
    let paths = engine.paths();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (rv, rc) = runtime_version(engine);
    Ok(json!({
        "ID": id,
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", backing_fs(paths.data_root())], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none", "null"],
            "Authorization": null,
            "Log": ["json-file", "local", "none"],
        },
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1").unwrap_or(false),
        "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        "OomKillDisable": cgv == "1",
        "NGoroutines": 0,
        "SystemTime": crate::util::time::rfc3339_nano(crate::util::time::now_nanos()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgv,
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "IndexConfigs": {"docker.io": {"Mirrors": [], "Name": "docker.io", "Official": true, "Secure": true}},
            "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
            "Mirrors": null,
        },
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": paths.data_root().display().to_string(),
        "HttpProxy": std::env::var("HTTP_PROXY").unwrap_or_default(),
        "HttpsProxy": std::env::var("HTTPS_PROXY").unwrap_or_default(),
        "NoProxy": std::env::var("NO_PROXY").unwrap_or_default(),
        "Name": hostname(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": {runtime.clone(): {"path": runtime.clone()}},
        "DefaultRuntime": runtime,
        "Swarm": {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
            "ControlAvailable": false, "Error": "", "RemoteManagers": null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": rc},
        "InitCommit": {"ID": ""},
        "SecurityOptions": security_options(),
        "Warnings": if rv.is_empty() { json!([format!("WARNING: the OCI runtime {:?} was not found", engine.config().runtime)]) } else { json!([]) },
        "CDISpecDirs": [],
        "Containerd": null,
    }))
}

fn backing_fs(path: &std::path::Path) -> &'static str {
    match nix::sys::statfs::statfs(path).map(|s| s.filesystem_type().0) {
        Ok(0xEF53) => "extfs",
        Ok(0x5846_5342) => "xfs",
        Ok(0x9123_683E) => "btrfs",
        Ok(0x0102_1994) => "tmpfs",
        Ok(0x794C_7630) => "overlayfs",
        _ => "<unknown>",
    }
}

fn security_options() -> Vec<String> {
    let mut opts = Vec::new();
    if std::path::Path::new("/sys/kernel/security/apparmor").exists() {
        opts.push("name=apparmor".to_string());
    }
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    if seccomp {
        opts.push("name=seccomp,profile=builtin".to_string());
    }
    if cgroup_version() == "2" {
        opts.push("name=cgroupns".to_string());
    }
    opts
}

/// `GET /system/df`.
pub fn df(engine: &Engine) -> Result<Value> {
    let none = Filters::parse(None).map_err(super::EngineError::invalid_cause)?;
    let list = images::list(engine, true, &none)?;
    let mut st = engine.store()?;
    let layers = st.read(|tx| Ok::<_, super::EngineError>(rows::total_layer_size(tx)?))?;
    let images: Vec<Value> = list
        .into_iter()
        .map(|mut v| {
            v["Containers"] = json!(0);
            v["SharedSize"] = json!(0);
            v
        })
        .collect();
    Ok(json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": [],
        "Volumes": super::volumes::usage(engine)?,
        "BuildCache": [],
    }))
}
