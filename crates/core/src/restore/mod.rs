//! Restore: plan → fetch → write → metadata → verify. This file is the
//! orchestration (and the dry run, which is the plan stage alone); each
//! stage has its file:
//! * **plan** (`plan.rs`): walk the snapshot's trees, take the decisions of
//!   `select.rs` (which nodes, what to do with what the target has), create
//!   directories, symlinks and special files, remove what `--delete`
//!   removes, and hand regular files to the writers;
//! * **fetch** (`fetch.rs`): a file's blobs, each verified before a byte of
//!   it is written, into a private temporary file; holes left unallocated;
//! * **write** (`write.rs`): the writer threads (in parallel with the plan)
//!   rename each file over its name once its bytes and metadata are set;
//!   then the hard links;
//! * **metadata** (`metadata.rs`): directory owners, modes, xattrs and ACLs,
//!   times, deepest first, once everything is written;
//! * **verify** (`verify/`, with `--verify`): every restored entry's bytes
//!   and metadata checked against the snapshot.
//!
//! Inside the target nothing is reached by a path: directories are open
//! descriptors, each opened from its parent without following a symlink, and
//! entries are created, replaced and changed relative to them (`dir`). So a
//! local user who plants symlinks in the target, or swaps a directory for
//! one while the restore runs, cannot make it write, chown or delete
//! anything outside the target. What the restore creates stays private
//! (0600 files, 0700 directories) until its own metadata is set.
//!
//! A blob that fails verification is never written: the file it belongs to
//! is reported, a file already at its name is left as it was, and every
//! other file is still restored.

use crate::fsdir as dir;
use crate::sync::Locked;
mod fetch;
mod metadata;
pub mod plan;
pub mod select;
mod verify;
mod write;

pub use dir::TEMP_PREFIX;

use crate::error::{Error, Result};
use crate::format::tree::Node;
use crate::format::Id;
use crate::repo::Repository;
use dir::Dir;
use plan::{Action, Mode, Planner};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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
    /// Restore nothing that gives privileges on this host: skip device
    /// nodes, drop setuid/setgid bits and security.capability attributes.
    pub no_special: bool,
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
            no_special: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreStats {
    pub files: u64,
    /// Directories made (not those already in the target).
    pub dirs: u64,
    pub others: u64,
    pub bytes_written: u64,
    /// Files already in the target with the right content (left as they were).
    pub unchanged: u64,
    /// Files already in the target kept by the overwrite policy.
    pub kept: u64,
    /// Entries removed from the target by --delete.
    pub deleted: u64,
    /// --no-special: device nodes not restored.
    pub devices_skipped: u64,
    /// --no-special: entries restored without their setuid/setgid bits.
    pub setid_dropped: u64,
    /// --no-special: files restored without their security.capability attribute.
    pub capabilities_dropped: u64,
    /// One line per file or node that could not be restored.
    pub errors: Vec<String>,
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

impl<'a> Ctx<'a> {
    fn new(repo: &'a Repository, opts: &'a RestoreOptions) -> Self {
        Ctx {
            repo,
            opts,
            progress: opts.progress.clone().unwrap_or_default(),
            errors: Mutex::new(Vec::new()),
            failed_files: AtomicU64::new(0),
            failed: Mutex::new(Default::default()),
            unchanged: AtomicU64::new(0),
        }
    }

    fn error(&self, path: &Path, msg: impl std::fmt::Display) {
        self.errors
            .locked()
            .push(format!("{}: {msg}", path.display()));
    }

    /// Report that the entry at `path` could not be (fully) restored.
    fn fail(&self, path: &Path, msg: impl std::fmt::Display) {
        self.failed.locked().insert(path.to_path_buf());
        self.error(path, msg);
    }

    /// The path shown for `rel`, a path relative to the target.
    fn shown(&self, rel: &[u8]) -> PathBuf {
        match rel.is_empty() {
            true => self.opts.target.clone(),
            false => self.opts.target.join(OsStr::from_bytes(rel)),
        }
    }
}

/// Restore the whole tree `tree` (a snapshot's root) into `opts.target`.
pub fn restore(repo: &Repository, tree: &Id, opts: &RestoreOptions) -> Result<RestoreStats> {
    let root = repo.read_tree(tree)?;
    restore_nodes(repo, &root.nodes, b"", opts)
}

/// Refuse the root of a snapshot of "/" taken beside other paths whose
/// stored names "/" has too (`/` and `/home/u/etc`, stored as `/` and `etc`):
/// both would be restored to the same place, the second over the first
/// (older versions took such backups; `backup` now refuses them).
fn refuse_collisions(repo: &Repository, nodes: &[Node], base: &[u8]) -> Result<()> {
    let Some(slash) = nodes.iter().find(|n| n.name == b"/") else {
        return Ok(());
    };
    if !base.is_empty() || nodes.len() < 2 {
        return Ok(());
    }
    let inside = match slash.subtree {
        Some(t) => repo.read_tree(&t)?,
        None => return Ok(()),
    };
    let clash: Vec<String> = nodes
        .iter()
        .filter(|n| n.name != b"/" && inside.find(&n.name).is_some())
        .map(|n| String::from_utf8_lossy(&n.name).into_owned())
        .collect();
    if clash.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "this snapshot holds a backup of / and, beside it, other paths stored as /{} which / holds too: restoring it whole would write both to the same place; restore SNAPSHOT:/{} for the other path alone",
        clash.join(", /"),
        clash[0]
    )))
}

