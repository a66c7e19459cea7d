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
}

pub fn run(cli: &Cli, a: &Args) -> Result<u8> {
    let repo = super::open_repo(cli)?;
    match a.what {
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
