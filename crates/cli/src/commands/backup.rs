//! `ironvault backup`: a new snapshot of the given paths.

use crate::output::{bytes, duration, plural};
use crate::{Cli, Exit};
use anyhow::{anyhow, bail, Result};
use ironvault_core::backup::{backup, signals, BackupOptions, ParentChoice};
use ironvault_core::contract::summary::{to_json_line, BackupSummary, MessageType};
use ironvault_core::format::Id;
use ironvault_core::Error as CoreError;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Files and directories to back up.
    #[arg(required_unless_present_any = ["files_from", "stdin", "stdin_from_command"])]
    paths: Vec<PathBuf>,
    /// Also back up the paths listed in this file (one per line; # comments).
    #[arg(long, value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Leave out paths matching this glob (repeatable). `/abs/path` matches from
    /// the root, `name` or `dir/*.log` match anywhere; `*` stays within one
    /// path component, `**` spans several.
    #[arg(short = 'e', long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Like --exclude, ignoring case.
    #[arg(long, value_name = "PATTERN")]
    iexclude: Vec<String>,
    /// Read --exclude patterns from a file (one per line; # comments).
    #[arg(long, value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Leave out directories that contain a file of this name (repeatable).
    #[arg(long, value_name = "FILENAME")]
    exclude_if_present: Vec<String>,
    /// Leave out directories with a valid CACHEDIR.TAG.
    #[arg(long)]
    exclude_caches: bool,
    /// Stay on the file system of each given path (mount points are kept, empty).
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Compare files with the parent snapshot by size and times only (inode numbers unstable).
    #[arg(long)]
    ignore_inode: bool,
    /// Read everything, write nothing: show what a backup would add.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Judge the backup against these shares and tag its snapshot `suspect`
    /// when it looks like a mass encryption: `changed=0.5,incompressible=0.95`
    /// (the defaults; a key left out keeps its default). See --suspect-baseline.
    #[arg(long, value_name = "SHARES")]
    suspect_if: Option<String>,
    /// The plan's usual shares for --suspect-if (medians of its recent backups;
    /// the agent passes them): `changed=0.02,incompressible=0.1`. Default 0.
    #[arg(long, value_name = "SHARES", requires = "suspect_if")]
    suspect_baseline: Option<String>,
    /// Back up standard input as one file (name it with --stdin-filename).
    #[arg(long, conflicts_with_all = ["paths", "files_from", "stdin_from_command"])]
    stdin: bool,
    /// File name for --stdin / --stdin-from-command.
    #[arg(long, default_value = "stdin", value_name = "NAME")]
    stdin_filename: String,
    /// Run this command and back up its standard output as one file (e.g. an IBM i
    /// save file or an AIX mksysb image); if the command fails, so does the backup.
    /// The command follows the flag (`--stdin-from-command CMD ARGS...`, last on the
    /// line) or, as restic has it, comes after `--` (`--stdin-from-command -- CMD ARGS...`).
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD", conflicts_with_all = ["paths", "files_from"])]
    stdin_from_command: Vec<String>,
    /// Compare against this snapshot instead of the newest one of this host and paths.
    #[arg(long)]
    parent: Option<String>,
    /// Read every file again, ignoring the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Add a tag to the snapshot (repeatable; comma-separated lists allowed).
    #[arg(long, value_delimiter = ',', value_parser = non_empty)]
    tag: Vec<String>,
    /// Record this host name instead of the machine's.
    #[arg(long)]
    host: Option<String>,
    /// Record this time instead of now: "2026-01-02 03:04:05" or
    /// 2026-01-02T03:04:05 (local time), or RFC 3339 with a zone (2026-01-02T03:04:05+01:00).
    #[arg(long)]
    time: Option<String>,
    /// zstd level 1-22; 0 stores data uncompressed. Default: the repository's (3).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=22))]
    compression: Option<i32>,
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("a tag cannot be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// Variables the command of `--stdin-from-command` does not inherit: the
/// repository's password sources and S3 credentials. It only produces the
/// data to store; a command that needs credentials of its own sets them
/// itself.
const NOT_FOR_THE_SOURCE: &[&str] = &[
    "IRONVAULT_PASSWORD",
    "IRONVAULT_PASSWORD_FILE",
    "IRONVAULT_PASSWORD_COMMAND",
    "IRONVAULT_FROM_PASSWORD",
    "IRONVAULT_FROM_PASSWORD_FILE",
    "IRONVAULT_FROM_PASSWORD_COMMAND",
    "IRONVAULT_NEW_PASSWORD",
    "IRONVAULT_NEW_PASSWORD_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_PROFILE",
];

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    let mut paths = a.paths.clone();
    for f in &a.files_from {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow!("cannot read --files-from {}: {e}", f.display()))?;
        paths.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(PathBuf::from),
        );
    }
    let streaming = a.stdin || !a.stdin_from_command.is_empty();
    if paths.is_empty() && !streaming {
        bail!("nothing to back up: give paths, or a --files-from file that lists some");
    }
    let mut patterns = a.exclude.clone();
    for f in &a.exclude_file {
        patterns.extend(ironvault_core::backup::exclude::Excludes::read_pattern_file(f)?);
    }
    let mut excludes = ironvault_core::backup::exclude::Excludes::new(&patterns, &a.iexclude)?;
    excludes.if_present = a.exclude_if_present.clone();
    excludes.caches = a.exclude_caches;
    excludes.one_file_system = a.one_file_system;
    for p in &paths {
        if std::fs::symlink_metadata(p).is_err() {
            bail!(
                "{}: no such file or directory; nothing was backed up",
                p.display()
            );
        }
    }
    let time = a.time.as_deref().map(snapshot_time).transpose()?;
    let suspect = suspect_options(a)?;
    let source_command = source_command(&a.stdin_from_command)?;
    let repo = super::open_repo(cli)?;
    let mut opts = BackupOptions::new(paths);
    opts.excludes = excludes;
    opts.ignore_inode = a.ignore_inode;
    opts.dry_run = a.dry_run;
    opts.suspect = suspect;
    if let Some(h) = &a.host {
        opts.hostname = h.clone();
    }
    opts.tags = a.tag.clone();
    opts.time = time;
    opts.compression = a.compression;
    opts.parent = if a.force {
        ParentChoice::Force
    } else if let Some(p) = &a.parent {
        let (id, s) = repo.find_snapshot(p)?;
        super::announce_latest(cli, p, &id, &s);
        ParentChoice::Snapshot(id)
    } else {
        ParentChoice::Auto
    };
    super::verbose(cli, || match &opts.parent {
        ParentChoice::Force => "reading every file (--force)".into(),
        ParentChoice::Snapshot(id) => format!("comparing with snapshot {}", id.short()),
        ParentChoice::Auto => {
            "comparing with the newest snapshot of this host and paths, if any".into()
        }
    });
    super::verbose(cli, || {
        format!(
            "backing up {} with {}, compression level {}",
            crate::output::plural(opts.paths.len() as u64, "path"),
            crate::output::plural(opts.excludes.len() as u64, "exclude pattern"),
            opts.compression.unwrap_or(repo.config().compression.level)
        )
    });
    let started = std::time::Instant::now();
    let counters = std::sync::Arc::new(ironvault_core::backup::Progress::default());
    opts.progress = Some(counters.clone());
    // -vv: one line per file read, printed by a small thread as they come.
    let lister = (cli.verbose > 1).then(|| {
        counters
            .log_files
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let c = counters.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || loop {
            let done = !matches!(
                rx.recv_timeout(std::time::Duration::from_millis(200)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            let batch = c
                .files_log
                .lock()
                .map(|mut l| std::mem::take(&mut *l))
                .unwrap_or_default();
            for (changed, p) in batch {
                eprintln!(
                    "{} {}",
                    if changed { "modified" } else { "new     " },
                    p.display()
                );
            }
            if done {
                break;
            }
        });
        (tx, t)
    });
    let mode = crate::progress::Mode::for_cli(cli.quiet, cli.json);
    let totals = if mode == crate::progress::Mode::Off || streaming {
        std::sync::Arc::new(crate::progress::Totals::default())
    } else {
        crate::progress::scan(opts.paths.clone())
    };
    let display = crate::progress::start(mode, move |t| status_line(mode, t, &counters, &totals));
    // On a terminal, clear the progress line before a warning.
    let clear = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "\r\x1b[2K"
    } else {
        ""
    };
    let warn = |m: &str| eprintln!("{clear}warning: {m}");
    let r = if streaming {
        backup_stream_cli(repo.clone(), &opts, a, source_command, &warn)
    } else {
        backup(repo.clone(), &opts, &warn).map_err(anyhow::Error::from)
    };
    drop(display);
    if let Some((tx, t)) = lister {
        drop(tx);
        let _ = t.join();
    }
    let r = r?;
    let s = &r.summary;
    if r.reused_packs.0 > 0 && !cli.quiet {
        // Information: an interrupted run's work was not lost.
        eprintln!(
            "reusing {} ({}) that no index listed (left by an interrupted backup or prune, or written by a backup running now)",
            plural(r.reused_packs.0, "pack"),
            bytes(r.reused_packs.1)
        );
    }
    super::verbose(cli, || {
        format!(
            "{} written, {} stored; files: {} new, {} changed, {} unmodified, {}",
            plural(r.packs_written, "pack"),
            bytes(r.bytes_added_stored),
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            plural(s.errors, "error")
        )
    });
    if cli.json {
        let c = &r.counts;
        let signals = s.signals.clone().unwrap_or_default();
        let summary = BackupSummary {
            message_type: MessageType::Summary,
            snapshot_id: r.snapshot_id.to_hex(),
            parent: r.parent.map(|p: Id| p.to_hex()),
            dry_run: a.dry_run,
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unmodified: s.files_unmodified,
            dirs_new: c.dirs_new,
            dirs_changed: c.dirs_changed,
            dirs_unmodified: c.dirs_unmodified,
            dirs: s.dirs,
            data_blobs: c.data_blobs,
            tree_blobs: c.tree_blobs,
            data_added: c.bytes_added_raw,
            data_added_packed: s.bytes_added,
            total_files_processed: s.files_new + s.files_changed + s.files_unmodified,
            total_bytes_processed: c.bytes_processed,
            bytes_read: s.bytes_read,
            errors: s.errors,
            changed_during_read: s.changed_during_read,
            files_deleted: signals.files_deleted,
            extensions_renamed: signals.extensions_renamed,
            ransom_notes: signals.ransom_notes,
            data_added_incompressible: signals.data_added_incompressible,
            changed_share: signals::changed_share(s),
            incompressible_share: signals::incompressible_share(&signals),
            suspect: signals.suspect.clone(),
            backup_start: s.started.clone(),
            backup_end: s.finished.clone(),
            total_duration: started.elapsed().as_secs_f64(),
            storage: crate::output::storage_stats(repo.backend().as_ref()),
            immutability: crate::output::immutability(repo.backend().as_ref()),
        };
        println!("{}", to_json_line(&summary));
    } else if !cli.quiet {
        if let Some(p) = r.parent {
            println!("using parent snapshot {}", p.short());
        }
        println!(
            "Files:  {} new, {} changed, {} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        );
        println!("Dirs:   {}", s.dirs);
        println!("Read:   {}", bytes(s.bytes_read));
        println!(
            "Added to the repository: {} in {}",
            bytes(s.bytes_added),
            crate::output::plural(r.packs_written, "pack")
        );
        if let Some(l) = crate::output::transfer_line(repo.backend().as_ref()) {
            println!("{l}");
        }
        println!("took {}", duration(started.elapsed()));
        if a.dry_run {
            println!(
                "dry run: nothing was written (the snapshot would be {})",
                r.snapshot_id.short()
            );
        } else {
            println!("snapshot {} saved", r.snapshot_id.short());
        }
    }
    if let Some(why) = s.signals.as_ref().and_then(|g| g.suspect.as_ref()) {
        // The snapshot is kept and tagged; the caller (the agent) decides
        // what to do about it.
        eprintln!(
            "warning: {why}; snapshot {} is tagged {}",
            r.snapshot_id.short(),
            signals::SUSPECT_TAG
        );
    }
    if r.is_partial() {
        eprintln!(
            "warning: snapshot {} is usable but incomplete: {} could not be read, {} changed while being read (see warnings above)",
            r.snapshot_id.short(),
            plural(s.errors, "file"),
            s.changed_during_read
        );
    }
    let done = if a.dry_run {
        "the dry run is done".to_string()
    } else {
        format!("snapshot {} saved", r.snapshot_id.short())
    };
    if let Some(code) = super::rollback_exit(&repo, &done) {
        return Ok(code);
    }
    Ok(if r.is_partial() {
        Exit::Partial
    } else {
        Exit::Ok
    })
}