fn not_a_directory(target: &Path) -> Error {
    Error::Usage(format!(
        "restore target {} exists and is not a directory; give a directory (it is created if missing)",
        target.display()
    ))
}

/// Restore `nodes` (the content of the snapshot directory `base`, or a single
/// node) into `opts.target`.
pub fn restore_nodes(
    repo: &Repository,
    nodes: &[Node],
    base: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats> {
    refuse_collisions(repo, nodes, base)?;
    if std::fs::metadata(&opts.target).is_ok_and(|md| !md.is_dir()) {
        return Err(not_a_directory(&opts.target));
    }
    std::fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let root = Arc::new(Dir::open(&opts.target).map_err(|e| Error::io(&opts.target, e))?);
    let ctx = Ctx::new(repo, opts);
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4)
        })
        .max(1);
    // plan → fetch → write: the planner walks the snapshot, makes
    // directories, symlinks and special files, and hands regular files to
    // the writers, which fetch and write them.
    let planned = write::with_writers(&ctx, &root, threads, |files| {
        Planner::new(&ctx, Some(root.clone()), Mode::Restore(files)).plan(nodes, base)
    });
    let mut stats = planned.stats;
    stats.files += write::make_links(&ctx, &root, &planned.links);
    // Directory metadata last, so writing children does not change it.
    metadata::set_dir_metadata(&ctx, &root, &planned.dirs);
    // Last, so it sees what the restore leaves behind, directory times included.
    if opts.verify && !crate::interrupt::requested() {
        verify::verify_restored(&ctx, &root, nodes, base, &planned.kept, threads);
    }
    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    stats.bytes_written = ctx.progress.bytes_written.load(Ordering::Relaxed);
    stats.errors = ctx
        .errors
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    stats.files -= ctx.failed_files.load(Ordering::Relaxed).min(stats.files);
    stats.unchanged = ctx.unchanged.load(Ordering::Relaxed);
    // `files` counts what was written; files found already right are `unchanged`.
    stats.files -= stats.unchanged.min(stats.files);
    Ok(stats)
}

