//! Local images: lookup by name or ID, list, inspect, history, tag, remove, prune.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Transaction;
use serde_json::{Value, json};

use crate::config::Paths;
use crate::image::config::{ImageConfig, chain_ids, inspect_config};
use crate::image::reference::{self, Reference};
use crate::params::Filters;
use crate::store::images::{self as rows, ImageRow, RefRow};
use crate::util::time::{now_nanos, rfc3339_nano};
use crate::util::{digest_hex, short_id, time::parse_query_time};

pub mod archive;
pub mod child;
pub mod import;
pub mod layers;
pub mod pull;
pub mod push;
pub mod save;
pub mod upper_layer;

use super::{Engine, EngineError, Result, events};
use layers::StagedLayer;

/// Find an image the way moby's `GetImage` does: full ID, then reference, then ID prefix.
pub fn resolve(tx: &Transaction, name: &str) -> Result<ImageRow> {
    if let Some(id) = reference::parse_image_id(name)
        && (name.starts_with("sha256:") || name.len() == 64)
    {
        return rows::get_image(tx, &id)?.ok_or_else(|| EngineError::no_such_image(name));
    }
    let parsed = reference::parse_normalized(name);
    if let Ok(r) = &parsed {
        let r = r.clone().with_default_tag();
        if let Some(id) = rows::ref_target(tx, &r.full())?
            && let Some(img) = rows::get_image(tx, &id)?
        {
            return Ok(img);
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if reference::is_hex_prefix(hex) {
        let ids = rows::image_ids_with_prefix(tx, hex)?;
        if ids.len() == 1
            && let Some(img) = rows::get_image(tx, &ids[0])?
        {
            return Ok(img);
        }
    }
    Err(EngineError::no_such_image(&match parsed {
        Ok(r) => r.with_default_tag().familiar(),
        Err(_) => name.to_string(),
    }))
}

/// moby's `isImageIDPrefix`: was the image named by (a prefix of) its ID?
fn is_id_prefix(image_id: &str, given: &str) -> bool {
    image_id.starts_with(given) || digest_hex(image_id).starts_with(given)
}

fn familiar(full: &str) -> String {
    reference::parse_normalized(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// Tags and digests of an image, in the familiar form.
fn repo_lists(refs: &[RefRow]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for r in refs {
        if r.is_digest {
            digests.push(familiar(&r.name));
        } else {
            tags.push(familiar(&r.name));
        }
    }
    (tags, digests)
}

fn parse_config(row: &ImageRow) -> Result<ImageConfig> {
    ImageConfig::parse(&row.config)
        .map_err(|e| EngineError::internal(format!("image {}: {e}", row.id)))
}

fn created_unix(row: &ImageRow) -> i64 {
    row.created.div_euclid(1_000_000_000)
}

/// A staged or already present layer, for [`register`].
pub enum LayerSource {
    Present,
    Staged(StagedLayer),
}

/// The image row's own fields, for [`insert_with_layers`] (size comes from the layers).
pub struct NewImage<'a> {
    pub id: &'a str,
    pub config: &'a [u8],
    pub cfg: &'a ImageConfig,
    pub added: i64,
}

/// Commit the staged layers of an image (in chain order), check the present ones are still
/// there, and insert the image row. `during` names the operation in errors ("load", "pull").
pub fn insert_with_layers(
    tx: &Transaction,
    paths: &crate::config::Paths,
    image: &NewImage,
    sources: &[LayerSource],
    chains: &[String],
    during: &str,
) -> Result<()> {
    let mut size: i64 = 0;
    for (i, src) in sources.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| chains[p].as_str());
        let row = match src {
            LayerSource::Staged(staged) => layers::commit(tx, paths, staged, &chains[i], parent)?,
            LayerSource::Present => layers::present(tx, paths, &chains[i])?.ok_or_else(|| {
                EngineError::internal(format!("layer {} vanished during {during}", chains[i]))
            })?,
        };
        size += row.size;
    }
    rows::insert_image(
        tx,
        &ImageRow {
            id: image.id.to_string(),
            config: image.config.to_vec(),
            created: image.cfg.created_nanos(),
            size,
            parent: image.cfg.parent().to_string(),
            added: image.added,
            last_tag: 0,
        },
        chains,
    )?;
    Ok(())
}

/// What registering an image did, for the caller's messages.
pub struct Registered {
    pub id: String,
    /// (familiar tag, ID of the image that had it before)
    pub moved_tags: Vec<(String, String)>,
}

/// Record an image whose layers are present or staged: commit the layers, the image row and its
/// tags in one write transaction, and log `action` (load, import) for it.
pub fn register(
    engine: &Engine,
    config: &[u8],
    layers_in: Vec<LayerSource>,
    tags: &[Reference],
    action: &str,
) -> Result<Registered> {
    let cfg = ImageConfig::parse(config).map_err(EngineError::invalid_cause)?;
    let diff_ids = cfg.diff_ids();
    if diff_ids.len() != layers_in.len() {
        return Err(EngineError::invalid(format!(
            "image has {} layers in its config but {} in its manifest",
            diff_ids.len(),
            layers_in.len()
        )));
    }
    let chains = chain_ids(&diff_ids);
    let id = crate::util::sha256_digest(config);
    let paths = engine.paths().clone();
    let mut store = engine.store()?;
    let now = now_nanos();
    store.write(|tx| {
        let image = NewImage {
            id: &id,
            config,
            cfg: &cfg,
            added: now,
        };
        insert_with_layers(tx, &paths, &image, &layers_in, &chains, "load")?;
        let mut moved_tags = Vec::new();
        for t in tags {
            if let Some(old) = rows::set_ref(tx, &t.full(), &id, false, now)? {
                moved_tags.push((t.familiar(), old));
            }
        }
        // Build steps record no event (as moby's builder); tags get theirs from the caller.
        if !action.is_empty() {
            events::image_event(tx, action, &id, &id)?;
        }
        Ok(Registered { id, moved_tags })
    })
}

/// `GET /images/json`.
pub fn list(engine: &Engine, all: bool, filters: &Filters) -> Result<Vec<Value>> {
    filters
        .validate(&["before", "dangling", "label", "reference", "since", "until"])
        .map_err(EngineError::invalid_cause)?;
    let dangling = filters
        .optional_bool("dangling")
        .map_err(EngineError::invalid_cause)?;
    let mut store = engine.store()?;
    store.read(|tx| {
        let images = rows::list_images(tx)?;
        let before = time_bound(tx, filters, "before")?;
        let since = time_bound(tx, filters, "since")?;
        let until = until_filter(filters)?;
        let mut refs_by_image: HashMap<String, Vec<RefRow>> = HashMap::new();
        for r in rows::all_refs(tx)? {
            refs_by_image.entry(r.image_id.clone()).or_default().push(r);
        }
        let parents: HashSet<String> = images.iter().map(|i| i.parent.clone()).collect();
        let patterns = filters.values("reference");
        let mut out = Vec::new();
        for img in &images {
            let refs = refs_by_image.get(&img.id).map(Vec::as_slice).unwrap_or(&[]);
            let (mut tags, mut digests) = repo_lists(refs);
            if let Some(d) = dangling
                && d != tags.is_empty()
            {
                continue;
            }
            // Without `all`, intermediate images (untagged parents of others) are hidden.
            if !all && tags.is_empty() && digests.is_empty() && parents.contains(&img.id) {
                continue;
            }
            if before.is_some_and(|b| img.created >= b) || since.is_some_and(|s| img.created <= s) {
                continue;
            }
            if until.is_some_and(|u| img.created > u) {
                continue;
            }
            let cfg = parse_config(img)?;
            let labels = cfg.labels();
            if filters.contains("label") && !filters.match_kv("label", &labels) {
                continue;
            }
            if !patterns.is_empty() {
                let keep = |name: &String| {
                    patterns
                        .iter()
                        .any(|p| reference_matches(p, name).unwrap_or(false))
                };
                tags.retain(keep);
                digests.retain(keep);
                if tags.is_empty() && digests.is_empty() {
                    continue;
                }
            }
            out.push(json!({
                "Containers": -1,
                "Created": created_unix(img),
                "Id": img.id,
                "Labels": cfg.container_config().get("Labels").cloned().unwrap_or(Value::Null),
                "ParentId": img.parent,
                "RepoDigests": digests,
                "RepoTags": tags,
                "SharedSize": -1,
                "Size": img.size,
            }));
        }
        Ok(out)
    })
}

/// moby's `FamiliarMatch`: a pattern matches the familiar name or the familiar name:tag.
fn reference_matches(pattern: &str, familiar_ref: &str) -> Result<bool> {
    match reference::parse_normalized(familiar_ref) {
        Ok(r) => Ok(reference::familiar_match(pattern, &r)?),
        Err(_) => Ok(reference::path_match(pattern, familiar_ref)?),
    }
}

/// `before`/`since` name an image; its creation time bounds the list.
fn time_bound(tx: &Transaction, filters: &Filters, key: &str) -> Result<Option<i64>> {
    match filters.values(key).first() {
        Some(name) => Ok(Some(resolve(tx, name)?.created)),
        None => Ok(None),
    }
}

/// `GET /images/{name}/json`.
pub fn inspect(engine: &Engine, name: &str) -> Result<Value> {
    let paths = engine.paths().clone();
    let mut store = engine.store()?;
    store.read(|tx| {
        let img = resolve(tx, name)?;
        let cfg = parse_config(&img)?;
        let (tags, digests) = repo_lists(&rows::refs_of(tx, &img.id)?);
        let layer_rows = rows::image_layers(tx, &img.id)?;
        let created = match cfg.0.get("created") {
            Some(Value::String(_)) => rfc3339_nano(img.created),
            _ => String::new(),
        };
        let mut v = json!({
            "Id": img.id,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": img.parent,
            "Comment": cfg.str_field("comment"),
            "Created": created,
            "DockerVersion": cfg.str_field("docker_version"),
            "Author": cfg.str_field("author"),
            "Config": inspect_config(&cfg.container_config()),
            "Architecture": cfg.str_field("architecture"),
        });
        let m = v.as_object_mut().expect("object literal");
        if !cfg.str_field("variant").is_empty() {
            m.insert("Variant".into(), json!(cfg.str_field("variant")));
        }
        m.insert("Os".into(), json!(cfg.str_field("os")));
        if !cfg.str_field("os.version").is_empty() {
            m.insert("OsVersion".into(), json!(cfg.str_field("os.version")));
        }
        m.insert("Size".into(), json!(img.size));
        m.insert("GraphDriver".into(), graph_driver(&paths, &layer_rows));
        m.insert(
            "RootFS".into(),
            json!({"Type": "layers", "Layers": cfg.diff_ids()}),
        );
        m.insert(
            "Metadata".into(),
            json!({"LastTagTime": if img.last_tag == 0 { "0001-01-01T00:00:00Z".to_string() } else { rfc3339_nano(img.last_tag) }}),
        );
        Ok(v)
    })
}

/// overlay2's `GraphDriver` block: the top layer is the upper dir, the rest the lower dirs.
fn graph_driver(paths: &Paths, layer_rows: &[rows::LayerRow]) -> Value {
    let diff = |l: &rows::LayerRow| {
        paths
            .layer_dir(digest_hex(&l.chain_id))
            .join("diff")
            .display()
            .to_string()
    };
    let mut data = serde_json::Map::new();
    if let Some((top, lower)) = layer_rows.split_last() {
        if !lower.is_empty() {
            let l: Vec<String> = lower.iter().rev().map(diff).collect();
            data.insert("LowerDir".into(), json!(l.join(":")));
        }
        let top_dir = paths.layer_dir(digest_hex(&top.chain_id));
        data.insert(
            "MergedDir".into(),
            json!(top_dir.join("merged").display().to_string()),
        );
        data.insert("UpperDir".into(), json!(diff(top)));
        data.insert(
            "WorkDir".into(),
            json!(top_dir.join("work").display().to_string()),
        );
    }
    json!({"Data": data, "Name": "overlay2"})
}

/// `GET /images/{name}/history`, newest first.
pub fn history(engine: &Engine, name: &str) -> Result<Vec<Value>> {
    let mut store = engine.store()?;
    store.read(|tx| {
        let img = resolve(tx, name)?;
        let cfg = parse_config(&img)?;
        let layer_rows = rows::image_layers(tx, &img.id)?;
        let mut items = Vec::new();
        let mut layer_idx = 0;
        for h in cfg.history() {
            let mut size = 0;
            if !h
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                let l = layer_rows.get(layer_idx).ok_or_else(|| {
                    EngineError::internal("too many non-empty layers in History section")
                })?;
                size = l.size;
                layer_idx += 1;
            }
            let created = h
                .get("created")
                .and_then(Value::as_str)
                .and_then(crate::util::time::parse_rfc3339)
                .unwrap_or(0)
                .div_euclid(1_000_000_000);
            items.push(json!({
                "Comment": h.get("comment").and_then(Value::as_str).unwrap_or(""),
                "Created": created,
                "CreatedBy": h.get("created_by").and_then(Value::as_str).unwrap_or(""),
                "Id": "<missing>",
                "Size": size,
                "Tags": Value::Null,
            }));
        }
        items.reverse();
        // Fill in IDs and tags walking up the local parent chain.
        let mut id = img.id.clone();
        for item in items.iter_mut() {
            let (tags, _) = repo_lists(&rows::refs_of(tx, &id)?);
            item["Id"] = json!(id);
            item["Tags"] = if tags.is_empty() {
                Value::Null
            } else {
                json!(tags)
            };
            match rows::get_image(tx, &id)?
                .map(|i| i.parent)
                .filter(|p| !p.is_empty())
            {
                Some(p) if rows::get_image(tx, &p)?.is_some() => id = p,
                _ => break,
            }
        }
        Ok(items)
    })
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub fn tag(engine: &Engine, name: &str, repo: &str, tag: &str) -> Result<()> {
    let target = repo_tag_reference(repo, tag)?;
    if target.familiar_name() == "sha256" {
        return Err(EngineError::invalid(
            "refusing to create an ambiguous tag using digest algorithm as name",
        ));
    }
    let mut store = engine.store()?;
    store.write(|tx| {
        let img = resolve(tx, name)?;
        let now = now_nanos();
        rows::set_ref(tx, &target.full(), &img.id, false, now)?;
        rows::set_last_tag(tx, &img.id, now)?;
        events::image_event(tx, "tag", &img.id, &target.familiar())?;
        Ok(())
    })
}

/// moby's `httputils.RepoTagReference`: a repository and an optional tag, never a digest.
pub fn repo_tag_reference(repo: &str, tag: &str) -> Result<Reference> {
    if repo.is_empty() {
        return Err(EngineError::invalid(
            "repository name must have at least one component",
        ));
    }
    let r = reference::parse_normalized(repo)?;
    if r.digest().is_some() {
        return Err(EngineError::invalid("cannot import digest reference"));
    }
    if !tag.is_empty() {
        return Ok(r.with_tag(tag)?);
    }
    Ok(r.with_default_tag())
}

/// The conflicts that block deleting an image (moby `checkImageDeleteConflict`).
fn delete_conflict(tx: &Transaction, id: &str, soft: bool) -> Result<Option<EngineError>> {
    if !rows::child_images(tx, id)?.is_empty() {
        return Ok(Some(EngineError::conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
            short_id(id)
        ))));
    }
    let users = crate::store::containers::using_image(tx, id)?;
    let is_running = |c: &&crate::store::containers::ContainerRow| {
        super::containers::state::State::parse(&c.state).is_running()
    };
    if let Some(c) = users.iter().find(is_running) {
        return Ok(Some(EngineError::conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
            short_id(id),
            short_id(&c.id)
        ))));
    }
    if soft && !rows::refs_of(tx, id)?.is_empty() {
        return Ok(Some(EngineError::conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            short_id(id)
        ))));
    }
    if soft && let Some(c) = users.first() {
        return Ok(Some(EngineError::conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
            short_id(id),
            short_id(&c.id)
        ))));
    }
    Ok(None)
}

