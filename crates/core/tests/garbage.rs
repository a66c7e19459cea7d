//! Garbage never panics: every parser of stored bytes (pack header, index,
//! tree, snapshot, lock, repository config, key file, forget record) answers random bytes,
//! and real objects with random damage, with an error or a value, never a
//! panic. Both as storage holds them (sealed: a storage attacker's bytes)
//! and behind authentication (sealed here under the repository's key: the
//! key holder's own writer or a future one). The fuzz targets in fuzz/ run
//! the same paths for millions of inputs (docs/reliability.md, "Fuzzing");
//! this keeps a short run in the normal suite.

use ironvault_core::backend::local::LocalBackend;
use ironvault_core::backend::Backend;
use ironvault_core::backup::{backup, BackupOptions};
use ironvault_core::crypto::kdf::KdfParams;
use ironvault_core::crypto::{open, seal};
use ironvault_core::format::config::Config;
use ironvault_core::format::forgotten::ForgetRecord;
use ironvault_core::format::index::IndexFile;
use ironvault_core::format::keyfile::KeyFile;
use ironvault_core::format::kind::ad;
use ironvault_core::format::snapshot::Snapshot;
use ironvault_core::format::tree::Tree;
use ironvault_core::format::{from_cbor, pack, BlobType};
use ironvault_core::repo::lock::{list_locks, Lock, LockInfo};
use ironvault_core::repo::Repository;
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

/// Real objects of a small repository, in plaintext and as stored.
struct Samples {
    repo: Arc<Repository>,
    _dir: tempfile::TempDir,
    config: Vec<u8>,
    key_file: Vec<u8>,
    snapshot: Vec<u8>,
    tree: Vec<u8>,
    index: Vec<u8>,
    pack_header: Vec<u8>,
    /// A pack's sealed header, its length and the magic.
    pack_tail: Vec<u8>,
    sealed_index: Vec<u8>,
    lock: Vec<u8>,
    forget_record: Vec<u8>,
}

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/file"), "some data\n".repeat(20)).unwrap();
        std::os::unix::fs::symlink("sub/file", src.join("link")).unwrap();
        let b: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let kdf = KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let repo = Arc::new(Repository::init(b.clone(), b"pw", kdf, None).unwrap());
        backup(repo.clone(), &BackupOptions::new(vec![src]), &|_| {}).unwrap();
        let first = |prefix: &str| b.list(prefix).unwrap().remove(0).name;
        let key = *repo.master_key();
        let snapshot_id = repo.snapshot_ids().unwrap()[0];
        let snapshot = repo.load_snapshot_plain(&snapshot_id).unwrap();
        repo.load_index(false).unwrap();
        let tree_id = repo.load_snapshot(&snapshot_id).unwrap().tree;
        let tree = repo.read_blob(BlobType::Tree, &tree_id).unwrap();
        let sealed_index = b.get(&first("index/")).unwrap();
        let index =
            zstd::stream::decode_all(&open(&key, ad::INDEX, &sealed_index, "index").unwrap()[..])
                .unwrap();
        let p = repo.stored_packs().unwrap().remove(0);
        let trailer = b.get_range(&p.name, p.size - 8, 8).unwrap();
        let hl = u64::from(pack::parse_trailer(&trailer, "pack").unwrap());
        let sealed = b.get_range(&p.name, p.size - 8 - hl, hl).unwrap();
        let pack_header = open(&key, ad::PACK_HEADER, &sealed, "pack").unwrap();
        let held = Lock::acquire(b.clone(), key, true).unwrap();
        let lock = open(&key, ad::LOCK, &b.get(held.name()).unwrap(), "lock").unwrap();
        held.release().unwrap();
        Samples {
            config: b.get("config").unwrap(),
            key_file: b.get(&first("keys/")).unwrap(),
            repo,
            _dir: dir,
            snapshot,
            tree,
            index,
            pack_header,
            pack_tail: b.get_range(&p.name, p.size - 8 - hl, hl + 8).unwrap(),
            sealed_index,
            lock,
            forget_record: ironvault_core::format::to_cbor(&ForgetRecord {
                created: "2026-12-03T10:00:00Z".into(),
                hostname: "erp01".into(),
                how: "forget".into(),
                snapshots: vec![snapshot_id],
            })
            .unwrap(),
        }
    })
}

/// Random bytes, or `valid` with random damage: bytes overwritten,
/// inserted or removed, or the end cut off.
fn garbage(valid: fn(&Samples) -> &[u8]) -> impl Strategy<Value = Vec<u8>> {
    let edits = proptest::collection::vec((0u8..4, any::<usize>(), any::<u8>()), 1..8);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        edits.prop_map(move |edits| {
            let mut b = valid(samples()).to_vec();
            for (kind, at, byte) in edits {
                let i = at % (b.len() + 1);
                match kind {
                    0 if i < b.len() => b[i] = byte,
                    1 => b.insert(i, byte),
                    2 if i < b.len() => {
                        b.remove(i);
                    }
                    _ => b.truncate(i),
                }
            }
            b
        }),
    ]
}

fn key() -> &'static [u8; 32] {
    samples().repo.master_key()
}

