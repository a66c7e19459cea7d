//! Prune phase 1's analysis: which blobs the snapshots reach, which copy of
//! each is kept, and what happens to every pack (keep, delete, repack).
//! Nothing here writes.

use crate::error::{Error, Result};
use crate::format::id::{IdMap, IdSet};
use crate::format::kind::pack_name;
use crate::format::tree::Tree;
use crate::format::{from_cbor, BlobType, Id};
use crate::repo::index::{BlobLocation, MasterIndex};
use crate::repo::{Repository, StoredPack};

/// Tolerated unused share of a pack before it is repacked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// Repack a pack when more than this percentage of its blob bytes is unused.
    Percent(f64),
    /// Never repack for unused space (unused packs are still deleted).
    Unlimited,
}

impl MaxUnused {
    /// Parse `5%`, `0%`, `12.5%` or `unlimited`.
    pub fn parse(s: &str) -> std::result::Result<MaxUnused, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        let Some(n) = t.strip_suffix('%') else {
            return Err(format!(
                "'{s}' is not a percentage; give e.g. 5% (the share of a pack that may be unused) or 'unlimited'"
            ));
        };
        match n.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxUnused::Percent(p)),
            _ => Err(format!("'{s}': give a percentage from 0% to 100%")),
        }
    }
}

/// What phase 1 decided about one pack.
#[derive(Clone, Debug)]
pub struct PackPlan {
    pub id: Id,
    pub t: BlobType,
    pub size: u64,
    /// Stored bytes of the blobs kept from this pack.
    pub used: u64,
    /// Stored bytes of blobs no snapshot reaches (or second copies).
    pub unused: u64,
    /// It holds a blob an erasure request names: repacked whatever its unused share.
    pub erasure: bool,
}

impl PackPlan {
    fn unused_share(&self) -> f64 {
        let all = self.used + self.unused;
        if all == 0 {
            1.0
        } else {
            self.unused as f64 / all as f64
        }
    }
}

/// Phase 1's result.
#[derive(Default)]
pub struct Plan {
    /// Snapshots seen (the set S1).
    pub snapshots: IdSet,
    /// Blobs reachable from S1 (trees and data).
    pub used: IdSet,
    /// The copy kept of each used blob.
    pub chosen: IdMap<BlobLocation>,
    /// Indexed packs no kept copy lives in.
    pub delete: Vec<PackPlan>,
    /// Packs whose kept blobs are copied to new packs before they go.
    pub repack: Vec<PackPlan>,
    /// Packs repacking would help but `--max-repack-size` leaves for later.
    pub deferred: Vec<PackPlan>,
    /// Stored packs no index lists (left by interrupted backups).
    pub unindexed: Vec<StoredPack>,
    /// Packs kept as they are (the deferred and damaged ones included).
    pub kept: Vec<PackPlan>,
    /// Packs found damaged that hold the only copy of a needed blob: no
    /// copy in them is chosen, and they stay as they are. (A damaged pack
    /// whose needed blobs all have copies elsewhere is deleted.)
    pub damaged: Vec<PackPlan>,
    /// Blobs named by erasure requests that some snapshot still reaches.
    pub erasure_still_used: IdSet,
    /// Blobs named by erasure requests that no snapshot reaches.
    pub erasure_targets: IdSet,
}

impl Plan {
    /// Every pack phase 2 may delete.
    pub fn candidates(&self) -> IdSet {
        self.delete
            .iter()
            .chain(&self.repack)
            .map(|p| p.id)
            .chain(self.unindexed.iter().map(|p| p.id))
            .collect()
    }
}

/// Add every blob reachable from `root` to `used`. Trees already in `used`
/// are not walked again (their blobs are in it already).
pub fn walk(repo: &Repository, root: &Id, used: &mut IdSet, fresh: &mut Vec<Id>) -> Result<()> {
    let mut stack = vec![*root];
    while let Some(t) = stack.pop() {
        if !used.insert(t) {
            continue;
        }
        fresh.push(t);
        let bytes = repo.read_blob(BlobType::Tree, &t).map_err(|e| {
            Error::Failed(format!(
                "tree {} cannot be read ({e}); prune cannot tell what it references: run 'ironvault check' and repair first",
                t.short()
            ))
        })?;
        let tree: Tree = from_cbor(&bytes, &format!("tree {}", t.short()))?;
        for n in tree.nodes {
            for c in n.content.into_iter().flatten() {
                if used.insert(c) {
                    fresh.push(c);
                }
            }
            if let Some(s) = n.subtree {
                stack.push(s);
            }
        }
    }
    Ok(())
}

