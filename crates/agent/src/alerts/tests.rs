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
        advice: Vec::new(),
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
        three_two_one_one_zero: Verdict {
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
