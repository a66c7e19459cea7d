//! Backup options: excludes, marker files, caches, files-from, dry run.

use crate::common::*;

fn listing(env: &Env) -> Vec<String> {
    env.ok(&["ls", "latest"])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn excludes_markers_caches_and_files_from() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"k");
    write(&src.join("skip.tmp"), b"t");
    write(&src.join("Photo.JPG"), b"p");
    write(&src.join("logs/a.log"), b"a");
    write(&src.join("logs/keep.txt"), b"k");
    write(&src.join("build/.nobackup"), b"");
    write(&src.join("build/out.bin"), b"o");
    write(
        &src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache",
    );
    write(&src.join("cache/blob"), b"c");
    write(&src.join("fakecache/CACHEDIR.TAG"), b"not a real tag");
    write(&src.join("fakecache/blob"), b"c");
    let patterns = env.path("patterns");
    std::fs::write(&patterns, "# comment\nlogs/*.log\n").unwrap();
    env.init();
    env.ok(&[
        "backup",
        "--exclude",
        "*.tmp",
        "--iexclude",
        "*.jpg",
        "--exclude-file",
        patterns.to_str().unwrap(),
        "--exclude-if-present",
        ".nobackup",
        "--exclude-caches",
        src.to_str().unwrap(),
    ]);
    let l = listing(&env);
    for present in ["/src/keep.txt", "/src/logs/keep.txt", "/src/fakecache/blob"] {
        assert!(
            l.iter().any(|x| x == present),
            "{present} missing from {l:?}"
        );
    }
    for absent in ["skip.tmp", "Photo.JPG", "a.log", "/src/build", "/src/cache"] {
        assert!(
            !l.iter().any(|x| x.contains(absent)),
            "{absent} not excluded: {l:?}"
        );
    }

    // --files-from adds paths from a list
    let list = env.path("list");
    std::fs::write(&list, format!("# paths\n{}\n", src.join("logs").display())).unwrap();
    env.ok(&["backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(
        listing(&env),
        vec!["/logs", "/logs/a.log", "/logs/keep.txt"]
    );
    let o = env.run(&["backup", "--exclude", "a[", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("exclude pattern \"a[\""));
}

#[test]
fn dry_run_writes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big.bin"), &random_bytes(2 << 20, 1));
    env.init();
    let before: Vec<_> = files_under(&env.repo);
    let out = env.ok(&["backup", "--dry-run", src.to_str().unwrap()]);
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(out.contains("Added to the repository: 2.0 MiB"), "{out}");
    assert_eq!(
        files_under(&env.repo),
        before,
        "a dry run wrote to the repository"
    );
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn one_file_system_keeps_mount_points_empty() {
    require_root("mounting a tmpfs");
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("local.txt"), b"l");
    let mnt = src.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    write(&mnt.join("other-fs.txt"), b"o");
    env.init();
    env.ok(&["backup", "-x", src.to_str().unwrap()]);
    assert_eq!(listing(&env), vec!["/src", "/src/local.txt", "/src/mnt"]);
    env.ok(&["backup", src.to_str().unwrap()]);
    assert!(listing(&env).contains(&"/src/mnt/other-fs.txt".to_string()));
}

#[test]
fn stdin_and_stdin_from_command() {
    use std::io::Write;
    let env = Env::new();
    env.init();
    let data = random_bytes(5 << 20, 7);
    let mut c = env
        .cmd(&["backup", "--stdin", "--stdin-filename", "savf.bin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&data).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(t.join("savf.bin")).unwrap(), data);

    env.ok(&[
        "backup",
        "--stdin-filename",
        "image.mksysb",
        "--stdin-from-command",
        "sh",
        "-c",
        "printf 'system image'",
    ]);
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(t.join("image.mksysb")).unwrap(),
        b"system image"
    );
    let n = env.snapshot_ids().len();
    let o = env.run(&[
        "backup",
        "--stdin-from-command",
        "sh",
        "-c",
        "printf partial; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("failed") && e.contains("no snapshot was written"),
        "{e}"
    );
    assert_eq!(env.snapshot_ids().len(), n);
    env.check_ok();
}

#[test]
fn deep_trees_need_one_directory_descriptor() {
    let env = Env::new();
    let src = env.path("src");
    let mut p = src.clone();
    for i in 0..300 {
        p = p.join(format!("d{i}"));
    }
    write(&p.join("leaf.txt"), b"deep");
    env.init();
    // 300 levels with only 64 descriptors allowed
    let o = std::process::Command::new("prlimit")
        .arg("--nofile=64")
        .arg(bin())
        .args(["backup", src.to_str().unwrap()])
        .env("IRONVAULT_REPO", &env.repo)
        .env("IRONVAULT_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join("src"));
}

#[test]
fn json_mode_prints_status_lines_then_one_summary() {
    let env = Env::new();
    env.init();
    // the stream takes ~1.5 s, so at least one status line (one per second) appears
    let out = env.ok(&[
        "backup",
        "--json",
        "--stdin-from-command",
        "sh",
        "-c",
        "printf start; sleep 1.5; printf end",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{out}");
    let (last, status) = lines.split_last().unwrap();
    assert_eq!(last["message_type"], "summary");
    for s in status {
        assert_eq!(s["message_type"], "status", "{s}");
        assert!(
            s["seconds_elapsed"].is_u64() && s["bytes_done"].is_u64(),
            "{s}"
        );
    }
}
