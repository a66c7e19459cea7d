//! `ironvault backup`: a new snapshot of the given paths.

use crate::output::{bytes, duration, plural};
use crate::Cli;
use anyhow::{anyhow, bail, Result};
use ironvault_core::backup::{backup, BackupOptions, ParentChoice};
use ironvault_core::format::Id;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Files and directories to back up.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Compare against this snapshot instead of the newest one of this host and paths.
    #[arg(long)]
    parent: Option<String>,
    /// Read every file again, ignoring the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Add a tag to the snapshot (repeatable; comma-separated lists allowed).
    #[arg(long, value_delimiter = ',', value_parser = non_empty)]
    tag: Vec<String>,
    /// Record this host name instead of the machine's.
    #[arg(long)]
    host: Option<String>,
    /// Record this time (RFC 3339, e.g. 2026-01-31T23:00:00+01:00) instead of now.
    #[arg(long)]
    time: Option<String>,
    /// zstd level 1-22; 0 stores data uncompressed. Default: the repository's (3).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=22))]
    compression: Option<i32>,
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("a tag cannot be empty".into())
    } else {
        Ok(s.to_string())
    }
}

pub fn run(cli: &Cli, a: &Args) -> Result<u8> {
    for p in &a.paths {
        if std::fs::symlink_metadata(p).is_err() {
            bail!(
                "{}: no such file or directory; nothing was backed up",
                p.display()
            );
        }
    }
    if let Some(t) = &a.time {
        chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| anyhow!("--time {t:?} is not an RFC 3339 time: {e}"))?;
    }
    let repo = super::open_repo(cli)?;
    let mut opts = BackupOptions::new(a.paths.clone());
    if let Some(h) = &a.host {
        opts.hostname = h.clone();
    }
    opts.tags = a.tag.clone();
    opts.time = a.time.clone();
    opts.compression = a.compression;
    opts.parent = if a.force {
        ParentChoice::Force
    } else if let Some(p) = &a.parent {
        ParentChoice::Snapshot(repo.find_snapshot(p)?.0)
    } else {
        ParentChoice::Auto
    };
    let started = std::time::Instant::now();
    let counters = std::sync::Arc::new(ironvault_core::backup::Progress::default());
    opts.progress = Some(counters.clone());
    let display = crate::progress::start(!cli.quiet && !cli.json, move |t| {
        let read = counters
            .bytes_read
            .load(std::sync::atomic::Ordering::Relaxed);
        crate::progress::rate_line(t, counters.files(), "read", read)
    });
    // On a terminal, clear the progress line before a warning.
    let clear = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "\r\x1b[2K"
    } else {
        ""
    };
    let warn = |m: &str| eprintln!("{clear}warning: {m}");
    let r = backup(repo.clone(), &opts, &warn);
    drop(display);
    let r = r?;
    let s = &r.summary;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "message_type": "summary",
                "files_new": s.files_new, "files_changed": s.files_changed, "files_unmodified": s.files_unmodified,
                "dirs": s.dirs, "bytes_read": s.bytes_read, "data_added": s.bytes_added,
                "errors": s.errors, "changed_during_read": s.changed_during_read,
                "total_duration": started.elapsed().as_secs_f64(),
                "snapshot_id": r.snapshot_id.to_hex(),
                "parent": r.parent.map(|p: Id| p.to_hex()),
            })
        );
    } else if !cli.quiet {
        if let Some(p) = r.parent {
            println!("using parent snapshot {}", p.short());
        }
        println!(
            "Files:  {} new, {} changed, {} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        );
        println!("Dirs:   {}", s.dirs);
        println!("Read:   {}", bytes(s.bytes_read));
        println!(
            "Added to the repository: {} in {} packs",
            bytes(s.bytes_added),
            r.packs_written
        );
        println!("took {}", duration(started.elapsed()));
        println!("snapshot {} saved", r.snapshot_id.short());
    }
    if r.is_partial() {
        eprintln!(
            "warning: snapshot {} is usable but incomplete: {} could not be read, {} changed while being read (see warnings above)",
            r.snapshot_id.short(),
            plural(s.errors, "file"),
            s.changed_during_read
        );
        return Ok(3);
    }
    Ok(0)
}