/// moby's `isSingleReference`: at most one tag, and every reference in one repository.
fn is_single_reference(refs: &[RefRow]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut tag_seen = false;
    let mut repos = HashSet::new();
    for r in refs {
        let repo = reference::parse_normalized(&r.name)
            .map(|p| p.name())
            .unwrap_or_else(|_| r.name.clone());
        repos.insert(repo);
        if !r.is_digest {
            if tag_seen {
                return false;
            }
            tag_seen = true;
        }
    }
    tag_seen && repos.len() == 1
}

/// `DELETE /images/{name}`: untag, or delete, as moby's `ImageDelete` decides.
pub fn remove(engine: &Engine, name: &str, force: bool, prune: bool) -> Result<Vec<Value>> {
    let paths = engine.paths().clone();
    let trash = engine.scratch("trash")?;
    let mut store = engine.store()?;
    store.write(|tx| {
        let img = resolve(tx, name)?;
        let mut records = Vec::new();
        let refs = rows::refs_of(tx, &img.id)?;
        let mut removed_repo_ref = false;
        if !is_id_prefix(&img.id, name) {
            let r = reference::parse_normalized(name)?.with_default_tag();
            // The last name of an image a container uses: removing it would leave the image
            // dangling, so Docker wants force.
            if !force
                && refs.len() == 1
                && let Some(c) = crate::store::containers::using_image(tx, &img.id)?.first()
            {
                return Err(EngineError::conflict(format!(
                    "conflict: unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                    r.full(),
                    short_id(&c.id),
                    short_id(&img.id)
                )));
            }
            rows::delete_ref(tx, &r.full())?;
            records.push(json!({"Untagged": r.familiar()}));
            events::image_event(tx, "untag", &img.id, &img.id)?;
            let remaining = rows::refs_of(tx, &img.id)?;
            // Digest references of the same repository go with its last tag.
            let same_repo_tags = remaining
                .iter()
                .any(|x| !x.is_digest && same_repo(&x.name, &r));
            if !same_repo_tags {
                for d in remaining
                    .iter()
                    .filter(|x| x.is_digest && same_repo(&x.name, &r))
                {
                    rows::delete_ref(tx, &d.name)?;
                    records.push(json!({"Untagged": familiar(&d.name)}));
                }
            }
            if !rows::refs_of(tx, &img.id)?.is_empty() {
                return Ok(records);
            }
            removed_repo_ref = true;
        } else if is_single_reference(&refs) {
            if let Some(c) = delete_conflict(tx, &img.id, false)? {
                return Err(c);
            }
            for r in &refs {
                rows::delete_ref(tx, &r.name)?;
                records.push(json!({"Untagged": familiar(&r.name)}));
                events::image_event(tx, "untag", &img.id, &img.id)?;
            }
        }
        let _ = removed_repo_ref;
        delete_helper(tx, &paths, &trash.dir, &img.id, force, prune, &mut records)?;
        Ok(records)
    })
}

