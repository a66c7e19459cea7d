//! Backup: walk → chunk → dedup → seal → pack, then trees, index, snapshot.
//! This file is the orchestration: it picks the parent snapshot, starts the
//! stages, joins them, and commits.
//!
//! Stages, joined by bounded channels:
//! * the **walker** (`walk.rs`, calling thread) lists directories in name
//!   order, reuses the parent snapshot's node for unchanged files (size,
//!   mtime, ctime, inode), and sends changed files to the file readers;
//! * **file readers** (`reader.rs`, one per core) read, chunk and hash; new
//!   chunks go to the sealers;
//! * **sealers** (here, one per core) compress, encrypt and append to packs;
//! * the **assembler** (`assemble.rs`) receives walker events in walk order,
//!   waits for each file's result, and builds and stores one tree blob per
//!   directory;
//! * **commit** (`commit.rs`) flushes packs and index and writes the snapshot.
//!
//! Memory is bounded by the channel bounds below times the largest chunk.
//! The first fatal error aborts every stage (`Shared::fail`) and no snapshot
//! is written.

mod assemble;
mod commit;
pub mod exclude;
pub mod meta;
mod reader;
pub mod signals;
pub mod stream;
mod walk;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::{BlobType, Id};
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use crate::sync::Locked;
pub(crate) use commit::commit_snapshot;
use crossbeam_channel::bounded;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use walk::{Event, FileJob, Walker};

/// Which snapshot an incremental backup compares against.
#[derive(Clone, Debug, Default)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and paths.
    #[default]
    Auto,
    /// Read every file again.
    Force,
    /// This snapshot.
    Snapshot(Id),
}

/// What to back up and how.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub hostname: String,
    pub tags: Vec<String>,
    pub parent: ParentChoice,
    /// Record this time instead of now (RFC 3339).
    pub time: Option<String>,
    /// zstd level; 0 stores raw. None: the repository's default.
    pub compression: Option<i32>,
    /// File readers and sealers each; None: the number of cores.
    pub threads: Option<usize>,
    /// Counters to watch from another thread.
    pub progress: Option<Arc<Progress>>,
    /// What to leave out.
    pub excludes: exclude::Excludes,
    /// Compare files with the parent by size and times only (for file
    /// systems whose inode numbers are not stable, e.g. some FUSE or network mounts).
    pub ignore_inode: bool,
    /// Read and chunk everything but write nothing: report what would be added.
    pub dry_run: bool,
    /// Judge the backup's signals against these thresholds and the plan's
    /// baseline, and tag the snapshot `suspect` if they point to a mass
    /// encryption (`signals::judge`).
    pub suspect: Option<(signals::Thresholds, signals::Baseline)>,
}

impl BackupOptions {
    /// Defaults for `paths` on this host.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        BackupOptions {
            paths,
            hostname: crate::host::hostname(),
            tags: vec![],
            parent: ParentChoice::Auto,
            time: None,
            compression: None,
            threads: None,
            progress: None,
            excludes: Default::default(),
            ignore_inode: false,
            dry_run: false,
            suspect: None,
        }
    }
}

/// The outcome of a backup.
#[derive(Debug)]
pub struct BackupResult {
    pub snapshot_id: Id,
    pub snapshot: Snapshot,
    pub parent: Option<Id>,
    pub summary: Summary,
    pub packs_written: u64,
    pub bytes_added_stored: u64,
    /// What restic's summary reports beyond the snapshot's own summary.
    pub counts: BackupCounts,
    /// Packs no index listed that this backup took over (left by an
    /// interrupted backup or prune): (count, bytes). Information, not a
    /// warning: their data did not have to be stored again.
    pub reused_packs: (u64, u64),
}

/// Counts of a backup that the snapshot does not record (the `--json`
/// summary prints them under restic's names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupCounts {
    /// Directories the parent snapshot did not have.
    pub dirs_new: u64,
    /// Directories the parent snapshot had, with other contents.
    pub dirs_changed: u64,
    /// Directories stored exactly as in the parent snapshot.
    pub dirs_unmodified: u64,
    /// New data blobs (chunks) added to the repository.
    pub data_blobs: u64,
    /// New tree blobs (directory listings) added to the repository.
    pub tree_blobs: u64,
    /// Plain (uncompressed, unencrypted) bytes of the new blobs.
    pub bytes_added_raw: u64,
    /// Size of every file backed up, read or found unchanged.
    pub bytes_processed: u64,
}

impl BackupResult {
    /// True if some files could not be read or changed while being read (exit 3).
    pub fn is_partial(&self) -> bool {
        self.summary.errors > 0 || self.summary.changed_during_read > 0
    }
}

/// Callback for warnings (unreadable or changed files); must be cheap.
pub type WarnFn<'a> = &'a (dyn Fn(&str) + Sync);

