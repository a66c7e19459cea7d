//! `prune` and `forget --prune`: space is freed, kept snapshots restore
//! byte for byte, backups running meanwhile (locally and on S3) keep their
//! data, and a prune killed at any step leaves a repository `check` passes.

use crate::common::s3;
use crate::common::*;
use std::path::{Path, PathBuf};

fn json(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    serde_json::from_str(line).unwrap()
}

/// Every object of a local repository with its size.
fn objects(repo: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<_> = files_under(repo)
        .into_iter()
        .filter(|p| !p.starts_with(repo.join("locks")))
        .map(|p| {
            let n = std::fs::metadata(&p).unwrap().len();
            (p, n)
        })
        .collect();
    v.sort();
    v
}

/// Back up `src` and keep a copy of it as it was, to compare restores with.
fn backup_and_keep(env: &Env, src: &Path, states: &mut Vec<PathBuf>) {
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let keep = env.path(&format!("state-{}", states.len()));
    copy_tree(src, &keep);
    states.push(keep);
}

fn restore_equals(env: &Env, snap: &str, expected: &Path) {
    let t = env.path(&format!("restored-{snap}-{}", rand_suffix()));
    env.ok(&["restore", snap, "--target", t.to_str().unwrap()]);
    assert_same_tree(expected, &t.join("src"));
    std::fs::remove_dir_all(&t).unwrap();
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Four snapshots: big unique files come and go, small files share packs.
fn history(env: &Env) -> (PathBuf, Vec<PathBuf>) {
    let src = env.path("src");
    let mut states = Vec::new();
    env.init();
    for round in 0..4u64 {
        write(
            &src.join(format!("big{round}")),
            &random_bytes(6 << 20, 100 + round),
        );
        if round >= 2 {
            std::fs::remove_file(src.join(format!("big{}", round - 2))).unwrap();
        }
        for i in 0..20 {
            write(
                &src.join(format!("small/r{round}-{i}")),
                &random_bytes(3000 + i * 10, round * 100 + i as u64),
            );
        }
        backup_and_keep(env, &src, &mut states);
    }
    (src, states)
}

#[test]
fn prune_frees_what_forgotten_snapshots_used_and_kept_snapshots_restore() {
    let env = Env::new();
    let (_src, states) = history(&env);
    let ids = env.snapshot_ids();
    let before = objects(&env.repo);
    // Dry runs change nothing; the limits show in what they would do.
    let dry = json(&env.ok(&[
        "forget",
        "--keep-last",
        "2",
        "--dry-run",
        "--prune",
        "--json",
    ]));
    assert_eq!(dry["dry_run"], true);
    // The preview prunes as if the two snapshots were gone.
    assert_eq!(dry["removed_count"], 2, "{dry}");
    assert_eq!(dry["prune"]["snapshots"], 2, "{dry}");
    assert!(
        dry["prune"]["unused_bytes"].as_u64().unwrap() >= 6 << 20,
        "{dry}"
    );
    assert_eq!(objects(&env.repo), before);
    env.ok(&["forget", "--keep-last", "2"]);
    let after_forget = objects(&env.repo);
    let dry = json(&env.ok(&["prune", "--dry-run", "--json"]));
    assert!(dry["packs_deleted"].as_u64().unwrap() >= 1, "{dry}");
    assert!(dry["unused_bytes"].as_u64().unwrap() >= 6 << 20, "{dry}");
    let unlimited = json(&env.ok(&["prune", "-n", "--json", "--max-unused", "unlimited"]));
    assert_eq!(unlimited["packs_repacked"], 0, "{unlimited}");
    let everything = json(&env.ok(&["prune", "-n", "--json", "--max-unused", "0%"]));
    assert!(
        everything["packs_repacked"].as_u64().unwrap() >= 1,
        "{everything}"
    );
    let bounded = json(&env.ok(&[
        "prune",
        "-n",
        "--json",
        "--max-unused",
        "0%",
        "--max-repack-size",
        "1K",
    ]));
    assert_eq!(bounded["packs_repacked"], 0, "{bounded}");
    assert!(
        bounded["packs_deferred"].as_u64().unwrap() >= 1,
        "{bounded}"
    );
    assert_eq!(objects(&env.repo), after_forget);
    // Bad limits are refused before anything is opened.
    let o = env.run(&["prune", "--max-unused", "5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--max-unused"));

    // For real: the human report, then nothing is left to do.
    let out = env.ok(&["prune", "--max-unused", "0%"]);
    assert!(out.contains("deleted ") && out.contains("freed "), "{out}");
    let size = |v: &[(PathBuf, u64)]| v.iter().map(|o| o.1).sum::<u64>();
    let after = objects(&env.repo);
    assert!(
        size(&after) + (6 << 20) < size(&after_forget),
        "{} -> {}",
        size(&after_forget),
        size(&after)
    );
    assert!(!after
        .iter()
        .any(|(p, _)| p.starts_with(env.repo.join("deletions"))));
    let again = json(&env.ok(&["prune", "--json", "--max-unused", "0%"]));
    assert_eq!(again["packs_deleted"], 0, "{again}");
    assert_eq!(again["packs_repacked"], 0, "{again}");
    let check = env.ok(&["check", "--read-data"]);
    assert!(!check.contains("not referenced"), "{check}");
    for (i, id) in ids.iter().enumerate().skip(2) {
        restore_equals(&env, id, &states[i]);
    }
}

fn newest_tagged(env: &Env, tag: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", tag])).unwrap();
    v.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One round: snapshot `old` holds `x`, `new` does not; `old` is forgotten.
/// A backup B of a tree holding `x` loads the index (so it will reuse x's
/// blobs) and pauses; prune marks x's pack for deletion and waits for B's
/// lock. With `rewrite_meanwhile`, another backup C stores x again while
/// prune waits (it must not reuse a deletion candidate). Then B goes on.
fn round(env: &Env, tag: &str, rewrite_meanwhile: bool) -> serde_json::Value {
    let src = env.path(&format!("{tag}-src"));
    let x = random_bytes(3 << 20, tag.bytes().map(u64::from).sum());
    write(&src.join("x"), &x);
    write(&src.join("y"), format!("y of {tag}\n").as_bytes());
    env.ok(&["backup", "-q", "--tag", tag, src.to_str().unwrap()]);
    let old = env.snapshot_ids().pop().unwrap();
    std::fs::remove_file(src.join("x")).unwrap();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    env.ok(&["forget", &old]);

    let b_src = env.path(&format!("{tag}-b"));
    write(&b_src.join("x-again"), &x);
    let b = env.spawn_paused(
        &["backup", "-q", "--tag", "B", b_src.to_str().unwrap()],
        "backup-index-loaded",
    );
    let (p, seen) = env.spawn_until_stderr(
        &["prune", "--json", "--max-unused", "0%"],
        "waiting for 1 lock",
    );
    // It says whose lock it waits for.
    assert!(
        seen.last().unwrap().contains(": 'backup' run by "),
        "{seen:?}"
    );
    let c_src = env.path(&format!("{tag}-c"));
    if rewrite_meanwhile {
        write(&c_src.join("x-third"), &x);
        let c = json(&env.ok(&["backup", "--json", "--tag", "C", c_src.to_str().unwrap()]));
        // Stored again, not referenced in the candidate pack.
        assert!(
            c["data_added"].as_u64().unwrap() >= 3 << 20,
            "a backup during prune reused a deletion candidate: {c}"
        );
    }
    assert!(b.resume().success());
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    env.check_ok();
    // B's snapshot has x, through whichever copy survived.
    let t = env.path(&format!("{tag}-restored"));
    env.ok(&[
        "restore",
        &newest_tagged(env, "B"),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&b_src, &t.join(format!("{tag}-b")));
    if rewrite_meanwhile {
        let t = env.path(&format!("{tag}-restored-c"));
        env.ok(&[
            "restore",
            &newest_tagged(env, "C"),
            "--target",
            t.to_str().unwrap(),
        ]);
        assert_same_tree(&c_src, &t.join(format!("{tag}-c")));
    }
    report
}

fn backups_during_prune(env: &Env) {
    env.init();
    // C stored x again, so x's old pack goes although B references x.
    let r1 = round(env, "one", true);
    assert!(r1["withdrawn"].as_array().unwrap().is_empty(), "{r1}");
    assert!(r1["waited_for_locks"].as_u64().unwrap() >= 1, "{r1}");
    // Nobody stored x again: its pack is withdrawn from deletion.
    let r2 = round(env, "two", false);
    assert_eq!(r2["withdrawn"].as_array().unwrap().len(), 1, "{r2}");
    // A later prune, with nothing running, removes what is unused by then.
    env.ok(&["prune", "--max-unused", "0%"]);
    env.check_ok();
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn backups_running_during_a_local_prune_keep_their_data() {
    backups_during_prune(&Env::new());
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn backups_running_during_an_s3_prune_keep_their_data() {
    backups_during_prune(&Env::with_repo(&s3::unique_location("prune")));
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn a_prune_killed_at_any_step_leaves_a_repository_that_checks_and_restores() {
    use std::os::unix::process::ExitStatusExt;
    for fp in ironvault_core::failpoint::PRUNE {
        let env = Env::new();
        let (src, states) = history(&env);
        env.ok(&["forget", "--keep-last", "2"]);
        let ids = env.snapshot_ids();
        let o = env
            .cmd(&["prune", "--max-unused", "0%"])
            .env("IRONVAULT_FAILPOINT", fp)
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGKILL),
            "failpoint {fp} was not hit: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let check = env.ok(&["check", "--read-data"]);
        assert!(check.contains("no errors"), "{fp}: {check}");
        for (i, id) in ids.iter().enumerate() {
            restore_equals(&env, id, &states[i + 2]);
        }
        // Backups go on after the kill, and the next prune finishes the job.
        write(&src.join("after"), &random_bytes(100_000, 9));
        env.ok(&["backup", "-q", src.to_str().unwrap()]);
        let out = env.ok(&["prune", "--max-unused", "0%"]);
        assert!(out.contains("freed"), "{fp}: {out}");
        let check = env.ok(&["check", "--read-data"]);
        assert!(
            !check.contains("not referenced") && !check.contains("deletion list"),
            "{fp}: {check}"
        );
        assert!(
            !env.repo.join("deletions").exists()
                || std::fs::read_dir(env.repo.join("deletions"))
                    .unwrap()
                    .next()
                    .is_none()
        );
        for (i, id) in ids.iter().enumerate() {
            restore_equals(&env, id, &states[i + 2]);
        }
        restore_equals(&env, "latest", &src);
    }
}

#[test]
fn prune_refuses_damage_and_a_running_prune_and_finishes_an_abandoned_one() {
    let env = Env::new();
    let (_src, _states) = history(&env);
    env.ok(&["forget", "--keep-last", "2"]);
    // A lost pack: prune deletes nothing and says what to do.
    let packs: Vec<PathBuf> = files_under(&env.repo.join("packs/data"));
    let victim = packs.last().unwrap().clone();
    let saved = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let before = objects(&env.repo);
    let o = env.run(&["prune"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("is missing") && e.contains("repair packs"),
        "{e}"
    );
    assert_eq!(objects(&env.repo), before);
    std::fs::write(&victim, saved).unwrap();

    // Another prune holds a live lock and a deletion list: refused, exit 11.
    let backend: std::sync::Arc<dyn ironvault_core::backend::Backend> =
        std::sync::Arc::new(ironvault_core::backend::local::LocalBackend::new(&env.repo));
    let repo =
        ironvault_core::repo::Repository::open(backend.clone(), PASSWORD.as_bytes()).unwrap();
    let lock =
        ironvault_core::repo::lock::Lock::acquire(backend.clone(), *repo.master_key(), false)
            .unwrap();
    let list = ironvault_core::format::deletions::Deletions {
        created: "2026-01-01T00:00:00Z".into(),
        packs: vec![],
        lock: Some(lock.name().to_string()),
        hostname: Some("elsewhere".into()),
    };
    backend
        .put(
            "deletions/0000000000000000000000000000000000000000000000000000000000000001",
            &ironvault_core::crypto::seal(
                repo.master_key(),
                ironvault_core::format::kind::ad::DELETIONS,
                &ironvault_core::format::to_cbor(&list).unwrap(),
            ),
        )
        .unwrap();
    let o = env.run(&["prune"]);
    assert_eq!(o.status.code(), Some(11));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("locked by a prune on elsewhere (deletion list"),
        "{e}"
    );
    assert!(env.ok(&["check"]).contains("deletion list"));
    // Its process ends without cleaning up: the next prune takes over.
    lock.release().unwrap();
    let o = env.run(&["prune"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted prune"));
    assert!(std::fs::read_dir(env.repo.join("deletions"))
        .unwrap()
        .next()
        .is_none());
    env.check_ok();
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn ctrl_c_while_prune_waits_withdraws_its_list_and_changes_nothing_else() {
    let env = Env::new();
    let (src, _states) = history(&env);
    env.ok(&["forget", "--keep-last", "2"]);
    let b = env.spawn_paused(
        &["backup", "-q", src.to_str().unwrap()],
        "backup-index-loaded",
    );
    let (mut p, seen) = env.spawn_until_stderr(&["prune"], "waiting for 1 lock");
    assert!(seen.last().unwrap().contains("Ctrl-C"), "{seen:?}");
    let packs_before: Vec<PathBuf> = files_under(&env.repo.join("packs"));
    // SAFETY: kill(2) on a child we started.
    unsafe { libc::kill(p.id() as libc::pid_t, libc::SIGINT) };
    let status = p.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(std::fs::read_dir(env.repo.join("deletions"))
        .unwrap()
        .next()
        .is_none());
    // Nothing was deleted (the repacked copies may stay, as duplicates).
    let packs_after: Vec<PathBuf> = files_under(&env.repo.join("packs"));
    for p in &packs_before {
        assert!(packs_after.contains(p), "{} was deleted", p.display());
    }
    assert!(b.resume().success());
    env.check_ok();
    // forget --prune: the usual way to run it.
    let out = env.ok(&["forget", "--keep-last", "1", "--prune", "--json"]);
    let pr = &json(&out)["prune"];
    assert!(
        pr["packs_deleted"].as_u64().unwrap() + pr["packs_repacked"].as_u64().unwrap() >= 1,
        "{pr}"
    );
    env.check_ok();
    restore_equals(&env, "latest", &src);
}
