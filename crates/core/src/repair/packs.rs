//! `repair packs`: heal a repository from a related copy. Every pack the
//! index lists is checked (present, right size, content matching its name);
//! the blobs of each damaged pack are rescued, from the pack itself where
//! they still verify, else from the other repository (verified against their
//! id there), and stored again in new packs. Then the damaged packs are
//! deleted and the index is rebuilt from what is stored, so nothing refers
//! to them any more. Blobs found in neither repository are reported.

use super::{rebuild_index, IndexRepair};
use crate::error::Result;
use crate::format::id::IdSet;
use crate::format::{BlobType, Id};
use crate::repo::index::{pack_name, BlobLocation};
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
    {
        let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false)?;
        let other_lock = Lock::acquire(other.backend().clone(), *other.master_key(), false)?;
        repo.load_index(true)?;
        other.load_index(false)?;
        let old = repo.index();
        let b = repo.backend();
        let mut stored: HashMap<Id, u64> = HashMap::new();
        for t in [BlobType::Data, BlobType::Tree] {
            for o in b.list(&format!("packs/{}/", t.dir()))? {
                if let Some(id) = o.name.rsplit('/').next().and_then(Id::from_hex) {
                    stored.insert(id, o.size);
                }
            }
        }
        let mut by_pack: HashMap<Id, Vec<(Id, BlobLocation)>> = HashMap::new();
        for (id, loc) in old.iter_all() {
            by_pack.entry(loc.pack).or_default().push((*id, *loc));
        }
        // Find the damaged packs, keeping the bytes of those still readable.
        let mut packs: Vec<_> = old.packs().iter().map(|(p, v)| (*p, *v)).collect();
        packs.sort();
        let total = packs.len() as u64;
        let mut damaged: Vec<(Id, BlobType, Option<Vec<u8>>)> = Vec::new();
        for (i, (pid, (t, size))) in packs.iter().enumerate() {
            progress("checking packs", i as u64, total);
            if crate::interrupt::requested() {
                return Err(crate::error::Error::Interrupted);
            }
            r.packs_checked += 1;
            let name = pack_name(*t, pid);
            let why = match stored.get(pid) {
                None => Some(("missing".to_string(), None)),
                Some(s) if s != size => Some((
                    format!("{s} bytes stored, the index says {size}"),
                    b.get(&name).ok(),
                )),
                Some(_) => match b.get(&name) {
                    Err(e) => Some((format!("unreadable: {e}"), None)),
                    Ok(bytes) if Id::hash_of(&bytes) != *pid => {
                        Some(("content does not match its name".to_string(), Some(bytes)))
                    }
                    Ok(_) => None,
                },
            };
            if let Some((reason, bytes)) = why {
                r.damaged.push((name, reason));
                damaged.push((*pid, *t, bytes));
            }
        }
        if damaged.is_empty() {
            other_lock.release()?;
            lock.release()?;
            return Ok(r);
        }
        // Forget the damaged packs, so their blobs count as absent and are stored again.
        let bad: IdSet = damaged.iter().map(|d| d.0).collect();
        let good: IdSet = stored
            .keys()
            .filter(|p| !bad.contains(p))
            .copied()
            .collect();
        repo.forget_missing_packs(&good)?;
        let sink = BlobSink::new(repo.clone(), repo.config().compression.level);
        for (n, (pid, t, bytes)) in damaged.iter().enumerate() {
            progress("rescuing blobs", n as u64, damaged.len() as u64);
            let name = pack_name(*t, pid);
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
                            continue;
                        }
                    },
                };
                sink.store(loc.blob_type, *bid, &plain)?;
            }
        }
        sink.finish()?;
        lock.confirm()?;
        // Every blob worth keeping now lives in a new pack: the damaged ones go.
        for (pid, t, _) in &damaged {
            if stored.contains_key(pid) {
                b.delete(&pack_name(*t, pid))?;
            }
        }
        other_lock.release()?;
        lock.release()?;
    }
    // No index file may list the deleted packs any more.
    r.index = Some(rebuild_index(&repo, &|_, _| {})?);
    Ok(r)
}
