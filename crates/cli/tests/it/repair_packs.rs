//! `repair packs --from-repo`: packs that are corrupted, truncated or deleted
//! are healed from a related copy, locally and on S3; afterwards
//! `check --read-data` passes and every snapshot restores.

use crate::common::s3;
use crate::common::*;
use ironvault_core::backend::s3::{S3Backend, S3Options};
use ironvault_core::backend::Backend;

/// A healthy repository B with two snapshots, and the source tree.
fn healthy(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    write(&src.join("big1"), &random_bytes(20 << 20, 31));
    write(&src.join("big2"), &random_bytes(20 << 20, 32));
    for i in 0..30 {
        write(
            &src.join(format!("d{}/f{i}", i % 3)),
            format!("file {i}\n").repeat(i + 1).as_bytes(),
        );
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    write(&src.join("big3"), &random_bytes(18 << 20, 33));
    env.ok(&["backup", src.to_str().unwrap()]);
    src
}

/// Make `damaged` a related copy of `healthy` (all snapshots).
fn related_copy(damaged: &Env, healthy: &Env) {
    let from = healthy.repo.to_str().unwrap();
    for args in [
        vec!["init", "--from-repo", from],
        vec!["copy", "--all", "--from-repo", from],
    ] {
        let o = damaged
            .cmd(&args)
            .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn repair_from(damaged: &Env, healthy: &Env) -> String {
    let o = damaged
        .cmd(&[
            "repair",
            "packs",
            "--from-repo",
            healthy.repo.to_str().unwrap(),
        ])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn restore_every_snapshot(env: &Env, src: &std::path::Path) {
    // The newest snapshot is the source as it is now.
    let t = env.path("restored");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(src, &t.join("src"));
    let ids = env.snapshot_ids();
    let t0 = env.path("restored-0");
    env.ok(&["restore", &ids[0], "--target", t0.to_str().unwrap()]);
    assert!(t0.join("src/big1").exists() && !t0.join("src/big3").exists());
}

#[test]
fn corrupted_truncated_and_deleted_local_packs_are_healed_from_a_copy() {
    let b = Env::new();
    let src = healthy(&b);
    let a = Env::new();
    related_copy(&a, &b);
    let mut data = files_under(&a.repo.join("packs/data"));
    data.sort();
    assert!(data.len() >= 3, "{data:?}");
    let mut bytes = std::fs::read(&data[0]).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data[0], bytes).unwrap();
    let half = std::fs::metadata(&data[1]).unwrap().len() / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data[1])
        .unwrap()
        .set_len(half)
        .unwrap();
    std::fs::remove_file(&data[2]).unwrap();
    let trees = files_under(&a.repo.join("packs/tree"));
    std::fs::remove_file(&trees[0]).unwrap();
    assert_eq!(a.run(&["check", "--read-data"]).status.code(), Some(1));

    let out = repair_from(&a, &b);
    assert!(out.contains("repaired 4 damaged"), "{out}");
    assert!(
        out.contains("content does not match") && out.contains("missing"),
        "{out}"
    );
    a.check_ok();
    restore_every_snapshot(&a, &src);
    let again = repair_from(&a, &b);
    assert!(again.contains("nothing to repair"), "{again}");
    // The healthy copy was only read.
    b.check_ok();
}

#[test]
fn damaged_packs_on_s3_are_healed_from_a_local_copy() {
    let b = Env::new();
    let src = healthy(&b);
    let loc = s3::unique_location("repair");
    let a = Env::with_repo(&loc);
    related_copy(&a, &b);
    // Damage the bucket directly through the storage layer.
    let s3b = S3Backend::open(&loc, &S3Options::default()).unwrap();
    let data: Vec<String> = s3b
        .list("packs/data/")
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert!(data.len() >= 3);
    let mut bytes = s3b.get(&data[0]).unwrap();
    bytes[500] ^= 0x01;
    s3b.put(&data[0], &bytes).unwrap();
    let whole = s3b.get(&data[1]).unwrap();
    s3b.put(&data[1], &whole[..whole.len() / 3]).unwrap();
    s3b.delete(&data[2]).unwrap();
    assert_eq!(a.run(&["check", "--read-data"]).status.code(), Some(1));

    let out = repair_from(&a, &b);
    assert!(out.contains("repaired 3 damaged"), "{out}");
    a.check_ok();
    restore_every_snapshot(&a, &src);
}

#[test]
fn blobs_lost_in_both_copies_are_named_and_exit_1() {
    let b = Env::new();
    healthy(&b);
    let a = Env::new();
    related_copy(&a, &b);
    // The same data lost on both sides: B's first data pack, and every A
    // pack holding any of its blobs.
    let mut bd = files_under(&b.repo.join("packs/data"));
    bd.sort();
    std::fs::remove_file(&bd[0]).unwrap();
    for p in files_under(&a.repo.join("packs/data")) {
        std::fs::remove_file(p).unwrap();
    }
    let o = a
        .cmd(&["repair", "packs", "--from-repo", b.repo.to_str().unwrap()])
        .env("IRONVAULT_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("in neither repository") && e.contains("repair snapshots"),
        "{e}"
    );
    // What could be fetched was: only the lost pack's files are missing.
    let out = a.ok(&["repair", "snapshots", "--forget"]);
    assert!(out.contains("repaired"), "{out}");
    a.check_ok();
}
