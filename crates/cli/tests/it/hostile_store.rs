//! Someone who can write to the storage but has no key plants objects under
//! pack names: a damaged copy of a real pack, a huge object. Backups, copy
//! and `repair packs` never adopt what does not verify; prune never trades a
//! sound copy for a damaged one; `check --read-data` reads with bounded
//! memory. Locally and on the real S3 server.

use crate::common::s3;
use crate::common::*;
use ironvault_core::backend::local::LocalBackend;
use ironvault_core::backend::s3::{S3Backend, S3Options};
use ironvault_core::backend::Backend;
use std::path::{Path, PathBuf};

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository's storage, reached around ironvault (as the attacker does).
fn storage(env: &Env) -> Box<dyn Backend> {
    let loc = env.repo.to_str().unwrap();
    if loc.starts_with("s3:") {
        Box::new(S3Backend::open(loc, &S3Options::default()).unwrap())
    } else {
        Box::new(LocalBackend::new(&env.repo))
    }
}

fn data_packs(store: &dyn Backend) -> Vec<String> {
    let mut v: Vec<String> = store
        .list("packs/data/")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    v.sort();
    v
}

/// A pack name that sorts before every real one.
const FIRST_NAME: &str =
    "packs/data/00/0000000000000000000000000000000000000000000000000000000000000001";

/// Put `bytes` of a real pack, with one byte flipped inside its first blob,
/// under a name that sorts first; returns that name.
fn plant_damaged_copy(store: &dyn Backend, mut bytes: Vec<u8>) -> String {
    bytes[1000] ^= 0x20;
    store.put(FIRST_NAME, &bytes).unwrap();
    FIRST_NAME.to_string()
}

const BIG_SEED: u64 = 41;

/// Two snapshots of a source tree: the second adds a file.
fn two_snapshots(env: &Env) -> PathBuf {
    let src = env.path("src");
    write(&src.join("big"), &random_bytes(20 << 20, BIG_SEED));
    for i in 0..10 {
        write(
            &src.join(format!("d{}/f{i}", i % 2)),
            format!("small {i}\n").repeat(i + 1).as_bytes(),
        );
    }
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    write(&src.join("later"), &random_bytes(2 << 20, 42));
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    src
}

/// Every snapshot restores: the first without `later`, the others as the
/// source is now.
fn restore_every_snapshot(env: &Env, src: &Path) {
    let ids = env.snapshot_ids();
    assert!(ids.len() >= 2, "{ids:?}");
    for (i, id) in ids.iter().enumerate() {
        let t = env.path(&format!("restored-{i}"));
        env.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        if i == 0 {
            assert_eq!(
                std::fs::read(t.join("src/big")).unwrap(),
                random_bytes(20 << 20, BIG_SEED)
            );
            assert!(!t.join("src/later").exists());
        } else {
            assert_same_tree(src, &t.join("src"));
        }
    }
}

