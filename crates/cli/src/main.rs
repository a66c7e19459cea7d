//! The `ironvault` binary: argument parsing, passwords, progress and output.
//! All repository work happens in `ironvault-core`.

mod commands;
mod interrupt;
mod output;
mod password;
mod progress;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ironvault_core::Error as CoreError;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, documented once in `ironvault_core::contract::exit`.
pub use ironvault_core::contract::Exit;

/// The help heading of the flags that open a repository.
pub const REPOSITORY_OPTIONS: &str = "Repository options";
/// The help heading of the flags every command takes.
pub const GLOBAL_OPTIONS: &str = "Global options";

/// Encrypted, deduplicated backups with measured recovery objectives.
#[derive(Parser)]
#[command(
    name = "ironvault",
    version,
    after_help = Exit::HELP,
    next_help_heading = REPOSITORY_OPTIONS
)]
pub struct Cli {
    /// Repository location: a directory, s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX], or rest:https://HOST:PORT/NAME ('ironvault serve').
    #[arg(short = 'r', long, env = "IRONVAULT_REPO", global = true)]
    repo: Option<String>,
    /// Also trust the CA certificates in this PEM file (an S3 or repository server with a private CA).
    #[arg(long, env = "IRONVAULT_CACERT", global = true, value_name = "PEM")]
    cacert: Option<PathBuf>,
    /// The token for a rest: repository is the first line of this file [default: $IRONVAULT_TOKEN].
    #[arg(long, env = "IRONVAULT_TOKEN_FILE", global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Limit uploads to this many KiB/s (S3 repositories).
    #[arg(
        long,
        env = "IRONVAULT_LIMIT_UPLOAD",
        global = true,
        value_name = "KIB_PER_S"
    )]
    limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s (S3 repositories).
    #[arg(
        long,
        env = "IRONVAULT_LIMIT_DOWNLOAD",
        global = true,
        value_name = "KIB_PER_S"
    )]
    limit_download: Option<u64>,
    /// Do not keep a local cache of an S3 repository's metadata.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Where to keep the metadata cache [default: $XDG_CACHE_HOME/ironvault or ~/.cache/ironvault].
    #[arg(long, env = "IRONVAULT_CACHE_DIR", global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// S3 requests in flight at most.
    #[arg(
        long,
        env = "IRONVAULT_S3_CONNECTIONS",
        global = true,
        default_value_t = 8
    )]
    s3_connections: usize,
    /// Address the bucket as BUCKET.HOST (virtual-host style) instead of HOST/BUCKET (path style).
    #[arg(long, env = "IRONVAULT_S3_VIRTUAL_HOST", global = true)]
    s3_virtual_host: bool,
    /// Give up on an S3 request after retrying it for this many seconds.
    #[arg(
        long,
        env = "IRONVAULT_S3_RETRY_TIMEOUT",
        global = true,
        default_value_t = 180,
        value_name = "SECONDS"
    )]
    s3_retry_timeout: u64,
    /// Where this host keeps its security records, which notice a repository
    /// going back in time [default: $XDG_STATE_HOME/ironvault or ~/.local/state/ironvault].
    #[arg(long, env = "IRONVAULT_STATE_DIR", global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Read the repository password from the first line of this file.
    #[arg(
        long,
        env = "IRONVAULT_PASSWORD_FILE",
        global = true,
        value_name = "FILE"
    )]
    password_file: Option<PathBuf>,
    /// Run this shell command and use the first line it prints as the password.
    #[arg(
        long,
        env = "IRONVAULT_PASSWORD_COMMAND",
        global = true,
        value_name = "COMMAND",
        hide_env_values = true
    )]
    password_command: Option<String>,
    /// The protection-plan config (run, drill, status, history, agent, config check).
    #[arg(
        long,
        env = "IRONVAULT_CONFIG",
        global = true,
        value_name = "FILE",
        help_heading = GLOBAL_OPTIONS
    )]
    config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    json: bool,
    /// Print only errors and warnings.
    #[arg(short, long, global = true, help_heading = GLOBAL_OPTIONS)]
    quiet: bool,
    /// Say more: repository, key, parent snapshot, what was written (-vv: every file read).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = GLOBAL_OPTIONS)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new repository.
    Init(commands::init::Args),
    /// Back up files and directories into a new snapshot.
    Backup(commands::backup::Args),
    /// Restore a snapshot into a directory.
    Restore(commands::restore::Args),
    /// Verify the repository: structure, and with --read-data every byte.
    Check(commands::check::Args),
    /// List snapshots.
    Snapshots(commands::snapshots::Args),
    /// Remove stale locks left by killed processes.
    Unlock(commands::unlock::Args),
    /// Rebuild damaged repository metadata.
    Repair(commands::repair::Args),
    /// S3 Object Lock maintenance: extend the retention of the repository's objects.
    Lock(commands::lock::Args),
    /// Manage key files (passwords) of the repository.
    Key(commands::key::Args),
    /// List files and directories in a snapshot.
    Ls(commands::ls::Args),
    /// Show sizes, deduplication and compression of snapshots.
    Stats(commands::stats::Args),
    /// Show what changed between two snapshots (+ added, - removed, M modified, T type, U metadata).
    Diff(commands::diff::Args),
    /// Find files by name or path pattern across snapshots.
    Find(commands::find::Args),
    /// Write a file from a snapshot to standard output (a directory as a tar stream).
    Dump(commands::dump::Args),
    /// Remove snapshots by a keep policy (daily/weekly/monthly/yearly, within, tags) or by id.
    Forget(commands::forget::Args),
    /// Delete data no snapshot needs and repack packs with unused space (safe while others back up).
    Prune(commands::prune::Args),
    /// Erase files from snapshots (GDPR): write them again without what --exclude matches.
    Rewrite(commands::rewrite::Args),
    /// Copy snapshots from a related repository (--from-repo) into this one.
    Copy(commands::copy::Args),
    /// Print a decrypted repository object as JSON (for debugging; secrets are not shown).
    Cat(commands::cat::Args),
    /// Show or accept what this host's security record says about the repository (rollback, replay).
    Security(commands::security::Args),
    /// Check the protection-plan config file.
    Config(commands::plans::ConfigArgs),
    /// Run a protection plan now: backup, copies, retention (recorded in the history).
    Run(commands::plans::RunArgs),
    /// Restore a plan's newest snapshot into a sandbox, verify it, and measure the RTA.
    Drill(commands::plans::DrillArgs),
    /// Are the plans' objectives held? RPO per copy, RTA, 3-2-1 from device facts, roadmap step.
    Status(commands::status::Args),
    /// Run the scheduled plans and drills; serve metrics and status (stops on SIGTERM).
    Agent(commands::plans::AgentArgs),
    /// Show the recorded runs and drills of the plans, step by step.
    History(commands::history::Args),
    /// List open incidents; clear a plan's suspect-backup incident (which pauses its retention).
    Incident(commands::incident::Args),
    /// Open every repository of the config, read-only, and say what stops
    /// it (the same as 'config check --connect').
    Doctor(commands::doctor::Args),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(commands::completions::Args),
    /// Print the manual page (roff), or write one per command into a directory.
    Man(commands::man::Args),
    /// Print the version, the repository format version and the build target.
    Version(commands::version::Args),
    /// Serve the repositories under a root over HTTPS, with per-token roles (append, read, admin).
    Serve(commands::serve::Args),
    /// The doctor's probe of one repository (run by 'doctor' itself).
    #[command(hide = true)]
    ProbeRepository(commands::doctor::ProbeArgs),
}

