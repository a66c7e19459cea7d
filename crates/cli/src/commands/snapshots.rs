//! `ironvault snapshots`: list snapshots.

use crate::Cli;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(cli: &Cli, _a: &Args) -> Result<u8> {
    let repo = super::open_repo(cli)?;
    let (snaps, errs) = repo.list_snapshots()?;
    for e in &errs {
        eprintln!("warning: {e}");
    }
    if cli.json {
        let v: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(), "short_id": id.short(), "time": s.time, "hostname": s.hostname,
                    "paths": s.paths, "tags": s.tags, "tree": s.tree.to_hex(), "username": s.username,
                    "uid": s.uid, "gid": s.gid, "parent": s.parent.map(|p| p.to_hex()),
                    "program_version": s.program_version, "summary": s.summary,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(0);
    }
    println!(
        "{:<10} {:<26} {:<16} {:<16} paths",
        "ID", "time", "host", "tags"
    );
    let mut incomplete = 0;
    for (id, s) in &snaps {
        let mark = if s.summary.as_ref().map(|x| x.errors > 0).unwrap_or(false) {
            incomplete += 1;
            "!"
        } else {
            ""
        };
        let t = s
            .parsed_time()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
            .unwrap_or_else(|| s.time.clone());
        println!(
            "{:<10} {:<26} {:<16} {:<16} {}",
            format!("{}{mark}", id.short()),
            t,
            s.hostname,
            s.tags.join(","),
            s.paths.join(", ")
        );
    }
    if !cli.quiet {
        println!("{} snapshots", snaps.len());
        if incomplete > 0 {
            println!("! = incomplete: some files could not be read when the snapshot was taken");
        }
    }
    Ok(0)
}
