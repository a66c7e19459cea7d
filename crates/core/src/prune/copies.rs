//! Which copy of a blob prune keeps, proven before another copy goes.
//!
//! When a blob is stored in several packs, phase 1 keeps one copy and may
//! delete the packs holding the others. Before it relies on a kept copy
//! that way, the pack holding it is read whole: its bytes must hash to its
//! name and every blob in it must open and match its id. A pack that fails
//! is left alone (never chosen, never deleted, reported) and the plan is
//! made again without it, so a damaged or planted copy can never cost the
//! sound one. Phase 2 does the same for the copies that snapshots made
//! during the prune rely on. Duplicates are rare (two backups storing the
//! same new blob, an interrupted repack, packs adopted from an interrupted
//! run), so this reads little; each pack is read at most once per prune.

use super::plan::{self, IndexView, Plan};
use super::{Observer, PruneOptions};
use crate::error::Result;
use crate::format::id::{IdMap, IdSet};
use crate::format::kind::pack_name;
use crate::format::{BlobType, Id};
use crate::repo::Repository;

/// Verdicts on packs holding kept copies, each pack read at most once.
pub struct CopyVerifier<'a> {
    repo: &'a Repository,
    /// None: sound; Some: what is wrong with it.
    verdicts: IdMap<Option<String>>,
}

impl<'a> CopyVerifier<'a> {
    pub fn new(repo: &'a Repository) -> CopyVerifier<'a> {
        CopyVerifier {
            repo,
            verdicts: IdMap::default(),
        }
    }

    /// What is wrong with pack `id` of `size` bytes (the index's size), or
    /// None when it is sound. An error means storage could not be read.
    pub fn problem(&mut self, t: BlobType, id: &Id, size: u64) -> Result<Option<String>> {
        if let Some(v) = self.verdicts.get(id) {
            return Ok(v.clone());
        }
        let v = self.repo.verify_pack(t, id, size)?;
        self.verdicts.insert(*id, v.clone());
        Ok(v)
    }

    /// Packs found damaged so far, with what is wrong with each.
    pub fn damaged(&self) -> impl Iterator<Item = (&Id, &String)> {
        self.verdicts
            .iter()
            .filter_map(|(id, v)| v.as_ref().map(|w| (id, w)))
    }
}

/// Phase 1's plan, with every kept copy that has another copy in a pack
/// phase 2 may delete proven sound: plan, verify those kept copies' packs,
/// and plan again without the packs that fail, until none fails. A stored
/// pack no index lists that holds a needed blob whose indexed copies all
/// failed is not deleted either.
pub fn plan_with_sound_copies(
    view: &IndexView<'_>,
    mut used: IdSet,
    snapshots: IdSet,
    erase: &IdSet,
    opts: &PruneOptions,
    verifier: &mut CopyVerifier<'_>,
    obs: &Observer,
) -> Result<Plan> {
    let idx = view.index;
    let unindexed = unindexed_contents(verifier.repo, view)?;
    let mut damaged = IdSet::default();
    loop {
        let mut p = plan::plan(
            view,
            used,
            snapshots.clone(),
            erase,
            opts.max_unused,
            opts.max_repack_size,
            &damaged,
        );
        let candidates = p.candidates();
        let mut relied_on: Vec<Id> = Vec::new();
        for b in idx.duplicated() {
            let Some(kept) = p.chosen.get(b) else {
                continue;
            };
            if idx
                .locations(b)
                .iter()
                .any(|l| l.pack != kept.pack && candidates.contains(&l.pack))
            {
                relied_on.push(kept.pack);
            }
        }
        for blobs in unindexed.values() {
            relied_on.extend(blobs.iter().filter_map(|b| p.chosen.get(b).map(|l| l.pack)));
        }
        relied_on.sort();
        relied_on.dedup();
        let mut found = false;
        for (i, pid) in relied_on.iter().enumerate() {
            (obs.progress)("verifying kept copies", i as u64, relied_on.len() as u64);
            let Some(&(t, size)) = idx.packs().get(pid) else {
                continue;
            };
            if verifier.problem(t, pid, size)?.is_some() {
                damaged.insert(*pid);
                found = true;
            }
        }
        if found {
            used = std::mem::take(&mut p.used);
            continue;
        }
        // Needed blobs with no sound indexed copy left: a pack no index
        // lists that holds one stays (the next backup adopts it if it
        // verifies, or 'repair index' indexes it).
        let orphaned: IdSet = unindexed
            .iter()
            .filter(|(_, blobs)| {
                blobs
                    .iter()
                    .any(|b| p.used.contains(b) && !p.chosen.contains_key(b))
            })
            .map(|(pid, _)| *pid)
            .collect();
        for u in p.unindexed.iter().filter(|u| orphaned.contains(&u.id)) {
            (obs.notice)(&format!(
                "{} is in no index but holds blobs whose indexed copies are damaged; prune keeps it: run 'ironvault repair index'",
                u.name
            ));
        }
        p.unindexed.retain(|u| !orphaned.contains(&u.id));
        let kept: IdSet = p.damaged.iter().map(|d| d.id).collect();
        for (pid, why) in verifier.damaged() {
            let t = idx.packs().get(pid).map_or(BlobType::Data, |v| v.0);
            (obs.notice)(&if kept.contains(pid) {
                format!(
                    "{} is damaged ({why}) and holds the only copy of some blobs; prune keeps it as it is: run 'ironvault check --read-data', then 'ironvault repair packs --from-repo COPY'",
                    pack_name(t, pid)
                )
            } else {
                format!(
                    "{} is damaged ({why}); prune keeps sound copies of its blobs instead, and deletes it",
                    pack_name(t, pid)
                )
            });
        }
        return Ok(p);
    }
}

/// The blobs each stored pack no index lists holds, by its header (a pack
/// whose header cannot be read holds nothing anyone can use).
fn unindexed_contents(repo: &Repository, view: &IndexView<'_>) -> Result<IdMap<Vec<Id>>> {
    let mut out = IdMap::default();
    for p in view.stored {
        if view.index.packs().contains_key(&p.id) {
            continue;
        }
        match repo.read_pack_header(p.t, &p.id, p.size) {
            Ok(h) => {
                out.insert(p.id, h.blobs.iter().map(|b| b.id).collect());
            }
            Err(e) if crate::backend::is_not_found(&e) => {}
            Err(crate::error::Error::Damaged { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
