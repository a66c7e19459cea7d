//! Restore: plan (walk the snapshot's trees, create directories, links and
//! special files) → fetch (read and verify each blob) → write (file contents
//! in parallel, holes left unallocated) → metadata (owners, modes, xattrs and
//! ACLs, times; directories last, deepest first) → with `--verify`, a last
//! pass that checks every restored entry's bytes and metadata against the
//! snapshot.
//!
//! A blob that fails verification is never written: the file it belongs to is
//! removed and reported, and every other file is still restored.

mod metadata;
pub mod plan;
pub mod select;
mod verify;

pub use metadata::apply_metadata;
use metadata::apply_metadata_fd;

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeType};
use crate::format::{BlobType, Id};
use crate::repo::Repository;
use crossbeam_channel::bounded;
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore numeric owners (default: when running as root).
    pub owners: bool,
    /// Parallel file writers; None: twice the cores (I/O overlaps).
    pub threads: Option<usize>,
    /// Counters to watch from another thread.
    pub progress: Option<Arc<RestoreProgress>>,
    /// Which snapshot paths to restore.
    pub selection: select::Selection,
    /// What to do with files already in the target.
    pub overwrite: select::Overwrite,
    /// After the restore, check every restored entry against the snapshot:
    /// content (hashed back at the snapshot's blob boundaries) and metadata.
    pub verify: bool,
    /// Remove what the target has and the snapshot does not (in restored directories).
    pub delete: bool,
}

/// Live counters of a running restore.
#[derive(Debug, Default)]
pub struct RestoreProgress {
    pub files_written: AtomicU64,
    pub bytes_written: AtomicU64,
}

impl RestoreOptions {
    /// Defaults for `target`.
    pub fn new(target: PathBuf) -> Self {
        RestoreOptions {
            target,
            // SAFETY: geteuid has no preconditions.
            owners: unsafe { libc::geteuid() } == 0,
            threads: None,
            progress: None,
            selection: Default::default(),
            overwrite: Default::default(),
            verify: false,
            delete: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes_written: u64,
    /// Files already in the target with the right content (left as they were).
    pub unchanged: u64,
    /// Files already in the target kept by the overwrite policy.
    pub kept: u64,
    /// Entries removed from the target by --delete.
    pub deleted: u64,
    /// One line per file or node that could not be restored.
    pub errors: Vec<String>,
}

struct FileJob {
    path: PathBuf,
    node: Node,
    /// The file exists: leave its content if it already matches.
    check_existing: bool,
}

struct Ctx<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    progress: Arc<RestoreProgress>,
    errors: Mutex<Vec<String>>,
    failed_files: AtomicU64,
    /// Entries reported as not (fully) restored: hard links to them are not
    /// made, and verification does not report them a second time.
    failed: Mutex<HashSet<PathBuf>>,
    unchanged: AtomicU64,
}

impl Ctx<'_> {
    fn error(&self, path: &Path, msg: impl std::fmt::Display) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(format!("{}: {msg}", path.display()));
        }
    }

    /// Report that the entry at `path` could not be (fully) restored.
    fn fail(&self, path: &Path, msg: impl std::fmt::Display) {
        if let Ok(mut f) = self.failed.lock() {
            f.insert(path.to_path_buf());
        }
        self.error(path, msg);
    }
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// Restore the whole tree `tree` (a snapshot's root) into `opts.target`.
pub fn restore(repo: &Repository, tree: &Id, opts: &RestoreOptions) -> Result<RestoreStats> {
    let root = repo.read_tree(tree)?;
    restore_nodes(repo, &root.nodes, b"", opts)
}

