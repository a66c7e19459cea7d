//! The agent end to end: schedules at second granularity, catch-up after
//! downtime, SIGTERM and kill -9 with the SQLite history intact, Prometheus
//! metrics and JSON status over HTTP, alerts once per incident.

use crate::common::plans::*;
use crate::common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET a path from the agent; (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    get_with(port, path, "Host: 127.0.0.1\r\n")
}

/// GET with these header lines (each ending in CRLF).
fn get_with(port: u16, path: &str, headers: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// Parse OpenMetrics text: every line a comment or `name{labels} value`,
/// each family's samples together after its HELP and TYPE (a counter's
/// samples named `FAMILY_total`), and `# EOF` last.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed: Vec<String> = Vec::new();
    let mut counters: Vec<String> = Vec::new();
    let mut last_family = String::new();
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end: {text}");
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap().to_string();
            let kind = it.next().unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(!typed.contains(&name), "family {name} declared twice");
            if kind == "counter" {
                counters.push(name.clone());
            }
            typed.push(name);
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line}"
        );
        let family = match name.strip_suffix("_total") {
            Some(f) if counters.iter().any(|c| c == f) => f,
            _ => name,
        };
        if name != last_family {
            assert_eq!(
                typed.last().map(String::as_str),
                Some(family),
                "{name} is not contiguous after its TYPE"
            );
            last_family = name.to_string();
        }
        if let Some(l) = series.strip_prefix(name) {
            if !l.is_empty() {
                assert!(l.starts_with('{') && l.ends_with('}'), "{line}");
                for pair in l[1..l.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').unwrap();
                    assert!(
                        !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
            }
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        out.insert(series.to_string(), v);
    }
    out
}

/// The agent under test; killed if the test fails before it stops it.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Agent {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn start_agent(p: &Plans) -> Agent {
    Agent(spawn_agent(p))
}

