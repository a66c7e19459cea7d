//! Alerts: incidents (a failed run, an RPO miss, an unreachable repository,
//! an RTA above the RTO or a failed drill, a broken 3-2-1 rule) are opened and
//! resolved in the history, and each opening and each recovery is delivered
//! once: to the configured command (JSON on stdin) and/or webhook (HTTP POST).

use crate::config::{Alerts, Config};
use crate::history::{History, Incident};
use crate::status::PlanStatus;
use anyhow::Result;
use chrono::Utc;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long an alert command may run.
const ALERT_TIMEOUT: Duration = Duration::from_secs(60);

/// The alert as the command and the webhook receive it.
pub fn alert_json(inc: &Incident, state: &str, host: &str) -> serde_json::Value {
    serde_json::json!({
        "plan": inc.plan, "copy": inc.copy, "kind": inc.kind, "state": state,
        "message": inc.message, "opened": inc.opened, "time": Utc::now(), "host": host,
    })
}

/// The incidents a plan's status shows now: (copy, kind, message).
pub fn current_incidents(s: &PlanStatus) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(r) = &s.last_run {
        if r.result == "failed" {
            out.push((
                String::new(),
                "run_failed",
                format!(
                    "the last run of plan {} failed: {}",
                    s.plan,
                    r.error.as_deref().unwrap_or("see the history")
                ),
            ));
        }
    }
    for c in &s.copies {
        if let Some(e) = &c.unreachable {
            out.push((
                c.name.clone(),
                "unreachable",
                format!(
                    "repository {} of plan {} is unreachable: {e}{}",
                    c.name,
                    s.plan,
                    c.advice
                        .iter()
                        .map(|a| format!("; {}", a.replace("\n", " ")))
                        .collect::<String>()
                ),
            ));
        } else if c.rpo_met == Some(false) {
            let held = c
                .age_seconds
                .map(|a| crate::duration::human(Duration::from_secs(a)))
                .map(|a| format!("newest snapshot {a} old"))
                .unwrap_or_else(|| "no snapshot".into());
            out.push((
                c.name.clone(),
                "rpo_missed",
                format!(
                    "RPO missed for plan {} on {}: {held}, objective {}",
                    s.plan,
                    c.name,
                    crate::duration::human(Duration::from_secs(s.rpo_seconds.unwrap_or(0)))
                ),
            ));
        }
    }
    if let Some(d) = &s.last_drill {
        if d.rto_met == Some(false) {
            let what = match d.rta_seconds {
                Some(rta) => format!(
                    "RTA {} above the RTO of {}",
                    crate::duration::human(Duration::from_secs_f64(rta)),
                    crate::duration::human(Duration::from_secs(s.rto_seconds.unwrap_or(0)))
                ),
                None => format!(
                    "the drill failed: {}",
                    d.error.as_deref().unwrap_or("see the history")
                ),
            };
            out.push((
                d.copy.clone().unwrap_or_default(),
                "rto_missed",
                format!("drill of plan {}: {what}", s.plan),
            ));
        }
    }
    if !s.three_two_one.held {
        let broken: Vec<String> = s
            .three_two_one
            .rules
            .iter()
            .filter(|r| !r.held)
            .map(|r| r.detail.clone())
            .collect();
        out.push((
            String::new(),
            "rule_321",
            format!(
                "3-2-1 does not hold for plan {}: {}",
                s.plan,
                broken.join("; ")
            ),
        ));
    }
    out
}

/// Incidents whose state cannot be known now: an unreachable copy's RPO.
fn unknown(s: &PlanStatus) -> Vec<(String, &'static str)> {
    s.copies
        .iter()
        .filter(|c| c.unreachable.is_some())
        .map(|c| (c.name.clone(), "rpo_missed"))
        .collect()
}

