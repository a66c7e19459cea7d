//! Backup: walk → chunk → dedup → seal → pack, then trees, index, snapshot.
//!
//! Stages, joined by bounded channels:
//! * the **walker** (calling thread) lists directories in name order, reuses
//!   the parent snapshot's node for unchanged files (size, mtime, ctime,
//!   inode), and sends changed files to the file readers;
//! * **file readers** (one per core) read, chunk and hash; new chunks go to
//!   the sealers;
//! * **sealers** (one per core) compress, encrypt and append to packs;
//! * the **assembler** receives walker events in walk order, waits for each
//!   file's result, and builds and stores one tree blob per directory.
//!
//! Memory is bounded by the channel bounds below times the largest chunk.

mod commit;
pub mod exclude;
pub mod meta;
mod reader;
pub mod stream;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{Node, NodeType, Tree, FLAG_XATTRS_UNREADABLE};
use crate::format::{to_cbor, BlobType, Id};
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
pub(crate) use commit::commit_snapshot;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
}

impl BackupResult {
    /// True if some files could not be read or changed while being read (exit 3).
    pub fn is_partial(&self) -> bool {
        self.summary.errors > 0 || self.summary.changed_during_read > 0
    }
}

/// Callback for warnings (unreadable or changed files); must be cheap.
pub type WarnFn<'a> = &'a (dyn Fn(&str) + Sync);

enum Event {
    Enter(Node),
    /// End of a directory, with the parent snapshot's version of it.
    Leave(Option<(Id, Tree)>),
    Ready(Node),
    Pending(Receiver<Option<Node>>),
}

pub(crate) struct FileJob {
    path: PathBuf,
    node: Node,
    /// The parent snapshot had a file of this name (counted as changed, not new).
    in_parent: bool,
    done: Sender<Option<Node>>,
}

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
    pub bytes_read: AtomicU64,
    pub errors: AtomicU64,
    pub changed: AtomicU64,
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
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(e);
        }
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

/// Root node names: the last path component, made unique with `-N`.
fn root_names(paths: &[PathBuf]) -> Vec<Vec<u8>> {
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
    if !adopted.is_empty() {
        let bytes: u64 = adopted.iter().map(|p| p.size).sum();
        warn(&format!(
            "reusing {} ({}) that no index lists yet (left by an interrupted backup or prune, or written by a backup running now)",
            crate::human::plural(adopted.len() as u64, "pack"),
            crate::human::bytes(bytes)
        ));
    }
    let mut abs = Vec::new();
    for p in &opts.paths {
        let a = clean_path(&std::path::absolute(p).map_err(|e| Error::io(p, e))?);
        std::fs::symlink_metadata(&a).map_err(|e| Error::io(&a, e))?;
        abs.push(a);
    }
    abs.sort();
    abs.dedup();
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
        let assembler = s.spawn(move || assemble(sh, ev_rx));
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let walker = Walker {
            repo: &repo,
            parent_same_user: parent.as_ref().is_some_and(|p| p.1.uid == me),
            opts,
            root_dev: std::cell::Cell::new(0),
            sh,
            jobs: job_tx,
            events: ev_tx,
            batch: std::cell::RefCell::new(Vec::with_capacity(EVENT_BATCH)),
        };
        let names = root_names(&abs);
        for (path, name) in abs.iter().zip(names) {
            let pnode = parent_root.as_ref().and_then(|t| t.find(&name)).cloned();
            walker.visit(path, &name, pnode.as_ref());
        }
        walker.flush();
        drop(walker);
        let root = assembler
            .join()
            .map_err(|_| Error::Invalid("assembler panicked".into()))?;
        Ok(root)
    })?;

    if let Some(e) = shared.fatal.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let root_tree_id = root_tree_id.ok_or_else(|| Error::Invalid("backup was aborted".into()))?;
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
    };
    commit_snapshot(
        &repo,
        lock,
        &shared.sink,
        opts,
        root_tree_id,
        path_strings,
        parent.map(|p| p.0),
        summary,
        warn,
    )
}

