//! Packer: gathers sealed blobs into packs of one type, writes each finished
//! pack under the hash of its bytes, and writes an index file after every
//! 64 packs (and at the end) — always after the packs it lists are durable.

use super::Repository;
use crate::error::{Error, Result};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::kind::pack_name;
use crate::format::pack::{write_header, PackEntry};
use crate::format::{BlobType, Id, ObjectKind};
use crate::sync::Locked;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Index files are written at least this often (in packs) during a backup.
pub const INDEX_EVERY_PACKS: usize = 64;
/// ... and at least this often in time.
pub const INDEX_EVERY: Duration = Duration::from_secs(5 * 60);

/// Room reserved past the target pack size: about two average chunks.
const TYPICAL_BLOB_STORED: usize = 2 << 20;

#[derive(Default)]
struct OpenPack {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// Bytes a sealed blob adds to its body: nonce (24), compression byte, tag (16).
const SEAL_OVERHEAD: usize = 41;

/// A data blob whose stored body is at least this share of its plain size
/// did not compress.
pub const INCOMPRESSIBLE: f64 = 0.95;

/// Counters of what was written.
#[derive(Default, Debug)]
pub struct WriteStats {
    pub blobs_added: AtomicU64,
    /// Of `blobs_added`, the data blobs and the tree blobs.
    pub data_blobs_added: AtomicU64,
    pub tree_blobs_added: AtomicU64,
    pub bytes_added_raw: AtomicU64,
    pub bytes_added_stored: AtomicU64,
    /// Plain bytes of the new data blobs, and of those among them that did
    /// not compress (stored body at least [`INCOMPRESSIBLE`] of the plain
    /// size): encrypted data does not compress, and a backup of files an
    /// attacker encrypted adds mostly such data.
    pub data_bytes_added_raw: AtomicU64,
    pub data_bytes_incompressible: AtomicU64,
    pub packs_written: AtomicU64,
    pub index_files_written: AtomicU64,
}

/// Everything a writer needs to add blobs to a repository.
pub struct BlobSink {
    repo: Arc<Repository>,
    /// The index as loaded when the sink was made (it does not change during a run).
    index: Arc<crate::repo::index::MasterIndex>,
    level: i32,
    pack_size: usize,
    open: [Mutex<OpenPack>; 2],
    /// Ids added during this run (the master index holds the rest).
    added: Mutex<crate::format::id::IdSet>,
    pending_index: Mutex<(Vec<IndexPack>, Instant)>,
    /// Checked before every index file: the writer's lock is still trusted.
    guard: Mutex<Option<crate::repo::lock::LockGuard>>,
    /// Every pack written by this sink, when asked for (a caller that verifies them).
    written: Mutex<Option<Vec<IndexPack>>>,
    /// Count what would be stored, write nothing.
    dry_run: std::sync::atomic::AtomicBool,
    /// Serialises index writes so packs appear in exactly one index file.
    pub stats: WriteStats,
}

impl BlobSink {
    /// A sink writing to `repo` with zstd `level` (0 = no compression).
    pub fn new(repo: Arc<Repository>, level: i32) -> BlobSink {
        let pack_size = repo.config().pack_size as usize;
        BlobSink {
            index: repo.index(),
            repo,
            level,
            pack_size,
            open: [
                Mutex::new(OpenPack::default()),
                Mutex::new(OpenPack::default()),
            ],
            added: Mutex::new(Default::default()),
            pending_index: Mutex::new((Vec::new(), Instant::now())),
            written: Mutex::new(None),
            guard: Mutex::new(None),
            dry_run: std::sync::atomic::AtomicBool::new(false),
            stats: WriteStats::default(),
        }
    }

    /// Write nothing from now on; only count.
    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.store(on, Ordering::Relaxed);
    }

    /// The repository written to.
    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// True if the blob is indexed or already added in this run.
    pub fn is_known(&self, id: &Id) -> bool {
        self.index.contains(id) || self.added.locked().contains(id)
    }

    /// Claim a blob id for writing: true if this caller must store it.
    pub fn claim(&self, id: &Id) -> bool {
        if self.index.contains(id) {
            return false;
        }
        self.added.locked().insert(*id)
    }

