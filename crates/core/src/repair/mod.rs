//! Repairs that rebuild metadata from what is stored. `rebuild_index` reads
//! every pack's header and writes one new index file that supersedes all
//! existing ones (format.md §6), so blobs a damaged or deleted index file
//! listed become reachable again. Packs are never modified.

use crate::error::{Error, Result};
use crate::format::index::IndexFile;
use crate::format::{BlobType, Id};
use crate::repo::lock::Lock;
use crate::repo::Repository;

/// What `rebuild_index` did.
#[derive(Debug, Default)]
pub struct IndexRepair {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    pub index_files_replaced: usize,
    /// Packs whose header could not be read (not indexed; `check --read-data` details them).
    pub unreadable_packs: Vec<String>,
    pub new_index: Option<Id>,
}

/// Rebuild the index from the packs' headers.
pub fn rebuild_index(repo: &Repository, progress: &dyn Fn(u64, u64)) -> Result<IndexRepair> {
    let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false)?;
    let b = repo.backend();
    let old: Vec<Id> = b
        .list("index/")?
        .iter()
        .filter_map(|o| o.name.strip_prefix("index/").and_then(Id::from_hex))
        .collect();
    let mut packs = Vec::new();
    for t in [BlobType::Data, BlobType::Tree] {
        for o in b.list(&format!("packs/{}/", t.dir()))? {
            if let Some(id) = o.name.rsplit('/').next().and_then(Id::from_hex) {
                packs.push((t, id, o.size, o.name));
            }
        }
    }
    let mut r = IndexRepair::default();
    let mut file = IndexFile {
        packs: Vec::new(),
        supersedes: old.clone(),
    };
    for (i, (t, id, size, name)) in packs.iter().enumerate() {
        progress(i as u64, packs.len() as u64);
        if crate::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        match repo.read_pack_header(*t, id, *size) {
            Ok(p) => {
                r.blobs_indexed += p.blobs.len();
                file.packs.push(p);
            }
            Err(e) => r.unreadable_packs.push(format!("{name}: {e}")),
        }
    }
    r.packs_indexed = file.packs.len();
    let bytes = file.seal(repo.master_key())?;
    let new = Id::hash_of(&bytes);
    b.put(&format!("index/{}", new.to_hex()), &bytes)?;
    // The new index is durable and supersedes the old ones: removing them is tidy, not needed.
    for o in &old {
        if *o != new {
            b.delete(&format!("index/{}", o.to_hex()))?;
            r.index_files_replaced += 1;
        }
    }
    r.new_index = Some(new);
    lock.release()?;
    Ok(r)
}
