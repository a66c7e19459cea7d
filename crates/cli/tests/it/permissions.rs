//! A local repository and the cache are readable by their owner only:
//! every file 0600 and every directory 0700 that ironvault creates, under
//! any umask (another local user who copies a key file can guess the
//! password offline).

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Run `c` under umask `mask` (0 lets every bit through); it must succeed.
fn ok_under_umask(mut c: std::process::Command, mask: libc::mode_t) {
    // SAFETY: umask is async-signal-safe and only affects the child.
    unsafe {
        c.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Everything under `root` (itself included) whose mode is not 0700 for a
/// directory or 0600 for a file.
fn not_private(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            bad.push(format!("{} {mode:04o}", p.display()));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    bad
}

#[test]
fn repository_files_are_private_whatever_the_umask() {
    for mask in [0o000, 0o022] {
        let env = Env::new();
        let src = env.path("src");
        write(&src.join("a"), &random_bytes(300_000, 1));
        write(&src.join("b"), b"small");
        let s = src.to_str().unwrap();
        let none = Vec::<String>::new();
        ok_under_umask(env.cmd(&["init"]), mask);
        assert_eq!(not_private(&env.repo), none, "init, umask {mask:03o}");
        ok_under_umask(env.cmd(&["backup", s]), mask);
        write(&src.join("a"), &random_bytes(300_000, 2));
        ok_under_umask(env.cmd(&["backup", s]), mask);
        assert_eq!(not_private(&env.repo), none, "backup, umask {mask:03o}");
        // prune writes new packs and index files.
        ok_under_umask(env.cmd(&["forget", "--keep-last", "1", "--prune"]), mask);
        assert_eq!(not_private(&env.repo), none, "prune, umask {mask:03o}");
        // A copy into another local repository (its own init and key).
        let second = env.path("second");
        let from = env.repo.to_str().unwrap().to_string();
        for args in [
            ["init", "--from-repo", &from],
            ["copy", "--from-repo", &from],
        ] {
            let mut c = env.cmd(&args);
            c.env("IRONVAULT_REPO", &second)
                .env("IRONVAULT_FROM_PASSWORD", PASSWORD);
            ok_under_umask(c, mask);
        }
        assert_eq!(not_private(&second), none, "copy, umask {mask:03o}");
        // The cache directory holds which key opened each repository.
        assert_eq!(
            not_private(&env.path("cache")),
            none,
            "cache, umask {mask:03o}"
        );
    }
}
