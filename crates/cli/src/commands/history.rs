//! `ironvault history`: the record of runs and drills, step by step, from
//! the SQLite history the agent, `run` and `drill` keep.

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_agent::history::History;

#[derive(clap::Args)]
pub struct Args {
    /// Only this plan.
    plan: Option<String>,
    /// How many runs, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let cfg = super::plans::load(cli)?;
    let history = History::open(&cfg.history_path())?;
    let runs = history.runs(a.plan.as_deref(), a.limit)?;
    if let Some(p) = &a.plan {
        // A plan removed or renamed in the config keeps its record, for
        // auditors; a name neither has is a typo.
        if runs.is_empty() {
            cfg.plan(p).map_err(|m| crate::Coded {
                code: Exit::Failure,
                msg: m,
            })?;
        }
    }
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    if cli.json {
        use ironvault_core::contract::time::utc;
        let opt = |t: Option<chrono::DateTime<chrono::Utc>>| t.as_ref().map(utc);
        let mut out = Vec::new();
        for r in &runs {
            let steps: Vec<serde_json::Value> = history
                .steps(r.id)?
                .iter()
                .map(|s| {
                    serde_json::json!({"step": s.step, "copy": s.copy, "started": utc(&s.started),
                        "ended": opt(s.ended), "result": s.result.as_str(), "bytes": s.bytes,
                        "snapshot": s.snapshot, "seconds": s.seconds, "error": s.error})
                })
                .collect();
            out.push(
                serde_json::json!({"run": r.id, "plan": r.plan, "kind": r.kind,
                "trigger": r.trigger, "scheduled_for": opt(r.scheduled_for), "started": utc(&r.started),
                "ended": opt(r.ended), "result": r.result.as_str(), "error": r.error, "steps": steps}),
            );
        }
        println!("{}", serde_json::Value::Array(out));
        return Ok(Exit::Ok);
    }
    if runs.is_empty() {
        println!("no runs recorded in {}", cfg.history_path().display());
    } else {
        println!(
            "{:<19} {:>5}  {:<8} {:<5} {:<9} trigger: error",
            "started", "run", "plan", "kind", "result"
        );
        println!(
            "                             {:<9} {:<8} result, snapshot, bytes, seconds",
            "step", "copy"
        );
    }
    for r in &runs {
        println!(
            "{} {:>5}  {:<8} {:<5} {:<9} {}{}",
            local(r.started),
            r.id,
            r.plan,
            r.kind,
            r.result.as_str(),
            r.trigger,
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        for s in history.steps(r.id)? {
            let end = ironvault_agent::history::StepEnd {
                bytes: s.bytes,
                snapshot: s.snapshot.clone(),
                seconds: s.seconds,
                ..Default::default()
            };
            println!(
                "                             {:<9} {:<8} {}",
                s.step,
                s.copy.as_deref().unwrap_or(""),
                end.describe(&s.step, s.result)
            );
            if let Some(e) = &s.error {
                println!("                                                {e}");
            }
        }
    }
    Ok(Exit::Ok)
}
