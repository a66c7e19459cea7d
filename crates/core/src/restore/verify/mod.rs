//! `--verify`: the last stage of a restore. Once everything is written and
//! directory metadata is set, every restored entry is looked at again in the
//! target and compared with its snapshot node: type, permission bits, mtime,
//! owners (when restored), size and content (hashed back at the snapshot's
//! blob boundaries), symlink target, device number and extended attributes.
//! Each difference becomes one error, so a clean pass means every byte and
//! every piece of metadata the restore set matches the snapshot.
//!
//! It walks the snapshot exactly as the restore did (same selection, same
//! refused names, same `--no-special` stripping, same first name for each
//! hard-linked inode) and skips what the restore left alone (kept by
//! --overwrite) or already reported as failed. It goes through directory
//! descriptors as the restore does, so it never follows a symlink either.
//! Access times are not compared: reading a file back changes them.

use super::dir::{Dir, Stat};
use super::metadata::{foreign_acls, without_privileges};
use super::select::{self, Step};
use super::Ctx;
use crate::format::tree::{Node, NodeType, Time};
use crate::sync::Locked;
use crossbeam_channel::{bounded, Sender};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// True if this process cannot read a file restored from `node` back once its
/// mode is set (no read permission for its owner, and not root): its content
/// is checked right after writing instead, while it is still readable.
pub(super) fn unreadable_once_restored(node: &Node) -> bool {
    // SAFETY: geteuid has no preconditions.
    node.mode & 0o400 == 0 && unsafe { libc::geteuid() } != 0
}

/// A file whose content is to be hashed back: its directory, path and node.
type ContentJob = (Arc<Dir>, PathBuf, Node);

/// Check every entry that restoring `nodes` (the snapshot directory `base`)
/// into the target `root` restored; each difference from the snapshot is one
/// error in `ctx`. `kept` holds what the overwrite policy left as it was.
/// File contents are hashed back on `threads` threads.
pub(super) fn verify_restored(
    ctx: &Ctx<'_>,
    root: &Arc<Dir>,
    nodes: &[Node],
    base: &[u8],
    kept: &HashSet<PathBuf>,
    threads: usize,
) {
    // A copy, so no lock is held while files are read.
    let failed = ctx.failed.locked().clone();
    std::thread::scope(|s| {
        // As for writing: a few jobs per thread keeps them busy, and bounds
        // the nodes (with their blob id lists) held in memory.
        let (tx, rx) = bounded::<ContentJob>(threads * 16);
        for _ in 0..threads {
            let rx = rx.clone();
            s.spawn(move || {
                for (dir, path, node) in rx {
                    if !crate::interrupt::requested() {
                        verify_content(ctx, &dir, &path, &node);
                    }
                }
            });
        }
        let mut walker = Walker {
            ctx,
            tx,
            kept,
            failed: &failed,
            links: HashMap::new(),
        };
        walker.verify_tree(
            &Ok(root.clone()),
            &ctx.opts.target,
            nodes,
            true,
            base,
            false,
        );
    });
}

/// (device, inode): one file, whatever its names.
type Inode = (u64, u64);

/// A directory of the target as the walk found it: open, or why not.
type Here = Result<Arc<Dir>, String>;

struct Walker<'a, 'c> {
    ctx: &'a Ctx<'c>,
    tx: Sender<ContentJob>,
    kept: &'a HashSet<PathBuf>,
    failed: &'a HashSet<PathBuf>,
    /// For each hard-linked inode of the snapshot: the name the restore wrote
    /// (it made the others hard links to it), and that file's (device, inode)
    /// in the target once seen.
    links: HashMap<Inode, (PathBuf, Option<Inode>)>,
}

impl Walker<'_, '_> {
    fn verify_tree(
        &mut self,
        here: &Here,
        dir: &Path,
        nodes: &[Node],
        at_root: bool,
        spath: &[u8],
        parent_selected: bool,
    ) {
        let opts = self.ctx.opts;
        let mut prev: Option<&[u8]> = None;
        for node in nodes {
            if crate::interrupt::requested() {
                return;
            }
            let step = opts
                .selection
                .step(dir, spath, node, at_root, prev, parent_selected);
            prev = Some(&node.name);
            // Refused names were reported by the restore.
            let Step::Visit {
                path,
                spath: child_spath,
                selected,
            } = step
            else {
                continue;
            };
            let node = match opts.no_special {
                false => Cow::Borrowed(node),
                true => match without_privileges(node) {
                    Some(n) => n,
                    None => continue,
                },
            };
            // The node "/" of a backup of "/" is the target itself.
            let name = (node.name != b"/").then_some(node.name.as_slice());
            if selected && !self.kept.contains(&path) {
                self.verify_node(here, name, &path, &node);
            }
            if node.node_type == NodeType::Dir {
                self.verify_dir_contents(here, name, &path, &node, &child_spath, selected);
            }
        }
    }

