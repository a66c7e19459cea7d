//! Opening and creating repositories, reading blobs, and the snapshot list.
//! A `Repository` holds the unlocked keys and the loaded index; everything
//! that reads data goes through `read_blob`, which always verifies the id.

mod catalog;
pub mod index;
pub mod keys;
pub mod lock;
pub mod objects;
pub mod packer;
pub mod readahead;
pub mod security;
mod snapshots;
pub mod verify;

pub use catalog::Adoption;

use crate::backend::{is_not_found, Backend};
use crate::chunker::Chunker;
use crate::crypto::kdf::KdfParams;
use crate::crypto::open;
use crate::error::{Error, Result};
use crate::format::config::Config;
use crate::format::id::IdKeys;
use crate::format::keyfile::KeyFile;
use crate::format::kind::{blob_ad, CONFIG_NAME};
use crate::format::ObjectKind;
use crate::host::{hostname, username};
use crate::sync::RwLocked;

use crate::format::kind::pack_name;
use crate::format::tree::Tree;
use crate::format::{from_cbor, BlobType, Id};
use index::MasterIndex;
use std::sync::{Arc, RwLock};

/// Items that could be read, and errors for those that could not.
pub type WithErrors<T> = (Vec<T>, Vec<Error>);

/// An open, unlocked repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    master: [u8; 32],
    config: Config,
    keys: IdKeys,
    chunker: Chunker,
    key_name: String,
    index: RwLock<Arc<MasterIndex>>,
    /// Windows of remote data packs (None for local storage).
    read_ahead: Option<readahead::ReadAhead>,
    /// BLAKE3 of the `config` object (the security record notices a swap).
    config_hash: Id,
    /// This host's security record, once attached.
    security: std::sync::OnceLock<security::Guard>,
}

/// A pack as storage lists it.
#[derive(Clone, Debug)]
pub struct StoredPack {
    pub t: BlobType,
    pub id: Id,
    pub size: u64,
    /// Its object name (`packs/<type>/<xx>/<id>`).
    pub name: String,
}