/// The configured channels an open incident's opening has not reached:
/// those that failed, and those added to the config since it opened. (An
/// incident alerted before channels were recorded, `*`, owes none.)
fn owed(alerts: &Alerts, inc: &Incident) -> bool {
    if inc.sent.iter().any(|s| s == "*") {
        return false;
    }
    if inc.attempts == 0 {
        // Never tried: it goes out (or is logged as having no channel).
        return true;
    }
    let configured = [
        ("command", alerts.command.is_some()),
        ("webhook", alerts.webhook.is_some()),
    ];
    configured
        .iter()
        .any(|(c, on)| *on && !inc.sent.iter().any(|s| s == c))
}

/// The wait before the next delivery attempt of an opening after `attempts`
/// failed ones: 1 min, doubling, at most an hour.
pub fn retry_after(attempts: u32) -> chrono::Duration {
    chrono::Duration::minutes(1i64 << attempts.saturating_sub(1).min(6))
        .min(chrono::Duration::hours(1))
}

/// Open what is new, resolve what recovered, deliver each change once.
/// An opening that did not reach every channel is sent again, with a
/// growing wait ([`retry_after`]), to the channels that did not take it
/// (never twice to one that did); an incident that recovers in between gets
/// its recovery instead.
pub fn evaluate(
    history: &History,
    alerts: &Alerts,
    host: &str,
    s: &PlanStatus,
) -> Result<Vec<String>> {
    evaluate_at(history, alerts, host, s, Utc::now())
}

/// [`evaluate`] as if the time were `now` (tests of the retry waits).
pub fn evaluate_at(
    history: &History,
    alerts: &Alerts,
    host: &str,
    s: &PlanStatus,
    now_time: chrono::DateTime<Utc>,
) -> Result<Vec<String>> {
    let now = current_incidents(s);
    let unknown = unknown(s);
    let mut log = Vec::new();
    for (copy, kind, msg) in &now {
        history.open_incident(&s.plan, copy, kind, msg)?;
    }
    let open: Vec<Incident> = history
        .incidents()?
        .into_iter()
        .filter(|i| i.plan == s.plan)
        .collect();
    for inc in open {
        let key = |c: &String, k: &str| *c == inc.copy && k == inc.kind;
        // A suspect backup stays open until an operator clears it.
        let held = inc.kind == crate::history::SUSPECT;
        if held || now.iter().any(|(c, k, _)| key(c, k)) || unknown.iter().any(|(c, k)| key(c, k)) {
            if owed(alerts, &inc) && inc.next_try <= now_time {
                let d = deliver(alerts, &alert_json(&inc, "open", host), &inc.sent);
                history.log_alert(&inc, "open", &d.summary())?;
                let mut sent = inc.sent.clone();
                sent.extend(d.took());
                let next = now_time + retry_after(inc.attempts + 1);
                history.mark_attempt(&inc, &sent, d.all_ok(), next)?;
                let mut line = format!("alert: {} ({})", inc.message, d.summary());
                if !d.all_ok() {
                    // Retries ride on status gatherings (each run, every
                    // `refresh`): say from when, not a promise of when.
                    line += &format!(
                        "; trying again at the first status check after {}",
                        next.with_timezone(&chrono::Local).format("%H:%M:%S")
                    );
                }
                log.push(line);
            }
            continue;
        }
        if let Some(inc) = history.resolve_incident(&inc.plan, &inc.copy, &inc.kind)? {
            let d = deliver(alerts, &alert_json(&inc, "resolved", host), &[]);
            history.log_alert(&inc, "resolved", &d.summary())?;
            log.push(format!("recovered: {} ({})", inc.message, d.summary()));
        }
    }
    Ok(log)
}

/// An operator clears the plan's suspect-backup incident (`ironvault
/// incident clear PLAN`): retention runs again from the next run. The
/// recovery is alerted and logged like any other; the incident as it was,
/// or None if none was open.
pub fn clear_suspect(history: &History, cfg: &Config, plan: &str) -> Result<Option<Incident>> {
    let Some(mut inc) = history.resolve_incident(plan, "", crate::history::SUSPECT)? else {
        return Ok(None);
    };
    inc.message = format!("{} (cleared by an operator)", inc.message);
    let d = deliver(
        &cfg.alerts,
        &alert_json(&inc, "resolved", &cfg.hostname),
        &[],
    );
    history.log_alert(&inc, "resolved", &d.summary())?;
    Ok(Some(inc))
}

