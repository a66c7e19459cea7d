//! `ironvault stats [SNAPSHOT...]`: sizes, deduplication and compression.

use crate::output::bytes;
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
        "Files (restore size):  {} files, {}",
        s.total_file_count,
        bytes(s.total_size)
    );
    println!(
        "Unique data (raw):     {} in {} blobs",
        bytes(s.total_uncompressed_size),
        s.total_blob_count
    );
    println!("Unique data (stored):  {}", bytes(s.total_blob_stored_size));
    println!("Deduplication ratio:   {:.2}x", s.dedup_ratio);
    println!("Compression ratio:     {:.2}x", s.compression_ratio);
    println!("Packs referenced:      {}", s.pack_count);
    println!("Repository data size:  {}", bytes(s.repository_size));
    Ok(Exit::Ok)
}
