//! `ironvault restore`: write a snapshot's files into a directory.

use crate::output::{bytes, duration, plural};
use crate::{Cli, Exit};
use anyhow::Result;
use ironvault_core::browse::paths::{resolve_given, Roots};
use ironvault_core::contract::summary::{to_json_line, MessageType, RestoreSummary};
use ironvault_core::restore::select::unmatched;
use ironvault_core::restore::{restore_nodes, RestoreOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (or unique prefix), or "latest"; SNAPSHOT:/PATH restores
    /// only that directory's content (or that file) into the target.
    snapshot: String,
    /// With "latest": the newest snapshot of these hosts, tags and paths.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Directory to restore into (created if needed).
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only snapshot paths matching this glob, and what is below them
    /// (repeatable); a path as `ls` prints it or as it was backed up. One
    /// that matches nothing is an error.
    #[arg(short, long, value_name = "PATTERN")]
    include: Vec<String>,
    /// Like --include, ignoring case.
    #[arg(long, value_name = "PATTERN")]
    iinclude: Vec<String>,
    /// Leave out snapshot paths matching this glob (repeatable; a path as
    /// `ls` prints it or as it was backed up).
    #[arg(short, long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Like --exclude, ignoring case.
    #[arg(long, value_name = "PATTERN")]
    iexclude: Vec<String>,
    /// Files already in the target: always replace, replace if-changed (content
    /// checked against the snapshot, so a rerun after a crash rewrites only what
    /// is wrong), if-newer, or never.
    #[arg(long, default_value = "always", value_name = "MODE")]
    overwrite: ironvault_core::restore::select::Overwrite,
    /// After restoring, check every restored entry against the snapshot:
    /// content read back and hashed, and type, mode, mtime, owners (when
    /// restored), symlink target, device number and extended attributes.
    #[arg(long)]
    verify: bool,
    /// Make restored directories equal to the snapshot: remove what the snapshot does not have.
    #[arg(long)]
    delete: bool,
    /// Change nothing; list what would be created (+), replaced (M), kept (=) or deleted (-).
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Restore nothing that gives privileges on this host: skip device nodes,
    /// drop setuid/setgid bits and security.capability attributes (for a
    /// snapshot you do not trust, or a target other users can reach).
    #[arg(long)]
    no_special: bool,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let repo = super::open_repo(cli)?;
    repo.load_index(false)?;
    let (spec, sub) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (a.snapshot.as_str(), None),
    };
    let (id, snap) = super::find_snapshot(cli, &repo, spec, &a.filter)?;
    // `latest` is what this host can no longer vouch for once the
    // repository went back in time: say so at the end, with exit code 13.
    let rollback_exit = |done: &str| {
        (spec == "latest")
            .then(|| super::rollback_exit(&repo, done))
            .flatten()
    };
    // What to restore: the snapshot's root nodes, or those of SNAPSHOT:/PATH
    // (a path as `ls` prints it or as it was backed up).
    let (nodes, base) = match sub {
        None => (repo.read_tree(&snap.tree)?.nodes, Vec::new()),
        Some(p) => {
            let (base, node) = resolve_given(&repo, &snap, p.as_bytes())
                .map_err(|e| super::after_latest(e, spec, &id, &snap))?;
            match node {
                None => (repo.read_tree(&snap.tree)?.nodes, Vec::new()),
                Some(n) if n.subtree.is_some() => {
                    (repo.read_tree(&n.subtree.unwrap_or_default())?.nodes, base)
                }
                Some(n) => {
                    let parent = base[..base.len() - n.name.len() - 1].to_vec();
                    (vec![n], parent)
                }
            }
        }
    };
    // Patterns may name paths as they were backed up: each node is matched
    // at its stored path and at its original one. An --include that selects
    // nothing is an error, not a restore of nothing that succeeds; an
    // --exclude that leaves nothing out is said before anything is written.
    let roots = Roots::new(&repo, &snap)?;
    for p in a
        .include
        .iter()
        .chain(&a.iinclude)
        .chain(&a.exclude)
        .chain(&a.iexclude)
    {
        roots
            .check_pattern(p)
            .map_err(|e| super::after_latest(e, spec, &id, &snap))?;
    }
    let hint = |given: &str, what: &str| {
        let comps = ironvault_core::browse::components(given.as_bytes());
        match roots.suggest(&repo, &snap.tree, &comps) {
            Some(p) => format!(
                "matches nothing in snapshot {}{what}; did you mean {}? (stored paths start at the last component of each backed-up path: {})",
                id.short(),
                crate::output::escape(&p),
                roots.describe()
            ),
            None => format!(
                "matches nothing in snapshot {}{what}, which holds {}; 'ironvault ls {}' shows its paths",
                id.short(),
                roots.describe(),
                id.short()
            ),
        }
    };
    let unmatched_in = unmatched(&repo, &nodes, &base, Some(&roots), &a.include, &a.iinclude)?;
    if let Some(given) = unmatched_in.first() {
        let e = ironvault_core::Error::NotFound {
            what: "--include pattern",
            name: given.to_string(),
            hint: hint(given, ""),
        };
        return Err(super::after_latest(e, spec, &id, &snap).into());
    }
    for given in unmatched(&repo, &nodes, &base, Some(&roots), &a.exclude, &a.iexclude)? {
        let flag = match a.exclude.contains(&given) {
            true => "--exclude",
            false => "--iexclude",
        };
        eprintln!(
            "warning: {flag} {} {}",
            crate::output::escape_str(&given),
            hint(&given, " (it leaves nothing out)")
        );
    }
    let started = std::time::Instant::now();
    if !cli.quiet && !cli.json {
        println!(
            "restoring snapshot {} of {} at {} to {}",
            id.short(),
            crate::output::escape_str(&snap.paths.join(", ")),
            crate::output::escape_str(&snap.time),
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
    let sel =
        |p: &[String], i: &[String]| -> Result<Option<ironvault_core::backup::exclude::Excludes>> {
            Ok(if p.is_empty() && i.is_empty() {
                None
            } else {
                Some(ironvault_core::backup::exclude::Excludes::new(p, i)?)
            })
        };
    opts.selection.include = sel(&a.include, &a.iinclude)?;
    opts.selection.exclude = sel(&a.exclude, &a.iexclude)?;
    opts.selection.roots = Some(roots);
    opts.selection.under(&base);
    opts.overwrite = a.overwrite;
    opts.verify = a.verify;
    opts.delete = a.delete;
    opts.no_special = a.no_special;
    let counters = std::sync::Arc::new(ironvault_core::restore::RestoreProgress::default());
    opts.progress = Some(counters.clone());
    let mode = if a.dry_run {
        crate::progress::Mode::Off
    } else {
        crate::progress::Mode::for_cli(cli.quiet, cli.json)
    };
    let display = crate::progress::start(mode, move |t| {
        use std::sync::atomic::Ordering::Relaxed;
        let (files, done) = (
            counters.files_written.load(Relaxed),
            counters.bytes_written.load(Relaxed),
        );
        if mode == crate::progress::Mode::JsonLines {
            return serde_json::json!({"message_type": "status", "seconds_elapsed": t.as_secs(),
                "files_restored": files, "bytes_restored": done})
            .to_string();
        }
        crate::progress::rate_line(t, files, "written", done)
    });
    if a.dry_run {
        let mut counts = [0u64; 4];
        let errors = ironvault_core::restore::dry_run(
            &repo,
            &nodes,
            &base,
            &opts,
            &mut |p, act| {
                counts[act as usize] += 1;
                if cli.json {
                    println!(
                        "{}",
                        serde_json::json!({"message_type": "verbose_status", "action": format!("{act:?}").to_lowercase(), "item": p.to_string_lossy()})
                    );
                } else if !cli.quiet {
                    println!("{} {}", act.letter(), p.display());
                }
            },
        )?;
        drop(display);
        for e in &errors {
            eprintln!("error: {e}");
        }
        if !cli.json {
            println!(
                "dry run: {} to create, {} to replace, {} already right or kept, {} to delete; nothing was changed",
                counts[0], counts[1], counts[2], counts[3]
            );
        }
        if !errors.is_empty() {
            eprintln!(
                "warning: {} would not be restored (listed above)",
                plural(errors.len() as u64, "item")
            );
            return Ok(rollback_exit("the dry run is done").unwrap_or(Exit::Partial));
        }
        return Ok(rollback_exit("the dry run is done").unwrap_or(Exit::Ok));
    }
    let st = restore_nodes(&repo, &nodes, &base, &opts);
    drop(display);
    let st = st?;
    for e in &st.errors {
        eprintln!("error: {e}");
    }
    if cli.json {
        let summary = RestoreSummary {
            message_type: MessageType::Summary,
            snapshot_id: id.to_hex(),
            files_restored: st.files,
            dirs_restored: st.dirs,
            bytes_restored: st.bytes_written,
            files_unchanged: st.unchanged,
            files_kept: st.kept,
            files_deleted: st.deleted,
            devices_skipped: st.devices_skipped,
            setid_bits_dropped: st.setid_dropped,
            capabilities_dropped: st.capabilities_dropped,
            verified: a.verify && st.errors.is_empty(),
            errors: st.errors.clone(),
            total_duration: started.elapsed().as_secs_f64(),
            storage: crate::output::storage_stats(repo.backend().as_ref()),
        };
        println!("{}", to_json_line(&summary));
    } else if !cli.quiet {
        println!(
            "restored {}, {}, {} in {}",
            plural(st.files, "file"),
            crate::output::count(st.dirs, "directory", "directories"),
            bytes(st.bytes_written),
            duration(started.elapsed())
        );
        if let Some(l) = crate::output::transfer_line(repo.backend().as_ref()) {
            println!("{l}");
        }
        if a.verify && st.errors.is_empty() {
            println!(
                "verified: every byte and every piece of metadata restored matches the snapshot"
            );
        }
        if st.deleted > 0 {
            let what = if st.deleted == 1 { "entry" } else { "entries" };
            println!("deleted {} {what} not in the snapshot", st.deleted);
        }
        if a.no_special {
            println!(
                "--no-special: skipped {}, dropped setuid/setgid bits from {} and security.capability from {}",
                crate::output::count(st.devices_skipped, "device node", "device nodes"),
                crate::output::count(st.setid_dropped, "entry", "entries"),
                plural(st.capabilities_dropped, "file")
            );
        }
        if st.unchanged > 0 || st.kept > 0 {
            println!(
                "{} already right (left as they were), {} kept by --overwrite {}",
                plural(st.unchanged, "file"),
                plural(st.kept, "file"),
                a.overwrite
            );
        }
    }
    if !st.errors.is_empty() {
        let what = if a.verify {
            "could not be restored or failed verification"
        } else {
            "could not be restored"
        };
        eprintln!(
            "warning: {} {what} (listed above); everything else was restored and verified; run 'ironvault check --read-data'",
            plural(st.errors.len() as u64, "item")
        );
    }
    let done = format!("snapshot {} of {} restored", id.short(), snap.time);
    if let Some(code) = rollback_exit(&done) {
        return Ok(code);
    }
    Ok(if st.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Partial
    })
}
