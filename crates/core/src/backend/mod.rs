//! The storage trait: the only way the engine touches storage (format.md §1).
//! Whole-object puts, whole or ranged gets, prefix listing, delete. Each
//! backend lives in its own file and passes the same conformance suite.

pub mod cache;
#[cfg(test)]
pub mod crashsim;
pub mod local;
pub mod private;
pub mod rest;
pub mod s3;

use crate::error::{Error, Result};
use std::time::SystemTime;

/// An object name, its size in bytes and when it was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// When the object was last written, by the storage's own clock (a
    /// file's mtime, S3's Last-Modified), not by the writer's: lock ages are
    /// judged by it (format.md §9).
    pub modified: SystemTime,
}

/// Object storage as the engine sees it.
pub trait Backend: Send + Sync {
    /// Where this is, for messages (a path or URL).
    fn location(&self) -> String;
    /// Store a whole object atomically and durably; replaces an existing one.
    fn put(&self, name: &str, data: &[u8]) -> Result<()>;
    /// Read a whole object.
    fn get(&self, name: &str) -> Result<Vec<u8>>;
    /// Read `len` bytes at `offset`; fewer bytes than asked is an error.
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// All objects whose name starts with `prefix` (a directory such as `index/`).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, name: &str) -> Result<()>;
    /// Size and modification time of an object, or None if it does not exist.
    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>>;
    /// Size of an object, or None if it does not exist.
    fn size(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.stat(name)?.map(|o| o.size))
    }
    /// True for remote storage, where one large read costs less than many
    /// small ones (the engine then reads ahead within packs).
    fn prefers_large_reads(&self) -> bool {
        false
    }
    /// The storage's clock minus this host's, in whole seconds, as the last
    /// answer of a remote storage said it (S3's `Date`); None for local
    /// storage and before any answer.
    fn clock_skew(&self) -> Option<i64> {
        None
    }
    /// Requests made and bytes moved so far, for backends that count them.
    fn transfer_stats(&self) -> Option<TransferStats> {
        None
    }
    /// What keeps this host from deleting or overwriting the objects, as
    /// read back from the storage itself (facts, not configuration); None
    /// when nothing does. The 3-2-1-1-0 verdict counts a copy as immutable
    /// only on this answer.
    fn immutability(&self) -> Result<Option<Immutability>> {
        Ok(None)
    }
    /// Make the storage itself keep every object written from now on for
    /// `days` days in `mode` (COMPLIANCE or GOVERNANCE), by its own clock:
    /// S3 Object Lock's default retention. An error for storage that cannot.
    /// Objects whose latest version is a delete marker over a real version
    /// (on a versioned bucket, a delete without version id only hides an
    /// object: what someone with delete rights but no lock bypass can do).
    /// Empty for storage that keeps no versions. Lock files are left out.
    fn hidden_objects(&self) -> Result<Vec<HiddenObject>> {
        Ok(Vec::new())
    }
    /// Bring a hidden object back by deleting its delete markers (by version id).
    fn unhide(&self, hidden: &HiddenObject) -> Result<()> {
        Err(Error::Usage(format!(
            "{}: this storage keeps no object versions; nothing can be hidden",
            hidden.name
        )))
    }
    /// The retention of an object: (mode, retain-until), None without one.
    fn retention(&self, name: &str) -> Result<Option<(String, SystemTime)>> {
        let _ = name;
        Ok(None)
    }
    /// Keep an object until `until` (never shortens: the server refuses).
    fn extend_retention(&self, name: &str, mode: &str, until: SystemTime) -> Result<()> {
        let _ = (mode, until);
        Err(Error::Usage(format!(
            "{name}: this storage has no Object Lock retention to extend"
        )))
    }
    fn set_object_lock(&self, mode: &str, days: u32) -> Result<()> {
        let _ = (mode, days);
        Err(Error::Usage(format!(
            "{}: Object Lock needs an S3 bucket created with Object Lock enabled",
            self.location()
        )))
    }
}