    /// Go into a directory where the restore did.
    fn verify_dir_contents(
        &mut self,
        parent: &Here,
        name: Option<&[u8]>,
        path: &Path,
        node: &Node,
        spath: &[u8],
        selected: bool,
    ) {
        let failed = self.failed.contains(path);
        let here: Here = match (parent, name) {
            (Err(e), _) => Err(e.clone()),
            (Ok(p), None) => Ok(p.clone()),
            (Ok(p), Some(n)) => p.open_dir(n).map(Arc::new).map_err(|e| e.to_string()),
        };
        // A directory restored as something else was reported just above; one
        // that could not be made had nothing restored below it. One only
        // passed through is looked into: what is selected below it is missing.
        if here.is_err() && (selected || failed) {
            return;
        }
        let tree = node
            .subtree
            .ok_or_else(|| "directory without a subtree".to_string())
            .and_then(|id| self.ctx.repo.read_tree(&id).map_err(|e| e.to_string()));
        match tree {
            Ok(tree) => self.verify_tree(&here, path, &tree.nodes, false, spath, selected),
            // The restore reported it when it could not read it either.
            Err(_) if failed => {}
            Err(e) => mismatch(self.ctx, path, format!("cannot read its contents: {e}")),
        }
    }

    fn verify_node(&mut self, here: &Here, name: Option<&[u8]>, path: &Path, node: &Node) {
        // The restore does not create sockets.
        if node.node_type == NodeType::Socket {
            return;
        }
        // Before the failed check: the restore chose the first name of an
        // inode before it knew whether writing it would fail.
        let key = (node.device_id, node.inode);
        let hard_link = node.node_type == NodeType::File && node.links > 1;
        let first = match self.links.get(&key) {
            _ if !hard_link => None,
            Some(first) => Some(first.clone()),
            None => {
                self.links.insert(key, (path.to_path_buf(), None));
                None
            }
        };
        if self.failed.contains(path) {
            return;
        }
        let dir = match here {
            Ok(d) => d,
            Err(e) => return mismatch(self.ctx, path, format!("cannot look at it: {e}")),
        };
        let st = match name {
            None => dir.stat_self().map(Some),
            Some(n) => dir.stat(n),
        };
        let st = match st {
            Ok(Some(st)) => st,
            Ok(None) => {
                let e = std::io::Error::from_raw_os_error(libc::ENOENT);
                return mismatch(self.ctx, path, format!("cannot look at it: {e}"));
            }
            Err(e) => return mismatch(self.ctx, path, format!("cannot look at it: {e}")),
        };
        let found = st.kind();
        if found != node.node_type {
            return mismatch(
                self.ctx,
                path,
                format!(
                    "it is a {} but the snapshot says {}",
                    type_name(found),
                    type_name(node.node_type)
                ),
            );
        }
        if let Some((first, first_id)) = first {
            // The same inode as the first name: its content and metadata were checked there.
            if first_id.is_some_and(|id| id != st.id()) {
                mismatch(
                    self.ctx,
                    path,
                    format!("it is not a hard link to {}", first.display()),
                );
            }
            return;
        }
        if hard_link {
            if let Some((_, id)) = self.links.get_mut(&key) {
                *id = Some(st.id());
            }
        }
        verify_metadata(self.ctx, dir, name, path, node, &st);
        let Some(name) = name else {
            return;
        };
        match node.node_type {
            NodeType::File if st.size != node.size => mismatch(
                self.ctx,
                path,
                format!(
                    "size is {} bytes but the snapshot says {}",
                    st.size, node.size
                ),
            ),
            NodeType::File if !unreadable_once_restored(node) => {
                let _ = self
                    .tx
                    .send((dir.clone(), path.to_path_buf(), node.clone()));
            }
            NodeType::Symlink => match (dir.readlink(name), node.target.as_deref()) {
                (Ok(t), Some(want)) if t != want => mismatch(
                    self.ctx,
                    path,
                    format!(
                        "symlink target is {:?} but the snapshot says {:?}",
                        String::from_utf8_lossy(&t),
                        String::from_utf8_lossy(want)
                    ),
                ),
                (Err(e), _) => mismatch(self.ctx, path, format!("cannot read the symlink: {e}")),
                _ => {}
            },
            NodeType::Chardev | NodeType::Blockdev => match node.rdev {
                Some(want) if st.rdev != want => mismatch(
                    self.ctx,
                    path,
                    format!(
                        "device number is {} but the snapshot says {}",
                        device(st.rdev),
                        device(want)
                    ),
                ),
                _ => {}
            },
            _ => {}
        }
    }
}

