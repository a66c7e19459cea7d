//! Bad input and faults: each prints one line saying what happened and what
//! to do, and loses nothing that was already stored.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn small_source(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    write(&src.join("one.txt"), b"one\n");
    write(&src.join("two.bin"), &random_bytes(2 << 20, 2));
    write(&src.join("sub/three.bin"), &random_bytes(3 << 20, 3));
    src
}

#[test]
fn wrong_password_is_refused_with_one_line_and_exit_12() {
    let env = Env::new();
    let src = small_source(&env);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let o = env
        .cmd(&["snapshots"])
        .env("IRONVAULT_PASSWORD", "not the password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12));
    let e = stderr_of(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("error: wrong password for repository"), "{e}");
    env.check_ok();
}

#[test]
fn missing_repository_exit_10_and_no_password_prompt() {
    let env = Env::new();
    let o = env
        .cmd(&["snapshots"])
        .env_remove("IRONVAULT_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10));
    let e = stderr_of(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("does not exist") && e.contains("ironvault init"),
        "{e}"
    );
}

#[test]
fn init_twice_is_refused() {
    let env = Env::new();
    env.init();
    let o = env.run(&["init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("already exists"));
}

#[test]
fn newer_format_is_refused_naming_both_versions() {
    let env = Env::new();
    env.init();
    let cfg = env.repo.join("config");
    let s = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"version\": 1", "\"version\": 2");
    std::fs::write(&cfg, s).unwrap();
    let o = env.run(&["snapshots"]);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        e.contains("version 2") && e.contains("(1)") && e.contains("upgrade"),
        "{e}"
    );
}

#[test]
fn flipped_byte_in_a_pack_is_detected_and_other_files_restore() {
    let env = Env::new();
    let src = small_source(&env);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    // flip one byte inside the data pack (not the header at the end)
    let packs = files_under(&env.repo.join("packs/data"));
    assert_eq!(packs.len(), 1);
    let mut b = std::fs::read(&packs[0]).unwrap();
    let pos = 2 << 20; // inside three.bin or two.bin
    b[pos] ^= 0x01;
    std::fs::write(&packs[0], &b).unwrap();

    let o = env.run(&["check", "--read-data"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(e.contains("does not match its name"), "{e}");
    assert!(e.contains("authentication failed"), "{e}");
    assert!(
        e.contains("/src/"),
        "check must name the affected file: {e}"
    );

    let target = env.path("r");
    let o = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("file not restored"), "{e}");
    // exactly one of the two big files is damaged; the rest restore byte for byte
    let ok2 = std::fs::read(target.join("src/two.bin")).ok() == Some(random_bytes(2 << 20, 2));
    let ok3 =
        std::fs::read(target.join("src/sub/three.bin")).ok() == Some(random_bytes(3 << 20, 3));
    assert!(
        ok2 ^ ok3,
        "exactly one file should be refused: two ok={ok2}, three ok={ok3}"
    );
    assert_eq!(std::fs::read(target.join("src/one.txt")).unwrap(), b"one\n");
    // the refused file is not left behind as silent garbage
    assert!(ok2 || !target.join("src/two.bin").exists());
    assert!(ok3 || !target.join("src/sub/three.bin").exists());
}

#[test]
fn deleted_or_truncated_index_is_reported() {
    let env = Env::new();
    let src = small_source(&env);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let idx = files_under(&env.repo.join("index"));
    assert_eq!(idx.len(), 1);
    let saved = std::fs::read(&idx[0]).unwrap();

    // truncated
    std::fs::write(&idx[0], &saved[..saved.len() / 2]).unwrap();
    let o = env.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(
        e.contains(&format!(
            "index/{}",
            idx[0].file_name().unwrap().to_str().unwrap()
        )),
        "{e}"
    );
    assert!(e.contains("repair index"), "{e}");
    // the tree pack was listed in the same index: the snapshot's root is named
    assert!(
        e.contains("snapshot ") && e.contains("is not in the index"),
        "affected snapshots must be named: {e}"
    );

    // deleted
    std::fs::remove_file(&idx[0]).unwrap();
    let o = env.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(
        e.contains("directory contents unreadable") && e.contains("is not in the index"),
        "{e}"
    );
    let target = env.path("r");
    let o = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!stderr_of(&o).is_empty());

    // check points at unindexed packs without calling them harmless
    let o = env.run(&["check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("repair index") && out.contains("do not delete"),
        "{out}"
    );

    // repair index rebuilds it from the packs: nothing was lost
    let out = env.ok(&["repair", "index"]);
    assert!(
        out.contains("indexed") && out.contains("in 2 packs"),
        "{out}"
    );
    env.check_ok();
    let target = env.path("r2");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join("src"));
    let _ = saved;
}

#[test]
fn full_disk_fails_cleanly_and_keeps_earlier_snapshots() {
    require_root("mounting a small tmpfs");
    let env = Env::new();
    let mnt = env.path("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let env2 = Env {
        dir: tempfile::tempdir().unwrap(),
        repo: mnt.join("repo"),
    };
    let src = env.path("src");
    write(&src.join("small.bin"), &random_bytes(1 << 20, 1));
    env2.init();
    env2.ok(&["backup", src.to_str().unwrap()]);
    let before = env.path("before");
    copy_tree(&src, &before);
    write(&src.join("big.bin"), &random_bytes(40 << 20, 2));
    let o = env2.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("storage is full") && e.contains("free space"),
        "{e}"
    );
    assert_eq!(env2.snapshot_ids().len(), 1);
    env2.check_ok();
    let r = env.path("r");
    env2.ok(&["restore", "latest", "--target", r.to_str().unwrap()]);
    assert_same_tree(&before, &r.join("src"));
}

#[test]
fn unreadable_source_file_warns_exit_3_and_snapshot_is_usable() {
    require_root("running the backup as another user");
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = small_source(&env);
    write(&src.join("secret.key"), b"root only");
    std::fs::set_permissions(
        src.join("secret.key"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    for p in walk(&src).into_values() {
        if !p.ends_with("secret.key") {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&env.repo).unwrap();
    std::os::unix::fs::chown(&env.repo, Some(65534), Some(65534)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .args(args)
            .env("IRONVAULT_REPO", &env.repo)
            .env("IRONVAULT_PASSWORD", PASSWORD)
            .env("HOME", "/tmp")
            .output()
            .unwrap()
    };
    assert!(as_nobody(&["init"]).status.success());
    let o = as_nobody(&["backup", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(
        e.contains("secret.key: cannot open: Permission denied"),
        "{e}"
    );
    assert!(e.contains("usable but incomplete"), "{e}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Files:  3 new"),
        "a skipped file is not counted as new: {out}"
    );
    let o = as_nobody(&["check", "--read-data"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    // the next run does not count the unreadable file as new again
    let o = as_nobody(&["backup", src.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Files:  0 new, 0 changed, 3 unmodified"));
    let r = env.path("r");
    let o = env.run(&["restore", "latest", "--target", r.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        stderr_of(&o).contains("is incomplete: 1 file could not be read"),
        "{}",
        stderr_of(&o)
    );
    assert!(env.ok(&["snapshots"]).contains("! = incomplete"));
    assert_eq!(
        std::fs::read(r.join("src/sub/three.bin")).unwrap(),
        random_bytes(3 << 20, 3)
    );
    assert!(!r.join("src/secret.key").exists());
}

#[test]
fn two_concurrent_backups_into_one_repository_both_restore() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    for i in 0..30 {
        write(&a.join(format!("x{i}")), &random_bytes(400_000, i));
        // half of b's files share content with a: dedup across concurrent writers
        write(
            &b.join(format!("y{i}")),
            &random_bytes(400_000, if i % 2 == 0 { i } else { 1000 + i }),
        );
    }
    env.init();
    let spawn = |p: &std::path::Path| env.spawn(&["backup", p.to_str().unwrap()]);
    let (ca, cb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert!(oa.status.success(), "{}", stderr_of(&oa));
    assert!(ob.status.success(), "{}", stderr_of(&ob));
    assert_eq!(env.snapshot_ids().len(), 2);
    env.check_ok();
    let out = env.ok(&["snapshots", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for s in v.as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let path = std::path::PathBuf::from(s["paths"][0].as_str().unwrap());
        let r = env.path(&format!("r-{}", &id[..8]));
        env.ok(&["restore", id, "--target", r.to_str().unwrap()]);
        assert_same_tree(&path, &r.join(path.file_name().unwrap()));
    }
}

#[test]
fn file_changing_while_read_is_flagged_warned_and_exit_3() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("steady.txt"), b"steady\n");
    write(&src.join("growing.log"), &random_bytes(96 << 20, 5));
    env.init();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let p = src.join("growing.log");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            // The file grows steadily while it is read: the pace is the point.
            f.write_all(b"log line\n").unwrap();
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    });
    let o = env.run(&["backup", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("growing.log: changed while it was read"), "{e}");
    env.check_ok();
    let r = env.path("r");
    env.ok(&["restore", "latest", "--target", r.to_str().unwrap()]);
    let restored = std::fs::read(r.join("src/growing.log")).unwrap();
    assert!(restored.len() >= 96 << 20);
    assert_eq!(&restored[..96 << 20], &random_bytes(96 << 20, 5)[..]);
    // the next backup reads it again instead of trusting the flagged node
    let out = env.ok(&["backup", src.to_str().unwrap()]);
    assert!(out.contains("1 changed"), "{out}");
}

/// Wait until the repository holds at least `n` data packs.
fn wait_for_packs(env: &Env, n: usize) {
    let complete = || {
        files_under(&env.repo.join("packs/data"))
            .iter()
            .filter(|p| !p.to_string_lossy().contains(".tmp-"))
            .count()
    };
    wait_for(
        &format!("the backup to write {n} packs"),
        std::time::Duration::from_secs(120),
        || complete() >= n,
    );
}

fn data_added(json_out: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(json_out.lines().last().unwrap()).unwrap();
    v["data_added"].as_u64().unwrap()
}

#[test]
fn killed_backup_leaves_a_stale_lock_and_the_rerun_reuses_its_packs() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big"), &random_bytes(200 << 20, 8));
    env.init();
    let mut child = env.spawn(&["backup", src.to_str().unwrap()]);
    wait_for_packs(&env, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let locks = env.repo.join("locks");
    assert_eq!(files_under(&locks).len(), 1);
    let out = env.ok(&["check"]);
    assert!(out.contains("stale lock"), "{out}");
    assert!(out.contains("the next backup reuses those"), "{out}");
    let out = env.ok(&["unlock"]);
    assert!(out.contains("removed locks/"), "{out}");
    assert!(files_under(&locks).is_empty());
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stderr_of(&o).contains("reusing"), "{}", stderr_of(&o));
    let added = data_added(&String::from_utf8_lossy(&o.stdout));
    // at least the 3 complete 16 MiB packs were reused
    assert!(
        added < (200 << 20) - (3 * (16 << 20)),
        "the rerun stored {added} bytes again"
    );
    env.check_ok();
    let r = env.path("r");
    env.ok(&["restore", "latest", "--target", r.to_str().unwrap()]);
    assert_same_tree(&src, &r.join("src"));
}

#[test]
fn interrupted_backup_stops_cleanly_with_exit_130() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big"), &random_bytes(200 << 20, 9));
    env.init();
    let child = env.spawn(&["backup", src.to_str().unwrap()]);
    wait_for_packs(&env, 2);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("stopping at the next safe point"), "{e}");
    let errors: Vec<_> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{e}");
    assert!(
        errors[0].contains("interrupted") && errors[0].contains("reuses"),
        "{e}"
    );
    assert!(
        files_under(&env.repo.join("locks")).is_empty(),
        "the lock must be removed"
    );
    assert!(env.snapshot_ids().is_empty());
    env.check_ok();
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(data_added(&String::from_utf8_lossy(&o.stdout)) < (200 << 20) - (16 << 20));
    env.check_ok();
}

#[test]
fn relative_repository_path_and_bad_restore_target() {
    let env = Env::new();
    let src = small_source(&env);
    let o = Command::new(bin())
        .current_dir(env.dir.path())
        .args(["init", "--repo", "rel-repo"])
        .env("IRONVAULT_PASSWORD", PASSWORD)
        .env("IRONVAULT_STATE_DIR", env.path("state"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let env = Env {
        repo: env.dir.path().join("rel-repo"),
        dir: env.dir,
    };
    env.ok(&["backup", src.to_str().unwrap()]);
    let file = env.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = env.run(&["restore", "latest", "--target", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let e = stderr_of(&o);
    // One error line (besides the line saying which snapshot latest is).
    assert!(e.starts_with("using snapshot "), "{e}");
    assert_eq!(e.lines().count(), 2, "{e}");
    assert!(e.contains("is not a directory"), "{e}");
    let o = env.run(&[
        "restore",
        "nosuchid",
        "--target",
        env.path("t").to_str().unwrap(),
    ]);
    assert!(
        stderr_of(&o).contains("no snapshot nosuchid"),
        "{}",
        stderr_of(&o)
    );
    // a repository path that is a file is "no repository" (exit 10)
    let o = env
        .cmd(&["snapshots", "--repo", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(10), "{}", stderr_of(&o));
}

#[test]
fn repair_snapshots_drops_lost_files_and_check_passes_again() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("small.txt"), b"small");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first_packs = files_under(&env.repo.join("packs/data"));
    // the second backup's new data lands in a pack of its own; lose that pack
    write(&src.join("big.bin"), &random_bytes(2 << 20, 5));
    env.ok(&["backup", src.to_str().unwrap()]);
    let lost: Vec<_> = files_under(&env.repo.join("packs/data"))
        .into_iter()
        .filter(|p| !first_packs.contains(p))
        .collect();
    assert_eq!(lost.len(), 1);
    std::fs::remove_file(&lost[0]).unwrap();
    // the lost pack is noticed even before the index is rebuilt
    let out = env.ok(&["repair", "snapshots", "--dry-run"]);
    assert!(out.contains("/src/big.bin: data missing"), "{out}");
    env.ok(&["repair", "index"]);
    assert_eq!(env.run(&["check"]).status.code(), Some(1));
    let out = env.ok(&["repair", "snapshots", "--dry-run"]);
    assert!(
        out.contains("/src/big.bin: data missing; left out") && out.contains("nothing written"),
        "{out}"
    );
    let out = env.ok(&["repair", "snapshots", "--forget"]);
    assert!(out.contains("1 of 2 snapshots needed repair"), "{out}");
    env.check_ok();
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "repaired"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(t.join("src/small.txt")).unwrap(), b"small");
    assert!(!t.join("src/big.bin").exists());
}

#[test]
fn ambiguous_snapshot_prefix_lists_the_candidates() {
    let env = Env::new();
    let src = env.path("src");
    env.init();
    // 17 snapshots: two must share their first hex digit
    for i in 0..17 {
        write(&src.join("f"), format!("{i}").as_bytes());
        env.ok(&["backup", "-q", src.to_str().unwrap()]);
    }
    let ids = env.snapshot_ids();
    let first = ids
        .iter()
        .map(|i| &i[..1])
        .find(|p| ids.iter().filter(|i| i.starts_with(*p)).count() > 1)
        .unwrap();
    let o = env.run(&["ls", first]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("is ambiguous (matches ") && e.contains("give more characters"),
        "{e}"
    );
}

#[test]
fn a_live_exclusive_lock_stops_a_backup_with_exit_11() {
    let env = Env::new();
    let src = small_source(&env);
    env.init();
    // hold an exclusive lock as repair packs does, through the engine itself
    let backend: std::sync::Arc<dyn ironvault_core::backend::Backend> =
        std::sync::Arc::new(ironvault_core::backend::local::LocalBackend::new(&env.repo));
    let repo =
        ironvault_core::repo::Repository::open(backend.clone(), PASSWORD.as_bytes()).unwrap();
    let lock =
        ironvault_core::repo::lock::Lock::acquire(backend, *repo.master_key(), true).unwrap();
    let o = env.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(11), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("locked by") && e.contains("ironvault unlock"),
        "{e}"
    );
    lock.release().unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.check_ok();
}

#[test]
fn a_backup_after_a_lost_pack_stores_the_data_again() {
    let env = Env::new();
    let src = small_source(&env);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    for p in files_under(&env.repo.join("packs/data")) {
        std::fs::remove_file(p).unwrap();
    }
    // no repair first: the backup notices the lost packs and stores the data again
    let out = env.ok(&["backup", "--force", src.to_str().unwrap()]);
    assert!(!out.contains("Added to the repository: 0 B"), "{out}");
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&src, &t.join("src"));
}
