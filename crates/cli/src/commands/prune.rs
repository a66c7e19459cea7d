//! `ironvault prune`: delete the data no snapshot needs and repack packs
//! with too much unused space, while other hosts go on backing up
//! (format.md §9). Also run by `forget --prune`.

use crate::output::{bytes, plural};
use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::contract::summary::{to_json_line, PruneSummary};
use ironvault_core::prune::plan::MaxUnused;
use ironvault_core::prune::{prune, Observer, PruneOptions, PruneReport};
use ironvault_core::repo::Repository;
use std::sync::{Arc, Mutex};

/// Options shared by `prune`, `forget --prune` and `rewrite --prune`.
#[derive(clap::Args, Clone)]
pub struct PruneArgs {
    /// Repack a pack when more than this share of it is unused: a percentage
    /// (0% repacks every pack with any unused blob) or "unlimited" [default: 5%].
    #[arg(long, value_name = "PERCENT", value_parser = MaxUnused::parse, allow_hyphen_values = true)]
    pub max_unused: Option<MaxUnused>,
    /// Repack at most this much per run (e.g. 2G = 2 GiB; K, M, G, T are
    /// powers of 1024); the rest waits for the next prune. Packs holding data
    /// of an erasure (`rewrite`) are always repacked.
    #[arg(long, value_name = "SIZE", value_parser = crate::output::parse_size, allow_hyphen_values = true)]
    pub max_repack_size: Option<u64>,
}

impl PruneArgs {
    pub fn options(&self, dry_run: bool) -> PruneOptions {
        PruneOptions {
            max_unused: self.max_unused.unwrap_or(MaxUnused::Percent(5.0)),
            max_repack_size: self.max_repack_size,
            dry_run,
            ..PruneOptions::default()
        }
    }

