//! `forget`: the policy engine end to end, and a differential test against
//! `restic forget --dry-run --json` on snapshots taken at the same times.

use crate::common::*;
use std::collections::BTreeSet;
use std::process::Command;

/// Snapshot times (at -03:00, a fixed offset with no daylight saving): month
/// ends, a leap day, ISO week-year boundaries, and late evenings that are
/// already the next day in UTC.
fn times() -> Vec<String> {
    let mut t: Vec<String> = [
        "2019-12-29 12:00:00", // Sunday: ISO week 52 of 2019
        "2019-12-30 09:00:00", // Monday: ISO week 1 of 2020
        "2019-12-31 23:30:00", // Jan 1 in UTC
        "2020-01-01 00:15:00",
        "2020-02-28 22:00:00",
        "2020-02-29 10:00:00", // leap day
        "2020-02-29 23:59:00",
        "2020-03-01 00:00:00",
        "2020-03-31 21:30:00",
        "2020-04-30 12:00:00",
        "2020-12-31 22:00:00",
        "2021-01-03 12:00:00", // Sunday: still ISO week 53 of 2020
        "2021-01-04 12:00:00",
        "2021-06-30 23:00:00",
        "2021-07-01 01:00:00",
        "2022-01-31 12:00:00",
        "2022-02-28 12:00:00",
        "2023-12-31 23:59:59",
        "2024-01-01 00:00:00",
        "2024-02-29 12:00:00",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // Then a dense recent stretch: several a day, hourly twice.
    for d in 1..=20 {
        t.push(format!("2024-03-{d:02} 08:00:00"));
        if d % 3 == 0 {
            t.push(format!("2024-03-{d:02} 20:45:00"));
        }
    }
    t.push("2024-03-20 08:30:00".into());
    t.push("2024-03-20 09:10:00".into());
    t
}

fn rfc3339(local: &str) -> String {
    format!("{}-03:00", local.replace(' ', "T"))
}

/// Instant of an RFC 3339 time, as UTC seconds (both tools write their own formats).
fn instant(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp()
}

fn restic(repo: &std::path::Path, args: &[&str]) -> std::process::Output {
    let o = Command::new("restic")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("TZ", "Etc/GMT+3")
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"))
        .args(args)
        .output()
        .expect("restic (scripts/test.sh installs it)");
    assert!(
        o.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// (kept, removed) instants from restic's forget JSON.
fn restic_sets(out: &[u8]) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let v: serde_json::Value = serde_json::from_slice(out).unwrap();
    let mut keep = BTreeSet::new();
    let mut remove = BTreeSet::new();
    for g in v.as_array().unwrap() {
        for s in g["keep"].as_array().into_iter().flatten() {
            keep.insert(instant(s["time"].as_str().unwrap()));
        }
        for s in g["remove"].as_array().into_iter().flatten() {
            remove.insert(instant(s["time"].as_str().unwrap()));
        }
    }
    (keep, remove)
}

fn ironvault_sets(out: &str) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let mut keep = BTreeSet::new();
    let mut remove = BTreeSet::new();
    for g in v["groups"].as_array().unwrap() {
        for s in g["snapshots"].as_array().unwrap() {
            let t = instant(s["time"].as_str().unwrap());
            if s["keep"].as_bool().unwrap() {
                keep.insert(t);
            } else {
                remove.insert(t);
            }
        }
    }
    (keep, remove)
}

#[test]
fn policies_agree_with_restic_forget_on_the_same_times() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"forget me not\n");
    env.init();
    let rrepo = env.path("restic-repo");
    restic(&rrepo, &["init", "-q"]);
    for t in times() {
        env.ok(&[
            "backup",
            "-q",
            "--host",
            "h",
            "--time",
            &rfc3339(&t),
            src.to_str().unwrap(),
        ]);
        restic(
            &rrepo,
            &[
                "backup",
                "-q",
                "--host",
                "h",
                "--time",
                &t,
                src.to_str().unwrap(),
            ],
        );
    }
    let policies: &[&[&str]] = &[
        &["--keep-last", "5"],
        &["--keep-daily", "7"],
        &["--keep-hourly", "30"],
        &["--keep-weekly", "6"],
        &["--keep-monthly", "12"],
        &["--keep-yearly", "10"],
        &[
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "7",
        ],
        &["--keep-last", "2", "--keep-monthly", "3"],
        &["--keep-within", "10d"],
        &["--keep-within", "1y1m"],
        &["--keep-within-daily", "1m"],
        &["--keep-within-weekly", "2y"],
        &["--keep-within-monthly", "3y2m", "--keep-daily", "3"],
        &["--keep-within-hourly", "2d12h", "--keep-yearly", "2"],
    ];
    for p in policies {
        let mut ra = vec!["forget", "--dry-run", "--json"];
        ra.extend_from_slice(p);
        let r = restic_sets(&restic(&rrepo, &ra).stdout);
        let mut ia = vec!["forget", "--dry-run", "--json"];
        ia.extend_from_slice(p);
        let i = ironvault_sets(&env.ok(&ia));
        assert_eq!(
            r.0.len() + r.1.len(),
            times().len(),
            "{p:?}: restic saw all"
        );
        assert_eq!(i, r, "{p:?}: ironvault (left) and restic (right) differ");
        assert!(
            !r.1.is_empty(),
            "{p:?} removes something, or it tests little"
        );
    }
    // The dry runs changed nothing.
    assert_eq!(env.snapshot_ids().len(), times().len());
}

#[test]
fn forget_removes_reports_and_refuses_a_policy_that_keeps_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x\n");
    env.init();
    for d in 1..=5 {
        env.ok(&[
            "backup",
            "-q",
            "--time",
            &format!("2024-05-0{d}T12:00:00+00:00"),
            src.to_str().unwrap(),
        ]);
    }
    env.ok(&[
        "backup",
        "-q",
        "--tag",
        "release",
        "--time",
        "2024-04-01T12:00:00+00:00",
        src.to_str().unwrap(),
    ]);
    // Nothing to keep: refused, nothing removed.
    let o = env.run(&["forget"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("keeps nothing"), "{e}");
    let o = env.run(&["forget", "--keep-daily", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(env.snapshot_ids().len(), 6);
    // A dry run lists every snapshot with the rule that keeps it.
    let out = env.ok(&[
        "forget",
        "--dry-run",
        "--keep-last",
        "2",
        "--keep-tag",
        "release",
    ]);
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("remove "))
            .count(),
        3,
        "{out}"
    );
    assert!(
        out.contains("last snapshot") && out.contains("tag release"),
        "{out}"
    );
    assert!(
        out.contains("dry run: 3 snapshots would be removed"),
        "{out}"
    );
    assert_eq!(env.snapshot_ids().len(), 6);
    // For real.
    let out = env.ok(&["forget", "--keep-last", "2", "--keep-tag", "release"]);
    assert!(out.contains("removed 3 snapshots"), "{out}");
    assert_eq!(env.snapshot_ids().len(), 3);
    env.check_ok();
    // By id.
    let ids = env.snapshot_ids();
    env.ok(&["forget", &ids[0][..8]]);
    assert_eq!(env.snapshot_ids().len(), 2);
    // Bad durations and group keys say what is expected.
    let o = env.run(&["forget", "--keep-within", "2w"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("y m d h"));
    let o = env.run(&["forget", "--keep-last", "1", "--group-by", "color"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--group-by"));
}
