//! Setting a restored entry's metadata: owners, mode, extended attributes
//! (and so POSIX ACLs), then times — never through a path that could lead
//! elsewhere: regular files and directories through their open descriptor;
//! symlinks, fifos and device nodes through an O_PATH descriptor of the entry
//! (checked to be the kind the restore created), and by their one name in
//! their directory's descriptor, not followed, where Linux has no call on a
//! descriptor (attributes, times). Until this runs, what the restore creates
//! is private: files 0600, directories 0700, special files 0600.
//!
//! With `--no-special` a node is first stripped of what could give
//! privileges on this host (`without_privileges`).
//!
//! Files and special files get their metadata as they are made; directories
//! get theirs in a stage of their own once everything is written
//! (`set_dir_metadata`), deepest first, so that writing their children does
//! not change their times and a 0500 directory can still be filled.

use super::dir::{self, proc_fd_path, Dir, Stat};
use super::Ctx;
use crate::format::tree::{Node, NodeType};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// Set the metadata of the restored directories `dirs` (relative to the
/// target `root`, parents before children), deepest first; each failure is
/// reported for its directory.
pub(super) fn set_dir_metadata(ctx: &Ctx<'_>, root: &Dir, dirs: &[(Vec<u8>, Node)]) {
    for (rel, node) in dirs.iter().rev() {
        let set = root
            .open_beneath(rel)
            .map_err(|e| dir::open_error(&e))
            .and_then(|d| {
                apply_metadata_fd(d.file(), node, ctx.opts.owners).map_err(|e| e.to_string())
            });
        if let Err(e) = set {
            ctx.fail(&ctx.shown(rel), format!("cannot set metadata: {e}"));
        }
    }
}

/// The extended attribute that holds file capabilities.
const CAPABILITY: &[u8] = b"security.capability";

/// The extended attributes that hold POSIX ACLs.
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// The ACL attributes an entry must not keep: those its node does not have
/// (a new entry inherits its directory's default ACL).
pub(super) fn foreign_acls(node: &Node) -> impl Iterator<Item = &'static str> + '_ {
    ACLS.into_iter().filter(|acl| {
        !node
            .xattrs
            .iter()
            .any(|(n, _)| n.as_slice() == acl.as_bytes())
    })
}

/// Whether removing an attribute failed only because there was none to remove.
fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)
    )
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn timespecs(node: &Node) -> [libc::timespec; 2] {
    let atime = node.atime.unwrap_or(node.mtime);
    [
        libc::timespec {
            tv_sec: atime.0 as libc::time_t,
            tv_nsec: atime.1 as libc::c_long,
        },
        libc::timespec {
            tv_sec: node.mtime.0 as libc::time_t,
            tv_nsec: node.mtime.1 as libc::c_long,
        },
    ]
}

fn check(r: libc::c_int) -> std::io::Result<()> {
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn xattr_error(name: &[u8], e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("extended attribute {}: {e}", String::from_utf8_lossy(name)),
    )
}

/// Owners, mode, xattrs (and so ACLs), then times, through an open file
/// or directory descriptor: nothing can redirect these to another file.
pub(super) fn apply_metadata_fd(
    f: &std::fs::File,
    node: &Node,
    owners: bool,
) -> std::io::Result<()> {
    use xattr::FileExt as _;
    let fd = f.as_raw_fd();
    if owners {
        // SAFETY: fd is open for the duration of the call.
        check(unsafe { libc::fchown(fd, node.uid, node.gid) })?;
    }
    for acl in foreign_acls(node) {
        match f.remove_xattr(acl) {
            Err(e) if !absent(&e) => return Err(xattr_error(acl.as_bytes(), e)),
            _ => {}
        }
    }
    // chmod after chown (which clears setuid/setgid bits) and after ACLs
    // are removed (which leave the group bits as the ACL mask had them).
    // SAFETY: as above.
    check(unsafe { libc::fchmod(fd, node.mode & 0o7777) })?;
    for (name, value) in &node.xattrs {
        f.set_xattr(os(name), value)
            .map_err(|e| xattr_error(name, e))?;
    }
    let ts = timespecs(node);
    // SAFETY: fd is open; ts has the two elements futimens requires.
    check(unsafe { libc::futimens(fd, ts.as_ptr()) })
}

/// Metadata of the symlink, fifo or device node `name` of `dir`, just
/// created by the restore.
pub(super) fn apply_metadata_at(
    dir: &Dir,
    name: &[u8],
    node: &Node,
    owners: bool,
) -> std::io::Result<()> {
    // A descriptor of the entry itself, without opening it (opening a tape
    // device may rewind it); if someone swapped it, it is not what we made.
    let fd = dir.open_node(name)?;
    let found = Stat::of(&fd)?.kind();
    if found != node.node_type {
        return Err(std::io::Error::other(
            "it was replaced by another kind of entry during the restore; left as it is",
        ));
    }
    let is_link = node.node_type == NodeType::Symlink;
    if owners {
        // SAFETY: fd is open; the empty path with AT_EMPTY_PATH names fd itself.
        check(unsafe {
            libc::fchownat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                node.uid,
                node.gid,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
    }
    if !is_link {
        for acl in foreign_acls(node) {
            match xattr::remove(dir.proc_path(name), acl) {
                Err(e) if !absent(&e) => return Err(xattr_error(acl.as_bytes(), e)),
                _ => {}
            }
        }
        // /proc/self/fd/N resolves to the inode fd holds, not by name again.
        let c = std::ffi::CString::new(proc_fd_path(fd.as_raw_fd()).as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: c is NUL-terminated.
        check(unsafe { libc::chmod(c.as_ptr(), node.mode & 0o7777) })?;
    }
    for (attr, value) in &node.xattrs {
        // lsetxattr, on the name within dir's descriptor: nothing is followed.
        if let Err(e) = xattr::set(dir.proc_path(name), os(attr), value) {
            // Symlinks cannot carry user.* attributes on Linux; nothing to restore then.
            if !(is_link && e.raw_os_error() == Some(libc::EPERM)) {
                return Err(xattr_error(attr, e));
            }
        }
    }
    dir.set_times(name, &timespecs(node))
}

/// What `--no-special` restores of `node`: nothing for a device node;
/// otherwise the node without setuid/setgid bits and without a
/// security.capability attribute.
pub(super) fn without_privileges(node: &Node) -> Option<Cow<'_, Node>> {
    if matches!(node.node_type, NodeType::Chardev | NodeType::Blockdev) {
        return None;
    }
    let (setid, cap) = privileges(node);
    if !setid && !cap {
        return Some(Cow::Borrowed(node));
    }
    let mut n = node.clone();
    n.mode &= !(libc::S_ISUID | libc::S_ISGID);
    n.xattrs.retain(|(name, _)| name.as_slice() != CAPABILITY);
    Some(Cow::Owned(n))
}

/// Whether `node` has setuid/setgid bits, and whether it has file capabilities.
pub(super) fn privileges(node: &Node) -> (bool, bool) {
    (
        node.mode & (libc::S_ISUID | libc::S_ISGID) != 0,
        node.xattrs
            .iter()
            .any(|(name, _)| name.as_slice() == CAPABILITY),
    )
}
