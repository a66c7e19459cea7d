use super::*;

/// The sketch from the docs, with password files that exist.
fn sample(dir: &Path) -> String {
    for n in ["local", "cloud"] {
        std::fs::write(dir.join(format!("{n}.pass")), "secret\n").unwrap();
    }
    format!(
        r#"site = "dc-houston"
state_dir = "{d}/state"
[repository.local]
url = "/backup/ironvault"
password_file = "{d}/local.pass"
medium = "disk"
site = "dc-houston"
[repository.cloud]
url = "s3:https://s3.example.net/backups/erp01"
password_file = "{d}/cloud.pass"
medium = "object"
site = "cloud-us-east"
[plan.erp]
paths = ["/data/erp"]
schedule = "*/15 * * * *"
copies = ["local", "cloud"]
keep = {{ daily = 7, weekly = 4, monthly = 12, yearly = 7 }}
rpo = "15m"
rto = "1h"
drill = {{ schedule = "0 3 * * 0", copy = "cloud" }}
"#,
        d = dir.display()
    )
}

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/ironvault/ironvault.toml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn the_documented_sketch_parses() {
    let d = tempfile::tempdir().unwrap();
    let cfg = parse(Path::new("x.toml"), &sample(d.path())).unwrap();
    assert_eq!(cfg.site.as_deref(), Some("dc-houston"));
    assert_eq!(cfg.listen.as_deref(), Some("127.0.0.1:9478"));
    assert_eq!(cfg.history_path(), d.path().join("state/history.sqlite"));
    let cloud = &cfg.repositories["cloud"];
    assert_eq!(cloud.medium, MediumKind::Object);
    assert!(cloud.is_object());
    let erp = cfg.plan("erp").unwrap();
    assert_eq!(erp.copies, ["local", "cloud"]);
    assert_eq!(erp.rpo, Some(Duration::from_secs(900)));
    assert_eq!(erp.rto, Some(Duration::from_secs(3600)));
    assert_eq!(erp.tag(), "plan:erp");
    assert_eq!(
        erp.keep["cloud"].args(),
        [
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "7"
        ]
    );
    let drill = erp.drill.as_ref().unwrap();
    assert_eq!(drill.copy, "cloud");
    assert_eq!(drill.schedule.as_ref().unwrap().text(), "0 3 * * 0");
    assert!(cfg.plan("nope").unwrap_err().contains("plans: erp"));
}

#[test]
fn each_broken_config_names_file_line_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let f = "/etc/ironvault/ironvault.toml";

    // An unknown key.
    let e = errors(&good.replace("rpo = ", "rpoo = \"1m\"\nrpo = "));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("{f}:{}: unknown field `rpoo`", line_of("rpo = "))),
        "{e:?}"
    );
    assert!(
        e[0].contains("expected one of") && e[0].contains("docs/config.md"),
        "{e:?}"
    );

    // A bad cron expression.
    let e = errors(&good.replace("*/15 * * * *", "*/15 * * *"));
    assert_eq!(e, [format!("{f}:{}: plan erp: schedule \"*/15 * * *\" has 4 fields; cron needs 5 (minute hour day-of-month month day-of-week) or 6 with leading seconds, e.g. \"*/15 * * * *\"", line_of("schedule = \"*/15"))]);
    let e = errors(&good.replace("0 3 * * 0", "0 25 * * 0"));
    assert!(
        e[0].starts_with(&format!(
            "{f}:{}: plan erp: drill schedule \"0 25 * * 0\": the hour field has 25; it takes 0-23",
            line_of("drill =")
        )),
        "{e:?}"
    );

    // An unknown repository, in copies and in the drill.
    let e = errors(&good.replace(
        "copies = [\"local\", \"cloud\"]",
        "copies = [\"local\", \"clod\"]",
    ));
    assert!(e[0].starts_with(&format!("{f}:{}: plan erp: copies names repository \"clod\", which is not defined; define [repository.clod] or use one of: cloud, local", line_of("copies ="))), "{e:?}");
    assert!(
        e[1].contains("drill copy \"cloud\" is not one of the plan's copies (local, clod)"),
        "{e:?}"
    );

    // An unreadable password file.
    std::fs::remove_file(d.path().join("cloud.pass")).unwrap();
    let e = errors(&good);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with(&format!("{f}:{}: repository cloud: cannot read password file {}/cloud.pass (No such file or directory", line_of("cloud.pass"), d.path().display())), "{e:?}");
    assert!(
        e[0].ends_with("create it (one line, mode 0600) or fix the path"),
        "{e:?}"
    );
}

