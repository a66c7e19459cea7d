//! Copy snapshots between related repositories (same id key and chunker
//! secret, each with its own master key): every blob the destination lacks is
//! read from the source, verified against its id, sealed with the
//! destination's key and stored; then the snapshot object is written with its
//! plaintext unchanged, so it keeps its id, time, host and tags. The original
//! source files are never read.
//!
//! Order per snapshot is the backup's: packs, then index, then the snapshot.
//! An interrupted copy leaves packs that the next copy (or backup) adopts
//! once they verify.

use crate::error::{Error, Result};
use crate::format::id::IdSet;
use crate::format::snapshot::Snapshot;
use crate::format::{BlobType, Id};
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Live counters, readable while a copy runs (for progress displays).
#[derive(Default, Debug)]
pub struct CopyProgress {
    /// Snapshots finished (copied or already present).
    pub snapshots_done: AtomicU64,
    /// Blobs to copy for the current snapshot, and how many are done.
    pub blobs_total: AtomicU64,
    pub blobs_done: AtomicU64,
    /// Plain bytes of copied blobs so far (all snapshots).
    pub bytes_copied: AtomicU64,
}

/// What one snapshot's copy did.
#[derive(Debug, Clone)]
pub struct CopiedSnapshot {
    pub id: Id,
    pub snapshot: Snapshot,
    /// False if the destination already had it (nothing was done).
    pub copied: bool,
    pub blobs_copied: u64,
    /// Plain (uncompressed) bytes of the blobs copied.
    pub bytes_copied: u64,
    /// What they take at the destination (compressed and encrypted), as a
    /// backup's `data_added` counts.
    pub bytes_stored: u64,
}

/// Refuse to copy between unrelated repositories.
pub fn check_related(src: &Repository, dst: &Repository) -> Result<()> {
    let (a, b) = (src.config(), dst.config());
    if a.id_key != b.id_key || a.chunker_secret != b.chunker_secret {
        return Err(Error::Failed(format!(
            "repositories {} and {} are not related (their id and chunker secrets differ), so blob ids and snapshot ids would not carry over; \
             create the destination with 'ironvault init --repo DEST --from-repo {}' and copy into that",
            src.backend().location(),
            dst.backend().location(),
            src.backend().location()
        )));
    }
    Ok(())
}

/// Copy the snapshots `ids` of `src` into `dst`. Calls `done` after each
/// snapshot, and `warn` with each pack of the destination left alone
/// (one no index lists that does not verify). Holds shared locks on both
/// repositories while it runs.
pub fn copy_snapshots(
    src: Arc<Repository>,
    dst: Arc<Repository>,
    ids: &[Id],
    threads: usize,
    progress: &CopyProgress,
    warn: &dyn Fn(&str),
    done: &mut dyn FnMut(&CopiedSnapshot),
) -> Result<Vec<CopiedSnapshot>> {
    check_related(&src, &dst)?;
    let src_lock = Lock::acquire(src.backend().clone(), *src.master_key(), false)?;
    let dst_lock = match Lock::acquire(dst.backend().clone(), *dst.master_key(), false) {
        Ok(l) => l,
        Err(e) => {
            let _ = src_lock.release();
            return Err(e);
        }
    };
    let mut to = Report {
        progress,
        warn,
        done,
    };
    let result = copy_locked(src, dst.clone(), ids, threads, &dst_lock, &mut to);
    // The copy's own outcome comes first; a lock left behind only goes stale.
    let released = src_lock.release().and(dst_lock.release());
    let copied = result?;
    released?;
    Ok(copied)
}

/// Where a running copy tells what it does.
struct Report<'a> {
    progress: &'a CopyProgress,
    warn: &'a dyn Fn(&str),
    done: &'a mut dyn FnMut(&CopiedSnapshot),
}

