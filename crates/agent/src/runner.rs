//! Running a plan (before hook, backup, copies, retention, after hook) and a
//! drill, each step as a child `ironvault` command, each recorded in the history.

use crate::child::{self, Finished, Limits};
use crate::config::{Config, Plan, Repository, Source};
use crate::history::{History, Outcome, StepEnd};
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod advice;
mod drill;
use advice::{hide_password_commands, open_flags, password_command_note};

/// Variables that would make a step open another repository or key than
/// the config names.
const INHERITED_REPO_ENV: &[&str] = &[
    "IRONVAULT_REPO",
    "IRONVAULT_PASSWORD",
    "IRONVAULT_PASSWORD_FILE",
    "IRONVAULT_PASSWORD_COMMAND",
    "IRONVAULT_FROM_PASSWORD",
    "IRONVAULT_FROM_PASSWORD_FILE",
    "IRONVAULT_FROM_PASSWORD_COMMAND",
    "IRONVAULT_CACERT",
    "IRONVAULT_FAILPOINT",
];

/// How long a child gets to stop at a safe point before it is ended.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// Runs plans and drills.
pub struct Runner<'a> {
    pub cfg: &'a Config,
    /// The `ironvault` binary the steps run.
    pub exe: PathBuf,
    pub history: &'a History,
    /// True once the run should stop (SIGTERM, Ctrl-C).
    pub stop: &'a (dyn Fn() -> bool + Sync),
    /// Progress and child output, a line at a time.
    pub log: &'a (dyn Fn(&str) + Sync),
    /// A report of every step follows the log (`run`, `drill`): a failed
    /// step's log line leaves its error to the report instead of saying it
    /// twice. The agent's log has no report, so it says everything.
    pub report_follows: bool,
}

/// One step as it ended.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: String,
    pub copy: Option<String>,
    pub outcome: Outcome,
    pub end: StepEnd,
}

/// A run as it ended.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub run: i64,
    pub plan: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
}

/// A snapshot as `snapshots --json` lists it.
#[derive(Clone, Debug)]
pub struct SnapInfo {
    pub id: String,
    pub time: DateTime<Utc>,
}

/// The global flags that open `repo`, and its extra environment. Its
/// `password_command` is not among them: it goes into the child's
/// environment (`IRONVAULT_PASSWORD_COMMAND`), since every user of the host
/// can read a command line (`ps`) and the command may hold a secret.
pub fn repo_args(repo: &Repository) -> (Vec<OsString>, Vec<(String, String)>) {
    let mut a: Vec<OsString> = vec!["--repo".into(), repo.url.clone().into()];
    if let Some(f) = &repo.password_file {
        a.push("--password-file".into());
        a.push(f.into());
    }
    if let Some(c) = &repo.cacert {
        a.push("--cacert".into());
        a.push(c.into());
    }
    let env = repo
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (a, env)
}