    /// Seal and store a claimed blob.
    pub fn store(&self, t: BlobType, id: Id, plain: &[u8]) -> Result<()> {
        let raw_len = u32::try_from(plain.len())
            .map_err(|_| Error::Internal(format!("blob {} is larger than 4 GiB", id.short())))?;
        let sealed = self.repo.seal_blob(t, &id, plain, self.level);
        self.count_added(t, raw_len, sealed.len());
        self.append(t, id, &sealed, raw_len)
    }

    /// Store a claimed blob that is already sealed (as read from another pack
    /// of this repository: a blob's seal binds its type and id, not its pack).
    pub fn store_sealed(&self, t: BlobType, id: Id, sealed: &[u8], raw_len: u32) -> Result<()> {
        self.count_added(t, raw_len, sealed.len());
        self.append(t, id, sealed, raw_len)
    }

    /// Count one blob added (also in a dry run, which writes nothing).
    fn count_added(&self, t: BlobType, raw_len: u32, stored_len: usize) {
        let s = &self.stats;
        s.blobs_added.fetch_add(1, Ordering::Relaxed);
        let of_type = match t {
            BlobType::Data => &s.data_blobs_added,
            BlobType::Tree => &s.tree_blobs_added,
        };
        of_type.fetch_add(1, Ordering::Relaxed);
        if t == BlobType::Data {
            s.data_bytes_added_raw
                .fetch_add(u64::from(raw_len), Ordering::Relaxed);
            let body = stored_len.saturating_sub(SEAL_OVERHEAD) as f64;
            // Blobs too small to be compressed at all (seal_blob) say nothing.
            if raw_len >= 64 && body >= f64::from(raw_len) * INCOMPRESSIBLE {
                s.data_bytes_incompressible
                    .fetch_add(u64::from(raw_len), Ordering::Relaxed);
            }
        }
        s.bytes_added_raw
            .fetch_add(u64::from(raw_len), Ordering::Relaxed);
        s.bytes_added_stored
            .fetch_add(stored_len as u64, Ordering::Relaxed);
    }

    /// A sink for commands that rewrite existing data (`rewrite`, `repair
    /// snapshots`): it deduplicates against the index without deletion
    /// candidates and lost packs (so what it needs is written again), while
    /// the repository reads through the full index of stored packs (so
    /// trees in candidate packs, which a prune may still withdraw, are read).
    /// Returns the sink and the packs storage held.
    pub fn for_rewriting(
        repo: &Arc<Repository>,
        lock: Option<&crate::repo::lock::Lock>,
    ) -> Result<(BlobSink, crate::format::id::IdSet)> {
        repo.load_index(true)?;
        let stored: crate::format::id::IdSet = repo.stored_packs()?.iter().map(|p| p.id).collect();
        repo.forget_missing_packs(&stored)?;
        let sink = BlobSink::new(repo.clone(), repo.config().compression.level);
        if let Some(l) = lock {
            sink.guard_with(l);
        }
        repo.load_index(false)?;
        repo.forget_missing_packs(&stored)?;
        Ok((sink, stored))
    }

    /// Write no index file once `lock` may have gone stale: a prune may
    /// have deleted the packs it would list (format.md §9).
    pub fn guard_with(&self, lock: &crate::repo::lock::Lock) {
        *self.guard.locked() = Some(lock.guard());
    }

    /// Remember the packs written from now on (see `written_packs`).
    pub fn record_written(&self) {
        self.written.locked().get_or_insert_with(Vec::new);
    }

    /// The packs written since `record_written`.
    pub fn written_packs(&self) -> Vec<IndexPack> {
        self.written.locked().clone().unwrap_or_default()
    }

    /// Store a blob unless it is already known; true if it was stored.
    pub fn add(&self, t: BlobType, plain: &[u8]) -> Result<(Id, bool)> {
        let id = self.repo.id_keys().blob_id(t, plain);
        if self.claim(&id) {
            self.store(t, id, plain)?;
            Ok((id, true))
        } else {
            Ok((id, false))
        }
    }