fn copy_locked(
    src: Arc<Repository>,
    dst: Arc<Repository>,
    ids: &[Id],
    threads: usize,
    dst_lock: &Lock,
    to: &mut Report<'_>,
) -> Result<Vec<CopiedSnapshot>> {
    let progress = to.progress;
    src.load_index(false)?;
    dst.load_index(true)?;
    // Only packs that verify are reused: a pack planted in the destination
    // must not stand in for blobs the source holds intact.
    let adoption = dst.adopt_unindexed_packs()?;
    for line in &adoption.refused {
        (to.warn)(line);
    }
    let present: IdSet = dst.snapshot_ids()?.into_iter().collect();
    let sink = BlobSink::new(dst.clone(), dst.config().compression.level);
    sink.guard_with(dst_lock);
    sink.adopt(adoption.packs)?;
    // Trees already walked in this run (shared subtrees are walked once).
    let mut walked = IdSet::default();
    let mut out = Vec::new();
    for id in ids {
        let plain = src.load_snapshot_plain(id)?;
        let snapshot: Snapshot =
            crate::format::from_cbor(&plain, &format!("snapshot {}", id.short()))?;
        if present.contains(id) {
            let c = CopiedSnapshot {
                id: *id,
                snapshot,
                copied: false,
                blobs_copied: 0,
                bytes_copied: 0,
                bytes_stored: 0,
            };
            progress.snapshots_done.fetch_add(1, Ordering::Relaxed);
            (to.done)(&c);
            out.push(c);
            continue;
        }
        let before_blobs = sink.stats.blobs_added.load(Ordering::Relaxed);
        let before_bytes = sink.stats.bytes_added_raw.load(Ordering::Relaxed);
        let before_stored = sink.stats.bytes_added_stored.load(Ordering::Relaxed);
        // Walk every tree: a tree the destination already has may still lack
        // children (an interrupted run can index a tree pack before the data
        // pack it refers to), so presence of a tree proves nothing below it.
        let mut data = Vec::new();
        let mut stack = vec![snapshot.tree];
        while let Some(t) = stack.pop() {
            if crate::interrupt::requested() {
                return Err(Error::Interrupted);
            }
            if !walked.insert(t) {
                continue;
            }
            let tplain = src.read_blob(BlobType::Tree, &t)?;
            let tree: crate::format::tree::Tree =
                crate::format::from_cbor(&tplain, &format!("tree {}", t.short()))?;
            for n in &tree.nodes {
                if let Some(s) = n.subtree {
                    stack.push(s);
                }
                for b in n.content.iter().flatten() {
                    if sink.claim(b) {
                        data.push(*b);
                    }
                }
            }
            if sink.claim(&t) {
                sink.store(BlobType::Tree, t, &tplain)?;
            }
        }
        copy_data_blobs(&src, &sink, data, threads, progress)?;
        sink.finish()?;
        if crate::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        // A lock that went stale may have let a prune delete packs this
        // snapshot relies on: refuse to write it (format.md §9).
        dst_lock.confirm()?;
        let new_id = dst.save_snapshot_plain(&plain)?;
        if new_id != *id {
            return Err(Error::Failed(format!(
                "snapshot {} got id {} in the destination; the repositories are not related",
                id.short(),
                new_id.short()
            )));
        }
        let c = CopiedSnapshot {
            id: *id,
            snapshot,
            copied: true,
            blobs_copied: sink.stats.blobs_added.load(Ordering::Relaxed) - before_blobs,
            bytes_copied: sink.stats.bytes_added_raw.load(Ordering::Relaxed) - before_bytes,
            bytes_stored: sink.stats.bytes_added_stored.load(Ordering::Relaxed) - before_stored,
        };
        progress.snapshots_done.fetch_add(1, Ordering::Relaxed);
        (to.done)(&c);
        out.push(c);
    }
    Ok(out)
}

/// Read each blob from `src` (in pack order, for locality) and store it in
/// the sink, on `threads` threads.
fn copy_data_blobs(
    src: &Repository,
    sink: &BlobSink,
    mut blobs: Vec<Id>,
    threads: usize,
    progress: &CopyProgress,
) -> Result<()> {
    let idx = src.index();
    blobs.sort_by_key(|b| idx.get(b).map(|l| (l.pack, l.offset)));
    progress
        .blobs_total
        .store(blobs.len() as u64, Ordering::Relaxed);
    progress.blobs_done.store(0, Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        if crate::interrupt::requested() {
                            return Err(Error::Interrupted);
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = blobs.get(i) else {
                            return Ok(());
                        };
                        let r = src.read_blob(BlobType::Data, id).and_then(|plain| {
                            sink.store(BlobType::Data, *id, &plain).map(|_| plain)
                        });
                        let plain = match r {
                            Ok(p) => p,
                            Err(e) => {
                                // Stop the other workers early.
                                next.store(usize::MAX / 2, Ordering::Relaxed);
                                return Err(e);
                            }
                        };
                        progress.blobs_done.fetch_add(1, Ordering::Relaxed);
                        progress
                            .bytes_copied
                            .fetch_add(plain.len() as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut first = Ok(());
        for w in workers {
            let r = w
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a copy worker thread panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}
