//! What the fuzz targets share: the fixed test key and an in-memory backend,
//! so that each target drives the engine's real read path with fuzzed bytes.
//!
//! The fixed key is the master key of the committed v1 fixture repository
//! (tests/fixtures/repo-v1, whose password is public): its stored objects
//! are real inputs for the `*_sealed` targets, and the seeds that the corpus
//! generator (crates/core/examples/fuzz_corpus.rs) seals under it pass
//! authentication. A storage attacker has no key, so the `*_sealed` targets
//! show what their bytes can reach; the plaintext targets seal the fuzzed
//! bytes first, as the key holder's writer would, and so reach everything
//! behind authentication.

use ironvault_core::backend::{Backend, ObjectInfo};
use ironvault_core::repo::Repository;
use ironvault_core::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Password of tests/fixtures/repo-v1.
pub const FIXTURE_PASSWORD: &[u8] = b"ironvault-v1-fixture";
/// Password that the `key_file` target tries (the generator's key files use it).
pub const KEY_FILE_PASSWORD: &[u8] = b"fuzz";

/// One stored object: `len` bytes, of which the last `tail.len()` are
/// `tail` and any before are zeros (a large pack without its data).
struct Object {
    len: u64,
    tail: Vec<u8>,
    modified: std::time::SystemTime,
}

/// A backend holding its objects in memory.
#[derive(Default)]
pub struct MemBackend {
    objects: Mutex<BTreeMap<String, Object>>,
}

fn not_found(op: &'static str, name: &str) -> Error {
    Error::Storage {
        op,
        name: name.to_string(),
        source: std::io::ErrorKind::NotFound.into(),
    }
}

impl MemBackend {
    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Object>> {
        // A panic while the lock is held ends the fuzzing process anyway.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store an object of `len` bytes that ends with `tail` (zeros before it).
    /// A `len` shorter than `tail` keeps the last `len` bytes of it.
    pub fn put_sparse(&self, name: &str, len: u64, tail: &[u8]) {
        let keep = usize::try_from(len).map_or(tail.len(), |l| l.min(tail.len()));
        let tail = tail[tail.len() - keep..].to_vec();
        let modified = std::time::SystemTime::now();
        let o = Object {
            len,
            tail,
            modified,
        };
        self.objects().insert(name.to_string(), o);
    }

    /// Remove every object whose name starts with `prefix`.
    pub fn remove_prefix(&self, prefix: &str) {
        self.objects().retain(|k, _| !k.starts_with(prefix));
    }

    fn read(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let objects = self.objects();
        let o = objects.get(name).ok_or_else(|| not_found("get", name))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= o.len)
            .ok_or_else(|| Error::Storage {
                op: "get",
                name: name.to_string(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            })?;
        // Bytes before the tail are zeros; `end - offset` is at most `len`,
        // which the targets keep small.
        let zeros = o.len - o.tail.len() as u64;
        let mut out = vec![0u8; (zeros.saturating_sub(offset)).min(end - offset) as usize];
        let from = offset.saturating_sub(zeros) as usize;
        let to = end.saturating_sub(zeros) as usize;
        out.extend_from_slice(&o.tail[from.min(to)..to]);
        Ok(out)
    }
}

impl Backend for MemBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        self.put_sparse(name, data.len() as u64, data);
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>> {
        let len = self.size(name)?.ok_or_else(|| not_found("get", name))?;
        self.read(name, 0, len)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read(name, offset, len)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .objects()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| ObjectInfo {
                name: k.clone(),
                size: o.len,
                modified: o.modified,
            })
            .collect())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.objects().remove(name);
        Ok(())
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>> {
        Ok(self.objects().get(name).map(|o| ObjectInfo {
            name: name.to_string(),
            size: o.len,
            modified: o.modified,
        }))
    }
}

/// The fixture repository, opened once per process from an in-memory copy
/// of its config and key files (the objects under test are put beside them).
pub struct Fixture {
    pub backend: Arc<MemBackend>,
    pub repo: Repository,
}

/// Where the committed v1 fixture lives.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/repo-v1")
}

/// The fixture, opened on first use (one Argon2id derivation per process).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = fixture_dir();
        let backend = Arc::new(MemBackend::default());
        let read = |rel: &str| {
            std::fs::read(dir.join(rel))
                .unwrap_or_else(|e| panic!("fuzz setup: cannot read the fixture's {rel}: {e}"))
        };
        let config = read("config");
        backend.put_sparse("config", config.len() as u64, &config);
        let keys = std::fs::read_dir(dir.join("keys"))
            .unwrap_or_else(|e| panic!("fuzz setup: cannot list the fixture's keys: {e}"));
        for k in keys.flatten() {
            let name = format!("keys/{}", k.file_name().to_string_lossy());
            let bytes = read(&name);
            backend.put_sparse(&name, bytes.len() as u64, &bytes);
        }
        let repo = Repository::open(backend.clone(), FIXTURE_PASSWORD)
            .unwrap_or_else(|e| panic!("fuzz setup: cannot open the fixture repository: {e}"));
        Fixture { backend, repo }
    })
}

/// Split off the first `N` bytes of a fuzz input.
pub fn split<const N: usize>(data: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = data.get(..N)?.try_into().ok()?;
    Some((head, &data[N..]))
}

/// Most bytes of zeros a pack target puts before the fuzzed tail: enough
/// for the fixture's packs, little enough that reading them stays cheap.
const MAX_PACK_DATA: u64 = 1 << 20;

/// Store a pack of `size` bytes ending with `tail` under both pack
/// directories and read its header as the catalog does (trailer, header
/// length, sealed header, entries inside the pack).
pub fn read_pack_header(size: u64, tail: &[u8]) {
    use ironvault_core::format::{BlobType, Id};
    let f = fixture();
    let size = size.min(tail.len() as u64 + MAX_PACK_DATA);
    let id = Id([0x5a; 32]);
    for t in [BlobType::Data, BlobType::Tree] {
        let name = ironvault_core::repo::index::pack_name(t, &id);
        f.backend.put_sparse(&name, size, tail);
        let _ = f.repo.read_pack_header(t, &id, size);
        f.backend.remove_prefix(&name);
    }
}

/// List, open and judge every lock object, as taking a lock does; then
/// remove them.
pub fn judge_locks() {
    let f = fixture();
    if let Ok(locks) = ironvault_core::repo::lock::list_locks(&*f.backend, f.repo.master_key()) {
        for (_, info) in locks.into_iter() {
            if let Some(i) = info {
                let _ = i.describe();
                let _ = i.is_stale("fuzz-host");
            }
        }
    }
    f.backend.remove_prefix("locks/");
}

/// The fixture's config envelope (clear JSON).
pub fn fixture_envelope() -> &'static serde_json::Value {
    static ENVELOPE: OnceLock<serde_json::Value> = OnceLock::new();
    ENVELOPE.get_or_init(|| {
        let bytes = std::fs::read(fixture_dir().join("config"))
            .unwrap_or_else(|e| panic!("fuzz setup: cannot read the fixture's config: {e}"));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("fuzz setup: the fixture's config is not JSON: {e}"))
    })
}
