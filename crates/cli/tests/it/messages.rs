//! What a person reads: a failed step in one short line with its advice
//! once, under it; steps that could not run reported as skipped; `status`
//! at a glance; counts with their plurals.

use crate::common::plans::*;
use crate::common::*;

/// A plan whose second copy does not exist (its disk is not mounted).
fn missing_second_copy() -> Plans {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"x\n");
    p.add(&format!(
        "[plan.erp]\npaths = [\"{}\"]\ncopies = [\"local\", \"second\"]\nkeep = {{ last = 1 }}\n",
        src.display()
    ));
    std::fs::rename(p.env.path("second"), p.env.path("second-away")).unwrap();
    p
}

/// Lines that are not advice (a pasted command may be as long as its paths).
fn long_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("ironvault "))
        .filter(|l| l.chars().count() > 160)
        .collect()
}

#[test]
fn a_failed_step_says_why_in_one_short_line_and_its_advice_once() {
    let p = missing_second_copy();
    let (out, err) = p.expect(&["run", "erp"], 1);
    let error: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "{err}");
    assert!(
        error[0].starts_with("error: plan erp: copy to second failed"),
        "{err}"
    );
    assert!(error[0].contains("repository second is not there"), "{err}");
    assert!(long_lines(&out).is_empty(), "{out}");
    assert!(long_lines(&err).is_empty(), "{err}");
    // The advice: once in the whole run, on its own indented lines.
    let all = format!("{out}{err}");
    assert_eq!(all.matches("init --from-repo").count(), 1, "{all}");
    assert_eq!(all.matches("is its disk mounted").count(), 1, "{all}");
    let advice = err.lines().skip_while(|l| !l.starts_with("error: "));
    let advice: Vec<&str> = advice.skip(1).collect();
    assert!(
        !advice.is_empty() && advice.iter().all(|l| l.starts_with("  ")),
        "{err}"
    );
    // Retention cannot run on the copy that was not written: skipped.
    assert!(out.contains("retention second: skipped"), "{out}");
    assert!(out.contains("not run: the copy to second failed"), "{out}");
    assert!(!out.contains("retention second: failed"), "{out}");
    assert!(!error[0].contains("retention"), "{err}");
    let h = p.history();
    let run: i64 = h
        .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
        .unwrap();
    let steps = steps(&h, run);
    assert!(
        steps.contains(&("retention".into(), Some("second".into()), "skipped".into())),
        "{steps:?}"
    );
    let run_error: String = h
        .query_row("SELECT error FROM runs WHERE id = ?1", [run], |r| r.get(0))
        .unwrap();
    assert!(!run_error.contains("init"), "{run_error}");
    assert!(!run_error.contains("retention"), "{run_error}");
    // `status`: the advice once more at most (with the unreachable copy),
    // never inside the last run's error.
    let (out, _) = p.expect(&["status", "--long"], 2);
    assert_eq!(out.matches("init --from-repo").count(), 1, "{out}");
    assert!(out.contains("  last run: failed at "), "{out}");
    let last_run = out.lines().find(|l| l.starts_with("  last run: ")).unwrap();
    assert!(
        !last_run.contains("init") && !last_run.contains("retention"),
        "{out}"
    );
    let (out, _) = p.expect(&["status"], 2);
    assert!(out.matches("init --from-repo").count() <= 1, "{out}");
    assert!(long_lines(&out).is_empty(), "{out}");
}

/// The non-empty lines of each plan's block (blocks end with an empty line).
fn blocks(out: &str) -> Vec<Vec<&str>> {
    out.split("\n\n")
        .map(|b| b.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>())
        .filter(|b| !b.is_empty())
        .collect()
}