struct Walker<'a, 's> {
    repo: &'a Repository,
    /// The parent snapshot was taken by this uid (its xattrs can be reused).
    parent_same_user: bool,
    opts: &'a BackupOptions,
    /// Device of the top-level path being walked (for one_file_system).
    root_dev: std::cell::Cell<u64>,
    sh: &'a Shared<'s>,
    jobs: Sender<FileJob>,
    events: Sender<Vec<Event>>,
    batch: std::cell::RefCell<Vec<Event>>,
}

/// Walker events per message to the assembler.
const EVENT_BATCH: usize = 1024;

impl Walker<'_, '_> {
    fn emit(&self, e: Event) {
        let mut b = self.batch.borrow_mut();
        b.push(e);
        if b.len() >= EVENT_BATCH {
            let full = std::mem::replace(&mut *b, Vec::with_capacity(EVENT_BATCH));
            // The assembler only stops early on a panic; then the backup fails anyway.
            let _ = self.events.send(full);
        }
    }

    /// Send the last, partial batch.
    fn flush(&self) {
        let rest = std::mem::take(&mut *self.batch.borrow_mut());
        if !rest.is_empty() {
            let _ = self.events.send(rest);
        }
    }

    /// Back up one path (file, directory or other) as node `name`.
    /// Back up a top-level path.
    fn visit(&self, path: &Path, name: &[u8], parent: Option<&Node>) {
        match std::fs::symlink_metadata(path) {
            Ok(md) => {
                self.root_dev.set(std::os::unix::fs::MetadataExt::dev(&md));
                self.visit_node(path, meta::node_from_metadata(name, &md), parent)
            }
            Err(e) => self.sh.skip(path, "cannot stat", e),
        }
    }

    /// Back up one entry whose lstat is `node`.
    fn visit_node(&self, path: &Path, mut node: Node, parent: Option<&Node>) {
        if crate::interrupt::requested() {
            self.sh.fail(Error::Interrupted);
        }
        if self.sh.abort.load(Ordering::Relaxed) {
            return;
        }
        // Setting an xattr changes ctime: with the same inode and ctime, the
        // parent's xattrs still hold, and a path lookup per entry is saved —
        // but only from a parent that read them fully, as the same user
        // (another user may see fewer attributes, e.g. no trusted.*).
        let same = parent.filter(|p| {
            self.parent_same_user
                && p.flags.is_empty()
                && p.node_type == node.node_type
                && p.device_id == node.device_id
                && (self.opts.ignore_inode || p.inode == node.inode)
                && p.ctime == node.ctime
                && p.mtime == node.mtime
        });
        if let Some(p) = same {
            node.xattrs = p.xattrs.clone();
        } else {
            match meta::read_xattrs(path) {
                Ok(x) => node.xattrs = x,
                Err(e) => {
                    node.flags.push(FLAG_XATTRS_UNREADABLE.to_string());
                    (self.sh.warn)(&format!(
                        "{}: cannot read extended attributes: {e}",
                        path.display()
                    ))
                }
            }
        }
        match node.node_type {
            NodeType::Dir => self.visit_dir(path, node, parent),
            NodeType::File => self.visit_file(path, node, parent),
            // node_at read the target already (readlinkat on the directory).
            NodeType::Symlink if node.target.is_some() => self.emit(Event::Ready(node)),
            NodeType::Symlink => match std::fs::read_link(path) {
                Ok(t) => {
                    node.target = Some(t.as_os_str().as_bytes().to_vec());
                    self.emit(Event::Ready(node));
                }
                Err(e) => self.sh.skip(path, "cannot read link", e),
            },
            _ => self.emit(Event::Ready(node)),
        }
    }

