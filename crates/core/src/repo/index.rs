//! The in-memory master index: the union of all index files (format.md §6),
//! mapping each blob id to one place it can be read from.

use crate::format::id::IdMap;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::{BlobType, Id};
use std::collections::HashSet;

/// Where one blob can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub blob_type: BlobType,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// All blobs the repository's index files list.
#[derive(Default, Clone)]
pub struct MasterIndex {
    blobs: IdMap<BlobLocation>,
    /// Further copies of a blob (in other packs), tried when the first fails.
    more: IdMap<Vec<BlobLocation>>,
    packs: IdMap<(BlobType, u64)>,
}

impl MasterIndex {
    /// Add the packs of one index file, except those in `skip_packs`.
    pub fn add_file(&mut self, f: &IndexFile, skip_packs: &HashSet<Id>) {
        for p in &f.packs {
            if !skip_packs.contains(&p.id) {
                self.add_pack(p);
            }
        }
    }

    /// Add one pack's blobs (a blob already known keeps its first location).
    pub fn add_pack(&mut self, p: &IndexPack) {
        if self.packs.insert(p.id, (p.blob_type, p.size)).is_some() {
            return; // the same pack listed by two index files
        }
        for b in &p.blobs {
            let loc = BlobLocation {
                pack: p.id,
                blob_type: p.blob_type,
                offset: b.offset,
                stored_len: b.stored_len,
                raw_len: b.raw_len,
            };
            match self.blobs.entry(b.id) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(loc);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.more.entry(b.id).or_default().push(loc)
                }
            }
        }
    }

    /// Where a blob is, if indexed.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// A copy keeping only the packs for which `keep` is true (a blob whose
    /// preferred copy is dropped falls back to another one).
    pub fn retain_packs(&self, keep: impl Fn(&Id) -> bool) -> MasterIndex {
        let mut out = MasterIndex::default();
        for (id, (t, size)) in &self.packs {
            if keep(id) {
                out.packs.insert(*id, (*t, *size));
            }
        }
        for (id, loc) in self.iter_all() {
            if !keep(&loc.pack) {
                continue;
            }
            match out.blobs.entry(*id) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(*loc);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    out.more.entry(*id).or_default().push(*loc)
                }
            }
        }
        out
    }

    /// Every indexed location of a blob, the preferred one first.
    pub fn locations(&self, id: &Id) -> Vec<BlobLocation> {
        let mut v: Vec<BlobLocation> = self.blobs.get(id).copied().into_iter().collect();
        if let Some(m) = self.more.get(id) {
            v.extend_from_slice(m);
        }
        v
    }

    /// Blobs listed in more than one pack.
    pub fn duplicated(&self) -> impl Iterator<Item = &Id> {
        self.more.keys()
    }

    /// True if the blob is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every indexed pack with its type and size.
    pub fn packs(&self) -> &IdMap<(BlobType, u64)> {
        &self.packs
    }

    /// All blob ids with their preferred locations.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    /// Every location of every blob (a blob stored twice appears twice).
    pub fn iter_all(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter().chain(
            self.more
                .iter()
                .flat_map(|(id, v)| v.iter().map(move |l| (id, l))),
        )
    }
}