#[test]
fn values_are_checked_where_they_stand() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let e = errors(&good.replace("rpo = \"15m\"", "rpo = \"15\""));
    assert!(
        e[0].contains(&format!(
            ":{}: plan erp: rpo: \"15\" is not a duration: 15 has no unit",
            line_of("rpo =")
        )),
        "{e:?}"
    );
    let e = errors(&good.replace("medium = \"object\"", "medium = \"disk\""));
    assert!(
        e[0].contains(&format!(
            ":{}: repository cloud: medium is \"disk\" but the url is object storage",
            line_of("medium = \"object\"")
        )),
        "{e:?}"
    );
    let e = errors(&good.replace(
        "paths = [\"/data/erp\"]",
        "paths = [\"/data/erp\"]\ncommand = \"savlib\"",
    ));
    assert!(e[0].contains("give paths or command, not both"), "{e:?}");
    let e = errors(&good.replace(
        "paths = [\"/data/erp\"]",
        "nice = 30\nwindow = \"8-17\"\nionice = \"fast\"\nkeep_on = { tape = { daily = 1 } }",
    ));
    let all = e.join("\n");
    for want in [
        "nothing to back up",
        "nice 30 is outside -20..19",
        "window \"8-17\" is not HH:MM-HH:MM",
        "ionice \"fast\"",
        "keep_on names \"tape\"",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
    // Syntax errors are located too.
    let e = errors("site = \"x\"\n[plan.a\n");
    assert!(
        e[0].starts_with("/etc/ironvault/ironvault.toml:2: "),
        "{e:?}"
    );
    // A stream source gets a default file name.
    let t = good.replace("paths = [\"/data/erp\"]", "command = \"cat /etc/hostname\"");
    let cfg = parse(Path::new("x"), &t).unwrap();
    match &cfg.plans["erp"].source {
        Source::Command { command, filename } => {
            assert_eq!(
                (command.as_str(), filename.as_str()),
                ("cat /etc/hostname", "erp.stream")
            )
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn a_missing_file_says_where_it_looked() {
    let e = load(Path::new("/nonexistent/ironvault.toml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/ironvault.toml:0: no config file; write one"),
        "{e}"
    );
}

#[test]
fn names_and_keep_within_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let e = errors(&good.replace("[plan.erp]", "[plan.\"../x\"]"));
    assert!(
        e[0].contains("plan \"../x\": use only letters, digits"),
        "{e:?}"
    );
    let e = errors(&good.replace("yearly = 7 }", "yearly = 7, within = \"2w\" }"));
    assert!(
        e[0].contains("plan erp: keep within: \"2w\" is not a duration"),
        "{e:?}"
    );
    assert!(parse(
        Path::new("x"),
        &good.replace("yearly = 7 }", "yearly = 7, within = \"1y6m\" }")
    )
    .is_ok());
}

#[test]
fn stream_names_tags_paths_and_copy_credentials_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let all = |t: &str| errors(t).join("\n");
    let e = all(&good.replace(
        "paths = [\"/data/erp\"]",
        "command = \"savlib\"\nfilename = \"a/b\"\ntags = [\"plan:x\", \"\"]",
    ));
    assert!(
        e.contains("filename \"a/b\" must be a plain file name"),
        "{e}"
    );
    assert!(e.contains("tag \"plan:x\" is not allowed"), "{e}");
    assert!(e.contains("tag \"\" is not allowed"), "{e}");
    let e = all(&good.replace(
        "copy = \"cloud\" }",
        "copy = \"cloud\", sandbox = \"drills\" }",
    ));
    assert!(
        e.contains("drill sandbox drills is not an absolute path"),
        "{e}"
    );
    let e = all(&good
        .replace(
            "site = \"cloud-us-east\"",
            "site = \"cloud-us-east\"\nenv = { AWS_PROFILE = \"b\" }",
        )
        .replace(
            "site = \"dc-houston\"\n[repository.cloud]",
            "site = \"dc-houston\"\nenv = { AWS_PROFILE = \"a\" }\n[repository.cloud]",
        ));
    assert!(
        e.contains("repositories local and cloud set AWS_PROFILE differently"),
        "{e}"
    );
}

#[test]
fn urls_commands_impossible_schedules_and_password_files_are_checked() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let all = |t: &str| errors(t).join("\n");
    // An S3 url in another tool's spelling.
    let e = all(&good.replace(
        "s3:https://s3.example.net/backups/erp01",
        "s3://backups/erp01",
    ));
    assert!(
        e.contains(&format!(
            ":{}: repository cloud: S3 location s3://backups/erp01: expected s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]",
            line_of("s3:https")
        )),
        "{e}"
    );
    // An empty stream command.
    let e = all(&good.replace("paths = [\"/data/erp\"]", "command = \" \""));
    assert!(e.contains("plan erp: command is empty"), "{e}");
    // A date that never comes.
    let e = all(&good.replace("*/15 * * * *", "0 0 31 2 *"));
    assert!(
        e.contains("schedule \"0 0 31 2 *\" names no date that exists (such as 31 February), so it would never run"),
        "{e}"
    );
    assert!(parse(Path::new("x"), &good.replace("*/15 * * * *", "0 0 29 2 *")).is_ok());
    // An empty password file.
    std::fs::write(d.path().join("cloud.pass"), "\n").unwrap();
    let e = all(&good);
    assert!(
        e.contains(&format!(
            ":{}: repository cloud: password file {}/cloud.pass is empty",
            line_of("cloud.pass"),
            d.path().display()
        )),
        "{e}"
    );
    // A directory where the file should be.
    std::fs::remove_file(d.path().join("cloud.pass")).unwrap();
    std::fs::create_dir(d.path().join("cloud.pass")).unwrap();
    let e = all(&good);
    assert!(
        e.contains("repository cloud: cannot read password file") && e.contains("Is a directory"),
        "{e}"
    );
    std::fs::remove_dir(d.path().join("cloud.pass")).unwrap();
    // Readable by everyone: accepted, with a warning naming the fix.
    let pass = d.path().join("cloud.pass");
    std::fs::write(&pass, "secret\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        d.path().join("local.pass"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let cfg = parse(Path::new("x"), &good).unwrap();
    let w: Vec<String> = cfg
        .warnings
        .iter()
        .map(|w| w.to_string())
        .filter(|w| w.contains("password file"))
        .collect();
    assert_eq!(
        w,
        [format!(
            "x:{line}: repository cloud: password file {p} can be read by every user of this host; chmod 600 {p}",
            line = line_of("cloud.pass"),
            p = pass.display()
        )]
    );
}

#[test]
fn problems_come_in_file_order_and_type_errors_quote_the_line() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    // Two problems found in a different order than they stand.
    let e = errors(
        &good
            .replace("rpo = \"15m\"", "rpo = \"15\"")
            .replace("url = \"/backup/ironvault\"", "url = \"backup\""),
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains(&format!(
            ":{}: repository local",
            line_of("/backup/ironvault")
        )),
        "{e:?}"
    );
    assert!(
        e[1].contains(&format!(":{}: plan erp: rpo", line_of("rpo ="))),
        "{e:?}"
    );
    // A value of the wrong type: the key is named, the value never quoted
    // (it may be a secret).
    let e = errors(&good.replace("rpo = \"15m\"", "rpo = 15"));
    assert!(
        e[0].contains(&format!(":{}: ", line_of("rpo =")))
            && e[0].ends_with(", in the value of `rpo`"),
        "{e:?}"
    );
    let e = errors(&good.replace(
        "site = \"cloud-us-east\"",
        "site = \"cloud-us-east\"\nenv = { AWS_SECRET_ACCESS_KEY = \"hush-hush\", IRONVAULT_S3_CONNECTIONS = 8 }",
    ));
    assert!(e[0].ends_with(", in the value of `env`"), "{e:?}");
    assert!(!e[0].contains("hush-hush"), "{e:?}");
    // A string where a table belongs: the string is not echoed either.
    let e = errors(&good.replace(
        "site = \"cloud-us-east\"",
        "site = \"cloud-us-east\"\nenv = \"AWS_SECRET_ACCESS_KEY=hush-hush\"",
    ));
    assert!(
        e[0].contains("invalid type: string \"...\", expected a map, in the value of `env`"),
        "{e:?}"
    );
    assert!(!e[0].contains("hush-hush"), "{e:?}");
    // A misspelt key is a key, not a value.
    let e = errors(&good.replace("rpo = ", "rpoo = \"1m\"\nrpo = "));
    assert!(!e[0].contains("in the value of"), "{e:?}");
}