#[test]
fn status_shows_each_plan_at_a_glance_the_next_run_and_the_agent() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"x\n");
    p.add(&format!(
        "[plan.erp]\npaths = [\"{0}\"]\nschedule = \"0 3 * * *\"\ncopies = [\"local\", \"second\"]\n\
         rpo = \"1h\"\nrto = \"1h\"\ndrill = {{ schedule = \"0 4 * * 0\", copy = \"second\" }}\n\
         [plan.web]\npaths = [\"{0}\"]\ncopies = [\"local\"]\nrpo = \"1h\"\nrto = \"1h\"\n",
        src.display()
    ));
    p.expect(&["run", "erp"], 0);
    let o = p.run(&["status"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(matches!(o.status.code(), Some(0 | 2)), "{out}");
    let b = blocks(&out);
    assert_eq!(b.len(), 2, "{out}");
    for block in &b {
        assert!(block.len() <= 10, "{out}");
        assert!(block.iter().all(|l| l.chars().count() <= 160), "{out}");
    }
    let (erp, web) = (&b[0], &b[1]);
    assert!(erp[0].starts_with("plan erp (RPO 1 h, RTO 1 h): "), "{out}");
    let row = |name: &str| {
        erp.iter()
            .find(|l| l.starts_with(&format!("  {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}: {out}"))
            .to_string()
    };
    assert!(row("local").contains("RPO held, snapshot "), "{out}");
    assert!(row("second").contains("RPO held, snapshot "), "{out}");
    assert!(erp.iter().any(|l| l.starts_with("  3-2-1: ")), "{out}");
    assert!(
        erp.iter()
            .any(|l| l.starts_with("  last run: success ") && l.ends_with("; last drill: never")),
        "{out}"
    );
    let next_run = erp.iter().find(|l| l.starts_with("  next run: ")).unwrap();
    assert!(next_run.contains(" 03:00:00; no agent running"), "{out}");
    // The hint names the plan and does not ask for the drill schedule it has.
    let next = erp.iter().find(|l| l.starts_with("  next: ")).unwrap();
    assert!(next.contains("drill schedule (0 4 * * 0)"), "{out}");
    assert!(next.contains("'ironvault drill erp'"), "{out}");
    assert!(!next.contains("give the plan a drill schedule"), "{out}");
    assert!(!out.contains("PLAN"), "{out}");
    // A plan without a schedule or a drill says so.
    assert!(
        web.iter()
            .any(|l| l.starts_with("  next run: none scheduled; no agent running")),
        "{out}"
    );
    assert!(
        web.iter().any(|l| l.contains("'ironvault run web'")
            || l.contains("'ironvault drill web' (or give the plan a drill schedule)")),
        "{out}"
    );
    assert!(
        web.iter().any(|l| l.contains("ironvault drill web")),
        "{out}"
    );
    // --long: every detail, as before.
    let long = String::from_utf8_lossy(&p.run(&["status", "--long"]).stdout).into_owned();
    assert!(long.contains("  roadmap: step "), "{long}");
    assert!(long.contains("  last drill: never"), "{long}");
    assert!(long.lines().count() > out.lines().count(), "{long}");

    // An agent runs: status says so, with its pid; a second one is refused.
    let mut agent = p
        .cmd(&["agent"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = format!("agent running (pid {})", agent.id());
    wait_for(
        "status to see the agent",
        std::time::Duration::from_secs(60),
        || String::from_utf8_lossy(&p.run(&["status", "erp"]).stdout).contains(&running),
    );
    let (_, err) = p.expect(&["agent"], 1);
    assert!(
        err.contains(&format!("another agent (pid {}) runs", agent.id())),
        "{err}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    agent.wait().unwrap();
    let out = String::from_utf8_lossy(&p.run(&["status", "erp"]).stdout).into_owned();
    assert!(out.contains("; no agent running"), "{out}");
}

#[test]
fn counts_have_their_plurals_and_ratios_their_meaning() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    write(&src.join("only.txt"), &random_bytes(4096, 1));
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.ok(&["snapshots"]);
    assert!(out.lines().any(|l| l == "1 snapshot"), "{out}");
    let out = env.ok(&["stats"]);
    assert!(out.contains(" 1 file, "), "{out}");
    assert!(!out.contains(" 1 files"), "{out}");
    assert!(!out.contains(" 1 blobs"), "{out}");
    // One file of random bytes: nothing deduplicates, so no ratio below 1.
    let ratio = out
        .lines()
        .find(|l| l.starts_with("Deduplication"))
        .unwrap();
    assert!(
        ratio.ends_with("none (no data is shared between files or snapshots)"),
        "{out}"
    );
    // The same file twice more, in two snapshots: now it deduplicates.
    write(&src.join("copy.txt"), &random_bytes(4096, 1));
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.ok(&["snapshots"]);
    assert!(out.lines().any(|l| l == "2 snapshots"), "{out}");
    let out = env.ok(&["stats"]);
    let ratio = out
        .lines()
        .find(|l| l.starts_with("Deduplication"))
        .unwrap();
    assert!(ratio.ends_with('x') && !ratio.contains("none"), "{out}");
}

#[test]
fn packs_of_an_interrupted_backup_are_reused_as_information_not_a_warning() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big"), &random_bytes(200 << 20, 3));
    env.init();
    let mut child = env.spawn(&["backup", src.to_str().unwrap()]);
    let complete = || {
        files_under(&env.repo.join("packs/data"))
            .iter()
            .filter(|p| !p.to_string_lossy().contains(".tmp-"))
            .count()
    };
    wait_for(
        "the backup to write a pack",
        std::time::Duration::from_secs(120),
        || complete() >= 1,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    env.ok(&["unlock"]);
    let o = env.run(&["backup", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("reusing "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.starts_with("reusing "), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(!line.contains(" 1 packs"), "{err}");
}