/// Commands that take no repository: their help leaves the repository flags
/// out (they are still accepted, as IRONVAULT_REPO may be set).
const NO_REPOSITORY: &[&str] = &[
    "config",
    "run",
    "drill",
    "status",
    "agent",
    "history",
    "incident",
    "doctor",
    "completions",
    "man",
    "version",
    "serve",
];

/// The command line as clap sees it, for parsing, completions and the man page.
pub fn cli_command() -> clap::Command {
    let mut cmd = Cli::command();
    let repo_flags: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.get_help_heading() == Some(REPOSITORY_OPTIONS))
        .map(|a| a.clone().hide(true))
        .collect();
    // A subcommand that has an argument already does not receive the
    // global one (clap's propagation skips it): so a hidden copy hides it.
    for name in NO_REPOSITORY {
        cmd = cmd.mut_subcommand(name, |mut sc| {
            for a in &repo_flags {
                sc = sc.arg(a.clone());
            }
            sc
        });
    }
    cmd
}

/// An empty `IRONVAULT_CONFIG=` (or any empty variable behind a flag) means
/// unset, as an empty variable does for most Unix tools; clap would take it
/// as a flag given without a value.
fn forget_empty_env(cmd: &clap::Command) {
    let mut names = Vec::new();
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        names.extend(
            c.get_arguments()
                .filter_map(|a| a.get_env())
                .map(|e| e.to_owned()),
        );
        stack.extend(c.get_subcommands());
    }
    for n in names {
        if std::env::var_os(&n).is_some_and(|v| v.is_empty()) {
            // Before any thread starts: nothing else reads the environment yet.
            std::env::remove_var(&n);
        }
    }
}

