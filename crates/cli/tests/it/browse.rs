//! Browsing: snapshots filters and grouping, ls, stats.

use crate::common::*;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap()
}

#[test]
fn snapshots_filters_latest_and_group_by() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    write(&a.join("x"), b"x");
    write(&b.join("y"), b"y");
    env.init();
    env.ok(&[
        "backup",
        "--host",
        "h1",
        "--tag",
        "daily",
        "--time",
        "2026-01-01T00:00:00Z",
        a.to_str().unwrap(),
    ]);
    env.ok(&[
        "backup",
        "--host",
        "h1",
        "--tag",
        "daily,db",
        "--time",
        "2026-01-02T00:00:00Z",
        a.to_str().unwrap(),
    ]);
    env.ok(&[
        "backup",
        "--host",
        "h2",
        "--time",
        "2026-01-03T00:00:00Z",
        b.to_str().unwrap(),
    ]);
    let count = |args: &[&str]| {
        json(&env.ok(&[&["snapshots", "--json"], args].concat()))
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--host", "h1"]), 2);
    assert_eq!(count(&["--tag", "db"]), 1);
    assert_eq!(count(&["--tag", "daily"]), 2);
    assert_eq!(count(&["--tag", "daily,db"]), 1);
    assert_eq!(count(&["--path", b.to_str().unwrap()]), 1);
    assert_eq!(count(&["--latest", "1"]), 1);
    let v = json(&env.ok(&["snapshots", "--json", "--group-by", "host", "--latest", "1"]));
    let groups = v.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["group_key"]["hostname"], "h1");
    assert_eq!(
        groups[0]["snapshots"][0]["time"],
        "2026-01-02T00:00:00+00:00"
    );
    let o = env.run(&["snapshots", "--group-by", "colour"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("use host, paths and/or tags"));
}

#[test]
fn ls_lists_paths_long_and_json_and_refuses_missing_paths() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("top.txt"), b"hello");
    write(&src.join("dir/inner.txt"), b"inner");
    std::os::unix::fs::symlink("top.txt", src.join("link")).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let all = env.ok(&["ls", "latest"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        lines,
        vec![
            "/src",
            "/src/dir",
            "/src/dir/inner.txt",
            "/src/link",
            "/src/top.txt"
        ]
    );
    let top = env.ok(&["ls", "latest", "/src"]);
    assert_eq!(
        top.lines().collect::<Vec<_>>(),
        vec!["/src", "/src/dir", "/src/link", "/src/top.txt"]
    );
    let rec = env.ok(&["ls", "latest", "/src", "--recursive"]);
    assert!(rec.contains("/src/dir/inner.txt"));
    let long = env.ok(&["ls", "--long", "latest", "src/link"]);
    assert!(
        long.starts_with("lrwxrwxrwx") && long.contains("/src/link -> top.txt"),
        "{long}"
    );
    let js = env.ok(&["ls", "--json", "latest", "/src/top.txt"]);
    let node: serde_json::Value = serde_json::from_str(js.lines().nth(1).unwrap()).unwrap();
    assert_eq!(node["size"], 5);
    assert_eq!(node["type"], "file");
    let o = env.run(&["ls", "latest", "/src/nope"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("path /src/nope is not in the snapshot"), "{e}");
}

#[test]
fn stats_reports_dedup_and_counts() {
    let env = Env::new();
    let src = env.path("src");
    let data = random_bytes(3 << 20, 4);
    write(&src.join("a.bin"), &data);
    write(&src.join("copy.bin"), &data); // identical content: deduplicated
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["backup", src.to_str().unwrap()]);
    let v = json(&env.ok(&["stats", "--json"]));
    assert_eq!(v["snapshots_count"], 2);
    assert_eq!(v["total_file_count"], 4);
    assert_eq!(v["total_size"], 4 * (3 << 20));
    let raw = v["total_uncompressed_size"].as_u64().unwrap();
    assert!((3 << 20..(3 << 20) + 100_000).contains(&raw), "{raw}");
    assert!(v["dedup_ratio"].as_f64().unwrap() > 3.9);
    let one = json(&env.ok(&["stats", "--json", "latest"]));
    assert_eq!(one["snapshots_count"], 1);
    assert!(env.ok(&["stats"]).contains("Deduplication ratio:"));
}

