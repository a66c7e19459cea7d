//! A local cache of repository metadata in front of a remote backend: key
//! files, index files, snapshots and tree packs, so that
//! `snapshots`, `ls`, `diff`, `find` and incremental backups read no data
//! packs and download each metadata object once.
//!
//! Everything cached is immutable in the repository (objects are never
//! rewritten under the same name), so a cached copy is valid as long as it is
//! intact and the object still exists:
//! - key files, index files and tree packs are named by the BLAKE3 hash of
//!   their bytes and stored as they are; the hash is checked the first time
//!   this process uses a cached file;
//! - snapshots are not named by a plain hash; their cached copy ends with a
//!   32-byte BLAKE3 of the object's name and bytes, checked on every read.
//!
//! A cached file that fails its check is deleted and fetched again. Each
//! listing of a cached directory drops the cached files whose object is gone.
//! Deleting the whole cache loses nothing. Writes go to a temporary name and
//! are renamed into place, so concurrent processes share a cache safely.
//! The cache holds key files: its files are 0600 and its directories 0700.

use super::{private, Backend, ObjectInfo, TransferStats};
use crate::error::{Error, Result};
use crate::format::{BlobType, ObjectKind};
use crate::sync::Locked;
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The default cache root: `$IRONVAULT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/ironvault`, else `~/.cache/ironvault`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("IRONVAULT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("ironvault"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ironvault"))
}

/// Objects read by ranges are cached (fetched whole) up to this size; a
/// tree pack is about the pack size (16 MiB by default).
const MAX_CACHED: u64 = 64 << 20;

/// The cache directory of the repository at `location` under `root`.
pub fn repo_dir(root: &Path, location: &str) -> PathBuf {
    let tag = blake3::hash(location.as_bytes()).to_hex();
    root.join(&tag.as_str()[..16])
}

/// A temporary file name, unique even across containers sharing the cache
/// (same pids); listings skip it.
fn temp_name() -> String {
    format!(".tmp-{}", hex::encode(rand::random::<[u8; 12]>()))
}

/// How a cached object is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Named by the hash of its bytes.
    Addressed,
    /// Stored with a trailing hash.
    Trailer,
}

fn kind_of(name: &str) -> Option<Kind> {
    // `config` is not cached: it is small, read once per command, and is
    // the one object a re-created repository at the same location replaces.
    match ObjectKind::of_name(name)? {
        ObjectKind::Snapshot => Some(Kind::Trailer),
        ObjectKind::Key
        | ObjectKind::Index
        | ObjectKind::Forgotten
        | ObjectKind::Pack(BlobType::Tree) => Some(Kind::Addressed),
        _ => None,
    }
}

/// A remote backend with a local metadata cache.
pub struct CachedBackend {
    inner: Box<dyn Backend>,
    dir: PathBuf,
    /// Content-addressed files already verified by this process.
    verified: Mutex<HashSet<String>>,
}

impl CachedBackend {
    /// Cache `inner` under `root`, in a directory named after its location.
    pub fn new(inner: Box<dyn Backend>, root: &Path) -> Result<CachedBackend> {
        let dir = repo_dir(root, &inner.location());
        private::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // A cache written by an older version may be open to every user.
        private::tighten_dir(&dir);
        let tagfile = root.join("CACHEDIR.TAG");
        if !tagfile.exists() {
            let _ = private::write_replace(
                &tagfile,
                &root.join(temp_name()),
                b"Signature: 8a477f597d28d172789f06886806bc55\n# ironvault metadata cache; safe to delete, see https://bford.info/cachedir/\n",
            );
        }
        let _ = private::write_replace(
            &dir.join("location"),
            &dir.join(temp_name()),
            inner.location().as_bytes(),
        );
        Ok(CachedBackend {
            inner,
            dir,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Where this repository's cache lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn store(&self, name: &str, data: &[u8], kind: Kind) {
        let path = self.file(name);
        let Some(parent) = path.parent() else { return };
        if private::create_dir_all(parent).is_err() {
            return;
        }
        let mut bytes = data.to_vec();
        if kind == Kind::Trailer {
            bytes.extend_from_slice(&trailer(name, data));
        }
        // A cache is best effort: a failed write only means a later download.
        let written = private::write_replace(&path, &parent.join(temp_name()), &bytes);
        if written.is_ok() && kind == Kind::Addressed {
            self.mark_verified(name);
        }
    }

    fn mark_verified(&self, name: &str) {
        self.verified.locked().insert(name.to_string());
    }

    fn is_verified(&self, name: &str) -> bool {
        self.verified.locked().contains(name)
    }

    fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.file(name));
        self.verified.locked().remove(name);
    }