/// State shared by all stages.
pub(crate) struct Shared<'a> {
    sink: BlobSink,
    warn: WarnFn<'a>,
    abort: AtomicBool,
    fatal: Mutex<Option<Error>>,
    progress: Arc<Progress>,
}

/// Live counters of a running backup (read them from another thread to show progress).
#[derive(Debug, Default)]
pub struct Progress {
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unmodified: AtomicU64,
    pub dirs: AtomicU64,
    /// Of `dirs`, those new, changed and unmodified against the parent snapshot.
    pub dirs_new: AtomicU64,
    pub dirs_changed: AtomicU64,
    pub dirs_unmodified: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Sizes of the files done, read or found unchanged (restic's `total_bytes_processed`).
    pub bytes_processed: AtomicU64,
    pub errors: AtomicU64,
    pub changed: AtomicU64,
    /// Signs of a mass encryption (`signals.rs`).
    pub files_deleted: AtomicU64,
    pub extensions_renamed: AtomicU64,
    pub ransom_notes: AtomicU64,
    /// Bytes of files done: read, or found unchanged (for percent and ETA).
    pub bytes_done: AtomicU64,
    /// The file a reader is on (most recent first).
    pub current: Mutex<PathBuf>,
    /// When set, every file read is queued here (`true` = it was in the
    /// parent snapshot, i.e. changed; `false` = new) for a caller to drain.
    pub log_files: AtomicBool,
    pub files_log: Mutex<Vec<(bool, PathBuf)>>,
}

impl Progress {
    /// Files done so far (new, changed or unmodified).
    pub fn files(&self) -> u64 {
        self.files_new.load(Ordering::Relaxed)
            + self.files_changed.load(Ordering::Relaxed)
            + self.files_unmodified.load(Ordering::Relaxed)
    }
}

impl<'a> Shared<'a> {
    fn new(sink: BlobSink, warn: WarnFn<'a>, progress: Arc<Progress>) -> Self {
        Shared {
            sink,
            warn,
            abort: AtomicBool::new(false),
            fatal: Mutex::new(None),
            progress,
        }
    }

    fn fail(&self, e: Error) {
        self.abort.store(true, Ordering::SeqCst);
        self.fatal.locked().get_or_insert(e);
    }