/// Restore `nodes` (the content of the snapshot directory `base`, or a single
/// node) into `opts.target`.
pub fn restore_nodes(
    repo: &Repository,
    nodes: &[Node],
    base: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats> {
    if let Ok(md) = std::fs::metadata(&opts.target) {
        if !md.is_dir() {
            return Err(Error::Invalid(format!(
                "restore target {} exists and is not a directory; give a directory (it is created if missing)",
                opts.target.display()
            )));
        }
    }
    std::fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let ctx = Ctx {
        repo,
        opts,
        progress: opts.progress.clone().unwrap_or_default(),
        errors: Mutex::new(Vec::new()),
        failed_files: AtomicU64::new(0),
        failed: Mutex::new(Default::default()),
        unchanged: AtomicU64::new(0),
    };
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4)
        })
        .max(1);
    let mut stats = RestoreStats::default();
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    let mut pending_links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut kept = HashSet::new();
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = bounded::<FileJob>(threads * 16);
        for _ in 0..threads {
            let rx = rx.clone();
            let ctx = &ctx;
            s.spawn(move || {
                for job in rx {
                    if crate::interrupt::requested() {
                        continue;
                    }
                    write_file(ctx, &job);
                }
            });
        }
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut planner = Planner {
            ctx: &ctx,
            tx,
            links: &mut links,
            pending_links: &mut pending_links,
            dirs: &mut dirs,
            kept: &mut kept,
            stats: &mut stats,
        };
        planner.plan_tree(&opts.target, nodes, true, base, false);
        Ok(())
    })?;
    // Hard links to files that were written and verified.
    for (link, first) in &pending_links {
        let failed = ctx.failed.lock().map(|f| f.contains(first)).unwrap_or(true);
        if failed {
            ctx.fail(
                link,
                format!(
                    "not restored: it is a hard link to {}, which failed",
                    first.display()
                ),
            );
        } else if let Err(e) = std::fs::hard_link(first, link) {
            ctx.fail(link, format!("cannot create hard link: {e}"));
        } else {
            stats.files += 1;
        }
    }
    // Directory metadata last, deepest first, so writing children does not change it.
    for (path, node) in dirs.iter().rev() {
        // Directories only traversed for an --include were created if needed, or not at all.
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        if let Err(e) = apply_metadata(path, node, opts.owners) {
            ctx.fail(path, format!("cannot set metadata: {e}"));
        }
    }
    // Last, so it sees what the restore leaves behind, directory times included.
    if opts.verify && !crate::interrupt::requested() {
        verify::verify_restored(&ctx, nodes, base, &kept, threads);
    }
    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    stats.bytes_written = ctx.progress.bytes_written.load(Ordering::Relaxed);
    stats.errors = ctx.errors.into_inner().unwrap_or_default();
    stats.files -= ctx.failed_files.load(Ordering::Relaxed).min(stats.files);
    stats.unchanged = ctx.unchanged.load(Ordering::Relaxed);
    // `files` counts what was written; files found already right are `unchanged`.
    stats.files -= stats.unchanged.min(stats.files);
    Ok(stats)
}

struct Planner<'a, 'c> {
    ctx: &'a Ctx<'c>,
    tx: crossbeam_channel::Sender<FileJob>,
    links: &'a mut HashMap<(u64, u64), PathBuf>,
    pending_links: &'a mut Vec<(PathBuf, PathBuf)>,
    dirs: &'a mut Vec<(PathBuf, Node)>,
    /// Entries left as they were by the overwrite policy (recorded for --verify only).
    kept: &'a mut HashSet<PathBuf>,
    stats: &'a mut RestoreStats,
}

impl Planner<'_, '_> {
    fn plan_tree(
        &mut self,
        dir: &Path,
        nodes: &[Node],
        at_root: bool,
        spath: &[u8],
        parent_selected: bool,
    ) {
        let mut prev: Option<&[u8]> = None;
        for node in nodes {
            if crate::interrupt::requested() {
                return;
            }
            let step =
                self.ctx
                    .opts
                    .selection
                    .step(dir, spath, node, at_root, prev, parent_selected);
            prev = Some(&node.name);
            let (path, child_spath, selected) = match step {
                select::Step::Refuse => {
                    let shown = String::from_utf8_lossy(&node.name);
                    self.ctx.error(
                        dir,
                        format!("refusing unsafe or duplicate name {shown:?} (damaged tree)"),
                    );
                    continue;
                }
                select::Step::Skip => continue,
                select::Step::Visit {
                    path,
                    spath,
                    selected,
                } => (path, spath, selected),
            };
            // With --include, parents of a selected node are created when first needed.
            if selected && !parent_selected && self.ctx.opts.selection.has_include() {
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
            }
            if let Err(e) = self.plan_node(&path, node, &child_spath, selected) {
                self.ctx.fail(&path, e);
            }
        }
    }

