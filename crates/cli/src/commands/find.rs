//! `ironvault find PATTERN...`: which snapshots hold matching files.

use crate::output::{escape, escape_str};
use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::backup::exclude::Excludes;
use ironvault_core::browse::walk;

#[derive(clap::Args)]
pub struct Args {
    /// Glob on the file name (`*.conf`), or on the snapshot path if it holds
    /// a `/` (a path as `ls` prints it or as it was backed up).
    #[arg(required = true)]
    patterns: Vec<String>,
    /// Ignore case.
    #[arg(short, long)]
    ignore_case: bool,
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Search only these snapshots (ids, prefixes or "latest").
    #[arg(long = "snapshot", short = 's')]
    snapshots: Vec<String>,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let (ci, cs): (Vec<String>, Vec<String>) = if a.ignore_case {
        (a.patterns.clone(), vec![])
    } else {
        (vec![], a.patterns.clone())
    };
    let matcher = Excludes::new(&cs, &ci)?;
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let snaps = super::select_snapshots(cli, &repo, &a.snapshots, &a.filter)?;
    let mut total = 0;
    for (id, s) in &snaps {
        // A path is matched as stored (/data/...) and as backed up
        // (/srv/www/data/...), so a pattern may be written either way.
        let roots = ironvault_core::browse::paths::Roots::new(&repo, s)?;
        for p in &a.patterns {
            roots.check_pattern(p)?;
        }
        let mut hits = Vec::new();
        walk(&repo, &s.tree, b"", &mut |path, n| {
            if ironvault_core::restore::select::matches(&matcher, Some(&roots), path) {
                hits.push((path.to_vec(), n.clone()));
            }
            Ok(true)
        })?;
        if hits.is_empty() {
            continue;
        }
        total += hits.len();
        if cli.json {
            let matches: Vec<_> = hits
                .iter()
                .map(|(p, n)| {
                    serde_json::json!({"path": String::from_utf8_lossy(p), "type": format!("{:?}", n.node_type).to_lowercase(),
                        "size": n.size, "mode": n.mode, "permissions": super::ls::mode_string(n)})
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"snapshot": id.to_hex(), "hits": hits.len(), "matches": matches})
            );
        } else {
            println!(
                "snapshot {} ({}, {}):",
                id.short(),
                escape_str(&s.hostname),
                escape_str(&s.time)
            );
            for (p, n) in &hits {
                println!(
                    "  {} {:>12} {}",
                    super::ls::mode_string(n),
                    n.size,
                    escape(p)
                );
            }
        }
    }
    if !cli.json && !cli.quiet {
        println!(
            "{} in {} searched",
            crate::output::count(total as u64, "match", "matches"),
            crate::output::plural(snaps.len() as u64, "snapshot")
        );
    }
    Ok(Exit::Ok)
}
