//! `ironvault snapshots`: list snapshots, filtered and grouped.

use crate::output::escape_str;
use crate::Cli;
use crate::Exit;
use anyhow::{bail, Result};
use ironvault_core::contract::summary::{to_json_line, GroupKey, SnapshotEntry, SnapshotGroup};
use ironvault_core::format::snapshot::Snapshot;
use ironvault_core::format::Id;

#[derive(clap::Args)]
pub struct Args {
    /// Show only these snapshots (ids, prefixes or "latest").
    ids: Vec<String>,
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Only the newest N snapshots of each group.
    #[arg(long, value_name = "N")]
    latest: Option<usize>,
    /// Group by any of host, paths, tags (comma-separated).
    #[arg(long, value_name = "host,paths,tags", default_value = "")]
    group_by: String,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let mut by = (false, false, false);
    for g in a.group_by.split(',').filter(|g| !g.is_empty()) {
        match g {
            "host" => by.0 = true,
            "paths" => by.1 = true,
            "tags" => by.2 = true,
            other => bail!("--group-by {other:?}: use host, paths and/or tags"),
        }
    }
    let repo = super::open_repo(cli)?;
    let snaps = super::select_snapshots(cli, &repo, &a.ids, &a.filter)?;
    // Groups in order of their newest snapshot's first appearance.
    let mut groups: Vec<(GroupKey, Vec<(Id, Snapshot)>)> = Vec::new();
    for (id, s) in snaps {
        let mut paths = s.paths.clone();
        paths.sort();
        let mut tags = s.tags.clone();
        tags.sort();
        let key = GroupKey {
            hostname: by.0.then(|| s.hostname.clone()),
            paths: by.1.then_some(paths),
            tags: by.2.then_some(tags),
        };
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push((id, s)),
            None => groups.push((key, vec![(id, s)])),
        }
    }
    if let Some(n) = a.latest {
        for g in &mut groups {
            let skip = g.1.len().saturating_sub(n);
            g.1.drain(..skip);
        }
    }
    let grouped = !a.group_by.is_empty();
    if cli.json {
        let entries = |snaps: &[(Id, Snapshot)]| -> Vec<SnapshotEntry> {
            snaps
                .iter()
                .map(|(i, s)| SnapshotEntry::new(i, s))
                .collect()
        };
        let line = if grouped {
            let groups: Vec<SnapshotGroup> = groups
                .iter()
                .map(|(k, snaps)| SnapshotGroup {
                    group_key: k.clone(),
                    snapshots: entries(snaps),
                })
                .collect();
            to_json_line(&groups)
        } else {
            let all: Vec<(Id, Snapshot)> = groups.into_iter().flat_map(|g| g.1).collect();
            to_json_line(&entries(&all))
        };
        println!("{line}");
        return Ok(Exit::Ok);
    }
    let mut incomplete = 0;
    let mut total = 0;
    for (key, snaps) in &groups {
        if grouped {
            let key = serde_json::to_value(key).unwrap_or_default();
            let key = key
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            println!("group {}", crate::output::escape_json_text(&key));
        }
        println!(
            "{:<10} {:<26} {:<16} {:<16} paths",
            "ID", "time", "host", "tags"
        );
        for (id, s) in snaps {
            total += 1;
            let mark = if s.summary.as_ref().map(|x| x.errors > 0).unwrap_or(false) {
                incomplete += 1;
                "!"
            } else {
                ""
            };
            let t = s
                .parsed_time()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
                .unwrap_or_else(|| escape_str(&s.time));
            println!(
                "{:<10} {:<26} {:<16} {:<16} {}",
                format!("{}{mark}", id.short()),
                t,
                escape_str(&s.hostname),
                escape_str(&s.tags.join(",")),
                escape_str(&s.paths.join(", "))
            );
        }
        if grouped {
            println!();
        }
    }
    if !cli.quiet {
        println!("{}", crate::output::plural(total as u64, "snapshot"));
        if incomplete > 0 {
            println!("! = incomplete: some files could not be read when the snapshot was taken");
        }
    }
    Ok(Exit::Ok)
}
