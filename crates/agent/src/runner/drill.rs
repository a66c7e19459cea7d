//! Drills: restore a plan's newest snapshot from one copy into a fresh
//! sandbox, verify every byte and metadata, and record the time as the RTA.

use super::*;
use ironvault_core::contract::summary::RestoreSummary;

impl Runner<'_> {
    /// Restore the newest snapshot of `copy` into a new directory under the
    /// sandbox, verify every byte and metadata, time it (the RTA), remove it.
    pub fn drill(
        &self,
        plan: &Plan,
        copy: &str,
        trigger: &str,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<RunReport> {
        let repo = self.repo(copy)?;
        let sandbox_root = plan
            .drill
            .as_ref()
            .and_then(|d| d.sandbox.clone())
            .unwrap_or_else(|| self.cfg.state_dir.join("drills"));
        let mut rep = self.begin(plan, "drill", trigger, scheduled_for)?;
        let run = rep.run;
        let name = format!(
            "{}-{}-{}",
            plan.name,
            copy,
            Utc::now().format("%Y%m%dT%H%M%S%.3f")
        );
        let o = self.step(run, &mut rep, Step::Drill, Some(copy), || {
            let snaps = match self.snapshots(plan, repo) {
                Ok(s) => s,
                Err(e) => return failed_end(e),
            };
            let Some(newest) = snaps.last() else {
                return failed_end(anyhow!(
                    "no snapshot of plan {} on {copy} to restore; run the plan first",
                    plan.name
                ));
            };
            // A new, empty directory of our own: a drill never writes over
            // anything, the source least of all.
            let target = match fresh_dir(&sandbox_root, &name) {
                Ok(t) => t,
                Err(e) => return failed_end(e),
            };
            let mut c = self.command(repo);
            c.args(["restore", &newest.id, "--verify", "--target"]);
            c.arg(&target);
            // At full speed whatever the plan's nice: the RTA is how fast a
            // real recovery would be.
            let res = self.exec_with(
                c,
                plan,
                Limits::default(),
                self.stop,
                Some(repo),
                Some(&target),
            );
            let _ = std::fs::remove_dir_all(&target);
            match res {
                Ok(f) => {
                    let s = f.summary();
                    let summary: Option<RestoreSummary> = read(s.as_ref());
                    let mut end = StepEnd {
                        snapshot: Some(newest.id.clone()),
                        bytes: summary.as_ref().map(|r| r.bytes_restored),
                        // The RTA: the whole restore command, from start (key,
                        // index) to the last byte verified.
                        seconds: Some(f.seconds),
                        ..StepEnd::default()
                    };
                    let verified = summary.as_ref().is_some_and(|r| r.verified);
                    let bad: Vec<String> = summary.map(|r| r.errors).unwrap_or_default();
                    end.detail = s;
                    if f.code == Exit::Ok && verified {
                        return (Outcome::Success, end);
                    }
                    if f.stopped {
                        end.error = Some("stopped".into());
                        return (Outcome::Abandoned, end);
                    }
                    end.error = Some(if bad.is_empty() {
                        f.failure()
                    } else {
                        // Name the files as the snapshot does, not by where
                        // the sandbox put them.
                        let sandbox = format!("{}/", target.display());
                        let bad: Vec<String> =
                            bad.iter().map(|e| e.replace(&sandbox, "/")).collect();
                        let other = plan.copies.iter().find(|c| *c != copy);
                        let this = open_flags(repo, "");
                        let mut fix =
                            format!("'ironvault {this} check --read-data' lists the damage");
                        let mut opened = vec![(repo, "")];
                        if let Some(o) = other.and_then(|o| self.repo(o).ok()) {
                            fix += &format!(
                                ", 'ironvault {this} repair packs {}' mends it from copy {}",
                                open_flags(o, "from-"),
                                o.name
                            );
                            opened.push((o, "from-"));
                        }
                        fix += &password_command_note(&opened, &self.cfg.file);
                        if !repo.env.is_empty() {
                            fix += &format!(" (with the env of repository {copy} in the config)");
                        }
                        self.advise(fix);
                        format!(
                            "{} damaged or not restorable: {}",
                            ironvault_core::human::plural(bad.len() as u64, "item"),
                            bad.join("; ")
                        )
                    });
                    (Outcome::Failed, end)
                }
                Err(e) => failed_end(e),
            }
        })?;
        rep.outcome = o;
        if let Some(last) = rep.steps.last() {
            rep.error = last.end.error.clone();
        }
        self.history
            .end_run(run, rep.outcome, rep.error.as_deref())?;
        self.end_advice(&mut rep);
        Ok(rep)
    }
}

/// Create `root` (mode 0700) and a new directory `name` in it; an existing
/// one is an error, never reused.
fn fresh_dir(root: &Path, name: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("cannot create the drill sandbox {}", root.display()))?;
    let target = root.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&target)
        .with_context(|| format!("cannot create the drill directory {}", target.display()))?;
    Ok(target)
}
