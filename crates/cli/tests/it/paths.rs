//! Paths as they were backed up (issue 16, an operator coming from restic):
//! `/srv/www/data/app` is accepted wherever the stored path `/data/app` is,
//! a path that is not there suggests the stored one, an --include that
//! matches nothing fails, and every command that resolves `latest` says
//! which snapshot it took.

use crate::common::*;
use std::path::{Path, PathBuf};

/// A repository with one backup of `<scratch>/srv/www/data` (host web1),
/// stored as `/data`. Returns the environment and the backed-up directory.
fn web_backup() -> (Env, PathBuf) {
    let env = Env::new();
    let data = env.path("srv/www/data");
    write(&data.join("app/conf/app.conf"), b"listen 80\n");
    write(&data.join("app/conf/extra.conf"), b"gzip on\n");
    write(&data.join("app/index.html"), b"<html>\n");
    write(&data.join("static/logo.txt"), b"logo\n");
    env.init();
    env.ok(&[
        "backup",
        "--host",
        "web1",
        "--time",
        "2026-01-01T00:00:00Z",
        s(&data),
    ]);
    (env, data)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `p` + `rest`, as a string.
fn under(p: &Path, rest: &str) -> String {
    format!("{}{rest}", p.display())
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn restore_include_takes_the_path_as_it_was_backed_up() {
    let (env, data) = web_backup();
    let id = env.snapshot_ids()[0].clone();
    let t = env.path("t");
    // The command: the path as it was backed up.
    let conf = under(&data, "/app/conf");
    let out = env.ok(&["restore", &id, "--target", s(&t), "--include", &conf]);
    assert_eq!(
        std::fs::read(t.join("data/app/conf/app.conf")).unwrap(),
        b"listen 80\n"
    );
    assert!(t.join("data/app/conf/extra.conf").exists());
    assert!(!t.join("data/app/index.html").exists());
    assert!(!t.join("data/static").exists());
    // data, data/app and data/app/conf were made.
    assert!(out.contains("restored 2 files, 3 directories"), "{out}");
    // Again into the same target: the directories are there already, and
    // the summary counts what was made, not what was walked.
    let out = env.ok(&["restore", &id, "--target", s(&t), "--include", &conf]);
    assert!(out.contains("restored 2 files, 0 directories"), "{out}");
    let v: serde_json::Value = serde_json::from_str(
        env.ok(&[
            "restore",
            &id,
            "--target",
            s(&t),
            "--include",
            &conf,
            "--json",
        ])
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["dirs_restored"], 0);
    assert_eq!(v["files_restored"], 2);

    // The stored path keeps working.
    let t2 = env.path("t2");
    env.ok(&[
        "restore",
        &id,
        "--target",
        s(&t2),
        "--include",
        "/data/app/conf",
    ]);
    assert!(t2.join("data/app/conf/app.conf").exists());
    assert!(!t2.join("data/app/index.html").exists());

    // --exclude with the original path.
    let t3 = env.path("t3");
    env.ok(&["restore", &id, "--target", s(&t3), "--exclude", &conf]);
    assert!(t3.join("data/app/index.html").exists());
    assert!(t3.join("data/static/logo.txt").exists());
    assert!(!t3.join("data/app/conf").exists());

    // SNAP:/PATH with the original path.
    let t4 = env.path("t4");
    env.ok(&[
        "restore",
        &format!("{id}:{}", under(&data, "/app")),
        "--target",
        s(&t4),
    ]);
    assert!(t4.join("conf/app.conf").exists());
    assert!(t4.join("index.html").exists());
    assert!(!t4.join("static").exists());
}

#[test]
fn an_include_that_matches_nothing_fails_and_names_the_stored_path() {
    let (env, _data) = web_backup();
    let id = env.snapshot_ids()[0].clone();
    let t = env.path("t");
    // Half of the original path: neither a stored nor a backed-up path.
    let o = env.run(&[
        "restore",
        &id,
        "--target",
        s(&t),
        "--include",
        "/www/data/app/conf",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("--include pattern /www/data/app/conf matches nothing"),
        "{e}"
    );
    assert!(e.contains("did you mean /data/app/conf?"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // Nothing was made.
    assert!(!t.exists() || files_under(&t).is_empty());
    // The same with a dry run, and with one pattern of two.
    let o = env.run(&[
        "restore",
        &id,
        "--target",
        s(&t),
        "--dry-run",
        "--include",
        "/data/app",
        "--include",
        "nosuchname",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--include pattern nosuchname matches nothing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ls_find_dump_and_diff_take_the_path_as_it_was_backed_up() {
    let (env, data) = web_backup();
    let app = under(&data, "/app");
    // The command: `ls latest /srv/www/data/app`.
    let o = env.run(&["ls", "latest", &app]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(
        listed,
        ["/data/app", "/data/app/conf", "/data/app/index.html"],
        "{listed:?}"
    );
    // The stored path lists the same.
    assert_eq!(env.ok(&["ls", "latest", "/data/app"]), stdout(&o));

    // A path that is neither: the stored path it probably meant.
    let o = env.run(&["ls", "latest", "/www/data/app"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("path /www/data/app is not in the snapshot; did you mean /data/app?"),
        "{e}"
    );
    // After `latest`: how to pick another snapshot.
    assert!(
        e.contains("pick another with --path, --host or --tag"),
        "{e}"
    );

    let found = env.ok(&["find", &under(&data, "/app/conf/*.conf")]);
    assert!(found.contains("/data/app/conf/app.conf"), "{found}");
    assert!(
        found.contains("2 matches in 1 snapshot searched"),
        "{found}"
    );

    let conf = under(&data, "/app/conf/app.conf");
    assert_eq!(env.ok(&["dump", "latest", &conf]), "listen 80\n");

    // A second backup: diff the original path's directory only.
    write(&data.join("app/index.html"), b"<html>v2\n");
    write(&data.join("static/new.txt"), b"new\n");
    env.ok(&[
        "backup",
        "--host",
        "web1",
        "--time",
        "2026-01-02T00:00:00Z",
        s(&data),
    ]);
    let ids = env.snapshot_ids();
    let out = env.ok(&[
        "diff",
        &format!("{}:{app}", ids[0]),
        &format!("latest:{app}"),
    ]);
    assert!(out.contains("M    /data/app/index.html"), "{out}");
    assert!(!out.contains("new.txt"), "{out}");
    assert!(out.contains("0 added, 0 removed, 1 modified"), "{out}");
}

#[test]
fn latest_says_which_snapshot_it_took() {
    let (env, data) = web_backup();
    // Another plan's backup, newer: `latest` is now that one.
    let db = env.path("opt/db");
    write(&db.join("dump.sql"), b"create table t;\n");
    env.ok(&[
        "backup",
        "--host",
        "db1",
        "--time",
        "2026-01-03T00:00:00Z",
        s(&db),
    ]);
    let ids = env.snapshot_ids();
    let (web, dbid) = (&ids[0][..8], &ids[1][..8]);
    let conf = under(&data, "/app/conf/app.conf");

    // The command: it no longer picks another plan's snapshot silently.
    let o = env.run(&["dump", "latest", &conf]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&format!(
            "using snapshot {dbid} of {} on host db1 at 2026-01-03",
            s(&db)
        )),
        "{e}"
    );
    assert!(e.contains(&format!("latest is snapshot {dbid}")), "{e}");
    assert!(
        e.contains("pick another with --path, --host or --tag"),
        "{e}"
    );
    assert!(stdout(&o).is_empty());

    // Picked with --host: it works and says which.
    let o = env.run(&["dump", "latest", "--host", "web1", &conf]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "listen 80\n");
    assert!(
        stderr(&o).contains(&format!(
            "using snapshot {web} of {} on host web1",
            s(&data)
        )),
        "{}",
        stderr(&o)
    );

    // Every command that resolves latest says it, on stderr only.
    for args in [
        vec!["ls", "latest", "--json"],
        vec!["snapshots", "latest", "--json"],
        vec!["find", "--snapshot", "latest", "dump.sql", "--json"],
        vec!["stats", "latest", "--json"],
        vec!["cat", "snapshot", "latest"],
    ] {
        let o = env.run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("using snapshot {dbid} of")),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!stdout(&o).contains("using snapshot"), "{args:?}");
    }
    let t = env.path("t");
    let o = env.run(&["restore", "latest", "--target", s(&t), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("using snapshot {dbid}")));
    for l in stdout(&o).lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    let o = env.run(&["diff", web, "latest"]);
    assert!(
        stderr(&o).contains(&format!("using snapshot {dbid}")),
        "{}",
        stderr(&o)
    );
    // --quiet keeps it quiet.
    let o = env.run(&["--quiet", "dump", "latest", "--host", "web1", &conf]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn backed_up_paths_that_share_names() {
    // Two paths with the same last component: stored as /data and /data-1,
    // each reachable by its original path.
    let env = Env::new();
    let (a, b) = (env.path("a/data"), env.path("b/data"));
    write(&a.join("x"), b"a\n");
    write(&b.join("x"), b"b\n");
    env.init();
    env.ok(&["backup", s(&a), s(&b)]);
    assert_eq!(env.ok(&["dump", "latest", &under(&a, "/x")]), "a\n");
    assert_eq!(env.ok(&["dump", "latest", &under(&b, "/x")]), "b\n");
    assert_eq!(env.ok(&["dump", "latest", "/data-1/x"]), "b\n");
    // An erasure by the original path of the second: that one goes, not the
    // first (the original of /data-1 was once taken for /data-1 itself, so
    // the pattern matched nothing and nothing was erased).
    let out = env.ok(&["rewrite", "--all", "--exclude", &under(&b, "/x")]);
    assert!(out.contains("removed 1 file"), "{out}");
    assert_eq!(env.ok(&["dump", "latest", &under(&a, "/x")]), "a\n");
    let o = env.run(&["dump", "latest", "/data-1/x"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // A path that reads both ways, to two different things, is refused:
    // back up a directory named like the first component of the scratch
    // directory's path, holding that path's rest.
    let env = Env::new();
    let scratch = env.dir.path().to_path_buf();
    let comps: Vec<_> = scratch.components().skip(1).collect();
    let first = comps[0].as_os_str();
    let twin = scratch.join(first);
    let rest: PathBuf = comps[1..].iter().collect();
    write(&twin.join(&rest).join("x/f"), b"twin\n");
    let x = env.path("x");
    write(&x.join("f"), b"x\n");
    env.init();
    env.ok(&["backup", s(&twin), s(&x)]);
    let given = under(&x, "/f");
    let o = env.run(&["dump", "latest", &given]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("names two things in this snapshot"), "{e}");
    assert!(e.contains(" /x/f"), "{e}");
    // Each of the two forms it offers is unambiguous.
    assert_eq!(env.ok(&["dump", "latest", "/x/f"]), "x\n");
    let twin_file = twin.join(&rest).join("x/f");
    assert!(e.contains(s(&twin_file)), "{e}");
    assert_eq!(env.ok(&["dump", "latest", s(&twin_file)]), "twin\n");
}

/// What a restore of snapshot `id` with `args` put under `t`/data, as sorted
/// relative file paths; asserts the exit code.
fn restored(env: &Env, id: &str, t: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["restore", id, "--target", s(t)];
    all.extend_from_slice(args);
    let o = env.run(&all);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    let mut files: Vec<String> = files_under(t)
        .iter()
        .map(|p| p.strip_prefix(t).unwrap().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn patterns_match_the_original_path_however_it_is_spelled() {
    // Each of these spellings of /srv/www/data/app/conf once restored the
    // files it excluded and exited 0 (the exact original path and the stored
    // path worked): upper case with --iexclude, a glob or `.` inside the
    // backed-up part, `**` across it.
    let (env, data) = web_backup();
    let id = env.snapshot_ids()[0].clone();
    let conf = under(&data, "/app/conf");
    let scratch = data.parent().unwrap().parent().unwrap().parent().unwrap();
    let without_conf = ["data/app/index.html", "data/static/logo.txt"];
    let only_conf = ["data/app/conf/app.conf", "data/app/conf/extra.conf"];
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("--iexclude", conf.to_uppercase(), &without_conf),
        (
            "--exclude",
            format!("{}/srv/*/data/app/conf", scratch.display()),
            &without_conf,
        ),
        (
            "--exclude",
            format!("{}/srv/**/conf", scratch.display()),
            &without_conf,
        ),
        (
            "--exclude",
            format!("{}/srv/www/./data/app/conf/", scratch.display()),
            &without_conf,
        ),
        (
            "--exclude",
            format!("{}/srv/{{www,ftp}}/data/app/conf", scratch.display()),
            &without_conf,
        ),
        ("--exclude", "www/data/app/conf".to_string(), &without_conf),
        ("--iexclude", "/DATA/APP/CONF".to_string(), &without_conf),
        ("--iinclude", conf.to_uppercase(), &only_conf),
        (
            "--include",
            format!("{}/srv/*/data/app/conf", scratch.display()),
            &only_conf,
        ),
        (
            "--iinclude",
            format!("{}/SRV/**/CONF/*.conf", scratch.display()),
            &only_conf,
        ),
    ];
    for (i, (flag, pattern, want)) in cases.iter().enumerate() {
        let t = env.path(&format!("t{i}"));
        let got = restored(&env, &id, &t, &[flag, pattern]);
        assert_eq!(got, *want, "{flag} {pattern}");
    }

    // `..` never matches a stored path: refused, nothing restored.
    let t = env.path("t-dotdot");
    let dotdot = format!("{}/srv/www/../www/data/app/conf", scratch.display());
    let o = env.run(&["restore", &id, "--target", s(&t), "--exclude", &dotdot]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("has a '..' component"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(!t.exists() || files_under(&t).is_empty());

    // An exclude that matches nothing is said before the restore, which
    // goes on; the one that matches is not mentioned.
    let t = env.path("t-nothing");
    let o = env.run(&[
        "restore",
        &id,
        "--target",
        s(&t),
        "--exclude",
        &under(&data, "/app/secret"),
        "--iexclude",
        "*.CONF",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        e.contains(&format!(
            "warning: --exclude {} matches nothing in snapshot {} (it leaves nothing out)",
            under(&data, "/app/secret"),
            &id[..8]
        )),
        "{e}"
    );
    assert!(!e.contains("*.CONF"), "{e}");
    assert!(t.join("data/app/index.html").exists());
    assert!(!t.join("data/app/conf/app.conf").exists());

    // find: the same matching.
    let found = env.ok(&["find", "-i", &format!("{}/*.CONF", conf.to_uppercase())]);
    assert!(
        found.contains("2 matches in 1 snapshot searched"),
        "{found}"
    );
}

#[test]
fn a_snapshot_of_the_root_keeps_its_paths() {
    // A backup of "/" (here only /etc/h*): its entries are listed, found,
    // dumped and restored at the paths they had (`/etc/hosts`), not under
    // `//etc` where no path given by hand could reach them.
    let env = Env::new();
    env.init();
    env.ok(&[
        "backup",
        "/",
        "--exclude",
        "/[!e]*",
        "--exclude",
        "/e[!t]*",
        "--exclude",
        "/etc/[!h]*",
    ]);
    let listed = env.ok(&["ls", "latest"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[..2], ["/", "/etc"], "{listed}");
    assert!(lines.contains(&"/etc/hosts"), "{listed}");
    assert!(!listed.contains("//"), "{listed}");
    assert_eq!(env.ok(&["ls", "latest", "/etc/hosts"]).trim(), "/etc/hosts");
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert_eq!(env.ok(&["dump", "latest", "/etc/hosts"]), hosts);
    let found = env.ok(&["find", "/etc/hosts"]);
    assert!(found.contains(" /etc/hosts"), "{found}");
    let o = env.run(&["ls", "latest", "/etc/nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not in the snapshot, which holds / (backed up from /)"),
        "{}",
        stderr(&o)
    );
    let t = env.path("t");
    let got = restored(&env, "latest", &t, &["--include", "/etc/hosts"]);
    assert_eq!(got, ["etc/hosts"]);
    let t = env.path("t2");
    let o = env.run(&[
        "restore",
        "latest:/etc",
        "--target",
        s(&t),
        "--exclude",
        "/etc/hosts",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(t.join("hostname").exists() || t.join("host.conf").exists());
    assert!(!t.join("hosts").exists());
    let out = env.ok(&["diff", "latest", "latest"]);
    assert!(!out.contains("//"), "{out}");
    // --path / (however spelled) picks it, for listing, retention and erasure.
    for p in ["/", "//", "/."] {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["snapshots", "--path", p, "--json"])).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1, "--path {p}");
    }
    let out = env.ok(&[
        "rewrite",
        "--all",
        "--path",
        "/",
        "--exclude",
        "/etc/hosts",
        "-n",
    ]);
    assert!(out.contains("1 snapshot would be rewritten"), "{out}");
    // --exclude / leaves everything out, as on any other snapshot.
    let t = env.path("t3");
    let o = env.run(&["restore", "latest", "--target", s(&t), "--exclude", "/"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("matches nothing"), "{}", stderr(&o));
    assert!(!t.exists() || files_under(&t).is_empty());
}

#[test]
fn a_pattern_above_a_restored_directory_covers_all_of_it() {
    // SNAPSHOT:/PATH with an --exclude naming that directory or one above
    // it once warned "matches nothing" and restored everything (with
    // --delete, over the target's files).
    let (env, data) = web_backup();
    let id = env.snapshot_ids()[0].clone();
    let srv = data.parent().unwrap().parent().unwrap();
    for p in [s(srv), "/data", "www", "/"] {
        let t = env.path("t");
        write(&t.join("app/index.html"), b"mine\n");
        write(&t.join("app/extra"), b"mine\n");
        let o = env.run(&[
            "restore",
            &format!("{id}:/data"),
            "--target",
            s(&t),
            "--exclude",
            p,
            "--delete",
        ]);
        assert_eq!(o.status.code(), Some(0), "{p}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("matches nothing"),
            "{p}: {}",
            stderr(&o)
        );
        assert_eq!(
            std::fs::read(t.join("app/index.html")).unwrap(),
            b"mine\n",
            "{p}"
        );
        assert!(t.join("app/extra").exists(), "{p}");
        assert!(!t.join("static").exists(), "{p}");
        std::fs::remove_dir_all(&t).unwrap();
    }
    // An --include naming it selects all of it.
    let t = env.path("t-inc");
    let got = restored(&env, &format!("{id}:/data/app"), &t, &["--include", "www"]);
    assert_eq!(got, ["conf/app.conf", "conf/extra.conf", "index.html"]);
}

#[test]
fn patterns_are_literal_and_may_name_a_directory_above_a_backed_up_path() {
    let (env, data) = web_backup();
    write(&data.join("app/#secret"), b"s1\n");
    write(&data.join("app/secret "), b"s2\n");
    write(&data.join("app/secret"), b"s3\n");
    env.ok(&["backup", "--host", "web1", s(&data)]);
    let id = env.snapshot_ids().last().unwrap().clone();
    let srv = data.parent().unwrap().parent().unwrap();
    // A directory above the backed-up path, absolute or by name: the whole
    // backed-up path is left out (it matched nothing and everything was
    // restored).
    for p in [s(srv).to_string(), "www".to_string(), "/".to_string()] {
        let t = env.path(&format!("t-{}", p.replace('/', "_")));
        let o = env.run(&["restore", &id, "--target", s(&t), "--exclude", &p]);
        assert_eq!(o.status.code(), Some(0), "{p}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("matches nothing"),
            "{p}: {}",
            stderr(&o)
        );
        assert!(!t.join("data").exists(), "{p}");
    }
    let t = env.path("t-inc");
    let got = restored(&env, &id, &t, &["--include", "www"]);
    assert_eq!(got.len(), 7, "{got:?}");
    // '#' starts a name (comments are for exclude files only), a trailing
    // space belongs to the name, and an empty pattern is refused.
    let t = env.path("t-lit");
    let got = restored(
        &env,
        &id,
        &t,
        &["--exclude", "#secret", "--exclude", "secret "],
    );
    assert!(got.contains(&"data/app/secret".to_string()), "{got:?}");
    assert!(
        !got.iter()
            .any(|f| f.ends_with("#secret") || f.ends_with("secret ")),
        "{got:?}"
    );
    let found = env.ok(&["find", "#secret"]);
    assert!(found.contains("1 match"), "{found}");
    for flag in ["--include", "--exclude"] {
        let o = env.run(&[
            "restore",
            &id,
            "--target",
            s(&env.path("t-empty")),
            flag,
            "",
        ]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("an empty pattern matches nothing"),
            "{}",
            stderr(&o)
        );
    }

    // rewrite: the directory above erases everything under it in the
    // snapshots holding it; a pattern that matched nothing beside one that
    // did is warned about.
    let other = env.path("other");
    write(&other.join("keep.txt"), b"k\n");
    env.ok(&["backup", s(&data), s(&other)]);
    let o = env.run(&[
        "rewrite",
        "latest",
        "--exclude",
        s(srv),
        "--exclude",
        "/no/such/thing",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(stdout(&o).contains("removed 7 files"), "{}", stdout(&o));
    assert!(
        e.contains("warning: --exclude /no/such/thing matches nothing in the selected snapshots"),
        "{e}"
    );
    assert!(!e.contains(&format!("--exclude {} ", s(srv))), "{e}");
    let listed = env.ok(&["ls", "latest"]);
    assert!(!listed.contains("/data"), "{listed}");
    assert!(listed.contains("/other/keep.txt"), "{listed}");
    env.ok(&["check"]);
}

#[test]
fn the_root_is_backed_up_alone() {
    // "/" beside another path stored that path under a name "/" has too,
    // and a restore wrote one over the other.
    let env = Env::new();
    env.init();
    let other = env.path("home/u/etc");
    write(&other.join("shadow"), b"EVIL\n");
    let o = env.run(&["backup", "/", s(&other), "--exclude", "/[!e]*"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(&format!("/ already holds {}: back up / alone", s(&other))),
        "{e}"
    );
    assert!(env.snapshot_ids().is_empty());
}