#[test]
fn one_repository_under_two_names_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("repo")).unwrap();
    std::os::unix::fs::symlink(d.path().join("repo"), d.path().join("link")).unwrap();
    let good = sample(d.path());
    for other in [
        "/backup/ironvault/".to_string(),
        "/backup/ironvault".to_string(),
    ] {
        let t = good
            .replace(
                "url = \"s3:https://s3.example.net/backups/erp01\"\npassword_file = \"",
                &format!("url = \"{other}\"\npassword_file = \""),
            )
            .replace("medium = \"object\"", "medium = \"disk\"");
        let e = errors(&t).join("\n");
        assert!(
            e.contains("repository local: url is the same repository as cloud's"),
            "{e}"
        );
    }
    // Through a symlink too, when the directory exists.
    let t = good
        .replace(
            "url = \"/backup/ironvault\"",
            &format!("url = \"{}/repo\"", d.path().display()),
        )
        .replace(
            "url = \"s3:https://s3.example.net/backups/erp01\"",
            &format!("url = \"{}/link/\"", d.path().display()),
        )
        .replace("medium = \"object\"", "medium = \"disk\"");
    let e = errors(&t).join("\n");
    assert!(e.contains("url is the same repository as"), "{e}");
}

#[test]
fn missing_paths_and_schedules_that_cannot_meet_the_rpo_are_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path()).replace("/data/erp", &d.path().display().to_string());
    let warnings = |t: &str| -> Vec<String> {
        parse(Path::new("x"), t)
            .unwrap()
            .warnings
            .iter()
            .map(|w| w.to_string())
            .filter(|w| !w.contains("password file"))
            .collect()
    };
    assert_eq!(warnings(&good), Vec::<String>::new());
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    // A path that is not there (yet).
    let w = warnings(&good.replace(
        &format!("paths = [\"{}\"]", d.path().display()),
        "paths = [\"/nonexistent/erp\"]",
    ));
    assert_eq!(
        w,
        [format!(
            "x:{}: plan erp: path /nonexistent/erp does not exist (yet); the plan's backups fail until it does",
            line_of("[plan.erp]")
        )]
    );
    // Once a day cannot hold an RPO of 10 minutes.
    let w = warnings(
        &good
            .replace("*/15 * * * *", "0 3 * * *")
            .replace("rpo = \"15m\"", "rpo = \"10m\""),
    );
    assert_eq!(
        w,
        [format!(
            "x:{}: plan erp: the schedule leaves up to 24 h between runs, more than the rpo of 10 min: the RPO will be missed between runs; run more often or raise the rpo",
            line_of("rpo =")
        )]
    );
    // Weekdays only: the weekend gap counts.
    let w = warnings(
        &good
            .replace("*/15 * * * *", "0 * * * 1-5")
            .replace("rpo = \"15m\"", "rpo = \"1d\""),
    );
    assert!(w[0].contains("leaves up to 2 d 1 h between runs"), "{w:?}");
}

