//! Repacking: the kept blobs of packs prune replaces are copied into new
//! packs, which are read back and verified before any index names them
//! (format.md §8, §9).

use super::plan::Plan;
use super::{interrupted, Observer, PruneReport};
use crate::error::{Error, Result};
use crate::format::id::{IdMap, IdSet};
use crate::format::kind::pack_name;
use crate::format::Id;
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use std::sync::Arc;

/// Copy the kept blobs of the packs to repack into new packs, then read the
/// new packs back and verify every blob before anything refers to them.
pub(super) fn repack(
    repo: &Arc<Repository>,
    plan: &Plan,
    candidates: &IdSet,
    lock: &Lock,
    r: &mut PruneReport,
    obs: &Observer,
) -> Result<()> {
    if plan.repack.is_empty() {
        return Ok(());
    }
    let b = repo.backend();
    // Blobs are known only where they stay: a blob whose other copies all
    // sit in candidates is written again.
    let keep: IdSet = repo
        .index()
        .packs()
        .keys()
        .filter(|p| !candidates.contains(p))
        .copied()
        .collect();
    repo.forget_missing_packs(&keep)?;
    let sink = BlobSink::new(repo.clone(), repo.config().compression.level);
    sink.guard_with(lock);
    sink.record_written();
    let mut by_pack: IdMap<Vec<(Id, crate::repo::index::BlobLocation)>> = IdMap::default();
    for (bid, loc) in &plan.chosen {
        by_pack.entry(loc.pack).or_default().push((*bid, *loc));
    }
    let total: u64 = plan.repack.iter().map(|p| p.size).sum();
    let mut done = 0;
    for p in &plan.repack {
        (obs.progress)("repacking", done, total);
        interrupted()?;
        done += p.size;
        let name = pack_name(p.t, &p.id);
        let bytes = b.get(&name)?;
        if Id::hash_of(&bytes) != p.id {
            return Err(Error::damaged(
                &name,
                "content does not match its name; prune stops before copying from it: run 'ironvault repair packs --from-repo COPY'",
            ));
        }
        let mut blobs = by_pack.remove(&p.id).unwrap_or_default();
        blobs.sort_by_key(|(_, l)| l.offset);
        for (bid, loc) in blobs {
            if !sink.claim(&bid) {
                continue;
            }
            let (s, e) = (
                loc.offset as usize,
                loc.offset as usize + loc.stored_len as usize,
            );
            let sealed = bytes
                .get(s..e)
                .ok_or_else(|| Error::damaged(&name, "blob beyond the end of the pack"))?;
            repo.open_blob(loc.blob_type, &bid, sealed, loc.raw_len, &name)?;
            sink.store_sealed(loc.blob_type, bid, sealed, loc.raw_len)?;
            r.blobs_repacked += 1;
        }
    }
    sink.finish()?;
    (obs.progress)("repacking", total, total);
    let written = sink.written_packs();
    for (i, p) in written.iter().enumerate() {
        (obs.progress)("verifying new packs", i as u64, written.len() as u64);
        let name = pack_name(p.blob_type, &p.id);
        let bytes = b.get(&name)?;
        if Id::hash_of(&bytes) != p.id || bytes.len() as u64 != p.size {
            return Err(Error::damaged(
                &name,
                "a pack prune just wrote reads back differently; nothing was deleted (check the storage)",
            ));
        }
        for e in &p.blobs {
            let sealed = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            repo.open_blob(p.blob_type, &e.id, sealed, e.raw_len, &name)?;
        }
        r.packs_written += 1;
        r.bytes_written += p.size;
    }
    Ok(())
}