/// `--time`: restic's `2026-01-02 03:04:05` or `2026-01-02T03:04:05` in local
/// time, or RFC 3339 with a zone; recorded as RFC 3339 with the offset, the
/// one time format of every JSON document.
fn snapshot_time(t: &str) -> Result<String> {
    use chrono::{LocalResult, NaiveDateTime, TimeZone};
    let usage = |why: &str| {
        CoreError::Usage(format!(
            "--time {t:?} {why}; give e.g. --time \"2026-01-02 03:04:05\" (local time) or --time 2026-01-02T03:04:05+01:00"
        ))
    };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.to_rfc3339());
    }
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .ok_or_else(|| usage("is not a time"))?;
    match chrono::Local.from_local_datetime(&naive) {
        LocalResult::Single(d) => Ok(d.to_rfc3339()),
        // A clock set back (end of daylight saving time): the first of the two.
        LocalResult::Ambiguous(first, _) => Ok(first.to_rfc3339()),
        LocalResult::None => Err(usage(
            "does not exist in the local time zone (skipped when the clock moved forward)",
        )
        .into()),
    }
}

/// The command of `--stdin-from-command` and its arguments. Two shapes: ours,
/// the command right after the flag (`--stdin-from-command CMD ARGS...`), and
/// restic's, the command after `--` (`--stdin-from-command -- CMD ARGS...`).
/// The flag takes everything after it, so in restic's shape its first value
/// is the `--`.
fn source_command(values: &[String]) -> Result<Vec<String>> {
    let cmd = match values.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => values,
    };
    match cmd.first() {
        Some(prog) if prog.starts_with('-') => Err(CoreError::Usage(format!(
            "--stdin-from-command takes the rest of the line as the command, and {prog:?} is not one; put the flag last: --stdin-filename NAME --stdin-from-command -- CMD ARGS"
        ))
        .into()),
        None if !values.is_empty() => Err(CoreError::Usage(
            "--stdin-from-command -- needs a command after the --, e.g. --stdin-from-command -- pg_dump mydb".into(),
        )
        .into()),
        _ => Ok(cmd.to_vec()),
    }
}