/// Frame a pack header plaintext as the packer does: sealed, then its length and the magic.
fn framed_header(plain: &[u8]) -> Vec<u8> {
    let mut tail = seal(key(), ad::PACK_HEADER, plain);
    tail.extend_from_slice(&(tail.len() as u32).to_le_bytes());
    tail.extend_from_slice(pack::MAGIC);
    tail
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pack_header_garbage(plain in garbage(|s| &s.pack_header), size in any::<u64>()) {
        let tail = framed_header(&plain);
        let _ = pack::read_header(key(), &tail[..tail.len() - 8], size, "pack");
    }

    #[test]
    fn stored_pack_header_garbage(tail in garbage(|s| &s.pack_tail), size in any::<u64>()) {
        // As the catalog reads a pack: trailer, then the header it points to.
        if tail.len() >= 8 {
            if let Ok(hl) = pack::parse_trailer(&tail[tail.len() - 8..], "pack") {
                let start = (tail.len() - 8).saturating_sub(hl as usize);
                let _ = pack::read_header(key(), &tail[start..tail.len() - 8], size, "pack");
            }
        }
    }

    #[test]
    fn index_garbage(plain in garbage(|s| &s.index)) {
        let z = zstd::bulk::compress(&plain, 1).unwrap();
        let _ = IndexFile::open(key(), &seal(key(), ad::INDEX, &z), "index");
    }

    #[test]
    fn stored_index_garbage(stored in garbage(|s| &s.sealed_index)) {
        let _ = IndexFile::open(key(), &stored, "index");
    }

    #[test]
    fn tree_garbage(plain in garbage(|s| &s.tree)) {
        let repo = &samples().repo;
        let id = repo.id_keys().blob_id(BlobType::Tree, &plain);
        let stored = repo.seal_blob(BlobType::Tree, &id, &plain, 3);
        let opened = repo.open_blob(BlobType::Tree, &id, &stored, plain.len() as u32, "pack").unwrap();
        if let Ok(tree) = from_cbor::<Tree>(&opened, "tree") {
            let _ = tree.find(b"file");
        }
        let _ = repo.open_blob(BlobType::Tree, &id, &plain, plain.len() as u32, "pack");
    }

    #[test]
    fn snapshot_garbage(plain in garbage(|s| &s.snapshot)) {
        if let Ok(s) = from_cbor::<Snapshot>(&plain, "snapshot") {
            let _ = s.parsed_time();
        }
    }

    #[test]
    fn lock_garbage(plain in garbage(|s| &s.lock)) {
        if let Ok(l) = from_cbor::<LockInfo>(&plain, "lock") {
            let _ = l.describe();
            let _ = l.is_stale(&ironvault_core::host::hostname());
        }
    }

    #[test]
    fn repository_config_garbage(stored in garbage(|s| &s.config), body in garbage(|s| &s.snapshot)) {
        let _ = Config::open(&stored, key());
        // A sealed body that is not a config, in a valid envelope.
        let mut envelope: serde_json::Value = serde_json::from_slice(&samples().config).unwrap();
        use base64::Engine;
        envelope["sealed"] = base64::engine::general_purpose::STANDARD
            .encode(seal(key(), ad::CONFIG, &body))
            .into();
        let _ = Config::open(&serde_json::to_vec(&envelope).unwrap(), key());
    }

    #[test]
    fn forget_record_garbage(plain in garbage(|s| &s.forget_record), stored in garbage(|s| &s.forget_record)) {
        let _ = from_cbor::<ForgetRecord>(&plain, "forget record");
        // As storage holds it: sealed garbage under its own hash, and raw
        // garbage under a name it does not match.
        let b = samples().repo.backend();
        let sealed = seal(key(), ad::FORGOTTEN, &plain);
        let name = format!("forgotten/{}", ironvault_core::format::Id::hash_of(&sealed).to_hex());
        b.put(&name, &sealed).unwrap();
        b.put(&format!("forgotten/{}", "0".repeat(64)), &stored).unwrap();
        let (ok, errors) = samples().repo.forget_records().unwrap();
        prop_assert_eq!(ok.len() + errors.len(), 2);
        b.delete(&name).unwrap();
        b.delete(&format!("forgotten/{}", "0".repeat(64))).unwrap();
    }

    #[test]
    fn key_file_garbage(stored in garbage(|s| &s.key_file)) {
        if let Ok(k) = KeyFile::parse(&stored, "key") {
            // Only cheap parameters are tried: the parser accepts up to 4 GiB.
            let json: serde_json::Value = serde_json::from_slice(&stored).unwrap();
            let cost = |f: &str| json["kdf"][f].as_u64().unwrap_or(u64::MAX);
            if cost("memory_kib") <= 64 && cost("iterations") <= 2 && cost("parallelism") <= 2 {
                let _ = k.unwrap_master(b"pw", "key");
            }
        }
    }
}

/// The sealed forms of locks and snapshots are read by listing storage:
/// damaged ones are reported or skipped, never a panic.
#[test]
fn damaged_stored_locks_and_snapshots_are_errors() {
    let s = samples();
    let b = s.repo.backend();
    let mut stored = seal(key(), ad::LOCK, &s.lock);
    stored[30] ^= 1;
    b.put("locks/damaged", &stored).unwrap();
    let locks = list_locks(b.as_ref(), key()).unwrap();
    assert!(locks
        .iter()
        .any(|(n, i)| n == "locks/damaged" && i.is_none()));
    b.delete("locks/damaged").unwrap();
    let id = s.repo.snapshot_ids().unwrap()[0];
    let name = format!("snapshots/{}", id.to_hex());
    let good = b.get(&name).unwrap();
    b.put(&name, &good[..good.len() - 1]).unwrap();
    let (_, errors) = s.repo.list_snapshots().unwrap();
    b.put(&name, &good).unwrap();
    assert_eq!(errors.len(), 1);
}
