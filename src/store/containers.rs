//! Rows for containers: identity, configuration and last known state.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::Result;

#[derive(Debug, Clone)]
pub struct ContainerRow {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: i64,
    /// `Config` as JSON (see `crate::model`).
    pub config_json: String,
    /// `HostConfig` as JSON.
    pub host_config_json: String,
    pub state: String,
}

const COLS: &str = "id, name, image, image_id, created, config, host_config, state";

fn row(r: &Row) -> rusqlite::Result<ContainerRow> {
    Ok(ContainerRow {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        created: r.get(4)?,
        config_json: r.get(5)?,
        host_config_json: r.get(6)?,
        state: r.get(7)?,
    })
}

pub fn get(tx: &Transaction, id: &str) -> Result<Option<ContainerRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLS} FROM containers WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?)
}

pub fn by_name(tx: &Transaction, name: &str) -> Result<Option<ContainerRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLS} FROM containers WHERE name = ?1"),
            [name],
            row,
        )
        .optional()?)
}

/// IDs starting with `prefix` (lower-case hex, checked by the caller).
pub fn ids_with_prefix(tx: &Transaction, prefix: &str) -> Result<Vec<String>> {
    let hi = format!("{prefix}g");
    let mut stmt = tx.prepare_cached("SELECT id FROM containers WHERE id >= ?1 AND id < ?2")?;
    let rows = stmt.query_map([prefix, hi.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every container, newest first (Docker's list order).
pub fn list(tx: &Transaction) -> Result<Vec<ContainerRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM containers ORDER BY created DESC, id"
    ))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Insert; a name already taken fails with the UNIQUE constraint, which the caller turns into
/// Docker's conflict.
pub fn insert(tx: &Transaction, c: &ContainerRow, chain_ids: &[String]) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO containers ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            c.id,
            c.name,
            c.image,
            c.image_id,
            c.created,
            c.config_json,
            c.host_config_json,
            c.state
        ],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO container_layers (container_id, idx, chain_id) VALUES (?1, ?2, ?3)",
    )?;
    for (i, chain) in chain_ids.iter().enumerate() {
        stmt.execute(params![c.id, i as i64, chain])?;
    }
    Ok(())
}

pub fn set_state(tx: &Transaction, id: &str, state: &str) -> Result<()> {
    tx.execute(
        "UPDATE containers SET state = ?2 WHERE id = ?1",
        params![id, state],
    )?;
    Ok(())
}

pub fn set_name(tx: &Transaction, id: &str, name: &str) -> Result<()> {
    tx.execute(
        "UPDATE containers SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    Ok(())
}

pub fn set_host_config(tx: &Transaction, id: &str, host_config: &str) -> Result<()> {
    tx.execute(
        "UPDATE containers SET host_config = ?2 WHERE id = ?1",
        params![id, host_config],
    )?;
    Ok(())
}

pub fn delete(tx: &Transaction, id: &str) -> Result<()> {
    tx.execute("DELETE FROM containers WHERE id = ?1", [id])?;
    Ok(())
}

/// Containers made from an image.
pub fn using_image(tx: &Transaction, image_id: &str) -> Result<Vec<ContainerRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM containers WHERE image_id = ?1"
    ))?;
    let rows = stmt.query_map([image_id], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
