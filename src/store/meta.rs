//! The `meta` table: small installation-wide values by key (the boot id of the last
//! reconciliation, containers left to restart after a reboot).

use rusqlite::{OptionalExtension, Transaction};

use super::Result;

pub fn get(tx: &Transaction, key: &str) -> Result<Option<String>> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub fn set(tx: &Transaction, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

pub fn delete(tx: &Transaction, key: &str) -> Result<()> {
    tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = super::super::Store::open(&dir.path().join("berth.db")).unwrap();
        store
            .write(|tx| {
                assert_eq!(get(tx, "k")?, None);
                set(tx, "k", "a")?;
                set(tx, "k", "b")?;
                assert_eq!(get(tx, "k")?.as_deref(), Some("b"));
                delete(tx, "k")?;
                assert_eq!(get(tx, "k")?, None);
                Ok::<_, super::super::StoreError>(())
            })
            .unwrap();
    }
}
