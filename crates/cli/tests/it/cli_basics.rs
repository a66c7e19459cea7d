//! Password sources, the init prompt, and related repositories.

use crate::common::*;
use std::process::Command;

#[test]
fn password_file_and_command_work_and_empty_is_refused() {
    let env = Env::new();
    let pwf = env.path("pw");
    std::fs::write(&pwf, format!("{PASSWORD}\nsecond line ignored\n")).unwrap();
    let st = env
        .cmd(&["init", "--password-file", pwf.to_str().unwrap()])
        .env_remove("IRONVAULT_PASSWORD")
        .status()
        .unwrap();
    assert!(st.success());
    // the same password through the environment and a command
    env.ok(&["snapshots"]);
    let o = env
        .cmd(&[
            "snapshots",
            "--password-command",
            &format!("echo '{PASSWORD}'"),
        ])
        .env_remove("IRONVAULT_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A failing command is named by its option, not echoed: it may hold a
    // secret, and the agent keeps error lines in its history and alerts.
    let o = env
        .cmd(&[
            "snapshots",
            "--password-command",
            "false # s3cret-in-command",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "the password command (--password-command or IRONVAULT_PASSWORD_COMMAND) failed"
        ) && !err.contains("s3cret"),
        "{err}"
    );
    let o = env
        .cmd(&["snapshots"])
        .env("IRONVAULT_PASSWORD", "")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty password"));
    // no terminal and no password: a clear message, not a hang
    let o = env
        .cmd(&["snapshots"])
        .env_remove("IRONVAULT_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no password given"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn init_prompts_twice_on_a_terminal() {
    let env = Env::new();
    // `script` gives the command a real pseudo-terminal; we type into it.
    let run = |input: &str| {
        let cmd = format!("{} init --repo {}", bin().display(), env.repo.display());
        let mut c = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("IRONVAULT_PASSWORD")
            .env_remove("IRONVAULT_REPO")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script (util-linux)");
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        for line in input.lines() {
            // Typed one line at a time, as a person does: kept as a sleep,
            // the prompt goes to the terminal, not to a pipe we could watch.
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        }
        drop(stdin);
        let o = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = run("one\ntwo");
    assert!(out.contains("do not match"), "{out}");
    assert!(!env.repo.join("config").exists());
    let out = run(&format!("{PASSWORD}\n{PASSWORD}"));
    assert!(out.contains("enter the password again"), "{out}");
    assert!(out.contains("created ironvault repository"), "{out}");
    env.ok(&["snapshots"]);
}

#[test]
fn related_repositories_share_ids_but_not_keys() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), &random_bytes(100_000, 1));
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let related = env.path("related");
    let unrelated = env.path("unrelated");
    let mk = |repo: &std::path::Path, from: Option<&std::path::Path>| {
        let mut c = env.cmd(&["init", "--repo", repo.to_str().unwrap()]);
        if let Some(f) = from {
            c.args(["--from-repo", f.to_str().unwrap()])
                .env("IRONVAULT_FROM_PASSWORD", PASSWORD);
        }
        c.env("IRONVAULT_PASSWORD", "another password");
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    mk(&related, Some(&env.repo));
    mk(&unrelated, None);
    let tree_of = |repo: &std::path::Path| {
        let o = env
            .cmd(&[
                "backup",
                "--json",
                "--repo",
                repo.to_str().unwrap(),
                src.to_str().unwrap(),
            ])
            .env("IRONVAULT_PASSWORD", "another password")
            .output()
            .unwrap();
        assert!(o.status.success());
        let o = env
            .cmd(&["snapshots", "--json", "--repo", repo.to_str().unwrap()])
            .env("IRONVAULT_PASSWORD", "another password")
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["tree"].as_str().unwrap().to_string()
    };
    let out = env.ok(&["snapshots", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let original = v[0]["tree"].as_str().unwrap().to_string();
    assert_eq!(
        tree_of(&related),
        original,
        "related repositories must produce the same ids"
    );
    assert_ne!(
        tree_of(&unrelated),
        original,
        "unrelated repositories must not"
    );
    // each has its own key: the original's password does not open the related one
    let o = env
        .cmd(&["snapshots", "--repo", related.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12));
}

#[test]
fn parent_and_force_choose_what_is_read_again() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), &random_bytes(100_000, 1));
    write(&src.join("b"), &random_bytes(100_000, 2));
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = env.snapshot_ids()[0].clone();
    let out = env.ok(&["backup", "--force", src.to_str().unwrap()]);
    assert!(
        out.contains("Files:  2 new, 0 changed, 0 unmodified"),
        "--force reads everything: {out}"
    );
    assert!(
        out.contains("Added to the repository: 0 B") || out.contains("KiB in"),
        "{out}"
    );
    let out = env.ok(&["backup", "--parent", &first[..8], src.to_str().unwrap()]);
    assert!(
        out.contains(&format!("using parent snapshot {}", &first[..8])),
        "{out}"
    );
    assert!(out.contains("0 new, 0 changed, 2 unmodified"), "{out}");
    // another path set has no automatic parent
    let other = env.path("other");
    write(&other.join("c"), b"c");
    let out = env.ok(&["backup", other.to_str().unwrap()]);
    assert!(!out.contains("using parent"), "{out}");
    let o = env.run(&["backup", "--parent", "ffffffff", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no snapshot ffffffff"));
}

#[test]
fn verbose_says_what_is_done_and_quiet_says_nothing() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    env.init();
    let o = env.run(&["backup", "-v", src.to_str().unwrap()]);
    assert!(o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("opened repository") && e.contains("with key"),
        "{e}"
    );
    assert!(e.contains("packs written"), "{e}");
    // -vv lists every file read: new ones, then changed ones
    write(&src.join("b"), b"b");
    let o = env.run(&["backup", "-vv", src.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.lines()
            .any(|l| l.starts_with("new") && l.ends_with("/src/b")),
        "{e}"
    );
    write(&src.join("a"), b"changed a");
    let o = env.run(&["backup", "-vv", src.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.lines()
            .any(|l| l.starts_with("modified") && l.ends_with("/src/a")),
        "{e}"
    );
    assert!(!e.contains("/src/b"), "unchanged files are not listed: {e}");
    let o = env.run(&["backup", "-q", src.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    assert_eq!(
        env.run(&["backup", "-q", "-v", src.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn progress_line_on_a_terminal_only() {
    let env = Env::new();
    env.init();
    // ~1.5 s of backup: at least two redraws of the progress line
    let args = "backup --stdin-from-command sh -c 'printf data; sleep 1.5'";
    let cmd = format!("{} {args}", bin().display());
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("IRONVAULT_REPO", &env.repo)
        .env("IRONVAULT_PASSWORD", PASSWORD)
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(
        tty.contains("\r\x1b[2K[0:01]") && tty.contains("B/s"),
        "{tty:?}"
    );
    assert!(tty.contains("snapshot") && tty.contains("saved"), "{tty:?}");
    // not a terminal: no progress, no escape codes
    let o = env.run(&[
        "backup",
        "--stdin-from-command",
        "sh",
        "-c",
        "printf data; sleep 1.5",
    ]);
    assert!(o.status.success());
    let all = [o.stdout, o.stderr].concat();
    assert!(!all.contains(&0x1b), "{}", String::from_utf8_lossy(&all));
}
