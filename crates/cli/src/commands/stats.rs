//! `ironvault stats [SNAPSHOT...]`: sizes, deduplication and compression.

use crate::output::{bytes, plural};
use crate::Cli;
use crate::Exit;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to count (default: all, or those the filters select).
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: super::SnapshotFilter,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let snaps = super::select_snapshots(cli, &repo, &a.snapshots, &a.filter)?;
    let trees: Vec<_> = snaps.iter().map(|(_, s)| s.tree).collect();
    let s = ironvault_core::browse::stats(&repo, &trees)?;
    if cli.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(Exit::Ok);
    }
    println!("Snapshots:             {}", s.snapshots_count);
    println!(
        "Files (restore size):  {}, {}",
        plural(s.total_file_count, "file"),
        bytes(s.total_size)
    );
    println!(
        "Unique data (raw):     {} in {}",
        bytes(s.total_uncompressed_size),
        plural(s.total_blob_count, "blob")
    );
    println!("Unique data (stored):  {}", bytes(s.total_blob_stored_size));
    println!("Deduplication ratio:   {}", dedup_ratio(s.dedup_ratio));
    println!("Compression ratio:     {:.2}x", s.compression_ratio);
    println!("Packs referenced:      {}", s.pack_count);
    println!("Repository data size:  {}", bytes(s.repository_size));
    Ok(Exit::Ok)
}

/// "2.41x" where data deduplicated; a ratio that rounds to 1 or below (a
/// little metadata more than the files, nothing shared) is no deduplication.
fn dedup_ratio(r: f64) -> String {
    if r >= 1.005 {
        format!("{r:.2}x")
    } else {
        "none (no data is shared between files or snapshots)".into()
    }
}
