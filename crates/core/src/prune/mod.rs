//! Prune: delete packs no snapshot needs and repack packs with too much
//! unused space, safely while other hosts back up (format.md §9).
//!
//! Phase 1 holds a shared lock, reads every snapshot (the set S1), decides
//! per pack (`plan`), copies the kept blobs of packs to repack into new
//! packs and verifies them, writes a `deletions/` list of candidate packs and
//! lists the locks (L1). Phase 2 waits until every lock in L1 has ended,
//! reads the snapshots that appeared since S1, withdraws each candidate
//! holding a blob they need that lives nowhere else, writes one index file
//! that supersedes all others and no longer lists the packs to delete, then
//! deletes the packs, the old index files and the deletion list. A prune
//! killed at any point leaves a repository that `check` passes: the packs it
//! deleted were already out of the index, and backups keep away from the
//! packs of a deletion list until a later prune finishes the job.

pub mod copies;
mod deletion;
pub mod erasure;
mod phase2;
pub mod plan;
mod repack;

use crate::backend::is_not_found;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::id::IdSet;
use crate::format::kind::pack_name;
use crate::format::{BlobType, Id, ObjectKind};
use crate::repo::lock::{Lock, StorageClock};
use crate::repo::Repository;
use deletion::{
    locks_besides, other_prunes, tidy_superseded_index_files, wait_for_locks, write_deletion_list,
};
use plan::{IndexView, MaxUnused, Plan};
use repack::repack;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub max_unused: MaxUnused,
    /// At most this many bytes of packs are repacked in one run (erasures excepted).
    pub max_repack_size: Option<u64>,
    /// Decide and report only.
    pub dry_run: bool,
    /// How often phase 2 looks again at the locks it waits for.
    pub poll: Duration,
    /// In a dry run, act as if these snapshots were gone (`forget --prune --dry-run`).
    pub ignore_snapshots: Vec<Id>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            max_repack_size: None,
            dry_run: false,
            poll: Duration::from_secs(2),
            ignore_snapshots: Vec::new(),
        }
    }
}

/// What a prune did (or, in a dry run, would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub packs_before: usize,
    pub bytes_before: u64,
    /// Stored bytes of blobs the snapshots use, before the prune.
    pub used_bytes: u64,
    /// Stored bytes of blobs nothing uses, before the prune.
    pub unused_bytes: u64,
    /// Bytes of stored packs no index lists (a backup in progress, or left
    /// by an interrupted backup or prune).
    pub unindexed_bytes: u64,
    /// Packs deleted whole (nothing in them was needed).
    pub packs_deleted: usize,
    /// Packs whose needed blobs were copied to new packs before they were deleted.
    pub packs_repacked: usize,
    /// Stored packs no index listed, deleted.
    pub unindexed_deleted: usize,
    /// Packs repacking would help but `--max-repack-size` left for a later run.
    pub packs_deferred: usize,
    pub blobs_repacked: u64,
    pub packs_written: u64,
    pub bytes_written: u64,
    /// Bytes of the packs deleted.
    pub bytes_deleted: u64,
    /// Bytes deleted minus bytes written.
    pub bytes_freed: u64,
    /// Bytes written minus bytes deleted, when a repacked pack was withdrawn
    /// (its copies stay as duplicates until the next prune).
    pub bytes_grown: u64,
    /// After the prune (None in a dry run).
    pub packs_after: Option<usize>,
    /// After the prune (an estimate in a dry run).
    pub bytes_after: u64,
    /// Candidates kept after all because a snapshot made meanwhile needs them.
    pub withdrawn: Vec<String>,
    /// Locks phase 2 waited for, and how long.
    pub waited_for_locks: usize,
    pub wait_seconds: f64,
    pub index_files_replaced: usize,
    /// Blobs of erasure requests now gone from every pack.
    pub erased_blobs: usize,
    /// Blobs of erasure requests still used by snapshots (shared through
    /// deduplication with kept files, or stored again by a backup since),
    /// each with a file that uses it.
    pub not_erased: Vec<crate::usage::SharedBlob>,
    pub erasure_requests_completed: Vec<String>,
    /// Erasure requests kept for the next prune: some of their blobs sit in
    /// packs that snapshots made during this prune need.
    pub erasure_requests_pending: Vec<String>,
    /// Abandoned deletion lists of earlier, interrupted prunes that this one replaced.
    pub abandoned_lists_removed: usize,
    /// Packs holding a copy prune would have kept that turned out damaged:
    /// left as they are (with what is wrong), other copies kept instead.
    pub damaged_packs: Vec<String>,
}

/// Callbacks for long work: progress (stage, done, total) and notices.
pub struct Observer<'a> {
    pub progress: &'a (dyn Fn(&str, u64, u64) + Sync),
    pub notice: &'a dyn Fn(&str),
}

