//! Prune phase 2: once every lock older than the deletion list has ended,
//! read the snapshots made since phase 1, withdraw each candidate pack
//! holding a blob they need that has no sound copy elsewhere, and write the
//! one index file that leaves out the packs to delete (format.md §9).

use super::copies::CopyVerifier;
use super::plan::Plan;
use super::Observer;
use super::{load_unless_forgotten, plan, PruneReport};
use crate::error::{Error, Result};
use crate::format::id::{IdMap, IdSet};
use crate::format::index::IndexFile;
use crate::format::{BlobType, Id, ObjectKind};
use crate::repo::lock::Lock;
use crate::repo::Repository;
use std::sync::Arc;

/// Packs to delete: type, id, size.
pub(super) type Doomed = Vec<(BlobType, Id, u64)>;

/// Phase 2: withdraw candidates that snapshots made since phase 1 need,
/// write the index that leaves the rest out, and return the packs to delete.
pub(super) fn phase2(
    repo: &Arc<Repository>,
    plan: &Plan,
    candidates: &IdSet,
    lock: &Lock,
    verifier: &mut CopyVerifier<'_>,
    r: &mut PruneReport,
    obs: &Observer,
) -> Result<(Doomed, IdSet)> {
    // Snapshots first, then the index (see phase 1). A snapshot that
    // vanishes before it is read may have been replaced (rewrite and repair
    // save the new snapshot before they delete the old one): list again, and
    // read the index again, until every listed snapshot has been read.
    let mut walked = plan.snapshots.clone();
    let mut seen = plan.used.clone();
    let mut fresh = Vec::new();
    let mut attempt = 0;
    let (files, stored) = loop {
        attempt += 1;
        let listed = repo.snapshot_ids()?;
        let (files, errs) = repo.read_index_files()?;
        if let Some(e) = errs.first() {
            return Err(Error::Failed(format!(
                "{e}; an index file became unreadable during the prune, so nothing was deleted: run 'ironvault repair index'"
            )));
        }
        repo.load_index(false)?;
        let stored: IdMap<crate::repo::StoredPack> = repo
            .stored_packs()?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let new: Vec<Id> = listed.into_iter().filter(|s| !walked.contains(s)).collect();
        let mut vanished = false;
        for (i, sid) in new.iter().enumerate() {
            (obs.progress)("reading new snapshots", i as u64, new.len() as u64);
            match load_unless_forgotten(repo, sid)? {
                Some(s) => {
                    plan::walk(repo, &s.tree, &mut seen, &mut fresh)?;
                    walked.insert(*sid);
                }
                None => vanished = true,
            }
        }
        if !vanished {
            break (files, stored);
        }
        if attempt >= 20 {
            return Err(Error::Failed(
                "snapshots keep changing while prune reads them; nothing was deleted: run prune again later".into(),
            ));
        }
    };
    let idx = repo.index();
    let damaged: IdSet = plan.damaged.iter().map(|p| p.id).collect();
    let mut withdrawn = IdSet::default();
    for bid in &fresh {
        let locs = idx.locations(bid);
        let stays = |p: &Id| !candidates.contains(p) && stored.contains_key(p);
        let doomed: Vec<&crate::repo::index::BlobLocation> = locs
            .iter()
            .filter(|l| candidates.contains(&l.pack) && stored.contains_key(&l.pack))
            .collect();
        if doomed.is_empty() && locs.iter().any(|l| stays(&l.pack)) {
            continue; // no copy of it goes
        }
        // A copy that stays is relied on once the others go: it must be
        // sound (read at most once per pack), else one that would go stays too.
        let mut sound = false;
        for l in locs
            .iter()
            .filter(|l| stays(&l.pack) && !damaged.contains(&l.pack))
        {
            let size = idx.packs().get(&l.pack).map_or(0, |p| p.1);
            if let Some(why) = verifier.problem(l.blob_type, &l.pack, size)? {
                (obs.notice)(&format!(
                    "{} is damaged ({why}); prune keeps the other copies of its blobs: run 'ironvault check --read-data', then 'ironvault repair packs --from-repo COPY'",
                    crate::format::kind::pack_name(l.blob_type, &l.pack)
                ));
            } else {
                sound = true;
                break;
            }
        }
        if sound {
            continue;
        }
        match doomed.first() {
            Some(l) => {
                withdrawn.insert(l.pack);
            }
            None if locs.iter().any(|l| stays(&l.pack)) => {} // only damaged copies, none goes
            None => {
                return Err(Error::Failed(format!(
                    "blob {} that a snapshot made during the prune needs is in no stored pack; nothing was deleted: run 'ironvault check'",
                    bid.short()
                )))
            }
        }
    }
    for w in &withdrawn {
        r.withdrawn.push(w.to_hex());
    }
    r.withdrawn.sort();
    let mut to_delete: Vec<(BlobType, Id, u64)> = candidates
        .iter()
        .filter(|c| !withdrawn.contains(c))
        .filter_map(|c| stored.get(c).map(|p| (p.t, p.id, p.size)))
        .collect();
    to_delete.sort_by_key(|d| d.1);
    let gone: IdSet = to_delete.iter().map(|d| d.1).collect();
    // One index file for everything that stays, superseding every file read.
    let mut out = IndexFile::default();
    let mut listed = IdSet::default();
    // Superseded by a file, or known so to this host: what they list is in
    // the file that replaced them (or, if that is gone, lost; never revived).
    let superseded = repo.superseded_index_ids(&files);
    let read: Vec<Id> = files.iter().map(|(fid, _)| *fid).collect();
    out.supersedes = repo.supersedes_list(&read, &files);
    for (fid, f) in &files {
        if superseded.contains(fid) {
            continue; // what it lists is in the file that replaced it
        }
        for p in &f.packs {
            // (a pack the listing missed stays listed: only what prune
            // deletes leaves the index)
            if !gone.contains(&p.id) && listed.insert(p.id) {
                out.packs.push(p.clone());
            }
        }
    }
    // A withdrawn pack no index lists (never the case for a finished
    // backup's pack, but cheap to be sure of) is listed by its header.
    for w in &withdrawn {
        if listed.insert(*w) {
            let p = &stored[w];
            out.packs.push(repo.read_pack_header(p.t, &p.id, p.size)?);
        }
    }
    let bytes = out.seal(repo.master_key())?;
    // Reading the new snapshots may have taken long: still trusted?
    lock.confirm()?;
    repo.backend()
        .put(&ObjectKind::Index.name(&Id::hash_of(&bytes)), &bytes)?;
    // Stored: from now on this host knows them superseded, even if no
    // command loads the index before someone puts them back (format.md §11).
    if let Some(g) = repo.security() {
        g.learn_superseded(out.supersedes.iter().rev().copied().collect());
    }
    Ok((to_delete, fresh.into_iter().collect()))
}
