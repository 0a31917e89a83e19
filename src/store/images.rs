//! Rows for images, their layers and their references (tags and digests).

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::Result;

#[derive(Debug, Clone)]
pub struct ImageRow {
    pub id: String,
    pub config: Vec<u8>,
    pub created: i64,
    pub size: i64,
    pub parent: String,
    pub added: i64,
    pub last_tag: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
    pub size: i64,
    pub tar_size: i64,
    pub link: String,
}

#[derive(Debug, Clone)]
pub struct RefRow {
    pub name: String,
    pub image_id: String,
    pub is_digest: bool,
}

const IMAGE_COLS: &str = "id, config, created, size, parent, added, last_tag";
const LAYER_COLS: &str = "chain_id, diff_id, parent, size, tar_size, link";

fn image_row(r: &Row) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        config: r.get(1)?,
        created: r.get(2)?,
        size: r.get(3)?,
        parent: r.get(4)?,
        added: r.get(5)?,
        last_tag: r.get(6)?,
    })
}

fn layer_row(r: &Row) -> rusqlite::Result<LayerRow> {
    Ok(LayerRow {
        chain_id: r.get(0)?,
        diff_id: r.get(1)?,
        parent: r.get(2)?,
        size: r.get(3)?,
        tar_size: r.get(4)?,
        link: r.get(5)?,
    })
}

fn ref_row(r: &Row) -> rusqlite::Result<RefRow> {
    Ok(RefRow {
        name: r.get(0)?,
        image_id: r.get(1)?,
        is_digest: r.get(2)?,
    })
}

pub fn get_image(tx: &Transaction, id: &str) -> Result<Option<ImageRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {IMAGE_COLS} FROM images WHERE id = ?1"),
            [id],
            image_row,
        )
        .optional()?)
}

pub fn list_images(tx: &Transaction) -> Result<Vec<ImageRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {IMAGE_COLS} FROM images ORDER BY created DESC, id"
    ))?;
    let rows = stmt.query_map([], image_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count_images(tx: &Transaction) -> Result<i64> {
    Ok(tx.query_row("SELECT count(*) FROM images", [], |r| r.get(0))?)
}

/// IDs (`sha256:<hex>`) whose hex starts with `hex_prefix` (already validated as lower-case hex).
pub fn image_ids_with_prefix(tx: &Transaction, hex_prefix: &str) -> Result<Vec<String>> {
    let lo = format!("sha256:{hex_prefix}");
    // Every ID with the prefix sorts between the prefix and the prefix followed by 'g'.
    let hi = format!("sha256:{hex_prefix}g");
    let mut stmt = tx.prepare_cached("SELECT id FROM images WHERE id >= ?1 AND id < ?2")?;
    let rows = stmt.query_map([lo, hi], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn insert_image(tx: &Transaction, row: &ImageRow, chain_ids: &[String]) -> Result<bool> {
    let n = tx.execute(
        &format!("INSERT OR IGNORE INTO images ({IMAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            row.id,
            row.config,
            row.created,
            row.size,
            row.parent,
            row.added,
            row.last_tag
        ],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let mut stmt = tx
        .prepare_cached("INSERT INTO image_layers (image_id, idx, chain_id) VALUES (?1, ?2, ?3)")?;
    for (i, chain) in chain_ids.iter().enumerate() {
        stmt.execute(params![row.id, i as i64, chain])?;
    }
    Ok(true)
}

pub fn delete_image(tx: &Transaction, id: &str) -> Result<()> {
    tx.execute("DELETE FROM refs WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
    Ok(())
}

pub fn set_last_tag(tx: &Transaction, id: &str, nanos: i64) -> Result<()> {
    tx.execute(
        "UPDATE images SET last_tag = ?2 WHERE id = ?1",
        params![id, nanos],
    )?;
    Ok(())
}

/// Images whose parent is `id` (images built on top of it locally).
pub fn child_images(tx: &Transaction, id: &str) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached("SELECT id FROM images WHERE parent = ?1")?;
    let rows = stmt.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The layers of an image, bottom first.
pub fn image_layers(tx: &Transaction, id: &str) -> Result<Vec<LayerRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT l.chain_id, l.diff_id, l.parent, l.size, l.tar_size, l.link
         FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
         WHERE il.image_id = ?1 ORDER BY il.idx",
    )?;
    let rows = stmt.query_map([id], layer_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_layer(tx: &Transaction, chain_id: &str) -> Result<Option<LayerRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {LAYER_COLS} FROM layers WHERE chain_id = ?1"),
            [chain_id],
            layer_row,
        )
        .optional()?)
}

pub fn insert_layer(tx: &Transaction, row: &LayerRow) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO layers ({LAYER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            row.chain_id,
            row.diff_id,
            row.parent,
            row.size,
            row.tar_size,
            row.link
        ],
    )?;
    Ok(())
}

/// Layers no image uses and no other layer stands on, one generation at a time.
pub fn unused_leaf_layers(tx: &Transaction) -> Result<Vec<LayerRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {LAYER_COLS} FROM layers l
         WHERE NOT EXISTS (SELECT 1 FROM image_layers il WHERE il.chain_id = l.chain_id)
           AND NOT EXISTS (SELECT 1 FROM container_layers cl WHERE cl.chain_id = l.chain_id)
           AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent = l.chain_id)"
    ))?;
    let rows = stmt.query_map([], layer_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_layer(tx: &Transaction, chain_id: &str) -> Result<()> {
    tx.execute("DELETE FROM layers WHERE chain_id = ?1", [chain_id])?;
    Ok(())
}

pub fn total_layer_size(tx: &Transaction) -> Result<i64> {
    Ok(
        tx.query_row("SELECT coalesce(sum(size), 0) FROM layers", [], |r| {
            r.get(0)
        })?,
    )
}

pub fn refs_of(tx: &Transaction, image_id: &str) -> Result<Vec<RefRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT name, image_id, is_digest FROM refs WHERE image_id = ?1 ORDER BY added, name",
    )?;
    let rows = stmt.query_map([image_id], ref_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn all_refs(tx: &Transaction) -> Result<Vec<RefRow>> {
    let mut stmt =
        tx.prepare_cached("SELECT name, image_id, is_digest FROM refs ORDER BY added, name")?;
    let rows = stmt.query_map([], ref_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn ref_target(tx: &Transaction, name: &str) -> Result<Option<String>> {
    Ok(tx
        .query_row("SELECT image_id FROM refs WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Point `name` at `image_id`; returns the image it pointed at before, if another.
pub fn set_ref(
    tx: &Transaction,
    name: &str,
    image_id: &str,
    is_digest: bool,
    now: i64,
) -> Result<Option<String>> {
    let previous = ref_target(tx, name)?;
    if previous.as_deref() == Some(image_id) {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO refs (name, image_id, is_digest, added) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, added = excluded.added",
        params![name, image_id, is_digest, now],
    )?;
    Ok(previous)
}

pub fn delete_ref(tx: &Transaction, name: &str) -> Result<bool> {
    Ok(tx.execute("DELETE FROM refs WHERE name = ?1", [name])? > 0)
}