    fn skip(&self, path: &Path, what: &str, e: impl std::fmt::Display) {
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        (self.warn)(&format!("{}: {what}: {e} (skipped)", path.display()));
    }
}

/// Choose the parent snapshot for `opts`.
fn choose_parent(
    repo: &Repository,
    opts: &BackupOptions,
    paths: &[String],
) -> Result<Option<(Id, Snapshot)>> {
    match &opts.parent {
        ParentChoice::Force => Ok(None),
        ParentChoice::Snapshot(id) => Ok(Some((*id, repo.load_snapshot(id)?))),
        ParentChoice::Auto => {
            let (all, _) = repo.list_snapshots()?;
            let distrusted = repo.distrusted_snapshots();
            let mut want = paths.to_vec();
            want.sort();
            Ok(all.into_iter().rev().find(|(id, s)| {
                if distrusted.contains(id) {
                    return false;
                }
                let mut p = s.paths.clone();
                p.sort();
                s.hostname == opts.hostname && p == want
            }))
        }
    }
}

/// Lexically clean an absolute path: drop `.`, trailing slashes, and resolve
/// `..` against the preceding component, so `data/` and `a/../data` name the
/// same snapshot path as `data`.
fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Root node names: the last path component, made unique with `-N` (in the
/// order of the sorted paths, so `browse::paths` can map them back).
pub(crate) fn root_names(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for p in paths {
        let base = p
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_else(|| b"/".to_vec());
        let mut name = base.clone();
        let mut n = 1;
        while names.contains(&name) {
            name = [base.as_slice(), format!("-{n}").as_bytes()].concat();
            n += 1;
        }
        names.push(name);
    }
    names
}

/// Run one backup into `repo`. Takes and releases a shared lock.
pub fn backup(
    repo: Arc<Repository>,
    opts: &BackupOptions,
    warn: WarnFn<'_>,
) -> Result<BackupResult> {
    let started = chrono::Local::now();
    let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false)?;
    repo.load_index(true)?;
    let adoption = repo.adopt_unindexed_packs()?;
    crate::failpoint::pause("backup-index-loaded");
    for line in &adoption.refused {
        warn(line);
    }
    let adopted = adoption.packs;
    let reused_packs = (
        adopted.len() as u64,
        adopted.iter().map(|p| p.size).sum::<u64>(),
    );
    let mut abs = Vec::new();
    for p in &opts.paths {
        let a = clean_path(&std::path::absolute(p).map_err(|e| Error::io(p, e))?);
        std::fs::symlink_metadata(&a).map_err(|e| Error::io(&a, e))?;
        abs.push(a);
    }
    abs.sort();
    abs.dedup();
    // "/" holds every other path: backed up beside it, another path would be
    // stored under a name "/" has too and restored over it.
    if abs.len() > 1 && abs.iter().any(|p| p.as_os_str() == "/") {
        return Err(Error::Usage(format!(
            "/ already holds {}: back up / alone (--exclude leaves parts out), or the other paths without /",
            abs.iter()
                .filter(|p| p.as_os_str() != "/")
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let path_strings: Vec<String> = abs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let parent = choose_parent(&repo, opts, &path_strings)?;
    let parent_root = match &parent {
        Some((_, s)) => match repo.read_tree(&s.tree) {
            Ok(t) => Some(t),
            Err(e) => {
                warn(&format!(
                    "parent snapshot unreadable, reading all files: {e}"
                ));
                None
            }
        },
        None => None,
    };
    let level = opts.compression.unwrap_or(repo.config().compression.level);
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);

    let sink = BlobSink::new(repo.clone(), level);
    sink.guard_with(&lock);
    sink.set_dry_run(opts.dry_run);
    sink.adopt(adopted)?;
    let shared = Shared::new(sink, warn, opts.progress.clone().unwrap_or_default());

    let root_tree_id = std::thread::scope(|s| -> Result<Option<Id>> {
        // Bounds: jobs and seal queue hold at most a few chunks each per core
        // (≤ 8 MiB per chunk). Events travel in batches of EVENT_BATCH (one
        // message per file would cost a thread wake-up per file); 64 batches
        // in flight bound the nodes waiting for the assembler.
        let (job_tx, job_rx) = bounded::<FileJob>(threads * 4);
        let (seal_tx, seal_rx) = bounded::<(Id, Vec<u8>)>(threads);
        let (ev_tx, ev_rx) = bounded::<Vec<Event>>(64);
        let sh = &shared;
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let seal_tx = seal_tx.clone();
            s.spawn(move || reader::run_reader(sh, job_rx, seal_tx));
        }
        drop(seal_tx);
        for _ in 0..threads {
            let seal_rx = seal_rx.clone();
            s.spawn(move || {
                for (id, data) in seal_rx {
                    if sh.abort.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Err(e) = sh.sink.store(BlobType::Data, id, &data) {
                        sh.fail(e);
                    }
                }
            });
        }
        let assembler = s.spawn(move || assemble::assemble(sh, ev_rx));
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let same_user = parent.as_ref().is_some_and(|p| p.1.uid == me);
        let walker = Walker::new(&repo, opts, same_user, sh, job_tx, ev_tx);
        let names = root_names(&abs);
        for (path, name) in abs.iter().zip(names) {
            let pnode = parent_root.as_ref().and_then(|t| t.find(&name)).cloned();
            walker.visit(path, &name, pnode.as_ref());
        }
        walker.flush();
        drop(walker);
        let root = assembler
            .join()
            .map_err(|_| Error::Internal("assembler panicked".into()))?;
        Ok(root)
    })?;

    if let Some(e) = shared.fatal.locked().take() {
        return Err(e);
    }
    let root_tree_id = root_tree_id.ok_or_else(|| Error::Internal("backup was aborted".into()))?;
    shared.sink.finish()?;
    let finished = chrono::Local::now();
    let summary = Summary {
        files_new: shared.progress.files_new.load(Ordering::Relaxed),
        files_changed: shared.progress.files_changed.load(Ordering::Relaxed),
        files_unmodified: shared.progress.files_unmodified.load(Ordering::Relaxed),
        dirs: shared.progress.dirs.load(Ordering::Relaxed),
        bytes_read: shared.progress.bytes_read.load(Ordering::Relaxed),
        bytes_added: shared.sink.stats.bytes_added_stored.load(Ordering::Relaxed),
        errors: shared.progress.errors.load(Ordering::Relaxed),
        changed_during_read: shared.progress.changed.load(Ordering::Relaxed),
        started: started.to_rfc3339(),
        finished: finished.to_rfc3339(),
        signals: Some(Default::default()),
    };
    let mut r = commit_snapshot(
        &repo,
        lock,
        &shared.sink,
        opts,
        root_tree_id,
        path_strings,
        parent.map(|p| p.0),
        summary,
        &shared.progress,
        warn,
    )?;
    r.reused_packs = reused_packs;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_lexically() {
        assert_eq!(clean_path(Path::new("/a/b/")), PathBuf::from("/a/b"));
        assert_eq!(clean_path(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean_path(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(clean_path(Path::new("/")), PathBuf::from("/"));
    }

    #[test]
    fn root_names_are_unique() {
        let n = root_names(&[
            PathBuf::from("/x/data"),
            PathBuf::from("/y/data"),
            PathBuf::from("/"),
        ]);
        assert_eq!(n, vec![b"data".to_vec(), b"data-1".to_vec(), b"/".to_vec()]);
    }
}