impl Runner<'_> {
    fn repo(&self, name: &str) -> Result<&Repository> {
        self.cfg
            .repositories
            .get(name)
            .ok_or_else(|| anyhow!("repository {name:?} is not defined in the config"))
    }

    /// An `ironvault` command on `repo` with `--json`.
    fn command(&self, repo: &Repository) -> Command {
        let mut c = Command::new(&self.exe);
        let (args, env) = repo_args(repo);
        c.args(args).arg("--json");
        c.envs(env);
        // Each step uses its repository's settings from the config, never
        // what happens to be in the agent's environment.
        for v in INHERITED_REPO_ENV {
            c.env_remove(v);
        }
        if let Some(pc) = &repo.password_command {
            c.env("IRONVAULT_PASSWORD_COMMAND", pc);
        }
        c
    }

    /// Run a step on `repo` at the plan's nice/ionice; it stops when the run
    /// is stopped.
    fn exec(&self, cmd: Command, plan: &Plan, repo: &Repository) -> Result<Finished> {
        let limits = Limits {
            nice: plan.nice,
            ionice: plan.ionice,
        };
        self.exec_with(cmd, plan, limits, self.stop, Some(repo), None)
    }

    fn exec_with(
        &self,
        cmd: Command,
        plan: &Plan,
        limits: Limits,
        stop: &(dyn Fn() -> bool + Sync),
        repo: Option<&Repository>,
        sandbox: Option<&Path>,
    ) -> Result<Finished> {
        let prefix = format!("[{}] ", plan.name);
        let (log, cfg) = (self.log, self.cfg);
        let sandbox = sandbox.map(|s| format!("{}/", s.display()));
        let on_line = move |l: &str| {
            // The command's own error line comes back in the step's result.
            if l.starts_with("error: ") {
                return;
            }
            let l = hide_password_commands(cfg, l);
            // A drill's files by their snapshot paths, not the sandbox's.
            match &sandbox {
                Some(s) => log(&format!("{prefix}{}", l.replace(s.as_str(), "/"))),
                None => log(&format!("{prefix}{l}")),
            }
        };
        let mut f = child::run(cmd, limits, stop, STOP_GRACE, &on_line)
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        f.error = f.error.map(|e| hide_password_commands(self.cfg, &e));
        if let Some(repo) = repo {
            self.explain(&mut f, plan, repo);
        }
        Ok(f)
    }

    /// The command's advice is for someone typing it (`ironvault init`, the
    /// password flags); a plan's step says what to look at in the config.
    fn explain(&self, f: &mut Finished, plan: &Plan, repo: &Repository) {
        let (name, url, file) = (&repo.name, &repo.url, self.cfg.file.display());
        let why = match f.code {
            Some(EXIT_MISSING) => {
                let this = open_flags(repo, "");
                let first = plan.copies.first().filter(|first| *first != name);
                let new = match first.and_then(|f| self.repo(f).ok()) {
                    // Related to the first copy, so copies deduplicate.
                    Some(first) => format!(
                        "if it is a new copy, create it with 'ironvault {this} init {}'{}",
                        open_flags(first, "from-"),
                        password_command_note(&[(repo, ""), (first, "from-")], &self.cfg.file)
                    ),
                    None => format!(
                        "if it is new, create it with 'ironvault {this} init'{}",
                        password_command_note(&[(repo, "")], &self.cfg.file)
                    ),
                };
                format!("repository {name} ({url}) is not there: is its disk mounted or its bucket reachable? {new}")
            }
            Some(EXIT_WRONG_PASSWORD) => format!(
                "wrong password for repository {name} ({url}): check its password_file or password_command in {file}"
            ),
            _ => return,
        };
        f.error = Some(why);
    }

    /// The plan's snapshots of this host on a repository, oldest first.
    pub fn snapshots(&self, plan: &Plan, repo: &Repository) -> Result<Vec<SnapInfo>> {
        let mut c = self.command(repo);
        if repo.is_object() {
            // A listing is small: an unreachable server should not hold
            // status (or a copy) for the default three minutes of retries.
            c.args(["--s3-retry-timeout", "20"]);
        }
        c.args([
            "snapshots",
            "--tag",
            &plan.tag(),
            "--host",
            &self.cfg.hostname,
        ]);
        let f = self.exec(c, plan, repo)?;
        if f.code != Some(0) {
            bail!("cannot list snapshots of {}: {}", repo.name, f.failure());
        }
        let v: serde_json::Value = serde_json::from_str(f.stdout.trim())
            .with_context(|| format!("unexpected output of snapshots on {}", repo.name))?;
        let mut out = Vec::new();
        for s in v.as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            let time = s["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            if let Some(time) = time {
                out.push(SnapInfo { id, time });
            }
        }
        out.sort_by_key(|s| s.time);
        Ok(out)
    }

    /// Run a hook; the after hook runs to its end even when the run is being
    /// stopped (it may thaw what the before hook froze).
    fn hook(&self, plan: &Plan, which: &str, script: &str, result: Option<Outcome>) -> Finished {
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(script)
            .env("IRONVAULT_PLAN", &plan.name)
            .env("IRONVAULT_HOOK", which);
        if let Some(r) = result {
            c.env("IRONVAULT_RESULT", r.as_str());
        }
        let limits = Limits {
            nice: plan.nice,
            ionice: plan.ionice,
        };
        let never = || false;
        let stop: &(dyn Fn() -> bool + Sync) = if which == "after" { &never } else { self.stop };
        let f = self
            .exec_with(c, plan, limits, stop, None, None)
            .unwrap_or_else(|e| Finished {
                error: Some(e.to_string()),
                ..Finished::default()
            });
        for l in f.stdout.lines() {
            (self.log)(&format!("[{}] {which}: {l}", plan.name));
        }
        f
    }

    /// Record a step around `f`, which says how it went.
    fn step(
        &self,
        run: i64,
        report: &mut RunReport,
        step: &str,
        copy: Option<&str>,
        f: impl FnOnce() -> (Outcome, StepEnd),
    ) -> Result<Outcome> {
        let id = self.history.start_step(run, step, copy)?;
        let what = match copy {
            Some(c) => format!("{step} ({c})"),
            None => step.to_string(),
        };
        (self.log)(&format!("[{}] {what}: started", report.plan));
        let (outcome, end) = f();
        self.history.end_step(id, outcome, &end)?;
        let how = match &end.error {
            Some(_) if self.report_follows && outcome == Outcome::Failed => {
                "failed (why: below)".to_string()
            }
            Some(e) => format!("{}: {e}", outcome.as_str()),
            // What an operator reading the log wants: which snapshot, how
            // much, how long (for a drill, that is the RTA).
            None => end.describe(step, outcome),
        };
        (self.log)(&format!("[{}] {what}: {how}", report.plan));
        report.steps.push(StepReport {
            step: step.into(),
            copy: copy.map(String::from),
            outcome,
            end,
        });
        Ok(outcome)
    }

    /// Record a run or drill as started; its report, empty so far.
    fn begin(
        &self,
        plan: &Plan,
        kind: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<RunReport> {
        let run = self
            .history
            .start_run(&plan.name, kind, trigger, scheduled_for)?;
        Ok(RunReport {
            run,
            plan: plan.name.clone(),
            outcome: Outcome::Success,
            error: None,
            steps: Vec::new(),
        })
    }

    /// Run a plan now: before hook, backup to the first copy, copy to the
    /// others, retention, after hook.
    pub fn run_plan(
        &self,
        plan: &Plan,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<RunReport> {
        let mut rep = self.begin(plan, "run", trigger, scheduled_for)?;
        let run = rep.run;
        let mut failed: Vec<String> = Vec::new();
        let mut stopped = false;
        let mut backup_ok = false;
        let mut refused = false;
        if let Some(h) = &plan.before {
            let o = self.step(run, &mut rep, "before", None, || {
                let f = self.hook(plan, "before", h, None);
                finished_outcome(&f, None)
            })?;
            if o == Outcome::Abandoned {
                stopped = true;
            } else if !o.ok() {
                refused = true;
                failed.push("the before hook failed, so nothing was backed up".into());
            }
        }
        if failed.is_empty() && !stopped && !(self.stop)() {
            let primary = self.repo(&plan.copies[0])?;
            let o = self.step(run, &mut rep, "backup", Some(&primary.name), || {
                self.backup(plan, primary)
            })?;
            backup_ok = o.ok();
            stopped |= o == Outcome::Abandoned;
            if !backup_ok && !stopped {
                failed.push(format!("backup to {} failed{}", primary.name, why(&rep)));
            }
        }
        // Copies go on after a failed backup (older snapshots still reach the
        // other sites), but not when the before hook refused the run.
        if !refused && !stopped {
            for dest in &plan.copies[1..] {
                if (self.stop)() {
                    stopped = true;
                    break;
                }
                let (src, dst) = (self.repo(&plan.copies[0])?, self.repo(dest)?);
                let o = self.step(run, &mut rep, "copy", Some(dest), || {
                    self.copy(plan, src, dst)
                })?;
                stopped |= o == Outcome::Abandoned;
                if !o.ok() && o != Outcome::Abandoned {
                    failed.push(format!("copy to {dest} failed{}", why(&rep)));
                }
            }
        }
        // Retention only after a good backup: a failing source must not thin out
        // the copies that are now the only good ones.
        let copy_failed = failed.iter().any(|f| f.starts_with("copy to"));
        if backup_ok {
            for name in &plan.copies {
                let Some(keep) = plan.keep.get(name) else {
                    continue;
                };
                if copy_failed && *name == plan.copies[0] {
                    // Snapshots that did not reach every copy must stay on the
                    // first until they have.
                    self.step(run, &mut rep, "retention", Some(name), || {
                        (
                            Outcome::Skipped,
                            StepEnd {
                                error: Some(
                                    "a copy failed, so the snapshots stay here until every copy has them".into(),
                                ),
                                ..StepEnd::default()
                            },
                        )
                    })?;
                    continue;
                }
                if (self.stop)() {
                    stopped = true;
                    break;
                }
                let repo = self.repo(name)?;
                // Plans sharing this repository take turns on this host.
                let waiting = || {
                    (self.log)(&format!(
                        "[{}] retention ({name}): waiting for another plan's retention on the same repository",
                        plan.name
                    ))
                };
                let turn = crate::plan_lock::PlanLock::retention(
                    &self.cfg.state_dir,
                    &repo.url,
                    self.stop,
                    waiting,
                );
                let _turn = match turn {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        stopped = true;
                        break;
                    }
                    Err(e) => {
                        self.step(run, &mut rep, "retention", Some(name), || failed_end(e))?;
                        failed.push(format!("retention on {name} failed{}", why(&rep)));
                        continue;
                    }
                };
                let o = self.step(run, &mut rep, "retention", Some(name), || {
                    let mut c = self.command(repo);
                    c.args(["forget", "--tag", &plan.tag(), "--host", &self.cfg.hostname]);
                    c.args(keep.args());
                    let f = match self.exec(c, plan, repo) {
                        Ok(f) => f,
                        Err(e) => return failed_end(e),
                    };
                    let s = f.summary();
                    let removed = s
                        .as_ref()
                        .and_then(|s| s["removed_count"].as_u64())
                        .unwrap_or(0);
                    let (o, mut end) = finished_outcome(&f, s);
                    end.bytes = Some(0);
                    let forget_end = end.clone();
                    // Prune only when forget removed something: a prune on
                    // every run would reread the index for nothing.
                    if !o.ok() || removed == 0 || !plan.prune {
                        return (o, end);
                    }
                    let mut c = self.command(repo);
                    c.arg("prune");
                    match self.exec(c, plan, repo) {
                        // A prune or repair that is not one of this host's
                        // plans (another host's, or one run by hand) holds the
                        // repository: what this forget removed is freed by the
                        // next prune. The step keeps the forget's summary.
                        Ok(f) if f.code == Some(EXIT_LOCKED) => (
                            Outcome::Warning,
                            StepEnd {
                                error: Some(format!(
                                    "prune postponed: {}; the data of the snapshots forgotten now is freed by the next prune",
                                    f.error
                                        .as_deref()
                                        .and_then(|e| e.split(';').next())
                                        .unwrap_or("the repository is busy")
                                )),
                                ..forget_end
                            },
                        ),
                        Ok(f) => {
                            let s = f.summary();
                            let freed = s.as_ref().and_then(|s| s["bytes_freed"].as_u64());
                            let (o, mut end) = finished_outcome(&f, s);
                            end.bytes = freed;
                            (o, end)
                        }
                        Err(e) => failed_end(e),
                    }
                })?;
                stopped |= o == Outcome::Abandoned;
                if !o.ok() && o != Outcome::Abandoned {
                    failed.push(format!("retention on {name} failed{}", why(&rep)));
                }
            }
        }
        rep.outcome = if stopped {
            Outcome::Abandoned
        } else if !failed.is_empty() {
            Outcome::Failed
        } else if rep.steps.iter().any(|s| s.outcome == Outcome::Warning) {
            Outcome::Warning
        } else {
            Outcome::Success
        };
        if let Some(h) = &plan.after {
            let result = rep.outcome;
            let o = self.step(run, &mut rep, "after", None, || {
                let f = self.hook(plan, "after", h, Some(result));
                finished_outcome(&f, None)
            })?;
            if !o.ok() && rep.outcome.ok() {
                failed.push("the after hook failed".into());
                rep.outcome = Outcome::Failed;
            }
        }
        if stopped {
            failed.insert(
                0,
                "stopped before the end; the next run goes on from here".into(),
            );
        }
        rep.error = (!failed.is_empty()).then(|| failed.join("; "));
        self.history
            .end_run(run, rep.outcome, rep.error.as_deref())?;
        Ok(rep)
    }

    fn backup(&self, plan: &Plan, repo: &Repository) -> (Outcome, StepEnd) {
        let mut c = self.command(repo);
        c.args(["backup", "--host", &self.cfg.hostname, "--tag", &plan.tag()]);
        for t in &plan.tags {
            c.args(["--tag", t]);
        }
        for e in &plan.exclude {
            c.args(["--exclude", e]);
        }
        for e in &plan.iexclude {
            c.args(["--iexclude", e]);
        }
        if plan.one_file_system {
            c.arg("--one-file-system");
        }
        match &plan.source {
            Source::Paths(p) => {
                c.arg("--").args(p);
            }
            Source::Command { command, filename } => {
                c.args(["--stdin-filename", filename, "--stdin-from-command"]);
                c.args(["/bin/sh", "-c", command]);
            }
        }
        match self.exec(c, plan, repo) {
            Ok(f) => {
                let s = f.summary();
                let snapshot = s
                    .as_ref()
                    .and_then(|s| s["snapshot_id"].as_str().map(String::from));
                let bytes = s.as_ref().and_then(|s| s["data_added"].as_u64());
                let (mut o, mut end) = finished_outcome(&f, s);
                if f.code == Some(3) && snapshot.is_some() {
                    o = Outcome::Warning;
                    end.error =
                        Some("some files could not be read; the snapshot lists them".into());
                }
                end.snapshot = snapshot;
                end.bytes = bytes;
                (o, end)
            }
            Err(e) => failed_end(e),
        }
    }

    /// Copy the plan's snapshots newer than the destination's newest.
    fn copy(&self, plan: &Plan, src: &Repository, dst: &Repository) -> (Outcome, StepEnd) {
        let lists = self
            .snapshots(plan, src)
            .and_then(|s| Ok((s, self.snapshots(plan, dst)?)));
        let (have, there) = match lists {
            Ok(v) => v,
            Err(e) => return failed_end(e),
        };
        // A snapshot dated in the future (a clock that was wrong) must not
        // stop every later one from being copied.
        let now = Utc::now();
        let newest_there = there.last().map(|s| s.time.min(now));
        let ids: Vec<&str> = have
            .iter()
            .filter(|s| !matches!(newest_there, Some(t) if s.time <= t))
            .map(|s| s.id.as_str())
            .collect();
        if ids.is_empty() {
            return (
                Outcome::Success,
                StepEnd {
                    bytes: Some(0),
                    detail: Some(serde_json::json!({"snapshots_copied": 0})),
                    ..StepEnd::default()
                },
            );
        }
        let mut c = self.command(dst);
        let (sargs, senv) = repo_args(src);
        // Both repositories' variables; the destination's win a clash.
        c.envs(senv);
        c.envs(repo_args(dst).1);
        if dst.cacert.is_none() {
            // One --cacert serves both ends of a copy.
            if let Some(ca) = &src.cacert {
                c.arg("--cacert").arg(ca);
            }
        }
        c.arg("copy").arg("--from-repo").arg(&sargs[1]);
        if let Some(f) = &src.password_file {
            c.arg("--from-password-file").arg(f);
        }
        if let Some(cmd) = &src.password_command {
            c.env("IRONVAULT_FROM_PASSWORD_COMMAND", cmd);
        }
        c.args(&ids);
        match self.exec(c, plan, dst) {
            Ok(f) => {
                let s = f.summary();
                let bytes = s.as_ref().map(|s| {
                    s["snapshots"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x["bytes_stored"].as_u64())
                        .sum()
                });
                let (o, mut end) = finished_outcome(&f, s);
                end.bytes = bytes;
                if o.ok() {
                    end.snapshot = ids.last().map(|s| s.to_string());
                }
                (o, end)
            }
            Err(e) => failed_end(e),
        }
    }
}

