//! Writes the seed corpora of the fuzz targets in fuzz/ (scripts/fuzz.sh
//! runs it): the real objects of the committed v1 fixture and of a
//! repository made here from a small tree of every node kind, each in the
//! input layout its target documents, sealed where needed under the
//! fixture's key (the targets' fixed test key).
//!
//! Usage: cargo run -p ironvault-core --example fuzz_corpus -- OUT_DIR

use ironvault_core::backend::local::LocalBackend;
use ironvault_core::backend::Backend;
use ironvault_core::backup::{backup, BackupOptions};
use ironvault_core::crypto::kdf::KdfParams;
use ironvault_core::crypto::{open, seal};
use ironvault_core::format::kind::{ad, snapshot_ad};
use ironvault_core::format::tree::Tree;
use ironvault_core::format::{from_cbor, pack, to_cbor, BlobType, Id};
use ironvault_core::repo::lock::Lock;
use ironvault_core::repo::Repository;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Password of tests/fixtures/repo-v1 (public: it is a test fixture).
const FIXTURE_PASSWORD: &[u8] = b"ironvault-v1-fixture";
/// Password of the repository made here; the `key_file` target tries it.
const KEY_FILE_PASSWORD: &[u8] = b"fuzz";

/// Where the seeds go: OUT/<target>/<hash of the seed>.
struct Seeds(PathBuf);

impl Seeds {
    fn add(&self, target: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(Id::hash_of(bytes).short()), bytes)?;
        Ok(())
    }
}

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: fuzz_corpus OUT_DIR")?;
    let seeds = Seeds(PathBuf::from(out));
    let fixture_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repo-v1");
    let fixture = Repository::open(
        Arc::new(LocalBackend::new(fixture_dir.clone())),
        FIXTURE_PASSWORD,
    )?;
    // The stored objects of the fixture are what the sealed targets read.
    for (dir, target) in [
        ("config", "repo_config_sealed"),
        ("keys", "key_file"),
        ("index", "index_sealed"),
    ] {
        let p = fixture_dir.join(dir);
        if p.is_file() {
            seeds.add(target, &std::fs::read(&p)?)?;
        } else {
            for e in std::fs::read_dir(&p)? {
                seeds.add(target, &std::fs::read(e?.path())?)?;
            }
        }
    }
    for e in std::fs::read_dir(fixture_dir.join("snapshots"))? {
        let e = e?;
        let id = Id::from_hex(&e.file_name().to_string_lossy()).ok_or("snapshot name")?;
        seeds.add(
            "snapshot_sealed",
            &[&id.0[..], &std::fs::read(e.path())?].concat(),
        )?;
    }
    let tmp = std::env::temp_dir().join(format!("ironvault-fuzz-corpus-{}", std::process::id()));
    let made = make_repository(&tmp);
    let result = made.and_then(|fresh| {
        for repo in [&fixture, &fresh] {
            add_objects(&seeds, repo, &fixture)?;
        }
        add_locks(&seeds, &fresh, &fixture)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// A repository with two snapshots of a tree holding every node kind.
fn make_repository(tmp: &Path) -> Result<Repository> {
    let src = tmp.join("src");
    std::fs::create_dir_all(src.join("sub/deeper"))?;
    std::fs::write(src.join("a.txt"), "hello fuzz\n")?;
    std::fs::write(src.join("empty"), "")?;
    std::fs::write(src.join("sub/deeper/notes"), "x".repeat(5000))?;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("sub/big"), big)?;
    std::fs::hard_link(src.join("a.txt"), src.join("hardlink"))?;
    std::os::unix::fs::symlink("a.txt", src.join("link"))?;
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling"))?;
    let sparse = std::fs::File::create(src.join("sparse"))?;
    sparse.set_len(300_000)?;
    let fifo = std::ffi::CString::new(src.join("fifo").into_os_string().into_encoded_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
    // Not every file system takes user xattrs; the seeds do without them then.
    let _ = xattr::set(src.join("a.txt"), "user.fuzz", b"seed");
    std::fs::write(src.join("caf\u{e9} \u{1F600}"), "unicode name")?;

    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.join("repo")));
    let kdf = KdfParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let repo = Arc::new(Repository::init(backend, KEY_FILE_PASSWORD, kdf, None)?);
    let mut opts = BackupOptions::new(vec![src.clone()]);
    opts.hostname = "fuzz".into();
    opts.tags = vec!["seed".into(), "fuzz".into()];
    backup(repo.clone(), &opts, &|_| {})?;
    std::fs::write(src.join("a.txt"), "changed\n")?;
    backup(repo.clone(), &opts, &|_| {})?;
    Repository::open(repo.backend().clone(), KEY_FILE_PASSWORD).map_err(Into::into)
}

