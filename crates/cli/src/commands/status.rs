//! `ironvault status`: are the plans' objectives held? RPO held per copy, the
//! last drill's RTA, the 3-2-1 verdict from device facts, the roadmap step.

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_agent::duration::human;
use ironvault_agent::facts::DeviceFacts;
use ironvault_agent::history::History;
use ironvault_agent::plan_lock::{AgentLock, AgentState};
use ironvault_agent::runner::{Report, Runner};
use ironvault_agent::status::{plan_status, PlanStatus};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Only these plans [default: all].
    plans: Vec<String>,
    /// Every detail: where each copy lives, each 3-2-1 rule and its fix,
    /// the roadmap, every miss and note [default: a short block per plan].
    #[arg(long)]
    long: bool,
}

/// Every plan's status, for `status` and the agent's /status.
pub fn gather(
    cfg: &ironvault_agent::config::Config,
    history: &History,
    only: &[String],
) -> Result<Vec<PlanStatus>> {
    for p in only {
        cfg.plan(p).map_err(|m| crate::Coded {
            code: Exit::Failure,
            msg: m,
        })?;
    }
    let exe = std::env::current_exe()?;
    let (stop, log) = (ironvault_core::interrupt::requested, |_: &str| {});
    let runner = Runner::new(cfg, exe, history, &stop, &log, Report::None);
    let facts = DeviceFacts::from_env();
    Ok(cfg
        .plans
        .values()
        .filter(|p| only.is_empty() || only.contains(&p.name))
        .map(|p| plan_status(cfg, &runner, history, &facts, p))
        .collect())
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let cfg = super::plans::load(cli)?;
    let history = History::open(&cfg.history_path())?;
    let all = gather(&cfg, &history, &a.plans)?;
    if ironvault_core::interrupt::requested() {
        // Listings cut short would read as unreachable copies: say nothing.
        return Err(ironvault_core::Error::Interrupted.into());
    }
    let missed = all.iter().any(|p| !p.missed.is_empty());
    if cli.json {
        println!(
            "{}",
            ironvault_agent::agent::status_json(&cfg, &all, !missed)
        );
    } else {
        let agent = AgentLock::state(&cfg.state_dir);
        for p in &all {
            if a.long {
                print_plan(p);
            } else if let Some(plan) = cfg.plans.get(&p.plan) {
                print_compact(p, plan, agent);
            }
        }
        if all.is_empty() {
            println!("no plans in {}", cfg.file.display());
        }
    }
    Ok(if missed {
        Exit::OBJECTIVE_MISSED
    } else {
        Exit::Ok
    })
}

