//! The local driver's mount options (`docker volume create -o type=tmpfs -o device=tmpfs
//! -o o=size=64m`, `-o type=none -o o=bind -o device=/srv/data`): checked at create with
//! moby's texts, mounted on the volume's `_data` when a container using it starts, and
//! unmounted when the last running container using it ends (moby's reference count, read
//! from the store and the containers' states instead of a daemon's memory).

use std::collections::BTreeMap;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::containers::rootfs::is_mounted;
use super::{Engine, EngineError, Result};

const VALID: &[&str] = &["type", "o", "device", "size"];
/// Each option and the ones it needs (moby's `mandatoryOpts`).
const NEEDS: &[(&str, &[&str])] = &[
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// moby's `validateOpts`, with its texts. There is no quota support: `size` is refused.
pub fn validate(opts: &BTreeMap<String, String>) -> Result<()> {
    for k in opts.keys() {
        if !VALID.contains(&k.as_str()) {
            return Err(EngineError::invalid(format!("invalid option: {k:?}")));
        }
    }
    if opts.contains_key("size") {
        return Err(EngineError::invalid(
            "quota size requested but no quota support",
        ));
    }
    for (opt, needs) in NEEDS {
        if opts.contains_key(*opt) {
            for n in *needs {
                if !opts.contains_key(*n) {
                    return Err(EngineError::invalid(format!(
                        "missing required option: {n:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `o=` split into mount flags and the data string the filesystem gets (moby's
/// `mount.ParseOptions`).
pub fn parse_o(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

fn options_of(engine: &Engine, name: &str) -> Result<BTreeMap<String, String>> {
    let row = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(crate::store::volumes::get(tx, name)?))?;
    Ok(row
        .and_then(|r| serde_json::from_str::<Option<BTreeMap<String, String>>>(&r.options).ok())
        .flatten()
        .unwrap_or_default())
}

/// Mount the volume's device on `data` if its options ask for one and it is not mounted.
pub fn mount_if_needed(engine: &Engine, name: &str, data: &Path) -> Result<()> {
    let opts = options_of(engine, name)?;
    let (Some(typ), Some(device)) = (opts.get("type"), opts.get("device")) else {
        return Ok(());
    };
    let _lock = engine.lock_container(&format!("volume-{name}"))?;
    if is_mounted(data) {
        return Ok(());
    }
    let (flags, o) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""));
    let fstype = (typ != "none").then_some(typ.as_str());
    let bind = flags.contains(MsFlags::MS_BIND);
    // The kernel ignores MS_RDONLY on a new bind mount: that takes the remount below.
    let first = if bind {
        flags & !MsFlags::MS_RDONLY
    } else {
        flags
    };
    let mounted = nix::mount::mount(
        Some(device.as_str()),
        data,
        fstype,
        first,
        (!o.is_empty()).then_some(o.as_str()),
    );
    mounted.map_err(|e| {
        EngineError::internal(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {:#x}, data: {o}: {}",
            data.display(),
            data.display(),
            flags.bits(),
            e.desc().to_lowercase()
        ))
    })?;
    // A read-only bind takes a second, remounting call.
    if bind && flags.contains(MsFlags::MS_RDONLY) {
        nix::mount::mount(
            None::<&str>,
            data,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| {
            EngineError::internal(format!("remounting {} read-only: {e}", data.display()))
        })?;
    }
    Ok(())
}

/// Unmount a mounted volume's `_data` if no running container other than `except` uses it.
pub fn release(engine: &Engine, name: &str, except: &str) -> Result<()> {
    let data = engine.paths().volume_data(name);
    if !is_mounted(&data) {
        return Ok(());
    }
    let _lock = engine.lock_container(&format!("volume-{name}"))?;
    let users = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>(crate::store::volumes::users(tx, name)?))?;
    for id in users.iter().filter(|u| u.as_str() != except) {
        let row = engine
            .store()?
            .read(|tx| Ok::<_, EngineError>(crate::store::containers::get(tx, id)?))?;
        if let Some(row) = row {
            let s = super::containers::state::current(
                engine.paths(),
                &row.id,
                &super::containers::state::State::parse(&row.state),
            );
            if s.is_running() {
                return Ok(());
            }
        }
    }
    nix::mount::umount2(&data, MntFlags::MNT_DETACH)
        .map_err(|e| EngineError::internal(format!("unmounting volume {name}: {e}")))
}

/// After a container's last run: release each volume it mounted.
pub fn release_all(engine: &Engine, container_id: &str) {
    let Ok(mounts) = super::volumes::mounts_for(engine, container_id) else {
        return;
    };
    for (m, _) in mounts {
        if let Err(e) = release(engine, &m.volume, container_id) {
            tracing::warn!(volume = %m.volume, error = %e.message, "releasing a volume");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation_like_mobys() {
        assert!(
            validate(&opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=1m")
            ]))
            .is_ok()
        );
        let e = validate(&opts(&[("colour", "red")])).unwrap_err();
        assert_eq!(e.message, "invalid option: \"colour\"");
        let e = validate(&opts(&[("type", "tmpfs")])).unwrap_err();
        assert_eq!(e.message, "missing required option: \"device\"");
        let e = validate(&opts(&[("o", "bind"), ("device", "/x")])).unwrap_err();
        assert_eq!(e.message, "missing required option: \"type\"");
        assert!(validate(&opts(&[("size", "1g")])).is_err());
    }

    #[test]
    fn o_splits_into_flags_and_data() {
        let (f, d) = parse_o("size=64m,uid=1000,noexec,ro");
        assert!(f.contains(MsFlags::MS_NOEXEC) && f.contains(MsFlags::MS_RDONLY));
        assert_eq!(d, "size=64m,uid=1000");
        let (f, d) = parse_o("bind,ro,rw");
        assert!(f.contains(MsFlags::MS_BIND) && !f.contains(MsFlags::MS_RDONLY));
        assert_eq!(d, "");
    }
}
