//! Erasure requests (format.md §9.2): written by `rewrite --exclude`, read
//! by prune, which repacks every pack holding one of their blobs that no
//! snapshot needs, and removes a request once nothing more can be erased.

use super::PruneReport;
use crate::backend::is_not_found;
use crate::crypto::{ad, open, seal};
use crate::error::Result;
use crate::format::id::IdSet;
use crate::format::{from_cbor, to_cbor, Id};
use crate::repo::Repository;
use crate::rewrite::SharedBlob;
use serde::{Deserialize, Serialize};

/// An erasure request (`erasures/<random id>`): blobs that must leave the
/// repository at the next prune, even from packs that are mostly in use.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ErasureRequest {
    pub created: String,
    pub hostname: String,
    /// The snapshots that were rewritten (the originals, now removed).
    pub snapshots: Vec<Id>,
    /// Blobs (data and tree) of the removed files and directories, and the
    /// trees that named them.
    pub blobs: Vec<Id>,
    /// The patterns of the rewrite (for the record; optional for readers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
}

impl ErasureRequest {
    /// Seal and store; returns the object name.
    pub fn save(&self, repo: &Repository) -> Result<String> {
        let name = format!("erasures/{}", Id::random().to_hex());
        repo.backend().put(
            &name,
            &seal(repo.master_key(), ad::ERASURE, &to_cbor(self)?),
        )?;
        Ok(name)
    }
}

/// Every erasure request, with its object name.
pub fn erasure_requests(repo: &Repository) -> Result<Vec<(String, ErasureRequest)>> {
    let b = repo.backend();
    let mut out = Vec::new();
    for o in b.list("erasures/")? {
        let bytes = match b.get(&o.name) {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let r: ErasureRequest = from_cbor(
            &open(repo.master_key(), ad::ERASURE, &bytes, &o.name)?,
            &o.name,
        )?;
        out.push((o.name, r));
    }
    Ok(out)
}

/// For each blob, one file of the snapshots `snaps` that uses it.
pub(super) fn users(repo: &Repository, snaps: &[Id], blobs: &IdSet) -> Result<Vec<SharedBlob>> {
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let walks: Vec<(Id, bool)> = snaps.iter().map(|s| (*s, false)).collect();
    crate::rewrite::find_users(repo, &walks, None, blobs)
}

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
    r.not_erased = users(repo, &repo.snapshot_ids()?, &in_use)?;
    Ok(())
}
