//! The mounts a user asks for: `Binds`, `Mounts` and `Tmpfs`, parsed and checked with
//! Docker's rules and texts.

use super::*;
use crate::model::mount::TmpfsOptions;
use crate::model::{HostConfig, Mount as ApiMount};

pub(super) fn valid_mount_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let (mut rw, mut label, mut prop, mut copy, mut cons) = (0, 0, 0, 0, 0);
    for o in mode.split(',') {
        match o {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            o if PROPAGATIONS.contains(&o) => prop += 1,
            "nocopy" => copy += 1,
            o if CONSISTENCIES.contains(&o) => cons += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1 && cons <= 1
}

/// A mount field Docker refuses, with its text; callers add the mount's context.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MountFieldError {
    #[error("field Target must not be empty")]
    EmptyTarget,
    #[error("invalid specification: destination can't be '/'")]
    RootTarget,
    #[error("invalid mount path: '{0}' mount path must be absolute")]
    NotAbsolute(String),
    #[error("invalid option array length")]
    TmpfsOptionLength,
    #[error("invalid option: {0}")]
    TmpfsOption(String),
}

pub(super) fn validate_target(target: &str) -> Result<(), MountFieldError> {
    if target.is_empty() {
        return Err(MountFieldError::EmptyTarget);
    }
    validate_not_root_absolute(target)
}

pub(super) fn validate_not_root_absolute(target: &str) -> Result<(), MountFieldError> {
    let t = target.replace('\\', "/");
    if clean_path(&t) == "/" {
        return Err(MountFieldError::RootTarget);
    }
    if !t.starts_with('/') {
        return Err(MountFieldError::NotAbsolute(t));
    }
    Ok(())
}

/// A parsed `Binds` entry (`/host:/ctr[:mode]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSpec {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// Explicit propagation, or "rprivate".
    pub propagation: String,
    pub mode: String,
    /// `name:/path`: `source` names a volume, not a host path.
    pub volume: bool,
}

/// Parse a `HostConfig.Binds` entry with Docker's rules and texts. `name:/path` is a named
/// volume (`volume` set); a one-part entry (an anonymous volume in Binds) is not supported.
pub fn parse_bind(raw: &str) -> Result<BindSpec, SpecError> {
    let invalid = || SpecError::invalid(format!("invalid volume specification: '{raw}'"));
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(invalid());
    }
    let (source, target, mode) = match arr.len() {
        1 => {
            return Err(SpecError::NotSupported(format!(
                "anonymous volumes are not supported: '{raw}'"
            )));
        }
        2 => {
            if valid_mount_mode(arr[1]) {
                return Err(invalid());
            }
            (arr[0], arr[1], "")
        }
        3 => (arr[0], arr[1], arr[2]),
        _ => return Err(invalid()),
    };
    if !valid_mount_mode(mode) {
        return Err(SpecError::invalid(format!("invalid mode: {mode}")));
    }
    let volume = !source.starts_with('/');
    let kind = if volume { "volume" } else { "bind" };
    let wrap = |e: &dyn std::fmt::Display| {
        SpecError::invalid(format!(
            "invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": {e}"
        ))
    };
    let modes: Vec<&str> = mode.split(',').collect();
    if !volume && modes.contains(&"nocopy") {
        // Docker turns nocopy into VolumeOptions, which a bind must not have.
        return Err(wrap(&"field VolumeOptions must not be specified"));
    }
    validate_target(target).map_err(|e| wrap(&e))?;
    let propagation = modes
        .iter()
        .find(|m| PROPAGATIONS.contains(m))
        .copied()
        .unwrap_or("rprivate");
    Ok(BindSpec {
        source: if volume {
            source.to_string()
        } else {
            clean_path(source)
        },
        destination: clean_path(target),
        read_only: modes.contains(&"ro"),
        propagation: propagation.to_string(),
        mode: mode.to_string(),
        volume,
    })
}

pub(super) fn mount_config_err(typ: &str, e: impl std::fmt::Display) -> SpecError {
    SpecError::invalid(format!("invalid mount config for type {typ:?}: {e}"))
}

/// Docker's `ConvertTmpfsOptions` for `Mounts[].TmpfsOptions`.
pub(crate) fn convert_tmpfs_options(
    opts: Option<&TmpfsOptions>,
    read_only: bool,
) -> Result<String, MountFieldError> {
    let mut raw: Vec<String> = Vec::new();
    if read_only {
        raw.push("ro".into());
    }
    if let Some(o) = opts {
        let mode = o.mode;
        if mode != 0 {
            raw.push(format!("mode={mode:o}"));
        }
        let size = o.size_bytes;
        if size != 0 {
            let (mut n, mut suffix) = (size, "");
            for (s, d) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
                if size % d == 0 {
                    n = size / d;
                    suffix = s;
                    break;
                }
            }
            raw.push(format!("size={n}{suffix}"));
        }
        if let Some(list) = &o.options {
            for parts in list {
                if parts.is_empty() || parts.len() > 2 {
                    return Err(MountFieldError::TmpfsOptionLength);
                }
                if parts[0] != "exec" && parts[0] != "noexec" {
                    return Err(MountFieldError::TmpfsOption(parts[0].clone()));
                }
                raw.push(parts.join("="));
            }
        }
    }
    Ok(raw.join(","))
}

