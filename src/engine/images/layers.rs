//! The layer store on disk: layers are extracted once into scratch space, then renamed into
//! `layers/<chain hex>/` inside the write transaction that records them, so a layer row and
//! its folder appear together; a crash leaves only scratch folders behind.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rusqlite::Transaction;

use crate::config::Paths;
use crate::image::layer;
use crate::store::images::{self as rows, LayerRow};
use crate::util::digest_hex;

use crate::engine::{Engine, Result, Scratch};

/// A layer extracted into scratch space, not yet in the store.
pub struct StagedLayer {
    pub dir: PathBuf,
    pub diff_id: String,
    pub size: u64,
    pub tar_size: u64,
}

/// Counts the bytes that pass, to know the tar's size for `docker save`.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

impl Engine {
    /// Extract one layer tar (compressed or not) into a new folder of `scratch`.
    pub fn stage_layer(
        &self,
        scratch: &Scratch,
        name: &str,
        reader: impl Read,
    ) -> Result<StagedLayer> {
        let dir = scratch.dir.join(name);
        let diff = dir.join("diff");
        std::fs::create_dir_all(&diff)?;
        let mut counting = Counting {
            inner: layer::decompressed(reader)?,
            count: 0,
        };
        let extracted = layer::extract(&mut counting, &diff, &dir.join("tar-split"))?;
        Ok(StagedLayer {
            dir,
            diff_id: extracted.diff_id,
            size: extracted.size,
            tar_size: counting.count,
        })
    }
}

/// Is the layer present: a row and its folder? (A folder can be missing after a crash during removal.)
pub fn present(tx: &Transaction, paths: &Paths, chain_id: &str) -> Result<Option<LayerRow>> {
    let row = rows::get_layer(tx, chain_id)?;
    Ok(row.filter(|_| paths.layer_dir(digest_hex(chain_id)).join("diff").is_dir()))
}

/// Put a staged layer into the store under `chain_id` (inside the caller's write transaction).
/// If the layer is already there, the staged copy is left to be discarded with the scratch folder.
pub fn commit(
    tx: &Transaction,
    paths: &Paths,
    staged: &StagedLayer,
    chain_id: &str,
    parent: Option<&str>,
) -> Result<LayerRow> {
    let existing = rows::get_layer(tx, chain_id)?;
    if let Some(row) = existing
        .clone()
        .filter(|_| paths.layer_dir(digest_hex(chain_id)).join("diff").is_dir())
    {
        return Ok(row);
    }
    let hex = digest_hex(chain_id);
    let final_dir = paths.layer_dir(hex);
    std::fs::create_dir_all(paths.layers())?;
    // A folder without a row is garbage from an interrupted run.
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(&staged.dir, &final_dir)?;
    // The row outlived its folder (a removal was interrupted): the folder is back, keep the row.
    if let Some(row) = existing {
        make_link(paths, &row.link, hex)?;
        return Ok(row);
    }
    let link = hex[..24.min(hex.len())].to_string();
    make_link(paths, &link, hex)?;
    let row = LayerRow {
        chain_id: chain_id.to_string(),
        diff_id: staged.diff_id.clone(),
        parent: parent.map(String::from),
        size: staged.size as i64,
        tar_size: staged.tar_size as i64,
        link,
    };
    rows::insert_layer(tx, &row)?;
    Ok(row)
}

fn make_link(paths: &Paths, link: &str, hex: &str) -> Result<()> {
    let links = paths.links();
    std::fs::create_dir_all(&links)?;
    let path = links.join(link);
    let target = Path::new("..").join("layers").join(hex).join("diff");
    match std::os::unix::fs::symlink(&target, &path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Remove every layer no image uses (inside the caller's write transaction). The folders are
/// renamed into `trash` now, so that a concurrent load cannot race with their removal; the
/// caller deletes `trash` after commit. Returns the removed chain IDs.
pub fn remove_unused(tx: &Transaction, paths: &Paths, trash: &Path) -> Result<Vec<LayerRow>> {
    let mut removed = Vec::new();
    loop {
        let leaves = rows::unused_leaf_layers(tx)?;
        if leaves.is_empty() {
            break;
        }
        for l in leaves {
            let hex = digest_hex(&l.chain_id);
            let dir = paths.layer_dir(hex);
            if dir.exists() {
                std::fs::create_dir_all(trash)?;
                std::fs::rename(&dir, trash.join(hex))?;
            }
            let _ = std::fs::remove_file(paths.links().join(&l.link));
            rows::delete_layer(tx, &l.chain_id)?;
            removed.push(l);
        }
    }
    Ok(removed)
}

/// Write a stored layer's original tar to `out`.
pub fn write_tar(paths: &Paths, row: &LayerRow, out: &mut dyn io::Write) -> Result<u64> {
    let dir = paths.layer_dir(digest_hex(&row.chain_id));
    Ok(layer::assemble(
        &dir.join("diff"),
        &dir.join("tar-split"),
        out,
    )?)
}
