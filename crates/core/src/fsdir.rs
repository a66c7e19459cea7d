//! An open directory, and file-system calls made relative to it, for code
//! that must never be led out of a tree by a symlink someone else can plant
//! or swap in: the restore target (where a local user may race a root
//! restore) and a local repository (where whoever can write to the storage
//! may). A directory is reached from its parent's descriptor with
//! O_NOFOLLOW|O_DIRECTORY, or from the tree's root with openat2 and
//! RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (one component at a time where
//! openat2 is missing); an entry is named by one component relative to its
//! directory's descriptor. So nothing is opened, created, linked, renamed,
//! removed, chowned or touched through a path that could lead out.

use crate::format::tree::{NodeType, Time};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Temporary files of a restore are named `.ironvault-restore-<16 hex>.tmp`.
pub const TEMP_PREFIX: &str = ".ironvault-restore-";

/// True if `name` is one a restore gives its temporary files.
pub(super) fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX.as_bytes()) else {
        return false;
    };
    rest.len() == 20 && rest.ends_with(b".tmp") && rest[..16].iter().all(u8::is_ascii_hexdigit)
}

/// An open directory of the target.
#[derive(Debug)]
pub(super) struct Dir {
    file: File,
}

/// What the file system says about one entry (lstat: never followed).
#[derive(Clone, Copy, Debug)]
pub(super) struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Time,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Stat {
    fn from_raw(st: &libc::stat) -> Stat {
        Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: Time(st.st_mtime, st.st_mtime_nsec as u32),
            dev: st.st_dev,
            ino: st.st_ino,
            // u32 on some architectures.
            #[allow(clippy::unnecessary_cast)]
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev,
        }
    }

    /// fstat of an open descriptor (O_PATH ones too).
    pub fn of(fd: &impl AsRawFd) -> io::Result<Stat> {
        // SAFETY: an all-zero stat is a valid value; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open for the duration of the call.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        Ok(Stat::from_raw(&st))
    }

    /// The kind of node this is.
    pub fn kind(&self) -> NodeType {
        match self.mode & libc::S_IFMT {
            libc::S_IFDIR => NodeType::Dir,
            libc::S_IFREG => NodeType::File,
            libc::S_IFLNK => NodeType::Symlink,
            libc::S_IFIFO => NodeType::Fifo,
            libc::S_IFCHR => NodeType::Chardev,
            libc::S_IFBLK => NodeType::Blockdev,
            // The one file type left.
            _ => NodeType::Socket,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == NodeType::Dir
    }

    pub fn is_file(&self) -> bool {
        self.kind() == NodeType::File
    }

    /// (device, inode): one file, whatever its names.
    pub fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// One entry name as the C calls take it. Names are single components,
/// never "." or ".." (the selection refuses others); checked again here
/// because everything in this module relies on it.
fn cname(name: &[u8]) -> io::Result<CString> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single file name",
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a file name"))
}

/// Argument of openat2(2) (linux/openat2.h).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// The path through /proc at which descriptor `fd` itself is found.
pub(super) fn proc_fd_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