/// moby/sys/mount `MergeTmpfsOptions`: later options win, one per flag / data key.
pub(crate) fn merge_tmpfs_options(options: &[String]) -> Result<Vec<String>, SpecError> {
    // (name, flag group); options sharing a group collide
    const FLAGS: &[(&str, &str)] = &[
        ("ro", "rdonly"),
        ("rw", "rdonly"),
        ("suid", "nosuid"),
        ("nosuid", "nosuid"),
        ("dev", "nodev"),
        ("nodev", "nodev"),
        ("exec", "noexec"),
        ("noexec", "noexec"),
        ("sync", "sync"),
        ("async", "sync"),
        ("dirsync", "dirsync"),
        ("remount", "remount"),
        ("mand", "mand"),
        ("nomand", "mand"),
        ("atime", "noatime"),
        ("noatime", "noatime"),
        ("diratime", "nodiratime"),
        ("nodiratime", "nodiratime"),
        ("bind", "propagation"),
        ("rbind", "propagation"),
        ("unbindable", "propagation"),
        ("runbindable", "propagation"),
        ("private", "propagation"),
        ("rprivate", "propagation"),
        ("shared", "propagation"),
        ("rshared", "propagation"),
        ("slave", "propagation"),
        ("rslave", "propagation"),
        ("relatime", "relatime"),
        ("norelatime", "relatime"),
        ("strictatime", "strictatime"),
        ("nostrictatime", "strictatime"),
    ];
    const DATA: &[&str] = &[
        "",
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    let mut seen_flag = HashSet::new();
    let mut seen_data = HashSet::new();
    let mut out = Vec::new();
    for o in options.iter().rev() {
        if o == "defaults" {
            continue;
        }
        if let Some((_, group)) = FLAGS.iter().find(|(n, _)| n == o) {
            if seen_flag.insert(*group) {
                out.push(o.clone());
            }
            continue;
        }
        let Some((key, _)) = o.split_once('=') else {
            return Err(SpecError::invalid(format!("invalid tmpfs option {o:?}")));
        };
        if !DATA.contains(&key) {
            return Err(SpecError::invalid(format!("invalid tmpfs option {key:?}")));
        }
        if seen_data.insert(key.to_string()) {
            out.push(o.clone());
        }
    }
    out.reverse();
    Ok(out)
}

/// Collects the user mounts from `Binds`, `Mounts` and `Tmpfs` with Docker's validation.
/// `create_missing` makes missing `Binds` sources as directories (done at start, not at create).
/// `volumes` are the container's volume mounts, resolved by the engine to host folders (at
/// create, before they exist, it is empty: `Binds` naming volumes and `Mounts` of type volume
/// are checked there, not mounted).
pub(crate) fn user_mounts(
    hc: &HostConfig,
    create_missing: bool,
    volumes: &[crate::runtime::VolumeMount],
) -> Result<Vec<UserMount>, SpecError> {
    let mut tmpfs: Vec<UserMount> = Vec::new();
    let mut binds: Vec<UserMount> = Vec::new();
    let mut dests: HashSet<String> = HashSet::new();

    // HostConfig.Tmpfs: {"/run": "rw,noexec,size=65536k"}
    if let Some(t) = &hc.tmpfs {
        for (dest, data) in t {
            validate_not_root_absolute(dest).map_err(|e| SpecError::invalid(e.to_string()))?;
            tmpfs.push(UserMount::Tmpfs {
                destination: clean_path(dest),
                data: data.clone(),
            });
        }
    }
    let tmpfs_dests: HashSet<String> = tmpfs.iter().map(|m| m.destination().to_string()).collect();

    // HostConfig.Binds
    for raw in hc.binds.iter().flatten() {
        let b = parse_bind(raw)?;
        if b.volume {
            if !dests.insert(b.destination.clone()) {
                return Err(SpecError::invalid(format!(
                    "Duplicate mount point: {}",
                    b.destination
                )));
            }
            continue;
        }
        if !dests.insert(b.destination.clone()) {
            return Err(SpecError::invalid(format!(
                "Duplicate mount point: {}",
                b.destination
            )));
        }
        if create_missing && !tmpfs_dests.contains(&b.destination) {
            create_bind_source(&b.source)?;
        }
        binds.push(UserMount::Bind {
            destination: b.destination,
            source: b.source,
            writable: !b.read_only,
            propagation: b.propagation,
            non_recursive: false,
            ro_non_recursive: false,
            ro_force_recursive: false,
        });
    }

    // HostConfig.Mounts
    if let Some(list) = &hc.mounts {
        for m in list {
            if m.r#type == "volume" {
                let err = |e: &dyn std::fmt::Display| mount_config_err("volume", e);
                for (field, given) in [
                    ("BindOptions", m.bind_options.is_some()),
                    ("ImageOptions", m.image_options.is_some()),
                    ("TmpfsOptions", m.tmpfs_options.is_some()),
                    ("ClusterOptions", m.cluster_options.is_some()),
                ] {
                    if given {
                        return Err(err(&format!("field {field} must not be specified")));
                    }
                }
                let target = clean_path(&m.target);
                validate_target(&m.target).map_err(|e| err(&e))?;
                if !dests.insert(target.clone()) {
                    return Err(SpecError::invalid(format!(
                        "Duplicate mount point: {target}"
                    )));
                }
                continue;
            }
            let um = parse_api_mount(m, create_missing)?;
            let dest = um.destination().to_string();
            if !dests.insert(dest.clone()) {
                return Err(SpecError::invalid(format!("Duplicate mount point: {dest}")));
            }
            match um {
                UserMount::Tmpfs { .. } => tmpfs.push(um),
                UserMount::Bind { .. } => binds.push(um),
            }
        }
    }

    for v in volumes {
        binds.retain(|b| b.destination() != v.destination);
        binds.push(UserMount::Bind {
            destination: v.destination.clone(),
            source: v.source.display().to_string(),
            writable: !v.read_only,
            propagation: "rprivate".into(),
            non_recursive: false,
            ro_non_recursive: false,
            ro_force_recursive: false,
        });
    }

    // tmpfs mounts win over a bind at the same place (Docker skips such mount points)
    let tmpfs_dests: HashSet<String> = tmpfs.iter().map(|m| m.destination().to_string()).collect();
    binds.retain(|b| !tmpfs_dests.contains(b.destination()));
    sort_by_depth(&mut binds);
    tmpfs.extend(binds);
    Ok(tmpfs)
}

