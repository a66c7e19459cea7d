//! `--verify`: the last stage of a restore. Once everything is written and
//! directory metadata is set, every restored entry is looked at again in the
//! target and compared with its snapshot node: type, permission bits, mtime,
//! owners (when restored), size and content (hashed back at the snapshot's
//! blob boundaries), symlink target, device number and extended attributes.
//! Each difference becomes one error, so a clean pass means every byte and
//! every piece of metadata the restore set matches the snapshot.
//!
//! It walks the snapshot exactly as the restore did (same selection, same
//! refused names, same first name for each hard-linked inode) and skips what
//! the restore left alone (kept by --overwrite) or already reported as failed.
//! Access times are not compared: reading a file back changes them.

use super::select::{self, Step};
use super::{os, Ctx};
use crate::format::tree::{Node, NodeType, Time};
use crossbeam_channel::{bounded, Sender};
use std::collections::{HashMap, HashSet};
use std::fs::{Metadata, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// True if this process cannot read a file restored from `node` back once its
/// mode is set (no read permission for its owner, and not root): its content
/// is checked right after writing instead, while it is still readable.
pub(super) fn unreadable_once_restored(node: &Node) -> bool {
    // SAFETY: geteuid has no preconditions.
    node.mode & 0o400 == 0 && unsafe { libc::geteuid() } != 0
}

/// Check every entry that restoring `nodes` (the snapshot directory `base`)
/// into `ctx.opts.target` restored; each difference from the snapshot is one
/// error in `ctx`. `kept` holds what the overwrite policy left as it was.
/// File contents are hashed back on `threads` threads.
pub(super) fn verify_restored(
    ctx: &Ctx<'_>,
    nodes: &[Node],
    base: &[u8],
    kept: &HashSet<PathBuf>,
    threads: usize,
) {
    // A copy, so no lock is held while files are read.
    let failed = match ctx.failed.lock() {
        Ok(f) => f.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    std::thread::scope(|s| {
        // As for writing: a few jobs per thread keeps them busy, and bounds
        // the nodes (with their blob id lists) held in memory.
        let (tx, rx) = bounded::<(PathBuf, Node)>(threads * 16);
        for _ in 0..threads {
            let rx = rx.clone();
            s.spawn(move || {
                for (path, node) in rx {
                    if !crate::interrupt::requested() {
                        verify_content(ctx, &path, &node);
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
        walker.verify_tree(&ctx.opts.target, nodes, true, base, false);
    });
}

/// (device, inode): one file, whatever its names.
type Inode = (u64, u64);

struct Walker<'a, 'c> {
    ctx: &'a Ctx<'c>,
    tx: Sender<(PathBuf, Node)>,
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
        dir: &Path,
        nodes: &[Node],
        at_root: bool,
        spath: &[u8],
        parent_selected: bool,
    ) {
        let selection = &self.ctx.opts.selection;
        let mut prev: Option<&[u8]> = None;
        for node in nodes {
            if crate::interrupt::requested() {
                return;
            }
            let step = selection.step(dir, spath, node, at_root, prev, parent_selected);
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
            if selected && !self.kept.contains(&path) {
                self.verify_node(&path, node);
            }
            if node.node_type == NodeType::Dir {
                self.verify_dir_contents(&path, node, &child_spath, selected);
            }
        }
    }

    /// Go into a directory where the restore did.
    fn verify_dir_contents(&mut self, path: &Path, node: &Node, spath: &[u8], selected: bool) {
        let failed = self.failed.contains(path);
        // A directory that could not be created had nothing restored below it.
        if failed && !std::fs::symlink_metadata(path).is_ok_and(|md| md.is_dir()) {
            return;
        }
        let tree = node
            .subtree
            .ok_or_else(|| "directory without a subtree".to_string())
            .and_then(|id| self.ctx.repo.read_tree(&id).map_err(|e| e.to_string()));
        match tree {
            Ok(tree) => self.verify_tree(path, &tree.nodes, false, spath, selected),
            // The restore reported it when it could not read it either.
            Err(_) if failed => {}
            Err(e) => mismatch(self.ctx, path, format!("cannot read its contents: {e}")),
        }
    }

    fn verify_node(&mut self, path: &Path, node: &Node) {
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
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) => return mismatch(self.ctx, path, format!("cannot look at it: {e}")),
        };
        let found = node_type_of(&md);
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
            if first_id.is_some_and(|id| id != (md.dev(), md.ino())) {
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
                *id = Some((md.dev(), md.ino()));
            }
        }
        verify_metadata(self.ctx, path, node, &md);
        match node.node_type {
            NodeType::File if md.size() != node.size => mismatch(
                self.ctx,
                path,
                format!(
                    "size is {} bytes but the snapshot says {}",
                    md.size(),
                    node.size
                ),
            ),
            NodeType::File if !unreadable_once_restored(node) => {
                let _ = self.tx.send((path.to_path_buf(), node.clone()));
            }
            NodeType::Symlink => {
                let target = std::fs::read_link(path).map(|t| t.as_os_str().as_bytes().to_vec());
                match (target, node.target.as_deref()) {
                    (Ok(t), Some(want)) if t != want => mismatch(
                        self.ctx,
                        path,
                        format!(
                            "symlink target is {:?} but the snapshot says {:?}",
                            String::from_utf8_lossy(&t),
                            String::from_utf8_lossy(want)
                        ),
                    ),
                    (Err(e), _) => {
                        mismatch(self.ctx, path, format!("cannot read the symlink: {e}"))
                    }
                    _ => {}
                }
            }
            NodeType::Chardev | NodeType::Blockdev => match node.rdev {
                Some(want) if md.rdev() != want => mismatch(
                    self.ctx,
                    path,
                    format!(
                        "device number is {} but the snapshot says {}",
                        device(md.rdev()),
                        device(want)
                    ),
                ),
                _ => {}
            },
            _ => {}
        }
    }
}

/// Permission bits, owners (if restored), mtime and extended attributes.
fn verify_metadata(ctx: &Ctx<'_>, path: &Path, node: &Node, md: &Metadata) {
    // Linux symlinks have no permission bits of their own.
    if node.node_type != NodeType::Symlink && md.mode() & 0o7777 != node.mode & 0o7777 {
        mismatch(
            ctx,
            path,
            format!(
                "mode is {:04o} but the snapshot says {:04o}",
                md.mode() & 0o7777,
                node.mode & 0o7777
            ),
        );
    }
    if ctx.opts.owners && md.uid() != node.uid {
        mismatch(
            ctx,
            path,
            format!(
                "owner is uid {} but the snapshot says uid {}",
                md.uid(),
                node.uid
            ),
        );
    }
    if ctx.opts.owners && md.gid() != node.gid {
        mismatch(
            ctx,
            path,
            format!(
                "group is gid {} but the snapshot says gid {}",
                md.gid(),
                node.gid
            ),
        );
    }
    // Nanoseconds as recorded; the restore sets them exactly (utimensat).
    let mtime = Time(md.mtime(), md.mtime_nsec() as u32);
    if mtime != node.mtime {
        mismatch(
            ctx,
            path,
            format!(
                "mtime is {} but the snapshot says {}",
                show_time(mtime),
                show_time(node.mtime)
            ),
        );
    }
    // Only the snapshot's attributes: others the system adds (security.selinux, …) are fine.
    for (name, value) in &node.xattrs {
        // Linux symlinks cannot carry user.* attributes; the restore leaves them out.
        if node.node_type == NodeType::Symlink && name.starts_with(b"user.") {
            continue;
        }
        let shown = String::from_utf8_lossy(name);
        // xattr::get does not follow symlinks.
        match xattr::get(path, os(name)) {
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
}

/// Hash the regular file at `path` back against `node`'s blob ids.
fn verify_content(ctx: &Ctx<'_>, path: &Path, node: &Node) {
    // Opened here too so that an unreadable file is not called different.
    if let Err(e) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        return mismatch(ctx, path, format!("cannot read it back: {e}"));
    }
    match select::file_matches(ctx.repo, path, node) {
        Ok(true) => {}
        Ok(false) => mismatch(ctx, path, "content differs from the snapshot"),
        Err(e) => mismatch(ctx, path, format!("cannot read it back: {e}")),
    }
}

fn mismatch(ctx: &Ctx<'_>, path: &Path, what: impl std::fmt::Display) {
    ctx.error(path, format!("verification failed: {what}"));
}

fn node_type_of(md: &Metadata) -> NodeType {
    let ft = md.file_type();
    if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_file() {
        NodeType::File
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_fifo() {
        NodeType::Fifo
    } else if ft.is_char_device() {
        NodeType::Chardev
    } else if ft.is_block_device() {
        NodeType::Blockdev
    } else {
        // The one file type left.
        NodeType::Socket
    }
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
mod tests {
    use super::super::{restore, RestoreOptions};
    use super::*;
    use crate::format::to_cbor;
    use crate::format::tree::Tree;
    use crate::format::{BlobType, Id};
    use crate::repo::packer::BlobSink;
    use crate::repo::Repository;
    use serde_bytes::ByteBuf;
    use std::os::unix::fs::{FileExt, PermissionsExt};
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    const MTIME: Time = Time(1_600_000_000, 123_456_789);

    fn node(name: &str, t: NodeType) -> Node {
        let mut n = crate::format::tree::test_node(name.as_bytes(), t);
        n.mode = if t == NodeType::Dir { 0o750 } else { 0o644 };
        n.mtime = MTIME;
        n
    }

    fn file(sink: &BlobSink, name: &str, data: &[u8]) -> Node {
        let mut n = node(name, NodeType::File);
        n.size = data.len() as u64;
        n.content = Some(vec![sink.add(BlobType::Data, data).unwrap().0]);
        n
    }

    fn tree(sink: &BlobSink, mut nodes: Vec<Node>) -> Id {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        sink.add(BlobType::Tree, &to_cbor(&Tree { nodes }).unwrap())
            .unwrap()
            .0
    }

    /// A snapshot root with files, a directory with an xattr'd file and a
    /// symlink, two hard-linked names and a fifo.
    fn snapshot(repo: &std::sync::Arc<Repository>, extra: Vec<Node>) -> Id {
        repo.load_index(true).unwrap();
        let sink = BlobSink::new(repo.clone(), 3);
        let mut x = file(&sink, "x.txt", b"with an attribute");
        x.xattrs = vec![(
            ByteBuf::from(&b"user.note"[..]),
            ByteBuf::from(&b"hello"[..]),
        )];
        let mut link = node("link", NodeType::Symlink);
        link.mode = 0o777;
        link.target = Some(b"../a.txt".to_vec());
        let mut d = node("d", NodeType::Dir);
        d.subtree = Some(tree(&sink, vec![x, link]));
        d.xattrs = vec![(ByteBuf::from(&b"user.dir"[..]), ByteBuf::from(&b"on d"[..]))];
        let mut h1 = file(&sink, "h1", b"one inode, two names");
        (h1.links, h1.device_id, h1.inode) = (2, 9, 42);
        let h2 = Node {
            name: b"h2".to_vec(),
            ..h1.clone()
        };
        let mut nodes = vec![
            file(&sink, "a.txt", b"alpha"),
            file(&sink, "b.txt", b"bravo"),
            file(&sink, "c.bin", &[7u8; 1000]),
            d,
            h1,
            h2,
            node("fifo", NodeType::Fifo),
        ];
        nodes.extend(extra);
        let root = tree(&sink, nodes);
        sink.finish().unwrap();
        repo.load_index(false).unwrap();
        root
    }

    fn verifying(target: PathBuf) -> RestoreOptions {
        let mut opts = RestoreOptions::new(target);
        opts.verify = true;
        opts
    }

    /// The verification pass alone, over a tree restored earlier.
    fn verify_again(repo: &Repository, root: &Id, opts: &RestoreOptions) -> Vec<String> {
        let ctx = Ctx {
            repo,
            opts,
            progress: Default::default(),
            errors: Mutex::new(Vec::new()),
            failed_files: AtomicU64::new(0),
            failed: Default::default(),
            unchanged: AtomicU64::new(0),
        };
        let nodes = repo.read_tree(root).unwrap().nodes;
        verify_restored(&ctx, &nodes, b"", &HashSet::new(), 2);
        let mut errors = ctx.errors.into_inner().unwrap();
        errors.sort();
        errors
    }

    fn set_mtime(path: &Path, t: Time) {
        let ts = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: t.0 as libc::time_t,
                tv_nsec: t.1 as libc::c_long,
            },
        ];
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: c is a valid path, ts has the two elements utimensat requires.
        let r = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(r, 0, "utimensat {}", path.display());
    }

    #[test]
    fn an_untouched_restore_verifies_clean() {
        let (d, repo) = crate::repo::test_repo();
        let root = snapshot(&repo, vec![]);
        let opts = verifying(d.path().join("t"));
        let st = restore(&repo, &root, &opts).unwrap();
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert_eq!(st.files, 6);
        assert!(verify_again(&repo, &root, &opts).is_empty());
        let t = &opts.target;
        assert_eq!(
            std::fs::metadata(t.join("h1")).unwrap().ino(),
            std::fs::metadata(t.join("h2")).unwrap().ino()
        );
    }

    #[test]
    fn each_difference_is_reported_with_its_path() {
        let (d, repo) = crate::repo::test_repo();
        let root = snapshot(&repo, vec![]);
        let opts = verifying(d.path().join("t"));
        let t = opts.target.clone();
        assert!(restore(&repo, &root, &opts).unwrap().errors.is_empty());

        std::fs::set_permissions(t.join("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
        set_mtime(&t.join("b.txt"), Time(MTIME.0, 5));
        // one byte, same size, same mtime: only the content tells
        let c = std::fs::OpenOptions::new()
            .write(true)
            .open(t.join("c.bin"))
            .unwrap();
        c.write_all_at(b"8", 500).unwrap();
        drop(c);
        set_mtime(&t.join("c.bin"), MTIME);
        std::fs::remove_file(t.join("d/link")).unwrap();
        std::os::unix::fs::symlink("../b.txt", t.join("d/link")).unwrap();
        set_mtime(&t.join("d/link"), MTIME);
        set_mtime(&t.join("d"), MTIME);
        xattr::remove(t.join("d/x.txt"), "user.note").unwrap();
        // a copy instead of a second name for the same inode
        std::fs::remove_file(t.join("h2")).unwrap();
        std::fs::copy(t.join("h1"), t.join("h2")).unwrap();
        set_mtime(&t.join("h2"), MTIME);

        let say =
            |p: &str, what: &str| format!("{}: verification failed: {what}", t.join(p).display());
        let mut want = vec![
            say("a.txt", "mode is 0600 but the snapshot says 0644"),
            say(
                "b.txt",
                "mtime is 2020-09-13 12:26:40.000000005 UTC but the snapshot says 2020-09-13 12:26:40.123456789 UTC",
            ),
            say("c.bin", "content differs from the snapshot"),
            say(
                "d/link",
                "symlink target is \"../b.txt\" but the snapshot says \"../a.txt\"",
            ),
            say("d/x.txt", "extended attribute user.note is missing"),
            say(
                "h2",
                &format!("it is not a hard link to {}", t.join("h1").display()),
            ),
        ];
        if opts.owners {
            std::os::unix::fs::lchown(t.join("fifo"), Some(1234), None).unwrap();
            want.push(say("fifo", "owner is uid 1234 but the snapshot says uid 0"));
        }
        want.sort();
        assert_eq!(verify_again(&repo, &root, &opts), want);
    }

    #[test]
    fn a_type_or_size_change_is_one_error() {
        let (d, repo) = crate::repo::test_repo();
        let root = snapshot(&repo, vec![]);
        let opts = verifying(d.path().join("t"));
        let t = opts.target.clone();
        assert!(restore(&repo, &root, &opts).unwrap().errors.is_empty());
        std::fs::remove_file(t.join("fifo")).unwrap();
        std::fs::write(t.join("fifo"), b"").unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.join("a.txt"))
            .unwrap()
            .set_len(2)
            .unwrap();
        set_mtime(&t.join("a.txt"), MTIME);
        std::fs::remove_file(t.join("b.txt")).unwrap();
        let errors = verify_again(&repo, &root, &opts);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0]
            .ends_with("a.txt: verification failed: size is 2 bytes but the snapshot says 5"));
        assert!(errors[1].contains("b.txt: verification failed: cannot look at it:"));
        assert!(errors[2]
            .ends_with("fifo: verification failed: it is a file but the snapshot says fifo"));
    }

    /// The pass runs at the end of a restore: a file the snapshot describes
    /// inconsistently (a hole where its blob has data) is written as the holes
    /// say, and reading it back shows it is not what the snapshot holds.
    #[test]
    fn a_restore_with_verify_reports_what_it_wrote_wrong() {
        let (d, repo) = crate::repo::test_repo();
        repo.load_index(true).unwrap();
        let sink = BlobSink::new(repo.clone(), 3);
        let mut holey = file(&sink, "holey.bin", &[7u8; 1000]);
        holey.holes = vec![(0, 1000)];
        sink.finish().unwrap();
        let root = snapshot(&repo, vec![holey]);
        let target = d.path().join("t");
        let st = restore(&repo, &root, &verifying(target.clone())).unwrap();
        assert_eq!(
            st.errors,
            vec![format!(
                "{}: verification failed: content differs from the snapshot",
                target.join("holey.bin").display()
            )]
        );
        let st = restore(&repo, &root, &RestoreOptions::new(d.path().join("t2"))).unwrap();
        assert!(st.errors.is_empty(), "{:?}", st.errors);
    }

    /// What the restore left out, kept, or already reported as failed is not
    /// reported again.
    #[test]
    fn excluded_kept_and_failed_entries_are_not_checked() {
        let (d, repo) = crate::repo::test_repo();
        let mut lost = node("lost.bin", NodeType::File);
        lost.size = 4;
        lost.content = Some(vec![Id([7; 32])]);
        (lost.links, lost.device_id, lost.inode) = (2, 9, 43);
        let lost_link = Node {
            name: b"lost.link".to_vec(),
            ..lost.clone()
        };
        let root = snapshot(&repo, vec![lost, lost_link]);
        let mut opts = verifying(d.path().join("t"));
        let t = opts.target.clone();
        let st = restore(&repo, &root, &opts).unwrap();
        assert_eq!(st.errors.len(), 2, "{:?}", st.errors);
        assert!(st.errors.iter().all(|e| !e.contains("verification")));

        // kept by --overwrite never, different as it is
        std::fs::write(t.join("a.txt"), b"mine").unwrap();
        opts.overwrite = select::Overwrite::Never;
        let st = restore(&repo, &root, &opts).unwrap();
        assert_eq!(st.errors.len(), 2, "{:?}", st.errors);

        // left out by --exclude, or not picked by --include
        let t2 = d.path().join("t2");
        let mut opts = verifying(t2.clone());
        opts.selection.exclude = Some(
            crate::backup::exclude::Excludes::new(&["/lost.*".into(), "/a.txt".into()], &[])
                .unwrap(),
        );
        let st = restore(&repo, &root, &opts).unwrap();
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert!(!t2.join("a.txt").exists());
        let t3 = d.path().join("t3");
        let mut opts = verifying(t3.clone());
        opts.selection.include =
            Some(crate::backup::exclude::Excludes::new(&["/d/x.txt".into()], &[]).unwrap());
        let st = restore(&repo, &root, &opts).unwrap();
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert!(t3.join("d/x.txt").exists() && !t3.join("d/link").exists());
    }
}
