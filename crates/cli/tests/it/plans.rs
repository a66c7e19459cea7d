//! Protection plans end to end: `config check`, `run PLAN` (backup, copy,
//! retention, hooks, a stream source), `drill` (RTA, a damaged copy) and the
//! SQLite history they leave.

use crate::common::plans::*;
use crate::common::*;
use std::path::{Path, PathBuf};

#[test]
fn config_check_names_file_line_and_fix() {
    let p = Plans::new("[plan.files]\npaths = [\"/tmp\"]\ncopies = [\"local\", \"cloud\"]\nschedule = \"*/15 * * *\"\n");
    let (_, err) = p.expect(&["config", "check"], 1);
    let f = p.cfg.display();
    assert!(err.contains("2 problems in the config"), "{err}");
    assert!(err.contains(&format!("{f}:11: plan files: copies names repository \"cloud\", which is not defined; define [repository.cloud] or use one of: local, second")), "{err}");
    assert!(
        err.contains(&format!(
            "{f}:12: plan files: schedule \"*/15 * * *\" has 4 fields"
        )),
        "{err}"
    );
    let p = Plans::new("[plan.files]\npaths = [\"/tmp\"]\ncopies = [\"local\"]\nretain = 3\n");
    let (_, err) = p.expect(&["config", "check"], 1);
    let f = p.cfg.display();
    assert!(
        err.contains(&format!(
            "error: {f}:12: unknown field `retain`, expected one of"
        )),
        "{err}"
    );
    let fixed = std::fs::read_to_string(&p.cfg)
        .unwrap()
        .replace("retain = 3\n", "");
    write(&p.cfg, fixed.as_bytes());
    std::fs::remove_file(p.env.path("pass")).unwrap();
    let (_, err) = p.expect(&["run", "files"], 1);
    assert!(
        err.contains(":8: repository second: cannot read password file"),
        "{err}"
    );
    assert!(
        err.contains(":5: repository local: cannot read password file"),
        "{err}"
    );
    let p = Plans::new(
        "[plan.files]\npaths = [\"/tmp\"]\ncopies = [\"local\"]\nschedule = \"*/5 * * * * *\"\n",
    );
    let (out, err) = p.expect(&["config", "check"], 0);
    assert!(out.contains(": ok (2 repositories, 1 plan)"), "{out}");
    assert!(
        out.contains("plan files: runs at \"*/5 * * * * *\", copies local"),
        "{out}"
    );
    assert!(err.is_empty(), "a 0600 password file is no warning: {err}");
    // JSON for scripts, also when the config is broken.
    let (out, _) = p.expect(&["config", "check", "--json"], 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["plans"], serde_json::json!(["files"]));
    let pass = p.env.path("pass");
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (_, err) = p.expect(&["config", "check"], 0);
    assert!(
        err.contains(&format!(
            "warning: {}:5: repository local: password file {1} can be read by every user of this host; chmod 600 {1}",
            p.cfg.display(),
            pass.display()
        )),
        "{err}"
    );
    p.replace("*/5 * * * * *", "*/5 * * *");
    let (out, err) = p.expect(&["config", "check", "--json"], 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["line"], 12);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("plan files: schedule \"*/5 * * *\" has 4 fields"),
        "{v}"
    );
    assert!(err.contains("error: 1 problem in the config"), "{err}");
    p.replace("*/5 * * *", "*/5 * * * * *");
    let (_, err) = p.expect(&["run", "nope"], 1);
    assert!(
        err.contains("no plan \"nope\" in") && err.contains("plans: files"),
        "{err}"
    );
    let (_, err) = p.expect(&["--config", "/nonexistent/x.toml", "run", "files"], 1);
    assert!(
        err.contains("/nonexistent/x.toml:0: no config file"),
        "{err}"
    );
}