impl Dir {
    /// Open the target directory itself: the one open by path, of the
    /// directory the user named.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        Ok(Dir { file })
    }

    /// The directory as a file, for calls on its descriptor (metadata).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn openat(&self, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        // SAFETY: name is NUL-terminated and outlives the call.
        let fd = cvt(unsafe {
            libc::openat(
                self.fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The subdirectory `name`; fails (ELOOP, ENOTDIR) if it is a symlink or
    /// anything but a directory.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Dir> {
        let fd = self.openat(
            &cname(name)?,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        Ok(Dir { file: fd.into() })
    }

    /// The directory at `rel` ("a/b/c"; empty: this one) below this one,
    /// following no symlink on the way.
    pub fn open_beneath(&self, rel: &[u8]) -> io::Result<Dir> {
        if rel.is_empty() {
            return Ok(Dir {
                file: self.file.try_clone()?,
            });
        }
        let c = CString::new(rel).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        };
        // SAFETY: c is NUL-terminated; how is an open_how of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(r as RawFd) };
            return Ok(Dir { file: fd.into() });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Kernels before 5.6, or a seccomp filter that forbids openat2.
            Some(libc::ENOSYS) | Some(libc::EPERM) => self.open_components(rel),
            _ => Err(e),
        }
    }

    /// `open_beneath` one component at a time (each with O_NOFOLLOW).
    pub(super) fn open_components(&self, rel: &[u8]) -> io::Result<Dir> {
        let mut parts = rel.split(|&b| b == b'/');
        // split always yields at least one part.
        let first = parts.next().unwrap_or_default();
        let mut dir = self.open_dir(first)?;
        for part in parts {
            dir = dir.open_dir(part)?;
        }
        Ok(dir)
    }

    /// lstat of the entry `name`; None if there is none.
    pub fn stat(&self, name: &[u8]) -> io::Result<Option<Stat>> {
        let c = cname(name)?;
        // SAFETY: an all-zero stat is a valid value; fstatat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: c is NUL-terminated, st is a valid stat to write to.
        let r = unsafe { libc::fstatat(self.fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        match cvt(r) {
            Ok(_) => Ok(Some(Stat::from_raw(&st))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// fstat of this directory.
    pub fn stat_self(&self) -> io::Result<Stat> {
        Stat::of(&self.file)
    }

    pub fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: c is NUL-terminated.
        cvt(unsafe { libc::mkdirat(self.fd(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    /// A new, private (0600) temporary file in this directory, open for
    /// reading and writing; returns its name.
    pub fn create_temp(&self) -> io::Result<(Vec<u8>, File)> {
        loop {
            let name = format!("{TEMP_PREFIX}{:016x}.tmp", rand::random::<u64>()).into_bytes();
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
            match self.openat(&cname(&name)?, flags, 0o600) {
                Ok(fd) => return Ok((name, fd.into())),
                // Someone took that name (or planted it): draw another.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The entry `name` open for reading, if it is not a symlink (and without
    /// blocking should it be a fifo).
    pub fn open_read(&self, name: &[u8]) -> io::Result<File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        Ok(self.openat(&cname(name)?, flags, 0)?.into())
    }

    /// An O_PATH descriptor of the entry `name` itself (a symlink is not followed).
    pub fn open_node(&self, name: &[u8]) -> io::Result<OwnedFd> {
        self.openat(&cname(name)?, libc::O_PATH | libc::O_NOFOLLOW, 0)
    }

    /// Remove the entry `name` (not a directory).
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: c is NUL-terminated.
        cvt(unsafe { libc::unlinkat(self.fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// Remove the entry `name`, a directory with everything in it; never
    /// follows a symlink.
    pub fn remove_all(&self, name: &[u8]) -> io::Result<()> {
        match self.stat(name)? {
            None => Ok(()),
            Some(st) if st.is_dir() => {
                let sub = self.open_dir(name)?;
                for n in sub.names()? {
                    sub.remove_all(&n)?;
                }
                let c = cname(name)?;
                // SAFETY: c is NUL-terminated.
                cvt(unsafe { libc::unlinkat(self.fd(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
            }
            Some(_) => self.unlink(name),
        }
    }

    /// Rename `from` to `to`, both in this directory (replacing `to`).
    pub fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let (f, t) = (cname(from)?, cname(to)?);
        // SAFETY: both names are NUL-terminated.
        cvt(unsafe { libc::renameat(self.fd(), f.as_ptr(), self.fd(), t.as_ptr()) }).map(drop)
    }

    /// Give the file `name` of this directory a new name in `to`, a
    /// temporary one, which is returned.
    pub fn link_temp(&self, name: &[u8], to: &Dir) -> io::Result<Vec<u8>> {
        let c = cname(name)?;
        loop {
            let tmp = format!("{TEMP_PREFIX}{:016x}.tmp", rand::random::<u64>()).into_bytes();
            let t = cname(&tmp)?;
            // SAFETY: both names are NUL-terminated; flags 0: `name` is not followed.
            match cvt(unsafe { libc::linkat(self.fd(), c.as_ptr(), to.fd(), t.as_ptr(), 0) }) {
                Ok(_) => return Ok(tmp),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        let t = CString::new(target).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let c = cname(name)?;
        // SAFETY: both strings are NUL-terminated.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), self.fd(), c.as_ptr()) }).map(drop)
    }

    pub fn mknod(&self, name: &[u8], mode: u32, dev: u64) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: c is NUL-terminated.
        cvt(unsafe {
            libc::mknodat(
                self.fd(),
                c.as_ptr(),
                mode as libc::mode_t,
                dev as libc::dev_t,
            )
        })
        .map(drop)
    }

    /// The target of the symlink `name`.
    pub fn readlink(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let c = cname(name)?;
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: buf is writable for buf.len() bytes.
            let n = unsafe {
                libc::readlinkat(
                    self.fd(),
                    c.as_ptr(),
                    buf.as_mut_ptr() as *mut libc::c_char,
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if (n as usize) < buf.len() {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            // Possibly cut short: try again with more room.
            buf.resize(buf.len() * 4, 0);
        }
    }

    /// The names in this directory (without "." and "..").
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        // A new open file description: reading it moves no other's offset.
        let fd = self.openat(c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let raw = fd.into_raw_fd();
        // SAFETY: raw is an open directory descriptor; on success the stream owns it.
        let dirp = unsafe { libc::fdopendir(raw) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so raw is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        let mut out = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; readdir reports errors only through it.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: dirp is an open directory stream.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: d_name of an entry readdir returned is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                out.push(name.to_vec());
            }
        };
        // SAFETY: dirp is open and not used after this.
        unsafe { libc::closedir(dirp) };
        result.map(|()| out)
    }

    /// A path to the entry `name` that goes through this directory's
    /// descriptor (so through no symlink on the way), for the few calls that
    /// take only paths: the l* extended attribute calls, which do not follow
    /// the entry itself either.
    pub fn proc_path(&self, name: &[u8]) -> PathBuf {
        proc_fd_path(self.fd()).join(OsStr::from_bytes(name))
    }

    /// Set the times of the entry `name` without following it.
    pub fn set_times(&self, name: &[u8], ts: &[libc::timespec; 2]) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: c is NUL-terminated, ts has the two elements utimensat requires.
        cvt(unsafe {
            libc::utimensat(
                self.fd(),
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }
}

/// Why a directory of the target could not be opened where the restore
/// expected one, in words the user can act on.
pub(super) fn open_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV) => {
            "it (or a directory above it) was replaced by a symlink or another non-directory \
             during the restore; the restore did not follow it"
                .into()
        }
        Some(libc::ENOENT) => {
            "it (or a directory above it) was removed or moved during the restore".into()
        }
        _ => format!("cannot open it: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_follows_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("f"), b"outside").unwrap();
        let t = d.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("a/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), t.join("a/flink")).unwrap();
        let root = Dir::open(&t).unwrap();
        let a = root.open_dir(b"a").unwrap();
        // Refused as a symlink (ELOOP) or as not a directory (ENOTDIR), and
        // said so in words.
        let refused = |r: io::Result<Dir>| {
            let e = r.unwrap_err();
            assert!(
                matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
                "{e}"
            );
            assert!(open_error(&e).contains("replaced by a symlink"), "{e}");
        };
        refused(a.open_dir(b"link"));
        for rel in [&b"a/link"[..], b"a/link/sub"] {
            refused(root.open_beneath(rel));
            refused(root.open_components(rel));
        }
        assert!(root.open_beneath(b"a/b").is_ok() && root.open_components(b"a/b").is_ok());
        assert!(a.open_read(b"flink").is_err());
        assert!(a.stat(b"link").unwrap().unwrap().kind() == NodeType::Symlink);
        assert_eq!(a.readlink(b"link").unwrap(), outside.as_os_str().as_bytes());
        for bad in [&b".."[..], b".", b"", b"a/b", b"x\0y"] {
            assert!(root.stat(bad).is_err(), "{bad:?}");
        }
        a.remove_all(b"link").unwrap();
        a.unlink(b"flink").unwrap();
        assert!(outside.join("sub").is_dir());
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"outside");
        let (tmp, _) = a.create_temp().unwrap();
        assert!(is_temp_name(&tmp), "{tmp:?}");
        assert!(!is_temp_name(b".ironvault-restore-0123.tmp"));
        let mut names = a.names().unwrap();
        names.sort();
        assert_eq!(names, vec![tmp.clone(), b"b".to_vec()]);
        root.remove_all(b"a").unwrap();
        assert!(root.names().unwrap().is_empty());
    }
}