/// --stdin and --stdin-from-command.
fn backup_stream_cli(
    repo: std::sync::Arc<ironvault_core::repo::Repository>,
    opts: &BackupOptions,
    a: &Args,
    command: Vec<String>,
    warn: &(dyn Fn(&str) + Sync),
) -> Result<ironvault_core::backup::BackupResult> {
    use ironvault_core::backup::stream::backup_stream;
    if a.stdin {
        let mut stdin = std::io::stdin().lock();
        return Ok(backup_stream(
            repo,
            opts,
            &a.stdin_filename,
            &mut stdin,
            &mut || Ok(()),
            warn,
        )?);
    }
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("--stdin-from-command needs a command"))?;
    // A session of its own: its own process group, so that a backup that
    // stops early can end the command and everything it started, and no
    // controlling terminal, so a command that prompts fails instead of
    // stopping in the background.
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    for v in NOT_FOR_THE_SOURCE {
        cmd.env_remove(v);
    }
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            // However the backup ends (even killed), the command hears it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow!("cannot run {prog:?}: {e}"))?;
    let group = child.id() as libc::pid_t;
    crate::interrupt::set_child_group(group);
    if ironvault_core::interrupt::requested() {
        // A signal came between the spawn and the line above: the handler
        // could not end the command, so end it here.
        // SAFETY: signalling the process group we created for the command.
        unsafe { libc::kill(-group, libc::SIGTERM) };
    }
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no output from {prog:?}"))?;
    let cmd = command.join(" ");
    let mut finish = || -> ironvault_core::Result<()> {
        // Its output ended: from here on its group id is not ours to signal.
        crate::interrupt::set_child_group(0);
        let st = child
            .wait()
            .map_err(|e| ironvault_core::Error::Failed(format!("waiting for {cmd:?}: {e}")))?;
        if st.success() {
            Ok(())
        } else {
            Err(ironvault_core::Error::Failed(format!(
                "the command {cmd:?} failed ({st}); no snapshot was written"
            )))
        }
    };
    let r = backup_stream(repo, opts, &a.stdin_filename, &mut out, &mut finish, warn);
    crate::interrupt::set_child_group(0);
    if r.is_err() && matches!(child.try_wait(), Ok(None)) {
        // Interrupted or failed while the command still runs: no snapshot, and
        // the command must not run on alone.
        // SAFETY: signalling the process group we created for the command.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let _ = child.wait();
    }
    Ok(r?)
}