#[test]
fn run_backs_up_copies_applies_retention_and_records_every_step() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"first\n");
    write(&src.join("sub/big.bin"), &random_bytes(3 << 20, 7));
    let hooks = p.env.path("hooks.log");
    let plan = format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"second\"]\nkeep = {{ last = 1 }}\n\
         before = \"echo before $IRONVAULT_PLAN >> {h}\"\nafter = \"echo after $IRONVAULT_RESULT >> {h}\"\n",
        src.display(),
        h = hooks.display()
    );
    let text = std::fs::read_to_string(&p.cfg).unwrap() + &plan;
    write(&p.cfg, text.as_bytes());
    let (out, err) = p.expect(&["run", "files"], 0);
    assert!(out.contains("plan files: success (run 1)"), "{out}");
    // The progress log says which snapshot, how much and how long.
    assert!(
        err.lines().any(
            |l| l.starts_with("[files] backup (local): success, snapshot ")
                && l.contains(", added ")
                && l.ends_with(" s")
        ),
        "{err}"
    );
    assert!(out.contains("backup    local: success, snapshot"), "{out}");
    // Backup and copy count bytes the same way (as stored): the same blobs.
    let (added, copied): (i64, i64) = p
        .history()
        .query_row(
            "SELECT (SELECT bytes FROM steps WHERE run = 1 AND step = 'backup'),
                    (SELECT bytes FROM steps WHERE run = 1 AND step = 'copy')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(added > 3 << 20, "{added}");
    assert_eq!(added, copied);
    write(&src.join("a.txt"), b"second version\n");
    let (out, _) = p.expect(&["run", "files", "--json"], 0);
    let rep: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rep["result"], "success");
    let new_snap = rep["steps"][1]["snapshot"].as_str().unwrap().to_string();
    assert!(
        rep["steps"][1]["bytes"].as_u64().unwrap() < 1 << 20,
        "only the change is added: {rep}"
    );
    assert_eq!(
        std::fs::read_to_string(&hooks).unwrap(),
        "before files\nafter success\nbefore files\nafter success\n"
    );

    // keep last 1 on both copies: one snapshot each, tagged with the plan.
    for name in ["local", "second"] {
        let s = p.snapshots(name);
        assert_eq!(s.len(), 1, "{name}: {s:?}");
        assert!(s[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "plan:files"));
    }
    assert_eq!(p.snapshots("local")[0]["id"], new_snap.as_str());
    // The copy restores byte for byte.
    let target = p.env.path("restored");
    p.repo(
        "second",
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&src, &target.join("src"));
    p.repo("second", &["check", "--read-data"]);

    // The history has both runs and each step, in order.
    let h = p.history();
    let runs: Vec<(i64, String, String)> = h
        .prepare("SELECT id, trigger, result FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        runs,
        [
            (1, "manual".into(), "success".into()),
            (2, "manual".into(), "success".into())
        ]
    );
    let want: Vec<(String, Option<String>, String)> = [
        ("before", None),
        ("backup", Some("local")),
        ("copy", Some("second")),
        ("retention", Some("local")),
        ("retention", Some("second")),
        ("after", None),
    ]
    .iter()
    .map(|(s, c)| (s.to_string(), c.map(String::from), "success".to_string()))
    .collect();
    assert_eq!(steps(&h, 2), want);
    let snap: String = h
        .query_row(
            "SELECT snapshot FROM steps WHERE run = 2 AND step = 'backup'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(snap, new_snap);
    // `history` shows the same record.
    let (out, _) = p.expect(&["history", "--json"], 0);
    let h: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(h[0]["run"], 2);
    assert_eq!(h[0]["steps"][1]["snapshot"], new_snap.as_str());
    assert_eq!(h[1]["result"], "success");
    let (out, _) = p.expect(&["history", "files", "--limit", "1"], 0);
    assert!(out.contains("files    run   success   manual"), "{out}");
    assert!(out.contains("retention second"), "{out}");
    assert!(
        out.starts_with("started "),
        "a header names the columns: {out}"
    );
    // The plan leaves the config: its record stays readable; a typo is an error.
    p.replace("[plan.files]", "[plan.renamed]");
    let (out, _) = p.expect(&["history", "files"], 0);
    assert!(out.contains("files    run   success   manual"), "{out}");
    let (_, err) = p.expect(&["history", "filez"], 1);
    assert!(err.contains("no plan \"filez\""), "{err}");
}

