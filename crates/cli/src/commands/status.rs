//! `ironvault status`: are the plans' objectives held? RPO held per copy, the
//! last drill's RTA, the 3-2-1 verdict from device facts, the roadmap step.

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_agent::duration::human;
use ironvault_agent::facts::DeviceFacts;
use ironvault_agent::history::History;
use ironvault_agent::runner::{Report, Runner};
use ironvault_agent::status::{plan_status, PlanStatus};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Only these plans [default: all].
    plans: Vec<String>,
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
        for p in &all {
            print_plan(p);
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

fn age(secs: Option<u64>) -> String {
    secs.map(|s| human(Duration::from_secs(s)))
        .unwrap_or_else(|| "-".into())
}

fn print_plan(p: &PlanStatus) {
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