#[test]
fn diff_shows_added_removed_modified_type_and_metadata_changes() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("same.txt"), b"same");
    write(&src.join("edit.txt"), b"before");
    write(&src.join("gone.txt"), b"gone");
    write(&src.join("chmod.txt"), b"chmod");
    write(&src.join("becomes-dir"), b"file");
    write(&src.join("sub/deep.txt"), b"deep");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("edit.txt"), b"after!").unwrap();
    std::fs::remove_file(src.join("gone.txt")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.join("chmod.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_file(src.join("becomes-dir")).unwrap();
    write(&src.join("becomes-dir/x"), b"x");
    write(&src.join("sub/new.txt"), b"new");
    env.ok(&["backup", src.to_str().unwrap()]);
    let ids = env.snapshot_ids();
    let out = env.ok(&["diff", &ids[0][..8], &ids[1][..8]]);
    for line in [
        "M    /src/edit.txt",
        "-    /src/gone.txt",
        "U    /src/chmod.txt",
        "T    /src/becomes-dir",
        "+    /src/becomes-dir/x",
        "+    /src/sub/new.txt",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    assert!(
        !out.contains("same.txt") && !out.contains("deep.txt"),
        "{out}"
    );
    let js = env.ok(&["diff", "--json", &ids[0], &ids[1]]);
    let last: serde_json::Value = serde_json::from_str(js.lines().last().unwrap()).unwrap();
    assert_eq!(last["added"], 2);
    assert_eq!(last["removed"], 1);
}

#[test]
fn find_across_snapshots_and_cat_objects() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("etc/app.conf"), b"v1");
    write(&src.join("etc/other.txt"), b"x");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    write(&src.join("etc/APP2.CONF"), b"v2");
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.ok(&["find", "*.conf"]);
    assert!(
        out.contains("/src/etc/app.conf") && !out.contains("APP2"),
        "{out}"
    );
    assert!(out.contains("2 matches in 2 snapshots"), "{out}");
    let out = env.ok(&["find", "-i", "*.conf"]);
    assert!(out.contains("3 matches"), "{out}");
    let v: serde_json::Value = serde_json::from_str(
        env.ok(&["find", "--json", "/src/etc/*.txt"])
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["matches"][0]["path"], "/src/etc/other.txt");

    let cfg: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "config"])).unwrap();
    assert_eq!(cfg["version"], 1);
    assert_eq!(cfg["id_key"], "(secret, not shown)");
    let snap: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "snapshot", "latest"])).unwrap();
    let tree: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "tree", snap["tree"].as_str().unwrap()])).unwrap();
    assert_eq!(tree["nodes"][0]["name"], "src");
    let idx = files_under(&env.repo.join("index"));
    let name = idx[0].file_name().unwrap().to_str().unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "index", &name[..10]])).unwrap();
    assert!(!index["packs"].as_array().unwrap().is_empty());
    let o = env.run(&["cat", "nonsense"]);
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("use config, snapshot, tree, index, key or pack"));
}

