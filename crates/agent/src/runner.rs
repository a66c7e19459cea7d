//! Running a plan (before hook, backup, copies, retention, after hook) and a
//! drill, each step as a child `ironvault` command, each recorded in the history.
//! The children's exit codes (`Exit`) and `--json` summaries
//! (`ironvault_core::contract::summary`) are the binary's contract: read
//! here as the same types the binary prints.

use crate::child::{self, Finished, Limits};
use crate::config::{Config, Plan, Repository, Source};
use crate::history::{History, Outcome, StepEnd};
use crate::step::Step;
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use ironvault_core::contract::summary::{BackupSummary, CopySummary, SnapshotEntry};
use ironvault_core::contract::Exit;
use serde::de::DeserializeOwned;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

mod advice;
mod drill;
mod retention;
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
    cfg: &'a Config,
    /// The `ironvault` binary the steps run.
    exe: PathBuf,
    history: &'a History,
    /// True once the run should stop (SIGTERM, Ctrl-C).
    stop: &'a (dyn Fn() -> bool + Sync),
    /// Progress and child output, a line at a time.
    log: &'a (dyn Fn(&str) + Sync),
    /// A report of every step follows the log (`run`, `drill`): a failed
    /// step's log line leaves its error to the report instead of saying it
    /// twice. The agent's log has no report, so it says everything.
    report_follows: bool,
    /// What to do about the failures seen since it was last taken (how to
    /// create a missing copy, where a password is set), each said once:
    /// step errors stay short and the advice follows the run's error.
    advice: Mutex<Vec<String>>,
}

/// Which report follows a runner's log (see `Runner::new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// `run` and `drill` print every step after the log.
    Follows,
    /// The agent and `status`: the log is all there is.
    None,
}

/// One step as it ended.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: Step,
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
    /// What to do about the failures, each said once; a line may hold a
    /// command on a line of its own (`\n`).
    pub advice: Vec<String>,
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