    fn visit_dir(&self, path: &Path, node: Node, parent: Option<&Node>) {
        // List and stat every entry through one directory descriptor (a
        // symlink swapped in for `path` cannot redirect the listing), then
        // close it before descending: one open descriptor, whatever the depth.
        let entries = match meta::read_dir_at(path) {
            Ok(e) => e,
            Err(e) => return self.sh.skip(path, "cannot list directory", e),
        };
        let names: Vec<Vec<u8>> = entries.iter().map(|(n, _)| n.clone()).collect();
        if self.opts.excludes.excludes_dir(path, &names) {
            return;
        }
        // Another file system below a mount point: keep the mount point, empty.
        if self.opts.excludes.one_file_system && node.device_id != self.root_dev.get() {
            self.sh.progress.dirs.fetch_add(1, Ordering::Relaxed);
            self.emit(Event::Enter(node));
            self.emit(Event::Leave(None));
            return;
        }
        let parent_tree = parent
            .filter(|p| p.node_type == NodeType::Dir)
            .and_then(|p| p.subtree)
            .and_then(|id| self.repo.read_tree(&id).ok().map(|t| (id, t)));
        self.sh.progress.dirs.fetch_add(1, Ordering::Relaxed);
        self.emit(Event::Enter(node));
        for (name, stat) in entries {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            if self.opts.excludes.excludes_path(&child) {
                continue;
            }
            let pn = parent_tree.as_ref().and_then(|t| t.1.find(&name));
            match stat {
                Ok(n) => self.visit_node(&child, n, pn),
                Err(e) => self.sh.skip(&child, "cannot stat", e),
            }
        }
        // The parent's tree goes along: if nothing in it changed, its id is reused.
        self.emit(Event::Leave(parent_tree));
    }

    fn visit_file(&self, path: &Path, mut node: Node, parent: Option<&Node>) {
        if let Some(p) = parent {
            let unchanged = p.node_type == NodeType::File
                && p.size == node.size
                && p.mtime == node.mtime
                && p.ctime == node.ctime
                && (self.opts.ignore_inode || p.inode == node.inode)
                && p.flags.is_empty()
                && p.content
                    .as_ref()
                    .map(|c| c.iter().all(|id| self.sh.sink.is_known(id)))
                    .unwrap_or(false);
            if unchanged {
                node.content = p.content.clone();
                node.holes = p.holes.clone();
                self.sh
                    .progress
                    .files_unmodified
                    .fetch_add(1, Ordering::Relaxed);
                self.sh
                    .progress
                    .bytes_done
                    .fetch_add(node.size, Ordering::Relaxed);
                return self.emit(Event::Ready(node));
            }
        }
        let (tx, rx) = bounded(1);
        self.emit(Event::Pending(rx));
        let _ = self.jobs.send(FileJob {
            path: path.to_path_buf(),
            node,
            in_parent: parent.is_some(),
            done: tx,
        });
    }
}

/// Build trees from walker events; returns the root tree id.
fn assemble(sh: &Shared<'_>, events: Receiver<Vec<Event>>) -> Option<Id> {
    let mut stack: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
    let store_tree = |nodes: Vec<Node>| -> Option<Id> {
        let mut t = Tree { nodes };
        t.sort();
        let bytes = match to_cbor(&t) {
            Ok(b) => b,
            Err(e) => {
                sh.fail(e);
                return None;
            }
        };
        match sh.sink.add(BlobType::Tree, &bytes) {
            Ok((id, _)) => Some(id),
            Err(e) => {
                sh.fail(e);
                None
            }
        }
    };
    for ev in events.into_iter().flatten() {
        match ev {
            Event::Enter(n) => stack.push((Some(n), Vec::new())),
            Event::Ready(n) => stack.last_mut()?.1.push(n),
            Event::Pending(rx) => {
                if let Ok(Some(n)) = rx.recv() {
                    stack.last_mut()?.1.push(n);
                }
            }
            Event::Leave(parent) => {
                let (node, mut nodes) = stack.pop()?;
                let mut node = node?;
                nodes.sort_by(|a, b| a.name.cmp(&b.name));
                // Unchanged directory: same nodes give the same blob; skip encoding it.
                let reuse = parent
                    .filter(|(id, t)| t.nodes == nodes && sh.sink.is_known(id))
                    .map(|p| p.0);
                node.subtree = Some(match reuse {
                    Some(id) => id,
                    None => store_tree(nodes)?,
                });
                stack.last_mut()?.1.push(node);
            }
        }
    }
    if sh.abort.load(Ordering::Relaxed) || stack.len() != 1 {
        return None;
    }
    let (_, nodes) = stack.pop()?;
    store_tree(nodes)
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
