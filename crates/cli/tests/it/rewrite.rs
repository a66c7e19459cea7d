//! Erasure (GDPR): `rewrite --exclude` then `prune` leaves no decrypted blob
//! in any pack holding a marker from the erased file (in its content or its
//! name), purges the metadata caches, reports what deduplication keeps, and
//! every other file still restores. Locally and on S3.

use crate::common::s3;
use crate::common::*;
use ironvault_core::backend::s3::S3Options;
use ironvault_core::backend::{open_location, Backend};
use ironvault_core::repo::Repository;
use std::path::Path;
use std::sync::Arc;

const MARKER: &[u8] = b"GDPRMARKER-4711";

/// Every blob of every stored pack, decrypted: (pack name, blob plaintext).
fn decrypted_blobs(location: &str) -> Vec<(String, Vec<u8>)> {
    let b: Arc<dyn Backend> = Arc::from(open_location(location, &S3Options::default()).unwrap());
    let repo = Repository::open(b.clone(), PASSWORD.as_bytes()).unwrap();
    let mut out = Vec::new();
    for p in repo.stored_packs().unwrap() {
        let header = repo.read_pack_header(p.t, &p.id, p.size).unwrap();
        let bytes = b.get(&p.name).unwrap();
        for e in &header.blobs {
            let sealed = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            let plain = repo
                .open_blob(p.t, &e.id, sealed, e.raw_len, &p.name)
                .unwrap();
            out.push((p.name.clone(), plain));
        }
    }
    out
}

fn holding_marker(location: &str) -> Vec<String> {
    decrypted_blobs(location)
        .into_iter()
        .filter(|(_, plain)| plain.windows(MARKER.len()).any(|w| w == MARKER))
        .map(|(n, _)| n)
        .collect()
}