/// The binary `exe` with the flags and environment that open `repo`, as
/// the agent's steps and `config check --connect` run it.
pub fn repo_command(exe: &Path, repo: &Repository) -> Command {
    let mut c = Command::new(exe);
    let (args, env) = repo_args(repo);
    c.args(args);
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

impl<'a> Runner<'a> {
    /// A runner of `cfg`'s plans that runs the binary `exe`, records in
    /// `history`, stops when `stop` says so and logs through `log`.
    pub fn new(
        cfg: &'a Config,
        exe: PathBuf,
        history: &'a History,
        stop: &'a (dyn Fn() -> bool + Sync),
        log: &'a (dyn Fn(&str) + Sync),
        report: Report,
    ) -> Self {
        Runner {
            cfg,
            exe,
            history,
            stop,
            log,
            report_follows: report == Report::Follows,
            advice: Mutex::new(Vec::new()),
        }
    }

    /// Note advice for the run's report, once however often it comes up.
    pub(crate) fn advise(&self, advice: String) {
        // A poisoned lock is taken as it is: the panic already failed the run.
        let mut all = self.advice.lock().unwrap_or_else(PoisonError::into_inner);
        if !all.contains(&advice) {
            all.push(advice);
        }
    }

    /// The advice noted since the last call (a run's, or one listing's).
    pub fn take_advice(&self) -> Vec<String> {
        std::mem::take(&mut *self.advice.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Hand a finished run's advice to its report; the agent's log, which
    /// has no report, says it there, a line each.
    fn end_advice(&self, rep: &mut RunReport) {
        rep.advice = self.take_advice();
        if !self.report_follows {
            for a in &rep.advice {
                for l in a.lines() {
                    (self.log)(&format!("[{}]   {}", rep.plan, l.trim_start()));
                }
            }
        }
    }

    fn repo(&self, name: &str) -> Result<&Repository> {
        self.cfg
            .repositories
            .get(name)
            .ok_or_else(|| anyhow!("repository {name:?} is not defined in the config"))
    }

    /// An `ironvault` command on `repo` with `--json`.
    fn command(&self, repo: &Repository) -> Command {
        let mut c = repo_command(&self.exe, repo);
        c.arg("--json");
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
    /// The error stays short (what failed); the advice is noted apart.
    fn explain(&self, f: &mut Finished, plan: &Plan, repo: &Repository) {
        let (name, url, file) = (&repo.name, &repo.url, self.cfg.file.display());
        let (why, advice) = match Exit::from_code(f.code) {
            Some(Exit::RepoMissing) => {
                let this = open_flags(repo, "");
                let first = plan.copies.first().filter(|first| *first != name);
                let new = match first.and_then(|f| self.repo(f).ok()) {
                    // Related to the first copy, so copies deduplicate.
                    Some(first) => format!(
                        "if it is a new copy, create it{} with:\n  ironvault {this} init {}",
                        password_command_note(&[(repo, ""), (first, "from-")], &self.cfg.file),
                        open_flags(first, "from-"),
                    ),
                    None => format!(
                        "if it is new, create it{} with:\n  ironvault {this} init",
                        password_command_note(&[(repo, "")], &self.cfg.file)
                    ),
                };
                (
                    format!("repository {name} is not there ({url})"),
                    format!(
                        "repository {name}: is its disk mounted or its bucket reachable? {new}"
                    ),
                )
            }
            Some(Exit::WrongPassword) => (
                format!("wrong password for repository {name} ({url})"),
                format!("repository {name}: check its password_file or password_command in {file}"),
            ),
            _ => return,
        };
        f.error = Some(why);
        f.explained = true;
        self.advise(advice);
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
        if f.code != Exit::Ok {
            bail!("cannot list snapshots of {}: {}", repo.name, f.failure());
        }
        let listed: Vec<SnapshotEntry> = serde_json::from_str(f.stdout.trim())
            .with_context(|| format!("unexpected output of snapshots on {}", repo.name))?;
        let mut out = Vec::new();
        for s in listed {
            let time = DateTime::parse_from_rfc3339(&s.time)
                .ok()
                .map(|t| t.with_timezone(&Utc));
            if let Some(time) = time {
                out.push(SnapInfo { id: s.id, time });
            }
        }
        out.sort_by_key(|s| s.time);
        Ok(out)
    }

    /// Run a hook; the after hook runs to its end even when the run is being
    /// stopped (it may thaw what the before hook froze).
    fn hook(&self, plan: &Plan, which: Step, script: &str, result: Option<Outcome>) -> Finished {
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(script)
            .env("IRONVAULT_PLAN", &plan.name)
            .env("IRONVAULT_HOOK", which.as_str());
        if let Some(r) = result {
            c.env("IRONVAULT_RESULT", r.as_str());
        }
        let limits = Limits {
            nice: plan.nice,
            ionice: plan.ionice,
        };
        let never = || false;
        let stop: &(dyn Fn() -> bool + Sync) = if which == Step::After {
            &never
        } else {
            self.stop
        };
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
        step: Step,
        copy: Option<&str>,
        f: impl FnOnce() -> (Outcome, StepEnd),
    ) -> Result<Outcome> {
        let id = self.history.start_step(run, step, copy)?;
        let what = match copy {
            Some(c) => format!("{step} ({c})"),
            None => step.as_str().to_string(),
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
            None => end.describe(step.as_str(), outcome),
        };
        (self.log)(&format!("[{}] {what}: {how}", report.plan));
        report.steps.push(StepReport {
            step,
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
        // Advice from before (a status listing) is not this run's.
        self.take_advice();
        Ok(RunReport {
            run,
            plan: plan.name.clone(),
            outcome: Outcome::Success,
            error: None,
            steps: Vec::new(),
            advice: Vec::new(),
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
        // Why the run failed, with the step that failed.
        let mut failed: Vec<(Step, String)> = Vec::new();
        let mut stopped = false;
        let mut backup_ok = false;
        let mut refused = false;
        if let Some(h) = &plan.before {
            let o = self.step(run, &mut rep, Step::Before, None, || {
                let f = self.hook(plan, Step::Before, h, None);
                finished_outcome(&f, None)
            })?;
            if o == Outcome::Abandoned {
                stopped = true;
            } else if !o.ok() {
                refused = true;
                failed.push((
                    Step::Before,
                    "the before hook failed, so nothing was backed up".into(),
                ));
            }
        }
        if failed.is_empty() && !stopped && !(self.stop)() {
            let primary = self.repo(&plan.copies[0])?;
            let o = self.step(run, &mut rep, Step::Backup, Some(&primary.name), || {
                self.backup(plan, primary)
            })?;
            backup_ok = o.ok();
            stopped |= o == Outcome::Abandoned;
            if !backup_ok && !stopped {
                failed.push((
                    Step::Backup,
                    format!("backup to {} failed{}", primary.name, why(&rep)),
                ));
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
                let o = self.step(run, &mut rep, Step::Copy, Some(dest), || {
                    self.copy(plan, src, dst)
                })?;
                stopped |= o == Outcome::Abandoned;
                if !o.ok() && o != Outcome::Abandoned {
                    failed.push((Step::Copy, format!("copy to {dest} failed{}", why(&rep))));
                }
            }
        }
        // Retention only after a good backup: a failing source must not thin out
        // the copies that are now the only good ones.
        if backup_ok {
            let copy_failed = failed.iter().any(|(step, _)| *step == Step::Copy);
            stopped |= self.retention(plan, &mut rep, &mut failed, copy_failed)?;
        }
        rep.outcome = if stopped {
            Outcome::Abandoned
        } else if !failed.is_empty() {
            Outcome::Failed
        } else if rep
            .steps
            .iter()
            .any(|s| s.outcome == Outcome::Warning || retention::paused(s))
        {
            Outcome::Warning
        } else {
            Outcome::Success
        };
        if let Some(h) = &plan.after {
            let result = rep.outcome;
            let o = self.step(run, &mut rep, Step::After, None, || {
                let f = self.hook(plan, Step::After, h, Some(result));
                finished_outcome(&f, None)
            })?;
            if !o.ok() && rep.outcome.ok() {
                failed.push((Step::After, "the after hook failed".into()));
                rep.outcome = Outcome::Failed;
            }
        }
        let mut why: Vec<&str> = failed.iter().map(|(_, e)| e.as_str()).collect();
        if stopped {
            why.insert(0, "stopped before the end; the next run goes on from here");
        }
        rep.error = (!why.is_empty()).then(|| why.join("; "));
        self.history
            .end_run(run, rep.outcome, rep.error.as_deref())?;
        self.end_advice(&mut rep);
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
        if plan.suspect.enabled && matches!(plan.source, Source::Paths(_)) {
            // The backup judges itself against the plan's usual shares, so
            // its snapshot is written already tagged (signals.rs).
            match self.history.baseline(&plan.name, plan.suspect.history) {
                Ok(b) => {
                    c.arg("--suspect-if").arg(format!(
                        "changed={},incompressible={}",
                        plan.suspect.changed, plan.suspect.incompressible
                    ));
                    c.arg("--suspect-baseline").arg(format!(
                        "changed={:.4},incompressible={:.4}",
                        b.changed, b.incompressible
                    ));
                }
                Err(e) => (self.log)(&format!(
                    "[{}] backup: cannot read the plan's usual signals ({e:#}); this backup is not judged for a mass encryption",
                    plan.name
                )),
            }
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
                let summary: Option<BackupSummary> = read(s.as_ref());
                let snapshot = summary.as_ref().map(|b| b.snapshot_id.clone());
                let bytes = summary.as_ref().map(|b| b.data_added_packed);
                let (mut o, mut end) = finished_outcome(&f, s);
                if f.code == Exit::Partial && snapshot.is_some() {
                    o = Outcome::Warning;
                    end.error =
                        Some("some files could not be read; the snapshot lists them".into());
                }
                if let (Some(why), Some(id)) = (
                    summary.as_ref().and_then(|b| b.suspect.as_deref()),
                    snapshot.as_deref(),
                ) {
                    o = Outcome::Warning;
                    end.error = Some(self.open_suspect(plan, repo, id, why));
                }
                end.snapshot = snapshot;
                end.bytes = bytes;
                (o, end)
            }
            Err(e) => failed_end(e),
        }
    }

    /// Open the plan's suspect-backup incident (retention stays paused
    /// until it is cleared); the step's error, which says so.
    fn open_suspect(&self, plan: &Plan, repo: &Repository, id: &str, why: &str) -> String {
        let short = id.get(..8).unwrap_or(id);
        let msg = format!(
            "plan {}: {why} (snapshot {short} on {}, tagged suspect); retention of the plan is paused until 'ironvault incident clear {}'",
            plan.name, repo.name, plan.name
        );
        if let Err(e) = self
            .history
            .open_incident(&plan.name, "", crate::history::SUSPECT, &msg)
        {
            // Without the incident retention would not pause: say so loudly.
            return format!(
                "{msg}; BUT the incident could not be recorded ({e:#}), so retention is NOT paused"
            );
        }
        msg
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
                let bytes = read::<CopySummary>(s.as_ref()).map(|c| c.bytes_stored());
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

/// A child's `--json` summary as the type the binary printed it from.
fn read<T: DeserializeOwned>(summary: Option<&serde_json::Value>) -> Option<T> {
    summary.and_then(|s| T::deserialize(s).ok())
}

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
    if f.code == Exit::Ok {
        return (Outcome::Success, end);
    }
    end.error = Some(f.failure());
    if f.stopped || f.code == Exit::Interrupted {
        return (Outcome::Abandoned, end);
    }
    (Outcome::Failed, end)
}