#[test]
fn files_other_users_could_change_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test gives files to another user (chown): run it as root"
    );
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let cfg_file = d.path().join("ironvault.toml");
    std::fs::write(&cfg_file, &good).unwrap();
    chmod(&cfg_file, 0o644);
    assert!(load(&cfg_file).is_ok());
    let all = |text: &str| match parse(Path::new("x"), text) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    let pass = d.path().join("cloud.pass");
    // A password file its group may write, or that another user owns.
    chmod(&pass, 0o620);
    let e = all(&good);
    assert!(
        e.contains(&format!(
            "repository cloud: password file {} can be changed by other users (mode 0620); it must be changeable only by its owner",
            pass.display()
        )),
        "{e}"
    );
    chmod(&pass, 0o600);
    assert_eq!(all(&good), "");
    std::os::unix::fs::chown(&pass, Some(65534), None).unwrap();
    let e = all(&good);
    assert!(e.contains("is owned by uid 65534, not by root"), "{e}");
    std::os::unix::fs::chown(&pass, Some(0), None).unwrap();
    // A directory on the way that others may write (not sticky): they could
    // put another file in its place. A sticky one, as /tmp, is fine.
    chmod(d.path(), 0o777);
    let e = all(&good);
    assert!(
        e.contains(&format!(
            "can be changed by other users (its directory {}) (mode 0777)",
            d.path().display()
        )),
        "{e}"
    );
    chmod(d.path(), 0o1777);
    assert_eq!(all(&good), "");
    chmod(d.path(), 0o700);
    // A config reached through a link in an open directory: whoever may
    // write there can point the link elsewhere.
    let open_dir = d.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    chmod(&open_dir, 0o777);
    let link = open_dir.join("ironvault.toml");
    std::os::unix::fs::symlink(&cfg_file, &link).unwrap();
    let e = load(&link).unwrap_err().to_string();
    assert!(
        e.contains(&format!("(its directory {})", open_dir.display())),
        "{e}"
    );
    // The config itself: refused before anything in it is used.
    chmod(&cfg_file, 0o666);
    let e = load(&cfg_file).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{0}:0: the config {0} can be changed by other users (mode 0666); it must be changeable only by its owner: chmod go-w and chown root (or the agent's user) the file and its directories",
            cfg_file.display()
        )
    );
}

