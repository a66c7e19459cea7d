//! `ironvault doctor` / `config check --connect`: every repository of the
//! config opened read-only, a line per problem with its fix, exit 1 on any
//! problem, and nothing written anywhere.

use crate::common::plans::*;
use crate::common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Every file and directory under `root` with its size and mtime.
fn listing(root: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(
                e.path().display().to_string(),
                (
                    if m.is_dir() { 0 } else { m.len() },
                    m.mtime(),
                    m.mtime_nsec(),
                ),
            );
        }
    }
    out
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn lines_about<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let tag = format!("repository {name} (");
    out.lines().filter(|l| l.contains(&tag)).collect()
}

#[test]
fn doctor_reports_a_line_per_problem_changes_nothing_and_fails() {
    let p = Plans::new("");
    let d = p.env.dir.path().display().to_string();
    let wrong = p.env.path("wrong.pass");
    write(&wrong, b"not the password\n");
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The repository second with a password file that holds another password.
    p.replace(
        &format!("url = \"{d}/second\"\npassword_file = \"{d}/pass\""),
        &format!(
            "url = \"{d}/second\"\npassword_file = \"{}\"",
            wrong.display()
        ),
    );
    p.add(&format!(
        "[repository.missing]\nurl = \"{d}/nothing-here\"\npassword_file = \"{d}/pass\"\n\
         [repository.offline]\nurl = \"s3:http://127.0.0.1:{}/bucket\"\npassword_file = \"{d}/pass\"\n\
         env = {{ AWS_ACCESS_KEY_ID = \"GKtest\", AWS_SECRET_ACCESS_KEY = \"secret\" }}\n",
        closed_port()
    ));
    // Without --connect the file alone is fine: that is what it checks.
    p.expect(&["config", "check"], 0);

    let before = listing(p.env.dir.path());
    let (out, err) = p.expect(&["config", "check", "--connect"], 1);
    assert_eq!(
        listing(p.env.dir.path()),
        before,
        "the doctor wrote something"
    );
    assert!(
        err.contains("error: 3 problems found"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    let l = lines_about(&out, "local");
    assert_eq!(l.len(), 1, "{out}");
    assert!(l[0].contains(": ok, repository "), "{out}");
    let l = lines_about(&out, "second");
    assert_eq!(l.len(), 1, "{out}");
    assert!(
        l[0].contains("wrong password") && l[0].contains("password_file"),
        "{out}"
    );
    let l = lines_about(&out, "missing");
    assert_eq!(l.len(), 1, "{out}");
    assert!(
        l[0].contains("no repository there") && l[0].contains("ironvault init"),
        "{out}"
    );
    let l = lines_about(&out, "offline");
    assert_eq!(l.len(), 1, "{out}");
    assert!(l[0].contains("cannot reach the storage"), "{out}");
    // Each fix names the config file, not a placeholder.
    assert!(!out.contains("THE_CONFIG"), "{out}");
    assert!(out.contains(&p.cfg.display().to_string()), "{out}");

    // `doctor` is the same check.
    let (again, _) = p.expect(&["doctor"], 1);
    assert_eq!(
        again.lines().filter(|l| l.contains("repository ")).count(),
        out.lines().filter(|l| l.contains("repository ")).count(),
        "{again}"
    );
    assert_eq!(
        listing(p.env.dir.path()),
        before,
        "the doctor wrote something"
    );

    // --json: the same findings for a script.
    let o = p.run(&["config", "check", "--connect", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let bad: Vec<&str> = v["connect"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| r["repository"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["missing", "offline", "second"]);
}

#[test]
fn doctor_reports_a_full_file_system_by_the_threshold() {
    let p = Plans::new("");
    // More free space than any test machine has: the threshold is crossed.
    let (out, _) = p.expect(&["doctor", "--min-free-mib", "1000000000"], 1);
    let l = lines_about(&out, "local");
    assert_eq!(l.len(), 1, "{out}");
    assert!(
        l[0].contains("free on its file system") && l[0].contains("--min-free-mib"),
        "{out}"
    );
    p.expect(&["doctor", "--min-free-mib", "0"], 0);
}

#[test]
fn doctor_passes_a_good_local_and_a_good_s3_repository_and_writes_nothing() {
    let p = Plans::new("");
    let cloud = s3::unique_location("doctor");
    p.init_related(&cloud);
    // Through the logging proxy: every request the doctor makes is seen.
    let proxy = s3::Proxy::start(&s3::endpoint());
    p.add(&format!(
        "[repository.cloud]\nurl = \"{}\"\npassword_file = \"{}\"\n",
        proxy.via(&cloud),
        p.env.path("pass").display()
    ));
    let before = listing(p.env.dir.path());
    let (out, err) = p.expect(&["config", "check", "--connect"], 0);
    assert_eq!(
        listing(p.env.dir.path()),
        before,
        "the doctor wrote something"
    );
    for good in ["local", "second", "cloud"] {
        let l = lines_about(&out, good);
        assert_eq!(l.len(), 1, "{out}\n{err}");
        assert!(l[0].contains(": ok, repository "), "{out}");
    }
    let seen = proxy.take_log();
    assert!(!seen.is_empty(), "the doctor did not reach the server");
    let writes: Vec<_> = seen
        .iter()
        .filter(|s| !matches!(s.method.as_str(), "GET" | "HEAD"))
        .collect();
    assert!(
        writes.is_empty(),
        "the doctor changed the bucket: {writes:?}"
    );
}