/// Decide what happens to every pack. No copy in a `damaged` pack is
/// chosen; such a pack is kept as it is while it holds the only copy of a
/// needed blob.
pub fn plan(
    idx: &IndexView<'_>,
    used: IdSet,
    snapshots: IdSet,
    erase: &IdSet,
    max_unused: MaxUnused,
    max_repack_size: Option<u64>,
    damaged: &IdSet,
) -> Plan {
    let mi = idx.index;
    let mut by_pack: IdMap<Vec<(Id, BlobLocation)>> = IdMap::default();
    for (id, loc) in mi.iter_all() {
        by_pack.entry(loc.pack).or_default().push((*id, *loc));
    }
    // A pack is clean when every blob in it is used. A used blob stored
    // twice keeps the copy in a clean pack, so a repack interrupted after
    // writing its new packs converges instead of repacking again.
    let clean: IdSet = by_pack
        .iter()
        .filter(|(_, v)| v.iter().all(|(b, _)| used.contains(b)))
        .map(|(p, _)| *p)
        .collect();
    let mut chosen: IdMap<BlobLocation> = IdMap::default();
    for b in &used {
        let locs = mi.locations(b);
        let sound: Vec<&BlobLocation> =
            locs.iter().filter(|l| !damaged.contains(&l.pack)).collect();
        if let Some(l) = sound
            .iter()
            .find(|l| clean.contains(&l.pack))
            .or(sound.first())
        {
            chosen.insert(*b, **l);
        }
    }
    let mut plan = Plan {
        snapshots,
        ..Plan::default()
    };
    let mut repackable = Vec::new();
    let mut packs: Vec<_> = mi.packs().iter().map(|(p, v)| (*p, *v)).collect();
    packs.sort_by_key(|p| p.0);
    for (pid, (t, size)) in packs {
        let mut pp = PackPlan {
            id: pid,
            t,
            size,
            used: 0,
            unused: 0,
            erasure: false,
        };
        for (b, loc) in by_pack.get(&pid).into_iter().flatten() {
            if chosen.get(b) == Some(loc) {
                pp.used += loc.stored_len as u64;
            } else {
                pp.unused += loc.stored_len as u64;
                if erase.contains(b) {
                    pp.erasure = true;
                }
            }
        }
        if damaged.contains(&pid) {
            // It may go only if every needed blob in it has a copy elsewhere.
            let needed_here = by_pack
                .get(&pid)
                .into_iter()
                .flatten()
                .any(|(b, _)| used.contains(b) && !chosen.contains_key(b));
            if needed_here {
                plan.damaged.push(pp);
            } else {
                plan.delete.push(pp);
            }
        } else if pp.used == 0 {
            plan.delete.push(pp);
        } else if pp.erasure {
            plan.repack.push(pp);
        } else if pp.unused > 0
            && match max_unused {
                MaxUnused::Unlimited => false,
                MaxUnused::Percent(p) => pp.unused_share() * 100.0 > p,
            }
        {
            repackable.push(pp);
        } else {
            plan.kept.push(pp);
        }
    }
    // Most unused first, within the size limit (erasures are not limited).
    repackable.sort_by(|a, b| b.unused_share().total_cmp(&a.unused_share()));
    let mut budget = max_repack_size.unwrap_or(u64::MAX);
    for pp in repackable {
        if pp.size <= budget {
            budget -= pp.size;
            plan.repack.push(pp);
        } else {
            plan.deferred.push(pp);
        }
    }
    plan.kept.extend(plan.deferred.iter().cloned());
    plan.kept.extend(plan.damaged.iter().cloned());
    for p in idx.stored {
        if !mi.packs().contains_key(&p.id) {
            plan.unindexed.push(p.clone());
        }
    }
    for b in erase {
        if used.contains(b) {
            plan.erasure_still_used.insert(*b);
        } else if mi.contains(b) {
            plan.erasure_targets.insert(*b);
        }
    }
    plan.used = used;
    plan.chosen = chosen;
    plan
}