/// Report, for every node a restore of `nodes` with `opts` would touch, what
/// it would do, changing nothing: the same walk, selection and overwrite
/// decisions as the restore. Returns what the restore would report as
/// errors found while planning (refused names, unreadable directories).
pub fn dry_run(
    repo: &Repository,
    nodes: &[Node],
    base: &[u8],
    opts: &RestoreOptions,
    out: &mut dyn FnMut(&Path, Action),
) -> Result<Vec<String>> {
    refuse_collisions(repo, nodes, base)?;
    let root = match Dir::open(&opts.target) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(not_a_directory(&opts.target))
        }
        Err(e) => return Err(Error::io(&opts.target, e)),
    };
    let ctx = Ctx::new(repo, opts);
    Planner::new(&ctx, root, Mode::DryRun(out)).plan(nodes, base);
    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    Ok(ctx
        .errors
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::to_cbor;
    use crate::format::tree::{NodeType, Tree};
    use crate::format::BlobType;
    use crate::repo::packer::BlobSink;

    fn node(name: &[u8], t: NodeType) -> Node {
        let mut n = crate::format::tree::test_node(name, t);
        n.inode = 0;
        n.device_id = 0;
        n
    }

    /// A snapshot of "/" beside another path stored under a name "/" holds
    /// too (as older versions took them): neither the restore nor its dry
    /// run writes the two to one place; one without a clash restores.
    #[test]
    fn a_root_backup_beside_a_clashing_path_is_refused() {
        let (d, repo) = crate::repo::test_repo();
        repo.load_index(true).unwrap();
        let sink = BlobSink::new(repo.clone(), 3);
        let (data, _) = sink.add(BlobType::Data, b"EVIL").unwrap();
        let mut f = node(b"shadow", NodeType::File);
        f.size = 4;
        f.content = Some(vec![data]);
        let tree = |nodes: Vec<Node>| {
            sink.add(BlobType::Tree, &to_cbor(&Tree { nodes }).unwrap())
                .unwrap()
                .0
        };
        let etc_tree = tree(vec![f]);
        let mut etc = node(b"etc", NodeType::Dir);
        etc.subtree = Some(etc_tree);
        let mut slash = node(b"/", NodeType::Dir);
        slash.subtree = Some(tree(vec![etc.clone()]));
        let mut other = node(b"other", NodeType::Dir);
        other.subtree = Some(etc_tree);
        let clash = tree(vec![slash.clone(), etc]);
        let fine = tree(vec![slash, other]);
        sink.finish().unwrap();
        repo.load_index(false).unwrap();
        let target = d.path().join("target");
        let opts = RestoreOptions::new(target.clone());
        let nodes = repo.read_tree(&clash).unwrap().nodes;
        let e = restore_nodes(&repo, &nodes, b"", &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("stored as /etc which / holds too"), "{e}");
        assert!(!target.join("etc").exists());
        let e = dry_run(&repo, &nodes, b"", &opts, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("restore SNAPSHOT:/etc"), "{e}");
        let nodes = repo.read_tree(&fine).unwrap().nodes;
        restore_nodes(&repo, &nodes, b"", &opts).unwrap();
        assert_eq!(std::fs::read(target.join("etc/shadow")).unwrap(), b"EVIL");
        assert!(target.join("other/shadow").exists());
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
        let mut dotdot = node(b"..", NodeType::Dir);
        dotdot.subtree = Some(inner);
        let root = Tree {
            nodes: vec![dotdot, link, dir, existing, holder],
        };
        let (root_id, _) = sink.add(BlobType::Tree, &to_cbor(&root).unwrap()).unwrap();
        sink.finish().unwrap();
        repo.load_index(false).unwrap();

        let target = d.path().join("target");
        std::fs::create_dir(&target).unwrap();
        // an attacker-placed symlink where a directory will be restored
        std::os::unix::fs::symlink(&outside, target.join("e")).unwrap();
        // The dry run refuses the same names and lists nothing outside the target.
        let nodes = repo.read_tree(&root_id).unwrap().nodes;
        let opts = RestoreOptions {
            delete: true,
            ..RestoreOptions::new(target.clone())
        };
        let mut listed = Vec::new();
        let errors = dry_run(&repo, &nodes, b"", &opts, &mut |p, a| {
            listed.push((a.letter(), p.to_path_buf()))
        })
        .unwrap();
        assert_eq!(errors.len(), 3, "{errors:?}");
        for (_, p) in &listed {
            assert!(
                p.starts_with(&target) && !p.components().any(|c| c.as_os_str() == ".."),
                "{listed:?}"
            );
        }
        assert!(listed.contains(&('M', target.join("e"))), "{listed:?}");
        assert!(listed.contains(&('+', target.join("e/f"))), "{listed:?}");
        let st = restore(&repo, &root_id, &RestoreOptions::new(target.clone())).unwrap();
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "wrote outside the target"
        );
        assert_eq!(st.errors.len(), 3, "{:?}", st.errors);
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
}