/// A time as the screens show it, in local time.
fn local(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// One plan at a glance: the verdict, a line per copy, the last run and
/// drill, the next scheduled run and the agent, and what to do next.
fn print_compact(p: &PlanStatus, plan: &ironvault_agent::config::Plan, agent: AgentState) {
    print_header(p);
    let wn = p.copies.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &p.copies {
        let state = match (&c.unreachable, c.rpo_met) {
            (Some(e), _) => format!("UNREACHABLE: {e}"),
            (None, rpo) => {
                let newest = match (&c.newest_snapshot, c.age_seconds) {
                    (Some(id), Some(a)) => format!(
                        "snapshot {} {} old",
                        &id[..id.len().min(8)],
                        human(Duration::from_secs(a))
                    ),
                    _ => "no snapshot".into(),
                };
                match rpo {
                    Some(true) => format!("RPO held, {newest}"),
                    Some(false) => format!("RPO MISSED, {newest}"),
                    None => newest,
                }
            }
        };
        println!("  {:<wn$}  {state}", c.name);
    }
    let v = &p.three_two_one;
    if v.held {
        println!("  3-2-1: held");
    } else {
        let broken: Vec<&str> = v
            .rules
            .iter()
            .filter(|r| !r.held)
            .map(|r| r.shortfall())
            .collect();
        println!("  3-2-1: NOT HELD ({})", broken.join(", "));
    }
    let x = &p.three_two_one_one_zero;
    if x.held {
        println!("  3-2-1-1-0: held");
    } else {
        // 3-2-1's own shortfalls are on the line above.
        let broken: Vec<&str> = extra_rules(x)
            .filter(|r| !r.held)
            .map(|r| r.shortfall())
            .collect();
        if broken.is_empty() {
            println!("  3-2-1-1-0: NOT HELD (3-2-1 does not)");
        } else {
            println!("  3-2-1-1-0: NOT HELD ({})", broken.join(", "));
        }
    }
    let run = match &p.last_run {
        Some(r) => format!("{} {}", r.result, local(r.started)),
        None => "never".into(),
    };
    let drill = match &p.last_drill {
        Some(d) => {
            let rto = match d.rto_met {
                Some(true) => ", RTO met",
                Some(false) => ", RTO MISSED",
                None => "",
            };
            format!("{} {}{rto}", d.result, local(d.time))
        }
        None => "never".into(),
    };
    println!("  last run: {run}; last drill: {drill}");
    let next = plan
        .schedule
        .as_ref()
        .and_then(|s| s.next_after(&chrono::Local::now()))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    let agent = match agent {
        AgentState::Running(Some(pid)) => format!("agent running (pid {pid})"),
        AgentState::Running(None) => "agent running".into(),
        AgentState::NotRunning => "no agent running".into(),
    };
    match next {
        Some(t) => println!("  next run: {t}; {agent}"),
        None => println!("  next run: none scheduled; {agent}"),
    }
    // What to do next: reach the copies that cannot be reached (the rows
    // above say why; --long has the advice), then the notes, then the roadmap.
    let unreachable: Vec<&str> = p
        .copies
        .iter()
        .filter(|c| c.unreachable.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let todo = if !unreachable.is_empty() {
        Some(format!(
            "make {} reachable; 'ironvault status --long {}' says how",
            unreachable.join(" and "),
            p.plan
        ))
    } else {
        p.notes.first().cloned().or_else(|| {
            p.roadmap
                .next
                .as_ref()
                .map(|n| format!("step {}: {}", n.step, n.what))
        })
    };
    if let Some(t) = todo {
        println!("  next: {}", shorten(&t, &p.plan));
    }
    println!();
}

/// A hint cut to its first part when it would not fit a line; --long has all.
fn shorten(hint: &str, plan: &str) -> String {
    const WIDTH: usize = 150;
    if hint.chars().count() <= WIDTH {
        return hint.to_string();
    }
    let first = hint.split("; ").next().unwrap_or(hint);
    let first: String = first.chars().take(WIDTH - 40).collect();
    format!("{first}... (all: 'ironvault status --long {plan}')")
}

/// A plan's first line, compact and long alike: its objectives and the verdict.
fn print_header(p: &PlanStatus) {
    let obj = |s: Option<u64>| {
        s.map(|s| human(Duration::from_secs(s)))
            .unwrap_or_else(|| "not set".into())
    };
    let verdict = if p.missed.is_empty() {
        "all objectives held"
    } else {
        "OBJECTIVES MISSED"
    };
    println!(
        "plan {} (RPO {}, RTO {}): {verdict}",
        p.plan,
        obj(p.rpo_seconds),
        obj(p.rto_seconds)
    );
}

fn age(secs: Option<u64>) -> String {
    secs.map(|s| human(Duration::from_secs(s)))
        .unwrap_or_else(|| "-".into())
}

fn print_plan(p: &PlanStatus) {
    print_header(p);
    // Columns as wide as what they hold (an S3 host name can be long).
    let source = p.source.describe();
    let wn = p
        .copies
        .iter()
        .map(|c| c.name.len())
        .chain([6])
        .max()
        .unwrap_or(6);
    let ww = p
        .copies
        .iter()
        .map(|c| c.place.describe().len())
        .chain([source.len(), 5])
        .max()
        .unwrap_or(5);
    let ws = p
        .copies
        .iter()
        .map(|c| c.site.as_deref().map_or(1, str::len))
        .chain([4])
        .max()
        .unwrap_or(4);
    println!(
        "  {:<wn$} {:<ww$} {:<ws$} {:<8} {:<12} RPO",
        "copy", "where", "site", "newest", "age"
    );
    println!("  {:<wn$} {source}", "source");
    for c in &p.copies {
        let rpo = match (&c.unreachable, c.rpo_met) {
            (Some(_), _) => "UNREACHABLE".to_string(),
            (None, Some(true)) => "held".into(),
            (None, Some(false)) => "MISSED".into(),
            (None, None) => "-".into(),
        };
        println!(
            "  {:<wn$} {:<ww$} {:<ws$} {:<8} {:<12} {rpo}",
            c.name,
            c.place.describe(),
            c.site.as_deref().unwrap_or("-"),
            c.newest_snapshot
                .as_deref()
                .map(|s| &s[..s.len().min(8)])
                .unwrap_or("none"),
            age(c.age_seconds),
        );
        if let Some(e) = &c.unreachable {
            println!("             {e}");
        }
        for l in c.advice.iter().flat_map(|a| a.lines()) {
            println!("             {l}");
        }
    }
    match &p.last_run {
        Some(r) => println!(
            "  last run: {} at {}{}",
            r.result,
            r.started
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S"),
            r.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        None => println!("  last run: never"),
    }
    match &p.last_drill {
        Some(d) => {
            let rta = d
                .rta_seconds
                .map(|s| format!("RTA {}", super::plans::seconds(s)))
                .unwrap_or_else(|| "no RTA".into());
            let met = match d.rto_met {
                Some(true) => ", RTO met",
                Some(false) => ", RTO MISSED",
                None => "",
            };
            println!(
                "  last drill: {} from {} at {}, {rta}{met}",
                d.result,
                d.copy.as_deref().unwrap_or("?"),
                d.time
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
            );
        }
        None => println!("  last drill: never"),
    }
    let v = &p.three_two_one;
    println!("  3-2-1: {}", if v.held { "held" } else { "NOT HELD" });
    for r in &v.rules {
        println!("    {} {}", if r.held { "ok  " } else { "FAIL" }, r.detail);
        if let Some(f) = &r.fix {
            println!("         fix: {f}");
        }
    }
    let x = &p.three_two_one_one_zero;
    println!("  3-2-1-1-0: {}", if x.held { "held" } else { "NOT HELD" });
    for r in extra_rules(x) {
        println!("    {} {}", if r.held { "ok  " } else { "FAIL" }, r.detail);
        if let Some(f) = &r.fix {
            println!("         fix: {f}");
        }
    }
    let top = p.roadmap.highest;
    match &p.roadmap.next {
        Some(n) => println!(
            "  roadmap: step {top} reached; next: step {}: {}",
            n.step, n.what
        ),
        None => println!("  roadmap: every step reached"),
    }
    for m in &p.missed {
        println!("  missed: {m}");
    }
    for n in &p.notes {
        println!("  note: {n}");
    }
    println!();
}

/// The rules 3-2-1-1-0 adds to 3-2-1 (one immutable, zero errors).
fn extra_rules(
    v: &ironvault_agent::verdict::Verdict,
) -> impl Iterator<Item = &ironvault_agent::verdict::Rule> {
    v.rules
        .iter()
        .filter(|r| r.rule == "1 immutable" || r.rule == "0 errors")
}