    /// True if any option was given (they need --prune on forget and rewrite).
    pub fn any(&self) -> bool {
        self.max_unused.is_some() || self.max_repack_size.is_some()
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

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let opts = a.prune.options(a.dry_run);
    let repo = super::open_repo(cli)?;
    let (r, elapsed) = prune_with_progress(cli, repo.clone(), &opts)?;
    if cli.json {
        println!("{}", to_json_line(&summary(&repo, &r, elapsed)));
    } else if !cli.quiet {
        print_report(&repo, &r, elapsed);
    }
    if !a.dry_run {
        super::say_object_lock(cli, repo.backend().as_ref());
    }
    Ok(Exit::Ok)
}

/// An interrupted prune that ran after other work (`forget --prune`,
/// `rewrite --prune`): say that the work stands and the prune did not.
pub fn after_other_work(e: anyhow::Error, done: &str) -> anyhow::Error {
    match e.downcast_ref::<ironvault_core::Error>() {
        Some(ironvault_core::Error::Interrupted) => crate::Coded {
            code: Exit::Interrupted,
            msg: format!(
                "interrupted during the prune: {done}, but the prune deleted nothing; run 'ironvault prune' to free the space"
            ),
        }
        .into(),
        _ => e,
    }
}

/// The report as the JSON summary.
pub fn summary(repo: &Repository, r: &PruneReport, elapsed: std::time::Duration) -> PruneSummary {
    PruneSummary::new(
        r,
        elapsed.as_secs_f64(),
        crate::output::storage_stats(repo.backend().as_ref()),
    )
}

/// Prune with a progress display (also for `forget --prune` and `rewrite --prune`).
pub fn prune_with_progress(
    cli: &Cli,
    repo: Arc<Repository>,
    opts: &PruneOptions,
) -> Result<(PruneReport, std::time::Duration)> {
    // Deleting data while the repository may have been rolled back or
    // tampered with could destroy what an operator still needs to recover
    // (the packs of snapshots someone deleted): settle the alarms first.
    let alarms = repo.security().map(|g| g.alarms().len()).unwrap_or(0);
    if alarms > 0 && !opts.dry_run {
        return Err(crate::Coded {
            code: Exit::Rollback,
            msg: format!(
                "prune refused: this host's security record keeps {} about repository {} (above), and prune could delete data needed to recover; 'ironvault security status' lists them, 'ironvault security accept' takes the repository as it is",
                crate::output::plural(alarms as u64, "alarm"),
                repo.config().id.short()
            ),
        }
        .into());
    }
    let started = std::time::Instant::now();
    let state = Arc::new(Mutex::new((String::from("starting"), 0u64, 0u64)));
    let display = {
        let s = state.clone();
        let json = cli.json;
        crate::progress::start(
            // With --json the output is one document: no status lines.
            if cli.json || cli.quiet {
                crate::progress::Mode::Off
            } else {
                crate::progress::Mode::Terminal
            },
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
    Ok((r?, started.elapsed()))
}

/// The human report.
pub fn print_report(repo: &Repository, r: &PruneReport, elapsed: std::time::Duration) {
    let packs = |n: usize| plural(n as u64, "pack");
    let mut head = format!(
        "{}, {} ({}): {} used, {} unused",
        plural(r.snapshots as u64, "snapshot"),
        packs(r.packs_before),
        bytes(r.bytes_before),
        bytes(r.used_bytes),
        bytes(r.unused_bytes)
    );
    if r.unindexed_bytes > 0 {
        head += &format!(", {} in packs no index lists yet", bytes(r.unindexed_bytes));
    }
    println!("{head}");
    let mut parts = Vec::new();
    if r.dry_run {
        parts.push(format!(
            "delete {} that nothing needs",
            packs(r.packs_deleted)
        ));
        parts.push(format!(
            "repack {} (copy what is needed, then delete)",
            packs(r.packs_repacked)
        ));
        if r.unindexed_deleted > 0 {
            parts.push(format!(
                "delete {} that no index lists, unless a backup still writing them needs them",
                packs(r.unindexed_deleted)
            ));
        }
        println!("would {}", parts.join(", "));
    } else {
        parts.push(format!("{} that nothing needed", packs(r.packs_deleted)));
        parts.push(format!(
            "{} after copying {} into {} ({} written)",
            packs(r.packs_repacked),
            plural(r.blobs_repacked, "blob"),
            plural(r.packs_written, "new pack"),
            bytes(r.bytes_written)
        ));
        if r.unindexed_deleted > 0 {
            parts.push(format!(
                "{} that no index listed",
                packs(r.unindexed_deleted)
            ));
        }
        println!("deleted {}", parts.join(", "));
    }
    if !r.withdrawn.is_empty() {
        println!(
            "kept {} after all: snapshots made during the prune need them",
            packs(r.withdrawn.len())
        );
    }
    if r.packs_deferred > 0 {
        println!(
            "{} with unused space left for the next prune (--max-repack-size)",
            packs(r.packs_deferred)
        );
    }
    if r.erased_blobs > 0 || !r.erasure_requests_completed.is_empty() {
        println!(
            "erasure: {} removed from every pack; {} completed",
            plural(r.erased_blobs as u64, "blob"),
            plural(r.erasure_requests_completed.len() as u64, "erasure request")
        );
    }
    if !r.erasure_requests_pending.is_empty() {
        println!(
            "erasure NOT complete: {} open until all {} blobs are gone; each prune tries again",
            crate::output::count(
                r.erasure_requests_pending.len() as u64,
                "erasure request stays",
                "erasure requests stay"
            ),
            if r.erasure_requests_pending.len() == 1 {
                "its"
            } else {
                "their"
            }
        );
    }
    if !r.not_erased.is_empty() {
        println!(
            "erasure: {} NOT erased: kept snapshots still use {} in these files (a file the erasure's patterns do not match shares the content through deduplication; one they do match was backed up again, so rewrite that snapshot too):",
            plural(r.not_erased.len() as u64, "blob"),
            if r.not_erased.len() == 1 { "it" } else { "them" }
        );
        for s in r.not_erased.iter().take(10) {
            println!("  {} in snapshot {}", s.path, &s.snapshot[..8]);
        }
        if r.not_erased.len() > 10 {
            println!(
                "  ... and {} more (--json lists them all)",
                r.not_erased.len() - 10
            );
        }
    }
    if r.dry_run {
        println!(
            "dry run: about {} would be freed{}; nothing was changed",
            bytes(r.bytes_freed),
            if r.unindexed_bytes > 0 {
                " (not counting packs no index lists yet: a backup in progress may need them)"
            } else {
                ""
            }
        );
    } else if r.bytes_grown > 0 {
        println!(
            "freed nothing in {}: the repository grew by {} (copies of packs that snapshots made meanwhile kept; the next prune removes the duplicates) and holds {} ({})",
            crate::output::duration(elapsed),
            bytes(r.bytes_grown),
            packs(r.packs_after.unwrap_or_default()),
            bytes(r.bytes_after)
        );
    } else {
        println!(
            "freed {} in {}: the repository now holds {} ({})",
            bytes(r.bytes_freed),
            crate::output::duration(elapsed),
            packs(r.packs_after.unwrap_or_default()),
            bytes(r.bytes_after)
        );
    }
    if let Some(t) = crate::output::transfer_line(repo.backend().as_ref()) {
        println!("{t}");
    }
}
