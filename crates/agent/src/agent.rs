//! `ironvault agent`: runs every scheduled plan (backup, copies, retention,
//! then a drill when one is due), one run of a plan at a time; catches up a
//! schedule missed while it was down (once); keeps the status fresh, raises
//! and clears alerts, and serves /metrics, /status and /healthz.

use crate::config::{Config, Plan};
use crate::facts::DeviceFacts;
use crate::history::History;
use crate::plan_lock::PlanLock;
use crate::runner::{Report, Runner};
use crate::schedule::Schedule;
use crate::status::{plan_status, PlanStatus};
use anyhow::Result;
use chrono::{DateTime, Local, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// What every thread of the agent shares.
pub struct Agent<'a> {
    pub cfg: &'a Config,
    pub exe: PathBuf,
    pub stop: &'a (dyn Fn() -> bool + Sync),
    pub log: &'a (dyn Fn(&str) + Sync),
    started: DateTime<Utc>,
    statuses: Mutex<BTreeMap<String, PlanStatus>>,
    /// One status gathering per plan at a time: gathering, alerting and
    /// storing go together, so an older status never overwrites a newer one.
    gathering: BTreeMap<String, Mutex<()>>,
}

impl<'a> Agent<'a> {
    pub fn new(
        cfg: &'a Config,
        exe: PathBuf,
        stop: &'a (dyn Fn() -> bool + Sync),
        log: &'a (dyn Fn(&str) + Sync),
    ) -> Agent<'a> {
        Agent {
            cfg,
            exe,
            stop,
            log,
            started: Utc::now(),
            statuses: Mutex::new(BTreeMap::new()),
            gathering: cfg
                .plans
                .keys()
                .map(|k| (k.clone(), Mutex::new(())))
                .collect(),
        }
    }

    fn history(&self) -> Result<History> {
        History::open(&self.cfg.history_path())
    }

    fn runner<'b>(&'b self, history: &'b History) -> Runner<'b> {
        Runner::new(
            self.cfg,
            self.exe.clone(),
            history,
            self.stop,
            self.log,
            Report::None,
        )
    }

    /// Sleep until `until` or a stop request; false if stopped.
    fn sleep_until(&self, until: DateTime<Local>) -> bool {
        loop {
            if (self.stop)() {
                return false;
            }
            let left = until - Local::now();
            if left <= chrono::Duration::zero() {
                return true;
            }
            let step = left
                .to_std()
                .unwrap_or_default()
                .min(Duration::from_millis(200));
            std::thread::sleep(step);
        }
    }

    /// Gather one plan's status, keep it, and raise or clear its alerts.
    fn refresh(&self, history: &History, plan: &Plan) {
        let _one = self
            .gathering
            .get(&plan.name)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        let runner = self.runner(history);
        let facts = DeviceFacts::from_env();
        let s = plan_status(self.cfg, &runner, history, &facts, plan);
        if (self.stop)() {
            // Listings cut short by the stop would look like unreachable copies.
            return;
        }
        match crate::alerts::evaluate(history, &self.cfg.alerts, &self.cfg.hostname, &s) {
            Ok(lines) => lines
                .iter()
                .for_each(|l| (self.log)(&format!("[{}] {l}", plan.name))),
            Err(e) => (self.log)(&format!("[{}] cannot evaluate alerts: {e:#}", plan.name)),
        }
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plan.name.clone(), s);
    }

    /// The statuses gathered so far, in plan order.
    pub fn statuses(&self) -> Vec<PlanStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Run the agent until a stop request.
    pub fn run(&self) -> Result<()> {
        // Held while we run: `status` says whether an agent runs by it.
        let _running = match crate::plan_lock::AgentLock::acquire(&self.cfg.state_dir)? {
            Ok(l) => l,
            Err(pid) => anyhow::bail!(
                "another agent{} runs with state_dir {}; stop it first",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                self.cfg.state_dir.display()
            ),
        };
        let history = self.history()?;
        for l in crate::alerts::close_stale(&history, self.cfg)? {
            (self.log)(&l);
        }
        drop(history);
        let token = match &self.cfg.listen_token_file {
            Some(f) => Some(crate::config::read_token(f).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read listen_token_file {}: {e}; its first line is the token HTTP clients send",
                    f.display()
                )
            })?),
            None => None,
        };
        let server = match &self.cfg.listen {
            Some(addr) => Some(tiny_http::Server::http(addr).map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {addr}: {e}; set listen = \"HOST:PORT\" (or \"off\") in {}",
                    self.cfg.file.display()
                )
            })?),
            None => None,
        };
        if let Some(addr) = &self.cfg.listen {
            (self.log)(&format!(
                "serving /metrics, /status and /healthz on http://{addr}"
            ));
        }
        let scheduled: Vec<&Plan> = self
            .cfg
            .plans
            .values()
            .filter(|p| {
                p.schedule.is_some() || p.drill.as_ref().is_some_and(|d| d.schedule.is_some())
            })
            .collect();
        (self.log)(&format!(
            "agent started: {} of {} plans scheduled; history {}",
            scheduled.len(),
            self.cfg.plans.len(),
            self.cfg.history_path().display()
        ));
        std::thread::scope(|s| {
            if let Some(server) = &server {
                let token = token.as_deref();
                s.spawn(move || self.serve(server, token));
            }
            s.spawn(|| self.refresher());
            for p in &scheduled {
                let p = *p;
                s.spawn(move || {
                    // A passing error (a busy database, a full disk) must
                    // not end the plan's schedule: log it and go on.
                    while let Err(e) = self.plan_loop(p) {
                        (self.log)(&format!(
                            "[{}] scheduling error: {e:#}; trying again in 30 s",
                            p.name
                        ));
                        if !self.sleep_until(Local::now() + chrono::Duration::seconds(30)) {
                            break;
                        }
                    }
                });
            }
            // Wait for the stop request, then let the threads wind down.
            while !(self.stop)() {
                std::thread::sleep(Duration::from_millis(200));
            }
            (self.log)("stopping: asking running steps to stop at a safe point (signal again to stop at once)");
            if let Some(server) = &server {
                server.unblock();
            }
        });
        (self.log)("agent stopped");
        Ok(())
    }

    /// Refresh every plan's status now and then (every `refresh`).
    fn refresher(&self) {
        let Ok(history) = self.history() else {
            return;
        };
        loop {
            for p in self.cfg.plans.values() {
                if (self.stop)() {
                    return;
                }
                self.refresh(&history, p);
            }
            let until = Local::now()
                + chrono::Duration::from_std(self.cfg.refresh)
                    .unwrap_or(chrono::Duration::minutes(5));
            if !self.sleep_until(until) {
                return;
            }
        }
    }

    /// Take the plan's lock, waiting while a manual run or drill holds it.
    fn lock(&self, plan: &Plan) -> Result<Option<PlanLock>> {
        let mut said = false;
        loop {
            if let Some(l) = PlanLock::try_acquire(&self.cfg.state_dir, &plan.name)? {
                return Ok(Some(l));
            }
            if !said {
                (self.log)(&format!(
                    "[{}] the plan is running (a manual run or drill); waiting for it",
                    plan.name
                ));
                said = true;
            }
            if !self.sleep_until(Local::now() + chrono::Duration::seconds(1)) {
                return Ok(None);
            }
        }
    }

    fn plan_loop(&self, plan: &Plan) -> Result<()> {
        let history = self.history()?;
        let runner = self.runner(&history);
        let start = Local::now();
        // The newest schedule time served; a plan that never ran is due at once.
        // A plan that never ran to its end is due at once.
        let never_ran = !history
            .run_counts(&plan.name)?
            .iter()
            .any(|(result, n)| result != "abandoned" && *n > 0);
        let mut served_run: Option<DateTime<Local>> = history
            .last_scheduled(&plan.name, "run")?
            .map(|t| t.with_timezone(&Local));
        if served_run.is_none() && !never_ran {
            served_run = Some(start);
        }
        let mut served_drill: DateTime<Local> = history
            .last_scheduled(&plan.name, "drill")?
            .map(|t| t.with_timezone(&Local))
            .unwrap_or(start);
        let drill_schedule: Option<&Schedule> =
            plan.drill.as_ref().and_then(|d| d.schedule.as_ref());
        loop {
            if (self.stop)() {
                return Ok(());
            }
            let now = Local::now();
            let run_due = plan.schedule.as_ref().and_then(|s| {
                let prev = s.last_at_or_before(&now);
                match served_run {
                    None => Some(prev.unwrap_or(now)),
                    Some(served) => prev.filter(|p| *p > served),
                }
            });
            let drill_due = drill_schedule
                .and_then(|s| s.last_at_or_before(&now).filter(|p| *p > served_drill));
            if run_due.is_none() && drill_due.is_none() {
                let next = [
                    plan.schedule.as_ref().and_then(|s| s.next_after(&now)),
                    drill_schedule.and_then(|s| s.next_after(&now)),
                ]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| {
                    (self.log)(&format!(
                        "[{}] error: the schedule names no time after {}; checking again in an hour",
                        plan.name,
                        now.format("%Y-%m-%d %H:%M:%S")
                    ));
                    now + chrono::Duration::hours(1)
                });
                if !self.sleep_until(next) {
                    return Ok(());
                }
                continue;
            }
            if let Some(w) = &plan.window {
                if !w.contains(&now) {
                    let opens = w.next_open(&now);
                    (self.log)(&format!(
                        "[{}] due, waiting for the run window to open at {}",
                        plan.name,
                        opens.format("%H:%M")
                    ));
                    if !self.sleep_until(opens) {
                        return Ok(());
                    }
                    // Look again at what is due now that the window is open.
                    continue;
                }
            }
            let Some(_lock) = self.lock(plan)? else {
                return Ok(());
            };
            history.abandon_unfinished(&plan.name)?;
            let trigger = |t: DateTime<Local>| if t < start { "catch-up" } else { "schedule" };
            if let Some(t) = run_due {
                served_run = Some(t);
                let rep = runner.run_plan(plan, trigger(t), Some(t.with_timezone(&Utc)));
                match rep {
                    Ok(r) => (self.log)(&format!(
                        "[{}] run {}: {}{}",
                        plan.name,
                        r.run,
                        r.outcome.as_str(),
                        r.error.map(|e| format!(" ({e})")).unwrap_or_default()
                    )),
                    Err(e) => {
                        (self.log)(&format!("[{}] run could not be recorded: {e:#}", plan.name))
                    }
                }
            }
            let drill_now = drill_due.or_else(|| {
                drill_schedule.and_then(|s| {
                    s.last_at_or_before(&Local::now())
                        .filter(|p| *p > served_drill)
                })
            });
            if let (Some(t), Some(d)) = (drill_now, &plan.drill) {
                if !(self.stop)() {
                    served_drill = t;
                    match runner.drill(plan, &d.copy, trigger(t), Some(t.with_timezone(&Utc))) {
                        Ok(r) => (self.log)(&format!(
                            "[{}] drill {}: {}{}",
                            plan.name,
                            r.run,
                            r.outcome.as_str(),
                            r.error.map(|e| format!(" ({e})")).unwrap_or_default()
                        )),
                        Err(e) => {
                            (self.log)(&format!("[{}] drill could not run: {e:#}", plan.name))
                        }
                    }
                }
            }
            drop(_lock);
            if !(self.stop)() {
                self.refresh(&history, plan);
            }
        }
    }

    /// Answer HTTP requests until unblocked; /status and /metrics only to
    /// those `http::admit` lets in.
    fn serve(&self, server: &tiny_http::Server, token: Option<&str>) {
        let history = match self.history() {
            Ok(h) => h,
            Err(e) => {
                (self.log)(&format!("metrics server: {e:#}"));
                return;
            }
        };
        for req in server.incoming_requests() {
            let path = req.url().split('?').next().unwrap_or("").to_string();
            let header = |name: &'static str| {
                req.headers()
                    .iter()
                    .find(|h| h.field.equiv(name))
                    .map(|h| h.value.as_str().to_string())
            };
            let (host, auth) = (header("Host"), header("Authorization"));
            if let Err(r) = crate::http::admit(&path, host.as_deref(), auth.as_deref(), token) {
                let mut resp = tiny_http::Response::from_string(r.message).with_status_code(r.code);
                if r.ask_token {
                    if let Ok(h) =
                        tiny_http::Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..])
                    {
                        resp = resp.with_header(h);
                    }
                }
                let _ = req.respond(resp);
                continue;
            }
            let (code, ctype, body) = match path.as_str() {
                "/metrics" => match crate::metrics::render(
                    &self.statuses(),
                    &history,
                    self.started,
                    Utc::now(),
                ) {
                    Ok(t) => (200, crate::metrics::CONTENT_TYPE, t),
                    Err(e) => (500, "text/plain", format!("{e:#}\n")),
                },
                "/status" => {
                    let all = self.statuses();
                    let held = all.iter().all(|s| s.missed.is_empty());
                    let mut v = status_json(self.cfg, &all, held);
                    if all.len() < self.cfg.plans.len() {
                        // Not every plan gathered yet: nothing is known to hold.
                        v["objectives_held"] = serde_json::Value::Null;
                        v["gathering"] = true.into();
                    }
                    (200, "application/json", v.to_string())
                }
                "/healthz" => (200, "text/plain", "ok\n".into()),
                _ => (
                    404,
                    "text/plain",
                    "not found: try /metrics, /status or /healthz\n".into(),
                ),
            };
            let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()).ok();
            let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
            if let Some(h) = header {
                resp = resp.with_header(h);
            }
            let _ = req.respond(resp);
        }
    }
}

/// The JSON document of `status --json` and /status.
pub fn status_json(cfg: &Config, plans: &[PlanStatus], held: bool) -> serde_json::Value {
    serde_json::json!({"host": cfg.hostname, "site": cfg.site, "objectives_held": held, "plans": plans})
}