pub(super) fn create_bind_source(source: &str) -> Result<(), SpecError> {
    use std::os::unix::fs::DirBuilderExt;
    if Path::new(source).exists() {
        return Ok(());
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(source)
    {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(()),
        Err(e) => Err(SpecError::system(format!(
            "error while creating mount source path '{source}': mkdir {source}: {e}"
        ))),
    }
}

/// One entry of `HostConfig.Mounts`.
pub(super) fn parse_api_mount(m: &ApiMount, create_missing: bool) -> Result<UserMount, SpecError> {
    let typ = m.r#type.as_str();
    let err = |e: &dyn std::fmt::Display| mount_config_err(typ, e);
    for (field, owner, given) in [
        ("BindOptions", "bind", m.bind_options.is_some()),
        ("VolumeOptions", "volume", m.volume_options.is_some()),
        ("ImageOptions", "image", m.image_options.is_some()),
        ("TmpfsOptions", "tmpfs", m.tmpfs_options.is_some()),
        ("ClusterOptions", "cluster", m.cluster_options.is_some()),
    ] {
        if typ != owner && given {
            return Err(err(&format!("field {field} must not be specified")));
        }
    }
    let target = m.target.as_str();
    validate_target(target).map_err(|e| err(&e))?;
    let source = m.source.as_str();
    let read_only = m.read_only;
    match typ {
        "bind" => {
            if source.is_empty() {
                return Err(err(&"field Source must not be empty"));
            }
            let opts = m.bind_options.clone().unwrap_or_default();
            let propagation = opts.propagation.as_str();
            if !propagation.is_empty() && !PROPAGATIONS.contains(&propagation) {
                return Err(err(&format!("invalid propagation mode: {propagation}")));
            }
            if !source.replace('\\', "/").starts_with('/') {
                return Err(err(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let create = opts.create_mountpoint;
            if !Path::new(source).exists() {
                if !create {
                    return Err(err(&format!("bind source path does not exist: {source}")));
                }
                if create_missing {
                    create_bind_source(source)?;
                }
            }
            let (ro_nr, ro_fr) = (opts.read_only_non_recursive, opts.read_only_force_recursive);
            if !read_only && ro_nr {
                return Err(SpecError::invalid(
                    "mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive",
                ));
            }
            if !read_only && ro_fr {
                return Err(SpecError::invalid(
                    "mount options conflict: !ReadOnly && BindOptions.ReadOnlyForceRecursive",
                ));
            }
            if ro_nr && ro_fr {
                return Err(SpecError::invalid(
                    "mount options conflict: ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive",
                ));
            }
            Ok(UserMount::Bind {
                destination: clean_path(target),
                source: clean_path(source),
                writable: !read_only,
                propagation: if propagation.is_empty() {
                    "rprivate"
                } else {
                    propagation
                }
                .to_string(),
                non_recursive: opts.non_recursive,
                ro_non_recursive: ro_nr,
                ro_force_recursive: ro_fr,
            })
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(err(&"field Source must not be specified"));
            }
            let data =
                convert_tmpfs_options(m.tmpfs_options.as_ref(), read_only).map_err(|e| err(&e))?;
            Ok(UserMount::Tmpfs {
                destination: clean_path(target),
                data,
            })
        }
        "image" => Err(SpecError::NotSupported(format!(
            "mounts of type {typ:?} are not supported (target {target})"
        ))),
        _ => Err(err(&"mount type unknown")),
    }
}