/// ": why" the last step failed, for the run's error (and its alert).
fn why(rep: &RunReport) -> String {
    rep.steps
        .last()
        .and_then(|s| s.end.error.as_deref())
        .map(|e| format!(" ({e})"))
        .unwrap_or_default()
}

/// Exit codes of the `ironvault` commands the steps run.
const EXIT_MISSING: i32 = 10;
const EXIT_LOCKED: i32 = 11;
const EXIT_WRONG_PASSWORD: i32 = 12;

fn failed_end(e: anyhow::Error) -> (Outcome, StepEnd) {
    (
        Outcome::Failed,
        StepEnd {
            error: Some(format!("{e:#}")),
            ..StepEnd::default()
        },
    )
}

/// Outcome of a child by its exit code: 0 success, stopped abandoned, else failed.
fn finished_outcome(f: &Finished, summary: Option<serde_json::Value>) -> (Outcome, StepEnd) {
    let mut end = StepEnd {
        seconds: Some(f.seconds),
        detail: summary,
        ..StepEnd::default()
    };
    if f.code == Some(0) {
        return (Outcome::Success, end);
    }
    end.error = Some(f.failure());
    if f.stopped || f.code == Some(130) {
        return (Outcome::Abandoned, end);
    }
    (Outcome::Failed, end)
}
