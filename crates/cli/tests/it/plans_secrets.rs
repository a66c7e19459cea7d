//! What plans do with secrets: a password_command never reaches a command
//! line, the advice, the history or the log; a stream source does not
//! inherit the repository's credentials; a config or password file that
//! other users could change is refused.

use crate::common::plans::*;
use crate::common::*;
use std::os::unix::fs::PermissionsExt;

const MARKER: &str = "s3cret-in-the-command";

/// Plans whose repository `second` is opened by a password_command that
/// records the command line of the `ironvault` that runs it.
fn with_password_command(plans: &str) -> Plans {
    let p = Plans::new(plans);
    let pass = p.env.path("pass");
    let argv = p.env.path("argv.log");
    p.replace(
        &format!(
            "url = \"{}\"\npassword_file = \"{}\"",
            p.env.path("second").display(),
            pass.display()
        ),
        &format!(
            "url = \"{}\"\npassword_command = \"tr '\\\\0' ' ' < /proc/$PPID/cmdline >> {}; echo >> {1}; cat {} # {MARKER}\"",
            p.env.path("second").display(),
            argv.display(),
            pass.display()
        ),
    );
    p
}

/// Every error the history holds, runs and steps.
fn history_errors(p: &Plans) -> String {
    let h = p.history();
    let q = |sql: &str| -> String {
        h.query_row(sql, [], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .unwrap_or_default()
    };
    q("SELECT group_concat(error, ' | ') FROM runs")
        + &q("SELECT group_concat(error, ' | ') FROM steps")
}

#[test]
fn a_password_command_stays_off_command_lines_advice_and_the_history() {
    let src_dir = tempfile::tempdir().unwrap();
    write(&src_dir.path().join("a.txt"), b"a\n");
    let p = with_password_command(&format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"second\", \"local\"]\n",
        src_dir.path().display()
    ));
    // Backup into second (its password command), copy from it (the same
    // command as the copy's source), listings of both.
    let (out, err) = p.expect(&["run", "files"], 0);
    let argv = std::fs::read_to_string(p.env.path("argv.log")).unwrap();
    assert!(
        argv.contains(" backup ") && argv.contains(" copy "),
        "{argv}"
    );
    assert!(!argv.contains(MARKER), "a command line shows it:\n{argv}");
    assert!(
        !out.contains(MARKER) && !err.contains(MARKER),
        "{out}\n{err}"
    );
    // second is gone: the advice says how to create it, naming the variable
    // to set and the config, not the command.
    let second = p.env.path("second");
    std::fs::rename(&second, p.env.path("second-away")).unwrap();
    let (out, err) = p.expect(&["run", "files"], 1);
    let advice = format!(
        "if it is new, create it (with IRONVAULT_PASSWORD_COMMAND set to the password_command of repository second in {}) with:\n    ironvault --repo {} init\n",
        p.cfg.display(),
        second.display()
    );
    assert_eq!(err.matches(&advice).count(), 1, "{err}");
    std::fs::rename(p.env.path("second-away"), &second).unwrap();
    // The command fails: its error names the option, not the command.
    p.replace(&format!("# {MARKER}"), &format!("; exit 3 # {MARKER}"));
    let (out2, err2) = p.expect(&["run", "files"], 1);
    assert!(
        out2.contains(
            "the password command (--password-command or IRONVAULT_PASSWORD_COMMAND) failed"
        ),
        "{out2}"
    );
    let history = history_errors(&p);
    // The history keeps what failed, short; the advice went to the run's output.
    assert!(
        history.contains("repository second is not there"),
        "{history}"
    );
    for text in [&out, &err, &out2, &err2, &history] {
        assert!(!text.contains(MARKER), "{text}");
    }
}

#[test]
fn a_stream_command_inherits_neither_credentials_nor_password_sources() {
    let p = with_password_command(
        "[plan.envdump]\ncommand = \"env\"\nfilename = \"env.txt\"\ncopies = [\"second\"]\n",
    );
    // The repository's S3 credentials from its env, and some from the
    // environment of `run` itself.
    p.replace(
        "# s3cret-in-the-command\"",
        "# s3cret-in-the-command\"\nenv = { AWS_ACCESS_KEY_ID = \"AKID-FROM-ENV\", AWS_SECRET_ACCESS_KEY = \"secret-from-env\", AWS_REGION = \"eu-west-3\" }",
    );
    let o = p
        .cmd(&["run", "envdump"])
        .env("AWS_SESSION_TOKEN", "session-from-the-agent")
        .env("AWS_PROFILE", "profile-from-the-agent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let second = p.env.path("second");
    let dumped = p
        .env
        .cmd(&["dump", "latest", "/env.txt"])
        .env("IRONVAULT_REPO", &second)
        .output()
        .unwrap();
    assert!(dumped.status.success());
    let env = String::from_utf8_lossy(&dumped.stdout);
    assert!(env.contains("AWS_REGION=eu-west-3"), "{env}");
    for secret in [
        "AKID-FROM-ENV",
        "secret-from-env",
        "session-from-the-agent",
        "profile-from-the-agent",
        "IRONVAULT_PASSWORD",
        MARKER,
    ] {
        assert!(!env.contains(secret), "the stream saw {secret}:\n{env}");
    }
}

#[test]
fn a_config_or_password_file_others_can_change_is_refused() {
    let p = Plans::new("");
    p.expect(&["config", "check"], 0);
    for (file, mode) in [(p.cfg.clone(), 0o666), (p.env.path("pass"), 0o620)] {
        let old = std::fs::metadata(&file).unwrap().permissions().mode();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        for args in [&["config", "check"][..], &["agent"][..]] {
            let (_, err) = p.expect(args, 1);
            assert!(
                err.contains(&format!(
                    "{} can be changed by other users (mode {mode:04o})",
                    file.display()
                )),
                "{args:?}: {err}"
            );
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(old)).unwrap();
    }
    p.expect(&["config", "check"], 0);
}
