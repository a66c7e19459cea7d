//! Reading file-system metadata into tree nodes: lstat fields, owner names,
//! extended attributes (which carry POSIX ACLs), and the holes of sparse files.

use crate::format::tree::{Node, NodeType, Time};
use crate::host::{group_name, user_name};
use std::ffi::CStr;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The node type of an lstat result.
pub fn node_type(md: &Metadata) -> NodeType {
    let ft = md.file_type();
    if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_fifo() {
        NodeType::Fifo
    } else if ft.is_char_device() {
        NodeType::Chardev
    } else if ft.is_block_device() {
        NodeType::Blockdev
    } else if ft.is_socket() {
        NodeType::Socket
    } else {
        NodeType::File
    }
}

/// A node from an lstat result (content, subtree, target and xattrs are filled in later).
pub fn node_from_metadata(name: &[u8], md: &Metadata) -> Node {
    node_from_parts(
        name,
        node_type(md),
        [md.mode(), md.uid(), md.gid()],
        [md.size(), md.ino(), md.dev(), md.nlink(), md.rdev()],
        [
            Time(md.mtime(), md.mtime_nsec() as u32),
            Time(md.ctime(), md.ctime_nsec() as u32),
            Time(md.atime(), md.atime_nsec() as u32),
        ],
    )
}

/// The node type of an `st_mode`.
fn node_type_of_mode(mode: u32) -> NodeType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => NodeType::Dir,
        libc::S_IFLNK => NodeType::Symlink,
        libc::S_IFIFO => NodeType::Fifo,
        libc::S_IFCHR => NodeType::Chardev,
        libc::S_IFBLK => NodeType::Blockdev,
        libc::S_IFSOCK => NodeType::Socket,
        _ => NodeType::File,
    }
}

/// The entries of directory `path`, sorted by name, each with its lstat as a
/// node (symlinks with their target), all through one descriptor that is
/// closed on return.
pub fn read_dir_at(path: &Path) -> std::io::Result<Vec<(Vec<u8>, std::io::Result<Node>)>> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    let mut names = list_fd(&dir)?;
    names.sort();
    Ok(names
        .into_iter()
        .map(|n| {
            let node = node_at(&dir, &n).and_then(|mut node| {
                if node.node_type == NodeType::Symlink {
                    node.target = Some(readlink_at(&dir, &n)?);
                }
                Ok(node)
            });
            (n, node)
        })
        .collect())
}

/// Names in an open directory (without `.` and `..`).
fn list_fd(dir: &File) -> std::io::Result<Vec<Vec<u8>>> {
    // fdopendir takes ownership of the descriptor it is given: give it a duplicate.
    // SAFETY: dup of a valid fd.
    let fd = unsafe { libc::dup(dir.as_raw_fd()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a valid directory descriptor we own.
    let d = unsafe { libc::fdopendir(fd) };
    if d.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: fd is ours and was not taken by fdopendir.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // SAFETY: d is a valid DIR*; rewind because the duplicate shares the offset.
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    let result = loop {
        // readdir returns NULL at the end or on error; errno tells which.
        // SAFETY: errno location is thread-local; d is valid.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: d is valid until closedir below.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let errno = std::io::Error::last_os_error();
            break if errno.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(errno)
            };
        }
        // SAFETY: d_name is NUL-terminated within the dirent readdir returned.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: d is valid; closedir also closes the duplicated fd.
    unsafe { libc::closedir(d) };
    result.map(|_| names)
}

/// readlinkat(dir, name).
fn readlink_at(dir: &File, name: &[u8]) -> std::io::Result<Vec<u8>> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: dir is open, c valid, buf valid for buf.len() bytes.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if (n as usize) < buf.len() {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        // The target may have been cut: try again with more room.
        buf.resize(buf.len() * 4, 0);
    }
}

/// lstat of `name` inside the open directory `dir` (one path component to
/// resolve instead of the whole path), as a node.
pub fn node_at(dir: &File, name: &[u8]) -> std::io::Result<Node> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: stat is plain data, filled by fstatat on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: dir is an open directory, c a valid NUL-terminated name, st valid for writes.
    if unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(node_from_parts(
        name,
        node_type_of_mode(st.st_mode),
        [st.st_mode, st.st_uid, st.st_gid],
        [
            st.st_size as u64,
            st.st_ino,
            st.st_dev,
            st.st_nlink,
            st.st_rdev,
        ],
        [
            Time(st.st_mtime, st.st_mtime_nsec as u32),
            Time(st.st_ctime, st.st_ctime_nsec as u32),
            Time(st.st_atime, st.st_atime_nsec as u32),
        ],
    ))
}

fn node_from_parts(
    name: &[u8],
    t: NodeType,
    [mode, uid, gid]: [u32; 3],
    nums: [u64; 5],
    times: [Time; 3],
) -> Node {
    let [size, ino, dev, nlink, rdev] = nums;
    let [mtime, ctime, atime] = times;
    Node {
        name: name.to_vec(),
        node_type: t,
        mode: mode & 0o7777,
        uid,
        gid,
        user: user_name(uid),
        group: group_name(gid),
        size: if t == NodeType::File { size } else { 0 },
        mtime,
        ctime,
        atime: (!matches!(t, NodeType::Dir | NodeType::Symlink)).then_some(atime),
        inode: ino,
        device_id: dev,
        links: nlink,
        rdev: matches!(t, NodeType::Chardev | NodeType::Blockdev).then_some(rdev),
        target: None,
        content: None,
        holes: Vec::new(),
        subtree: None,
        xattrs: Vec::new(),
        flags: Vec::new(),
    }
}

/// Extended attributes of `path` (not following symlinks), names sorted.
pub fn read_xattrs(
    path: &Path,
) -> std::io::Result<Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for n in names {
        if let Some(v) = xattr::get(path, &n)? {
            out.push((
                serde_bytes::ByteBuf::from(n.as_bytes().to_vec()),
                serde_bytes::ByteBuf::from(v),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// The holes of an open file, from SEEK_DATA/SEEK_HOLE: (offset, length) pairs.
pub fn find_holes(f: &File, size: u64) -> Vec<(u64, u64)> {
    let fd = f.as_raw_fd();
    let mut holes = Vec::new();
    let mut pos: i64 = 0;
    let size = size as i64;
    while pos < size {
        // SAFETY: lseek on a valid fd has no memory-safety preconditions.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after pos — the rest is a hole. Other errors: treat as no holes.
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                holes.push((pos as u64, (size - pos) as u64));
            }
            break;
        }
        if data > pos {
            holes.push((pos as u64, (data.min(size) - pos) as u64));
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            break;
        }
        pos = hole;
    }
    holes
}
