//! Rows for pods and their members.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::Result;

#[derive(Debug, Clone)]
pub struct PodRow {
    pub id: String,
    pub name: String,
    pub created: i64,
    /// The pod's settings as JSON (`engine::pods::PodConfig`).
    pub config_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub container_id: String,
    pub infra: bool,
}

fn row(r: &Row) -> rusqlite::Result<PodRow> {
    Ok(PodRow {
        id: r.get(0)?,
        name: r.get(1)?,
        created: r.get(2)?,
        config_json: r.get(3)?,
    })
}

const COLS: &str = "id, name, created, config";

pub fn get(tx: &Transaction, id: &str) -> Result<Option<PodRow>> {
    Ok(tx
        .query_row(&format!("SELECT {COLS} FROM pods WHERE id = ?1"), [id], row)
        .optional()?)
}

pub fn by_name(tx: &Transaction, name: &str) -> Result<Option<PodRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLS} FROM pods WHERE name = ?1"),
            [name],
            row,
        )
        .optional()?)
}

/// IDs starting with `prefix` (lower-case hex, checked by the caller).
pub fn ids_with_prefix(tx: &Transaction, prefix: &str) -> Result<Vec<String>> {
    let hi = format!("{prefix}g");
    let mut stmt = tx.prepare_cached("SELECT id FROM pods WHERE id >= ?1 AND id < ?2")?;
    let rows = stmt.query_map([prefix, hi.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every pod, newest first.
pub fn list(tx: &Transaction) -> Result<Vec<PodRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM pods ORDER BY created DESC, id"
    ))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Insert; a taken name fails with the UNIQUE constraint.
pub fn insert(tx: &Transaction, p: &PodRow) -> Result<()> {
    tx.execute(
        &format!("INSERT INTO pods ({COLS}) VALUES (?1, ?2, ?3, ?4)"),
        params![p.id, p.name, p.created, p.config_json],
    )?;
    Ok(())
}

pub fn delete(tx: &Transaction, id: &str) -> Result<()> {
    tx.execute("DELETE FROM pod_members WHERE pod_id = ?1", [id])?;
    tx.execute("DELETE FROM pods WHERE id = ?1", [id])?;
    Ok(())
}

pub fn add_member(tx: &Transaction, pod_id: &str, container_id: &str, infra: bool) -> Result<()> {
    tx.execute(
        "INSERT INTO pod_members (container_id, pod_id, infra) VALUES (?1, ?2, ?3)",
        params![container_id, pod_id, infra],
    )?;
    Ok(())
}

/// The pod's members, the infra container first, then oldest first.
pub fn members(tx: &Transaction, pod_id: &str) -> Result<Vec<Member>> {
    let mut stmt = tx.prepare_cached(
        "SELECT m.container_id, m.infra FROM pod_members m JOIN containers c ON c.id = m.container_id
         WHERE m.pod_id = ?1 ORDER BY m.infra DESC, c.created, c.id",
    )?;
    let rows = stmt.query_map([pod_id], |r| {
        Ok(Member {
            container_id: r.get(0)?,
            infra: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The pod a container belongs to, and whether it is that pod's infra container.
pub fn pod_of(tx: &Transaction, container_id: &str) -> Result<Option<(String, bool)>> {
    Ok(tx
        .query_row(
            "SELECT pod_id, infra FROM pod_members WHERE container_id = ?1",
            [container_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}
