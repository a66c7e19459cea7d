//! The last step of every backup (files or a stream): the snapshot object.

use super::{BackupCounts, BackupOptions, BackupResult, Progress, WarnFn};
use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::Id;
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use std::sync::atomic::Ordering;

/// Last step of every backup: build the snapshot, confirm the lock, write
/// the snapshot (or, in a dry run, only compute its id), release the lock.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_snapshot(
    repo: &Repository,
    lock: Lock,
    sink: &BlobSink,
    opts: &BackupOptions,
    tree: Id,
    paths: Vec<String>,
    parent: Option<Id>,
    mut summary: Summary,
    progress: &Progress,
    warn: WarnFn<'_>,
) -> Result<BackupResult> {
    let mut tags = opts.tags.clone();
    if let Some(g) = summary.signals.as_mut() {
        g.files_deleted = progress.files_deleted.load(Ordering::Relaxed);
        g.extensions_renamed = progress.extensions_renamed.load(Ordering::Relaxed);
        g.ransom_notes = progress.ransom_notes.load(Ordering::Relaxed);
        g.data_added_raw = sink.stats.data_bytes_added_raw.load(Ordering::Relaxed);
        g.data_added_incompressible = sink.stats.data_bytes_incompressible.load(Ordering::Relaxed);
    }
    if let Some((t, base)) = &opts.suspect {
        let why = super::signals::judge(&summary, t, base);
        if let (Some(why), Some(g)) = (why, summary.signals.as_mut()) {
            // Written tagged: no later rewrite or delete is needed, which
            // an append-only server would refuse.
            if !tags.iter().any(|t| t == super::signals::SUSPECT_TAG) {
                tags.push(super::signals::SUSPECT_TAG.to_string());
            }
            g.suspect = Some(why);
        }
    }
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let snapshot = Snapshot {
        version: 1,
        time: opts.time.clone().unwrap_or_else(|| summary.started.clone()),
        tree,
        paths,
        hostname: opts.hostname.clone(),
        username: crate::host::username(),
        uid,
        gid,
        tags,
        parent,
        program_version: format!("ironvault {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary.clone()),
    };
    let bytes_added_stored = sink.stats.bytes_added_stored.load(Ordering::Relaxed);
    let counts = BackupCounts {
        dirs_new: progress.dirs_new.load(Ordering::Relaxed),
        dirs_changed: progress.dirs_changed.load(Ordering::Relaxed),
        dirs_unmodified: progress.dirs_unmodified.load(Ordering::Relaxed),
        data_blobs: sink.stats.data_blobs_added.load(Ordering::Relaxed),
        tree_blobs: sink.stats.tree_blobs_added.load(Ordering::Relaxed),
        bytes_added_raw: sink.stats.bytes_added_raw.load(Ordering::Relaxed),
        bytes_processed: progress.bytes_processed.load(Ordering::Relaxed),
    };
    if opts.dry_run {
        let snapshot_id = repo
            .id_keys()
            .snapshot_id(&crate::format::to_cbor(&snapshot)?);
        let _ = lock.release();
        return Ok(BackupResult {
            snapshot_id,
            snapshot,
            parent,
            summary,
            packs_written: 0,
            bytes_added_stored,
            counts,
            reused_packs: (0, 0),
        });
    }
    // The last safe point: a stop requested while the packs were written
    // (or uploaded) still leaves no snapshot, only packs the next run reuses.
    if crate::interrupt::requested() {
        lock.release()?;
        return Err(Error::Interrupted);
    }
    lock.confirm()?;
    let snapshot_id = repo.save_snapshot(&snapshot)?;
    if let Err(e) = lock.release() {
        // The snapshot is saved; a lock left behind goes stale on its own.
        warn(&format!(
            "could not remove the lock ({e}); 'ironvault unlock' removes it"
        ));
    }
    Ok(BackupResult {
        snapshot_id,
        snapshot,
        parent,
        summary,
        packs_written: sink.stats.packs_written.load(Ordering::Relaxed),
        bytes_added_stored,
        counts,
        reused_packs: (0, 0),
    })
}
