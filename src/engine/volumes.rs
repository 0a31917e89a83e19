//! Local volumes (`/volumes…`, moby's `volume/local` driver): a folder
//! `volumes/<name>/_data` in the data root, recorded in the store with the containers that
//! mount it. Containers get theirs at create ([`plan`]: `-v name:/path`, `--mount
//! type=volume`, `-v /path` and the image's `VOLUME`s); the runtime binds them at start, after
//! [`copy_up`] has filled a new, empty volume with the image's content at that path.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::Transaction;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::model::lenient::null_default;
use crate::model::{Config, HostConfig};
use crate::params::Filters;
use crate::store::volumes::{self as rows, BindRow, MountRow, VolumeRow};
use crate::util::time::{now_nanos, rfc3339_nano};

use super::{Engine, EngineError, ErrorKind, Result};

/// Docker's label on the volumes it makes for one container.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The body of `POST /volumes/create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateOptions {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub driver: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// moby's local driver name check, with its texts.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_first = |c: char| c.is_ascii_alphanumeric();
    let ok_rest = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(ok_first) && chars.all(ok_rest);
    if valid && name.len() < 2 {
        return Err(EngineError::invalid(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    if !valid {
        return Err(EngineError::invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    Ok(())
}

fn check_driver(driver: &str) -> Result<()> {
    match driver {
        "" | "local" => Ok(()),
        d => Err(EngineError::not_found(format!(
            "error looking up volume plugin {d}: plugin \"{d}\" not found"
        ))),
    }
}

/// The local driver's `type`/`device`/`o` options, checked as moby does.
fn check_options(opts: Option<&BTreeMap<String, String>>) -> Result<()> {
    match opts {
        Some(o) => super::volume_options::validate(o),
        None => Ok(()),
    }
}

fn no_such(name: &str) -> EngineError {
    EngineError::not_found(format!("get {name}: no such volume"))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn labels_of(row: &VolumeRow) -> BTreeMap<String, String> {
    serde_json::from_str::<Option<BTreeMap<String, String>>>(&row.labels)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Insert the volume (and make its folder) unless it exists; the row either way.
fn ensure(tx: &Transaction, row: VolumeRow) -> Result<(VolumeRow, bool)> {
    let created = rows::insert(tx, &row)?;
    if !created {
        let existing = rows::get(tx, &row.name)?.ok_or_else(|| no_such(&row.name))?;
        return Ok((existing, false));
    }
    // The folder is made after the commit (create) or at the container's start: a transaction
    // that fails leaves no folder behind.
    let mut attrs = Map::new();
    attrs.insert("driver".into(), json!(row.driver));
    crate::store::events::append(tx, now_nanos(), "volume", "create", &row.name, &attrs)?;
    Ok((row, true))
}

fn new_row(name: String, labels: Option<BTreeMap<String, String>>, anonymous: bool) -> VolumeRow {
    VolumeRow {
        name,
        driver: "local".into(),
        created: now_nanos(),
        labels: to_json(&labels),
        options: "null".into(),
        anonymous,
    }
}

/// `POST /volumes/create`: 201 with the volume, also when it already exists (moby).
pub fn create(engine: &Engine, opts: CreateOptions) -> Result<Value> {
    check_driver(&opts.driver)?;
    check_options(opts.driver_opts.as_ref())?;
    // moby: a volume created without a name is anonymous (labelled so, and pruned by default).
    let mut row = if opts.name.is_empty() {
        let mut labels = opts.labels.clone().unwrap_or_default();
        labels.insert(ANONYMOUS_LABEL.into(), String::new());
        new_row(crate::util::random_id(), Some(labels), true)
    } else {
        validate_name(&opts.name)?;
        new_row(opts.name.clone(), opts.labels.clone(), false)
    };
    row.options = to_json(&opts.driver_opts);
    let mut store = engine.store()?;
    let (row, _) = store.write(|tx| ensure(tx, row))?;
    std::fs::create_dir_all(engine.paths().volume_data(&row.name))?;
    Ok(volume_json(engine, &row, None))
}

/// A volume as the API shows it; `usage` = (size, containers using it) for `system df`.
pub fn volume_json(engine: &Engine, row: &VolumeRow, usage: Option<(i64, i64)>) -> Value {
    let secs = row.created.div_euclid(1_000_000_000) * 1_000_000_000;
    let mut v = json!({
        "CreatedAt": rfc3339_nano(secs),
        "Driver": row.driver,
        "Labels": serde_json::from_str::<Value>(&row.labels).unwrap_or(Value::Null),
        "Mountpoint": engine.paths().volume_data(&row.name),
        "Name": row.name,
        "Options": serde_json::from_str::<Value>(&row.options).unwrap_or(Value::Null),
        "Scope": "local",
    });
    if let Some((size, refs)) = usage {
        v["UsageData"] = json!({"Size": size, "RefCount": refs});
    }
    v
}

/// `GET /volumes/{name}`.
pub fn inspect(engine: &Engine, name: &str) -> Result<Value> {
    let row = engine
        .store()?
        .read(|tx| rows::get(tx, name))?
        .ok_or_else(|| no_such(name))?;
    Ok(volume_json(engine, &row, None))
}

const LIST_FILTERS: &[&str] = &["dangling", "driver", "label", "name"];

/// `GET /volumes` with moby's filters.
pub fn list(engine: &Engine, filters: &Filters) -> Result<Value> {
    filters
        .validate(LIST_FILTERS)
        .map_err(EngineError::invalid_cause)?;
    let dangling = filters
        .optional_bool("dangling")
        .map_err(EngineError::invalid_cause)?;
    let (all, used) = engine.store()?.read(|tx| {
        let used: HashSet<String> = rows::all_mounts(tx)?
            .into_iter()
            .map(|m| m.volume)
            .collect();
        Ok::<_, EngineError>((rows::list(tx)?, used))
    })?;
    let mut out = Vec::new();
    for row in all {
        if dangling.is_some_and(|d| d == used.contains(&row.name)) {
            continue;
        }
        let drivers = filters.values("driver");
        if !drivers.is_empty() && !drivers.contains(&row.driver.as_str()) {
            continue;
        }
        let names = filters.values("name");
        if !names.is_empty() && !names.iter().any(|n| row.name.contains(n)) {
            continue;
        }
        if !filters.match_kv("label", &labels_of(&row)) {
            continue;
        }
        out.push(volume_json(engine, &row, None));
    }
    Ok(json!({"Volumes": out, "Warnings": []}))
}

/// `DELETE /volumes/{name}`: a volume in use is a 409; `force` ignores a missing one.
pub fn remove(engine: &Engine, name: &str, force: bool) -> Result<()> {
    // The folder is moved aside inside the transaction and deleted after it: a `berth serve`
    // killed in between leaves a `.removing-*` folder (swept by the next removal), never an
    // orphan `volumes/<name>` whose content a new volume of that name would find.
    let folder = engine.paths().volumes().join(name);
    let trash = folder.with_file_name(format!(
        ".removing-{name}-{}",
        &crate::util::random_id()[..12]
    ));
    let mut store = engine.store()?;
    let result = store.write(|tx| {
        if rows::get(tx, name)?.is_none() {
            return if force { Ok(false) } else { Err(no_such(name)) };
        }
        let users = rows::users(tx, name)?;
        if !users.is_empty() {
            return Err(EngineError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        // A volume with mount options may still be mounted (no container runs it now).
        let data = engine.paths().volume_data(name);
        if super::containers::rootfs::is_mounted(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| EngineError::internal(format!("unmounting volume {name}: {e}")))?;
        }
        match std::fs::rename(&folder, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::internal_cause(e)),
        }
        rows::delete(tx, name)?;
        crate::store::events::append(tx, now_nanos(), "volume", "destroy", name, &Map::new())?;
        Ok(true)
    });
    match result {
        Ok(gone) => {
            if gone {
                sweep_removed(engine);
            }
            Ok(())
        }
        Err(e) => {
            // The transaction did not commit: the volume stays, with its content.
            if trash.exists() {
                let _ = std::fs::rename(&trash, &folder);
            }
            Err(e)
        }
    }
}

/// Delete the folders of removed volumes.
fn sweep_removed(engine: &Engine) {
    let dir = engine.paths().volumes();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".removing-")
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            tracing::warn!(path = %e.path().display(), error = %err, "removing a volume's folder");
        }
    }
}

/// `POST /volumes/prune`: unused volumes; only anonymous ones unless `all` (API ≥ 1.42 with
/// `all=true`; every unused one for older clients, as moby).
pub fn prune(engine: &Engine, filters: &Filters, anonymous_only: bool) -> Result<Value> {
    filters
        .validate(&["label", "label!", "all"])
        .map_err(EngineError::invalid_cause)?;
    let all = filters
        .bool_or_default("all", false)
        .map_err(EngineError::invalid_cause)?;
    let only_anonymous = anonymous_only && !all;
    let candidates = engine.store()?.read(|tx| {
        let used: HashSet<String> = rows::all_mounts(tx)?
            .into_iter()
            .map(|m| m.volume)
            .collect();
        Ok::<_, EngineError>(
            rows::list(tx)?
                .into_iter()
                .filter(|r| !used.contains(&r.name) && (r.anonymous || !only_anonymous))
                .collect::<Vec<_>>(),
        )
    })?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for row in candidates {
        let labels = labels_of(&row);
        if !filters.match_kv("label", &labels) {
            continue;
        }
        if filters.contains("label!") && filters.match_kv_any_negated(&labels) {
            continue;
        }
        let size = dir_size(&engine.paths().volume_data(&row.name));
        match remove(engine, &row.name, false) {
            Ok(()) => {
                reclaimed += size;
                deleted.push(row.name);
            }
            // Taken into use meanwhile: not unused any more.
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
    }
    let deleted = if deleted.is_empty() {
        Value::Null
    } else {
        json!(deleted)
    };
    Ok(json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}))
}

/// Bytes of regular files below `dir` (not following symlinks).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Every volume with its size and number of containers, for `system df`.
pub fn usage(engine: &Engine) -> Result<Vec<Value>> {
    let (all, mounts) = engine
        .store()?
        .read(|tx| Ok::<_, EngineError>((rows::list(tx)?, rows::all_mounts(tx)?)))?;
    Ok(all
        .iter()
        .map(|row| {
            let refs: HashSet<&str> = mounts
                .iter()
                .filter(|m| m.volume == row.name)
                .map(|m| m.container_id.as_str())
                .collect();
            let size = dir_size(&engine.paths().volume_data(&row.name)) as i64;
            volume_json(engine, row, Some((size, refs.len() as i64)))
        })
        .collect())
}

// ---- containers' volumes ----

/// The volumes a new container gets, created as needed and recorded against it (moby's
/// `registerMountPoints`): `Binds` naming a volume, `Mounts` of type volume, and every path of
/// `Config.Volumes` (`-v /path`, the image's `VOLUME`) that nothing else mounts.
pub fn plan(tx: &Transaction, container_id: &str, config: &Config, hc: &HostConfig) -> Result<()> {
    let mut covered: HashSet<String> = HashSet::new();
    let add = |tx: &Transaction, row: VolumeRow, dest: String, ro: bool, copy: bool| {
        let (row, _) = ensure(tx, row)?;
        rows::add_mount(
            tx,
            &MountRow {
                container_id: container_id.to_string(),
                destination: dest,
                volume: row.name,
                read_only: ro,
                copy_up: copy,
            },
        )?;
        Ok::<_, EngineError>(())
    };
    for raw in hc.binds.iter().flatten() {
        let b = crate::runtime::parse_bind(raw)?;
        if !b.volume {
            continue;
        }
        validate_name(&b.source)?;
        let nocopy = b.mode.split(',').any(|m| m == "nocopy");
        covered.insert(b.destination.clone());
        add(
            tx,
            new_row(b.source.clone(), None, false),
            b.destination,
            b.read_only,
            !nocopy,
        )?;
    }
    for m in hc.mounts.iter().flatten().filter(|m| m.r#type == "volume") {
        let opts = m.volume_options.clone().unwrap_or_default();
        if let Some(d) = &opts.driver_config {
            check_driver(&d.name)?;
            check_options(d.options.as_ref())?;
        }
        if !opts.subpath.is_empty() {
            return Err(EngineError::new(
                ErrorKind::NotImplemented,
                "volume subpaths (volume-subpath) are not supported by berth yet",
            ));
        }
        let dest = crate::runtime::clean_path(&m.target);
        let row = if m.source.is_empty() {
            let mut labels = opts.labels.clone().unwrap_or_default();
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
            new_row(crate::util::random_id(), Some(labels), true)
        } else {
            validate_name(&m.source)?;
            new_row(m.source.clone(), opts.labels.clone(), false)
        };
        // volume-opt=…: the new volume's driver options (an existing volume keeps its own).
        let mut row = row;
        if let Some(d) = opts.driver_config.as_ref().filter(|d| d.options.is_some()) {
            row.options = to_json(&d.options);
        }
        covered.insert(dest.clone());
        add(tx, row, dest, m.read_only, !opts.no_copy)?;
    }
    let others = mount_targets(hc);
    covered.extend(others.iter().cloned());
    for spec in hc.volumes_from.iter().flatten() {
        from_container(tx, container_id, spec, &mut covered)?;
    }
    for path in config.volumes.iter().flatten().map(|(p, _)| p) {
        let dest = crate::runtime::clean_path(path);
        if covered.contains(&dest) || others.contains(&dest) {
            continue;
        }
        let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
        add(
            tx,
            new_row(crate::util::random_id(), Some(labels), true),
            dest,
            false,
            true,
        )?;
    }
    Ok(())
}

/// `--volumes-from name[:ro|rw]` (moby's `ParseVolumesFrom`): the other container's volumes
/// and host binds at the same places, read-only or read-write as asked (else as there);
/// the container's own mounts win.
fn from_container(
    tx: &Transaction,
    container_id: &str,
    spec: &str,
    covered: &mut HashSet<String>,
) -> Result<()> {
    let (name, mode) = match spec.rsplit_once(':') {
        Some((n, m)) => (n, m),
        None => (spec, ""),
    };
    let force_ro = match mode {
        "" => None,
        "ro" => Some(true),
        "rw" => Some(false),
        m => {
            return Err(EngineError::invalid(format!(
                "invalid mode for volumes-from: {m}"
            )));
        }
    };
    let other = super::containers::resolve(tx, name)?;
    if other.id == container_id {
        return Err(EngineError::invalid("cannot take volumes from itself"));
    }
    for m in rows::mounts_of(tx, &other.id)? {
        if covered.insert(m.destination.clone()) {
            rows::add_mount(
                tx,
                &MountRow {
                    container_id: container_id.to_string(),
                    read_only: force_ro.unwrap_or(m.read_only),
                    copy_up: false,
                    ..m
                },
            )?;
        }
    }
    let ohc = other.host_config();
    let mut binds: Vec<(String, String, bool)> = Vec::new();
    for b in ohc.binds.iter().flatten() {
        if let Ok(b) = crate::runtime::parse_bind(b)
            && !b.volume
        {
            binds.push((b.destination, b.source, b.read_only));
        }
    }
    for m in ohc.mounts.iter().flatten().filter(|m| m.r#type == "bind") {
        binds.push((
            crate::runtime::clean_path(&m.target),
            m.source.clone(),
            m.read_only,
        ));
    }
    for b in rows::binds_of(tx, &other.id)? {
        binds.push((b.destination, b.source, b.read_only));
    }
    for (destination, source, ro) in binds {
        if covered.insert(destination.clone()) {
            rows::add_bind(
                tx,
                &BindRow {
                    container_id: container_id.to_string(),
                    destination,
                    source,
                    read_only: force_ro.unwrap_or(ro),
                },
            )?;
        }
    }
    Ok(())
}

/// The host binds a container took with `--volumes-from`.
pub fn inherited_binds(engine: &Engine, container_id: &str) -> Result<Vec<BindRow>> {
    Ok(engine
        .store()?
        .read(|tx| rows::binds_of(tx, container_id))?)
}

/// Host binds, bind and tmpfs `Mounts` and `Tmpfs` targets: no volume goes where they are.
fn mount_targets(hc: &HostConfig) -> HashSet<String> {
    let mut out = HashSet::new();
    for b in hc.binds.iter().flatten() {
        if let Ok(spec) = crate::runtime::parse_bind(b)
            && !spec.volume
        {
            out.insert(spec.destination);
        }
    }
    for m in hc.mounts.iter().flatten().filter(|m| m.r#type != "volume") {
        out.insert(crate::runtime::clean_path(&m.target));
    }
    out.extend(
        hc.tmpfs
            .iter()
            .flatten()
            .map(|(k, _)| crate::runtime::clean_path(k)),
    );
    out
}

/// A container's volumes as the runtime binds them.
pub fn mounts_for(engine: &Engine, container_id: &str) -> Result<Vec<(MountRow, PathBuf)>> {
    let rows = engine
        .store()?
        .read(|tx| rows::mounts_of(tx, container_id))?;
    Ok(rows
        .into_iter()
        .map(|m| {
            let data = engine.paths().volume_data(&m.volume);
            (m, data)
        })
        .collect())
}

/// After a container is removed: its anonymous volumes go with it when asked (`rm -v`,
/// `--rm`), unless another container mounts them too. `mounts` are the container's, read
/// before its row was deleted.
pub fn remove_anonymous(engine: &Engine, mounts: &[MountRow]) {
    for m in mounts {
        let anonymous = engine
            .store()
            .and_then(|mut s| s.read(|tx| rows::get(tx, &m.volume).map_err(EngineError::from)))
            .ok()
            .flatten()
            .is_some_and(|r| r.anonymous);
        if anonymous
            && let Err(e) = remove(engine, &m.volume, true)
            && e.kind != ErrorKind::Conflict
        {
            tracing::warn!(volume = %m.volume, error = %e.message, "removing an anonymous volume");
        }
    }
}

/// moby's copy-up: a volume that is still empty gets what the image has at its path, with
/// owners, modes and symlinks as they are. The image path is resolved inside `rootfs` (a
/// symlink there can never lead to a host path).
pub fn copy_up(rootfs: &Path, destination: &str, volume: &Path) -> std::io::Result<()> {
    if std::fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    let Some(src) = resolve_in_root(rootfs, destination) else {
        return Ok(());
    };
    match src.symlink_metadata() {
        Ok(md) if md.is_dir() => {
            copy_owner_mode(&md, volume)?;
            copy_tree(&src, volume)
        }
        _ => Ok(()),
    }
}

/// `path` (absolute, inside the container) below `root`, symlinks resolved as the container
/// sees them; `None` if some part does not exist.
fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .rev()
        .collect();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(p) = parts.pop() {
        match p.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let candidate = root.join(cur.strip_prefix("/").ok()?).join(&p);
        let md = candidate.symlink_metadata().ok()?;
        if md.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&candidate).ok()?;
            let t = target.to_string_lossy().into_owned();
            if t.starts_with('/') {
                cur = PathBuf::from("/");
            }
            parts.extend(
                t.split('/')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .rev(),
            );
        } else {
            cur.push(&p);
        }
    }
    Some(root.join(cur.strip_prefix("/").ok()?))
}

