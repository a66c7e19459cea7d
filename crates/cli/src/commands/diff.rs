//! `ironvault diff SNAP1 SNAP2`: what changed between two snapshots.

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::browse::diff;

#[derive(clap::Args)]
pub struct Args {
    /// The older snapshot (id, prefix or "latest").
    first: String,
    /// The newer snapshot.
    second: String,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let (ia, sa) = repo.find_snapshot(&a.first)?;
    let (ib, sb) = repo.find_snapshot(&a.second)?;
    if !cli.quiet && !cli.json {
        println!("comparing snapshot {} to {}:", ia.short(), ib.short());
    }
    let mut counts = [0u64; 5];
    diff(
        &repo,
        Some(&sa.tree),
        Some(&sb.tree),
        b"",
        &mut |path, change, _, _| {
            counts[change as usize] += 1;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "change", "path": String::from_utf8_lossy(path),
                        "modifier": change.letter().to_string()})
                );
            } else {
                println!("{}    {}", change.letter(), crate::output::escape(path));
            }
        },
    )?;
    let [added, removed, modified, typ, meta] = counts;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"message_type": "statistics", "source_snapshot": ia.to_hex(), "target_snapshot": ib.to_hex(),
                "added": added, "removed": removed, "changed": modified, "type_changed": typ, "metadata_changed": meta})
        );
    } else if !cli.quiet {
        println!(
            "\n{added} added, {removed} removed, {modified} modified, {typ} changed type, {meta} metadata only (+ - M T U)"
        );
    }
    Ok(Exit::Ok)
}