/// The value of the extended attribute `attr` of the entry `name` of `dir`
/// (None: `dir` itself), not following it.
fn get_xattr(dir: &Dir, name: Option<&[u8]>, attr: &OsStr) -> std::io::Result<Option<Vec<u8>>> {
    use xattr::FileExt as _;
    match name {
        None => dir.file().get_xattr(attr),
        // lgetxattr, on the name within dir's descriptor.
        Some(n) => xattr::get(dir.proc_path(n), attr),
    }
}

/// Permission bits, owners (if restored), mtime and extended attributes.
fn verify_metadata(
    ctx: &Ctx<'_>,
    dir: &Dir,
    name: Option<&[u8]>,
    path: &Path,
    node: &Node,
    st: &Stat,
) {
    // Linux symlinks have no permission bits of their own.
    if node.node_type != NodeType::Symlink && st.mode & 0o7777 != node.mode & 0o7777 {
        mismatch(
            ctx,
            path,
            format!(
                "mode is {:04o} but the snapshot says {:04o}",
                st.mode & 0o7777,
                node.mode & 0o7777
            ),
        );
    }
    if ctx.opts.owners && st.uid != node.uid {
        mismatch(
            ctx,
            path,
            format!(
                "owner is uid {} but the snapshot says uid {}",
                st.uid, node.uid
            ),
        );
    }
    if ctx.opts.owners && st.gid != node.gid {
        mismatch(
            ctx,
            path,
            format!(
                "group is gid {} but the snapshot says gid {}",
                st.gid, node.gid
            ),
        );
    }
    // Nanoseconds as recorded; the restore sets them exactly (utimensat).
    if st.mtime != node.mtime {
        mismatch(
            ctx,
            path,
            format!(
                "mtime is {} but the snapshot says {}",
                show_time(st.mtime),
                show_time(node.mtime)
            ),
        );
    }
    // Only the snapshot's attributes: others the system adds (security.selinux, …) are fine.
    for (attr, value) in &node.xattrs {
        // Linux symlinks cannot carry user.* attributes; the restore leaves them out.
        if node.node_type == NodeType::Symlink && attr.starts_with(b"user.") {
            continue;
        }
        let shown = String::from_utf8_lossy(attr);
        match get_xattr(dir, name, OsStr::from_bytes(attr)) {
            Ok(Some(v)) if v == value.as_ref() => {}
            Ok(Some(_)) => mismatch(
                ctx,
                path,
                format!("extended attribute {shown} differs from the snapshot"),
            ),
            Ok(None) => mismatch(ctx, path, format!("extended attribute {shown} is missing")),
            Err(e) => mismatch(
                ctx,
                path,
                format!("cannot read extended attribute {shown}: {e}"),
            ),
        }
    }
    // An ACL the snapshot does not have (inherited from a default ACL) is one the restore removes.
    if node.node_type != NodeType::Symlink {
        for acl in foreign_acls(node) {
            if let Ok(Some(_)) = get_xattr(dir, name, OsStr::new(acl)) {
                mismatch(
                    ctx,
                    path,
                    format!("it has an ACL ({acl}) the snapshot does not have"),
                );
            }
        }
    }
}

/// Hash the regular file `node.name` of `dir` back against `node`'s blob ids.
fn verify_content(ctx: &Ctx<'_>, dir: &Dir, path: &Path, node: &Node) {
    let f = match dir.open_read(&node.name) {
        Ok(f) => f,
        Err(e) => return mismatch(ctx, path, format!("cannot read it back: {e}")),
    };
    match select::file_matches(ctx.repo, &f, node) {
        Ok(true) => {}
        Ok(false) => mismatch(ctx, path, "content differs from the snapshot"),
        Err(e) => mismatch(ctx, path, format!("cannot read it back: {e}")),
    }
}

fn mismatch(ctx: &Ctx<'_>, path: &Path, what: impl std::fmt::Display) {
    ctx.error(path, format!("verification failed: {what}"));
}

fn type_name(t: NodeType) -> &'static str {
    match t {
        NodeType::Dir => "directory",
        NodeType::File => "file",
        NodeType::Symlink => "symlink",
        NodeType::Fifo => "fifo",
        NodeType::Chardev => "character device",
        NodeType::Blockdev => "block device",
        NodeType::Socket => "socket",
    }
}

/// A device number as major:minor.
fn device(rdev: u64) -> String {
    let dev = rdev as libc::dev_t;
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

/// UTC with the nanoseconds, so a difference in them shows.
fn show_time(t: Time) -> String {
    match chrono::DateTime::from_timestamp(t.0, t.1) {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S%.9f UTC").to_string(),
        None => format!("{}.{:09}", t.0, t.1),
    }
}

#[cfg(test)]
mod tests;