fn spawn_agent(p: &Plans) -> Child {
    p.cmd(&["agent"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p.env.path("agent.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap()
}

/// Wait (at most 2 minutes) until `f` holds.
fn wait_until(what: &str, f: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(120), f);
}

fn count(p: &Plans, sql: &str) -> i64 {
    if !p.env.path("state/history.sqlite").exists() {
        return 0;
    }
    p.history().query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

fn sigterm(c: &mut Child) -> std::process::ExitStatus {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    c.wait().unwrap()
}

#[test]
fn the_agent_runs_on_schedule_serves_metrics_and_status_and_stops_on_sigterm() {
    let p = Plans::new("");
    let port = free_port();
    p.replace(
        "listen = \"off\"",
        &format!("listen = \"127.0.0.1:{port}\"\nrefresh = \"2s\""),
    );
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"hello\n");
    write(&src.join("b.bin"), &random_bytes(1 << 20, 5));
    p.add(&format!(
        "[plan.files]\npaths = [\"{}\"]\nschedule = \"*/2 * * * * *\"\ncopies = [\"local\", \"second\"]\nrpo = \"1h\"\nrto = \"1h\"\ndrill = {{ schedule = \"*/3 * * * * *\", copy = \"second\" }}\n",
        src.display()
    ));
    let mut agent = start_agent(&p);
    wait_until("two scheduled runs and a drill", || {
        count(
            &p,
            "SELECT COUNT(*) FROM runs WHERE kind = 'run' AND result = 'success'",
        ) >= 2
            && count(
                &p,
                "SELECT COUNT(*) FROM runs WHERE kind = 'drill' AND result = 'success'",
            ) >= 1
    });
    // Status is refreshed after runs: wait for the metrics to show the drill.
    let mut m = BTreeMap::new();
    wait_until("metrics with the drill", || {
        let (code, body) = get(port, "/metrics");
        assert_eq!(code, 200);
        m = parse_prometheus(&body);
        m.contains_key("ironvault_plan_rta_seconds{plan=\"files\",copy=\"second\"}")
    });
    let g = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in {m:?}"));
    assert!(g("ironvault_plan_runs_total{plan=\"files\",result=\"success\"}") >= 2.0);
    assert_eq!(g("ironvault_copy_up{plan=\"files\",copy=\"second\"}"), 1.0);
    assert_eq!(
        g("ironvault_copy_rpo_met{plan=\"files\",copy=\"local\"}"),
        1.0
    );
    assert!(g("ironvault_copy_rpo_held_seconds{plan=\"files\",copy=\"local\"}") < 600.0);
    assert_eq!(
        g("ironvault_plan_rpo_objective_seconds{plan=\"files\"}"),
        3600.0
    );
    assert_eq!(g("ironvault_plan_rto_met{plan=\"files\"}"), 1.0);
    assert!(g("ironvault_plan_rta_seconds{plan=\"files\",copy=\"second\"}") > 0.0);
    assert_eq!(
        g("ironvault_plan_321_held{plan=\"files\"}"),
        0.0,
        "one disk here"
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (now - g("ironvault_plan_last_success_timestamp_seconds{plan=\"files\"}")).abs() < 600.0
    );
    assert!(g("ironvault_copy_last_bytes{plan=\"files\",copy=\"local\",step=\"backup\"}") >= 0.0);
    // The JSON status.
    let (code, body) = get(port, "/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["plans"][0]["plan"], "files");
    assert_eq!(v["plans"][0]["copies"][1]["name"], "second");
    assert_eq!(v["objectives_held"], false);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(port, "/nope").0, 404);
    // Runs of one plan never overlap.
    let overlaps = count(
        &p,
        "SELECT COUNT(*) FROM runs a JOIN runs b ON a.plan = b.plan AND a.id < b.id AND b.started < a.ended",
    );
    assert_eq!(overlaps, 0);
    // SIGTERM: the agent ends cleanly and leaves no run 'running'.
    let t = Instant::now();
    let st = sigterm(&mut agent);
    assert_eq!(
        st.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(p.env.path("agent.log")).unwrap()
    );
    assert!(t.elapsed() < Duration::from_secs(90));
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM runs WHERE result = 'running'"),
        0
    );
    let log = std::fs::read_to_string(p.env.path("agent.log")).unwrap();
    assert!(log.contains("agent stopped"), "{log}");
    p.repo("local", &["check"]);
    p.repo("second", &["check"]);
}

#[test]
fn after_kill_9_the_history_is_intact_and_a_missed_schedule_runs_once_at_start() {
    let p = Plans::new("");
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"hello\n");
    p.add(&format!(
        "[plan.files]\npaths = [\"{}\"]\nschedule = \"*/2 * * * * *\"\ncopies = [\"local\"]\n",
        src.display()
    ));
    let mut agent = start_agent(&p);
    wait_until("three finished runs", || {
        count(&p, "SELECT COUNT(*) FROM runs WHERE result = 'success'") >= 3
    });
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    let done: Vec<(i64, String)> = {
        let h = p.history();
        let mut st = h
            .prepare("SELECT id, result FROM runs WHERE result != 'running' ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(done.len() >= 3);
    let before = count(&p, "SELECT MAX(id) FROM runs");
    // Down for several schedule times: the time passing is what is tested
    // (the runs missed meanwhile are caught up once, not one by one).
    std::thread::sleep(Duration::from_secs(7));
    let mut agent = start_agent(&p);
    wait_until("two runs after the restart", || {
        count(
            &p,
            &format!("SELECT COUNT(*) FROM runs WHERE id > {before} AND result = 'success'"),
        ) >= 2
    });
    let st = sigterm(&mut agent);
    assert_eq!(st.code(), Some(0));
    // Every run finished before the kill is still there, unchanged.
    let h = p.history();
    for (id, result) in &done {
        let r: String = h
            .query_row("SELECT result FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        assert_eq!(&r, result);
    }
    // A run the kill cut short is recorded as abandoned, not left running.
    assert_eq!(
        count(&p, "SELECT COUNT(*) FROM runs WHERE result = 'running'"),
        0
    );
    // The missed schedule ran once at start, then the schedule resumed.
    let triggers: Vec<String> = h
        .prepare(&format!(
            "SELECT trigger FROM runs WHERE id > {before} AND kind = 'run' ORDER BY id"
        ))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(triggers[0], "catch-up", "{triggers:?}");
    assert_eq!(
        triggers.iter().filter(|t| *t == "catch-up").count(),
        1,
        "{triggers:?}"
    );
    assert!(
        triggers[1..].iter().all(|t| t == "schedule"),
        "{triggers:?}"
    );
    p.repo("local", &["check"]);
}

/// A webhook receiver: every POST body it gets.
fn webhook() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then Content-Length bytes of body.
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body[..len].to_string());
                    }
                }
            };
            let _ = s.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            if let Some(b) = body {
                if let Ok(v) = serde_json::from_str(&b) {
                    g.lock().unwrap().push(v);
                }
            }
        }
    });
    (port, got)
}