/// Prune the repository.
pub fn prune(repo: Arc<Repository>, opts: &PruneOptions, obs: &Observer) -> Result<PruneReport> {
    let b = repo.backend().clone();
    let key = *repo.master_key();
    let lock = Lock::unless_dry_run(opts.dry_run, b.clone(), key, false)?;
    // Locks are judged by the storage's clock, but a host whose own clock is
    // far off is misconfigured (and older versions still judge by it).
    let clock = lock.as_ref().map_or_else(StorageClock::local, Lock::clock);
    clock.check_skew(SKEW_REFUSES)?;
    let own = lock.as_ref().map(|l| l.name().to_string());
    let abandoned = other_prunes(&repo, own.as_deref(), None, &clock, opts.dry_run, obs)?;
    let mut r = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };

    // Phase 1: what S1 needs. Snapshots are listed before the index is
    // read: a backup writes its index files before its snapshot, so every
    // snapshot listed has its blobs in the index read after.
    let mut snaps = repo.snapshot_ids()?;
    let errs = repo.load_index(false)?;
    if let Some(e) = errs.first() {
        return Err(Error::Failed(format!(
            "{e}; prune needs every index file (it would take the packs it lists for unused): run 'ironvault repair index' first"
        )));
    }
    let idx = repo.index();
    let stored = repo.stored_packs()?;
    let view = IndexView::new(&idx, &stored)?;
    if opts.dry_run {
        snaps.retain(|s| !opts.ignore_snapshots.contains(s));
    }
    let mut used = IdSet::default();
    let mut s1 = Vec::with_capacity(snaps.len());
    for (i, sid) in snaps.iter().enumerate() {
        (obs.progress)("reading snapshots", i as u64, snaps.len() as u64);
        interrupted()?;
        let Some(s) = load_unless_forgotten(&repo, sid)? else {
            continue;
        };
        plan::walk(&repo, &s.tree, &mut used, &mut Vec::new())?;
        s1.push(*sid);
    }
    let snaps = s1;
    if let Some(missing) = used.iter().find(|b| !idx.contains(b)) {
        return Err(Error::Failed(format!(
            "blob {} that a snapshot needs is in no index; prune deletes nothing while data is missing: run 'ironvault check', then 'ironvault repair'",
            missing.short()
        )));
    }
    let requests = repo.erasure_requests()?;
    let erase: IdSet = requests
        .iter()
        .flat_map(|(_, q)| q.blobs.iter().copied())
        .collect();
    let mut verifier = copies::CopyVerifier::new(&repo);
    let plan = copies::plan_with_sound_copies(
        &view,
        used,
        snaps.iter().copied().collect(),
        &erase,
        opts,
        &mut verifier,
        obs,
    )?;
    describe_plan(&plan, &stored, &mut r);
    if opts.dry_run {
        // Estimates: unindexed packs may belong to a backup in progress
        // (whose snapshot will need them), so they are not counted as freed.
        let repack_ids: IdSet = plan.repack.iter().map(|p| p.id).collect();
        r.blobs_repacked = plan
            .chosen
            .values()
            .filter(|l| repack_ids.contains(&l.pack))
            .count() as u64;
        r.bytes_written = plan.repack.iter().map(|p| p.used).sum();
        r.bytes_freed = r
            .bytes_deleted
            .saturating_sub(r.unindexed_bytes)
            .saturating_sub(r.bytes_written);
        r.bytes_after = r.bytes_before - r.bytes_freed;
        r.not_erased = crate::usage::users(&repo, &snaps, &plan.erasure_still_used)?;
        r.damaged_packs = damaged_names(&verifier, &repo);
        return Ok(r);
    }
    let lock = lock.expect("a lock outside dry runs");
    let candidates = plan.candidates();
    if candidates.is_empty() && abandoned.is_empty() && requests.is_empty() {
        r.packs_after = Some(r.packs_before);
        r.bytes_after = r.bytes_before;
        r.index_files_replaced = tidy_superseded_index_files(&repo)?;
        r.damaged_packs = damaged_names(&verifier, &repo);
        lock.release()?;
        return Ok(r);
    }
    r.bytes_deleted = 0; // from here on, what was deleted
    repack(&repo, &plan, &candidates, &lock, &mut r, obs)?;
    failpoint::hit("prune-repacked");

    // The deletion list, then the locks that were there before it (L1).
    let list_name = write_deletion_list(&repo, &candidates, own.as_deref())?;
    failpoint::hit("prune-deletions-written");
    // Two prunes that started together: both may back off, neither proceeds unsafely.
    if let Err(e) = other_prunes(
        &repo,
        own.as_deref(),
        Some(&list_name),
        &lock.clock(),
        false,
        obs,
    ) {
        let _ = b.delete(&list_name);
        return Err(e);
    }
    failpoint::pause("prune-deletions-listed");
    let l1 = locks_besides(b.as_ref(), &key, own.as_deref())?;

    // Phase 2.
    let phase2 = (|| {
        wait_for_locks(b.as_ref(), &lock, &key, &l1, opts.poll, &mut r, obs)?;
        lock.confirm()?;
        lock.clock().check_skew(SKEW_REFUSES)?;
        phase2::phase2(&repo, &plan, &candidates, &lock, &mut verifier, &mut r, obs)
    })();
    let (to_delete, fresh) = match phase2 {
        Ok(d) => d,
        Err(e) => {
            // Nothing is deleted yet: withdraw the list so backups may use its packs again.
            let _ = b.delete(&list_name);
            return Err(e);
        }
    };
    failpoint::hit("prune-index-written");
    // The new index supersedes every file it replaced: removing them is tidying.
    r.index_files_replaced = tidy_superseded_index_files(&repo)?;
    failpoint::hit("prune-old-index-deleted");
    let total = to_delete.len() as u64;
    lock.confirm()?;
    for (i, (t, pid, size)) in to_delete.iter().enumerate() {
        (obs.progress)("deleting packs", i as u64, total);
        match b.delete(&pack_name(*t, pid)) {
            Ok(()) => r.bytes_deleted += size,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        failpoint::hit("prune-pack-deleted");
    }
    failpoint::hit("prune-packs-deleted");
    // What went, by what phase 1 meant for it (withdrawn packs stayed).
    let gone: IdSet = to_delete.iter().map(|d| d.1).collect();
    let count = |ids: &mut dyn Iterator<Item = Id>| ids.filter(|i| gone.contains(i)).count();
    r.packs_deleted = count(&mut plan.delete.iter().map(|p| p.id));
    r.packs_repacked = count(&mut plan.repack.iter().map(|p| p.id));
    r.unindexed_deleted = count(&mut plan.unindexed.iter().map(|p| p.id));
    for name in abandoned.iter().chain(std::iter::once(&list_name)) {
        match b.delete(name) {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    // The packs are gone: what remains is accounting, which must not turn a
    // finished prune into a failed one.
    if let Err(e) = erasure::finish(&repo, &requests, &plan.used, &fresh, &mut r) {
        (obs.notice)(&format!(
            "could not account for the erasure requests ({e}); they stay, and the next prune reports them"
        ));
    }
    r.abandoned_lists_removed = abandoned.len();
    r.damaged_packs = damaged_names(&verifier, &repo);
    let after = repo.stored_packs()?;
    r.packs_after = Some(after.len());
    r.bytes_after = after.iter().map(|p| p.size).sum();
    r.bytes_freed = r.bytes_deleted.saturating_sub(r.bytes_written);
    r.bytes_grown = r.bytes_written.saturating_sub(r.bytes_deleted);
    lock.release()?;
    Ok(r)
}

/// What a clock too far from the storage's stops.
const SKEW_REFUSES: &str = "prune deletes data";

/// A snapshot, or None if it was removed since it was listed (a forget
/// running beside the prune).
pub(super) fn load_unless_forgotten(
    repo: &Repository,
    id: &Id,
) -> Result<Option<crate::format::snapshot::Snapshot>> {
    if repo
        .backend()
        .size(&ObjectKind::Snapshot.name(id))?
        .is_none()
    {
        return Ok(None);
    }
    match repo.load_snapshot(id) {
        Ok(s) => Ok(Some(s)),
        Err(Error::SnapshotNotFound(_)) => Ok(None),
        Err(e) => Err(Error::Failed(format!(
            "snapshot {} cannot be read ({e}); prune cannot tell what it needs: run 'ironvault check'",
            id.short()
        ))),
    }
}

pub(super) fn interrupted() -> Result<()> {
    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    Ok(())
}

fn describe_plan(plan: &Plan, stored: &[crate::repo::StoredPack], r: &mut PruneReport) {
    r.snapshots = plan.snapshots.len();
    r.packs_before = stored.len();
    r.bytes_before = stored.iter().map(|p| p.size).sum();
    let all = plan.delete.iter().chain(&plan.repack).chain(&plan.kept);
    for p in all {
        r.used_bytes += p.used;
        r.unused_bytes += p.unused;
    }
    r.packs_deleted = plan.delete.len();
    r.packs_repacked = plan.repack.len();
    r.unindexed_deleted = plan.unindexed.len();
    r.unindexed_bytes = plan.unindexed.iter().map(|p| p.size).sum();
    r.packs_deferred = plan.deferred.len();
    // In a dry run, what would go; a real run counts what did go.
    r.bytes_deleted = plan
        .delete
        .iter()
        .chain(&plan.repack)
        .map(|p| p.size)
        .chain(plan.unindexed.iter().map(|p| p.size))
        .sum();
}

/// The packs the verifier found damaged, by name and what is wrong, sorted.
fn damaged_names(v: &copies::CopyVerifier<'_>, repo: &Repository) -> Vec<String> {
    let idx = repo.index();
    let mut out: Vec<String> = v
        .damaged()
        .map(|(id, why)| {
            let t = idx.packs().get(id).map_or(BlobType::Data, |p| p.0);
            format!("{}: {why}", pack_name(t, id))
        })
        .collect();
    out.sort();
    out
}