/// Pack names a metadata cache directory holds.
fn cached_packs(cache: &Path) -> Vec<String> {
    if !cache.exists() {
        return Vec::new();
    }
    files_under(cache)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/packs/"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn erase(env: &Env, location: &str) {
    let src = env.path("src");
    // The file to erase carries the marker in its name and its content; a
    // big file fills most of the pack it shares with it, so only the
    // erasure (not the unused share) can make prune rewrite that pack.
    let secret_name = format!("{}-john-doe.txt", String::from_utf8_lossy(MARKER));
    let mut secret = Vec::new();
    for i in 0..400 {
        secret.extend_from_slice(
            format!("{} customer record {i}\n", String::from_utf8_lossy(MARKER)).as_bytes(),
        );
    }
    write(&src.join("docs").join(&secret_name), &secret);
    write(&src.join("docs/public.txt"), b"public text\n");
    // Matched by the pattern, but its content is also a kept file's.
    write(&src.join("docs/dup-of-public.tmp"), b"public text\n");
    write(&src.join("big.bin"), &random_bytes(3 << 20, 5));
    write(&src.join("notes/a.txt"), &random_bytes(5000, 6));
    env.init();
    env.ok(&["backup", "-q", "--tag", "first", src.to_str().unwrap()]);
    write(&src.join("notes/b.txt"), &random_bytes(7000, 7));
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    // A snapshot without the file: left as it is.
    let other = env.path("other");
    write(&other.join("x"), b"unrelated\n");
    env.ok(&["backup", "-q", other.to_str().unwrap()]);
    // A second host's cache, warmed by browsing: it holds the tree packs
    // that name the file.
    let host2 = env.path("cache-host2");
    let second = env.snapshot_ids()[1].clone();
    let ls = env
        .cmd(&["ls", &second])
        .env("IRONVAULT_CACHE_DIR", &host2)
        .output()
        .unwrap();
    assert!(ls.status.success());

    // The scanner finds the marker before: it is able to see it.
    assert!(!holding_marker(location).is_empty());

    let dry = env.ok(&[
        "rewrite",
        "--all",
        "--exclude",
        "GDPRMARKER*",
        "--exclude",
        "*.tmp",
        "--dry-run",
    ]);
    assert!(dry.contains("dry run: nothing was changed"), "{dry}");
    assert!(!holding_marker(location).is_empty());
    let out = env.ok(&[
        "rewrite",
        "--all",
        "--exclude",
        "GDPRMARKER*",
        "--exclude",
        "*.tmp",
        "--json",
    ]);
    let audit: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    // The audit record: which files left which snapshots, what was not erased.
    let rewritten = audit["rewritten"].as_array().unwrap();
    assert_eq!(rewritten.len(), 2, "{audit}");
    for s in rewritten {
        let removed: Vec<&str> = s["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(removed.len(), 2, "{s}");
        assert!(removed.iter().any(|r| r.ends_with(&secret_name)), "{s}");
        assert!(
            removed
                .iter()
                .any(|r| r.ends_with("docs/dup-of-public.tmp")),
            "{s}"
        );
        assert!(s["new"].is_string());
    }
    assert_eq!(audit["unchanged"].as_array().unwrap().len(), 1, "{audit}");
    let shared = audit["shared"].as_array().unwrap();
    assert_eq!(shared.len(), 1, "{audit}");
    assert!(
        shared[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("docs/public.txt"),
        "{audit}"
    );
    assert!(audit["erasure_request"]
        .as_str()
        .unwrap()
        .starts_with("erasures/"));
    assert!(env.ok(&["check"]).contains("erasure request"));

    let out = env.ok(&["prune", "--json"]);
    let pr: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(pr["erased_blobs"].as_u64().unwrap() >= 3, "{pr}");
    let not_erased = pr["not_erased"].as_array().unwrap();
    assert_eq!(not_erased.len(), 1, "{pr}");
    assert!(
        not_erased[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("docs/public.txt"),
        "{pr}"
    );
    // The shared blob keeps the request open (and reported) until no
    // snapshot uses it.
    assert_eq!(
        pr["erasure_requests_pending"].as_array().unwrap().len(),
        1,
        "{pr}"
    );

    let left = holding_marker(location);
    assert!(left.is_empty(), "the marker is still in {left:?}");
    env.check_ok();
    // Every other file restores, byte for byte.
    let expected = env.path("expected");
    copy_tree(&src, &expected);
    std::fs::remove_file(expected.join("docs").join(&secret_name)).unwrap();
    std::fs::remove_file(expected.join("docs/dup-of-public.tmp")).unwrap();
    // The directory keeps its recorded metadata, as backed up.
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(src.join("docs")).unwrap();
        set_times(&expected.join("docs"), m.mtime(), m.mtime_nsec());
    }
    for (i, id) in env.snapshot_ids().iter().enumerate() {
        let t = env.path(&format!("restored-{i}"));
        env.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        if t.join("src").exists() {
            let got = t.join("src");
            assert!(!got.join("docs").join(&secret_name).exists());
            assert!(got.join("docs/public.txt").exists());
            if got.join("notes/b.txt").exists() {
                assert_same_tree(&expected, &got);
            }
        } else {
            assert_same_tree(&other, &t.join("other"));
        }
    }
    // The caches keep no pack that storage no longer has.
    if location.starts_with("s3:") {
        let stored: Vec<String> = decrypted_blobs(location)
            .into_iter()
            .map(|(n, _)| n.rsplit('/').next().unwrap().to_string())
            .collect();
        let own = cached_packs(&env.path("cache"));
        assert!(!own.is_empty(), "the test should exercise the cache");
        for c in own {
            assert!(stored.contains(&c), "this host's cache still holds {c}");
        }
        // The other host's cache still holds packs prune deleted (it named
        // the erased file) until its next listing (any backup) purges them.
        let stale: Vec<String> = cached_packs(&host2)
            .into_iter()
            .filter(|c| !stored.contains(c))
            .collect();
        assert!(
            !stale.is_empty(),
            "host 2's cache should hold a deleted pack"
        );
        let o = env
            .cmd(&["backup", "-q", other.to_str().unwrap()])
            .env("IRONVAULT_CACHE_DIR", &host2)
            .output()
            .unwrap();
        assert!(o.status.success());
        let stored: Vec<String> = decrypted_blobs(location)
            .into_iter()
            .map(|(n, _)| n.rsplit('/').next().unwrap().to_string())
            .collect();
        for c in cached_packs(&host2) {
            assert!(stored.contains(&c), "host 2's cache still holds {c}");
            assert!(!stale.contains(&c));
        }
    }
}

#[test]
fn rewrite_and_prune_erase_a_file_from_every_pack_locally() {
    let env = Env::new();
    let loc = env.repo.to_str().unwrap().to_string();
    erase(&env, &loc);
}

#[test]
fn rewrite_and_prune_erase_a_file_from_every_pack_on_s3_and_its_caches() {
    let loc = s3::unique_location("erase");
    let env = Env::with_repo(&loc);
    erase(&env, &loc);
}

#[test]
fn rewrite_needs_snapshots_or_all_and_a_pattern() {
    let env = Env::new();
    env.init();
    let o = env.run(&["rewrite", "--exclude", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--all"));
    let o = env.run(&["rewrite", "--all"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A repository with one snapshot of a source holding a file with the
/// marker in its name and content, and a 1 MiB file to keep (`keep.bin`).
/// Returns the source and the marked file's name.
fn marked_source(env: &Env) -> (std::path::PathBuf, String) {
    let src = env.path("src");
    let secret = format!("{}-record.txt", String::from_utf8_lossy(MARKER));
    write(
        &src.join(&secret),
        &[MARKER, b" record\n"].concat().repeat(300),
    );
    write(&src.join("keep.bin"), &random_bytes(1 << 20, 3));
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    (src, secret)
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn a_backup_running_across_the_erasure_is_reported_and_a_second_rewrite_finishes_it() {
    let env = Env::new();
    let loc = env.repo.to_str().unwrap().to_string();
    let (src, secret_name) = marked_source(&env);
    // A backup that loaded the index before the rewrite: it will store a
    // snapshot holding the file after the rewrite is done.
    let b = env.spawn_paused(
        &["backup", "-q", src.to_str().unwrap()],
        "backup-index-loaded",
    );
    env.ok(&["rewrite", "--all", "--exclude", "GDPRMARKER*"]);
    let (p, _) = env.spawn_until_stderr(&["prune", "--json"], "waiting for 1 lock");
    assert!(b.resume().success());
    let out = p.wait_with_output().unwrap();
    assert!(out.status.success());
    let pr: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    // Not erased, and the report names the file that keeps it.
    let not_erased = pr["not_erased"].as_array().unwrap();
    assert!(
        not_erased
            .iter()
            .any(|s| s["path"].as_str().unwrap().ends_with(&secret_name)),
        "{pr}"
    );
    assert!(!holding_marker(&loc).is_empty());
    env.check_ok();
    let again = env.ok(&["prune"]);
    assert!(
        again.contains("NOT erased") && again.contains(&secret_name),
        "{again}"
    );
    // Rewriting the new snapshot too, then pruning, finishes the erasure.
    env.ok(&["rewrite", "--all", "--exclude", "GDPRMARKER*"]);
    let done = env.ok(&["prune"]);
    assert!(!done.contains("NOT erased"), "{done}");
    assert!(holding_marker(&loc).is_empty());
    assert!(!env
        .ok(&["check", "--read-data"])
        .contains("erasure request"));
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn a_rewrite_killed_at_any_step_loses_no_erasure_and_a_rerun_finishes_it() {
    use std::os::unix::process::ExitStatusExt;
    for fp in ironvault_core::failpoint::REWRITE {
        let env = Env::new();
        let loc = env.repo.to_str().unwrap().to_string();
        let (src, secret) = marked_source(&env);
        write(&src.join("more.txt"), b"more\n");
        env.ok(&["backup", "-q", src.to_str().unwrap()]);
        let o = env
            .cmd(&["rewrite", "--all", "--exclude", "GDPRMARKER*"])
            .env("IRONVAULT_FAILPOINT", fp)
            .output()
            .unwrap();
        assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{fp} was not hit");
        env.check_ok();
        // Every snapshot still restores; the run is finished by a rerun.
        env.ok(&["rewrite", "--all", "--exclude", "GDPRMARKER*"]);
        env.ok(&["prune"]);
        assert!(holding_marker(&loc).is_empty(), "{fp}: the marker survived");
        let ids = env.snapshot_ids();
        assert_eq!(ids.len(), 2, "{fp}");
        let t = env.path("restored");
        env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
        assert!(t.join("src/more.txt").exists() && !t.join("src").join(&secret).exists());
        assert_eq!(
            std::fs::read(t.join("src/keep.bin")).unwrap(),
            std::fs::read(src.join("keep.bin")).unwrap()
        );
        env.check_ok();
    }
}
