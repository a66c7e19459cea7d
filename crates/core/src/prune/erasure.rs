//! What prune does with erasure requests (`crate::format::erasure`,
//! format.md §9.2) once its packs are deleted: count what was erased, and
//! remove each request once nothing more can be erased.

use super::PruneReport;
use crate::error::Result;
use crate::format::erasure::ErasureRequest;
use crate::format::id::IdSet;
use crate::repo::Repository;

/// After phase 2 deleted its packs: count what the requests achieved, name the
/// files that keep the rest, and remove each request whose blobs are all
/// gone from storage. A request with a blob still stored stays: a blob in
/// use is reported by every prune (and erased once no snapshot uses it any
/// more), one in a withdrawn pack is erased by the next prune.
pub(super) fn finish(
    repo: &Repository,
    requests: &[(String, ErasureRequest)],
    used_s1: &IdSet,
    used_new: &IdSet,
    r: &mut PruneReport,
) -> Result<()> {
    if requests.is_empty() {
        return Ok(());
    }
    // Read the index again: a backup that began after the deletion list may
    // have stored an erased blob anew since phase 2 read it.
    let before = repo.index();
    repo.load_index(false)?;
    let idx = repo.index();
    let mut in_use = IdSet::default();
    let mut erased = IdSet::default();
    for (name, q) in requests {
        let mut complete = true;
        for bid in &q.blobs {
            if !idx.contains(bid) {
                if before.contains(bid) {
                    erased.insert(*bid);
                }
            } else {
                complete = false;
                if used_s1.contains(bid) || used_new.contains(bid) {
                    in_use.insert(*bid);
                }
            }
        }
        if complete {
            repo.backend().delete(name)?;
            r.erasure_requests_completed.push(name.clone());
        } else {
            r.erasure_requests_pending.push(name.clone());
        }
    }
    r.erased_blobs = erased.len();
    r.not_erased = crate::usage::users(repo, &repo.snapshot_ids()?, &in_use)?;
    Ok(())
}