/// Why a copy's objects survive a compromised host that holds the
/// repository password and this storage's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Immutability {
    /// A repository server that gives this client's token a role (`append`,
    /// `read`) that may neither delete nor overwrite stored objects.
    AppendOnly { role: String },
    /// An S3 bucket with Object Lock: every object is kept until a retention
    /// date (`mode` COMPLIANCE or GOVERNANCE, `retain_days` from writing).
    ObjectLock { mode: String, retain_days: u32 },
}

/// An object hidden behind delete markers on a versioned bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenObject {
    /// The object's name in the repository (as format.md names it).
    pub name: String,
    /// Version ids of its delete markers.
    pub markers: Vec<String>,
}

/// What a network backend has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    pub requests: u64,
    pub puts: u64,
    pub gets: u64,
    pub lists: u64,
    pub deletes: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// True if the error is "object not found" (also when a path component is not a directory).
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Storage { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory))
}

/// Open the backend a repository location names: `s3:http(s)://...`,
/// `rest:http(s)://...` (an `ironvault serve` server) or a local directory.
pub fn open_location(location: &str, s3: &s3::S3Options) -> Result<Box<dyn Backend>> {
    if location.starts_with("rest:") {
        let opts = rest::RestOptions {
            cacert: s3.cacert.clone(),
            token: s3.token.clone(),
        };
        return Ok(Box::new(rest::RestBackend::open(location, &opts)?));
    }
    if location.starts_with("s3:") {
        let b = Box::new(s3::S3Backend::open(location, s3)?);
        return Ok(match &s3.cache {
            Some(root) => Box::new(cache::CachedBackend::new(b, root)?),
            None => b,
        });
    }
    if location.contains("://") {
        return Err(Error::Usage(format!(
            "repository location {location}: use a local directory, s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or rest:https://HOST[:PORT]/NAME"
        )));
    }
    Ok(Box::new(local::LocalBackend::new(location)))
}

/// The conformance suite every backend must pass (also run by the
/// repository server's tests against a `rest:` backend, hence the feature).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn conformance(b: &dyn Backend) {
    assert!(b.list("index/").unwrap().is_empty());
    assert_eq!(b.size("index/x").unwrap(), None);
    assert_eq!(b.stat("index/x").unwrap(), None);
    assert!(is_not_found(&b.get("index/x").unwrap_err()));
    let before = SystemTime::now();
    b.put("index/aa", b"hello world").unwrap();
    b.put("packs/data/ab/abc", b"0123456789").unwrap();
    assert_eq!(b.get("index/aa").unwrap(), b"hello world");
    assert_eq!(b.get_range("packs/data/ab/abc", 2, 3).unwrap(), b"234");
    assert!(b.get_range("packs/data/ab/abc", 8, 3).is_err());
    assert_eq!(b.size("packs/data/ab/abc").unwrap(), Some(10));
    let st = b.stat("packs/data/ab/abc").unwrap().unwrap();
    assert_eq!((st.name.as_str(), st.size), ("packs/data/ab/abc", 10));
    // The storage's clock: the test storage runs on this host, so it agrees
    // with ours (give or take the whole seconds of HTTP dates).
    let near = |t: SystemTime, what: &str| {
        let gap = match t.duration_since(before) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(
            gap.as_secs() < 120,
            "{what}: modified {t:?}, written at {before:?}"
        );
    };
    near(st.modified, "stat");
    let first = b.stat("index/aa").unwrap().unwrap().modified;
    b.put("index/aa", b"replaced").unwrap();
    assert_eq!(b.get("index/aa").unwrap(), b"replaced");
    let again = b.stat("index/aa").unwrap().unwrap();
    assert_eq!(again.size, 8);
    assert!(
        again.modified >= first,
        "a put moves the time forward: {first:?} then {:?}",
        again.modified
    );
    let l = b.list("packs/").unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].name.as_str(), l[0].size), ("packs/data/ab/abc", 10));
    // A listing and a stat may differ only in precision (S3 lists
    // milliseconds; its Last-Modified header has whole seconds).
    let apart = match l[0].modified.duration_since(st.modified) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        apart.as_millis() < 1000,
        "list {:?}, stat {:?}",
        l[0].modified,
        st.modified
    );
    b.delete("index/aa").unwrap();
    b.delete("index/aa").unwrap();
    assert!(b.list("index/").unwrap().is_empty());
    assert_eq!(b.stat("index/aa").unwrap(), None);
}