#[test]
fn listening_off_loopback_needs_a_token() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let good = sample(d.path());
    let with = |listen: &str, token: Option<&Path>| {
        let mut t = format!("listen = \"{listen}\"\n");
        if let Some(f) = token {
            t += &format!("listen_token_file = \"{}\"\n", f.display());
        }
        parse(Path::new("x"), &(t + &good))
    };
    for ok in ["127.0.0.1:9478", "[::1]:9478", "off"] {
        assert!(with(ok, None).is_ok(), "{ok}");
    }
    let e = with("0.0.0.0:9478", None).unwrap_err().to_string();
    assert_eq!(
        e,
        "x:1: listen \"0.0.0.0:9478\" is not a loopback address, so other hosts could read /status and /metrics: set listen_token_file = \"/etc/ironvault/listen.token\" (clients then send 'Authorization: Bearer' and its first line), or listen on 127.0.0.1"
    );
    let token = d.path().join("listen.token");
    std::fs::write(&token, "0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = with("0.0.0.0:9478", Some(&token)).unwrap();
    assert_eq!(cfg.listen_token_file.as_deref(), Some(token.as_path()));
    assert_eq!(read_token(&token).unwrap(), "0123456789abcdef");
    std::fs::write(&token, "\n").unwrap();
    let e = with("0.0.0.0:9478", Some(&token)).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "listen_token_file: token file {} is empty (its first line is the token)",
            token.display()
        )),
        "{e}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Garbage never panics: random text, and the documented sketch with
    /// characters overwritten, inserted or removed or its end cut off, is
    /// a config or a list of errors (fuzz/fuzz_targets/agent_config.rs runs
    /// the same for millions of inputs).
    #[test]
    fn garbage_config_is_an_error_never_a_panic(
        random in ".{0,300}",
        edits in proptest::collection::vec((0u8..4, 0usize..2000, proptest::char::any()), 1..8),
    ) {
        let _ = parse(Path::new("/etc/ironvault/ironvault.toml"), &random);
        let d = tempfile::tempdir().unwrap();
        let mut text: Vec<char> = sample(d.path()).chars().collect();
        for (kind, at, c) in edits {
            let i = at % (text.len() + 1);
            match kind {
                0 if i < text.len() => text[i] = c,
                1 => text.insert(i, c),
                2 if i < text.len() => {
                    text.remove(i);
                }
                _ => text.truncate(i),
            }
        }
        let text: String = text.into_iter().collect();
        let _ = parse(Path::new("/etc/ironvault/ironvault.toml"), &text);
    }
}