fn same_repo(full: &str, r: &Reference) -> bool {
    reference::parse_normalized(full)
        .map(|p| p.name() == r.name())
        .unwrap_or(false)
}

fn delete_helper(
    tx: &Transaction,
    paths: &Paths,
    trash: &std::path::Path,
    id: &str,
    force: bool,
    prune: bool,
    records: &mut Vec<Value>,
) -> Result<()> {
    if let Some(c) = delete_conflict(tx, id, !force)? {
        return Err(c);
    }
    let parent = rows::get_image(tx, id)?
        .map(|i| i.parent)
        .unwrap_or_default();
    for r in rows::refs_of(tx, id)? {
        rows::delete_ref(tx, &r.name)?;
        records.push(json!({"Untagged": familiar(&r.name)}));
        events::image_event(tx, "untag", id, id)?;
    }
    rows::delete_image(tx, id)?;
    events::image_event(tx, "delete", id, id)?;
    records.push(json!({"Deleted": id}));
    for l in layers::remove_unused(tx, paths, trash)? {
        records.push(json!({"Deleted": l.chain_id}));
    }
    if prune && !parent.is_empty() && rows::get_image(tx, &parent)?.is_some() {
        // Parents go quietly: stop at the first conflict.
        if rows::refs_of(tx, &parent)?.is_empty() && delete_conflict(tx, &parent, true)?.is_none() {
            delete_helper(tx, paths, trash, &parent, false, true, records)?;
        }
    }
    Ok(())
}

