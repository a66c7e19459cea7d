//! Locks against wrong clocks and removal (format.md §9): a backup on a host
//! whose clock is 25 minutes slow keeps its data while a prune runs, since
//! lock ages are judged by the storage's clock; prune refuses to run on a
//! host whose clock is off by more than the documented bound; a backup whose
//! lock is removed under it stops cleanly instead of writing it again.
//! Wrong clocks come from libfaketime (Debian's faketime package, which
//! scripts/test.sh installs), so the binary runs unchanged.

use crate::common::s3;
use crate::common::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// `args` as run on a host whose wall clock is `offset` off ("-25m", "+6m").
fn on_skewed_host(env: &Env, offset: &str, args: &[&str]) -> Command {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (scripts/test.sh does)"
    );
    let mut c = env.cmd(args);
    c.env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", offset)
        // Only the wall clock is off: time since boot, and the times the
        // storage gives the files it writes, stay the machine's.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("NO_FAKE_STAT", "1");
    c
}

fn newest_tagged(env: &Env, tag: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", tag])).unwrap();
    v.as_array()
        .unwrap()
        .last()
        .map(|s| s["id"].as_str().unwrap().to_string())
}

fn restore_tagged(env: &Env, tag: &str, expected: &Path) {
    let snap = newest_tagged(env, tag).unwrap_or_else(|| panic!("no snapshot tagged {tag}"));
    let t = env.path(&format!("restored-{tag}"));
    env.ok(&["restore", &snap, "--target", t.to_str().unwrap()]);
    assert_same_tree(expected, &t.join(expected.file_name().unwrap()));
}

/// A backup B on a host 25 minutes slow has loaded the index (it will
/// reuse the blobs of a forgotten snapshot) when a prune that would delete
/// them starts on a host 6 minutes fast: within the 10 minutes the format
/// allows between a host and the storage, yet 31 minutes ahead of B's
/// clock, so by the clocks B's fresh lock looks stale. Prune must wait for
/// it; B then either succeeds with its data intact or fails cleanly.
fn slow_backup_during_prune(env: &Env) {
    env.init();
    let src = env.path("src");
    let x = random_bytes(3 << 20, 25);
    write(&src.join("x"), &x);
    write(&src.join("y"), b"y\n");
    env.ok(&["backup", "-q", "--tag", "old", src.to_str().unwrap()]);
    let old = newest_tagged(env, "old").unwrap();
    std::fs::remove_file(src.join("x")).unwrap();
    env.ok(&["backup", "-q", "--tag", "kept", src.to_str().unwrap()]);
    env.ok(&["forget", &old]);

    let b_src = env.path("b");
    write(&b_src.join("x-again"), &x);
    let b = env.spawn_paused_cmd(
        on_skewed_host(
            env,
            "-25m",
            &["backup", "-q", "--tag", "B", b_src.to_str().unwrap()],
        ),
        "backup-index-loaded",
    );
    let mut p = on_skewed_host(env, "+6m", &["prune", "--json", "--max-unused", "0%"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until it waits for B's lock, or ends without waiting.
    let mut err = std::io::BufReader::new(p.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    let waited = loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            break false;
        }
        seen.push(line.trim_end().to_string());
        if line.contains("waiting for 1 lock") {
            break true;
        }
    };
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        rest
    });
    let b_status = b.resume();
    let out = p.wait_with_output().unwrap();
    let rest = drain.join().unwrap();
    assert!(out.status.success(), "prune failed: {seen:?} {rest}");
    // Whatever happened, nothing a snapshot needs is gone.
    env.check_ok();
    restore_tagged(env, "kept", &src);
    if b_status.success() {
        restore_tagged(env, "B", &b_src);
    } else {
        assert_eq!(
            newest_tagged(env, "B"),
            None,
            "a failed backup left a snapshot"
        );
    }
    assert!(
        waited,
        "prune did not wait for the lock of the backup on the slow host: {seen:?}"
    );
    assert!(b_status.success(), "the slow backup failed: {b_status:?}");
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn a_backup_on_a_host_25_minutes_slow_keeps_its_data_while_prune_runs() {
    slow_backup_during_prune(&Env::new());
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn a_backup_on_a_host_25_minutes_slow_keeps_its_data_while_an_s3_prune_runs() {
    slow_backup_during_prune(&Env::with_repo(&s3::unique_location("slowclock")));
}

/// What prune would see: the dry run's report (the same while nothing
/// changes), and for a local repository every object.
fn state(env: &Env) -> (serde_json::Value, Vec<std::path::PathBuf>) {
    let mut report: serde_json::Value =
        serde_json::from_str(&env.ok(&["prune", "--dry-run", "--json"])).unwrap();
    let o = report.as_object_mut().unwrap();
    o.remove("seconds");
    o.remove("storage");
    let mut files = files_under(&env.repo);
    files.sort();
    (report, files)
}

/// Prune refuses on a host whose clock is 15 minutes off the storage's, in
/// either direction, with one line saying so, and changes nothing; with
/// the clock right it runs.
fn prune_refuses_a_skewed_clock(env: &Env) {
    env.init();
    let src = env.path("src");
    write(&src.join("a"), &random_bytes(1 << 20, 15));
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    write(&src.join("a"), &random_bytes(1 << 20, 16));
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    env.ok(&["forget", "--keep-last", "1"]);
    let before = state(env);
    for (offset, word) in [("+15m", "ahead of"), ("-15m", "behind")] {
        let o = on_skewed_host(env, offset, &["prune", "--max-unused", "0%"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        // The skew outside the time of the write: 15 minutes, give or
        // take the second the write took.
        let minutes: u64 = err
            .split("this host's clock is ")
            .nth(1)
            .and_then(|r| r.split(" min").next())
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        assert!((14..=15).contains(&minutes), "{err}");
        assert!(err.contains(&format!("s {word} the storage's")), "{err}");
        assert!(err.contains("NTP"), "{err}");
        assert_eq!(state(env), before, "a refused prune changed the repository");
    }
    // 6 minutes off is within the bound.
    let o = on_skewed_host(env, "+6m", &["prune", "--json", "--max-unused", "0%"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(state(env), before, "prune freed nothing");
    env.check_ok();
    let t = env.path("restored");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join("src"));
}

#[test]
fn prune_refuses_to_run_on_a_host_whose_clock_is_off() {
    prune_refuses_a_skewed_clock(&Env::new());
}

#[test]
fn prune_refuses_to_run_on_a_host_whose_clock_is_off_from_the_s3_servers() {
    prune_refuses_a_skewed_clock(&Env::with_repo(&s3::unique_location("skew")));
}

/// `unlock --remove-all` while a backup runs: the backup does not write
/// its lock again but stops before any further index file or snapshot,
/// with one line saying why; the repository checks, and the next backup
/// stores everything.
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn a_backup_whose_lock_is_removed_stops_cleanly() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for i in 0..4 {
        write(&src.join(format!("f{i}")), &random_bytes(2 << 20, 40 + i));
    }
    let mut b = env.cmd(&["backup", "-q", src.to_str().unwrap()]);
    b.stderr(Stdio::piped());
    let b = env.spawn_paused_cmd(b, "backup-index-loaded");
    let removed = env.ok(&["unlock", "--remove-all"]);
    assert!(removed.starts_with("removed locks/"), "{removed}");
    let out = b.resume_with_output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("vanished") && err.contains("unlock"), "{err}");
    assert!(
        files_under(&env.repo.join("locks")).is_empty(),
        "the lock was written again"
    );
    assert!(env.snapshot_ids().is_empty());
    env.check_ok();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    env.check_ok();
    let t = env.path("restored");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join("src"));
}
