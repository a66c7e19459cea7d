//! A restore never leaves its target: symlinks planted at any level of the
//! target (for a full restore, --include, SNAPSHOT:/PATH, --delete and
//! --dry-run) and a directory swapped for a symlink or moved away while the
//! restore runs are never followed. Also: a damaged blob leaves the file
//! already there as it was, a killed restore leaves nothing readable by
//! others, a dry run says what the restore then does, and --no-special.

use crate::common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Everything about a tree a restore could change through a followed
/// symlink: each entry (the root too) with its type, mode, owners, mtime and
/// content or link target.
fn fingerprint(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut all: Vec<(Vec<u8>, PathBuf)> = walk(root).into_iter().collect();
    all.push((b".".to_vec(), root.to_path_buf()));
    for (rel, p) in all {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let what = if md.is_file() {
            format!("{:?}", std::fs::read(&p).unwrap())
        } else if md.is_symlink() {
            format!("-> {:?}", std::fs::read_link(&p).unwrap())
        } else {
            String::new()
        };
        let line = format!(
            "{:o} {}:{} {}.{} {what}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            md.mtime_nsec()
        );
        out.insert(rel, line);
    }
    out
}

/// A directory outside the target that a restore following a symlink would
/// write into, delete from or change: names like the snapshot's, and more.
fn make_outside(p: &Path) {
    for d in ["a", "b", "c", "b/c"] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    for f in ["f", "g", "x", "extra.txt", "b/c/f", "c/f"] {
        std::fs::write(p.join(f), b"outside, keep me").unwrap();
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o751)).unwrap();
    let mut all: Vec<PathBuf> = walk(p).into_values().collect();
    all.push(p.to_path_buf());
    for q in all {
        set_times(&q, 1_234_567_890, 0);
    }
}

fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write(&src.join("a/b/c/f"), b"secret\n");
    write(&src.join("a/b/g"), b"g\n");
    write(&src.join("a/x"), b"x\n");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    src
}

/// A fresh target with real directories down to `level` (relative), and at
/// `level` a symlink to `outside` (or, at the file, to a file in it).
fn plant(t: &Path, level: &str, outside: &Path, is_file: bool) {
    let at = t.join(level);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    let to = if is_file {
        outside.join("f")
    } else {
        outside.to_path_buf()
    };
    std::os::unix::fs::symlink(to, &at).unwrap();
}

/// (name, snapshot, extra arguments, levels with a symlink, where the file lands)
type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], &'a str);

#[test]
fn planted_symlinks_at_every_level_are_replaced_never_followed() {
    let env = Env::new();
    source(&env);
    let full = ["src", "src/a", "src/a/b", "src/a/b/c", "src/a/b/c/f"];
    let sub = ["b", "b/c", "b/c/f"];
    let cases: [Case; 5] = [
        ("full", "latest", &[], &full, "src/a/b/c/f"),
        (
            "include",
            "latest",
            &["--include", "/src/a/b/c/f"],
            &full,
            "src/a/b/c/f",
        ),
        ("subpath", "latest:/src/a", &[], &sub, "b/c/f"),
        ("delete", "latest", &["--delete"], &full, "src/a/b/c/f"),
        (
            "include+delete",
            "latest",
            &["--delete", "--include", "/src/a/b"],
            &full,
            "src/a/b/c/f",
        ),
    ];
    let mut n = 0;
    for (what, snap, extra, levels, file) in cases {
        for (i, level) in levels.iter().enumerate() {
            n += 1;
            let (t, outside) = (env.path(&format!("t{n}")), env.path(&format!("out{n}")));
            make_outside(&outside);
            let before = fingerprint(&outside);
            plant(&t, level, &outside, i == levels.len() - 1);
            let mut args = vec!["restore", snap, "--target", t.to_str().unwrap()];
            args.extend_from_slice(extra);
            env.ok(&args);
            assert_eq!(
                fingerprint(&outside),
                before,
                "{what}: a symlink at {level} led the restore outside the target"
            );
            assert_eq!(std::fs::read(t.join(file)).unwrap(), b"secret\n", "{what}");
            let mut p = t.clone();
            for part in Path::new(file).components() {
                p.push(part);
                assert!(
                    !std::fs::symlink_metadata(&p).unwrap().is_symlink(),
                    "{what}: {} is still a symlink",
                    p.display()
                );
            }

            // The dry run of the same: changes nothing, lists the symlink as
            // replaced and everything below it as created, never what is
            // behind it.
            let (t, outside) = (env.path(&format!("d{n}")), env.path(&format!("dout{n}")));
            make_outside(&outside);
            plant(&t, level, &outside, i == levels.len() - 1);
            let target_before = fingerprint(&t);
            args[3] = t.to_str().unwrap();
            args.extend_from_slice(&["--dry-run", "--overwrite", "if-changed"]);
            if !args.contains(&"--delete") {
                args.push("--delete");
            }
            let out = env.ok(&args);
            assert_eq!(fingerprint(&outside), before, "{what} --dry-run");
            assert_eq!(fingerprint(&t), target_before, "{what} --dry-run");
            let link = t.join(level);
            assert!(
                out.contains(&format!("M {}\n", link.display())),
                "{what}: {level}:\n{out}"
            );
            let below = format!("{}/", link.display());
            for line in out.lines().filter(|l| l.contains(&below)) {
                assert!(line.starts_with("+ "), "{what}: {level}: {line}\n{out}");
            }
        }
    }
}