/// The sequence of the report: plant a damaged copy of a data pack under a
/// name that sorts first, back up, check, prune everything unused; then
/// `check --read-data` passes and every snapshot restores.
fn a_planted_damaged_copy_is_never_adopted(env: &Env) {
    let src = two_snapshots(env);
    let store = storage(env);
    let real = data_packs(store.as_ref());
    let planted = plant_damaged_copy(store.as_ref(), store.get(&real[0]).unwrap());

    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    let line = e
        .lines()
        .find(|l| l.contains(&planted))
        .unwrap_or_else(|| panic!("the backup says nothing of {planted}: {e}"));
    assert!(
        line.contains("is not reused")
            && line.contains("does not match its name")
            && line.contains("check --read-data")
            && line.contains("prune"),
        "{line}"
    );
    assert!(!e.contains("reusing"), "{e}");

    // The index does not list it; reading the data finds it damaged.
    env.ok(&["check"]);
    let o = env.run(&["check", "--read-data"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(
        e.contains(&planted) && e.contains("(in no index)"),
        "check --read-data must name the planted pack: {e}"
    );
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "only the planted pack is damaged: {e}");
    assert!(
        lines[1].contains("damage only in packs that no index lists")
            && lines[1].contains("no snapshot uses them"),
        "{e}"
    );

    env.ok(&["prune", "--max-unused", "0%"]);
    assert_eq!(store.size(&planted).unwrap(), None, "prune deletes it");
    for p in &real {
        assert!(store.size(p).unwrap().is_some(), "{p} is gone");
    }
    env.check_ok();
    restore_every_snapshot(env, &src);
}

#[test]
fn a_planted_damaged_copy_of_a_local_pack_is_never_adopted() {
    a_planted_damaged_copy_is_never_adopted(&Env::new());
}

#[test]
fn a_planted_damaged_copy_of_an_s3_pack_is_never_adopted() {
    a_planted_damaged_copy_is_never_adopted(&Env::with_repo(&s3::unique_location("planted")));
}

/// Index files in storage, by name.
fn index_files(store: &dyn Backend) -> Vec<String> {
    store
        .list("index/")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect()
}

/// Two backups that loaded the index before either wrote store the same
/// blobs twice, each copy sound and indexed. The copy an index reader meets
/// first (its index file sorts first) is then damaged in storage: prune must
/// find that out before it deletes the other copy, and keep the sound one.
#[test]
fn prune_keeps_the_sound_copy_of_a_blob_stored_twice() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), &random_bytes(3 << 20, 7));
    env.init();
    let store = storage(&env);
    let a = env.spawn_paused(
        &["backup", "-q", src.to_str().unwrap()],
        "backup-index-loaded",
    );
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let b_index = index_files(store.as_ref());
    let b_packs = data_packs(store.as_ref());
    assert!(a.resume().success());
    let a_index: Vec<String> = index_files(store.as_ref())
        .into_iter()
        .filter(|i| !b_index.contains(i))
        .collect();
    let a_packs: Vec<String> = data_packs(store.as_ref())
        .into_iter()
        .filter(|p| !b_packs.contains(p))
        .collect();
    assert_eq!((a_packs.len(), b_packs.len()), (1, 1), "one copy each");
    // Index files are read in name order: the first one's copy is preferred.
    let (first, second) = if a_index.iter().min() < b_index.iter().min() {
        (&a_packs[0], &b_packs[0])
    } else {
        (&b_packs[0], &a_packs[0])
    };
    let mut bytes = store.get(first).unwrap();
    bytes[1000] ^= 0x01;
    store.put(first, &bytes).unwrap();

    let o = env.run(&["prune", "--max-unused", "0%"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(store.size(second).unwrap().is_some(), "the sound copy went");
    let e = stderr_of(&o);
    assert!(
        e.contains(first.as_str()) && e.contains("is damaged"),
        "{e}"
    );
    // Every blob of the damaged pack has a sound copy: it may go.
    assert_eq!(store.size(first).unwrap(), None);
    env.check_ok();
    for (i, id) in env.snapshot_ids().iter().enumerate() {
        let t = env.path(&format!("r{i}"));
        env.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        assert_same_tree(&src, &t.join("src"));
    }
}

/// `copy` adopts packs an interrupted copy left in the destination: a
/// planted one must not stand in for blobs the source holds intact.
#[test]
fn copy_does_not_adopt_a_planted_pack_in_the_destination() {
    let from = Env::new();
    let src = two_snapshots(&from);
    let dst = Env::new();
    let copy_all = |args: &[&str]| {
        let o = dst
            .cmd(args)
            .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr_of(&o));
        stderr_of(&o)
    };
    let loc = from.repo.to_str().unwrap();
    copy_all(&["init", "--from-repo", loc]);
    copy_all(&["copy", "--all", "--from-repo", loc]);
    // What an attacker saved of the destination's packs ...
    let store = storage(&dst);
    let saved = store.get(&data_packs(store.as_ref())[0]).unwrap();
    // ... after its snapshots went and prune deleted their data.
    let mut ids = dst.snapshot_ids();
    ids.insert(0, "forget".into());
    dst.ok(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    dst.ok(&["prune", "--max-unused", "0%"]);
    assert!(data_packs(store.as_ref()).is_empty());
    let planted = plant_damaged_copy(store.as_ref(), saved);

    let e = copy_all(&["copy", "--all", "--from-repo", loc]);
    assert!(
        e.contains(&planted) && e.contains("is not reused"),
        "copy says nothing of {planted}: {e}"
    );
    dst.ok(&["prune", "--max-unused", "0%"]);
    assert_eq!(store.size(&planted).unwrap(), None);
    dst.check_ok();
    restore_every_snapshot(&dst, &src);
}

/// A related repository (`init --from-repo`) holding a copy of every
/// snapshot of `of`.
fn related_copy(of: &Env) -> Env {
    let a = Env::new();
    let loc = of.repo.to_str().unwrap();
    for args in [
        vec!["init", "--from-repo", loc],
        vec!["copy", "--all", "--from-repo", loc],
    ] {
        let o = a
            .cmd(&args)
            .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr_of(&o));
    }
    a
}

