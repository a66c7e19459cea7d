//! Restore options: include/exclude, SNAPSHOT:PATH, --overwrite, --verify.

use crate::common::*;
use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    walk(dir)
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

fn setup() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("docs/a.txt"), b"a");
    write(&src.join("docs/b.md"), b"b");
    write(&src.join("data/big.bin"), &random_bytes(3 << 20, 1));
    write(&src.join("data/small.bin"), b"small");
    write(&src.join("top.txt"), b"top");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    (env, src)
}

#[test]
fn include_exclude_and_subpath() {
    let (env, src) = setup();
    let t = env.path("t1");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        "*.txt",
    ]);
    assert_eq!(
        names(&t),
        vec!["src", "src/docs", "src/docs/a.txt", "src/top.txt"]
    );
    let t = env.path("t2");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--exclude",
        "/src/data",
    ]);
    assert_eq!(
        names(&t),
        vec![
            "src",
            "src/docs",
            "src/docs/a.txt",
            "src/docs/b.md",
            "src/top.txt"
        ]
    );
    let t = env.path("t3");
    env.ok(&[
        "restore",
        "latest:/src/data",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_eq!(names(&t), vec!["big.bin", "small.bin"]);
    assert_eq!(
        std::fs::read(t.join("big.bin")).unwrap(),
        std::fs::read(src.join("data/big.bin")).unwrap()
    );
    let t = env.path("t4");
    env.ok(&[
        "restore",
        "latest:/src/top.txt",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_eq!(names(&t), vec!["top.txt"]);
    let o = env.run(&[
        "restore",
        "latest:/src/nope",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not in the snapshot"));
}

#[test]
fn overwrite_if_changed_rewrites_only_what_is_wrong() {
    let (env, src) = setup();
    let t = env.path("t");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&src, &t.join("src"));
    // damage one file, truncate another, delete a third: as after a crash mid-restore
    std::fs::write(t.join("src/docs/a.txt"), b"X").unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.join("src/data/big.bin"))
        .unwrap();
    f.set_len(1000).unwrap();
    std::fs::remove_file(t.join("src/top.txt")).unwrap();
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
    ]);
    assert!(out.contains("2 files already right"), "{out}");
    assert_same_tree(&src, &t.join("src"));

    // never keeps what is there; always replaces it
    std::fs::write(t.join("src/docs/b.md"), b"mine").unwrap();
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "never",
    ]);
    assert!(out.contains("5 files kept"), "{out}");
    assert_eq!(std::fs::read(t.join("src/docs/b.md")).unwrap(), b"mine");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(t.join("src/docs/b.md")).unwrap(), b"b");
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "sometimes",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn delete_and_dry_run() {
    let (env, src) = setup();
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    write(&t.join("src/docs/extra.txt"), b"not in the snapshot");
    write(&t.join("src/newdir/x"), b"x");
    std::fs::write(t.join("src/top.txt"), b"changed").unwrap();
    std::fs::remove_file(t.join("src/docs/a.txt")).unwrap();
    let outside = env.path("outside-file");
    std::fs::write(&outside, b"keep me").unwrap();
    std::os::unix::fs::symlink(&outside, t.join("src/link-out")).unwrap();

    let before = names(&t);
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--dry-run",
        "--delete",
        "--overwrite",
        "if-changed",
    ]);
    assert_eq!(names(&t), before, "a dry run changed the target");
    for line in ["+ ", "M ", "- "] {
        assert!(
            out.lines().any(|l| l.starts_with(line)),
            "no {line:?} line in:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("+ {}", t.join("src/docs/a.txt").display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("M {}", t.join("src/top.txt").display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("- {}", t.join("src/newdir").display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("= {}", t.join("src/data/big.bin").display())),
        "{out}"
    );

    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--delete",
        "--overwrite",
        "if-changed",
    ]);
    assert!(out.contains("deleted 3 entries"), "{out}");
    assert_same_tree(&src, &t.join("src"));
    // the symlink was removed, not followed
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
}

#[test]
fn overwrite_policy_applies_to_symlinks_too() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"f");
    std::os::unix::fs::symlink("f", src.join("link")).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    let link = t.join("src/link");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("elsewhere", &link).unwrap();
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "never",
    ]);
    assert_eq!(
        std::fs::read_link(&link).unwrap().to_str().unwrap(),
        "elsewhere"
    );
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
        "--dry-run",
    ]);
    assert!(out.contains(&format!("M {}", link.display())), "{out}");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
    ]);
    assert_eq!(std::fs::read_link(&link).unwrap().to_str().unwrap(), "f");
    // now identical: kept, and reported as such
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
        "--dry-run",
    ]);
    assert!(out.contains(&format!("= {}", link.display())), "{out}");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
        "--verify",
    ]);
    assert!(
        out.contains("restored 0 files") && out.contains("1 file already right"),
        "{out}"
    );
    assert!(out.contains("--overwrite if-changed"), "{out}");
}

#[test]
fn verify_checks_bytes_and_metadata_of_every_file_type() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src, false);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
        "--json",
    ]);
    let summary: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary in {out}"));
    assert_eq!(summary["verified"], true, "{summary}");
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    assert_same_tree(&src, &t.join("src"));

    let t = env.path("t2");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
        "--include",
        "/src/dir",
    ]);
    assert!(
        out.contains(
            "verified: every byte and every piece of metadata restored matches the snapshot"
        ),
        "{out}"
    );
}

