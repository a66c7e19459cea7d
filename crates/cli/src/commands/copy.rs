//! `ironvault copy`: copy snapshots from a related repository into this one.

use super::{FromRepo, SnapshotFilter};
use crate::output::{bytes, duration, plural};
use crate::Cli;
use crate::Exit;
use anyhow::{bail, Result};
use ironvault_core::contract::summary::{to_json_line, CopiedEntry, CopySummary, MessageType};
use ironvault_core::copy::{copy_snapshots, CopiedSnapshot, CopyProgress};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to copy (ids, prefixes or "latest"); none means all that pass the filters.
    snapshots: Vec<String>,
    /// Copy every snapshot that passes the filters.
    #[arg(long, conflicts_with = "snapshots")]
    all: bool,
    #[command(flatten)]
    filter: SnapshotFilter,
    #[command(flatten)]
    from: FromRepo,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let Some(from) = &a.from.from_repo else {
        bail!("copy needs the source repository: --from-repo LOCATION");
    };
    let src = super::open_other(
        cli,
        from,
        a.from.from_password_file.clone(),
        a.from.from_password_command.clone(),
    )?;
    let dst = super::open_repo(cli)?;
    if src.config().id == dst.config().id {
        bail!(
            "--from-repo {from} and --repo {} are the same repository; nothing to copy",
            dst.backend().location()
        );
    }
    ironvault_core::copy::check_related(&src, &dst)?;
    let selected = super::select_snapshots(cli, &src, &a.snapshots, &a.filter).map_err(|e| {
        match e.downcast_ref::<ironvault_core::Error>() {
            Some(ironvault_core::Error::SnapshotNotFound(id)) => anyhow::anyhow!(
                "no snapshot {id} in the source repository {from}; 'ironvault snapshots --repo {from}' lists them"
            ),
            _ => e,
        }
    })?;
    if selected.is_empty() {
        if !cli.quiet {
            eprintln!("no snapshots in {from} match; nothing to copy");
        }
        return Ok(Exit::Ok);
    }
    let ids: Vec<_> = selected.iter().map(|(i, _)| *i).collect();
    let started = std::time::Instant::now();
    let progress = Arc::new(CopyProgress::default());
    let total = ids.len() as u64;
    let display = {
        let p = progress.clone();
        let json = cli.json;
        crate::progress::start(
            crate::progress::Mode::for_cli(cli.quiet, cli.json),
            move |el| {
                let (s, bd, bt, by) = (
                    p.snapshots_done.load(Ordering::Relaxed),
                    p.blobs_done.load(Ordering::Relaxed),
                    p.blobs_total.load(Ordering::Relaxed),
                    p.bytes_copied.load(Ordering::Relaxed),
                );
                if json {
                    serde_json::json!({"message_type": "status", "snapshots_done": s, "snapshots_total": total,
                        "blobs_done": bd, "blobs_total": bt, "bytes_copied": by, "seconds_elapsed": el.as_secs()})
                    .to_string()
                } else {
                    format!(
                        "[{}] snapshot {}/{total}, blobs {bd}/{bt}, {} copied",
                        duration(el),
                        (s + 1).min(total),
                        bytes(by)
                    )
                }
            },
        )
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    // On a terminal, clear the progress line before a warning.
    let clear = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "\r\x1b[2K"
    } else {
        ""
    };
    let mut lines: Vec<String> = Vec::new();
    let json = cli.json;
    let mut report = |c: &CopiedSnapshot| {
        let what = if c.copied {
            format!(
                "copied snapshot {} ({} {}): {}, {} added",
                c.id.short(),
                crate::output::escape_str(&c.snapshot.hostname),
                c.snapshot
                    .parsed_time()
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| crate::output::escape_str(&c.snapshot.time)),
                plural(c.blobs_copied, "blob"),
                bytes(c.bytes_copied)
            )
        } else {
            format!("snapshot {} is already in the destination", c.id.short())
        };
        lines.push(what);
    };
    let r = copy_snapshots(
        src.clone(),
        dst.clone(),
        &ids,
        threads,
        &progress,
        &|m: &str| eprintln!("{clear}warning: {m}"),
        &mut report,
    );
    drop(display);
    let copied = match r {
        Ok(c) => c,
        Err(e) => {
            // Say what was done before the failure: those snapshots are complete.
            if !cli.quiet && !json {
                for l in &lines {
                    println!("{l}");
                }
            }
            return Err(e.into());
        }
    };
    let n_copied = copied.iter().filter(|c| c.copied).count() as u64;
    if json {
        let summary = CopySummary {
            message_type: MessageType::Summary,
            snapshots: copied
                .iter()
                .map(|c| CopiedEntry {
                    id: c.id.to_hex(),
                    copied: c.copied,
                    blobs_copied: c.blobs_copied,
                    bytes_copied: c.bytes_copied,
                    bytes_stored: c.bytes_stored,
                })
                .collect(),
            snapshots_copied: n_copied,
            snapshots_present: copied.len() as u64 - n_copied,
            total_duration: started.elapsed().as_secs_f64(),
            source_storage: crate::output::storage_stats(src.backend().as_ref()),
            storage: crate::output::storage_stats(dst.backend().as_ref()),
            immutability: crate::output::immutability(dst.backend().as_ref()),
        };
        println!("{}", to_json_line(&summary));
    } else if !cli.quiet {
        for l in &lines {
            println!("{l}");
        }
        println!(
            "{} copied, {} already present, in {}",
            plural(n_copied, "snapshot"),
            copied.len() as u64 - n_copied,
            duration(started.elapsed())
        );
        if let Some(l) = crate::output::transfer_line(src.backend().as_ref()) {
            println!("source {l}");
        }
        if let Some(l) = crate::output::transfer_line(dst.backend().as_ref()) {
            println!("destination {l}");
        }
    }
    Ok(Exit::Ok)
}
