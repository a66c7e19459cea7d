//! `ironvault repair index`: rebuild the index from the packs.

use crate::Cli;
use anyhow::Result;
use ironvault_core::repair::rebuild_index;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Rebuild the index from the headers of all packs (after an index file was damaged or deleted).
    Index,
    /// Rewrite snapshots whose data is partly lost: unreadable directories become
    /// empty, files with missing data are left out; the new snapshot is tagged
    /// "repaired". Run `repair index` first.
    Snapshots {
        /// Snapshots to repair (default: all).
        ids: Vec<String>,
        /// Remove the damaged originals once their repaired versions are saved.
        #[arg(long)]
        forget: bool,
        /// Show what would change, write nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

pub fn run(cli: &Cli, a: &Args) -> Result<u8> {
    let repo = super::open_repo(cli)?;
    match &a.what {
        What::Snapshots {
            ids,
            forget,
            dry_run,
        } => {
            let chosen: Vec<_> = super::select_snapshots(&repo, ids, &Default::default())?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let results =
                ironvault_core::repair::repair_snapshots(&repo, &chosen, *dry_run, *forget)?;
            let mut repaired = 0;
            for r in &results {
                if r.changes.is_empty() {
                    continue;
                }
                repaired += 1;
                if cli.json {
                    println!(
                        "{}",
                        serde_json::json!({"message_type": "repaired", "snapshot": r.old.to_hex(),
                            "new_snapshot": r.new.map(|i| i.to_hex()), "changes": r.changes})
                    );
                    continue;
                }
                match r.new {
                    Some(n) => println!("snapshot {} repaired as {}:", r.old.short(), n.short()),
                    None => println!("snapshot {} would be repaired:", r.old.short()),
                }
                for c in &r.changes {
                    println!("  {c}");
                }
            }
            if !cli.json && !cli.quiet {
                println!(
                    "{repaired} of {} snapshots needed repair{}",
                    results.len(),
                    if *dry_run {
                        " (dry run: nothing written)"
                    } else {
                        ""
                    }
                );
            }
            Ok(0)
        }
        What::Index => {
            let r = rebuild_index(&repo, &|_, _| {})?;
            for u in &r.unreadable_packs {
                eprintln!("warning: not indexed: {u}");
            }
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "summary", "packs_indexed": r.packs_indexed,
                        "blobs_indexed": r.blobs_indexed, "index_files_replaced": r.index_files_replaced,
                        "unreadable_packs": r.unreadable_packs, "new_index": r.new_index.map(|i| i.to_hex())})
                );
            } else if !cli.quiet {
                println!(
                    "indexed {} blobs in {} packs; replaced {} index files; run 'ironvault check' to confirm",
                    r.blobs_indexed, r.packs_indexed, r.index_files_replaced
                );
            }
            Ok(if r.unreadable_packs.is_empty() { 0 } else { 1 })
        }
    }
}