#[test]
fn dump_file_and_directory_as_tar() {
    let env = Env::new();
    let src = env.path("src");
    let big = random_bytes(3 << 20, 9);
    write(&src.join("big.bin"), &big);
    write(&src.join("sub/small.txt"), b"small");
    std::os::unix::fs::symlink("big.bin", src.join("link")).unwrap();
    use std::os::unix::ffi::OsStrExt;
    write(
        &src.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")),
        b"latin",
    );
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let o = env.run(&["dump", "latest", "/src/big.bin"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, big);
    let tarfile = env.path("src.tar");
    let o = env.run(&["dump", "latest", "/src"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&tarfile, &o.stdout).unwrap();
    let x = env.path("x");
    std::fs::create_dir(&x).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tarfile)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(x.join("src/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(x.join("src/sub/small.txt")).unwrap(),
        b"small"
    );
    assert_eq!(
        std::fs::read_link(x.join("src/link"))
            .unwrap()
            .to_str()
            .unwrap(),
        "big.bin"
    );
    let o = env.run(&["dump", "latest", "/src/missing"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..3000 {
        write(&src.join(format!("some-longer-file-name-{i:05}.txt")), b"x");
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let mut c = env
        .cmd(&["ls", "--json", "latest"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = c.stdout.take().unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    out.read_exact(&mut first).unwrap();
    drop(out); // like `| head -c 16`
    let o = c.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!e.contains("panicked"), "{e}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
        "{:?}",
        o.status
    );
}

#[test]
fn latest_with_filters_picks_the_newest_matching_snapshot_for_restore_ls_and_dump() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for (host, tag, content, time) in [
        ("db1", "plan:erp", "erp-old", "2026-01-01T00:00:00Z"),
        ("db1", "plan:erp", "erp-new", "2026-01-02T00:00:00Z"),
        ("db2", "plan:erp", "db2", "2026-01-03T00:00:00Z"),
        ("db1", "plan:web", "web", "2026-01-04T00:00:00Z"),
    ] {
        write(&src.join("f.txt"), content.as_bytes());
        env.ok(&[
            "backup",
            "--host",
            host,
            "--tag",
            tag,
            "--time",
            time,
            src.to_str().unwrap(),
        ]);
    }
    let target = env.path("out");
    env.ok(&[
        "restore",
        "latest",
        "--tag",
        "plan:erp",
        "--host",
        "db1",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(target.join("src/f.txt")).unwrap(),
        "erp-new"
    );
    let out = env.ok(&["dump", "latest", "--host", "db2", "/src/f.txt"]);
    assert_eq!(out, "db2");
    let out = env.ok(&["dump", "latest", "/src/f.txt"]);
    assert_eq!(out, "web");
    let out = env.ok(&["ls", "latest", "--tag", "plan:web", "/src"]);
    assert!(out.contains("/src/f.txt"), "{out}");
    let o = env.run(&[
        "restore",
        "latest",
        "--host",
        "db9",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: no snapshot matches the filters (of 4 snapshots)"),
        "{err}"
    );
}

#[test]
fn names_that_would_drive_the_terminal_are_printed_escaped_and_json_keeps_them() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let src = env.path("src");
    // ESC [ 2 J clears the screen, ESC ] 0 ; … BEL sets the window title;
    // a newline would fake a second entry.
    let evil = "evil\x1b[2J\x1b]0;pwned\x07\nfake-entry";
    write(&src.join("ok.txt"), b"1");
    env.init();
    env.ok(&[
        "backup",
        "--host",
        "host\x1b[31m",
        "--tag",
        "t\u{9b}1m",
        src.to_str().unwrap(),
    ]);
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(evil.as_bytes())), b"2").unwrap();
    env.ok(&["backup", "--host", "host\x1b[31m", src.to_str().unwrap()]);
    let shown = "evil\\x1b[2J\\x1b]0;pwned\\x07\\nfake-entry";
    let raw_control = |out: &str| {
        out.chars()
            .any(|c| c.is_control() && c != '\n' || c == '\u{9b}')
    };
    let ids = env.snapshot_ids();
    for (args, want) in [
        (vec!["ls", "latest"], format!("/src/{shown}")),
        (vec!["ls", "--long", "latest"], format!(" /src/{shown}")),
        (vec!["find", "evil*"], format!(" /src/{shown}")),
        (vec!["diff", &ids[0], &ids[1]], format!("+    /src/{shown}")),
        (vec!["snapshots"], "host\\x1b[31m".to_string()),
        (vec!["snapshots"], "t\\u{9b}1m".to_string()),
    ] {
        let out = env.ok(&args);
        assert!(out.contains(&want), "{args:?} shows no {want:?}:\n{out}");
        assert!(
            !raw_control(&out),
            "{args:?} prints a control character:\n{out:?}"
        );
        assert!(!out.lines().any(|l| l == "fake-entry"), "{args:?}:\n{out}");
    }
    // Also the header on standard error, and the group key.
    let o = env.run(&["ls", "latest", "/src/ok.txt"]);
    assert!(!raw_control(&String::from_utf8_lossy(&o.stderr)));
    let out = env.ok(&["snapshots", "--group-by", "host"]);
    assert!(out.contains("group hostname=\"host\\u001b[31m\""), "{out}");
    assert!(!raw_control(&out), "{out:?}");
    // --json keeps the exact names.
    let names: Vec<String> = env
        .ok(&["ls", "--json", "latest"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    assert!(names.iter().any(|n| n == evil), "{names:?}");
    let snaps = json(&env.ok(&["snapshots", "--json"]));
    assert_eq!(snaps[0]["hostname"], "host\x1b[31m");
    assert_eq!(snaps[0]["tags"][0], "t\u{9b}1m");
}