#[test]
fn a_failing_step_fails_the_run_and_the_history_says_why() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"x\n");
    // The before hook fails: nothing is backed up, the after hook hears it.
    let plan = format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"second\"]\nbefore = \"echo db not quiesced >&2; exit 4\"\n\
         after = \"echo $IRONVAULT_RESULT > {}\"\n",
        src.display(),
        p.env.path("after").display()
    );
    let text = std::fs::read_to_string(&p.cfg).unwrap() + &plan;
    write(&p.cfg, text.as_bytes());
    let (out, err) = p.expect(&["run", "files"], 1);
    assert!(out.contains("before   : failed"), "{out}");
    assert!(out.contains("db not quiesced (exit code 4)"), "{out}");
    assert!(
        err.contains("error: plan files: the before hook failed, so nothing was backed up"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(p.env.path("after")).unwrap(),
        "failed\n"
    );
    assert!(p.snapshots("local").is_empty());
    // A vanished source: the backup fails, the run fails, the repository is fine.
    let text = std::fs::read_to_string(&p.cfg)
        .unwrap()
        .replace("exit 4", "true")
        .replace(src.to_str().unwrap(), "/nonexistent/src");
    write(&p.cfg, text.as_bytes());
    let (out, err) = p.expect(&["run", "files"], 1);
    assert!(out.contains("backup    local: failed"), "{out}");
    assert!(err.contains("backup to local failed"), "{err}");
    let h = p.history();
    let e: String = h
        .query_row(
            "SELECT error FROM steps WHERE run = 2 AND step = 'backup'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(e.contains("/nonexistent/src"), "{e}");
    p.repo("local", &["check"]);
}

#[test]
fn a_stream_source_of_200_mb_is_backed_up_and_restored_byte_identical() {
    let p = Plans::new("");
    let data = p.env.path("image.bin");
    write(&data, &random_bytes(200 << 20, 42));
    let plan = format!(
        "[plan.image]\ncommand = \"cat {}\"\nfilename = \"mksysb.img\"\ncopies = [\"local\"]\n",
        data.display()
    );
    let text = std::fs::read_to_string(&p.cfg).unwrap() + &plan;
    write(&p.cfg, text.as_bytes());
    let (out, _) = p.expect(&["run", "image", "--json"], 0);
    let rep: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rep["result"], "success", "{rep}");
    let target = p.env.path("r");
    p.repo(
        "local",
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    let back = std::fs::read(target.join("mksysb.img")).unwrap();
    assert!(
        back == std::fs::read(&data).unwrap(),
        "restored stream differs"
    );
    // A failing command fails the backup and writes no snapshot.
    let text = std::fs::read_to_string(&p.cfg).unwrap().replace(
        &format!("cat {}", data.display()),
        "head -c 1000 /dev/zero; exit 9",
    );
    write(&p.cfg, text.as_bytes());
    p.expect(&["run", "image"], 1);
    assert_eq!(p.snapshots("local").len(), 1);
}

/// Flip a byte in the middle of every data pack of a repository.
/// Run advice the tool printed (`--repo ... init ...`) as a shell would,
/// with no ironvault variables set; it must succeed.
fn run_as_pasted(advised: &str, cache: &Path) {
    let o = std::process::Command::new(bin())
        .args(advised.split_whitespace())
        .env_remove("IRONVAULT_REPO")
        .env_remove("IRONVAULT_PASSWORD")
        .env("IRONVAULT_CACHE_DIR", cache)
        .env("IRONVAULT_STATE_DIR", cache.with_file_name("state"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{advised}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn damage_data_packs(repo: &Path) -> usize {
    let packs = files_under(&repo.join("packs/data"));
    for f in &packs {
        let mut b = std::fs::read(f).unwrap();
        let pos = b.len() / 3;
        b[pos] ^= 0x40;
        std::fs::write(f, &b).unwrap();
    }
    packs.len()
}

#[test]
fn a_drill_measures_the_rta_and_a_damaged_copy_fails_naming_the_files() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("small.txt"), b"small\n");
    write(&src.join("db/data.bin"), &random_bytes(2 << 20, 3));
    let plan = format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"second\"]\nrto = \"1h\"\ndrill = {{ copy = \"second\" }}\n",
        src.display()
    );
    let text = std::fs::read_to_string(&p.cfg).unwrap() + &plan;
    write(&p.cfg, text.as_bytes());
    // Nothing to drill yet: a clear failure.
    let (_, err) = p.expect(&["drill", "files"], 1);
    assert!(
        err.contains("no snapshot of plan files on second to restore; run the plan first"),
        "{err}"
    );
    p.expect(&["run", "files"], 0);
    let (out, _) = p.expect(&["drill", "files"], 0);
    assert!(
        out.contains("drill of plan files from second: snapshot"),
        "{out}"
    );
    assert!(
        out.contains("restored and verified (every byte and metadata) in"),
        "{out}"
    );
    assert!(out.contains("= RTA; RTO 1 h met"), "{out}");
    let h = p.history();
    let (secs, bytes, result): (f64, i64, String) = h
        .query_row(
            "SELECT s.seconds, s.bytes, s.result FROM steps s JOIN runs r ON r.id = s.run WHERE r.kind = 'drill' AND s.result = 'success'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(result, "success");
    assert!(secs > 0.0, "the RTA is measured: {secs}");
    assert_eq!(bytes, (2 << 20) + 6);
    // The sandbox is gone; the source untouched.
    assert_eq!(
        std::fs::read_dir(p.env.path("state/drills"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read(src.join("small.txt")).unwrap(), b"small\n");

    // Damage the second copy: the drill fails loudly and names the file.
    assert!(damage_data_packs(&p.env.path("second")) > 0);
    let (out, err) = p.expect(&["drill", "files", "--copy", "second"], 1);
    assert!(
        err.contains("error: drill of plan files from second FAILED"),
        "{err}"
    );
    // Named as in the snapshot (where `ls` shows it), not by the sandbox.
    let line = err.lines().find(|l| l.starts_with("error: drill")).unwrap();
    assert!(
        line.contains("1 item damaged or not restorable: /src/db/data.bin: blob"),
        "{err}"
    );
    // The advice on its own line, under the error line.
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("  'ironvault "), "{err}");
    assert!(
        !err.contains("state/drills"),
        "not in the log lines either: {err}"
    );
    // Said once, under the error line.
    assert_eq!(err.matches("repair packs").count(), 1, "{err}");
    assert_eq!(out.matches("repair packs").count(), 0, "{out}");
    assert!(
        err.contains("[files] drill (second): failed (why: below)"),
        "{err}"
    );
    let (second, local, pass) = (p.env.path("second"), p.env.repo.clone(), p.env.path("pass"));
    let fix = format!(
        "'ironvault --repo {s} --password-file {pw} repair packs --from-repo {l} --from-password-file {pw}' mends it from copy local",
        s = second.display(),
        l = local.display(),
        pw = pass.display()
    );
    assert!(last.contains(&fix), "{err}");
    assert!(out.contains("drill     second: failed"), "{out}");
    // Doing what it says, as pasted into a shell with no ironvault variables
    // set, mends the copy: the drill passes again.
    let advised = last
        .split("'ironvault ")
        .nth(2)
        .and_then(|a| a.split('\'').next())
        .unwrap();
    run_as_pasted(advised, &p.env.path("cache"));
    p.expect(&["drill", "files", "--copy", "second"], 0);
    // The primary copy is fine and its drill passes.
    p.expect(&["drill", "files", "--copy", "local"], 0);
    let (_, err) = p.expect(&["drill", "files", "--copy", "tape"], 1);
    assert!(
        err.contains("plan files has no copy \"tape\"; its copies: local, second"),
        "{err}"
    );
}

#[test]
fn one_run_of_a_plan_at_a_time_and_a_killed_run_is_recorded_as_abandoned() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"x\n");
    let gate = p.env.path("gate");
    let plan = format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\"]\nbefore = \"touch {g}.reached; while [ ! -e {g} ]; do sleep 0.05; done\"\n",
        src.display(),
        g = gate.display()
    );
    let text = std::fs::read_to_string(&p.cfg).unwrap() + &plan;
    write(&p.cfg, text.as_bytes());
    let mut first = p
        .cmd(&["run", "files"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&PathBuf::from(format!("{}.reached", gate.display())));
    let (_, err) = p.expect(&["run", "files"], 11);
    assert!(err.contains("plan files is running already"), "{err}");
    let (_, err) = p.expect(&["drill", "files"], 11);
    assert!(err.contains("plan files is running already"), "{err}");
    // kill -9 the run in its hook: the history keeps it, marked abandoned at the next run.
    first.kill().unwrap();
    first.wait().unwrap();
    write(&gate, b"");
    p.expect(&["run", "files"], 0);
    let h = p.history();
    let results: Vec<(String, Option<String>)> = h
        .prepare("SELECT result, error FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].0, "abandoned");
    assert!(results[0]
        .1
        .as_deref()
        .unwrap()
        .contains("killed or crashed"));
    assert_eq!(results[1].0, "success");
    p.repo("local", &["check"]);
}

#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: scripts/test.sh runs it with --features failpoints"
)]
#[test]
fn plans_sharing_a_repository_take_turns_at_retention_and_another_hosts_prune_postpones_ours() {
    let p = Plans::new("");
    let mut plans = String::new();
    for name in ["a", "b"] {
        let src = p.env.path(&format!("src-{name}"));
        write(&src.join("f.txt"), name.as_bytes());
        plans += &format!(
            "[plan.{name}]\npaths = [\"{}\"]\ncopies = [\"local\"]\nkeep = {{ last = 1 }}\n",
            src.display()
        );
    }
    p.add(&plans);
    let churn = |name: &str, round: usize| {
        let f = p.env.path(&format!("src-{name}/r{round}.bin"));
        write(&f, &vec![round as u8; 300_000 + round]);
    };
    for name in ["a", "b"] {
        p.expect(&["run", name], 0);
    }
    // Plan a's prune holds its deletion list; plan b, on the same host,
    // waits for it instead of failing on the repository's lock.
    churn("a", 1);
    churn("b", 1);
    let gate = p.env.path("gate");
    let reached = PathBuf::from(format!("{}.reached", gate.display()));
    // `run a`, held in its prune once the deletion list is written.
    let run_a_held_in_prune = || {
        let a = p
            .cmd(&["run", "a"])
            .env(
                "IRONVAULT_PAUSE",
                format!("prune-deletions-listed={}", gate.display()),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_file(&reached);
        a
    };
    let mut a = run_a_held_in_prune();
    let (mut b, _) = spawn_until_stderr(
        p.cmd(&["run", "b"]),
        "waiting for another plan's retention on the same repository",
    );
    assert!(b.try_wait().unwrap().is_none(), "plan b did not wait");
    write(&gate, b"");
    for (name, child) in [("a", &mut a), ("b", &mut b)] {
        let st = child.wait().unwrap();
        let mut err = String::new();
        // b's standard error was read up to its waiting line above.
        if let Some(e) = child.stderr.as_mut() {
            std::io::Read::read_to_string(e, &mut err).unwrap();
        }
        assert!(st.success(), "plan {name}: {st}\n{err}");
    }
    std::fs::remove_file(&gate).unwrap();
    std::fs::remove_file(&reached).unwrap();
    // Another host (its own state directory) finds a's prune running: b's
    // forget is done, its prune is postponed with a warning, not a failure.
    churn("a", 2);
    churn("b", 2);
    let other = p.env.path("other-host.toml");
    write(
        &other,
        std::fs::read_to_string(&p.cfg)
            .unwrap()
            .replace("/state\"", "/state-other\"")
            .as_bytes(),
    );
    let mut a = run_a_held_in_prune();
    let o = p
        .cmd(&["--config", other.to_str().unwrap(), "run", "b"])
        .output()
        .unwrap();
    write(&gate, b"");
    assert!(a.wait().unwrap().success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("retention local: warning"), "{out}");
    assert!(
        out.contains("prune postponed: the repository is locked by a prune on"),
        "{out}"
    );
    let detail: String = rusqlite::Connection::open(p.env.path("state-other/history.sqlite"))
        .unwrap()
        .query_row(
            "SELECT detail FROM steps WHERE step = 'retention' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        detail["removed_count"], 1,
        "the forget's summary is kept: {detail}"
    );
    assert_eq!(p.snapshots("local").len(), 2);
    p.repo("local", &["check"]);
    // The next run of b prunes what was postponed.
    let (out, _) = p.expect(&["--config", other.to_str().unwrap(), "run", "b"], 0);
    assert!(out.contains("retention local: success"), "{out}");
}

#[test]
fn a_failed_copy_keeps_the_first_copys_snapshots_and_the_history_says_so() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"x\n");
    p.add(&format!(
        "[plan.files]\npaths = [\"{}\"]\ncopies = [\"local\", \"second\"]\nkeep = {{ last = 1 }}\n",
        src.display()
    ));
    p.expect(&["run", "files"], 0);
    // The second copy's disk is gone: the copy fails, local keeps both snapshots.
    std::fs::rename(p.env.path("second"), p.env.path("second-away")).unwrap();
    let (out, err) = p.expect(&["run", "files"], 1);
    assert!(out.contains("copy      second: failed"), "{out}");
    assert!(out.contains("retention local: skipped"), "{out}");
    // Retention on the copy that was not written is not run either.
    assert!(out.contains("retention second: skipped"), "{out}");
    assert!(err.contains("copy to second failed"), "{err}");
    let second = p.env.path("second");
    let pass = p.env.path("pass");
    let hint = format!(
        "  repository second: is its disk mounted or its bucket reachable? \
         if it is a new copy, create it with:\n    ironvault --repo {0} --password-file {2} init \
         --from-repo {1} --from-password-file {2}\n",
        second.display(),
        p.env.repo.display(),
        pass.display()
    );
    assert!(err.contains(&hint), "{err}");
    assert_eq!(p.snapshots("local").len(), 2);
    let r: (String, String) = p
        .history()
        .query_row(
            "SELECT result, error FROM steps WHERE step = 'retention' AND copy = 'local' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(r.0, "skipped");
    assert!(r.1.contains("until every copy has them"), "{}", r.1);
    // Do what it says (as pasted into a shell with no ironvault variables):
    // a new, related second copy; the next run fills it and thins local out.
    let advised = err
        .split("create it with:\n    ironvault ")
        .nth(1)
        .and_then(|a| a.lines().next())
        .unwrap();
    run_as_pasted(advised, &p.env.path("cache"));
    p.expect(&["run", "files"], 0);
    assert_eq!(p.snapshots("local").len(), 1);
    assert_eq!(p.snapshots("second").len(), 1);
    assert_eq!(
        p.snapshots("second")[0]["id"],
        p.snapshots("local")[0]["id"]
    );
    // A wrong password names the config's setting, not command-line flags.
    write(&p.env.path("wrong"), b"not the password\n");
    let pass = p.env.path("pass");
    p.replace(
        &format!(
            "url = \"{}\"\npassword_file = \"{}\"",
            second.display(),
            pass.display()
        ),
        &format!(
            "url = \"{}\"\npassword_file = \"{}\"",
            second.display(),
            p.env.path("wrong").display()
        ),
    );
    let (out, err) = p.expect(&["run", "files"], 1);
    let why = format!(
        "wrong password for repository second ({})",
        second.display()
    );
    assert!(out.contains(&why), "{out}");
    let hint = format!(
        "\n  repository second: check its password_file or password_command in {}\n",
        p.cfg.display()
    );
    assert_eq!(err.matches(&hint).count(), 1, "{err}");
}
