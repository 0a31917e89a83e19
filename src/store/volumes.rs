//! Rows for local volumes and the containers that mount them.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRow {
    pub name: String,
    pub driver: String,
    pub created: i64,
    /// JSON object or `null`, as the client gave them.
    pub labels: String,
    pub options: String,
    pub anonymous: bool,
}

/// One volume mounted into one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRow {
    pub container_id: String,
    pub destination: String,
    pub volume: String,
    pub read_only: bool,
    pub copy_up: bool,
}

const COLS: &str = "name, driver, created, labels, options, anonymous";

fn row(r: &Row) -> rusqlite::Result<VolumeRow> {
    Ok(VolumeRow {
        name: r.get(0)?,
        driver: r.get(1)?,
        created: r.get(2)?,
        labels: r.get(3)?,
        options: r.get(4)?,
        anonymous: r.get(5)?,
    })
}

fn mount_row(r: &Row) -> rusqlite::Result<MountRow> {
    Ok(MountRow {
        container_id: r.get(0)?,
        destination: r.get(1)?,
        volume: r.get(2)?,
        read_only: r.get(3)?,
        copy_up: r.get(4)?,
    })
}

pub fn get(tx: &Transaction, name: &str) -> Result<Option<VolumeRow>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLS} FROM volumes WHERE name = ?1"),
            [name],
            row,
        )
        .optional()?)
}

/// Every volume, by name.
pub fn list(tx: &Transaction) -> Result<Vec<VolumeRow>> {
    let mut stmt = tx.prepare_cached(&format!("SELECT {COLS} FROM volumes ORDER BY name"))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Insert unless a volume of that name exists; true if inserted.
pub fn insert(tx: &Transaction, v: &VolumeRow) -> Result<bool> {
    let n = tx.execute(
        &format!("INSERT OR IGNORE INTO volumes ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            v.name,
            v.driver,
            v.created,
            v.labels,
            v.options,
            v.anonymous
        ],
    )?;
    Ok(n == 1)
}

pub fn delete(tx: &Transaction, name: &str) -> Result<()> {
    tx.execute("DELETE FROM volumes WHERE name = ?1", [name])?;
    Ok(())
}

/// The containers that mount `name`.
pub fn users(tx: &Transaction, name: &str) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT container_id FROM container_volumes WHERE volume = ?1 ORDER BY container_id",
    )?;
    let rows = stmt.query_map([name], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn add_mount(tx: &Transaction, m: &MountRow) -> Result<()> {
    tx.execute(
        "INSERT INTO container_volumes (container_id, destination, volume, read_only, copy_up)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            m.container_id,
            m.destination,
            m.volume,
            m.read_only,
            m.copy_up
        ],
    )?;
    Ok(())
}

/// The volumes a container mounts, by destination.
pub fn mounts_of(tx: &Transaction, container_id: &str) -> Result<Vec<MountRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT container_id, destination, volume, read_only, copy_up FROM container_volumes
         WHERE container_id = ?1 ORDER BY destination",
    )?;
    let rows = stmt.query_map([container_id], mount_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A host folder bound into a container, taken from another with `--volumes-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRow {
    pub container_id: String,
    pub destination: String,
    pub source: String,
    pub read_only: bool,
}

pub fn add_bind(tx: &Transaction, b: &BindRow) -> Result<()> {
    tx.execute(
        "INSERT INTO container_binds (container_id, destination, source, read_only)
         VALUES (?1, ?2, ?3, ?4)",
        params![b.container_id, b.destination, b.source, b.read_only],
    )?;
    Ok(())
}

pub fn binds_of(tx: &Transaction, container_id: &str) -> Result<Vec<BindRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT container_id, destination, source, read_only FROM container_binds
         WHERE container_id = ?1 ORDER BY destination",
    )?;
    let rows = stmt.query_map([container_id], |r| {
        Ok(BindRow {
            container_id: r.get(0)?,
            destination: r.get(1)?,
            source: r.get(2)?,
            read_only: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every (volume, container) reference, for list filters and `system df`.
pub fn all_mounts(tx: &Transaction) -> Result<Vec<MountRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT container_id, destination, volume, read_only, copy_up FROM container_volumes",
    )?;
    let rows = stmt.query_map([], mount_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn volumes_and_their_users() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("berth.db")).unwrap();
        let v = VolumeRow {
            name: "data".into(),
            driver: "local".into(),
            created: 1,
            labels: "null".into(),
            options: "null".into(),
            anonymous: false,
        };
        store
            .write(|tx| {
                assert!(insert(tx, &v)?);
                assert!(!insert(
                    tx,
                    &VolumeRow {
                        created: 2,
                        ..v.clone()
                    }
                )?);
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        store
            .read(|tx| {
                assert_eq!(get(tx, "data")?.unwrap().created, 1);
                assert!(get(tx, "nope")?.is_none());
                assert!(users(tx, "data")?.is_empty());
                assert_eq!(list(tx)?.len(), 1);
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
    }
}
