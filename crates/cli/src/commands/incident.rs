//! `ironvault incident`: the open incidents of the plans, and clearing the
//! one a suspect backup opened (which pauses the plan's retention until an
//! operator has looked).

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_agent::history::{History, SUSPECT};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// List the open incidents (every plan, or one).
    List {
        /// Only this plan.
        plan: Option<String>,
    },
    /// Clear a plan's suspect-backup incident: its retention runs again
    /// from the next run (check the suspect snapshot first).
    Clear {
        /// The plan whose incident to clear.
        plan: String,
    },
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let cfg = super::plans::load(cli)?;
    let history = History::open(&cfg.history_path())?;
    match &a.cmd {
        Cmd::List { plan } => {
            let open: Vec<_> = history
                .incidents()?
                .into_iter()
                .filter(|i| plan.as_ref().is_none_or(|p| *p == i.plan))
                .collect();
            if cli.json {
                let v: Vec<serde_json::Value> = open
                    .iter()
                    .map(|i| {
                        serde_json::json!({"plan": i.plan, "copy": (!i.copy.is_empty()).then_some(&i.copy),
                            "kind": i.kind, "opened": ironvault_core::contract::time::utc(&i.opened),
                            "message": i.message, "delivered": i.delivered,
                            "pauses_retention": i.kind == SUSPECT})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else if open.is_empty() {
                println!("no open incident");
            } else {
                for i in &open {
                    let when = i
                        .opened
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M");
                    println!("{}  {}  {}: {}", when, i.plan, i.kind, i.message);
                }
            }
            Ok(Exit::Ok)
        }
        Cmd::Clear { plan } => {
            cfg.plan(plan).map_err(|m| crate::Coded {
                code: Exit::Failure,
                msg: m,
            })?;
            match ironvault_agent::alerts::clear_suspect(&history, &cfg, plan)? {
                Some(inc) => {
                    if !cli.quiet {
                        println!(
                            "cleared: {}; retention of plan {plan} runs again from its next run",
                            inc.message
                        );
                    }
                    Ok(Exit::Ok)
                }
                None => Err(crate::Coded {
                    code: Exit::Failure,
                    msg: format!(
                        "plan {plan} has no open suspect-backup incident; 'ironvault incident list' shows the open ones"
                    ),
                }
                .into()),
            }
        }
    }
}