/// The loaded index and the packs storage holds, checked against each other.
pub struct IndexView<'a> {
    pub index: &'a MasterIndex,
    pub stored: &'a [StoredPack],
}

impl<'a> IndexView<'a> {
    /// Refuse when the index lists packs that storage has lost or holds at
    /// another size: prune must not work from a picture of damage.
    pub fn new(index: &'a MasterIndex, stored: &'a [StoredPack]) -> Result<IndexView<'a>> {
        let sizes: IdMap<u64> = stored.iter().map(|p| (p.id, p.size)).collect();
        let mut bad = Vec::new();
        for (pid, (t, size)) in index.packs() {
            match sizes.get(pid) {
                None => bad.push(format!("{} is missing", pack_name(*t, pid))),
                Some(s) if s != size => bad.push(format!(
                    "{} has {s} bytes, the index says {size}",
                    pack_name(*t, pid)
                )),
                _ => {}
            }
        }
        if let Some(first) = bad.first() {
            return Err(Error::Failed(format!(
                "{} the index lists {} damaged ({first}); prune deletes nothing until {} repaired: run 'ironvault check', then 'ironvault repair packs --from-repo COPY' or 'ironvault repair index'",
                crate::human::plural(bad.len() as u64, "pack"),
                if bad.len() == 1 { "is" } else { "are" },
                if bad.len() == 1 { "it is" } else { "they are" }
            )));
        }
        Ok(IndexView { index, stored })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::{IndexBlob, IndexPack};

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    fn pack(p: u8, blobs: &[u8]) -> IndexPack {
        IndexPack {
            id: id(p),
            blob_type: BlobType::Data,
            size: 100 * blobs.len() as u64 + 50,
            blobs: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| IndexBlob {
                    id: id(*b),
                    offset: 100 * i as u64,
                    stored_len: 100,
                    raw_len: 90,
                })
                .collect(),
        }
    }

    fn stored(packs: &[IndexPack]) -> Vec<StoredPack> {
        packs
            .iter()
            .map(|p| StoredPack {
                t: p.blob_type,
                id: p.id,
                size: p.size,
                name: pack_name(p.blob_type, &p.id),
            })
            .collect()
    }

    fn ids(v: &[PackPlan]) -> Vec<u8> {
        v.iter().map(|p| p.id.0[0]).collect()
    }

    #[test]
    fn packs_are_kept_deleted_or_repacked_by_their_unused_share() {
        // Pack 1 fully used, 2 fully unused, 3 is 1/4 unused, 4 is 3/4
        // unused, 5 holds second copies of used blobs only.
        let packs = vec![
            pack(1, &[10, 11]),
            pack(2, &[20, 21]),
            pack(3, &[30, 31, 32, 33]),
            pack(4, &[40, 41, 42, 43]),
            pack(5, &[10, 11]),
        ];
        let mut mi = MasterIndex::default();
        for p in &packs {
            mi.add_pack(p);
        }
        let mut st = stored(&packs);
        st.push(StoredPack {
            t: BlobType::Data,
            id: id(9),
            size: 10,
            name: "packs/data/09/x".into(),
        });
        let view = IndexView::new(&mi, &st).unwrap();
        let used: IdSet = [10, 11, 30, 31, 32, 40].iter().map(|b| id(*b)).collect();
        let none = IdSet::default();
        let p = plan(
            &view,
            used.clone(),
            IdSet::default(),
            &none,
            MaxUnused::Percent(5.0),
            None,
            &none,
        );
        assert_eq!(ids(&p.delete), vec![2, 5]);
        assert_eq!(ids(&p.repack), vec![4, 3]); // most unused first
        assert_eq!(ids(&p.kept), vec![1]);
        assert_eq!(p.unindexed.len(), 1);
        assert_eq!(p.candidates().len(), 5);
        // 30% tolerates pack 3 (25% unused), not pack 4 (75%)
        let p = plan(
            &view,
            used.clone(),
            IdSet::default(),
            &none,
            MaxUnused::Percent(30.0),
            None,
            &none,
        );
        assert_eq!(ids(&p.repack), vec![4]);
        // unlimited repacks nothing; a size limit defers what does not fit
        let p = plan(
            &view,
            used.clone(),
            IdSet::default(),
            &none,
            MaxUnused::Unlimited,
            None,
            &none,
        );
        assert!(p.repack.is_empty());
        let p = plan(
            &view,
            used.clone(),
            IdSet::default(),
            &none,
            MaxUnused::Percent(0.0),
            Some(500),
            &none,
        );
        assert_eq!(ids(&p.repack), vec![4]);
        assert_eq!(ids(&p.deferred), vec![3]);
        // an erasure forces pack 3 (one erased blob, 25% unused) even when unlimited
        let erase: IdSet = [id(33), id(10)].into_iter().collect();
        let p = plan(
            &view,
            used,
            IdSet::default(),
            &erase,
            MaxUnused::Unlimited,
            Some(0),
            &none,
        );
        assert_eq!(ids(&p.repack), vec![3]);
        assert!(p.erasure_still_used.contains(&id(10)));
        assert!(p.erasure_targets.contains(&id(33)));
    }

    #[test]
    fn no_copy_in_a_damaged_pack_is_chosen() {
        // Pack 1 and 2 hold the same blobs; 3 alone holds 30; all damaged but 2.
        let packs = vec![pack(1, &[10, 11]), pack(2, &[10, 11]), pack(3, &[30, 10])];
        let mut mi = MasterIndex::default();
        for p in &packs {
            mi.add_pack(p);
        }
        let st = stored(&packs);
        let view = IndexView::new(&mi, &st).unwrap();
        let used: IdSet = [10, 11, 30].iter().map(|b| id(*b)).collect();
        let none = IdSet::default();
        let run = |damaged: &[u8]| {
            let d: IdSet = damaged.iter().map(|p| id(*p)).collect();
            plan(
                &view,
                used.clone(),
                IdSet::default(),
                &none,
                MaxUnused::Percent(0.0),
                None,
                &d,
            )
        };
        // Sound: pack 1's copies come first, pack 2 only duplicates them.
        let p = run(&[]);
        assert_eq!(p.chosen[&id(10)].pack, id(1));
        assert_eq!(ids(&p.delete), vec![2]);
        // Pack 1 damaged: pack 2's copies are kept and pack 1 goes, since
        // every blob in it has a copy elsewhere.
        let p = run(&[1]);
        assert_eq!(p.chosen[&id(10)].pack, id(2));
        assert_eq!(p.chosen[&id(11)].pack, id(2));
        assert_eq!(ids(&p.delete), vec![1]);
        // Pack 3 damaged holds the only copy of 30: nothing is chosen for
        // it, and the pack stays as it is (not repacked, not deleted).
        let p = run(&[1, 3]);
        assert!(!p.chosen.contains_key(&id(30)));
        assert_eq!(ids(&p.damaged), vec![3]);
        assert!(ids(&p.kept).contains(&3));
        assert!(!p.candidates().contains(&id(3)));
    }

    #[test]
    fn a_missing_or_resized_pack_is_refused() {
        let packs = vec![pack(1, &[10]), pack(2, &[20])];
        let mut mi = MasterIndex::default();
        for p in &packs {
            mi.add_pack(p);
        }
        let mut st = stored(&packs);
        st[1].size += 1;
        let e = IndexView::new(&mi, &st).err().unwrap().to_string();
        assert!(e.contains("the index says") && e.contains("repair"), "{e}");
        st.pop();
        let e = IndexView::new(&mi, &st).err().unwrap().to_string();
        assert!(e.contains("is missing"), "{e}");
    }

    #[test]
    fn max_unused_parses_percentages_and_unlimited() {
        assert_eq!(MaxUnused::parse("5%"), Ok(MaxUnused::Percent(5.0)));
        assert_eq!(MaxUnused::parse("12.5%"), Ok(MaxUnused::Percent(12.5)));
        assert_eq!(MaxUnused::parse("unlimited"), Ok(MaxUnused::Unlimited));
        assert!(MaxUnused::parse("5").is_err());
        assert!(MaxUnused::parse("101%").is_err());
    }
}
