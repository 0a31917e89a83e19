//! Distribution metadata: layer diff ID ↔ registry blob, per registry repository, and the
//! `repo@digest` references (`RepoDigests`) of pulled and pushed images.

use rusqlite::{Row, Transaction, params};

use super::Result;
use super::images::set_ref;

/// A layer known to exist as blob `digest` in `registry`/`repository`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    /// `sha256:` of the uncompressed layer tar.
    pub diff_id: String,
    /// `sha256:` of the blob (compressed or not) in the registry.
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    /// The host as references name it: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// The repository path: `library/busybox`.
    pub repository: String,
}

const COLS: &str = "diff_id, digest, media_type, size, registry, repository";

fn blob_row(r: &Row) -> rusqlite::Result<BlobRow> {
    Ok(BlobRow {
        diff_id: r.get(0)?,
        digest: r.get(1)?,
        media_type: r.get(2)?,
        size: r.get(3)?,
        registry: r.get(4)?,
        repository: r.get(5)?,
    })
}

/// Remember (or refresh) that `row.diff_id` is blob `row.digest` in that repository.
pub fn record_blob(tx: &Transaction, row: &BlobRow, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO layer_blobs (diff_id, digest, media_type, size, registry, repository, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(diff_id, digest, registry, repository)
         DO UPDATE SET media_type = excluded.media_type, size = excluded.size, added = excluded.added",
        params![
            row.diff_id,
            row.digest,
            row.media_type,
            row.size,
            row.registry,
            row.repository,
            now
        ],
    )?;
    Ok(())
}

/// Every blob known for a layer, newest first (any registry, any repository).
pub fn blobs_for_diff_id(tx: &Transaction, diff_id: &str) -> Result<Vec<BlobRow>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM layer_blobs WHERE diff_id = ?1 ORDER BY added DESC, rowid DESC"
    ))?;
    let rows = stmt.query_map([diff_id], blob_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forget that a blob exists in a repository (the registry said it does not).
pub fn forget_blob(tx: &Transaction, digest: &str, registry: &str, repository: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM layer_blobs WHERE digest = ?1 AND registry = ?2 AND repository = ?3",
        params![digest, registry, repository],
    )?;
    Ok(())
}

/// Point `name@digest` at `image_id` (a `RepoDigests` entry). `name` is the fully qualified
/// repository without tag, e.g. `127.0.0.1:5000/x` or `docker.io/library/busybox`.
pub fn add_repo_digest(
    tx: &Transaction,
    name: &str,
    digest: &str,
    image_id: &str,
    now: i64,
) -> Result<()> {
    set_ref(tx, &format!("{name}@{digest}"), image_id, true, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn records_and_finds_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("berth.db")).unwrap();
        let row = BlobRow {
            diff_id: "sha256:d1".into(),
            digest: "sha256:b1".into(),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 10,
            registry: "127.0.0.1:5000".into(),
            repository: "x".into(),
        };
        store
            .write(|tx| {
                record_blob(tx, &row, 1)?;
                record_blob(
                    tx,
                    &BlobRow {
                        repository: "y".into(),
                        ..row.clone()
                    },
                    2,
                )?;
                record_blob(tx, &row, 3)
            })
            .unwrap();
        store
            .read(|tx| {
                let found = blobs_for_diff_id(tx, "sha256:d1")?;
                assert_eq!(found.len(), 2);
                assert_eq!(found[0].repository, "x");
                assert!(
                    found
                        .iter()
                        .all(|b| b.digest == "sha256:b1" && b.size == 10)
                );
                assert!(blobs_for_diff_id(tx, "sha256:zz")?.is_empty());
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        store
            .write(|tx| forget_blob(tx, "sha256:b1", "127.0.0.1:5000", "y"))
            .unwrap();
        store
            .read(|tx| {
                assert_eq!(blobs_for_diff_id(tx, "sha256:d1")?.len(), 1);
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
    }
}
