//! `ironvault forget`: remove snapshots by a keep policy (GFS generations,
//! time spans, tags) or by id. Data stays until a prune removes what no
//! snapshot references any more.

use super::SnapshotFilter;
use crate::Cli;
use crate::Exit;
use anyhow::{bail, Result};
use ironvault_core::contract::summary::{
    to_json_line, ForgetEntry, ForgetGroup, ForgetSummary, GroupKey, MessageType,
};
use ironvault_core::forget::{apply, group, parse_group_by, CalDuration, Policy};
use ironvault_core::repo::lock::Lock;

#[derive(clap::Args)]
pub struct Args {
    /// Forget exactly these snapshots (ids or prefixes) instead of applying a policy.
    ids: Vec<String>,
    /// Keep the N newest snapshots (-1: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the N newest hours that have one (-1: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_hourly: Option<i64>,
    /// ... of each of the N newest days.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_daily: Option<i64>,
    /// ... of each of the N newest ISO weeks.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_weekly: Option<i64>,
    /// ... of each of the N newest months.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_monthly: Option<i64>,
    /// ... of each of the N newest years.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_yearly: Option<i64>,
    /// Keep every snapshot up to this long before the group's newest (e.g. 7d, 1y6m, 36h).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep one snapshot per hour within this span before the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<String>,
    /// Keep one snapshot per day within this span before the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<String>,
    /// Keep one snapshot per ISO week within this span before the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<String>,
    /// Keep one snapshot per month within this span before the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<String>,
    /// Keep one snapshot per year within this span before the newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<String>,
    /// Keep snapshots with these tags (comma-separated: all of them; repeatable: any list).
    #[arg(long = "keep-tag", value_name = "TAGS")]
    keep_tags: Vec<String>,
    /// Apply the policy per group of host, paths and/or tags ("" for one group).
    #[arg(long, value_name = "host,paths,tags", default_value = "host,paths")]
    group_by: String,
    /// Only say what would be removed and why each kept snapshot is kept.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    filter: SnapshotFilter,
    /// Run a prune afterwards, so the data only the removed snapshots used is deleted.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_opts: super::prune::PruneArgs,
}

