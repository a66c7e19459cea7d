//! `ironvault diff SNAP1 SNAP2`: what changed between two snapshots.

use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::browse::diff;
use ironvault_core::browse::paths::resolve_given;
use ironvault_core::format::tree::NodeType;
use ironvault_core::format::Id;
use ironvault_core::repo::Repository;

#[derive(clap::Args)]
pub struct Args {
    /// The older snapshot (id, prefix or "latest"); SNAPSHOT:/PATH compares
    /// only that directory (a path as `ls` prints it or as it was backed up).
    first: String,
    /// The newer snapshot (or SNAPSHOT:/PATH).
    second: String,
}

/// One side of the comparison, `SNAPSHOT` or `SNAPSHOT:/PATH` (a stored
/// path or the path as it was backed up): the snapshot, the tree to compare
/// (None: a path that is not a directory there) and its stored path.
fn side(cli: &Cli, repo: &Repository, spec: &str) -> Result<(Id, Option<Id>, Vec<u8>)> {
    let (snap_spec, sub) = match spec.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (spec, None),
    };
    let (id, snap) = super::find_snapshot(cli, repo, snap_spec, &Default::default())?;
    let Some(p) = sub else {
        return Ok((id, Some(snap.tree), Vec::new()));
    };
    let (base, node) = resolve_given(repo, &snap, p.as_bytes())
        .map_err(|e| super::after_latest(e, snap_spec, &id, &snap))?;
    let tree = match node {
        None => Some(snap.tree),
        Some(n) if n.node_type == NodeType::Dir => n.subtree,
        Some(_) => {
            return Err(ironvault_core::Error::Usage(format!(
                "{p} is not a directory in snapshot {}; diff compares directories",
                id.short()
            ))
            .into())
        }
    };
    Ok((id, tree, base))
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let (ia, ta, base_a) = side(cli, &repo, &a.first)?;
    let (ib, tb, base_b) = side(cli, &repo, &a.second)?;
    if base_a != base_b {
        return Err(ironvault_core::Error::Usage(format!(
            "{} and {} are different paths ({} and {} as stored); compare the same path in both snapshots",
            a.first,
            a.second,
            crate::output::escape(&base_a),
            crate::output::escape(&base_b)
        ))
        .into());
    }
    if !cli.quiet && !cli.json {
        println!("comparing snapshot {} to {}:", ia.short(), ib.short());
    }
    let mut counts = [0u64; 5];
    diff(
        &repo,
        ta.as_ref(),
        tb.as_ref(),
        &base_a,
        &mut |path, change, _, _| {
            counts[change as usize] += 1;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"message_type": "change", "path": String::from_utf8_lossy(path),
                        "modifier": change.letter().to_string()})
                );
            } else {
                println!("{}    {}", change.letter(), crate::output::escape(path));
            }
        },
    )?;
    let [added, removed, modified, typ, meta] = counts;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"message_type": "statistics", "source_snapshot": ia.to_hex(), "target_snapshot": ib.to_hex(),
                "added": added, "removed": removed, "changed": modified, "type_changed": typ, "metadata_changed": meta})
        );
    } else if !cli.quiet {
        println!(
            "\n{added} added, {removed} removed, {modified} modified, {typ} changed type, {meta} metadata only (+ - M T U)"
        );
    }
    Ok(Exit::Ok)
}
