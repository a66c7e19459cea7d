//! The walker, first stage of a backup (it runs on the calling thread):
//! lists each directory in name order through one descriptor, reads every
//! entry's metadata, reuses the parent snapshot's node for a file whose size,
//! mtime, ctime and inode (unless `ignore_inode`) are unchanged and whose
//! blobs the repository has, and hands every other file to the readers.
//!
//! Invariants: the assembler receives events in walk order (`Enter` …
//! `Leave` nest like the directories); a changed file becomes a `Pending`
//! event whose node arrives from its reader, so order never depends on
//! reader speed. At most one directory descriptor is open at a time,
//! whatever the depth, and a symlink swapped in for a directory cannot
//! redirect a listing.

use super::{meta, BackupOptions, Shared};
use crate::error::Error;
use crate::format::tree::{Node, NodeType, Tree, FLAG_XATTRS_UNREADABLE};
use crate::format::Id;
use crate::repo::Repository;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// What the walker tells the assembler, in walk order.
pub(super) enum Event {
    /// Start of a directory (its node, without its subtree yet).
    Enter(Node),
    /// End of a directory, with the parent snapshot's version of it.
    Leave(Option<(Id, Tree)>),
    /// A node complete as it is (unchanged file, symlink, special file).
    Ready(Node),
    /// A file being read: its node arrives here (None: it could not be read).
    Pending(Receiver<Option<Node>>),
}

/// One file for the readers to read, chunk and store.
pub(crate) struct FileJob {
    pub(super) path: PathBuf,
    pub(super) node: Node,
    /// The parent snapshot had a file of this name (counted as changed, not new).
    pub(super) in_parent: bool,
    pub(super) done: Sender<Option<Node>>,
}

/// Walker events per message to the assembler.
const EVENT_BATCH: usize = 1024;

/// Walks the paths of one backup; see the module comment.
pub(super) struct Walker<'a, 's> {
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

impl<'a, 's> Walker<'a, 's> {
    /// A walker sending files to `jobs` and events to `events`;
    /// `parent_same_user` if the parent snapshot was taken by this uid.
    pub(super) fn new(
        repo: &'a Repository,
        opts: &'a BackupOptions,
        parent_same_user: bool,
        sh: &'a Shared<'s>,
        jobs: Sender<FileJob>,
        events: Sender<Vec<Event>>,
    ) -> Self {
        Walker {
            repo,
            parent_same_user,
            opts,
            root_dev: std::cell::Cell::new(0),
            sh,
            jobs,
            events,
            batch: std::cell::RefCell::new(Vec::with_capacity(EVENT_BATCH)),
        }
    }

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
    pub(super) fn flush(&self) {
        let rest = std::mem::take(&mut *self.batch.borrow_mut());
        if !rest.is_empty() {
            let _ = self.events.send(rest);
        }
    }

    /// Back up the top-level path `path` as node `name`.
    pub(super) fn visit(&self, path: &Path, name: &[u8], parent: Option<&Node>) {
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
        let parent_tree = parent
            .filter(|p| p.node_type == NodeType::Dir)
            .and_then(|p| p.subtree)
            .and_then(|id| self.repo.read_tree(&id).ok().map(|t| (id, t)));
        // Another file system below a mount point: keep the mount point, empty.
        if self.opts.excludes.one_file_system && node.device_id != self.root_dev.get() {
            self.sh.progress.dirs.fetch_add(1, Ordering::Relaxed);
            self.emit(Event::Enter(node));
            self.emit(Event::Leave(parent_tree));
            return;
        }
        self.sh.progress.dirs.fetch_add(1, Ordering::Relaxed);
        self.count_signals(path, &entries, parent_tree.as_ref().map(|t| &t.1));
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

    /// Add one directory's deleted files, renamed extensions and ransom
    /// notes to the backup's signals (`signals.rs`).
    fn count_signals(
        &self,
        path: &Path,
        entries: &[(Vec<u8>, std::io::Result<Node>)],
        parent: Option<&Tree>,
    ) {
        let present: Vec<(&[u8], bool)> = entries
            .iter()
            .map(|(n, st)| {
                let dir = matches!(st, Ok(node) if node.node_type == NodeType::Dir);
                (n.as_slice(), dir)
            })
            .collect();
        let excluded = |name: &[u8]| {
            self.opts
                .excludes
                .excludes_path(&path.join(std::ffi::OsStr::from_bytes(name)))
        };
        let (gone, renamed, notes) = super::signals::count_directory(&present, parent, excluded);
        let p = &self.sh.progress;
        p.files_deleted.fetch_add(gone, Ordering::Relaxed);
        p.extensions_renamed.fetch_add(renamed, Ordering::Relaxed);
        p.ransom_notes.fetch_add(notes, Ordering::Relaxed);
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
                self.sh
                    .progress
                    .bytes_processed
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