impl Repository {
    /// Create a repository; with `related`, copy its id key and chunker secret.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        kdf: KdfParams,
        related: Option<&Repository>,
    ) -> Result<Repository> {
        if backend.size(CONFIG_NAME)?.is_some() {
            return Err(Error::RepoExists(backend.location()));
        }
        // Key files without a config are the leftover of an interrupted init: harmless.
        if !backend.list(ObjectKind::Snapshot.dir())?.is_empty()
            || !backend.list(ObjectKind::Index.dir())?.is_empty()
        {
            return Err(Error::RepoExists(backend.location()));
        }
        let master = crate::crypto::random_secret();
        let config = Config::new(related.map(|r| &r.config));
        let kf = KeyFile::create(&master, password, kdf, &hostname(), &username())?;
        let kb = kf.to_bytes();
        let key_name = ObjectKind::Key.name(&Id::hash_of(&kb));
        // Key first, config last: a crash in between leaves no `config`, so
        // the directory is not yet a repository and init can be rerun.
        backend.put(&key_name, &kb)?;
        let sealed = config.seal(&master)?;
        backend.put(CONFIG_NAME, &sealed)?;
        let config_hash = Id::hash_of(&sealed);
        Ok(Repository::assemble(
            backend,
            master,
            config,
            config_hash,
            key_name,
        ))
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        master: [u8; 32],
        config: Config,
        config_hash: Id,
        key_name: String,
    ) -> Repository {
        let keys = IdKeys::derive(&config.id_key, &config.chunker_secret);
        let chunker = Chunker::new(&config.chunker, keys.chunker_seed);
        let read_ahead = backend
            .prefers_large_reads()
            .then(readahead::ReadAhead::default);
        Repository {
            read_ahead,
            backend,
            master,
            config,
            keys,
            chunker,
            key_name,
            index: RwLock::new(Arc::new(MasterIndex::default())),
            config_hash,
            security: std::sync::OnceLock::new(),
        }
    }

    /// Check that a repository exists and its format is readable, without a password.
    pub fn probe(backend: &dyn Backend) -> Result<()> {
        match backend.get(CONFIG_NAME) {
            Ok(b) => Config::check_envelope(&b).map(|_| ()),
            Err(e) if is_not_found(&e) => {
                // A listing tells a missing bucket or directory apart from an
                // empty one with a clearer message, where the backend can.
                match backend.list(ObjectKind::Key.dir()) {
                    Err(e) if !is_not_found(&e) => Err(e),
                    _ => Err(Error::RepoMissing(backend.location())),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Open with a password: try each key file until one matches.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Self::open_preferring(backend, password, None, &mut |_| {})
    }

    /// Open with a password, trying the key file `preferred` first (the one
    /// that opened it last); `skipped` hears of each key file that could not
    /// be tried (damaged, too large, or asking for too costly a KDF).
    pub fn open_preferring(
        backend: Arc<dyn Backend>,
        password: &[u8],
        preferred: Option<&str>,
        skipped: &mut dyn FnMut(&Error),
    ) -> Result<Repository> {
        let cfg_bytes = match backend.get(CONFIG_NAME) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Err(Error::RepoMissing(backend.location())),
            Err(e) => return Err(e),
        };
        Config::check_envelope(&cfg_bytes)?;
        let keys = backend.list(ObjectKind::Key.dir())?;
        if keys.is_empty() {
            return Err(Error::NoKeys {
                repo: backend.location(),
            });
        }
        // A damaged key file, or one that opens but does not open this
        // config (copied from another repository), must not lock out the others.
        let mut config_error = None;
        let mut damaged = 0usize;
        for k in keys::trial_order(keys, preferred) {
            let kf = match keys::read_key_file(backend.as_ref(), &k) {
                Ok(kf) => kf,
                Err(e) if is_not_found(&e) => continue,
                Err(e @ Error::Damaged { .. }) => {
                    damaged += 1;
                    skipped(&e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match kf.unwrap_master(password, &k.name) {
                Ok(Some(master)) => match Config::open(&cfg_bytes, &master) {
                    Ok(config) => {
                        let hash = Id::hash_of(&cfg_bytes);
                        return Ok(Repository::assemble(backend, master, config, hash, k.name));
                    }
                    Err(e) => config_error = Some(e),
                },
                Ok(None) => {}
                Err(e) => skipped(&e),
            }
        }
        if let Some(e) = config_error {
            return Err(e);
        }
        Err(Error::WrongPassword(backend.location(), damaged))
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The master key (for sealing).
    pub fn master_key(&self) -> &[u8; 32] {
        &self.master
    }

    /// The decrypted configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Id keys and chunker seed.
    pub fn id_keys(&self) -> &IdKeys {
        &self.keys
    }

    /// The chunker with this repository's secret.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Name of the key file that opened the repository.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Add a key file wrapping the same master key under another password.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        let kf = KeyFile::create(&self.master, password, kdf, &hostname(), &username())?;
        let kb = kf.to_bytes();
        let name = ObjectKind::Key.name(&Id::hash_of(&kb));
        self.backend.put(&name, &kb)?;
        Ok(name)
    }

    /// Every key file: (id, content or the reason it cannot be read).
    pub fn list_keys(&self) -> Result<Vec<(Id, Result<KeyFile>)>> {
        let mut out = Vec::new();
        for o in self.backend.list(ObjectKind::Key.dir())? {
            let Some(id) = ObjectKind::Key.parse_name(&o.name) else {
                continue;
            };
            out.push((id, keys::read_key_file(self.backend.as_ref(), &o)));
        }
        Ok(out)
    }

    /// Remove a key file by id or unique prefix. The key this repository was
    /// opened with and the last key are refused: both would lock people out.
    pub fn remove_key(&self, prefix: &str) -> Result<Id> {
        let keys = self.list_keys()?;
        let matches: Vec<Id> = keys
            .iter()
            .map(|k| k.0)
            .filter(|id| id.to_hex().starts_with(&prefix.to_ascii_lowercase()))
            .collect();
        let id = match matches.as_slice() {
            [] => {
                return Err(Error::NotFound {
                    what: "key",
                    name: prefix.to_string(),
                    hint: "is not in this repository; 'ironvault key list' shows them".into(),
                })
            }
            [one] => *one,
            _ => {
                return Err(Error::Usage(format!(
                    "key id prefix {prefix} is ambiguous; give more characters"
                )))
            }
        };
        if ObjectKind::Key.name(&id) == self.key_name {
            return Err(Error::Failed(format!(
                "key {} is the one this command was opened with; open with another key to remove it, or use 'ironvault key passwd'",
                id.short()
            )));
        }
        if keys.len() <= 1 {
            return Err(Error::Failed("the last key cannot be removed".into()));
        }
        self.backend.delete(&ObjectKind::Key.name(&id))?;
        Ok(id)
    }

    /// The loaded index.
    pub fn index(&self) -> Arc<MasterIndex> {
        self.index.read_locked().clone()
    }

    /// The stored bytes of a blob: straight from storage, or for data packs
    /// on remote storage through the read-ahead windows.
    fn read_stored(
        &self,
        t: BlobType,
        pack: &Id,
        name: &str,
        offset: u64,
        len: u64,
        idx: &MasterIndex,
    ) -> Result<Vec<u8>> {
        let (Some(ra), BlobType::Data) = (&self.read_ahead, t) else {
            return self.backend.get_range(name, offset, len);
        };
        let pack_size = idx.packs().get(pack).map(|p| p.1).unwrap_or(0);
        ra.read(pack, offset, len, pack_size, &|o, l| {
            self.backend.get_range(name, o, l)
        })
    }

    /// Read, authenticate, decompress and verify one blob. If a copy is
    /// damaged, other indexed copies (in other packs) are tried.
    pub fn read_blob(&self, t: BlobType, id: &Id) -> Result<Vec<u8>> {
        let idx = self.index();
        let locs = idx.locations(id);
        if locs.is_empty() {
            return Err(Error::BlobMissing(id.to_hex()));
        }
        let mut first_err = None;
        for loc in locs {
            let res = if loc.blob_type != t {
                Err(Error::damaged(
                    format!("blob {id}"),
                    "indexed with the wrong type",
                ))
            } else {
                let name = pack_name(t, &loc.pack);
                self.read_stored(t, &loc.pack, &name, loc.offset, loc.stored_len as u64, &idx)
                    .and_then(|sealed| self.open_blob(t, id, &sealed, loc.raw_len, &name))
            };
            match res {
                Ok(plain) => return Ok(plain),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // At least one location was tried.
        Err(first_err.expect("one error per location"))
    }

    /// Open a stored blob read from pack `pack` and verify its id.
    pub fn open_blob(
        &self,
        t: BlobType,
        id: &Id,
        sealed: &[u8],
        raw_len: u32,
        pack: &str,
    ) -> Result<Vec<u8>> {
        let what = format!("blob {} in pack {pack}", id.short());
        let payload = open(&self.master, &blob_ad(t, id), sealed, &what)?;
        let plain = match payload.first() {
            Some(0) => payload[1..].to_vec(),
            Some(1) => zstd_decompress(&payload[1..], raw_len as usize)
                .map_err(|e| Error::damaged(&what, format!("decompress: {e}")))?,
            _ => return Err(Error::damaged(&what, "unknown compression byte")),
        };
        if plain.len() != raw_len as usize || self.keys.blob_id(t, &plain) != *id {
            return Err(Error::damaged(&what, "content does not match its id"));
        }
        Ok(plain)
    }

    /// Seal a blob for storage: compression byte, then zstd or raw, then AEAD.
    pub fn seal_blob(&self, t: BlobType, id: &Id, plain: &[u8], level: i32) -> Vec<u8> {
        // Layout: nonce placeholder (24) ‖ compression byte ‖ body ‖ tag (16).
        // The body is compressed straight into the output buffer, then sealed
        // in place: one buffer per blob besides the plaintext.
        const HEAD: usize = 25;
        let bound = zstd::zstd_safe::compress_bound(plain.len());
        let mut buf = Vec::with_capacity(HEAD + bound.max(plain.len()) + 16);
        buf.resize(HEAD, 0);
        let mut compressed = false;
        if level > 0 && plain.len() >= 64 {
            buf.resize(HEAD + bound, 0);
            match zstd_compress_into(plain, level, &mut buf[HEAD..]) {
                // Store compressed only if it saves at least 1/64.
                Ok(n) if n + plain.len() / 64 < plain.len() => {
                    buf.truncate(HEAD + n);
                    compressed = true;
                }
                _ => buf.truncate(HEAD),
            }
        }
        if !compressed {
            buf.extend_from_slice(plain);
        }
        buf[24] = u8::from(compressed);
        crate::crypto::seal_in_place(&self.master, &blob_ad(t, id), &mut buf);
        buf
    }

    /// Read and decode a tree blob.
    pub fn read_tree(&self, id: &Id) -> Result<Tree> {
        let b = self.read_blob(BlobType::Tree, id)?;
        from_cbor(&b, &format!("tree {}", id.short()))
    }
}

thread_local! {
    // One zstd context per thread and level: creating a context per blob
    // costs more than compressing a small file.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compress `plain` into `out` (which must be large enough: compress_bound); returns the length.
fn zstd_compress_into(plain: &[u8], level: i32, out: &mut [u8]) -> std::io::Result<usize> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            *c = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        // Set just above.
        c.as_mut()
            .expect("compressor set")
            .1
            .compress_to_buffer(plain, out)
    })
}

fn zstd_decompress(z: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    // `raw_len` bytes are allocated up front. A single frame (as ironvault
    // writes) that states another size is refused first, so an index entry
    // that does not fit its blob costs no allocation of up to 4 GiB.
    let single_frame = zstd::zstd_safe::find_frame_compressed_size(z) == Ok(z.len());
    if let (true, Ok(Some(n))) = (single_frame, zstd::zstd_safe::get_frame_content_size(z)) {
        if n != raw_len as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the blob holds {n} bytes where its index entry says {raw_len}"),
            ));
        }
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        // Set just above.
        d.as_mut().expect("decompressor set").decompress(z, raw_len)
    })
}

