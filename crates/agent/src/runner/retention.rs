//! The retention step of a run: on each copy with a keep policy, `forget`
//! by that policy, then `prune` if anything was forgotten. Plans that share
//! a repository take turns on this host; a prune held off by someone else's
//! lock is postponed, not failed.

use super::*;
use ironvault_core::contract::summary::{ForgetSummary, PruneSummary};

/// How a retention step paused by a suspect backup starts its error.
const PAUSED: &str = "paused by the suspect-backup incident opened";

/// True for a retention step a suspect backup paused (the run is then a
/// warning: retention is not doing its job until someone looks).
pub(super) fn paused(s: &StepReport) -> bool {
    s.step == Step::Retention
        && s.outcome == Outcome::Skipped
        && s.end
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(PAUSED))
}

impl Runner<'_> {
    /// Retention on every copy with a keep policy, after a good backup.
    /// With `copy_failed`, the first copy keeps its snapshots until every
    /// copy has them. Pushes what failed onto `failed`; true if the run was
    /// stopped.
    pub(super) fn retention(
        &self,
        plan: &Plan,
        rep: &mut RunReport,
        failed: &mut Vec<(Step, String)>,
        copy_failed: bool,
    ) -> Result<bool> {
        let run = rep.run;
        let mut stopped = false;
        // A suspect backup pauses retention on every copy, so the clean
        // snapshots before it cannot age out until an operator clears it.
        let paused = match self.history.suspect_incident(&plan.name) {
            Ok(p) => p,
            Err(e) => {
                // Not knowing whether it is paused, keep everything.
                Some(crate::history::Incident {
                    plan: plan.name.clone(),
                    copy: String::new(),
                    kind: crate::history::SUSPECT.into(),
                    opened: Utc::now(),
                    message: format!("the history could not be read ({e:#})"),
                    delivered: true,
                    sent: Vec::new(),
                    attempts: 0,
                    next_try: Utc::now(),
                })
            }
        };
        for name in &plan.copies {
            let Some(keep) = plan.keep.get(name) else {
                continue;
            };
            if let Some(inc) = &paused {
                self.step(run, rep, Step::Retention, Some(name), || {
                    (
                        Outcome::Skipped,
                        StepEnd {
                            error: Some(format!(
                                "{PAUSED} {}: {}",
                                inc.opened
                                    .with_timezone(&chrono::Local)
                                    .format("%Y-%m-%d %H:%M"),
                                inc.message
                            )),
                            ..StepEnd::default()
                        },
                    )
                })?;
                continue;
            }
            if copy_failed && *name == plan.copies[0] {
                // Snapshots that did not reach every copy must stay on the
                // first until they have.
                self.step(run, rep, Step::Retention, Some(name), || {
                    (
                        Outcome::Skipped,
                        StepEnd {
                            error: Some(
                                "a copy failed, so the snapshots stay here until every copy has them"
                                    .into(),
                            ),
                            ..StepEnd::default()
                        },
                    )
                })?;
                continue;
            }
            // A copy this run could not write gets nothing new to thin out,
            // and whatever made the copy fail would fail retention again.
            let not_written = rep.steps.iter().any(|s| {
                s.step == Step::Copy && s.copy.as_deref() == Some(name.as_str()) && !s.outcome.ok()
            });
            if not_written {
                self.step(run, rep, Step::Retention, Some(name), || {
                    (
                        Outcome::Skipped,
                        StepEnd {
                            error: Some(format!("not run: the copy to {name} failed")),
                            ..StepEnd::default()
                        },
                    )
                })?;
                continue;
            }
            if (self.stop)() {
                return Ok(true);
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
                Ok(None) => return Ok(true),
                Err(e) => {
                    self.step(run, rep, Step::Retention, Some(name), || failed_end(e))?;
                    failed.push((
                        Step::Retention,
                        format!("retention on {name} failed{}", why(rep)),
                    ));
                    continue;
                }
            };
            let o = self.step(run, rep, Step::Retention, Some(name), || {
                self.forget_then_prune(plan, repo, keep)
            })?;
            stopped |= o == Outcome::Abandoned;
            if !o.ok() && o != Outcome::Abandoned {
                failed.push((
                    Step::Retention,
                    format!("retention on {name} failed{}", why(rep)),
                ));
            }
        }
        Ok(stopped)
    }

    /// `forget` by `keep` on `repo`, then `prune` if it removed something and
    /// the plan prunes.
    fn forget_then_prune(
        &self,
        plan: &Plan,
        repo: &Repository,
        keep: &crate::config::Keep,
    ) -> (Outcome, StepEnd) {
        let mut c = self.command(repo);
        c.args(["forget", "--tag", &plan.tag(), "--host", &self.cfg.hostname]);
        c.args(keep.args());
        let f = match self.exec(c, plan, repo) {
            Ok(f) => f,
            Err(e) => return failed_end(e),
        };
        let s = f.summary();
        let removed = read::<ForgetSummary>(s.as_ref()).map_or(0, |s| s.removed_count);
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
            Ok(f) if f.code == Exit::Locked => (
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
                let freed = read::<PruneSummary>(s.as_ref()).map(|p| p.bytes_freed);
                let (o, mut end) = finished_outcome(&f, s);
                end.bytes = freed;
                (o, end)
            }
            Err(e) => failed_end(e),
        }
    }
}
