//! `ironvault unlock`: remove stale locks.

use crate::Cli;
use crate::Exit;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Remove every lock, also those of processes that may still run.
    #[arg(long)]
    remove_all: bool,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    let removed = ironvault_core::repo::lock::remove_locks(
        repo.backend().as_ref(),
        repo.master_key(),
        a.remove_all,
    )?;
    if cli.json {
        println!("{}", serde_json::json!({ "removed": removed }));
    } else if !cli.quiet {
        if removed.is_empty() {
            println!("no stale locks");
        }
        for r in removed {
            println!("removed {r}");
        }
    }
    Ok(Exit::Ok)
}
