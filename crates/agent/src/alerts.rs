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
                    "repository {} of plan {} is unreachable: {e}",
                    c.name, s.plan
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
        if now.iter().any(|(c, k, _)| key(c, k)) || unknown.iter().any(|(c, k)| key(c, k)) {
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
mod tests {
    use super::*;
    use crate::facts::Medium;
    use crate::status::{CopyStatus, DrillStatus, RunStatus};
    use crate::verdict::{Place, Roadmap, Rule, Verdict};

    fn status() -> PlanStatus {
        let copy = |name: &str| CopyStatus {
            name: name.into(),
            url: format!("/r/{name}"),
            place: Place::Local {
                medium: Medium::Disk {
                    disks: ["sdb".to_string()].into(),
                },
            },
            site: None,
            newest_snapshot: Some("ab".into()),
            newest_time: Some(Utc::now()),
            age_seconds: Some(10),
            rpo_met: Some(true),
            unreachable: None,
        };
        PlanStatus {
            plan: "erp".into(),
            rpo_seconds: Some(900),
            rto_seconds: Some(3600),
            source: Place::Stream,
            copies: vec![copy("local"), copy("cloud")],
            last_run: Some(RunStatus {
                started: Utc::now(),
                ended: Some(Utc::now()),
                result: "success".into(),
                error: None,
            }),
            last_success: None,
            last_drill: Some(DrillStatus {
                copy: Some("cloud".into()),
                time: Utc::now(),
                result: "success".into(),
                rta_seconds: Some(100.0),
                rto_met: Some(true),
                error: None,
            }),
            three_two_one: Verdict {
                held: true,
                rules: vec![],
            },
            roadmap: Roadmap {
                reached: vec![1, 2, 3],
                highest: 3,
                next: None,
            },
            missed: vec![],
            notes: vec![],
        }
    }

    fn kinds(s: &PlanStatus) -> Vec<(String, &'static str)> {
        current_incidents(s)
            .into_iter()
            .map(|(c, k, _)| (c, k))
            .collect()
    }

    #[test]
    fn each_kind_of_incident_is_seen_and_a_healthy_plan_has_none() {
        let mut s = status();
        assert!(kinds(&s).is_empty());
        s.last_run.as_mut().unwrap().result = "failed".into();
        s.copies[0].rpo_met = Some(false);
        s.copies[0].age_seconds = Some(4000);
        s.copies[1].unreachable = Some("connection refused".into());
        let d = s.last_drill.as_mut().unwrap();
        d.rto_met = Some(false);
        d.rta_seconds = Some(5400.0);
        s.three_two_one = Verdict {
            held: false,
            rules: vec![Rule {
                rule: "1 off-site",
                held: false,
                detail: "no copy off-site".into(),
                fix: None,
            }],
        };
        let all = current_incidents(&s);
        let k: Vec<(String, &str)> = all.iter().map(|(c, k, _)| (c.clone(), *k)).collect();
        assert_eq!(
            k,
            [
                (String::new(), "run_failed"),
                ("local".into(), "rpo_missed"),
                ("cloud".into(), "unreachable"),
                ("cloud".into(), "rto_missed"),
                (String::new(), "rule_321"),
            ]
        );
        assert_eq!(
            all[1].2,
            "RPO missed for plan erp on local: newest snapshot 1 h 6 min old, objective 15 min"
        );
        assert_eq!(
            all[3].2,
            "drill of plan erp: RTA 1 h 30 min above the RTO of 1 h"
        );
        assert!(
            all[4]
                .2
                .ends_with("3-2-1 does not hold for plan erp: no copy off-site"),
            "{}",
            all[4].2
        );
        // A failed drill is an RTO incident too.
        let d = s.last_drill.as_mut().unwrap();
        d.rta_seconds = None;
        d.error = Some("2 files damaged".into());
        assert!(current_incidents(&s)[3]
            .2
            .ends_with("the drill failed: 2 files damaged"));
    }

    #[test]
    fn incidents_open_once_and_resolve_once_through_the_command() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite")).unwrap();
        let out = d.path().join("alerts");
        let alerts = Alerts {
            command: Some(format!("cat >> {}", out.display())),
            webhook: None,
        };
        let mut s = status();
        s.copies[1].unreachable = Some("gone".into());
        assert_eq!(evaluate(&h, &alerts, "host1", &s).unwrap().len(), 1);
        assert!(
            evaluate(&h, &alerts, "host1", &s).unwrap().is_empty(),
            "no second alert"
        );
        s.copies[1].unreachable = None;
        let l = evaluate(&h, &alerts, "host1", &s).unwrap();
        assert_eq!(l.len(), 1);
        assert!(
            l[0].starts_with("recovered: repository cloud of plan erp is unreachable: gone"),
            "{l:?}"
        );
        let sent: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            (sent[0]["state"].as_str(), sent[1]["state"].as_str()),
            (Some("open"), Some("resolved"))
        );
        assert_eq!(sent[0]["host"], "host1");
        assert!(h.incidents().unwrap().is_empty());
    }

    #[test]
    fn a_failed_delivery_is_retried_and_an_unknown_rpo_is_not_resolved() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite")).unwrap();
        let flag = d.path().join("down");
        std::fs::write(&flag, "").unwrap();
        let out = d.path().join("alerts");
        let alerts = Alerts {
            command: Some(format!(
                "[ ! -e {} ] && cat >> {}",
                flag.display(),
                out.display()
            )),
            webhook: None,
        };
        let mut s = status();
        s.copies[0].rpo_met = Some(false);
        let t0 = Utc::now();
        let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
        let l = evaluate_at(&h, &alerts, "h", &s, at(0)).unwrap();
        assert!(
            l[0].ends_with(&format!(
                "(command failed: exit status: 1); trying again at the first status check after {}",
                at(60).with_timezone(&chrono::Local).format("%H:%M:%S")
            )),
            "{l:?}"
        );
        assert!(!out.exists());
        // Not again before the wait; then again, with a doubled wait.
        assert!(evaluate_at(&h, &alerts, "h", &s, at(30))
            .unwrap()
            .is_empty());
        let l = evaluate_at(&h, &alerts, "h", &s, at(61)).unwrap();
        let after = at(61 + 120).with_timezone(&chrono::Local);
        assert!(
            l[0].ends_with(&after.format("after %H:%M:%S").to_string()),
            "{l:?}"
        );
        assert!(evaluate_at(&h, &alerts, "h", &s, at(150))
            .unwrap()
            .is_empty());
        // The channel works again: the same alert goes out at the next try, once.
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(evaluate_at(&h, &alerts, "h", &s, at(190)).unwrap().len(), 1);
        assert!(evaluate_at(&h, &alerts, "h", &s, at(9999))
            .unwrap()
            .is_empty());
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
        assert_eq!(h.incidents().unwrap()[0].attempts, 3);
        // The copy becomes unreachable: its RPO is unknown, not recovered.
        s.copies[0].rpo_met = None;
        s.copies[0].unreachable = Some("down".into());
        let l = evaluate(&h, &alerts, "h", &s).unwrap();
        assert!(l.iter().all(|l| !l.starts_with("recovered")), "{l:?}");
        assert!(h
            .incidents()
            .unwrap()
            .iter()
            .any(|i| i.kind == "rpo_missed"));
    }

    #[test]
    fn retry_waits_grow_to_an_hour() {
        let m = |n: u32| retry_after(n).num_minutes();
        assert_eq!(
            (m(0), m(1), m(2), m(3), m(6), m(7), m(40)),
            (1, 1, 2, 4, 32, 60, 60)
        );
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let e = anyhow::anyhow!("tcp connect error: Connection refused")
            .context("error sending request")
            .context("HTTP error: error sending request");
        assert_eq!(
            cause(&e),
            "HTTP error: error sending request: tcp connect error: Connection refused"
        );
    }

    #[test]
    fn a_retry_goes_only_to_the_channel_that_failed_and_a_recovery_ends_retries() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite")).unwrap();
        let out = d.path().join("alerts");
        // A webhook that answers 503 to its first request, 200 after.
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
        let h2 = hits.clone();
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                let mut hits = h2.lock().unwrap();
                let code = if hits.is_empty() { 503 } else { 200 };
                hits.push(code);
                let _ = req.respond(tiny_http::Response::empty(code));
            }
        });
        let alerts = Alerts {
            command: Some(format!("cat >> {}", out.display())),
            webhook: Some(format!("http://127.0.0.1:{port}/hook")),
        };
        let mut s = status();
        s.copies[0].rpo_met = Some(false);
        let l = evaluate(&h, &alerts, "h", &s).unwrap();
        assert!(
            l[0].contains("command ok") && l[0].contains("webhook failed: HTTP 503"),
            "{l:?}"
        );
        // The next try: the webhook alone gets it again.
        let later = Utc::now() + chrono::Duration::minutes(2);
        let l = evaluate_at(&h, &alerts, "h", &s, later).unwrap();
        assert!(l[0].ends_with("(webhook ok)"), "{l:?}");
        assert!(evaluate(&h, &alerts, "h", &s).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
        assert_eq!(*hits.lock().unwrap(), vec![503, 200]);
        // An opening never delivered that recovers gets its recovery only.
        let alerts_down = Alerts {
            command: Some("exit 1".into()),
            webhook: None,
        };
        s.copies[0].rpo_met = Some(true);
        evaluate(&h, &alerts, "h", &s).unwrap();
        s.last_run.as_mut().unwrap().result = "failed".into();
        let l = evaluate(&h, &alerts_down, "h", &s).unwrap();
        assert!(l[0].contains("command failed: exit status: 1"), "{l:?}");
        s.last_run.as_mut().unwrap().result = "success".into();
        let l = evaluate(&h, &alerts, "h", &s).unwrap();
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(l[0].starts_with("recovered: the last run"), "{l:?}");
        let sent: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let states: Vec<_> = sent.iter().map(|v| v["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["open", "resolved", "resolved"]);
    }

    #[test]
    fn a_channel_added_later_hears_of_the_incidents_already_open() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite")).unwrap();
        let first = d.path().join("first");
        let only = |f: &std::path::Path| Alerts {
            command: Some(format!("cat >> {}", f.display())),
            webhook: None,
        };
        let mut s = status();
        s.copies[0].rpo_met = Some(false);
        let t0 = Utc::now();
        // No channel at first: recorded and logged once.
        let none = Alerts {
            command: None,
            webhook: None,
        };
        let l = evaluate_at(&h, &none, "h", &s, t0).unwrap();
        assert!(l[0].ends_with("(no alert channel configured)"), "{l:?}");
        assert!(
            evaluate_at(&h, &none, "h", &s, t0 + chrono::Duration::hours(2))
                .unwrap()
                .is_empty()
        );
        // A command is configured: it gets the opening, once.
        let later = t0 + chrono::Duration::hours(3);
        assert_eq!(
            evaluate_at(&h, &only(&first), "h", &s, later)
                .unwrap()
                .len(),
            1
        );
        assert!(evaluate_at(
            &h,
            &only(&first),
            "h",
            &s,
            later + chrono::Duration::hours(2)
        )
        .unwrap()
        .is_empty());
        assert_eq!(std::fs::read_to_string(&first).unwrap().lines().count(), 1);
        // A webhook added beside it: only the webhook is owed.
        let both = Alerts {
            command: Some(format!("cat >> {}", first.display())),
            webhook: Some("http://127.0.0.1:1/hook".into()),
        };
        let l = evaluate_at(&h, &both, "h", &s, later + chrono::Duration::hours(4)).unwrap();
        assert!(l[0].contains("(webhook failed:"), "{l:?}");
        assert!(!l[0].contains("command"), "{l:?}");
        assert_eq!(std::fs::read_to_string(&first).unwrap().lines().count(), 1);
        // An old incident recorded as sent to every channel ('*') owes nothing.
        let inc = &h.incidents().unwrap()[0];
        h.mark_attempt(inc, &["*".into()], true, t0).unwrap();
        assert!(
            evaluate_at(&h, &both, "h", &s, later + chrono::Duration::hours(9))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn incidents_of_removed_plans_and_copies_are_closed() {
        let d = tempfile::tempdir().unwrap();
        let h = History::open(&d.path().join("h.sqlite")).unwrap();
        h.open_incident("gone", "", "run_failed", "x").unwrap();
        h.open_incident("erp", "tape", "unreachable", "y").unwrap();
        h.open_incident("erp", "local", "unreachable", "z").unwrap();
        let pass = d.path().join("p");
        std::fs::write(&pass, "pw\n").unwrap();
        let cfg = crate::config::parse(
            std::path::Path::new("x"),
            &format!(
                "[repository.local]\nurl = \"/r\"\npassword_file = \"{}\"\n[plan.erp]\npaths = [\"/d\"]\ncopies = [\"local\"]\n",
                pass.display()
            ),
        )
        .unwrap();
        let l = close_stale(&h, &cfg).unwrap();
        assert_eq!(l.len(), 2, "{l:?}");
        let left = h.incidents().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].plan.as_str(), left[0].copy.as_str()),
            ("erp", "local")
        );
    }
}