/// (type, inode, content or link target) of every path under `root`: what
/// tells whether a restore created, replaced, removed or left an entry.
fn fingerprints(
    root: &Path,
) -> std::collections::BTreeMap<std::path::PathBuf, (char, u64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    walk(root)
        .into_values()
        .map(|p| {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let print = if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                ('l', md.ino(), t.into_os_string().into_encoded_bytes())
            } else if ft.is_dir() {
                ('d', md.ino(), Vec::new())
            } else if ft.is_file() {
                ('f', md.ino(), std::fs::read(&p).unwrap())
            } else {
                ('o', md.ino(), Vec::new())
            };
            (p, print)
        })
        .collect()
}

/// The paths of the `error: PATH: …` lines in `stderr`.
fn error_paths(stderr: &[u8]) -> std::collections::BTreeSet<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .filter_map(|l| l.split_once(": ").map(|(p, _)| p.to_string()))
        .collect()
}

/// Run `restore latest --target t ARGS --dry-run`, then the same restore for
/// real, and assert that the dry run listed exactly what the restore did
/// (created +, replaced M, deleted -, everything else left as it was),
/// reported the same failing paths and exited with the same code.
fn assert_dry_run_tells_the_truth(env: &Env, t: &Path, args: &[&str]) {
    let mut cmd = vec!["restore", "latest", "--target", t.to_str().unwrap()];
    cmd.extend_from_slice(args);
    let before = fingerprints(t);
    let dry = env.run(&[cmd.as_slice(), &["--dry-run"]].concat());
    assert_eq!(fingerprints(t), before, "the dry run changed the target");
    let real = env.run(&cmd);
    let after = fingerprints(t);
    let listing = String::from_utf8_lossy(&dry.stdout);
    let listed: std::collections::BTreeMap<std::path::PathBuf, char> = listing
        .lines()
        .filter(|l| !l.starts_with("dry run:"))
        .filter_map(|l| {
            let (letter, path) = l.split_once(' ')?;
            let letter = match letter {
                "+" | "M" | "=" | "-" => letter.chars().next()?,
                _ => return None,
            };
            Some((path.into(), letter))
        })
        .collect();
    let mut did = std::collections::BTreeMap::new();
    for p in before.keys().chain(after.keys()) {
        let action = match (before.get(p), after.get(p)) {
            (None, Some(_)) => '+',
            // What was below a deleted directory went with it.
            (Some(_), None)
                if p.parent()
                    .is_some_and(|d| before.contains_key(d) && !after.contains_key(d)) =>
            {
                continue
            }
            (Some(_), None) => '-',
            (Some(b), Some(a)) if b != a => 'M',
            _ => '=',
        };
        did.insert(p.clone(), action);
    }
    let context = format!(
        "restore {args:?}\ndry run listed:\n{listing}{}\nrestore said:\n{}{}",
        String::from_utf8_lossy(&dry.stderr),
        String::from_utf8_lossy(&real.stdout),
        String::from_utf8_lossy(&real.stderr)
    );
    for (p, action) in &did {
        // A directory kept or created as it was is listed with `=` or not at all.
        let said = listed.get(p).copied().unwrap_or('=');
        assert_eq!(
            said,
            *action,
            "{}: dry run said {said}, restore did {action}\n{context}",
            p.display()
        );
    }
    for (p, said) in &listed {
        assert!(
            did.contains_key(p) || *said == '=',
            "{}: listed {said} but not in the target\n{context}",
            p.display()
        );
    }
    assert_eq!(
        error_paths(&dry.stderr),
        error_paths(&real.stderr),
        "failing paths differ\n{context}"
    );
    assert_eq!(
        dry.status.code(),
        real.status.code(),
        "exit codes differ\n{context}"
    );
}

/// The dry run and the restore take the same selection and overwrite
/// decisions, including for an entry of another type in the way: a directory
/// where the snapshot has a file or a symlink is not replaced by the restore
/// (reported as an error), so the dry run must not promise to replace it.
#[test]
fn dry_run_lists_what_the_restore_does() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"f");
    std::os::unix::fs::symlink("f", src.join("l")).unwrap();
    write(&src.join("docs/a.txt"), b"a");
    write(&src.join("docs/b.md"), b"b");
    write(&src.join("same.txt"), b"same");
    write(&src.join("old.txt"), b"old");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let cases: &[&[&str]] = &[
        &[],
        &["--overwrite", "if-changed"],
        &["--overwrite", "if-newer"],
        &["--overwrite", "never"],
        &["--delete"],
        &["--delete", "--overwrite", "if-changed"],
        &["--delete", "--overwrite", "never"],
        &["--include", "*.txt", "--delete"],
        &["--exclude", "/src/docs", "--overwrite", "if-changed"],
    ];
    for (i, args) in cases.iter().enumerate() {
        let t = env.path(&format!("t{i}"));
        env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
        let s = t.join("src");
        // A directory in the way of a file and of a symlink.
        std::fs::remove_file(s.join("f")).unwrap();
        write(&s.join("f/inside"), b"mine");
        std::fs::remove_file(s.join("l")).unwrap();
        std::fs::create_dir(s.join("l")).unwrap();
        // A changed file, one the snapshot lacks, a symlink where a file was.
        std::fs::write(s.join("docs/a.txt"), b"changed").unwrap();
        write(&s.join("docs/extra"), b"extra");
        std::fs::remove_file(s.join("old.txt")).unwrap();
        std::os::unix::fs::symlink("elsewhere", s.join("old.txt")).unwrap();
        assert_dry_run_tells_the_truth(&env, &t, args);
    }
}
