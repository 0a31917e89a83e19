//! Mounts: Docker's defaults, `Binds`, `Mounts` (bind, tmpfs), `Tmpfs`, /dev/shm, the /etc
//! files and the init binary, ordered and merged the way dockerd does it.

use std::collections::HashSet;
use std::path::Path;

mod user;

use super::{HostInfo, SpecError};
pub use user::{BindSpec, parse_bind};
pub(crate) use user::{merge_tmpfs_options, user_mounts};

/// One OCI mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub destination: String,
    pub typ: String,
    pub source: String,
    pub options: Vec<String>,
}

impl Mount {
    fn new(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            destination: dest.to_string(),
            typ: typ.to_string(),
            source: source.to_string(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }
    pub fn to_oci(&self) -> Result<oci_spec::runtime::Mount, SpecError> {
        let mut m = oci_spec::runtime::Mount::default();
        m.set_destination(self.destination.clone().into())
            .set_typ(Some(self.typ.clone()))
            .set_source(Some(self.source.clone().into()))
            .set_options(Some(self.options.clone()))
            .set_uid_mappings(None)
            .set_gid_mappings(None);
        Ok(m)
    }
    fn clear_ro(&mut self) {
        self.options.retain(|o| o != "ro");
    }
}

/// Docker's default mounts (oci.DefaultLinuxSpec), before per-container changes.
fn default_mounts() -> Vec<Mount> {
    vec![
        Mount::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        Mount::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        Mount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        Mount::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        Mount::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        Mount::new(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        Mount::new(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777"],
        ),
    ]
}

/// A user mount before it becomes an OCI mount (Docker's `container.Mount`).
#[derive(Debug, Clone)]
pub(crate) enum UserMount {
    Bind {
        destination: String,
        source: String,
        writable: bool,
        propagation: String,
        non_recursive: bool,
        ro_non_recursive: bool,
        ro_force_recursive: bool,
    },
    Tmpfs {
        destination: String,
        data: String,
    },
}

impl UserMount {
    fn destination(&self) -> &str {
        match self {
            UserMount::Bind { destination, .. } | UserMount::Tmpfs { destination, .. } => {
                destination
            }
        }
    }
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];
const CONSISTENCIES: [&str; 4] = ["consistent", "cached", "delegated", "default"];

/// `path.Clean` for absolute-ish container paths.
pub(crate) fn clean_path(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn depth(dest: &str) -> usize {
    clean_path(dest).matches('/').count()
}

fn sort_by_depth(m: &mut [UserMount]) {
    m.sort_by_key(|x| depth(x.destination()));
}

/// Everything `withMounts` needs beyond the HostConfig.
pub(crate) struct MountContext<'a> {
    pub host: &'a HostInfo,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub writable_cgroups: bool,
    pub ipc_none: bool,
    pub shm_size: i64,
    pub shm_path: Option<&'a Path>,
    pub init_binary: Option<&'a Path>,
    pub etc: &'a super::EtcFiles,
    pub volumes: &'a [super::VolumeMount],
}

/// The final mount list and the rootfs propagation it needs (if any).
pub(crate) fn build_mounts(
    hc: &crate::model::HostConfig,
    ctx: &MountContext,
) -> Result<(Vec<Mount>, Option<String>), SpecError> {
    let mut user = Vec::new();
    let mut users = user_mounts(hc, true, ctx.volumes)?;
    let user_dest = |users: &[UserMount], d: &str| users.iter().any(|m| m.destination() == d);

    // IPC: a shareable/joined /dev/shm comes first (Docker's setupContainerDirs)
    if let Some(shm) = ctx.shm_path
        && !ctx.ipc_none
        && !user_dest(&users, "/dev/shm")
    {
        user.push(UserMount::Bind {
            destination: "/dev/shm".into(),
            source: shm.to_string_lossy().into_owned(),
            writable: true,
            propagation: "rprivate".into(),
            non_recursive: false,
            ro_non_recursive: false,
            ro_force_recursive: false,
        });
    }
    user.append(&mut users);
    // network files, unless the user mounted something there
    for (dest, path) in [
        ("/etc/resolv.conf", &ctx.etc.resolv_conf),
        ("/etc/hostname", &ctx.etc.hostname),
        ("/etc/hosts", &ctx.etc.hosts),
    ] {
        if path.as_os_str().is_empty() || !path.exists() || user_dest(&user, dest) {
            continue;
        }
        user.push(UserMount::Bind {
            destination: dest.into(),
            source: path.to_string_lossy().into_owned(),
            writable: !ctx.readonly_rootfs,
            propagation: "rprivate".into(),
            non_recursive: false,
            ro_non_recursive: false,
            ro_force_recursive: false,
        });
    }
    sort_by_depth(&mut user);

    let user_dests: HashSet<&str> = user.iter().map(|m| m.destination()).collect();
    let mount_dev = user_dests.contains("/dev");

    let mut defaults = default_mounts();
    if let Some(init) = ctx.init_binary {
        defaults.push(Mount::new(
            "/sbin/docker-init",
            "bind",
            &init.to_string_lossy(),
            &["bind", "ro"],
        ));
    }
    let mut out: Vec<Mount> = Vec::new();
    for mut m in defaults {
        if user_dests.contains(m.destination.as_str()) {
            continue;
        }
        if mount_dev && m.destination.starts_with("/dev/") {
            continue;
        }
        if m.destination == "/dev/shm" {
            if ctx.ipc_none {
                continue;
            }
            m.options.push(format!("size={}", ctx.shm_size));
        }
        out.push(m);
    }

    let mut rootfs_propagation: Option<String> = None;
    for m in &user {
        match m {
            UserMount::Tmpfs { destination, data } => {
                let mut options: Vec<String> = ["noexec", "nosuid", "nodev", "rprivate"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                if !data.is_empty() {
                    options.extend(data.split(',').map(str::to_string));
                }
                out.push(Mount {
                    destination: destination.clone(),
                    typ: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: merge_tmpfs_options(&options)?,
                });
            }
            UserMount::Bind {
                destination,
                source,
                writable,
                propagation,
                non_recursive,
                ro_non_recursive,
                ro_force_recursive,
            } => {
                match propagation.as_str() {
                    "shared" | "rshared" => {
                        ensure_propagation(source, true)?;
                        if !matches!(rootfs_propagation.as_deref(), Some("shared" | "rshared")) {
                            rootfs_propagation = Some("shared".into());
                        }
                    }
                    "slave" | "rslave" => {
                        ensure_propagation(source, false)?;
                        if rootfs_propagation.is_none() {
                            rootfs_propagation = Some("rslave".into());
                        }
                    }
                    _ => {}
                }
                let mut options = vec![if *non_recursive { "bind" } else { "rbind" }.to_string()];
                if !writable {
                    let mut rro = !ro_non_recursive;
                    if !ctx.host.supports_rro() {
                        if *ro_force_recursive {
                            return Err(SpecError::invalid(
                                "recursive read-only mounts need Linux 5.12 or later",
                            ));
                        }
                        rro = false;
                    }
                    options.push(if rro { "rro" } else { "ro" }.into());
                }
                options.push(propagation.clone());
                out.push(Mount {
                    destination: destination.clone(),
                    typ: "bind".into(),
                    source: source.clone(),
                    options,
                });
            }
        }
    }

    if ctx.readonly_rootfs {
        for m in out.iter_mut() {
            if matches!(
                m.destination.as_str(),
                "/proc" | "/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev"
            ) || user_dests.contains(m.destination.as_str())
            {
                continue;
            }
            if !m.options.iter().any(|o| o == "ro") {
                m.options.push("ro".into());
            }
        }
    }
    if ctx.privileged {
        for m in out.iter_mut().filter(|m| m.destination == "/sys") {
            m.clear_ro();
        }
    }
    if ctx.writable_cgroups {
        for m in out.iter_mut().filter(|m| m.typ == "cgroup") {
            m.clear_ro();
        }
    }
    Ok((out, rootfs_propagation))
}

/// Docker's ensureShared / ensureSharedOrSlave: the mount holding `path` must propagate.
fn ensure_propagation(path: &str, shared_only: bool) -> Result<(), SpecError> {
    let real =
        std::fs::canonicalize(path).map_err(|e| SpecError::system(format!("lstat {path}: {e}")))?;
    let real = real.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| SpecError::system(format!("reading mountinfo: {e}")))?;
    let mut best: Option<(String, String)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = crate::util::mountinfo::unescape(f[4]);
        let inside = real == mp || mp == "/" || real.starts_with(&format!("{mp}/"));
        if !inside {
            continue;
        }
        let optional: Vec<&str> = f[6..].iter().take_while(|x| **x != "-").copied().collect();
        if best.as_ref().is_none_or(|(b, _)| mp.len() >= b.len()) {
            best = Some((mp, optional.join(" ")));
        }
    }
    let Some((mp, optional)) = best else {
        return Err(SpecError::system(format!(
            "Can't find mount point of {path}"
        )));
    };
    let ok = optional
        .split(' ')
        .any(|o| o.starts_with("shared:") || (!shared_only && o.starts_with("master:")));
    if ok {
        Ok(())
    } else if shared_only {
        Err(SpecError::system(format!(
            "path {path} is mounted on {mp} but it is not a shared mount"
        )))
    } else {
        Err(SpecError::system(format!(
            "path {path} is mounted on {mp} but it is not a shared or slave mount"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::user::*;
    use super::*;
    use crate::runtime::EtcFiles;
    use serde_json::{Value, json};

    fn host() -> HostInfo {
        HostInfo::for_tests(vec![])
    }

    fn hc<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn ctx<'a>(host: &'a HostInfo, etc: &'a EtcFiles) -> MountContext<'a> {
        MountContext {
            host,
            privileged: false,
            readonly_rootfs: false,
            writable_cgroups: false,
            ipc_none: false,
            shm_size: 64 << 20,
            shm_path: None,
            init_binary: None,
            etc,
            volumes: &[],
        }
    }

    #[test]
    fn binds_parse() {
        let b = parse_bind("/a/:/b/c:ro,rshared").unwrap();
        assert_eq!(
            b,
            BindSpec {
                source: "/a".into(),
                destination: "/b/c".into(),
                read_only: true,
                propagation: "rshared".into(),
                mode: "ro,rshared".into(),
                volume: false,
            }
        );
        let b = parse_bind("/a:/b").unwrap();
        assert!(!b.read_only);
        assert_eq!(b.propagation, "rprivate");
        for ok in [
            "/a:/b:rw",
            "/a:/b:z",
            "/a:/b:Z,ro",
            "/a:/b:slave",
            "/a:/b:cached",
            "/a:/b:private,rw",
        ] {
            assert!(parse_bind(ok).is_ok(), "{ok}");
        }
        let e = |s: &str| parse_bind(s).unwrap_err().to_string();
        assert_eq!(e(":/b"), "invalid volume specification: ':/b'");
        assert_eq!(e("/a:ro"), "invalid volume specification: '/a:ro'");
        assert_eq!(
            e("/a:/b:ro:x"),
            "invalid volume specification: '/a:/b:ro:x'"
        );
        assert_eq!(e("/a:/b:rx"), "invalid mode: rx");
        assert_eq!(e("/a:/b:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(
            e("/a:/"),
            "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(
            e("/a:b"),
            "invalid volume specification: '/a:b': invalid mount config for type \"bind\": invalid mount path: 'b' mount path must be absolute"
        );
        assert_eq!(
            e("/a:/b:nocopy"),
            "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert!(parse_bind("/a:/b:x").unwrap_err().is_user_error());
        let v = parse_bind("vol:/b:ro,nocopy").unwrap();
        assert!(v.volume && v.read_only && v.source == "vol" && v.destination == "/b");
        assert!(parse_bind("/b").unwrap_err().is_not_supported());
    }

    #[test]
    fn tmpfs_options() {
        let o = hc(json!({"SizeBytes": 65536 * 1024, "Mode": 0o1777, "Options": [["exec"]]}));
        assert_eq!(
            convert_tmpfs_options(Some(&o), true).unwrap(),
            "ro,mode=1777,size=64m,exec"
        );
        let o = hc(json!({"SizeBytes": 1000}));
        assert_eq!(convert_tmpfs_options(Some(&o), false).unwrap(), "size=1000");
        let o = hc(json!({"SizeBytes": 3i64 << 30}));
        assert_eq!(convert_tmpfs_options(Some(&o), false).unwrap(), "size=3g");
        let o = hc(json!({"Options": [["uid", "1"]]}));
        assert_eq!(
            convert_tmpfs_options(Some(&o), false).unwrap_err(),
            user::MountFieldError::TmpfsOption("uid".into())
        );
        let merged = merge_tmpfs_options(
            &[
                "noexec",
                "nosuid",
                "nodev",
                "rprivate",
                "rw",
                "exec",
                "size=65536k",
                "size=1m",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(
            merged,
            ["nosuid", "nodev", "rprivate", "rw", "exec", "size=1m"]
        );
        assert_eq!(
            merge_tmpfs_options(&["bogus".to_string()])
                .unwrap_err()
                .to_string(),
            "invalid tmpfs option \"bogus\""
        );
    }

    #[test]
    fn defaults_and_order() {
        let h = host();
        let d = tempfile::tempdir().unwrap();
        let hosts = d.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        let etc = EtcFiles {
            hosts: hosts.clone(),
            ..Default::default()
        };
        let src = d.path().to_string_lossy().into_owned();
        let host_config = hc(json!({
            "Binds": [format!("{src}:/a/b/c:ro"), format!("{src}:/a")],
            "Tmpfs": {"/run": "rw,noexec,size=65536k"},
            "Mounts": [{"Type": "tmpfs", "Target": "/x/y", "TmpfsOptions": {"SizeBytes": 1048576}}]
        }));
        let (m, prop) = build_mounts(&host_config, &ctx(&h, &etc)).unwrap();
        assert!(prop.is_none());
        let dests: Vec<&str> = m.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/run",
                "/a",
                "/x/y",
                "/etc/hosts",
                "/a/b/c"
            ]
        );
        let shm = &m[6];
        assert_eq!(shm.options.last().unwrap(), "size=67108864");
        assert_eq!(
            m[7].options,
            ["nosuid", "nodev", "rprivate", "rw", "noexec", "size=65536k"]
        );
        assert_eq!(m[8].options, ["rbind", "rprivate"]);
        assert_eq!(
            m[9].options,
            ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]
        );
        assert_eq!(m[10].source, hosts.to_string_lossy());
        assert_eq!(m[10].options, ["rbind", "rprivate"]);
        assert_eq!(m[11].options, ["rbind", "rro", "rprivate"]);
    }

    #[test]
    fn user_mounts_replace_defaults() {
        let h = host();
        let etc = EtcFiles::default();
        let d = tempfile::tempdir().unwrap();
        let src = d.path().to_string_lossy().into_owned();
        let host_config = hc(json!({
            "Binds": [format!("{src}:/dev")],
            "Tmpfs": {"/sys/fs/cgroup": ""}
        }));
        let (m, _) = build_mounts(&host_config, &ctx(&h, &etc)).unwrap();
        let dests: Vec<&str> = m.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/proc", "/sys", "/dev", "/sys/fs/cgroup"]);
        assert_eq!(m[3].typ, "tmpfs");
        assert_eq!(m[2].typ, "bind");
    }

    #[test]
    fn shm_variants_readonly_and_privileged() {
        let h = host();
        let etc = EtcFiles::default();
        let empty = crate::model::HostConfig::default();
        let mut c = ctx(&h, &etc);
        c.ipc_none = true;
        let (m, _) = build_mounts(&empty, &c).unwrap();
        assert!(!m.iter().any(|m| m.destination == "/dev/shm"));

        let shm = tempfile::tempdir().unwrap();
        let mut c = ctx(&h, &etc);
        c.shm_path = Some(shm.path());
        c.readonly_rootfs = true;
        c.privileged = true;
        let init = Path::new("/usr/bin/tini");
        c.init_binary = Some(init);
        let (m, _) = build_mounts(&empty, &c).unwrap();
        let shm_m = m.iter().find(|m| m.destination == "/dev/shm").unwrap();
        assert_eq!(shm_m.typ, "bind");
        assert_eq!(shm_m.options, ["rbind", "rprivate"]);
        let sys = m.iter().find(|m| m.destination == "/sys").unwrap();
        assert!(!sys.options.contains(&"ro".to_string()));
        let cg = m
            .iter()
            .find(|m| m.destination == "/sys/fs/cgroup")
            .unwrap();
        assert!(cg.options.contains(&"ro".to_string()));
        let init_m = m
            .iter()
            .find(|m| m.destination == "/sbin/docker-init")
            .unwrap();
        assert_eq!(init_m.options, ["bind", "ro"]);
        let proc_m = m.iter().find(|m| m.destination == "/proc").unwrap();
        assert!(!proc_m.options.contains(&"ro".to_string()));
    }

    #[test]
    fn mounts_api_errors() {
        let h = host();
        let etc = EtcFiles::default();
        let e = |v: Value| build_mounts(&hc(v), &ctx(&h, &etc)).unwrap_err();
        let err = e(
            json!({"Mounts": [{"Type": "bind", "Source": "/nonexistent/berth-x", "Target": "/x"}]}),
        );
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/berth-x"
        );
        assert!(err.is_user_error());
        let err = e(json!({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/x"}]}));
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        let err = e(
            json!({"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "TmpfsOptions": {}}]}),
        );
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"bind\": field TmpfsOptions must not be specified"
        );
        let err = e(json!({"Mounts": [{"Type": "foo", "Target": "/x"}]}));
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"foo\": mount type unknown"
        );
        let err = e(
            json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x", "BindOptions": {}}]}),
        );
        assert_eq!(
            err.to_string(),
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        // A volume mount is the engine's (bound from the volume's folder, given in `volumes`).
        let ok = json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/x"}]});
        assert!(build_mounts(&hc(ok), &ctx(&h, &etc)).is_ok());
        let err = e(
            json!({"Binds": ["/tmp:/x"], "Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x"}]}),
        );
        assert_eq!(err.to_string(), "Duplicate mount point: /x");
        let err = e(json!({"Tmpfs": {"run": ""}}));
        assert_eq!(
            err.to_string(),
            "invalid mount path: 'run' mount path must be absolute"
        );
        let err = e(json!({"Tmpfs": {"/run": "bogus"}}));
        assert_eq!(err.to_string(), "invalid tmpfs option \"bogus\"");
    }

    #[test]
    fn missing_bind_source_is_created() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("new/dir");
        let h = host();
        let etc = EtcFiles::default();
        let host_config = hc(json!({"Binds": [format!("{}:/data", src.display())]}));
        build_mounts(&host_config, &ctx(&h, &etc)).unwrap();
        assert!(src.is_dir());
        // Mounts with CreateMountpoint too
        let src2 = d.path().join("other");
        let host_config = hc(
            json!({"Mounts": [{"Type": "bind", "Source": src2, "Target": "/o",
            "BindOptions": {"CreateMountpoint": true, "NonRecursive": true}, "ReadOnly": true}]}),
        );
        let (m, _) = build_mounts(&host_config, &ctx(&h, &etc)).unwrap();
        assert!(src2.is_dir());
        assert_eq!(m.last().unwrap().options, ["bind", "rro", "rprivate"]);
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("//"), "/");
    }
}