    /// The cached bytes of `name` if present and intact; a damaged copy is removed.
    fn load(&self, name: &str, kind: Kind) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.file(name)).ok()?;
        let ok = match kind {
            Kind::Addressed => name_matches(name, &bytes),
            Kind::Trailer => {
                bytes.len() >= 32 && {
                    let (body, sum) = bytes.split_at(bytes.len() - 32);
                    trailer(name, body) == sum
                }
            }
        };
        if !ok {
            self.forget(name);
            return None;
        }
        match kind {
            Kind::Addressed => {
                self.mark_verified(name);
                Some(bytes)
            }
            Kind::Trailer => {
                let mut b = bytes;
                b.truncate(b.len() - 32);
                Some(b)
            }
        }
    }

    /// Make sure a content-addressed object is cached and verified; false if
    /// it could not be cached (the caller reads from the backend instead).
    fn ensure_addressed(&self, name: &str) -> Result<bool> {
        if self.is_verified(name) && self.file(name).exists() {
            return Ok(true);
        }
        if self.load(name, Kind::Addressed).is_some() {
            return Ok(true);
        }
        // Never fetch whole what no writer makes: an object planted under a
        // tree pack's name may be huge (ranges are then read from storage).
        match self.inner.size(name)? {
            Some(s) if s <= MAX_CACHED => {}
            _ => return Ok(false),
        }
        let data = self.inner.get(name)?;
        if !name_matches(name, &data) {
            // Damaged in the repository: hand the caller the real bytes and
            // let its own verification say so; cache nothing.
            return Ok(false);
        }
        self.store(name, &data, Kind::Addressed);
        Ok(self.file(name).exists())
    }
}

/// The check stored after a snapshot's bytes: BLAKE3 of its name, a zero
/// byte and its bytes (so bytes cached under the wrong name do not pass).
fn trailer(name: &str, data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(name.as_bytes());
    h.update(&[0]);
    h.update(data);
    *h.finalize().as_bytes()
}