#[test]
fn alerts_go_out_once_per_incident_survive_a_restart_and_say_when_it_recovers() {
    let p = Plans::new("");
    let (hook_port, got) = webhook();
    let alerts = p.env.path("alerts.jsonl");
    p.replace(
        "listen = \"off\"",
        &format!(
            "listen = \"off\"\nrefresh = \"1s\"\n[alerts]\ncommand = \"cat >> {}\"\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"",
            alerts.display()
        ),
    );
    let src = p.env.path("src");
    write(&src.join("a.txt"), b"hello\n");
    p.add(&format!(
        "[plan.files]\npaths = [\"{}\"]\nschedule = \"*/2 * * * * *\"\ncopies = [\"local\", \"second\"]\n",
        src.display()
    ));
    // The second repository is gone: its copy fails and it is unreachable.
    let second = p.env.path("second");
    let away = p.env.path("second.away");
    std::fs::rename(&second, &away).unwrap();
    let open_kinds = |got: &[serde_json::Value]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = got
            .iter()
            .filter(|a| a["state"] == "open")
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_string(),
                    a["copy"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut agent = start_agent(&p);
    wait_until("alerts for the failed run and the unreachable copy", || {
        let k = open_kinds(&got.lock().unwrap());
        k.contains(&("run_failed".into(), "".into()))
            && k.contains(&("unreachable".into(), "second".into()))
    });
    // Let several more runs fail: no new alert for the same incidents.
    let runs_now = count(&p, "SELECT COUNT(*) FROM runs");
    wait_until("more failed runs", || {
        count(&p, "SELECT COUNT(*) FROM runs WHERE result = 'failed'") >= runs_now + 2
    });
    sigterm(&mut agent);
    let mut agent = start_agent(&p);
    wait_until("runs after the restart", || {
        count(&p, "SELECT COUNT(*) FROM runs WHERE result = 'failed'") >= runs_now + 4
    });
    let opened = open_kinds(&got.lock().unwrap());
    let mut unique = opened.clone();
    unique.dedup();
    assert_eq!(
        opened, unique,
        "each incident alerted once, also across the restart"
    );
    // The command got the same alerts as the webhook.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(open_kinds(&lines), opened);
    let unreachable = lines.iter().find(|a| a["kind"] == "unreachable").unwrap();
    assert!(
        unreachable["message"]
            .as_str()
            .unwrap()
            .contains("repository second of plan files is unreachable"),
        "{unreachable}"
    );
    // It comes back: one recovery alert per incident.
    std::fs::rename(&away, &second).unwrap();
    wait_until("recoveries", || {
        let g = got.lock().unwrap();
        ["run_failed", "unreachable"].iter().all(|k| {
            g.iter()
                .any(|a| a["kind"] == *k && a["state"] == "resolved")
        })
    });
    sigterm(&mut agent);
    let g = got.lock().unwrap();
    for k in ["run_failed", "unreachable"] {
        assert_eq!(
            g.iter()
                .filter(|a| a["kind"] == k && a["state"] == "resolved")
                .count(),
            1,
            "{g:?}"
        );
    }
    let logged = count(
        &p,
        "SELECT COUNT(*) FROM alerts WHERE delivery LIKE '%command ok%webhook ok%'",
    );
    assert_eq!(
        logged as usize,
        g.len(),
        "every alert delivered to both and logged"
    );
}

#[test]
fn sigterm_during_a_backup_abandons_it_safely_and_kill_9_mid_run_is_recorded() {
    let p = Plans::new("");
    // A stream source that is slow: the backup is in progress when stopped.
    let started = p.env.path("started");
    p.add(&format!(
        "[plan.db]\ncommand = \"head -c 100000 /dev/zero; touch {}; sleep 60\"\nschedule = \"*/2 * * * * *\"\ncopies = [\"local\"]\n",
        started.display()
    ));
    let mut agent = start_agent(&p);
    wait_for_file(&started);
    let st = sigterm(&mut agent);
    assert_eq!(st.code(), Some(0));
    let (result, err): (String, String) = p
        .history()
        .query_row(
            "SELECT result, error FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(result, "abandoned", "{err}");
    assert!(err.contains("stopped before the end"), "{err}");
    let step: String = p
        .history()
        .query_row(
            "SELECT result FROM steps WHERE step = 'backup' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(step, "abandoned");
    assert!(
        p.snapshots("local").is_empty(),
        "no snapshot from a stopped backup"
    );
    p.repo("local", &["check"]);

    // kill -9 the agent in the middle of a backup: the run stays recorded and
    // is marked abandoned when the plan next runs; the repository checks.
    std::fs::remove_file(&started).unwrap();
    let mut agent = start_agent(&p);
    wait_for_file(&started);
    let killed_run = count(&p, "SELECT MAX(id) FROM runs");
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert_eq!(
        count(
            &p,
            &format!("SELECT COUNT(*) FROM runs WHERE id = {killed_run} AND result = 'running'")
        ),
        1
    );
    // The backup child dies with the agent (its parent-death signal).
    p.replace("sleep 60", "true");
    wait_until("the orphaned backup to end", || {
        let o = std::process::Command::new("pgrep")
            .args(["-f", &started.display().to_string()])
            .output()
            .unwrap();
        o.stdout.is_empty()
    });
    p.repo("local", &["unlock"]);
    let mut agent = start_agent(&p);
    wait_until("a successful run after the restart", || {
        count(&p, "SELECT COUNT(*) FROM runs WHERE result = 'success'") >= 1
    });
    sigterm(&mut agent);
    let r: String = p
        .history()
        .query_row("SELECT result FROM runs WHERE id = ?1", [killed_run], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(r, "abandoned");
    p.repo("local", &["check", "--read-data"]);
}

#[test]
fn status_and_metrics_answer_only_local_names_or_the_token() {
    let p = Plans::new("");
    let port = free_port();
    p.replace(
        "listen = \"off\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let agent = start_agent(&p);
    wait_until("the agent to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(get(port, "/status").0, 200);
    assert_eq!(get_with(port, "/metrics", "Host: localhost:1\r\n").0, 200);
    // A page whose name was pointed at 127.0.0.1 (DNS rebinding).
    for path in ["/status", "/metrics"] {
        let (code, body) = get_with(port, path, &format!("Host: evil.example:{port}\r\n"));
        assert_eq!(code, 403, "{path}: {body}");
        assert!(
            body.starts_with("forbidden: Host \"evil.example:"),
            "{body}"
        );
    }
    assert_eq!(
        get_with(port, "/healthz", "Host: evil.example\r\n"),
        (200, "ok\n".into())
    );
    drop(agent);
    // Off loopback: refused without a token...
    let old = port;
    let port = free_port();
    p.replace(
        &format!("listen = \"127.0.0.1:{old}\""),
        &format!("listen = \"0.0.0.0:{port}\""),
    );
    let (_, err) = p.expect(&["agent"], 1);
    assert!(err.contains("is not a loopback address"), "{err}");
    // ... and with one, every request must carry it (whatever its Host).
    let token = p.env.path("listen.token");
    write(&token, b"4f1c0ffee-token\n");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p.replace(
        "listen = \"0.0.0.0:",
        &format!(
            "listen_token_file = \"{}\"\nlisten = \"0.0.0.0:",
            token.display()
        ),
    );
    let _agent = start_agent(&p);
    wait_until("the agent to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (code, body) = get(port, "/status");
    assert_eq!(code, 401, "{body}");
    assert_eq!(
        get_with(
            port,
            "/status",
            "Host: 127.0.0.1\r\nAuthorization: Bearer wrong\r\n"
        )
        .0,
        401
    );
    let (code, body) = get_with(
        port,
        "/status",
        "Host: backup01.example.net\r\nAuthorization: Bearer 4f1c0ffee-token\r\n",
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"plans\""), "{body}");
}
