//! The state store: one SQLite database (WAL) shared by every berth process.
//!
//! Each `berth serve` opens its own connection per operation; SQLite's locking is the unit of
//! consistency between processes. Writes run in `BEGIN IMMEDIATE` so that two processes never
//! both read and then fail to upgrade to a write lock; uniqueness is a constraint, not a check.

pub(crate) mod containers;
pub(crate) mod distribution;
pub(crate) mod events;
pub(crate) mod images;
pub(crate) mod meta;
pub(crate) mod networks;
pub(crate) mod pods;
pub mod private;
mod schema;
pub(crate) mod volumes;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state folder {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("database schema version {found} is newer than this berth understands ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long a writer waits for another process's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open (and create or migrate) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        // Switching a new database to WAL, and WAL recovery, can answer SQLITE_BUSY without
        // consulting the busy handler when several processes open it at once: retry those.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match store.prepare() {
                Err(StoreError::Sqlite(e))
                    if is_busy(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => break other?,
            }
        }
        Ok(store)
    }

    fn prepare(&mut self) -> Result<()> {
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            self.conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        schema::migrate(&mut self.conn)
    }

    /// Run `f` in a write transaction (`BEGIN IMMEDIATE`); commit if it returns Ok.
    pub fn write<T, E>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Run `f` in a read transaction, so that it sees one consistent snapshot.
    pub fn read<T, E>(&mut self, f: impl FnOnce(&Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A stable ID for this installation (`/info` `ID`), made on first use.
pub fn engine_id(tx: &Transaction) -> Result<String> {
    use rusqlite::OptionalExtension;
    let found: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'engine_id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    let id = uuid_like();
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('engine_id', ?1)",
        [&id],
    )?;
    Ok(
        tx.query_row("SELECT value FROM meta WHERE key = 'engine_id'", [], |r| {
            r.get(0)
        })?,
    )
}

fn uuid_like() -> String {
    let h = crate::util::random_id();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_twice_and_keeps_engine_id() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("berth.db");
        let mut a = Store::open(&db).unwrap();
        let id1 = a.write(engine_id).unwrap();
        let mut b = Store::open(&db).unwrap();
        let id2 = b.read(engine_id).unwrap();
        assert_eq!(id1, id2);
        assert_eq!(id1.len(), 36);
    }
}