/// Seeds from every config, key, snapshot, tree, index and pack of `repo`;
/// sealed seeds are sealed under the fixture's key.
fn add_objects(seeds: &Seeds, repo: &Repository, fixture: &Repository) -> Result<()> {
    let fkey = fixture.master_key();
    let b = repo.backend();
    seeds.add("repo_config", &to_cbor(repo.config())?)?;
    seeds.add("repo_config_sealed", &repo.config().seal(fkey)?)?;
    for k in b.list("keys/")? {
        seeds.add("key_file", &b.get(&k.name)?)?;
    }
    repo.load_index(false)?;
    let mut trees = Vec::new();
    for id in repo.snapshot_ids()? {
        let plain = repo.load_snapshot_plain(&id)?;
        seeds.add("snapshot", &plain)?;
        let fid = fixture.id_keys().snapshot_id(&plain);
        let sealed = seal(fkey, &snapshot_ad(&fid), &plain);
        seeds.add("snapshot_sealed", &[&fid.0[..], &sealed].concat())?;
        trees.push(repo.load_snapshot(&id)?.tree);
    }
    let mut seen = HashSet::new();
    while let Some(id) = trees.pop() {
        if !seen.insert(id) {
            continue;
        }
        let plain = repo.read_blob(BlobType::Tree, &id)?;
        seeds.add("tree", &plain)?;
        let fid = fixture.id_keys().blob_id(BlobType::Tree, &plain);
        let stored = fixture.seal_blob(BlobType::Tree, &fid, &plain, 3);
        let raw_len = (plain.len() as u32).to_le_bytes();
        seeds.add("tree_sealed", &[&raw_len[..], &fid.0, &stored].concat())?;
        let tree: Tree = from_cbor(&plain, "tree")?;
        trees.extend(tree.nodes.iter().filter_map(|n| n.subtree));
    }
    let (files, _) = repo.read_index_files()?;
    for (_, f) in files {
        let sealed = f.seal(fkey)?;
        seeds.add("index_sealed", &sealed)?;
        let body = zstd::stream::decode_all(&open(fkey, ad::INDEX, &sealed, "index")?[..])?;
        seeds.add("index", &body)?;
    }
    for p in repo.stored_packs()? {
        let trailer = b.get_range(&p.name, p.size - pack::TRAILER_LEN as u64, 8)?;
        let hl = u64::from(pack::parse_trailer(&trailer, &p.name)?);
        let sealed = b.get_range(&p.name, p.size - 8 - hl, hl)?;
        let header = open(repo.master_key(), ad::PACK_HEADER, &sealed, &p.name)?;
        let size = p.size.to_le_bytes();
        seeds.add("pack_header", &[&size[..], &header].concat())?;
        let mut tail = seal(fkey, ad::PACK_HEADER, &header);
        tail.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        tail.extend_from_slice(pack::MAGIC);
        // Sealed under another key, the header keeps its length: so does the pack.
        seeds.add("pack_header_sealed", &[&size[..], &tail].concat())?;
    }
    Ok(())
}

/// Seeds from real lock objects, shared and exclusive.
fn add_locks(seeds: &Seeds, repo: &Repository, fixture: &Repository) -> Result<()> {
    let b = repo.backend();
    for exclusive in [false, true] {
        let lock = Lock::acquire(b.clone(), *repo.master_key(), exclusive)?;
        for o in b.list("locks/")? {
            let plain = open(repo.master_key(), ad::LOCK, &b.get(&o.name)?, &o.name)?;
            seeds.add("lock", &plain)?;
            seeds.add("lock_sealed", &seal(fixture.master_key(), ad::LOCK, &plain))?;
        }
        lock.release()?;
    }
    Ok(())
}