/// The `until` filter: a timestamp or a duration before now.
pub fn until_filter(filters: &Filters) -> Result<Option<i64>> {
    match filters.values("until").first() {
        Some(v) => parse_query_time(v, now_nanos())
            .map(Some)
            .ok_or_else(|| EngineError::invalid(format!("invalid filter 'until={v}'"))),
        None => Ok(None),
    }
}

/// The `label` and `label!` filters of the prune endpoints: every `label` must match and no
/// `label!` may.
pub fn prune_labels_match(filters: &Filters, labels: &BTreeMap<String, String>) -> bool {
    if filters.contains("label") && !filters.match_kv("label", labels) {
        return false;
    }
    !filters.values("label!").iter().any(|f| {
        let (k, v) = f.split_once('=').unwrap_or((f, ""));
        labels.get(k).is_some_and(|x| v.is_empty() || x == v)
    })
}

/// `POST /images/prune`.
pub fn prune(engine: &Engine, filters: &Filters) -> Result<Value> {
    filters
        .validate(&["dangling", "label", "label!", "until"])
        .map_err(EngineError::invalid_cause)?;
    let dangling_only = filters
        .bool_or_default("dangling", true)
        .map_err(EngineError::invalid_cause)?;
    let until = until_filter(filters)?;
    let paths = engine.paths().clone();
    let trash = engine.scratch("trash")?;
    let mut store = engine.store()?;
    let (deleted, reclaimed) = store.write(|tx| {
        let images = rows::list_images(tx)?;
        let sizes: BTreeMap<String, i64> = images.iter().map(|i| (i.id.clone(), 0)).collect();
        let _ = sizes;
        let mut layer_sizes = HashMap::new();
        let mut deleted: Vec<Value> = Vec::new();
        for img in &images {
            for l in rows::image_layers(tx, &img.id)? {
                layer_sizes.insert(l.chain_id.clone(), l.size);
            }
        }
        for img in &images {
            if rows::get_image(tx, &img.id)?.is_none() {
                continue;
            }
            let refs = rows::refs_of(tx, &img.id)?;
            let children = rows::child_images(tx, &img.id)?;
            if !children.is_empty() {
                continue;
            }
            if until.is_some_and(|u| img.created > u) {
                continue;
            }
            let labels = parse_config(img)?.labels();
            if !prune_labels_match(filters, &labels) {
                continue;
            }
            let has_tag = refs.iter().any(|r| !r.is_digest);
            if dangling_only && has_tag {
                continue;
            }
            let mut records = Vec::new();
            match delete_helper(tx, &paths, &trash.dir, &img.id, true, true, &mut records) {
                Ok(()) => deleted.extend(records),
                Err(e) if e.kind == super::ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        let reclaimed: i64 = deleted
            .iter()
            .filter_map(|d| d.get("Deleted").and_then(Value::as_str))
            .filter_map(|id| layer_sizes.get(id))
            .sum();
        Ok((deleted, reclaimed))
    })?;
    Ok(json!({
        "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) },
        "SpaceReclaimed": reclaimed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, d: bool) -> RefRow {
        RefRow {
            name: name.into(),
            image_id: "x".into(),
            is_digest: d,
        }
    }

    #[test]
    fn single_reference_rules() {
        assert!(!is_single_reference(&[]));
        assert!(is_single_reference(&[r("docker.io/library/a:1", false)]));
        assert!(!is_single_reference(&[
            r("docker.io/library/a:1", false),
            r("docker.io/library/a:2", false)
        ]));
        assert!(is_single_reference(&[
            r("docker.io/library/a:1", false),
            r(
                &format!("docker.io/library/a@sha256:{}", "0".repeat(64)),
                true
            )
        ]));
    }

    #[test]
    fn id_prefixes() {
        assert!(is_id_prefix("sha256:abcdef", "abc"));
        assert!(is_id_prefix("sha256:abcdef", "sha256:ab"));
        assert!(!is_id_prefix("sha256:abcdef", "busybox"));
    }
}
