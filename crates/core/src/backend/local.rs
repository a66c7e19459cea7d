//! Local directory backend. Every put is: write `<name>.tmp-<rand>` in the
//! final directory, fsync it, rename over the final name, fsync the directory
//! (format.md §8). Failpoints sit between those steps. Files are created
//! with mode 0600 and directories with 0700 whatever the umask (`private`):
//! key files must not be readable by other users.

use super::{Backend, ObjectInfo};
use crate::backend::is_not_found;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::format::kind::CONFIG_NAME;
use crate::format::ObjectKind;
use crate::fsdir::Dir;
use crate::sync::Locked;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file-system steps a put is made of. The real implementation calls
/// the kernel; tests wrap it to simulate a power cut that loses whatever was
/// not yet made durable (`crashsim`).
pub trait FileOps: Send + Sync {
    /// Create `path` (which must not exist, mode 0600) and write `data`, without fsync.
    /// `kind` names the failpoints (`<kind>-temp-write`).
    fn write_new(&self, path: &Path, data: &[u8], kind: &str) -> std::io::Result<()>;
    /// fsync a file's data and metadata.
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    /// rename(2), replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// fsync a directory (makes creations, renames and removals in it durable).
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// mkdir(2), mode 0700.
    fn create_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The kernel's file system.
pub struct RealFileOps;

impl FileOps for RealFileOps {
    fn write_new(&self, path: &Path, data: &[u8], kind: &str) -> std::io::Result<()> {
        let mut f = super::private::create_file(path)?;
        let half = data.len() / 2;
        f.write_all(&data[..half])?;
        failpoint::hit(&format!("{kind}-temp-write"));
        f.write_all(&data[half..])
    }

    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        fsync_dir(dir)
    }

    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        super::private::create_dir(dir)
    }
}

/// A repository in a local directory.
pub struct LocalBackend {
    root: PathBuf,
    made_dirs: Mutex<HashSet<PathBuf>>,
    ops: Box<dyn FileOps>,
    /// Open handles of recently read objects: packs are immutable, and a
    /// restore reads many blobs from each. Bounded by `HANDLES`.
    handles: Mutex<HashMap<String, Arc<File>>>,
}

/// Most object handles kept open for ranged reads.
const HANDLES: usize = 64;

fn st(op: &'static str, name: &str, source: std::io::Error) -> Error {
    Error::Storage {
        op,
        name: name.to_string(),
        source,
    }
}

