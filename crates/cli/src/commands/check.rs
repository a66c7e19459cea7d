//! `ironvault check`: verify the repository.

use crate::output::bytes;
use crate::Cli;
use anyhow::Result;
use ironvault_core::check::{check, CheckOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Also read every pack and verify every blob (slow: reads the whole repository).
    #[arg(long)]
    read_data: bool,
}

pub fn run(cli: &Cli, a: &Args) -> Result<u8> {
    // Verify what the storage holds, not the local metadata cache.
    let repo = super::open_repo_with(cli, false)?;
    let progress = |_: &str, _: u64, _: u64| {};
    let r = check(
        &repo,
        &CheckOptions {
            read_data: a.read_data,
        },
        &progress,
    )?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "message_type": "summary", "ok": r.is_ok(), "errors": r.errors, "notices": r.notices,
                "snapshots": r.snapshots, "trees": r.trees, "packs": r.packs, "blobs": r.blobs, "bytes_read": r.bytes_read,
            })
        );
    } else {
        for n in &r.notices {
            if !cli.quiet {
                println!("notice: {n}");
            }
        }
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if !cli.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs, {} blobs{}",
                r.snapshots,
                r.trees,
                r.packs,
                r.blobs,
                if a.read_data {
                    format!(", read {}", bytes(r.bytes_read))
                } else {
                    String::new()
                }
            );
        }
    }
    if r.is_ok() {
        if !cli.quiet && !cli.json {
            println!("no errors were found");
        }
        Ok(0)
    } else {
        eprintln!("error: the repository has {} errors (listed above); the files named there cannot be restored from this repository", r.errors.len());
        Ok(1)
    }
}