    fn plan_node(
        &mut self,
        path: &Path,
        node: &Node,
        spath: &[u8],
        selected: bool,
    ) -> std::result::Result<(), String> {
        match node.node_type {
            NodeType::Dir => {
                // lstat, not stat: an existing symlink must never be followed.
                match std::fs::symlink_metadata(path) {
                    _ if !selected => {}
                    Ok(md) if md.is_dir() => {}
                    Ok(_) => {
                        std::fs::remove_file(path)
                            .map_err(|e| format!("cannot replace existing entry: {e}"))?;
                        std::fs::create_dir(path)
                            .map_err(|e| format!("cannot create directory: {e}"))?;
                    }
                    Err(_) => std::fs::create_dir(path)
                        .map_err(|e| format!("cannot create directory: {e}"))?,
                }
                self.stats.dirs += 1;
                let subtree = node.subtree.ok_or("directory without a subtree")?;
                let tree = self
                    .ctx
                    .repo
                    .read_tree(&subtree)
                    .map_err(|e| format!("directory contents not restored: {e}"))?;
                self.dirs.push((path.to_path_buf(), node.clone()));
                if self.ctx.opts.delete && selected {
                    for extra in plan::extra_entries(path, &tree.nodes) {
                        match plan::remove_entry(&extra) {
                            Ok(()) => self.stats.deleted += 1,
                            Err(e) => self.ctx.error(&extra, format!("cannot delete: {e}")),
                        }
                    }
                }
                self.plan_tree(path, &tree.nodes, false, spath, selected);
            }
            NodeType::File => {
                let existing = std::fs::symlink_metadata(path).ok();
                let check_existing = match (existing.as_ref(), self.ctx.opts.overwrite) {
                    (Some(md), select::Overwrite::Never) if md.is_file() => {
                        self.keep(path);
                        return Ok(());
                    }
                    (Some(md), select::Overwrite::IfNewer)
                        if md.is_file()
                            && (md.mtime(), md.mtime_nsec())
                                >= (node.mtime.0, node.mtime.1 as i64) =>
                    {
                        self.keep(path);
                        return Ok(());
                    }
                    (Some(md), select::Overwrite::IfChanged) => md.is_file() && node.links <= 1,
                    _ => false,
                };
                if check_existing {
                    self.stats.files += 1;
                    let _ = self.tx.send(FileJob {
                        path: path.to_path_buf(),
                        node: node.clone(),
                        check_existing: true,
                    });
                    return Ok(());
                }
                remove_existing(path);
                if node.links > 1 {
                    let key = (node.device_id, node.inode);
                    if let Some(first) = self.links.get(&key) {
                        // Linked once the first name is written and verified.
                        self.pending_links.push((path.to_path_buf(), first.clone()));
                        return Ok(());
                    }
                    self.links.insert(key, path.to_path_buf());
                }
                // O_EXCL never follows a symlink; remove_existing cleared the name.
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| format!("cannot create file: {e}"))?;
                f.set_len(node.size)
                    .map_err(|e| format!("cannot size file: {e}"))?;
                drop(f);
                self.stats.files += 1;
                let _ = self.tx.send(FileJob {
                    path: path.to_path_buf(),
                    node: node.clone(),
                    check_existing: false,
                });
            }
            NodeType::Symlink | NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev
                if select::keep_existing_special(path, node, self.ctx.opts.overwrite) =>
            {
                self.keep(path);
            }
            NodeType::Symlink => {
                remove_existing(path);
                let target = node.target.as_deref().ok_or("symlink without a target")?;
                std::os::unix::fs::symlink(os(target), path)
                    .map_err(|e| format!("cannot create symlink: {e}"))?;
                self.stats.others += 1;
                apply_metadata(path, node, self.ctx.opts.owners)
                    .map_err(|e| format!("cannot set metadata: {e}"))?;
            }
            NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev => {
                remove_existing(path);
                let kind = match node.node_type {
                    NodeType::Fifo => libc::S_IFIFO,
                    NodeType::Chardev => libc::S_IFCHR,
                    _ => libc::S_IFBLK,
                };
                let c = cpath(path).map_err(|e| e.to_string())?;
                // SAFETY: c is a valid NUL-terminated path.
                let r = unsafe {
                    libc::mknod(
                        c.as_ptr(),
                        kind | (node.mode & 0o7777),
                        node.rdev.unwrap_or(0) as libc::dev_t,
                    )
                };
                if r != 0 {
                    return Err(format!(
                        "cannot create special file: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                self.stats.others += 1;
                apply_metadata(path, node, self.ctx.opts.owners)
                    .map_err(|e| format!("cannot set metadata: {e}"))?;
            }
            // A socket is recreated by the program that owns it; nothing to restore.
            NodeType::Socket => {}
        }
        Ok(())
    }

    /// Leave the existing entry at `path` as it is (overwrite policy).
    fn keep(&mut self, path: &Path) {
        self.stats.kept += 1;
        if self.ctx.opts.verify {
            self.kept.insert(path.to_path_buf());
        }
    }
}

fn remove_existing(path: &Path) {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.is_dir() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The parts of [off, off+len) that are not holes.
fn data_ranges(holes: &[(u64, u64)], off: u64, len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cur = off;
    let end = off.saturating_add(len);
    for &(h, hl) in holes {
        let he = h.saturating_add(hl);
        if he <= cur || h >= end {
            continue;
        }
        if h > cur {
            out.push((cur, h - cur));
        }
        cur = cur.max(he);
    }
    if cur < end {
        out.push((cur, end - cur));
    }
    out
}

fn write_file(ctx: &Ctx<'_>, job: &FileJob) {
    let (path, node) = (job.path.as_path(), &job.node);
    let result = (|| -> std::result::Result<(), String> {
        if job.check_existing {
            if select::file_matches(ctx.repo, path, node).unwrap_or(false) {
                // Already right: only the metadata is set again.
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| format!("cannot open: {e}"))?;
                apply_metadata_fd(&f, node, ctx.opts.owners)
                    .map_err(|e| format!("cannot set metadata: {e}"))?;
                ctx.unchanged.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| format!("cannot open for writing: {e}"))?;
            f.set_len(node.size)
                .map_err(|e| format!("cannot size file: {e}"))?;
        }
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot open for writing: {e}"))?;
        let idx = ctx.repo.index();
        let mut off = 0u64;
        for id in node.content.as_deref().unwrap_or(&[]) {
            let len = idx.get(id).map(|l| l.raw_len as u64).ok_or_else(|| {
                format!(
                    "data blob {} is missing from the repository; file not restored",
                    id.short()
                )
            })?;
            let ranges = data_ranges(&node.holes, off, len);
            if !ranges.is_empty() {
                let data = ctx
                    .repo
                    .read_blob(BlobType::Data, id)
                    .map_err(|e| format!("{e}; file not restored"))?;
                for (r, rl) in ranges {
                    let s = (r - off) as usize;
                    f.write_all_at(&data[s..s + rl as usize], r)
                        .map_err(|e| format!("write failed: {e}"))?;
                    ctx.progress.bytes_written.fetch_add(rl, Ordering::Relaxed);
                }
            }
            off += len;
        }
        if off != node.size {
            return Err(format!(
                "content is {off} bytes but the snapshot says {}; file not restored",
                node.size
            ));
        }
        // The pass after the restore reads every other file back; this one it
        // could not read once its mode is set.
        if ctx.opts.verify
            && verify::unreadable_once_restored(node)
            && !select::file_matches(ctx.repo, path, node).unwrap_or(false)
        {
            return Err(
                "verification failed: the file on disk differs from the snapshot after writing"
                    .into(),
            );
        }
        apply_metadata_fd(&f, node, ctx.opts.owners)
            .map_err(|e| format!("cannot set metadata: {e}"))?;
        ctx.progress.files_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(path);
        ctx.failed_files.fetch_add(1, Ordering::Relaxed);
        ctx.fail(path, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::to_cbor;
    use crate::format::tree::Tree;
    use crate::repo::packer::BlobSink;

    fn node(name: &[u8], t: NodeType) -> Node {
        let mut n = crate::format::tree::test_node(name, t);
        n.inode = 0;
        n.device_id = 0;
        n
    }

    /// A hostile tree (a symlink and a directory sharing a name, a "/" below
    /// the root, an existing symlink in the target) cannot write outside the target.
    #[test]
    fn hostile_tree_and_existing_symlinks_stay_inside_the_target() {
        let (d, repo) = crate::repo::test_repo();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        repo.load_index(true).unwrap();
        let sink = BlobSink::new(repo.clone(), 3);
        let (data, _) = sink.add(BlobType::Data, b"payload").unwrap();
        let mut f = node(b"f", NodeType::File);
        f.size = 7;
        f.content = Some(vec![data]);
        let (inner, _) = sink
            .add(
                BlobType::Tree,
                &to_cbor(&Tree {
                    nodes: vec![f.clone()],
                })
                .unwrap(),
            )
            .unwrap();
        let mut link = node(b"a", NodeType::Symlink);
        link.target = Some(outside.to_str().unwrap().as_bytes().to_vec());
        let mut dir = node(b"a", NodeType::Dir);
        dir.subtree = Some(inner);
        let mut slash = node(b"/", NodeType::Dir);
        slash.subtree = Some(inner);
        let mut existing = node(b"e", NodeType::Dir);
        existing.subtree = Some(inner);
        let (sub, _) = sink
            .add(
                BlobType::Tree,
                &to_cbor(&Tree { nodes: vec![slash] }).unwrap(),
            )
            .unwrap();
        let mut holder = node(b"h", NodeType::Dir);
        holder.subtree = Some(sub);
        let root = Tree {
            nodes: vec![link, dir, existing, holder],
        };
        let (root_id, _) = sink.add(BlobType::Tree, &to_cbor(&root).unwrap()).unwrap();
        sink.finish().unwrap();
        repo.load_index(false).unwrap();

        let target = d.path().join("target");
        std::fs::create_dir(&target).unwrap();
        // an attacker-placed symlink where a directory will be restored
        std::os::unix::fs::symlink(&outside, target.join("e")).unwrap();
        let st = restore(&repo, &root_id, &RestoreOptions::new(target.clone())).unwrap();
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "wrote outside the target"
        );
        assert!(
            st.errors.iter().any(|e| e.contains("duplicate")),
            "{:?}",
            st.errors
        );
        assert!(
            st.errors.iter().any(|e| e.contains("unsafe")),
            "{:?}",
            st.errors
        );
        assert!(std::fs::symlink_metadata(target.join("e"))
            .unwrap()
            .is_dir());
        assert_eq!(std::fs::read(target.join("e/f")).unwrap(), b"payload");
    }

    #[test]
    fn ranges_skip_holes() {
        assert_eq!(data_ranges(&[], 0, 10), vec![(0, 10)]);
        assert_eq!(data_ranges(&[(0, 10)], 0, 10), vec![]);
        assert_eq!(data_ranges(&[(2, 3)], 0, 10), vec![(0, 2), (5, 5)]);
        assert_eq!(data_ranges(&[(0, 4), (8, 100)], 2, 10), vec![(4, 4)]);
        assert_eq!(data_ranges(&[(20, 5)], 0, 10), vec![(0, 10)]);
    }
}