/// Close the incidents of plans and copies no longer in the config (renamed
/// or removed), with a last alert that says so.
pub fn close_stale(history: &History, cfg: &Config) -> Result<Vec<String>> {
    let mut log = Vec::new();
    for inc in history.incidents()? {
        let known = cfg
            .plans
            .get(&inc.plan)
            .is_some_and(|p| inc.copy.is_empty() || p.copies.contains(&inc.copy));
        if known {
            continue;
        }
        if let Some(mut inc) = history.resolve_incident(&inc.plan, &inc.copy, &inc.kind)? {
            inc.message = format!("{} (closed: no longer in the config)", inc.message);
            let d = deliver(
                &cfg.alerts,
                &alert_json(&inc, "resolved", &cfg.hostname),
                &[],
            );
            history.log_alert(&inc, "resolved", &d.summary())?;
            log.push(format!("closed: {}", inc.message));
        }
    }
    Ok(log)
}

/// What became of one alert on each channel.
pub struct Delivery {
    /// (channel, None if it took the alert or the error).
    pub channels: Vec<(&'static str, Option<String>)>,
}

impl Delivery {
    /// One line for the log and the history.
    pub fn summary(&self) -> String {
        if self.channels.is_empty() {
            return "no alert channel configured".into();
        }
        self.channels
            .iter()
            .map(|(c, e)| match e {
                None => format!("{c} ok"),
                Some(e) => format!("{c} failed: {e}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The channels that took it.
    pub fn took(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|(c, _)| c.to_string())
            .collect()
    }

    /// No channel failed.
    pub fn all_ok(&self) -> bool {
        self.channels.iter().all(|(_, e)| e.is_none())
    }
}

/// Send one alert to every configured channel not in `skip`.
pub fn deliver(alerts: &Alerts, v: &serde_json::Value, skip: &[String]) -> Delivery {
    let wanted = |c: &str| !skip.iter().any(|s| s == c);
    let mut channels = Vec::new();
    if let Some(cmd) = alerts.command.as_ref().filter(|_| wanted("command")) {
        channels.push((
            "command",
            run_command(cmd, v).err().map(|e| format!("{e:#}")),
        ));
    }
    if let Some(url) = alerts.webhook.as_ref().filter(|_| wanted("webhook")) {
        channels.push(("webhook", post(url, v).err().map(|e| cause(&e))));
    }
    Delivery { channels }
}

/// An error and its causes on one line, each said once (HTTP client errors
/// repeat their cause in their own message).
fn cause(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for part in e.chain().map(|c| c.to_string()) {
        if out.contains(&part) {
            continue;
        }
        if part.contains(&out) && !out.is_empty() {
            out = part;
            continue;
        }
        if !out.is_empty() {
            out += ": ";
        }
        out += &part;
    }
    out
}

fn run_command(cmd: &str, v: &serde_json::Value) -> Result<()> {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("IRONVAULT_ALERT_PLAN", s("plan"))
        .env("IRONVAULT_ALERT_COPY", s("copy"))
        .env("IRONVAULT_ALERT_KIND", s("kind"))
        .env("IRONVAULT_ALERT_STATE", s("state"))
        .env("IRONVAULT_ALERT_MESSAGE", s("message"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(format!("{v}\n").as_bytes());
    }
    // A hung alert command must not hold up the plans and other alerts.
    let t = std::time::Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if t.elapsed() > ALERT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("still running after {} s; ended", ALERT_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    anyhow::ensure!(st.success(), "{st}");
    Ok(())
}

/// POST the alert as JSON; a 2xx answer is success.
fn post(url: &str, v: &serde_json::Value) -> Result<()> {
    use object_store::client::{HttpConnector, ReqwestConnector};
    let opts = object_store::ClientOptions::new()
        .with_allow_http(url.starts_with("http://"))
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(30));
    let client = ReqwestConnector::default().connect(&opts)?;
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(object_store::client::HttpRequestBody::from(v.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt.block_on(client.execute(req))?;
    anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    Ok(())
}

#[cfg(test)]
mod tests;