fn dur(s: &Option<String>, flag: &str) -> Result<Option<CalDuration>> {
    s.as_deref()
        .map(|v| CalDuration::parse(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
        .transpose()
}

impl Args {
    fn policy(&self) -> Result<Policy> {
        Ok(Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: dur(&self.keep_within, "keep-within")?,
            within_hourly: dur(&self.keep_within_hourly, "keep-within-hourly")?,
            within_daily: dur(&self.keep_within_daily, "keep-within-daily")?,
            within_weekly: dur(&self.keep_within_weekly, "keep-within-weekly")?,
            within_monthly: dur(&self.keep_within_monthly, "keep-within-monthly")?,
            within_yearly: dur(&self.keep_within_yearly, "keep-within-yearly")?,
            tags: self
                .keep_tags
                .iter()
                .map(|t| {
                    t.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect()
                })
                .collect(),
        })
    }
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    // Bad arguments are usage errors (exit 2), like clap's own.
    let usage = |e: anyhow::Error| -> anyhow::Error {
        crate::Coded {
            code: Exit::Usage,
            msg: format!("{e:#}"),
        }
        .into()
    };
    let policy = a.policy().map_err(usage)?;
    policy.validate().map_err(|e| usage(e.into()))?;
    let by = parse_group_by(&a.group_by).map_err(|e| usage(e.into()))?;
    if a.ids.is_empty() && policy.is_empty() {
        bail!(
            "this policy keeps nothing, so every snapshot would be removed; give --keep-last, --keep-daily, --keep-within, --keep-tag, ... (or name the snapshots to forget)"
        );
    }
    if !a.ids.is_empty() && !policy.is_empty() {
        return Err(usage(anyhow::anyhow!(
            "give either snapshot ids or a --keep-* policy, not both"
        )));
    }
    if a.prune_opts.any() && !a.prune {
        return Err(usage(anyhow::anyhow!(
            "--max-unused and --max-repack-size only apply with --prune"
        )));
    }
    let mut prune_opts = a.prune_opts.options(a.dry_run);
    let repo = super::open_repo(cli)?;
    // A shared lock: removing snapshots is safe beside backups and a prune
    // (a prune that still sees a removed snapshot only keeps more), and it
    // keeps exclusive work such as 'repair packs' away.
    let lock = Lock::unless_dry_run(a.dry_run, repo.backend().clone(), *repo.master_key(), false)?;
    let mut snaps = super::select_snapshots(cli, &repo, &a.ids, &a.filter)?;
    let mut remove = Vec::new();
    if a.ids.is_empty() {
        // A snapshot a forget record names was removed by a key holder:
        // listed, it was put back or its removal was cut short; the policy
        // finishes that removal. One this host knows was removed and that
        // is back (a replay it noticed) is left to the operator. Neither
        // counts toward the policy: it must not push out a legitimate one
        // (format.md §11).
        let forgotten = repo.forgotten_snapshots();
        let distrusted = repo.distrusted_snapshots();
        let before = snaps.len();
        for (id, _) in snaps.iter().filter(|(id, _)| forgotten.contains(id)) {
            remove.push(*id);
            if !cli.json && !cli.quiet {
                println!(
                    "  remove {}  named by a forget record (its removal was cut short, or it was put back)",
                    id.short()
                );
            }
        }
        snaps.retain(|(id, _)| !distrusted.contains(id));
        let left_out = before - snaps.len() - remove.len();
        if left_out > 0 && !cli.json {
            eprintln!(
                "warning: left out of the policy: {} this host knows were removed and are back (see the warnings above); 'ironvault forget ID' removes them",
                crate::output::plural(left_out as u64, "snapshot")
            );
        }
    }
    let mut report = Vec::new();
    if snaps.is_empty() && !cli.json && !cli.quiet {
        println!("no snapshots match the filters");
    }
    if !a.ids.is_empty() {
        let mut items = Vec::new();
        for (id, s) in &snaps {
            remove.push(*id);
            if !cli.json && !cli.quiet {
                let time = s
                    .parsed_time()
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
                    .unwrap_or_else(|| s.time.clone());
                println!("  remove {}  {time}  named", id.short());
            }
            items.push(ForgetEntry::new(id, s, false, vec!["named".into()]));
        }
        report.push(ForgetGroup {
            group: None,
            snapshots: items,
        });
    } else {
        for (key, members) in group(snaps, by) {
            let decisions = apply(&policy, &members);
            let by_id: std::collections::HashMap<_, _> =
                members.iter().map(|(i, s)| (*i, s)).collect();
            if !cli.json && !cli.quiet {
                let mut label = Vec::new();
                if let Some(h) = &key.host {
                    label.push(format!("host {h}"));
                }
                if let Some(p) = &key.paths {
                    label.push(format!("paths [{}]", p.join(", ")));
                }
                if let Some(t) = &key.tags {
                    label.push(format!("tags [{}]", t.join(", ")));
                }
                let kept = decisions.iter().filter(|d| d.keep).count();
                println!(
                    "{}: keep {kept}, remove {}",
                    if label.is_empty() {
                        "all snapshots".into()
                    } else {
                        crate::output::escape_str(&label.join(", "))
                    },
                    decisions.len() - kept
                );
            }
            let mut group_items = Vec::new();
            for d in &decisions {
                let s = by_id[&d.id];
                if !cli.json && !cli.quiet {
                    let time = s
                        .parsed_time()
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
                        .unwrap_or_else(|| s.time.clone());
                    println!(
                        "  {:<6} {}  {time}  {}",
                        if d.keep { "keep" } else { "remove" },
                        d.id.short(),
                        d.reasons.join(", ")
                    );
                }
                if !d.keep {
                    remove.push(d.id);
                }
                group_items.push(ForgetEntry::new(&d.id, s, d.keep, d.reasons.clone()));
            }
            report.push(ForgetGroup {
                group: Some(GroupKey {
                    hostname: key.host,
                    paths: key.paths,
                    tags: key.tags,
                }),
                snapshots: group_items,
            });
        }
    }
    let mut removed = 0u64;
    if !a.dry_run {
        if let Some(l) = &lock {
            l.confirm()?;
        }
        repo.remove_snapshots(
            &remove,
            ironvault_core::repo::security::How::Forget,
            &mut |_| removed += 1,
        )?;
    }
    if let Some(l) = lock {
        l.release()?;
    }
    prune_opts.ignore_snapshots = remove.clone();
    // The forget's own summary comes first, so it is out even if the prune
    // is interrupted or fails.
    if !cli.json && !cli.quiet {
        if a.dry_run {
            println!(
                "dry run: {} would be removed; nothing was changed",
                crate::output::plural(remove.len() as u64, "snapshot")
            );
        } else if removed == 0 {
            println!("nothing to remove");
        } else {
            println!(
                "removed {}{}",
                crate::output::plural(removed, "snapshot"),
                if a.prune {
                    "; pruning"
                } else {
                    "; the data only they used stays stored until 'ironvault prune' removes it"
                }
            );
        }
    }
    if removed > 0 && !a.dry_run && !a.prune {
        super::say_object_lock(cli, repo.backend().as_ref());
    }
    let pruned = if a.prune {
        Some(
            super::prune::prune_with_progress(cli, repo.clone(), &prune_opts).map_err(|e| {
                super::prune::after_other_work(
                    e,
                    &format!("{} removed", crate::output::plural(removed, "snapshot")),
                )
            })?,
        )
    } else {
        None
    };
    if cli.json {
        let summary = ForgetSummary {
            message_type: MessageType::Summary,
            dry_run: a.dry_run,
            groups: report,
            removed: remove.iter().map(|i| i.to_hex()).collect(),
            removed_count: if a.dry_run {
                remove.len() as u64
            } else {
                removed
            },
            prune: pruned
                .as_ref()
                .map(|(r, el)| super::prune::summary(&repo, r, *el)),
        };
        println!("{}", to_json_line(&summary));
    } else if !cli.quiet {
        if let Some((r, el)) = &pruned {
            super::prune::print_report(&repo, r, *el);
        }
    }
    if pruned.is_some() && !a.dry_run {
        super::say_object_lock(cli, repo.backend().as_ref());
    }
    Ok(Exit::Ok)
}