/// `restore` started with a pause point and its output captured.
fn start_paused(env: &Env, args: &[&str], point: &str) -> (std::process::Child, PathBuf) {
    let go = env.path(&format!("go-{point}"));
    let _ = std::fs::remove_file(&go);
    let reached = PathBuf::from(format!("{}.reached", go.display()));
    let _ = std::fs::remove_file(&reached);
    let child = env
        .cmd(args)
        .env("IRONVAULT_PAUSE", format!("{point}={}", go.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&reached);
    (child, go)
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
fn a_directory_swapped_or_moved_out_mid_restore_gets_nothing() {
    let env = Env::new();
    source(&env);
    // swap: src/a becomes a symlink to a directory outside; move: src/a is
    // moved outside the target itself (it keeps the restore's descriptors).
    for swap in [true, false] {
        let (t, outside) = (
            env.path(&format!("t-{swap}")),
            env.path(&format!("out-{swap}")),
        );
        make_outside(&outside);
        let before = fingerprint(&outside);
        let (child, go) = start_paused(
            &env,
            &["restore", "latest", "--target", t.to_str().unwrap()],
            "restore-file-write",
        );
        // The planner made src/a/b before it handed out a file in it.
        let moved = if swap {
            let moved = t.join("moved");
            std::fs::rename(t.join("src/a"), &moved).unwrap();
            std::os::unix::fs::symlink(&outside, t.join("src/a")).unwrap();
            moved
        } else {
            let moved = env.path("moved-out");
            std::fs::rename(t.join("src/a"), &moved).unwrap();
            moved
        };
        std::fs::write(&go, b"").unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "swap={swap}: {err}");
        if swap {
            assert_eq!(fingerprint(&outside), before, "wrote through the symlink");
            assert!(
                err.contains("replaced by a symlink") && err.contains("src/a"),
                "{err}"
            );
        } else {
            assert!(err.contains("removed or moved"), "{err}");
        }
        // No file was put into the directory where it is now, and the
        // temporary files written there are gone.
        let left: Vec<_> = walk(&moved).into_values().filter(|p| p.is_file()).collect();
        assert!(left.is_empty(), "swap={swap}: {left:?}");
        assert!(err.contains("file not restored"), "{err}");
        let _ = std::fs::remove_dir_all(&moved);
    }
}

#[test]
fn a_damaged_blob_leaves_the_file_already_there() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("data.bin"), &random_bytes(1 << 20, 1));
    write(&src.join("ok.txt"), b"fine\n");
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    // an older version of the file, as a restore over a live system finds it
    let older = random_bytes(1 << 20, 2);
    std::fs::write(t.join("src/data.bin"), &older).unwrap();
    std::fs::remove_file(t.join("src/ok.txt")).unwrap();
    let packs = files_under(&env.repo.join("packs/data"));
    assert_eq!(packs.len(), 1);
    let mut b = std::fs::read(&packs[0]).unwrap();
    b[1 << 19] ^= 1;
    std::fs::write(&packs[0], &b).unwrap();
    for policy in ["if-changed", "always"] {
        let o = env.run(&[
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
            "--overwrite",
            policy,
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{policy}: {err}");
        assert!(
            err.contains("file not restored (what was there is left as it was)"),
            "{err}"
        );
        assert_eq!(std::fs::read(t.join("src/data.bin")).unwrap(), older);
        assert_eq!(std::fs::read(t.join("src/ok.txt")).unwrap(), b"fine\n");
        let names: Vec<_> = std::fs::read_dir(t.join("src"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "a temporary file was left: {names:?}");
    }
}

/// A hard link someone put at a file's name, to a file outside the target
/// with the same content, is replaced: the outside file keeps its owner and
/// mode even under --overwrite if-changed, which leaves right files in place.
#[test]
fn a_planted_hard_link_is_replaced_not_changed() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"same content\n");
    std::fs::set_permissions(src.join("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    let outside = env.path("outside");
    let o = outside.join("f");
    write(&o, b"same content\n");
    std::fs::set_permissions(&o, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_times(&o, 1_234_567_890, 0);
    std::fs::remove_file(t.join("src/f")).unwrap();
    std::fs::hard_link(&o, t.join("src/f")).unwrap();
    let before = fingerprint(&outside);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
        "if-changed",
    ]);
    let md = std::fs::metadata(&o).unwrap();
    assert_eq!((md.nlink(), fingerprint(&outside)), (1, before));
    assert_same_tree(&src, &t.join("src"));
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
fn a_killed_restore_leaves_nothing_readable_by_others() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..4 {
        write(&src.join(format!("d{i}/e/f{i}")), &random_bytes(100_000, i));
    }
    for p in walk(&src).into_values() {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    let (mut child, _go) = start_paused(
        &env,
        &["restore", "latest", "--target", t.to_str().unwrap()],
        "restore-file-written",
    );
    // As in a power cut: no cleanup runs.
    child.kill().unwrap();
    child.wait().unwrap();
    let entries = walk(&t);
    let mut with_data = 0;
    for (rel, p) in &entries {
        let md = std::fs::symlink_metadata(p).unwrap();
        assert_eq!(
            md.mode() & 0o077,
            0,
            "{} is {:o} after a kill",
            String::from_utf8_lossy(rel),
            md.mode() & 0o7777
        );
        with_data += usize::from(md.is_file() && md.len() > 0);
    }
    assert!(with_data > 0, "no file had data yet: {entries:?}");
    // The next restore puts everything right and removes what the killed one left.
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join("src"));
}

/// What a dry run lists as kept is left as it is by the restore that
/// follows; what it lists as replaced or created is written.
#[test]
fn the_dry_run_says_what_the_restore_does() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src, false);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    std::fs::write(t.join("src/small.txt"), b"changed").unwrap();
    std::fs::remove_file(t.join("src/link-rel")).unwrap();
    std::fs::remove_dir_all(t.join("src/dir/nested")).unwrap();
    std::os::unix::fs::symlink("elsewhere", t.join("src/dir/nested")).unwrap();
    write(&t.join("src/dir/new.txt"), b"not in the snapshot");
    let base = ["restore", "latest", "--target", t.to_str().unwrap()];
    let opts = ["--overwrite", "if-changed", "--delete"];
    let dry = env.ok(&[&base[..], &opts, &["--dry-run"]].concat());
    // (inode, type, ctime): an inode number can be used again at once.
    let inode = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .map(|m| (m.ino(), m.mode() & libc::S_IFMT, m.ctime(), m.ctime_nsec()))
    };
    let listed: Vec<_> = dry
        .lines()
        .filter_map(|l| {
            let (a, p) = l.split_once(' ')?;
            let p = PathBuf::from(OsStr::from_bytes(p.as_bytes()));
            p.starts_with(&t)
                .then(|| (a.chars().next().unwrap(), p.clone(), inode(&p)))
        })
        .collect();
    assert!(listed.iter().any(|(a, ..)| *a == '='), "{dry}");
    env.ok(&[&base[..], &opts].concat());
    for (action, p, before) in &listed {
        let after = inode(p);
        match action {
            '=' => assert_eq!(
                after.map(|a| (a.0, a.1)),
                before.map(|b| (b.0, b.1)),
                "listed as kept, replaced: {}",
                p.display()
            ),
            'M' => assert!(
                after.is_some() && after != *before,
                "listed as replaced, left: {}",
                p.display()
            ),
            '+' => assert!(
                after.is_some(),
                "listed as created, missing: {}",
                p.display()
            ),
            '-' => assert!(after.is_none(), "listed as deleted, left: {}", p.display()),
            _ => panic!("{dry}"),
        }
    }
    assert_same_tree(&src, &t.join("src"));
}

