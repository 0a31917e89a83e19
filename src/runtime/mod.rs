//! The OCI runtime spec generator: turns a Docker container `Config` + `HostConfig` into the
//! `config.json` runc reads, with Docker's defaults (capabilities, mounts, masked and read-only
//! paths, device rules, the default seccomp profile) and Docker's validation texts.
//!
//! Everything that depends on the host (kernel version, cgroup version, the capability bounding
//! set, CPU count) is gathered once in [`HostInfo`], so tests can build specs for other hosts.

pub mod apparmor;
mod caps;
mod mounts;
mod resources;
mod seccomp;
mod spec;
pub(crate) mod user;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::model::{Config, HostConfig};

pub use caps::{
    DEFAULT_CAPABILITIES, KNOWN_CAPABILITIES, caps_mask, normalize_capabilities, tweak_capabilities,
};
pub(crate) use mounts::clean_path;
pub use mounts::{BindSpec, parse_bind};
pub use seccomp::{DEFAULT_PROFILE, load_profile};
pub use spec::{
    MASKED_PATHS, READONLY_PATHS, build_spec, build_spec_with, process_env, validate_host_config,
};
pub(crate) use spec::{capability_set, parse_bool};
pub use user::{open_in_root, resolve_user};

/// What [`build_spec`] needs to know about one container start.
pub struct SpecInput<'a> {
    pub id: &'a str,
    /// The mounted container root (overlay).
    pub rootfs: &'a Path,
    /// Docker container `Config`, already merged with the image's.
    pub config: &'a Config,
    /// Docker `HostConfig` as the client sent it (defaults not filled).
    pub host_config: &'a HostConfig,
    /// Host files bind-mounted at /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub etc: EtcFiles,
    /// e.g. "/berth/<id>" (cgroupfs manager).
    pub cgroups_path: String,
    pub namespaces: NamespaceModes,
    /// For `HostConfig.Init`: a host binary bound at /sbin/docker-init and run first.
    pub init_binary: Option<&'a Path>,
    /// A host tmpfs bound at /dev/shm (IpcMode shareable / container:x); None = private tmpfs.
    pub shm_path: Option<&'a Path>,
    /// The container's volumes, resolved to their folders on the host.
    pub volumes: Vec<VolumeMount>,
}

/// A volume mounted into the container (bound from its `_data` folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub destination: String,
    pub source: PathBuf,
    pub read_only: bool,
}

/// Host files for the network mounts. An empty path (or one that does not exist) is skipped,
/// as Docker skips a file it cannot stat.
#[derive(Debug, Clone, Default)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

/// How the container gets one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A fresh namespace.
    #[default]
    New,
    /// The host's namespace (the namespace is left out of the spec).
    Host,
    /// Join an existing namespace, e.g. `/proc/<pid>/ns/net` of another container.
    Path(PathBuf),
    /// The container's own namespace, made beforehand and pinned at this path (its network,
    /// set up before the start): joined like `Path`, treated like `New` otherwise.
    Own(PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceModes {
    pub network: NamespaceMode,
    pub ipc: NamespaceMode,
    pub pid: NamespaceMode,
    pub uts: NamespaceMode,
}

/// Errors with Docker's texts. [`SpecError::is_user_error`] tells Docker's InvalidParameter
/// class (HTTP 400) from the rest.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Docker's InvalidParameter (400).
    #[error("{0}")]
    Invalid(String),
    /// A feature berth does not implement (e.g. named volumes); 501-ish.
    #[error("{0}")]
    NotSupported(String),
    /// Anything else (500): host state, I/O.
    #[error("{0}")]
    System(String),
}

/// oci-spec's builders fail only on a required field left unset: a bug here, not the user's.
impl From<oci_spec::OciSpecError> for SpecError {
    fn from(e: oci_spec::OciSpecError) -> SpecError {
        SpecError::System(format!("building the runtime spec: {e}"))
    }
}