/// One progress line (terminal) or status object (JSON), with percent and
/// ETA once the scanner has counted everything.
fn status_line(
    mode: crate::progress::Mode,
    t: std::time::Duration,
    c: &ironvault_core::backup::Progress,
    totals: &crate::progress::Totals,
) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let (files, done) = (c.files(), c.bytes_done.load(Relaxed));
    let (total_files, total_bytes) = (totals.files.load(Relaxed), totals.bytes.load(Relaxed));
    let counted = totals.done.load(Relaxed) && total_bytes > 0;
    let frac = if counted {
        (done as f64 / total_bytes as f64).min(1.0)
    } else {
        0.0
    };
    let rate = done as f64 / t.as_secs_f64().max(0.001);
    let eta =
        (counted && rate > 0.0).then(|| ((total_bytes.saturating_sub(done)) as f64 / rate) as u64);
    let current = c
        .current
        .lock()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if mode == crate::progress::Mode::JsonLines {
        return serde_json::json!({
            "message_type": "status", "seconds_elapsed": t.as_secs(), "seconds_remaining": eta,
            "percent_done": frac, "total_files": total_files, "files_done": files,
            "total_bytes": total_bytes, "bytes_done": done, "current_files": [current],
        })
        .to_string();
    }
    let head = crate::progress::rate_line(t, files, "done", done);
    match eta {
        Some(e) => format!(
            "{head}, {:.0}% of {} / {}, ETA {}  {current}",
            frac * 100.0,
            plural(total_files, "file"),
            bytes(total_bytes),
            crate::progress::clock(e)
        ),
        None => format!("{head}  {current}"),
    }
}

/// `--suspect-if` and `--suspect-baseline` as the backup's judge.
fn suspect_options(a: &Args) -> Result<Option<(signals::Thresholds, signals::Baseline)>> {
    let Some(t) = &a.suspect_if else {
        return Ok(None);
    };
    let d = signals::Thresholds::default();
    let (changed, incompressible) =
        signals::parse_shares("--suspect-if", t, (d.changed, d.incompressible))?;
    let base = match &a.suspect_baseline {
        Some(b) => signals::parse_shares("--suspect-baseline", b, (0.0, 0.0))?,
        None => (0.0, 0.0),
    };
    Ok(Some((
        signals::Thresholds {
            changed,
            incompressible,
        },
        signals::Baseline {
            changed: base.0,
            incompressible: base.1,
        },
    )))
}
