//! `--help` (a command's own options first, repository and global flags
//! apart, none a command does not take), an empty IRONVAULT_CONFIG,
//! completions, the man page and `version`.

use crate::common::*;
use std::process::{Command, Output};

fn ironvault(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("IRONVAULT_REPO")
        .env_remove("IRONVAULT_CONFIG")
        .output()
        .unwrap()
}

fn help(args: &[&str]) -> String {
    let mut a = args.to_vec();
    a.push("--help");
    let o = ironvault(&a);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Where the line that lists `flag` starts in a help text (not a mention
/// of it in another option's description).
fn flag_line(text: &str, flag: &str) -> Option<usize> {
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        let t = l.trim_start();
        let listed = t.starts_with(flag)
            || (t.starts_with('-') && t.get(4..).is_some_and(|r| r.starts_with(flag)));
        if listed {
            return Some(at);
        }
        at += l.len();
    }
    None
}

/// Where a heading line starts in a help text.
fn heading(text: &str, h: &str) -> Option<usize> {
    text.find(&format!("\n{h}:\n"))
}

#[test]
fn help_puts_the_commands_own_options_first_and_the_global_ones_apart() {
    let h = help(&["backup"]);
    let own = heading(&h, "Options").expect(&h);
    let repo = heading(&h, "Repository options").expect(&h);
    let global = heading(&h, "Global options").expect(&h);
    assert!(own < repo && repo < global, "{h}");
    // --exclude is backup's own; --repo and --json are not.
    let exclude = flag_line(&h, "--exclude").expect(&h);
    assert!(own < exclude && exclude < repo, "{h}");
    let r = flag_line(&h, "--repo <REPO>").expect(&h);
    assert!(repo < r && r < global, "{h}");
    assert!(flag_line(&h, "--json").expect(&h) > global, "{h}");
    // An env-provided option is not shown as required on the usage line.
    let usage = h.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(!usage.contains("--repo"), "{usage}");
}

#[test]
fn commands_without_a_repository_do_not_list_repository_flags() {
    for args in [
        &["status"][..],
        &["config", "check"],
        &["agent"],
        &["history"],
        &["doctor"],
    ] {
        let h = help(args);
        for flag in ["--repo", "--password-file", "--cacert", "--no-cache"] {
            assert!(
                flag_line(&h, flag).is_none(),
                "{args:?} --help lists {flag}:\n{h}"
            );
        }
        assert!(heading(&h, "Repository options").is_none(), "{h}");
        assert!(flag_line(&h, "--config <FILE>").is_some(), "{args:?}:\n{h}");
    }
    // config check --connect is its own option.
    assert!(help(&["config", "check"]).contains("--connect"));
    // Hidden is not refused: IRONVAULT_REPO may be set for other commands.
    let o = Command::new(bin())
        .args([
            "status",
            "--repo",
            "/nowhere",
            "--config",
            "/nonexistent/ironvault.toml",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
}

#[test]
fn an_empty_ironvault_config_is_unset() {
    let o = Command::new(bin())
        .arg("status")
        .env("IRONVAULT_CONFIG", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // Not clap's "a value is required": the default config is looked for.
    assert!(!err.contains("a value is required"), "{err}");
    assert!(err.contains("/etc/ironvault/ironvault.toml"), "{err}");
    assert_ne!(o.status.code(), Some(2), "{err}");
}

#[test]
fn a_password_command_in_the_environment_is_not_shown_by_help() {
    let o = Command::new(bin())
        .args(["snapshots", "--help"])
        .env("IRONVAULT_PASSWORD_COMMAND", "echo s3cret")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("--password-command"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
}

#[test]
fn completions_are_valid_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ironvault(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&o.stdout);
        // fish writes a long flag as `-l repo`.
        let repo = if shell == "fish" { "-l repo" } else { "--repo" };
        for word in ["backup", "doctor", repo] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let o = ironvault(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ironvault.bash");
    write(&f, &o.stdout);
    let st = Command::new("bash").arg("-n").arg(&f).status().unwrap();
    assert!(st.success(), "bash -n rejects the completion script");
    // Loaded, it completes subcommands.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}; COMP_WORDS=(ironvault doc); COMP_CWORD=1; _ironvault ironvault doc ironvault; echo \"${{COMPREPLY[@]}}\"",
            f.display()
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("doctor"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_man_page_renders() {
    let o = ironvault(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.contains(".TH ironvault 1"), "{page}");
    assert!(page.contains("backup"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let o = ironvault(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for page in ["ironvault.1", "ironvault-backup.1", "ironvault-doctor.1"] {
        assert!(dir.path().join(page).exists(), "{page} not written");
    }
    // With man(1) on the machine, it formats the page.
    if let Ok(o) = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("ironvault.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
    {
        if o.status.success() {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("ironvault"), "{text}");
        }
    }
}

#[test]
fn version_prints_the_format_version_and_target() {
    let o = ironvault(&["version"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("ironvault {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let format = ironvault_core::format::FORMAT_VERSION;
    assert!(
        out.contains(&format!("repository format version {format}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("target {}-", std::env::consts::ARCH)),
        "{out}"
    );
    let o = ironvault(&["version", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], format);
}