fn copy_owner_mode(md: &std::fs::Metadata, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))?;
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let md = from.symlink_metadata()?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
        } else {
            // Device nodes, fifos and sockets are not copied (moby copies them with mknod;
            // images rarely have them under a VOLUME path).
            continue;
        }
        copy_owner_mode(&md, &to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_the_local_driver() {
        assert!(validate_name("data").is_ok());
        assert!(validate_name("a.b-c_d").is_ok());
        assert!(
            validate_name("x")
                .unwrap_err()
                .message
                .contains("too short")
        );
        let e = validate_name("a/b").unwrap_err();
        assert!(
            e.message.contains("includes invalid characters"),
            "{}",
            e.message
        );
        assert!(validate_name("-ab").is_err());
    }

    #[test]
    fn copy_up_stays_in_the_root() {
        let root = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host").unwrap();
        // /data -> the host folder's absolute path: resolved inside the root, it is missing.
        std::os::unix::fs::symlink(host.path(), root.path().join("data")).unwrap();
        let vol = tempfile::tempdir().unwrap();
        copy_up(root.path(), "/data", vol.path()).unwrap();
        assert_eq!(std::fs::read_dir(vol.path()).unwrap().count(), 0);
        // /www -> /srv/www inside the root is followed there.
        std::fs::create_dir_all(root.path().join("srv/www/sub")).unwrap();
        std::fs::write(root.path().join("srv/www/index.html"), "hi").unwrap();
        std::os::unix::fs::symlink("/srv/www", root.path().join("www")).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", root.path().join("srv/www/link")).unwrap();
        copy_up(root.path(), "/www", vol.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(vol.path().join("index.html")).unwrap(),
            "hi"
        );
        assert!(vol.path().join("sub").is_dir());
        assert_eq!(
            std::fs::read_link(vol.path().join("link")).unwrap(),
            Path::new("../../etc/passwd")
        );
        // Not empty any more: a second copy does nothing.
        std::fs::write(root.path().join("srv/www/new"), "x").unwrap();
        copy_up(root.path(), "/www", vol.path()).unwrap();
        assert!(!vol.path().join("new").exists());
    }
}
