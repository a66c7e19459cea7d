//! `ironvault security`: what this host's security record says about the
//! repository (format.md §11), and accepting the repository as it is once
//! an alarm (rollback, replay, swapped config) has been explained.

use crate::output::plural;
use crate::Cli;
use crate::Exit;
use anyhow::{anyhow, Result};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Show the record: where it is, what it knows, and the alarms it keeps.
    Status,
    /// Take the repository as it is now: clear every alarm, trust the
    /// snapshots and index files it holds, and keep knowing what is gone.
    Accept,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    let guard = repo.security().ok_or_else(|| {
        anyhow!(
            "this host has no usable security record for the repository (see the warning above)"
        )
    })?;
    let id = repo.config().id;
    match a.action {
        Action::Status => {
            let r = guard.record();
            let alarms: Vec<String> = r.alarms.iter().map(|x| x.message(&id)).collect();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "repository": id.to_hex(), "record": guard.dir().display().to_string(),
                        "first_contact": r.first_contact, "snapshots_seen": r.seen.len(),
                        "snapshots_removed": r.removed.len(),
                        "superseded_index_files": r.superseded_index.len(),
                        "alarms": r.alarms, "messages": alarms,
                    })
                );
            } else if !cli.quiet {
                println!("repository {} ({})", id.short(), repo.backend().location());
                println!("record:     {}", guard.dir().display());
                println!("since:      {}", r.first_contact);
                println!(
                    "knows:      {} present, {} removed, {}",
                    plural(r.seen.len() as u64, "snapshot"),
                    r.removed.len(),
                    plural(r.superseded_index.len() as u64, "superseded index file")
                );
                if alarms.is_empty() {
                    println!("alarms:     none");
                } else {
                    println!("alarms:     {} (also printed above)", alarms.len());
                }
            }
            Ok(if alarms.is_empty() {
                Exit::Ok
            } else {
                Exit::Rollback
            })
        }
        Action::Accept => {
            let done = guard.accept(&repo)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"repository": id.to_hex(), "alarms_cleared": done.alarms_cleared,
                        "snapshots": done.snapshots})
                );
            } else if !cli.quiet {
                println!(
                    "accepted repository {} as it is: {} cleared, {} trusted",
                    id.short(),
                    plural(done.alarms_cleared as u64, "alarm"),
                    plural(done.snapshots as u64, "snapshot")
                );
            }
            Ok(Exit::Ok)
        }
    }
}