    fn append(&self, t: BlobType, id: Id, sealed: &[u8], raw_len: u32) -> Result<()> {
        if self.dry_run.load(Ordering::Relaxed) {
            return Ok(());
        }
        let full = {
            let mut p = self.open[t as usize].locked();
            if p.buf.capacity() == 0 {
                // One allocation per pack instead of doubling up to twice its size.
                // Most packs end within a typical blob of the target size; a
                // rare large last blob costs one reallocation.
                let want = match t {
                    BlobType::Data => self.pack_size + TYPICAL_BLOB_STORED,
                    BlobType::Tree => 1 << 20,
                };
                p.buf.reserve_exact(want);
            }
            let offset = p.buf.len() as u64;
            p.buf.extend_from_slice(sealed);
            p.entries.push(PackEntry {
                id,
                offset,
                stored_len: sealed.len() as u32,
                raw_len,
            });
            if p.buf.len() >= self.pack_size {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        if let Some(p) = full {
            self.write_pack(t, p)?;
        }
        Ok(())
    }

    fn write_pack(&self, t: BlobType, mut p: OpenPack) -> Result<()> {
        if p.entries.is_empty() {
            return Ok(());
        }
        let header = write_header(self.repo.master_key(), t, &p.entries);
        p.buf.extend_from_slice(&header);
        let id = Id::hash_of(&p.buf);
        self.repo.backend().put(&pack_name(t, &id), &p.buf)?;
        self.stats.packs_written.fetch_add(1, Ordering::Relaxed);
        let ip = IndexPack::from_entries(id, t, p.buf.len() as u64, &p.entries);
        if let Some(w) = self.written.locked().as_mut() {
            w.push(ip.clone());
        }
        let due = {
            let mut pi = self.pending_index.locked();
            pi.0.push(ip);
            if pi.0.len() >= INDEX_EVERY_PACKS || pi.1.elapsed() >= INDEX_EVERY {
                pi.1 = Instant::now();
                Some(std::mem::take(&mut pi.0))
            } else {
                None
            }
        };
        if let Some(packs) = due {
            self.write_index(packs)?;
        }
        Ok(())
    }

    fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let guard = self.guard.locked().clone();
        if let Some(g) = guard {
            g.check()?;
        }
        let f = IndexFile {
            packs,
            supersedes: vec![],
        };
        let bytes = f.seal(self.repo.master_key())?;
        let id = Id::hash_of(&bytes);
        self.repo
            .backend()
            .put(&ObjectKind::Index.name(&id), &bytes)?;
        self.stats
            .index_files_written
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// List packs written by an earlier, interrupted run in this run's index.
    pub fn adopt(&self, packs: Vec<IndexPack>) -> Result<()> {
        if self.dry_run.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut pi = self.pending_index.locked();
        pi.0.extend(packs);
        Ok(())
    }

    /// Write the open packs and the remaining index entries.
    pub fn finish(&self) -> Result<()> {
        if self.dry_run.load(Ordering::Relaxed) {
            return Ok(());
        }
        for t in [BlobType::Data, BlobType::Tree] {
            let p = std::mem::take(&mut *self.open[t as usize].locked());
            self.write_pack(t, p)?;
        }
        let rest = std::mem::take(&mut self.pending_index.locked().0);
        self.write_index(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::lock::Lock;

    #[test]
    fn no_index_file_is_written_once_the_lock_may_have_gone_stale() {
        let (_d, repo) = crate::repo::test_repo();
        let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false).unwrap();
        let sink = BlobSink::new(repo.clone(), 3);
        sink.guard_with(&lock);
        sink.add(BlobType::Data, b"some data").unwrap();
        lock.guard().pretend_gap(Duration::from_secs(25 * 60));
        let e = sink.finish().unwrap_err().to_string();
        assert!(e.contains("without a refresh"), "{e}");
        // The pack went out, but no index file names it: a prune that took
        // the lock for stale may delete it without leaving a dangling entry.
        assert!(repo.backend().list("index/").unwrap().is_empty());
        assert_eq!(repo.backend().list("packs/data/").unwrap().len(), 1);
        // A fresh lock writes index files as usual.
        drop(lock);
        let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false).unwrap();
        let sink = BlobSink::new(repo.clone(), 3);
        sink.guard_with(&lock);
        sink.add(BlobType::Data, b"other data").unwrap();
        sink.finish().unwrap();
        assert_eq!(repo.backend().list("index/").unwrap().len(), 1);
    }
}
