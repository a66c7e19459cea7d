//! `ironvault prune`: delete the data no snapshot needs and repack packs
//! with too much unused space, while other hosts go on backing up
//! (format.md §9). Also run by `forget --prune`.

use crate::output::{bytes, plural};
use crate::Cli;
use anyhow::Result;
use ironvault_core::prune::plan::MaxUnused;
use ironvault_core::prune::{prune, Observer, PruneOptions, PruneReport};
use ironvault_core::repo::Repository;
use std::sync::{Arc, Mutex};

/// Options shared by `prune` and `forget --prune`.
#[derive(clap::Args, Clone)]
pub struct PruneArgs {
    /// Repack a pack when more than this share of it is unused: a percentage
    /// (0% repacks every pack with any unused blob) or "unlimited".
    #[arg(long, value_name = "PERCENT", default_value = "5%")]
    pub max_unused: String,
    /// Repack at most this much per run (e.g. 2G); the rest waits for the next
    /// prune. Packs holding data of an erasure (`rewrite`) are always repacked.
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
}

impl PruneArgs {
    pub fn options(&self, dry_run: bool) -> Result<PruneOptions> {
        Ok(PruneOptions {
            max_unused: MaxUnused::parse(&self.max_unused)
                .map_err(|e| anyhow::anyhow!("--max-unused: {e}"))?,
            max_repack_size: self
                .max_repack_size
                .as_deref()
                .map(crate::output::parse_size)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--max-repack-size: {e}"))?,
            dry_run,
            ..PruneOptions::default()
        })
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    prune: PruneArgs,
    /// Show what would be deleted and repacked; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

pub fn run(cli: &Cli, a: &Args) -> Result<u8> {
    let opts = a.prune.options(a.dry_run)?;
    let repo = super::open_repo(cli)?;
    run_prune(cli, repo, &opts)
}

/// Prune with progress and a report (also for `forget --prune`).
pub fn run_prune(cli: &Cli, repo: Arc<Repository>, opts: &PruneOptions) -> Result<u8> {
    let started = std::time::Instant::now();
    let state = Arc::new(Mutex::new((String::from("starting"), 0u64, 0u64)));
    let display = {
        let s = state.clone();
        let json = cli.json;
        crate::progress::start(
            crate::progress::Mode::for_cli(cli.quiet, cli.json),
            move |el| {
                let (stage, done, total) = s.lock().map(|g| g.clone()).unwrap_or_default();
                if json {
                    serde_json::json!({"message_type": "status", "stage": stage, "done": done,
                        "total": total, "seconds_elapsed": el.as_secs()})
                    .to_string()
                } else if total > 0 {
                    format!(
                        "[{}] {stage} {done}/{total}",
                        crate::progress::clock(el.as_secs())
                    )
                } else {
                    format!("[{}] {stage}", crate::progress::clock(el.as_secs()))
                }
            },
        )
    };
    let progress = move |stage: &str, done: u64, total: u64| {
        if let Ok(mut g) = state.lock() {
            *g = (stage.to_string(), done, total);
        }
    };
    let quiet = cli.quiet;
    let notice = |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let r = prune(
        repo.clone(),
        opts,
        &Observer {
            progress: &progress,
            notice: &notice,
        },
    );
    drop(display);
    let r = r?;
    let elapsed = started.elapsed();
    if cli.json {
        let mut v = serde_json::to_value(&r)?;
        v["message_type"] = "summary".into();
        v["seconds"] = elapsed.as_secs_f64().into();
        v["storage"] = crate::output::transfer_json(repo.backend().as_ref());
        println!("{v}");
    } else if !cli.quiet {
        print_report(&r, elapsed);
        if let Some(t) = crate::output::transfer_line(repo.backend().as_ref()) {
            println!("{t}");
        }
    }
    Ok(0)
}

fn print_report(r: &PruneReport, elapsed: std::time::Duration) {
    println!(
        "{}, {} ({}): {} used, {} unused",
        plural(r.snapshots as u64, "snapshot"),
        plural(r.packs_before as u64, "pack"),
        bytes(r.bytes_before),
        bytes(r.used_bytes),
        bytes(r.unused_bytes)
    );
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    println!(
        "{verb} {} whole, repack {}{}{}",
        plural(r.packs_deleted as u64, "unused pack"),
        plural(r.packs_repacked as u64, "pack"),
        if r.dry_run {
            String::new()
        } else {
            format!(
                " ({} blobs into {}, {} written)",
                r.blobs_repacked,
                plural(r.packs_written, "new pack"),
                bytes(r.bytes_written)
            )
        },
        if r.unindexed_deleted > 0 {
            format!(
                ", and {} no index lists",
                plural(r.unindexed_deleted as u64, "pack")
            )
        } else {
            String::new()
        }
    );
    if r.packs_deferred > 0 {
        println!(
            "{} with unused space left for the next prune (--max-repack-size)",
            plural(r.packs_deferred as u64, "pack")
        );
    }
    for w in &r.withdrawn {
        println!(
            "kept pack {} after all: a snapshot made during the prune needs it",
            &w[..8]
        );
    }
    if r.erased_blobs > 0 || !r.erasure_requests_completed.is_empty() {
        println!(
            "erasure: {} removed from every pack; {} completed",
            plural(r.erased_blobs as u64, "blob"),
            plural(r.erasure_requests_completed.len() as u64, "erasure request")
        );
    }
    if !r.not_erased_blobs.is_empty() {
        println!(
            "erasure: {} still used by kept snapshots (shared with kept files through deduplication) and NOT erased",
            plural(r.not_erased_blobs.len() as u64, "blob")
        );
    }
    if r.dry_run {
        println!(
            "dry run: about {} would be freed; nothing was changed",
            bytes(r.bytes_freed)
        );
    } else {
        println!(
            "freed {} in {}: the repository now holds {} ({})",
            bytes(r.bytes_freed),
            crate::output::duration(elapsed),
            plural(r.packs_after as u64, "pack"),
            bytes(r.bytes_after)
        );
    }
}