/// True if the last component of `name` is the BLAKE3 hex of `bytes`.
fn name_matches(name: &str, bytes: &[u8]) -> bool {
    name.rsplit('/').next() == Some(blake3::hash(bytes).to_hex().as_str())
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        self.inner.put(name, data)?;
        if let Some(k) = kind_of(name) {
            if k == Kind::Trailer || name_matches(name, data) {
                self.store(name, data, k);
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>> {
        let Some(kind) = kind_of(name) else {
            return self.inner.get(name);
        };
        if let Some(b) = self.load(name, kind) {
            return Ok(b);
        }
        let data = self.inner.get(name)?;
        if kind == Kind::Trailer || name_matches(name, &data) {
            self.store(name, &data, kind);
        }
        Ok(data)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if kind_of(name) != Some(Kind::Addressed) || !self.ensure_addressed(name)? {
            return self.inner.get_range(name, offset, len);
        }
        let path = self.file(name);
        let read = || -> std::io::Result<Vec<u8>> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf)?;
            Ok(buf)
        };
        match read() {
            Ok(b) => Ok(b),
            // Vanished or shorter than asked: ask the repository itself.
            Err(_) => {
                self.forget(name);
                self.inner.get_range(name, offset, len)
            }
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let listed = self.inner.list(prefix)?;
        if prefix.ends_with('/') {
            let names: HashSet<&str> = listed.iter().map(|o| o.name.as_str()).collect();
            let root = self.file(prefix);
            for f in files_under(&root) {
                let Ok(rel) = f.strip_prefix(&self.dir) else {
                    continue;
                };
                let rel = rel.to_string_lossy();
                if kind_of(&rel).is_some() && !names.contains(rel.as_ref()) {
                    self.forget(&rel);
                }
            }
        }
        Ok(listed)
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.inner.delete(name)?;
        self.forget(name);
        Ok(())
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>> {
        self.inner.stat(name)
    }

    fn prefers_large_reads(&self) -> bool {
        self.inner.prefers_large_reads()
    }

    fn transfer_stats(&self) -> Option<TransferStats> {
        self.inner.transfer_stats()
    }

    fn clock_skew(&self) -> Option<i64> {
        self.inner.clock_skew()
    }

    fn immutability(&self) -> Result<Option<super::Immutability>> {
        self.inner.immutability()
    }

    fn set_object_lock(&self, mode: &str, days: u32) -> Result<()> {
        self.inner.set_object_lock(mode, days)
    }

    fn retention(&self, name: &str) -> Result<Option<(String, std::time::SystemTime)>> {
        self.inner.retention(name)
    }

    fn extend_retention(&self, name: &str, mode: &str, until: std::time::SystemTime) -> Result<()> {
        self.inner.extend_retention(name, mode, until)
    }

    fn hidden_objects(&self) -> Result<Vec<super::HiddenObject>> {
        self.inner.hidden_objects()
    }

    fn unhide(&self, hidden: &super::HiddenObject) -> Result<()> {
        // Nothing to drop: the cache fetches an object again once it is listed.
        self.inner.unhide(hidden)
    }
}

/// Regular files below `dir` (recursively), skipping temporary files.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() && !e.file_name().to_string_lossy().starts_with(".tmp-") => {
                    out.push(p)
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;

    fn setup() -> (tempfile::TempDir, CachedBackend) {
        let d = tempfile::tempdir().unwrap();
        let inner = LocalBackend::new(d.path().join("repo").to_str().unwrap());
        let c = CachedBackend::new(Box::new(inner), &d.path().join("cache")).unwrap();
        (d, c)
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_cache_is_private_to_its_user() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        let key = b"a key file".to_vec();
        let key_name = format!("keys/{}", blake3::hash(&key).to_hex());
        // A new cache: every directory 0700, every file 0600 (the test
        // runs under the usual umask 022, which would give 0755 and 0644).
        let root = d.path().join("new/cache");
        let c = CachedBackend::new(Box::new(LocalBackend::new(&repo)), &root).unwrap();
        c.put(&key_name, &key).unwrap();
        c.put("snapshots/aa", b"snapshot").unwrap();
        for dir in [
            d.path().join("new"),
            root.clone(),
            c.dir.clone(),
            c.file("keys"),
        ] {
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        for f in [
            root.join("CACHEDIR.TAG"),
            c.dir.join("location"),
            c.file(&key_name),
            c.file("snapshots/aa"),
        ] {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        // A cache directory an older version left open to every user is closed.
        let old_root = d.path().join("old");
        let old = repo_dir(&old_root, &LocalBackend::new(&repo).location());
        std::fs::create_dir_all(old.join("keys")).unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = CachedBackend::new(Box::new(LocalBackend::new(&repo)), &old_root).unwrap();
        assert_eq!(c.get(&key_name).unwrap(), key);
        assert_eq!(mode(&old), 0o700);
    }

    #[test]
    fn a_huge_object_under_a_tree_pack_name_is_read_by_ranges_not_cached() {
        let (d, c) = setup();
        // Zeros, then "tail": named by its hash, as a real pack would be.
        let size = MAX_CACHED + 1;
        let mut h = blake3::Hasher::new();
        let zeros = vec![0u8; 1 << 20];
        let mut left = size - 4;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            h.update(&zeros[..n as usize]);
            left -= n;
        }
        h.update(b"tail");
        let hex = h.finalize().to_hex();
        let name = format!("packs/tree/{}/{hex}", &hex[..2]);
        let path = d.path().join("repo").join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"tail", size - 4).unwrap();
        assert_eq!(c.get_range(&name, size - 4, 4).unwrap(), b"tail");
        // Not fetched whole (so not cached either).
        assert!(!c.file(&name).exists());
    }

    #[test]
    fn cache_passes_conformance() {
        let (_d, c) = setup();
        crate::backend::conformance(&c);
    }

    #[test]
    fn cached_objects_are_served_locally_and_verified() {
        let (d, c) = setup();
        let tree = vec![7u8; 1000];
        let name = format!("packs/tree/xx/{}", blake3::hash(&tree).to_hex());
        c.put(&name, &tree).unwrap();
        c.put("snapshots/aa", b"snapshot bytes").unwrap();
        c.put("packs/data/yy/zz", b"data").unwrap();
        assert!(c.file(&name).exists() && c.file("snapshots/aa").exists());
        assert!(
            !c.file("packs/data/yy/zz").exists(),
            "data packs are not cached"
        );
        // Served from the cache even when the repository copy is gone...
        let repo = d.path().join("repo");
        std::fs::remove_file(repo.join("snapshots/aa")).unwrap();
        assert_eq!(c.get("snapshots/aa").unwrap(), b"snapshot bytes");
        assert_eq!(c.get_range(&name, 10, 5).unwrap(), vec![7u8; 5]);
        // ... until a listing shows it vanished.
        assert!(c.list("snapshots/").unwrap().is_empty());
        assert!(!c.file("snapshots/aa").exists());
        // A damaged cached copy is detected, dropped and fetched again; so is
        // another snapshot's intact copy under the wrong name.
        c.put("snapshots/cc", b"other").unwrap();
        std::fs::copy(c.file("snapshots/cc"), c.file("snapshots/dd")).unwrap();
        c.put("snapshots/dd", b"mine").unwrap();
        std::fs::copy(c.file("snapshots/cc"), c.file("snapshots/dd")).unwrap();
        assert_eq!(c.get("snapshots/dd").unwrap(), b"mine");
        assert!(c.get("config").is_err() && !c.file("config").exists());
        c.put("snapshots/bb", b"good").unwrap();
        std::fs::write(
            c.file("snapshots/bb"),
            b"evil bytes plus 32 bytes of fake checksum!!",
        )
        .unwrap();
        assert_eq!(c.get("snapshots/bb").unwrap(), b"good");
        let c2 = CachedBackend::new(
            Box::new(LocalBackend::new(repo.to_str().unwrap())),
            &d.path().join("cache"),
        )
        .unwrap();
        std::fs::write(c2.file(&name), vec![8u8; 1000]).unwrap();
        assert_eq!(c2.get_range(&name, 0, 3).unwrap(), vec![7u8; 3]);
        assert_eq!(std::fs::read(c2.file(&name)).unwrap(), tree);
        // Deleting the whole cache loses nothing.
        std::fs::remove_dir_all(d.path().join("cache")).unwrap();
        let c3 = CachedBackend::new(
            Box::new(LocalBackend::new(repo.to_str().unwrap())),
            &d.path().join("cache"),
        )
        .unwrap();
        assert_eq!(c3.get("snapshots/bb").unwrap(), b"good");
        assert_eq!(c3.get_range(&name, 999, 1).unwrap(), vec![7u8]);
    }
}
