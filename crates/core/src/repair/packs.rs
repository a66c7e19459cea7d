//! `repair packs`: heal a repository from a related copy. Every pack the
//! index lists is checked (present, right size, content matching its name);
//! the blobs of each damaged pack are rescued, from the pack itself where
//! they still verify, else from the other repository (verified against their
//! id there), and stored again in new packs. Then the damaged packs are
//! deleted and the index is rebuilt from what is stored, so nothing refers
//! to them any more. Blobs the snapshots need that no index lists (their
//! pack unreadable beyond its header) are fetched from the other repository
//! too. Blobs found in neither repository are reported.

use super::{rebuild_index_locked, IndexRepair};
use crate::backend::is_not_found;
use crate::error::{Error, Result};
use crate::format::id::IdSet;
use crate::format::kind::pack_name;
use crate::format::{BlobType, Id};
use crate::repo::index::BlobLocation;
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use std::collections::HashMap;
use std::sync::Arc;

/// What `repair_packs` did.
#[derive(Debug, Default)]
pub struct PackRepair {
    /// Packs found damaged: name and what was wrong.
    pub damaged: Vec<(String, String)>,
    /// Blobs rescued from the damaged packs themselves.
    pub blobs_from_self: u64,
    /// Blobs fetched from the other repository.
    pub blobs_from_other: u64,
    /// Blobs in neither repository (still lost; `repair snapshots` drops what needs them).
    pub lost: Vec<String>,
    /// Damaged packs kept because some blob of theirs could not be rescued.
    pub kept: Vec<String>,
    pub packs_checked: usize,
    pub index: Option<IndexRepair>,
}

