//! What the repository holds, as listed and indexed: index files, the packs
//! in storage and those prune's deletion lists name, and the loaded index
//! built from them (format.md §6, §9).

use super::index::MasterIndex;
use super::{Repository, StoredPack, WithErrors};
use crate::backend::is_not_found;
use crate::error::{Error, Result};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::kind::pack_name;
use crate::format::pack::{parse_trailer, read_header, TRAILER_LEN};
use crate::format::{BlobType, Id, ObjectKind};
use crate::sync::RwLocked;
use std::collections::HashSet;
use std::sync::Arc;

/// Packs no index lists, as a writer found them (`adopt_unindexed_packs`).
#[derive(Debug, Default)]
pub struct Adoption {
    /// Verified packs, added to the loaded index: the writer lists them.
    pub packs: Vec<IndexPack>,
    /// One line per pack left alone, saying why and what to do.
    pub refused: Vec<String>,
}

/// Listings of `index/` before `read_index_files` gives up.
const INDEX_LIST_ROUNDS: u32 = 32;

impl Repository {
    /// Read every index file; a damaged one is returned in the error list, not fatal.
    ///
    /// A file that vanishes between the listing and the read was replaced
    /// by a prune, whose new index file was written before the old one was
    /// deleted but may be missing from the listing: list again and read
    /// only the names not read yet, until a listing held no vanished file.
    /// A prune running in a loop beside us cannot make this fail: each
    /// round reads only what changed.
    pub fn read_index_files(&self) -> Result<WithErrors<(Id, IndexFile)>> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        let mut done: HashSet<Id> = HashSet::new();
        for round in 0..INDEX_LIST_ROUNDS {
            let mut vanished = false;
            for o in self.backend.list(ObjectKind::Index.dir())? {
                let what = o.name.clone();
                let Some(id) = ObjectKind::Index.parse_name(&o.name) else {
                    continue;
                };
                if done.contains(&id) {
                    continue;
                }
                let bytes = match self.backend.get(&o.name) {
                    Ok(b) => b,
                    Err(e) if is_not_found(&e) => {
                        vanished = true;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                done.insert(id);
                if Id::hash_of(&bytes) != id {
                    errors.push(Error::damaged(
                        what,
                        "content does not match its name (changed or truncated)",
                    ));
                    continue;
                }
                match IndexFile::open(&self.master, &bytes, &what) {
                    Ok(f) => files.push((id, f)),
                    Err(e) => errors.push(e),
                }
            }
            if !vanished {
                return Ok((files, errors));
            }
            if round > 2 {
                std::thread::sleep(std::time::Duration::from_millis(50 * round as u64));
            }
        }
        Err(Error::Failed(format!(
            "index files kept vanishing while being read ({INDEX_LIST_ROUNDS} listings; another prune running in a loop?); try again"
        )))
    }

    /// Packs named by prune phase-1 deletion lists.
    pub fn deletion_candidates(&self) -> Result<HashSet<Id>> {
        Ok(self
            .deletion_lists()?
            .into_iter()
            .flat_map(|(_, d)| d.packs)
            .collect())
    }

    /// Ids of index files not in force: those the files name as superseded,
    /// and those this host's security record knows were superseded
    /// (format.md §6, §11). Teaches the record what the files name, and
    /// raises an alarm for a stored file only the record knows superseded
    /// (the file that superseded it is gone: the index went back in time).
    pub fn superseded_index_ids(&self, files: &[(Id, IndexFile)]) -> HashSet<Id> {
        let mut superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let Some(g) = self.security() else {
            return superseded;
        };
        let known: HashSet<Id> = g.superseded_index().into_iter().collect();
        let back: Vec<Id> = files
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| known.contains(id) && !superseded.contains(id))
            .collect();
        if !back.is_empty() {
            g.index_went_back(&back, &self.config.id);
        }
        // Oldest first for the record: each list is written newest first.
        let learned: Vec<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().rev().copied())
            .collect();
        g.learn_superseded(learned);
        superseded.extend(known);
        superseded
    }

    /// The `supersedes` list of an index file that replaces `direct` (the
    /// files its writer read, or listed): those, then every id that `files`
    /// and this host's record name as superseded, newest first and at most
    /// `MAX_INHERITED_SUPERSEDED` of them, so that an old file put back from
    /// the middle of the chain stays superseded (format.md §6).
    pub fn supersedes_list(&self, direct: &[Id], files: &[(Id, IndexFile)]) -> Vec<Id> {
        let mut seen: HashSet<Id> = HashSet::new();
        let mut out: Vec<Id> = direct.iter().copied().filter(|i| seen.insert(*i)).collect();
        let known = self
            .security()
            .map(|g| g.superseded_index())
            .unwrap_or_default();
        let inherited = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .chain(known.into_iter().rev());
        let limit = out.len() + crate::format::index::MAX_INHERITED_SUPERSEDED;
        for id in inherited {
            if out.len() >= limit {
                break;
            }
            if seen.insert(id) {
                out.push(id);
            }
        }
        out
    }

    /// Load the master index. With `for_writing`, packs that prune may delete
    /// are left out, so a backup stores their blobs again (format.md §9).
    /// Damaged index files are skipped and returned.
    pub fn load_index(&self, for_writing: bool) -> Result<Vec<Error>> {
        // Deletion lists first: a list read after the index files could be
        // gone already (its prune finished), while the index files read
        // before still named the packs that prune then deleted.
        let skip = if for_writing {
            self.deletion_candidates()?
        } else {
            HashSet::new()
        };
        let (files, errors) = self.read_index_files()?;
        let superseded = self.superseded_index_ids(&files);
        let mut mi = MasterIndex::default();
        for (id, f) in &files {
            if !superseded.contains(id) {
                mi.add_file(f, &skip);
            }
        }
        *self.index.write_locked() = Arc::new(mi);
        Ok(errors)
    }

    /// Read the header of a stored pack: its blob type and entries.
    pub fn read_pack_header(&self, t: BlobType, id: &Id, size: u64) -> Result<IndexPack> {
        let name = pack_name(t, id);
        if size < (TRAILER_LEN + crate::crypto::SEAL_OVERHEAD) as u64 {
            return Err(Error::damaged(&name, "too short to be a pack"));
        }
        let trailer =
            self.backend
                .get_range(&name, size - TRAILER_LEN as u64, TRAILER_LEN as u64)?;
        let hl = parse_trailer(&trailer, &name)? as u64;
        if hl + TRAILER_LEN as u64 > size {
            return Err(Error::damaged(&name, "header length beyond the pack"));
        }
        // The packer closes a pack once its blobs reach the pack size, and
        // a stored blob takes at least SEAL_OVERHEAD + 1 bytes: a longer
        // header was not written by ironvault (and is not read into memory).
        let most_blobs = self.config.pack_size / (crate::crypto::SEAL_OVERHEAD as u64 + 1) + 1;
        let longest = (crate::crypto::SEAL_OVERHEAD + 6) as u64
            + most_blobs * crate::format::pack::ENTRY_LEN as u64;
        if hl > longest {
            return Err(Error::damaged(
                &name,
                format!("header length {hl} is more than a pack of this repository can have"),
            ));
        }
        let sealed = self
            .backend
            .get_range(&name, size - TRAILER_LEN as u64 - hl, hl)?;
        let (ht, entries) = read_header(&self.master, &sealed, size, &name)?;
        if ht != t {
            return Err(Error::damaged(
                &name,
                "header blob type differs from its directory",
            ));
        }
        Ok(IndexPack::from_entries(*id, t, size, &entries))
    }

    /// Every pack in storage (names that are not a pack id are skipped;
    /// `check` reports them).
    pub fn stored_packs(&self) -> Result<Vec<StoredPack>> {
        let mut out = Vec::new();
        for t in [BlobType::Data, BlobType::Tree] {
            let kind = ObjectKind::Pack(t);
            for o in self.backend.list(kind.dir())? {
                if let Some(id) = kind.parse_name(&o.name) {
                    out.push(StoredPack {
                        t,
                        id,
                        size: o.size,
                        name: o.name,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Find packs that are stored but in no index (an interrupted backup
    /// leaves them), verify each whole (`verify_unindexed_pack`) and add
    /// those that are sound to the loaded index. Returns them so the caller
    /// lists them in its next index file, and one line for each pack left
    /// alone because it is damaged (or planted); packs named in a deletion
    /// list are left alone too (format.md §9). Packs the index lists but
    /// storage has lost are dropped from the loaded index in the same pass,
    /// so a writer stores their blobs again instead of referencing data that
    /// is gone.
    pub fn adopt_unindexed_packs(&self) -> Result<Adoption> {
        let skip = self.deletion_candidates()?;
        let listed = self.stored_packs()?;
        let stored: crate::format::id::IdSet = listed.iter().map(|p| p.id).collect();
        self.forget_missing_packs(&stored)?;
        let idx = self.index();
        let mut out = Adoption::default();
        for p in listed {
            if idx.packs().contains_key(&p.id) || skip.contains(&p.id) {
                continue;
            }
            match self.verify_unindexed_pack(&p) {
                Ok(Ok(ip)) => out.packs.push(ip),
                Ok(Err(why)) => out.refused.push(format!(
                    "{} is not reused: {why} (damaged, or not written by ironvault); 'ironvault check --read-data' lists such packs: delete it or run 'ironvault prune'",
                    p.name
                )),
                // Gone since the listing: a prune deleted it.
                Err(e) if is_not_found(&e) => {}
                // Its blobs are stored again; the next run tries it again.
                Err(e) => out
                    .refused
                    .push(format!("{} is not reused this time: {e}", p.name)),
            }
        }
        if !out.packs.is_empty() {
            let mut guard = self.index.write_locked();
            let mi = Arc::make_mut(&mut guard);
            for p in &out.packs {
                mi.add_pack(p);
            }
        }
        Ok(out)
    }

    /// Drop from the loaded index every pack not in `stored` (packs that an
    /// index file lists but storage has lost), so writers store those blobs again.
    pub fn forget_missing_packs(&self, stored: &crate::format::id::IdSet) -> Result<()> {
        let mut guard = self.index.write_locked();
        let kept = guard.retain_packs(|p| stored.contains(p));
        *guard = Arc::new(kept);
        Ok(())
    }
}