/// The command's name, as lock objects record it.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Init(_) => "init",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::Check(_) => "check",
        Command::Snapshots(_) => "snapshots",
        Command::Unlock(_) => "unlock",
        Command::Repair(_) => "repair",
        Command::Lock(_) => "lock",
        Command::Key(_) => "key",
        Command::Ls(_) => "ls",
        Command::Stats(_) => "stats",
        Command::Diff(_) => "diff",
        Command::Find(_) => "find",
        Command::Dump(_) => "dump",
        Command::Cat(_) => "cat",
        Command::Security(_) => "security",
        Command::Copy(_) => "copy",
        Command::Forget(_) => "forget",
        Command::Prune(_) => "prune",
        Command::Rewrite(_) => "rewrite",
        Command::Config(_) => "config",
        Command::Run(_) => "run",
        Command::Drill(_) => "drill",
        Command::Status(_) => "status",
        Command::Agent(_) => "agent",
        Command::History(_) => "history",
        Command::Incident(_) => "incident",
        Command::Doctor(_) => "doctor",
        Command::ProbeRepository(_) => "probe-repository",
        Command::Completions(_) => "completions",
        Command::Man(_) => "man",
        Command::Version(_) => "version",
        Command::Serve(_) => "serve",
    }
}

/// The error and its causes on one line, skipping causes already quoted.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if msg.contains(&s) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&s);
    }
    msg
}

/// An error whose message and exit code the command chose itself.
#[derive(Debug)]
pub struct Coded {
    pub code: Exit,
    pub msg: String,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Coded {}

/// How a failed command ends: a one-line message and an exit code.
fn exit_for(e: &anyhow::Error, repo: Option<&str>, cmd: &Command) -> (String, Exit) {
    if let Some(c) = e.downcast_ref::<Coded>() {
        return (c.msg.clone(), c.code);
    }
    if let Some(ce) = e.downcast_ref::<CoreError>() {
        let code = match ce {
            CoreError::RepoMissing(_) => Exit::RepoMissing,
            CoreError::Locked(_) => Exit::Locked,
            CoreError::WrongPassword(..) => Exit::WrongPassword,
            CoreError::Interrupted => Exit::Interrupted,
            CoreError::Usage(_) => Exit::Usage,
            _ => Exit::Failure,
        };
        let msg = match ce {
            CoreError::WrongPassword(r, damaged) => format!(
                "wrong password for repository {r} (no key file matched{}); check IRONVAULT_PASSWORD, --password-file or --password-command",
                ironvault_core::error::damaged_note(*damaged)
            ),
            CoreError::Locked(who) => format!(
                "the repository is locked by {who}; wait for it to finish, or run 'ironvault unlock' if that process is gone"
            ),
            _ if ce.is_no_space() => format!(
                "the repository storage is full ({ce}); free space or move the repository, then run the command again — existing snapshots are intact"
            ),
            CoreError::Interrupted => match cmd {
                Command::Backup(_) | Command::Copy(_) => {
                    "interrupted; no snapshot was written, and the next run reuses the data already stored".into()
                }
                Command::Rewrite(_) => {
                    "interrupted; the snapshots rewritten so far are recorded for erasure, the others are unchanged: run the same rewrite again for them".into()
                }
                Command::Prune(_) | Command::Forget(_) => {
                    "interrupted before anything was deleted; the repository is as before (packs already copied stay as duplicates until the next prune)".into()
                }
                _ => "interrupted; the repository is consistent".into(),
            },
            // A repository server's refusal says itself what role is needed.
            CoreError::Storage { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied && repo.is_some_and(|r| r.starts_with("rest:")) => one_line(e),
            CoreError::Storage { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => format!(
                "{}; check that this user may read and write the repository {}",
                one_line(e),
                repo.unwrap_or("")
            ),
            CoreError::Internal(_) => format!(
                "{}; this should not happen: please report it with the command line and this message",
                one_line(e)
            ),
            _ => one_line(e),
        };
        return (msg, code);
    }
    (one_line(e), Exit::Failure)
}

/// True when standard output is a pipe whose reader has closed it.
fn stdout_reader_gone() -> bool {
    let mut p = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLERR != 0
}

/// End as a Unix tool ends when its reader goes away: by SIGPIPE, quietly.
fn end_by_sigpipe() -> ! {
    // SAFETY: restoring the default disposition, then raising the signal
    // on ourselves; nothing is left to clean up on this path.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

/// A write error that a closed pipe gave (EPIPE), anywhere in the chain.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) || format!("{e:#}").contains("Broken pipe")
}

/// `println!` panics when standard output is a closed pipe: end quietly
/// instead, as above. Any other panic keeps the default report.
fn install_quiet_end_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && stdout_reader_gone() {
            end_by_sigpipe();
        }
        report(info)
    }));
}

