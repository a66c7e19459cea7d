//! `ironvault repair index|snapshots|packs`: rebuild the index from the
//! packs, rewrite partly lost snapshots, or heal packs from a related copy.

use crate::output::plural;
use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::repair::rebuild_index;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Heal damaged, truncated or missing packs: their blobs are rescued from
    /// the packs where they still verify, else fetched from a related
    /// repository (--from-repo), and stored again; then the damaged packs are
    /// deleted and the index rebuilt. Reads every pack.
    Packs {
        #[command(flatten)]
        from: super::FromRepo,
    },
    /// Bring back objects hidden behind delete markers on a versioned S3
    /// bucket (a delete without version id, as someone with delete rights
    /// does): their delete markers are removed by version id. Lock files
    /// are left alone.
    Versions {
        /// List the hidden objects, change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
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

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    match &a.what {
        What::Versions { dry_run } => {
            let b = super::open_backend_with(cli, &super::location(cli)?, false)?;
            let hidden = b.hidden_objects()?;
            for h in &hidden {
                if !*dry_run {
                    b.unhide(h)?;
                }
                if !cli.quiet {
                    let verb = if *dry_run { "hidden" } else { "brought back" };
                    println!("{verb}: {}", h.name);
                }
            }
            let n = plural(hidden.len() as u64, "object");
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "summary", "hidden": hidden.len(),
                        "brought_back": if *dry_run { 0 } else { hidden.len() },
                        "objects": hidden.iter().map(|h| &h.name).collect::<Vec<_>>()})
                );
            } else if hidden.is_empty() {
                println!("no object is hidden behind a delete marker");
            } else if *dry_run {
                println!("{n} hidden behind delete markers; run 'ironvault repair versions' to bring them back");
            } else {
                println!(
                    "brought back {n} hidden behind delete markers; run 'ironvault check' next"
                );
            }
            Ok(Exit::Ok)
        }
        What::Snapshots {
            ids,
            forget,
            dry_run,
        } => {
            let repo = super::open_repo(cli)?;
            let chosen: Vec<_> = super::select_snapshots(cli, &repo, ids, &Default::default())?
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
                    "{repaired} of {} needed repair{}",
                    crate::output::plural(results.len() as u64, "snapshot"),
                    if *dry_run {
                        " (dry run: nothing written)"
                    } else {
                        ""
                    }
                );
            }
            Ok(Exit::Ok)
        }
        What::Packs { from } => {
            let Some(loc) = &from.from_repo else {
                anyhow::bail!(
                    "repair packs needs a related, healthy copy to fetch blobs from: --from-repo LOCATION"
                );
            };
            let other = super::open_other(
                cli,
                loc,
                from.from_password_file.clone(),
                from.from_password_command.clone(),
            )?;
            // Judge the stored packs themselves, not cached copies.
            let repo = super::open_repo_with(cli, false)?;
            let r = ironvault_core::repair::packs::repair_packs(repo, other, &|_, _, _| {})?;
            for l in &r.lost {
                eprintln!("error: lost in both repositories: {l}");
            }
            for k in &r.kept {
                eprintln!(
                    "warning: kept damaged pack {k}: some of its blobs are in neither repository"
                );
            }
            let not_indexed: &[String] = r
                .index
                .as_ref()
                .map(|i| i.unreadable_packs.as_slice())
                .unwrap_or_default();
            for u in not_indexed {
                eprintln!("warning: not indexed: {u}");
            }
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "summary", "packs_checked": r.packs_checked,
                        "damaged_packs": r.damaged.iter().map(|(n, w)| serde_json::json!({"pack": n, "problem": w})).collect::<Vec<_>>(),
                        "blobs_from_self": r.blobs_from_self, "blobs_from_other": r.blobs_from_other,
                        "lost": r.lost, "kept_damaged_packs": r.kept, "not_indexed": not_indexed})
                );
            } else if !cli.quiet {
                for (n, w) in &r.damaged {
                    println!("damaged: {n}: {w}");
                }
                if r.damaged.is_empty() && r.blobs_from_other > 0 {
                    println!(
                        "checked {}: none is damaged; stored again {} that the snapshots need and no index listed, fetched from {loc}; the index was rebuilt",
                        plural(r.packs_checked as u64, "pack"),
                        plural(r.blobs_from_other as u64, "blob")
                    );
                } else if r.damaged.is_empty() {
                    println!(
                        "checked {}: none is damaged; nothing to repair",
                        plural(r.packs_checked as u64, "pack")
                    );
                } else {
                    println!(
                        "repaired {} damaged of {}: {} rescued from them, {} fetched from {loc}; the damaged packs were removed and the index rebuilt",
                        r.damaged.len(),
                        plural(r.packs_checked as u64, "pack"),
                        plural(r.blobs_from_self as u64, "blob"),
                        r.blobs_from_other
                    );
                }
            }
            if !r.lost.is_empty() {
                eprintln!(
                    "error: {} in neither repository; 'ironvault repair snapshots' removes the files that need them",
                    crate::output::count(r.lost.len() as u64, "blob is", "blobs are")
                );
                return Ok(Exit::Failure);
            }
            Ok(Exit::Ok)
        }
        What::Index => {
            let repo = super::open_repo(cli)?;
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
                    "indexed {} in {}; replaced {}; run 'ironvault check' to confirm",
                    plural(r.blobs_indexed as u64, "blob"),
                    plural(r.packs_indexed as u64, "pack"),
                    plural(r.index_files_replaced as u64, "index file")
                );
            }
            if r.unreadable_packs.is_empty() {
                return Ok(Exit::Ok);
            }
            eprintln!(
                "error: {} could not be indexed (above), so the blobs only they held are missing; 'ironvault repair packs --from-repo OTHER' rebuilds them from a related repository, 'ironvault check' names what is affected",
                crate::output::plural(r.unreadable_packs.len() as u64, "damaged pack")
            );
            Ok(Exit::Failure)
        }
    }
}
