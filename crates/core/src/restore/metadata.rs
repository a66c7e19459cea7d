//! Setting a restored node's metadata: owners, mode, extended attributes
//! (and so POSIX ACLs), then times — never through a symlink: regular files
//! and directories by file descriptor, other nodes by path with
//! no-follow calls.

use crate::format::tree::{Node, NodeType};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn cpath(p: &Path) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
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
/// descriptor: nothing can redirect these to another file.
pub(super) fn apply_metadata_fd(
    f: &std::fs::File,
    node: &Node,
    owners: bool,
) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    use xattr::FileExt as _;
    let fd = f.as_raw_fd();
    if owners {
        // SAFETY: fd is open for the duration of the call.
        check(unsafe { libc::fchown(fd, node.uid, node.gid) })?;
    }
    // chmod after chown: chown clears setuid/setgid bits.
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

/// Metadata of a directory, symlink, fifo or device node at `path`; never
/// follows a symlink (directories are opened with O_NOFOLLOW and handled by fd).
pub fn apply_metadata(path: &Path, node: &Node, owners: bool) -> std::io::Result<()> {
    if node.node_type == NodeType::Dir {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)?;
        return apply_metadata_fd(&f, node, owners);
    }
    let c = cpath(path)?;
    let is_link = node.node_type == NodeType::Symlink;
    if owners {
        // SAFETY: c is a valid NUL-terminated path.
        check(unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) })?;
    }
    if !is_link {
        // Fifos and device nodes cannot be opened safely (opening a tape
        // device may rewind it): chmod by path, after checking it is not a symlink.
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(std::io::Error::other(
                "replaced by a symlink during restore",
            ));
        }
        // SAFETY: as above.
        check(unsafe { libc::chmod(c.as_ptr(), node.mode & 0o7777) })?;
    }
    for (name, value) in &node.xattrs {
        // xattr::set uses lsetxattr: it does not follow symlinks.
        if let Err(e) = xattr::set(path, os(name), value) {
            // Symlinks cannot carry user.* attributes on Linux; nothing to restore then.
            if !(is_link && e.raw_os_error() == Some(libc::EPERM)) {
                return Err(xattr_error(name, e));
            }
        }
    }
    let ts = timespecs(node);
    // SAFETY: c is a valid path, ts has two elements as utimensat requires.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}
