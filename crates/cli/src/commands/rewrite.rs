//! `ironvault rewrite --exclude PATTERN`: erase files from snapshots (GDPR).
//! The output, and `--json`, is the audit record of what was removed from
//! which snapshots, and of what deduplication keeps from being erased.

use super::SnapshotFilter;
use crate::output::{bytes, escape_str, plural};
use crate::Cli;
use crate::Exit;
use anyhow::{bail, Result};
use ironvault_core::backup::exclude::Excludes;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to rewrite (ids, prefixes or "latest").
    snapshots: Vec<String>,
    /// Rewrite every snapshot that passes the filters.
    #[arg(long, conflicts_with = "snapshots")]
    all: bool,
    /// Remove files and directories matching this pattern (repeatable; the
    /// rules of `backup --exclude`, against the path as backed up or as `ls` shows it).
    #[arg(
        short,
        long,
        value_name = "PATTERN",
        required_unless_present = "iexclude"
    )]
    exclude: Vec<String>,
    /// Like --exclude, ignoring case.
    #[arg(long, value_name = "PATTERN")]
    iexclude: Vec<String>,
    /// Show what would be removed; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Prune right after, so the erased data leaves storage now.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_opts: super::prune::PruneArgs,
    #[command(flatten)]
    filter: SnapshotFilter,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    if a.snapshots.is_empty() && !a.all {
        bail!(
            "name the snapshots to rewrite, or give --all (with --host/--tag/--path to narrow it)"
        );
    }
    if a.exclude.iter().chain(&a.iexclude).any(|p| p.is_empty()) {
        bail!("an empty --exclude pattern matches nothing; give the files to erase");
    }
    if a.prune_opts.any() && !a.prune {
        bail!("--max-unused and --max-repack-size only apply with --prune");
    }
    let excludes = Excludes::new(&a.exclude, &a.iexclude)?;
    let prune_opts = a.prune_opts.options(a.dry_run);
    let repo = super::open_repo(cli)?;
    let ids: Vec<_> = super::select_snapshots(cli, &repo, &a.snapshots, &a.filter)?
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let mut patterns = a.exclude.clone();
    patterns.extend(a.iexclude.iter().map(|p| format!("{p} (ignoring case)")));
    let r = ironvault_core::rewrite::rewrite(repo.clone(), &ids, &excludes, &patterns, a.dry_run)?;
    // A pattern that erased nothing while others did would otherwise go
    // unnoticed: say so for each.
    if !r.rewritten.is_empty() {
        for p in &r.unmatched_patterns {
            let flag = match a.exclude.contains(p) {
                true => "--exclude",
                false => "--iexclude",
            };
            eprintln!(
                "warning: {flag} {} matches nothing in the selected snapshots: nothing is erased for it ('ironvault find' shows where a name is)",
                escape_str(p)
            );
        }
    }
    let mut json = None;
    if cli.json {
        let mut v = serde_json::to_value(&r)?;
        v["message_type"] = "summary".into();
        v["time"] = chrono::Utc::now().to_rfc3339().into();
        v["repository"] = repo.backend().location().into();
        json = Some(v);
    } else if !cli.quiet {
        for s in &r.rewritten {
            match &s.new {
                Some(n) => println!(
                    "snapshot {} ({}, {}) rewritten as {}: removed {} ({})",
                    &s.original[..8],
                    escape_str(&s.time),
                    escape_str(&s.hostname),
                    &n[..8],
                    plural(s.files_removed, "file"),
                    bytes(s.bytes_removed)
                ),
                None => println!(
                    "snapshot {} ({}, {}) would lose {} ({})",
                    &s.original[..8],
                    escape_str(&s.time),
                    escape_str(&s.hostname),
                    plural(s.files_removed, "file"),
                    bytes(s.bytes_removed)
                ),
            }
            for p in &s.removed {
                println!("  - {p}");
            }
        }
        println!(
            "{} {}, {} without matches left as {}",
            plural(r.rewritten.len() as u64, "snapshot"),
            if r.dry_run {
                "would be rewritten"
            } else {
                "rewritten"
            },
            r.unchanged.len(),
            if r.unchanged.len() == 1 {
                "it is"
            } else {
                "they are"
            }
        );
        if r.rewritten.is_empty() {
            println!("no file matches the patterns (a pattern without '/' matches whole names, e.g. '*doe*')");
        }
        if !r.shared.is_empty() {
            println!(
                "NOT erased: {} that removed files share with kept files (deduplication), for example:",
                plural(r.shared.len() as u64, "blob")
            );
            for s in r.shared.iter().take(10) {
                println!(
                    "  blob {} used by {} in snapshot {}",
                    &s.blob[..8],
                    s.path,
                    &s.snapshot[..8]
                );
            }
        }
        if r.dry_run {
            println!(
                "{} would be erased by the next prune; dry run: nothing was changed",
                plural(r.blobs_to_erase as u64, "blob")
            );
        } else if let Some(q) = &r.erasure_request {
            println!(
                "{} to erase, recorded in {q}; {}",
                plural(r.blobs_to_erase as u64, "blob"),
                if a.prune {
                    "pruning now"
                } else {
                    "run 'ironvault prune' to remove them from storage"
                }
            );
        }
    }
    if a.prune && !a.dry_run {
        let (pr, el) =
            super::prune::prune_with_progress(cli, repo.clone(), &prune_opts).map_err(|e| {
                super::prune::after_other_work(
                    e,
                    &format!(
                        "{} rewritten and recorded for erasure",
                        crate::output::plural(r.rewritten.len() as u64, "snapshot")
                    ),
                )
            })?;
        if let Some(v) = json.as_mut() {
            v["prune"] = serde_json::to_value(super::prune::summary(&repo, &pr, el))?;
        } else if !cli.quiet {
            super::prune::print_report(&repo, &pr, el);
        }
    }
    if let Some(v) = json {
        println!("{v}");
    }
    Ok(Exit::Ok)
}
