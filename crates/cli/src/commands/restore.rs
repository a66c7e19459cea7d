//! `ironvault restore`: write a snapshot's files into a directory.

use crate::output::{bytes, duration, plural};
use crate::Cli;
use anyhow::Result;
use ironvault_core::restore::{restore, RestoreOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (or unique prefix), or "latest".
    snapshot: String,
    /// Directory to restore into (created if needed).
    #[arg(short, long)]
    target: PathBuf,
}

pub fn run(cli: &Cli, a: &Args) -> Result<u8> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let (id, snap) = repo.find_snapshot(&a.snapshot)?;
    let started = std::time::Instant::now();
    if !cli.quiet && !cli.json {
        println!(
            "restoring snapshot {} of {} at {} to {}",
            id.short(),
            snap.paths.join(", "),
            snap.time,
            a.target.display()
        );
    }
    if let Some(sum) = snap.summary.as_ref().filter(|s| s.errors > 0) {
        eprintln!(
            "warning: snapshot {} is incomplete: {} could not be read when it was taken (see that backup's warnings)",
            id.short(),
            plural(sum.errors, "file")
        );
    }
    let mut opts = RestoreOptions::new(a.target.clone());
    let counters = std::sync::Arc::new(ironvault_core::restore::RestoreProgress::default());
    opts.progress = Some(counters.clone());
    let display = crate::progress::start(!cli.quiet && !cli.json, move |t| {
        use std::sync::atomic::Ordering::Relaxed;
        crate::progress::rate_line(
            t,
            counters.files_written.load(Relaxed),
            "written",
            counters.bytes_written.load(Relaxed),
        )
    });
    let st = restore(&repo, &snap.tree, &opts);
    drop(display);
    let st = st?;
    for e in &st.errors {
        eprintln!("error: {e}");
    }
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "message_type": "summary", "snapshot_id": id.to_hex(), "files_restored": st.files,
                "dirs_restored": st.dirs, "bytes_restored": st.bytes_written, "errors": st.errors,
                "total_duration": started.elapsed().as_secs_f64(),
            })
        );
    } else if !cli.quiet {
        println!(
            "restored {} files, {} directories, {} in {}",
            st.files,
            st.dirs,
            bytes(st.bytes_written),
            duration(started.elapsed())
        );
    }
    if !st.errors.is_empty() {
        eprintln!(
            "warning: {} could not be restored (listed above); everything else was restored and verified; run 'ironvault check --read-data'",
            plural(st.errors.len() as u64, "item")
        );
        return Ok(3);
    }
    Ok(0)
}
