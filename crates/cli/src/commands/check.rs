//! `ironvault check`: verify the repository.

use crate::output::bytes;
use crate::Cli;
use crate::Exit;
use anyhow::Result;
use ironvault_core::check::{check, CheckOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Also read every pack and verify every blob (slow: reads the whole repository).
    #[arg(long)]
    read_data: bool,
    /// Read only part of the packs: N/M (part N of M; M runs cover all) or P% (random).
    #[arg(long, value_name = "N/M|P%", conflicts_with_all = ["read_data", "scrub_cycle"])]
    read_data_subset: Option<String>,
    /// Read the packs due today in a cycle of DAYS days (UTC): daily runs on any
    /// host read every pack once per cycle.
    #[arg(long, value_name = "DAYS", conflicts_with = "read_data")]
    scrub_cycle: Option<u64>,
    /// With --scrub-cycle: act as on this UTC day (days since 1970-01-01) instead of today.
    #[arg(long, value_name = "DAY", requires = "scrub_cycle", hide = true)]
    scrub_day: Option<u64>,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    use ironvault_core::check::scrub::Subset;
    let subset = match (&a.read_data_subset, a.scrub_cycle) {
        (Some(s), _) => Some(Subset::parse(s)?),
        (None, Some(days)) => Some(match a.scrub_day {
            Some(day) if days > 0 => Subset::Cycle { days, day },
            _ => Subset::cycle_today(days)?,
        }),
        (None, None) => None,
    };
    // Verify what the storage holds, not the local metadata cache.
    let repo = super::open_repo_with(cli, false)?;
    let progress = |_: &str, _: u64, _: u64| {};
    let r = check(
        &repo,
        &CheckOptions {
            read_data: a.read_data,
            subset,
        },
        &progress,
    )?;
    let mut r = r;
    let hidden = repo.backend().hidden_objects()?;
    if !hidden.is_empty() {
        let names: Vec<&str> = hidden.iter().take(3).map(|h| h.name.as_str()).collect();
        r.notices.push(format!(
            "{} hidden behind delete markers on the versioned bucket ({}{}): deleted without a version id; unless prune or forget removed them, run 'ironvault repair versions' to bring them back",
            crate::output::plural(hidden.len() as u64, "object"),
            names.join(", "),
            if hidden.len() > 3 { ", ..." } else { "" }
        ));
    }
    let alarms = repo.security().map(|g| g.alarms().len()).unwrap_or(0);
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "message_type": "summary", "ok": r.is_ok() && alarms == 0, "errors": r.errors,
                "security_alarms": alarms, "notices": r.notices,
                "snapshots": r.snapshots, "trees": r.trees, "packs": r.packs, "blobs": r.blobs, "bytes_read": r.bytes_read,
                "selection": subset.map(|s| s.describe()).or_else(|| a.read_data.then(|| "all".to_string())),
                "packs_read": r.packs_read.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
                "scrub_record": r.scrub_record.map(|i| i.to_hex()),
            })
        );
    } else {
        for n in &r.notices {
            if !cli.quiet {
                println!("notice: {n}");
            }
        }
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if !cli.quiet {
            println!(
                "checked {}, {}, {}, {}{}",
                crate::output::plural(r.snapshots as u64, "snapshot"),
                crate::output::plural(r.trees as u64, "tree"),
                crate::output::plural(r.packs as u64, "pack"),
                crate::output::plural(r.blobs as u64, "blob"),
                if a.read_data {
                    format!(", read {}", bytes(r.bytes_read))
                } else {
                    String::new()
                }
            );
            if let Some(s) = &subset {
                println!(
                    "{}: read {} of {}, {}",
                    s.describe(),
                    r.packs_read.len(),
                    crate::output::plural(r.packs_considered as u64, "pack"),
                    bytes(r.bytes_read)
                );
            }
            if let Some(id) = r.scrub_record {
                crate::commands::verbose(cli, || format!("scrub record scrubs/{}", id.to_hex()));
            }
        }
    }
    // The security record's alarms (printed as warnings when the repository
    // was opened): a repository that went back in time fails its check.
    if r.is_ok() && alarms > 0 {
        eprintln!(
            "error: the stored objects are sound, but this host's security record keeps {} (above): the repository went back in time or was tampered with; 'ironvault security status' lists them, 'ironvault security accept' takes the repository as it is",
            crate::output::plural(alarms as u64, "alarm")
        );
        return Ok(Exit::Rollback);
    }
    if r.is_ok() {
        if !cli.quiet && !cli.json {
            println!("no errors were found");
        }
        Ok(Exit::Ok)
    } else if r.unindexed_damaged == r.errors.len() {
        eprintln!("error: damage only in packs that no index lists ({} listed above): no snapshot uses them; delete them, or run 'ironvault prune'", r.errors.len());
        Ok(Exit::Failure)
    } else {
        eprintln!("error: the repository has {} (listed above); the files named there cannot be restored from this repository", crate::output::plural(r.errors.len() as u64, "error"));
        Ok(Exit::Failure)
    }
}