impl SpecError {
    pub fn is_user_error(&self) -> bool {
        matches!(self, SpecError::Invalid(_))
    }
    pub fn is_not_supported(&self) -> bool {
        matches!(self, SpecError::NotSupported(_))
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> SpecError {
        SpecError::Invalid(msg.into())
    }
    pub(crate) fn system(msg: impl Into<String>) -> SpecError {
        SpecError::System(msg.into())
    }
}

/// Facts about the host the spec depends on.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// (major, minor) of the running kernel, e.g. (6, 18).
    pub kernel: (u64, u64),
    /// The unified hierarchy is mounted at /sys/fs/cgroup.
    pub cgroup_v2: bool,
    /// Capability names in our bounding set (what a privileged container gets), numeric order.
    pub bounding_caps: Vec<String>,
    /// Online CPUs (for NanoCpus validation).
    pub ncpu: usize,
    /// `thermal_throttle` directories to mask, as Docker does.
    pub extra_masked_paths: Vec<String>,
    /// AppArmor is enabled: containers get a profile.
    pub apparmor: bool,
    /// SELinux is enabled (labels could apply; berth does not label yet).
    pub selinux: bool,
}

impl HostInfo {
    /// The running host, detected once.
    pub fn get() -> &'static HostInfo {
        static HOST: OnceLock<HostInfo> = OnceLock::new();
        HOST.get_or_init(HostInfo::detect)
    }

    pub fn detect() -> HostInfo {
        HostInfo {
            kernel: kernel_version(),
            cgroup_v2: is_cgroup_v2(),
            bounding_caps: caps::current_bounding_set(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            extra_masked_paths: thermal_throttle_paths(),
            apparmor: apparmor::host_enabled(),
            selinux: std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok(),
        }
    }

    /// A made-up host for tests: kernel 6.1, cgroup v1, 2 CPUs, no AppArmor or SELinux.
    #[cfg(test)]
    pub(crate) fn for_tests(bounding_caps: Vec<String>) -> HostInfo {
        HostInfo {
            kernel: (6, 1),
            cgroup_v2: false,
            bounding_caps,
            ncpu: 2,
            extra_masked_paths: vec![],
            apparmor: false,
            selinux: false,
        }
    }

    /// Recursive read-only binds (`rro`) need mount_setattr (kernel 5.12).
    pub fn supports_rro(&self) -> bool {
        self.kernel >= (5, 12)
    }
}

fn kernel_version() -> (u64, u64) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    parse_kernel_version(release.trim()).unwrap_or((0, 0))
}

/// "6.18.44-fc-v669" → (6, 18); "3.12-1-amd64" → (3, 12).
pub(crate) fn parse_kernel_version(s: &str) -> Option<(u64, u64)> {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn is_cgroup_v2() -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let path = c"/sys/fs/cgroup";
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and a properly sized out-parameter.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC
}

fn thermal_throttle_paths() -> Vec<String> {
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let mut out = Vec::new();
    for cpu in resources::parse_cpu_list(possible.trim()).unwrap_or_default() {
        let p = format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
        if Path::new(&p).exists() {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_kernel_version("5"), Some((5, 0)));
        assert_eq!(parse_kernel_version("x"), None);
    }

    #[test]
    fn validation_errors_are_classed() {
        // What the create handler turns into 400 and 501: real validation, not constructors.
        let host = HostInfo::for_tests(vec![]);
        let hc = |v: serde_json::Value| serde_json::from_value::<HostConfig>(v).unwrap();
        let cfg = Config::default();
        let e = spec::validate_with(
            &cfg,
            &hc(serde_json::json!({"Binds": ["/a:relative"]})),
            &host,
        )
        .unwrap_err();
        assert!(e.is_user_error() && !e.is_not_supported(), "{e}");
        let e = spec::validate_with(
            &cfg,
            &hc(serde_json::json!({"SecurityOpt": ["label=type:x"]})),
            &host,
        )
        .unwrap_err();
        assert!(e.is_user_error() && !e.is_not_supported(), "{e}");
        let e = spec::validate_with(
            &cfg,
            &hc(serde_json::json!({"Mounts": [{"Type": "image", "Source": "x", "Target": "/x"}]})),
            &host,
        )
        .unwrap_err();
        assert!(e.is_not_supported() && !e.is_user_error(), "{e}");
        let e = spec::validate_with(
            &cfg,
            &hc(serde_json::json!({"SecurityOpt": ["apparmor=custom"]})),
            &host,
        )
        .unwrap_err();
        assert!(e.to_string().contains("AppArmor is not enabled"), "{e}");
        assert!(spec::validate_with(&cfg, &hc(serde_json::json!({})), &host).is_ok());
    }
}