/// `repair packs` rebuilds the index from what is stored: a planted pack
/// must not enter it.
#[test]
fn repair_packs_does_not_index_a_planted_pack() {
    let healthy = Env::new();
    let src = two_snapshots(&healthy);
    let loc = healthy.repo.to_str().unwrap();
    let a = related_copy(&healthy);
    let store = storage(&a);
    let real = data_packs(store.as_ref());
    let planted = plant_damaged_copy(store.as_ref(), store.get(&real[0]).unwrap());
    // Real damage too, so that the repair rebuilds the index.
    let mut bytes = store.get(&real[1]).unwrap();
    bytes[500] ^= 0x01;
    store.put(&real[1], &bytes).unwrap();

    let o = a
        .cmd(&["repair", "packs", "--from-repo", loc])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // Never indexed; once every blob the snapshots need is stored again,
    // removed as the garbage it is.
    assert!(out.contains("repaired 2 damaged"), "{out}");
    assert!(
        out.contains(&format!("damaged: {planted}: in no index")) && out.contains("removed"),
        "{out}"
    );
    assert!(!stderr_of(&o).contains("not indexed"), "{}", stderr_of(&o));
    assert_eq!(store.size(&planted).unwrap(), None);
    a.check_ok();
    restore_every_snapshot(&a, &src);
    // 'repair index' does not index it either.
    let planted = plant_damaged_copy(store.as_ref(), store.get(&real[0]).unwrap());
    let o = a.run(&["repair", "index"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains(&format!("not indexed: {planted}")),
        "{}",
        stderr_of(&o)
    );
    a.ok(&["prune", "--max-unused", "0%"]);
    assert_eq!(store.size(&planted).unwrap(), None);
    a.check_ok();
    restore_every_snapshot(&a, &src);
}

/// Peak resident memory of a finished `/usr/bin/time -v` run, in bytes.
fn peak_rss(time_output: &str) -> u64 {
    time_output
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {time_output}"))
        * 1024
}

/// Run ironvault under `/usr/bin/time -v`; returns the output and its peak RSS.
fn run_measured(env: &Env, args: &[&str]) -> (std::process::Output, u64) {
    let c = env.cmd(args);
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed.arg("-v").arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let o = timed
        .output()
        .expect("/usr/bin/time (scripts/test.sh installs it)");
    let rss = peak_rss(&stderr_of(&o));
    (o, rss)
}

/// A huge object where an indexed pack was, and a huge one under a new pack
/// name whose trailer claims a huge header: `check --read-data` reports
/// both as damaged and a backup leaves the new one alone, each without
/// reading them into memory.
#[test]
fn huge_objects_under_pack_names_are_reported_with_bounded_memory() {
    const HUGE: u64 = 2 << 30;
    const BOUND: u64 = 256 << 20;
    let env = Env::new();
    let src = two_snapshots(&env);
    let real = data_packs(storage(&env).as_ref());
    let replaced = env.repo.join(&real[0]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&replaced)
        .unwrap();
    f.set_len(HUGE).unwrap();
    drop(f);
    let planted = env.repo.join(FIRST_NAME);
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&planted).unwrap();
    f.set_len(HUGE).unwrap();
    let mut trailer = (1u32 << 30).to_le_bytes().to_vec();
    trailer.extend_from_slice(b"IVP1");
    std::os::unix::fs::FileExt::write_all_at(&f, &trailer, HUGE - 8).unwrap();
    drop(f);

    let (o, rss) = run_measured(&env, &["--json", "check", "--read-data"]);
    eprintln!("check --read-data: peak RSS {} MiB", rss >> 20);
    assert!(rss < BOUND, "check --read-data peaked at {rss} bytes");
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap();
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&real[0]) && e.contains("the index says")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(FIRST_NAME) && e.contains("(in no index)")),
        "{errors:?}"
    );
    let read = v["bytes_read"].as_u64().unwrap();
    assert!(read < 64 << 20, "read {read} bytes");

    let (o, rss) = run_measured(&env, &["backup", "-q", src.to_str().unwrap()]);
    eprintln!("backup: peak RSS {} MiB", rss >> 20);
    assert!(rss < BOUND, "backup peaked at {rss} bytes");
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains(&format!("{FIRST_NAME} is not reused")),
        "{}",
        stderr_of(&o)
    );
}

/// A pack no index lists whose bytes match no pack (another object's bytes
/// under a pack name), while nothing else is damaged or missing: `check
/// --read-data` names it, and `repair packs` removes it, so check passes again.
#[test]
fn repair_packs_removes_an_unindexed_garbage_pack_when_nothing_else_is_wrong() {
    let healthy = Env::new();
    let src = two_snapshots(&healthy);
    let loc = healthy.repo.to_str().unwrap();
    let a = related_copy(&healthy);
    let store = storage(&a);
    let garbage = format!("packs/data/00/{}", "0".repeat(63) + "2");
    store
        .put(&garbage, b"index bytes, say, under a pack's name")
        .unwrap();
    assert_eq!(
        a.run(&["check", "--read-data", "-q"]).status.code(),
        Some(1)
    );
    let o = a
        .cmd(&["repair", "packs", "--from-repo", loc])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("damaged: {garbage}: in no index")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(store.size(&garbage).unwrap(), None);
    a.check_ok();
    restore_every_snapshot(&a, &src);
}