/// The failpoint prefix for an object name: pack, index, snapshot, lock, other.
fn kind_of(name: &str) -> &'static str {
    if name == CONFIG_NAME {
        return "config";
    }
    match ObjectKind::of_name(name) {
        Some(ObjectKind::Pack(_)) => "pack",
        Some(ObjectKind::Index) => "index",
        Some(ObjectKind::Snapshot) => "snapshot",
        Some(ObjectKind::Lock) => "lock",
        Some(ObjectKind::Key) => "key",
        _ => "other",
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_ops(root, Box::new(RealFileOps))
    }

    /// A backend whose file-system steps go through `ops` (for crash tests).
    pub fn with_ops(root: impl Into<PathBuf>, ops: Box<dyn FileOps>) -> Self {
        let root: PathBuf = root.into();
        // Absolute, so every directory has a parent that can be fsynced.
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalBackend {
            root,
            made_dirs: Mutex::new(HashSet::new()),
            ops,
            handles: Mutex::new(HashMap::new()),
        }
    }

    /// The path of object `name`. Every directory between the root and the
    /// object must be a real directory, not a symbolic link: whoever can
    /// write to the repository could otherwise point `packs` or `locks` at
    /// another directory and have prune, forget or unlock delete there
    /// (format.md §1). Directories that do not exist yet are fine.
    fn path(&self, name: &str) -> Result<PathBuf> {
        self.real_dirs(name, false)?;
        Ok(self.root.join(name))
    }

    /// The directory holding object `name`, opened from the root without
    /// following any symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
    /// and the object's own name in it. Reads, deletions and listings go
    /// through it, so a directory swapped for a link while a command runs
    /// leads nowhere (the check of `path` gives the readable message first).
    fn parent_of<'a>(&self, name: &'a str) -> Result<(Dir, &'a str)> {
        self.real_dirs(name, false)?;
        let (parent, fname) = name.rsplit_once('/').unwrap_or(("", name));
        let root = Dir::open(&self.root).map_err(|e| st("open", name, e))?;
        let d = root
            .open_beneath(parent.as_bytes())
            .map_err(|e| st("open", name, e))?;
        Ok((d, fname))
    }

    /// Open object `name` for reading: a regular file, reached through no symlink.
    fn open_object(&self, name: &str) -> Result<File> {
        let (d, fname) = self.parent_of(name)?;
        let f = d
            .open_read(fname.as_bytes())
            .map_err(|e| st("open", name, e))?;
        let md = f.metadata().map_err(|e| st("open", name, e))?;
        if !md.is_file() {
            return Err(st(
                "open",
                name,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"),
            ));
        }
        Ok(f)
    }

    /// Check the directories on the way to `rel` (and `rel` itself when
    /// `including_last`): each must be missing or a real directory.
    fn real_dirs(&self, rel: &str, including_last: bool) -> Result<()> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let n = if including_last {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        let mut dir = self.root.clone();
        for part in &parts[..n] {
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(Error::damaged(
                        dir.display().to_string(),
                        "not a directory but a symbolic link or another kind of file, where the repository keeps a directory: only regular files in real directories under the repository are objects (format.md §1); someone with access to the storage put it there: remove it, then run 'ironvault check'",
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(st("stat", rel, e)),
            }
        }
        Ok(())
    }

    /// Create `dir` and its parents, fsyncing each parent whose entry changed.
    fn ensure_dir(&self, dir: &Path, name: &str) -> Result<()> {
        // The lock is not held across the syscalls below for long: mkdir is quick.
        if self.made_dirs.locked().contains(dir) {
            return Ok(());
        }
        if !dir.is_dir() {
            if let Some(parent) = dir.parent() {
                if parent != self.root.parent().unwrap_or(Path::new("/")) {
                    self.ensure_dir(parent, name)?;
                }
            }
            match self.ops.create_dir(dir) {
                Ok(()) => {
                    if let Some(parent) = dir.parent() {
                        self.ops
                            .sync_dir(parent)
                            .map_err(|e| st("fsync dir", name, e))?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(st("mkdir", name, e)),
            }
        }
        self.made_dirs.locked().insert(dir.to_path_buf());
        Ok(())
    }

    fn list_dir(&self, dir: &Dir, rel: &str, out: &mut Vec<ObjectInfo>) -> Result<()> {
        for fname in dir.names().map_err(|e| st("list", rel, e))? {
            let Ok(fname) = String::from_utf8(fname) else {
                continue;
            };
            if fname.contains(".tmp-") {
                continue;
            }
            let child = if rel.is_empty() {
                fname.clone()
            } else {
                format!("{rel}/{fname}")
            };
            // Not following symlinks: only real files are objects. Whoever
            // can write to the directory could plant a FIFO (a read blocks
            // forever) or a link to /dev/zero (a read never ends).
            let md = match dir.stat(fname.as_bytes()) {
                Ok(Some(md)) => md,
                // Deleted since the directory was read (a prune or forget
                // running beside us): not an object any more.
                Ok(None) => continue,
                Err(e) => return Err(st("list", &child, e)),
            };
            if md.is_dir() {
                match dir.open_dir(fname.as_bytes()) {
                    Ok(sub) => self.list_dir(&sub, &child, out)?,
                    // Gone since it was stat-ed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(st("list", &child, e)),
                }
            } else if md.is_file() {
                out.push(ObjectInfo {
                    name: child,
                    size: md.size,
                    modified: mtime(md.mtime),
                });
            }
        }
        Ok(())
    }
}

/// A file time as the storage stamped it.
fn mtime(t: crate::format::tree::Time) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::new(t.0.max(0) as u64, t.1)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    /// A directory keeps nothing from this host. Test builds only
    /// (`failpoints`): a file `failpoint-append-only` in the repository
    /// holding a role makes it answer as an append-only server would, so the
    /// 3-2-1-1-0 verdict can be tested end to end before such a server runs
    /// in the suite. Release builds never read it.
    fn immutability(&self) -> Result<Option<super::Immutability>> {
        #[cfg(feature = "failpoints")]
        if let Ok(role) = std::fs::read_to_string(self.root.join("failpoint-append-only")) {
            return Ok(Some(super::Immutability::AppendOnly {
                role: role.trim().to_string(),
            }));
        }
        Ok(None)
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        let kind = kind_of(name);
        let path = self.path(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir, name)?;
        let fname = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("object");
        let tmp = dir.join(format!(
            "{fname}.tmp-{}",
            &crate::format::Id::random().to_hex()[..16]
        ));
        let result = (|| -> Result<()> {
            self.ops
                .write_new(&tmp, data, kind)
                .map_err(|e| st("write", name, e))?;
            failpoint::hit(&format!("{kind}-before-fsync"));
            self.ops.sync_file(&tmp).map_err(|e| st("fsync", name, e))?;
            failpoint::hit(&format!("{kind}-before-rename"));
            self.ops
                .rename(&tmp, &path)
                .map_err(|e| st("rename", name, e))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        failpoint::hit(&format!("{kind}-after-rename"));
        self.ops
            .sync_dir(&dir)
            .map_err(|e| st("fsync dir", name, e))?;
        failpoint::hit(&format!("{kind}-after-dir-fsync"));
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>> {
        let mut f = self.open_object(name)?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out).map_err(|e| st("read", name, e))?;
        Ok(out)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let cached = self.handles.locked().get(name).cloned();
        let f = match cached {
            Some(f) => f,
            None => {
                let f = Arc::new(self.open_object(name)?);
                {
                    let mut h = self.handles.locked();
                    if h.len() >= HANDLES {
                        h.clear();
                    }
                    h.insert(name.to_string(), f.clone());
                }
                f
            }
        };
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| st("read", name, e))?;
        Ok(buf)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let rel = prefix.trim_end_matches('/');
        let mut out = Vec::new();
        self.real_dirs(rel, true)?;
        let root = match Dir::open(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(st("list", rel, e)),
        };
        match root.open_beneath(rel.as_bytes()) {
            Ok(d) => self.list_dir(&d, rel, &mut out)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(st("list", rel, e)),
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.handles.locked().remove(name);
        let path = self.path(name)?;
        let (dir, fname) = match self.parent_of(name) {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        match dir.unlink(fname.as_bytes()) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    self.ops
                        .sync_dir(dir)
                        .map_err(|e| st("fsync dir", name, e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(st("delete", name, e)),
        }
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>> {
        let (dir, fname) = match self.parent_of(name) {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match dir.stat(fname.as_bytes()) {
            // The mtime the kernel of the storage host stamped (NFS servers
            // stamp theirs). Only regular files are objects (as in listings).
            Ok(Some(m)) if m.is_file() => Ok(Some(ObjectInfo {
                name: name.to_string(),
                size: m.size,
                modified: mtime(m.mtime),
            })),
            Ok(_) => Ok(None),
            Err(e) => Err(st("stat", name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn planted_fifos_and_links_are_not_objects() {
        let (_keep, repo) = crate::repo::test_repo();
        let root = std::path::PathBuf::from(repo.backend().location());
        let keys = root.join("keys");
        std::os::unix::fs::symlink("/dev/zero", keys.join("a".repeat(64))).unwrap();
        let fifo = std::ffi::CString::new(keys.join("b".repeat(64)).to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let b: std::sync::Arc<dyn crate::backend::Backend> =
            std::sync::Arc::new(super::LocalBackend::new(&root));
        assert_eq!(b.list("keys/").unwrap().len(), 1);
        // Before, the open read the FIFO (blocking) or /dev/zero (forever).
        crate::repo::Repository::open(b, b"pw").unwrap();
    }

    #[test]
    fn local_conformance() {
        let d = tempfile::tempdir().unwrap();
        let b = super::LocalBackend::new(d.path().join("repo"));
        crate::backend::conformance(&b);
    }

    #[test]
    fn objects_deleted_while_listing_are_left_out_not_an_error() {
        // A forget or prune deletes objects while a backup lists them: an
        // entry read from the directory may be gone when it is stat-ed.
        use crate::backend::Backend;
        let d = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(super::LocalBackend::new(d.path()));
        let names: Vec<String> = (0..3000).map(|i| format!("snapshots/{i:064x}")).collect();
        for n in &names {
            b.put(n, b"x").unwrap();
        }
        let deleter = {
            let b = b.clone();
            std::thread::spawn(move || {
                for n in names {
                    b.delete(&n).unwrap();
                }
            })
        };
        let mut listings = 0;
        while !deleter.is_finished() {
            let l = b.list("snapshots/").unwrap();
            assert!(l.iter().all(|o| o.name.starts_with("snapshots/")));
            listings += 1;
        }
        deleter.join().unwrap();
        assert!(b.list("snapshots/").unwrap().is_empty());
        assert!(listings > 0);
    }

    #[test]
    fn symlinked_directories_and_objects_are_never_followed() {
        // Someone with write access to the repository points its
        // directories, or an object name, somewhere else.
        use crate::backend::Backend;
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(outside.join("data/ab")).unwrap();
        let victim = outside.join("data/ab").join("ab".repeat(32));
        std::fs::write(&victim, b"someone else's file").unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        let root = d.path().join("repo");
        let b = super::LocalBackend::new(&root);
        b.put("config", b"c").unwrap();
        std::fs::create_dir_all(root.join("keys")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("packs")).unwrap();
        std::os::unix::fs::symlink(outside.join("data"), root.join("locks")).unwrap();
        let name = format!("packs/data/ab/{}", "ab".repeat(32));
        for e in [
            b.list("packs/").unwrap_err(),
            b.list("locks/").unwrap_err(),
            b.get(&name).unwrap_err(),
            b.get_range(&name, 0, 4).unwrap_err(),
            b.delete(&name).unwrap_err(),
            b.put(&name, b"x").unwrap_err(),
            b.stat(&name).unwrap_err(),
        ] {
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"someone else's file");
        // An object that is a link reads nothing through it.
        std::os::unix::fs::symlink(outside.join("secret"), root.join("keys/k")).unwrap();
        assert!(b.get("keys/k").is_err());
        assert_eq!(b.stat("keys/k").unwrap(), None);
        assert!(b.list("keys/").unwrap().is_empty());
    }

    #[test]
    fn a_directory_swapped_for_a_link_while_deleting_leads_nowhere() {
        // Someone with live access to the storage's file system swaps
        // `locks` with a link to another directory, again and again, while
        // unlock deletes: every deletion must stay in the repository.
        use crate::backend::Backend;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("repo");
        let victim = d.path().join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        let b = super::LocalBackend::new(&root);
        let names: Vec<String> = (0..300).map(|i| format!("{i:064x}")).collect();
        for n in &names {
            b.put(&format!("locks/{n}"), b"lock").unwrap();
            std::fs::write(victim.join(n), b"someone else's").unwrap();
        }
        std::os::unix::fs::symlink(&victim, root.join("locks.alt")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            let (a, b) = (
                std::ffi::CString::new(root.join("locks").to_str().unwrap()).unwrap(),
                std::ffi::CString::new(root.join("locks.alt").to_str().unwrap()).unwrap(),
            );
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: both paths are NUL-terminated; RENAME_EXCHANGE swaps two names.
                    unsafe {
                        libc::syscall(
                            libc::SYS_renameat2,
                            libc::AT_FDCWD,
                            a.as_ptr(),
                            libc::AT_FDCWD,
                            b.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                }
            })
        };
        for _ in 0..3 {
            for n in &names {
                let _ = b.delete(&format!("locks/{n}"));
                let _ = b.get(&format!("locks/{n}"));
                let _ = b.list("locks/");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        for n in &names {
            assert_eq!(
                std::fs::read(victim.join(n)).unwrap(),
                b"someone else's",
                "{n} outside the repository was touched"
            );
        }
    }
}