#[test]
fn no_special_skips_devices_and_drops_privileges() {
    require_root("creating device nodes and file capabilities");
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("tool"), b"#!/bin/sh\n");
    std::fs::set_permissions(src.join("tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    write(&src.join("group-tool"), b"#!/bin/sh\n");
    std::fs::set_permissions(
        src.join("group-tool"),
        std::fs::Permissions::from_mode(0o2750),
    )
    .unwrap();
    write(&src.join("ping"), b"#!/bin/sh\n");
    // VFS_CAP_REVISION_2 with the effective flag, permitting CAP_NET_RAW (13).
    let cap = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(src.join("ping"), "security.capability", &cap).unwrap();
    xattr::set(src.join("ping"), "user.note", b"kept").unwrap();
    let c = std::ffi::CString::new(src.join("null").as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid path; mknod has no memory-safety preconditions.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(r, 0);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);

    let t = env.path("t");
    let dry = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--no-special",
        "--dry-run",
    ]);
    assert!(!dry.contains("null"), "{dry}");
    let out = env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--no-special",
        "--verify",
    ]);
    assert!(
        out.contains("--no-special: skipped 1 device node, dropped setuid/setgid bits from 2 entries and security.capability from 1 file"),
        "{out}"
    );
    assert!(out.contains("verified:"), "{out}");
    assert!(std::fs::symlink_metadata(t.join("src/null")).is_err());
    let mode = |p: &str| std::fs::metadata(t.join(p)).unwrap().mode() & 0o7777;
    assert_eq!((mode("src/tool"), mode("src/group-tool")), (0o755, 0o750));
    assert_eq!(
        xattr::get(t.join("src/ping"), "security.capability").unwrap(),
        None
    );
    assert_eq!(
        xattr::get(t.join("src/ping"), "user.note").unwrap(),
        Some(b"kept".to_vec())
    );
    // Without it, all of it comes back.
    let t = env.path("t2");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join("src"));
    assert_eq!(
        xattr::get(t.join("src/ping"), "security.capability").unwrap(),
        Some(cap.to_vec())
    );
}