/// A repository in a temporary directory with a cheap KDF, for unit tests.
#[cfg(test)]
pub(crate) fn test_repo() -> (tempfile::TempDir, Arc<Repository>) {
    let d = tempfile::tempdir().expect("tempdir");
    let kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let b: Arc<dyn Backend> = Arc::new(crate::backend::local::LocalBackend::new(
        d.path().join("repo"),
    ));
    let r = Repository::init(b, b"pw", kdf, None).expect("init");
    (d, Arc::new(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Arc<Repository>) {
        test_repo()
    }

    #[test]
    fn incompressible_data_is_stored_raw_and_text_compressed() {
        let (_d, r) = repo();
        let text = b"a line of text that repeats\n".repeat(1000);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..30_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        for (plain, compressed) in [(&text[..], true), (&noise[..], false)] {
            let id = r.id_keys().blob_id(BlobType::Data, plain);
            let sealed = r.seal_blob(BlobType::Data, &id, plain, 3);
            let payload =
                open(r.master_key(), &blob_ad(BlobType::Data, &id), &sealed, "t").unwrap();
            assert_eq!(payload[0], u8::from(compressed));
            if compressed {
                assert!(sealed.len() < plain.len() / 4);
            } else {
                assert_eq!(sealed.len(), plain.len() + 1 + crate::crypto::SEAL_OVERHEAD);
            }
            assert_eq!(
                r.open_blob(BlobType::Data, &id, &sealed, plain.len() as u32, "p")
                    .unwrap(),
                plain
            );
            // level 0 stores raw
            let raw = r.seal_blob(BlobType::Data, &id, plain, 0);
            assert_eq!(
                open(r.master_key(), &blob_ad(BlobType::Data, &id), &raw, "t").unwrap()[0],
                0
            );
        }
    }

    #[test]
    fn swapped_or_mistyped_blobs_are_refused() {
        let (_d, r) = repo();
        let a = b"blob a".to_vec();
        let b = b"blob b".to_vec();
        let ida = r.id_keys().blob_id(BlobType::Data, &a);
        let idb = r.id_keys().blob_id(BlobType::Data, &b);
        let sa = r.seal_blob(BlobType::Data, &ida, &a, 3);
        // stored bytes of a presented as b: the AD binds the id
        assert!(r
            .open_blob(BlobType::Data, &idb, &sa, a.len() as u32, "p")
            .is_err());
        // a data blob presented as a tree blob: the AD binds the type
        assert!(r
            .open_blob(BlobType::Tree, &ida, &sa, a.len() as u32, "p")
            .is_err());
        // a correctly sealed blob whose content does not match its id (as a
        // writer bug would produce) is refused after decryption
        let wrong = r.seal_blob(BlobType::Data, &ida, &b, 3);
        let e = r
            .open_blob(BlobType::Data, &ida, &wrong, b.len() as u32, "p")
            .unwrap_err();
        assert!(e.to_string().contains("does not match its id"), "{e}");
    }

    #[test]
    fn a_raw_length_beyond_the_blob_is_refused_before_decompressing() {
        // Found by fuzzing (fuzz/fuzz_targets/tree_sealed.rs): an index entry
        // claiming 4 GiB for a small compressed blob made the reader allocate
        // 4 GiB before finding out.
        let (_d, r) = repo();
        let plain = b"compressible ".repeat(50);
        let id = r.id_keys().blob_id(BlobType::Tree, &plain);
        let sealed = r.seal_blob(BlobType::Tree, &id, &plain, 3);
        for raw_len in [u32::MAX, plain.len() as u32 - 1] {
            let e = r
                .open_blob(BlobType::Tree, &id, &sealed, raw_len, "p")
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("the blob holds 650 bytes where its index entry says"),
                "{e}"
            );
        }
        let opened = r.open_blob(BlobType::Tree, &id, &sealed, plain.len() as u32, "p");
        assert_eq!(opened.unwrap(), plain);
    }
}