/// Repair `repo` from `other` (a related repository).
pub fn repair_packs(
    repo: Arc<Repository>,
    other: Arc<Repository>,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<PackRepair> {
    crate::copy::check_related(&other, &repo)?;
    let mut r = PackRepair::default();
    let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), true)?;
    let other_lock = Lock::acquire(other.backend().clone(), *other.master_key(), false)?;
    {
        let unreadable = repo.load_index(true)?;
        if let Some(e) = unreadable.first() {
            return Err(Error::Failed(format!(
                "an index file is unreadable ({e}); run 'ironvault repair index' first, so every blob of a damaged pack is known"
            )));
        }
        other.load_index(false)?;
        let old = repo.index();
        let b = repo.backend();
        let stored: HashMap<Id, u64> = repo
            .stored_packs()?
            .into_iter()
            .map(|p| (p.id, p.size))
            .collect();
        let mut by_pack: HashMap<Id, Vec<(Id, BlobLocation)>> = HashMap::new();
        for (id, loc) in old.iter_all() {
            by_pack.entry(loc.pack).or_default().push((*id, *loc));
        }
        // Find the damaged packs, keeping the bytes of those still readable.
        let mut packs: Vec<_> = old.packs().iter().map(|(p, v)| (*p, *v)).collect();
        packs.sort();
        let total = packs.len() as u64;
        let mut damaged: Vec<(Id, BlobType, bool)> = Vec::new();
        for (i, (pid, (t, size))) in packs.iter().enumerate() {
            progress("checking packs", i as u64, total);
            if crate::interrupt::requested() {
                return Err(crate::error::Error::Interrupted);
            }
            r.packs_checked += 1;
            let name = pack_name(*t, pid);
            // Only what storage says for certain counts as damage: any other
            // read error stops the repair instead of condemning a good pack.
            let why = match stored.get(pid) {
                None => Some("missing".to_string()),
                Some(s) if s != size => Some(format!("{s} bytes stored, the index says {size}")),
                Some(_) => match b.get(&name) {
                    Err(e) if is_not_found(&e) => Some("missing".to_string()),
                    Err(e) => return Err(e),
                    Ok(bytes) if Id::hash_of(&bytes) != *pid => {
                        Some("content does not match its name".to_string())
                    }
                    Ok(_) => None,
                },
            };
            if let Some(reason) = why {
                r.damaged.push((name, reason));
                damaged.push((*pid, *t, stored.contains_key(pid)));
            }
        }
        let mut deletable = Vec::new();
        if !damaged.is_empty() {
            // Forget the damaged packs, so their blobs count as absent and are stored again.
            let bad: IdSet = damaged.iter().map(|d| d.0).collect();
            let good: IdSet = stored
                .keys()
                .filter(|p| !bad.contains(p))
                .copied()
                .collect();
            repo.forget_missing_packs(&good)?;
        }
        let sink = BlobSink::new(repo.clone(), repo.config().compression.level);
        for (n, (pid, t, present)) in damaged.iter().enumerate() {
            progress("rescuing blobs", n as u64, damaged.len() as u64);
            let name = pack_name(*t, pid);
            // One damaged pack in memory at a time.
            let bytes = if *present {
                match b.get(&name) {
                    Ok(x) => Some(x),
                    Err(e) if is_not_found(&e) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            let mut all_rescued = true;
            for (bid, loc) in by_pack.get(pid).into_iter().flatten() {
                if !sink.claim(bid) {
                    continue; // another good copy exists, or already rescued
                }
                let own = bytes.as_ref().and_then(|by| {
                    let (s, e) = (
                        loc.offset as usize,
                        loc.offset as usize + loc.stored_len as usize,
                    );
                    (e <= by.len())
                        .then(|| {
                            repo.open_blob(loc.blob_type, bid, &by[s..e], loc.raw_len, &name)
                                .ok()
                        })
                        .flatten()
                });
                let plain = match own {
                    Some(p) => {
                        r.blobs_from_self += 1;
                        p
                    }
                    None => match other.read_blob(loc.blob_type, bid) {
                        Ok(p) => {
                            r.blobs_from_other += 1;
                            p
                        }
                        Err(e) => {
                            r.lost.push(format!("blob {} ({name}): {e}", bid.short()));
                            all_rescued = false;
                            continue;
                        }
                    },
                };
                sink.store(loc.blob_type, *bid, &plain)?;
            }
            if !*present {
                continue;
            }
            if all_rescued {
                deletable.push(name);
            } else {
                r.kept.push(name);
            }
        }
        // Blobs the snapshots need that no index lists: their pack is
        // gone or unreadable beyond its header (swapped, truncated), so
        // neither the index nor the steps above know of them.
        progress("finding missing blobs", 0, 0);
        fetch_missing(&repo, &other, &sink, &mut r)?;
        if damaged.is_empty() && r.blobs_from_other == 0 {
            remove_garbage_packs(&repo, &mut r)?;
            other_lock.release()?;
            lock.release()?;
            return Ok(r);
        }
        sink.finish()?;
        lock.confirm()?;
        // Every blob of these now lives in a new, durable pack.
        for name in &deletable {
            b.delete(name)?;
        }
    }
    // No index file may list the deleted packs any more (still under the
    // exclusive lock, so no backup sees the gap).
    r.index = Some(rebuild_index_locked(&repo, &lock, &|_, _| {})?);
    remove_garbage_packs(&repo, &mut r)?;
    other_lock.release()?;
    lock.release()?;
    Ok(r)
}

/// Walk every snapshot's trees and store again, from `other`, each blob
/// that `repo`'s index lacks (trees fetched are walked too). Blobs found in
/// neither are added to `r.lost`.
fn fetch_missing(
    repo: &Repository,
    other: &Repository,
    sink: &BlobSink,
    r: &mut PackRepair,
) -> Result<()> {
    let (snaps, _) = repo.list_snapshots()?;
    let mut trees: Vec<Id> = snaps.iter().map(|(_, s)| s.tree).collect();
    let mut seen = IdSet::default();
    while let Some(t) = trees.pop() {
        if !seen.insert(t) {
            continue;
        }
        if crate::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        let plain = if sink.is_known(&t) {
            match repo.read_blob(BlobType::Tree, &t) {
                Ok(p) => p,
                Err(_) => continue, // damaged where it is: check names it
            }
        } else {
            match fetch(other, sink, BlobType::Tree, &t, r)? {
                Some(p) => p,
                None => continue,
            }
        };
        let tree: crate::format::tree::Tree =
            crate::format::from_cbor(&plain, &format!("tree {}", t.short()))?;
        for node in &tree.nodes {
            if let Some(sub) = node.subtree {
                trees.push(sub);
            }
            for b in node.content.iter().flatten() {
                if seen.insert(*b) && !sink.is_known(b) {
                    fetch(other, sink, BlobType::Data, b, r)?;
                }
            }
        }
    }
    Ok(())
}

/// Store blob `id` from `other` (verified there against its id).
fn fetch(
    other: &Repository,
    sink: &BlobSink,
    t: BlobType,
    id: &Id,
    r: &mut PackRepair,
) -> Result<Option<Vec<u8>>> {
    match other.read_blob(t, id) {
        Ok(p) => {
            if sink.claim(id) {
                sink.store(t, *id, &p)?;
                r.blobs_from_other += 1;
            }
            Ok(Some(p))
        }
        Err(e) => {
            r.lost
                .push(format!("blob {} (in no pack): {e}", id.short()));
            Ok(None)
        }
    }
}

/// Once every blob the snapshots need is indexed (nothing lost): remove each
/// pack that no index lists and whose bytes do not match its name. It holds
/// nothing anyone can use (its blobs cannot even be listed); `check` would
/// report it until then. Called under the exclusive lock.
fn remove_garbage_packs(repo: &Repository, r: &mut PackRepair) -> Result<()> {
    if !r.lost.is_empty() {
        return Ok(());
    }
    {
        // Every blob the snapshots need is indexed now: a pack that no
        // index lists and whose bytes do not match its name holds nothing
        // anyone can use (its blobs cannot even be listed). Remove it.
        let indexed = repo.index();
        for p in repo.stored_packs()? {
            if indexed.packs().contains_key(&p.id) {
                continue;
            }
            let bytes = match repo.backend().get(&p.name) {
                Ok(b) => b,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            if Id::hash_of(&bytes) != p.id {
                repo.backend().delete(&p.name)?;
                if let Some(i) = r.index.as_mut() {
                    i.unreadable_packs.retain(|u| !u.starts_with(&p.name));
                }
                r.damaged.push((
                    p.name,
                    "in no index and content does not match its name; removed (every blob the snapshots need is stored)".into(),
                ));
            }
        }
    }
    Ok(())
}