/// Keep large buffers (chunks, packs) out of glibc's arenas: with its
/// default dynamic threshold, freed multi-MiB buffers raise the threshold and
/// later ones land in per-thread arenas that fragment, adding tens of MiB to
/// the peak memory of a backup.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    // SIGPIPE stays ignored (Rust's default), so that a dropped S3
    // connection, a webhook's socket or an alert command that exits without
    // reading its input is an error the code handles, not the end of the
    // process. Our own reader going away (`ironvault ls --json latest |
    // head`) still ends us quietly, as other Unix tools end: see below.
    install_quiet_end_on_closed_stdout();
    // Before the command line is built: clap reads each variable as it
    // builds the flag that names it.
    forget_empty_env(&Cli::command());
    let cmd = cli_command();
    let cli = Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit());
    interrupt::install(
        matches!(cli.cmd, Command::Backup(_) | Command::Copy(_)),
        matches!(cli.cmd, Command::Agent(_)),
    );
    ironvault_core::repo::lock::set_command(command_name(&cli.cmd));
    let result = match &cli.cmd {
        Command::Init(a) => commands::init::run(&cli, a),
        Command::Backup(a) => commands::backup::run(&cli, a),
        Command::Restore(a) => commands::restore::run(&cli, a),
        Command::Check(a) => commands::check::run(&cli, a),
        Command::Snapshots(a) => commands::snapshots::run(&cli, a),
        Command::Unlock(a) => commands::unlock::run(&cli, a),
        Command::Repair(a) => commands::repair::run(&cli, a),
        Command::Lock(a) => commands::lock::run(&cli, a),
        Command::Key(a) => commands::key::run(&cli, a),
        Command::Ls(a) => commands::ls::run(&cli, a),
        Command::Stats(a) => commands::stats::run(&cli, a),
        Command::Diff(a) => commands::diff::run(&cli, a),
        Command::Find(a) => commands::find::run(&cli, a),
        Command::Dump(a) => commands::dump::run(&cli, a),
        Command::Cat(a) => commands::cat::run(&cli, a),
        Command::Security(a) => commands::security::run(&cli, a),
        Command::Copy(a) => commands::copy::run(&cli, a),
        Command::Forget(a) => commands::forget::run(&cli, a),
        Command::Prune(a) => commands::prune::run(&cli, a),
        Command::Rewrite(a) => commands::rewrite::run(&cli, a),
        Command::Config(a) => commands::plans::config_cmd(&cli, a),
        Command::Run(a) => commands::plans::run(&cli, a),
        Command::Drill(a) => commands::plans::drill(&cli, a),
        Command::Status(a) => commands::status::run(&cli, a),
        Command::Agent(a) => commands::plans::agent(&cli, a),
        Command::History(a) => commands::history::run(&cli, a),
        Command::Incident(a) => commands::incident::run(&cli, a),
        Command::Doctor(a) => commands::doctor::run(&cli, a),
        Command::ProbeRepository(a) => commands::doctor::probe(&cli, a),
        Command::Completions(a) => commands::completions::run(a),
        Command::Man(a) => commands::man::run(a),
        Command::Version(a) => commands::version::run(&cli, a),
        Command::Serve(a) => commands::serve::run(&cli, a),
    };
    match result {
        Ok(code) => ExitCode::from(code.code()),
        Err(e) => {
            if is_broken_pipe(&e) && stdout_reader_gone() {
                end_by_sigpipe();
            }
            let (msg, code) = exit_for(&e, cli.repo.as_deref(), &cli.cmd);
            eprintln!("error: {msg}");
            ExitCode::from(code.code())
        }
    }
}
