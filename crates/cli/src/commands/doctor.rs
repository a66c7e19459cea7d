//! `ironvault doctor` (= `config check --connect`): open every repository of
//! the config with its password, as the agent would, and say in one line per
//! problem what is wrong and what to do. Nothing is changed: no lock, no
//! cache, no security record, no remembered key.
//!
//! Each repository is probed by a child `ironvault` started with the
//! repository's flags and environment from the config (`repo_command`, the
//! agent's own way), running the hidden `probe-repository` command below.

use crate::commands::{location, open_backend_with, password_source};
use crate::output::plural;
use crate::{Cli, Exit};
use anyhow::Result;
use ironvault_agent::config::{Config, Repository as RepoConfig};
use ironvault_core::repo::lock::MAX_CLOCK_SKEW;
use ironvault_core::repo::Repository;
use ironvault_core::Error as CoreError;
use std::path::Path;
use std::process::Stdio;

/// Less free space than this on a local repository's file system is a problem.
pub const DEFAULT_MIN_FREE_MIB: u64 = 1024;

/// How the repositories are probed.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ConnectArgs {
    /// A local repository whose file system has less free space than this
    /// (for this user, in MiB) is reported.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MIN_FREE_MIB)]
    pub min_free_mib: u64,
}

/// `ironvault doctor`: the same as `ironvault config check --connect`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(cli: &Cli, a: &Args) -> Result<Exit> {
    crate::commands::plans::check_config(cli, Some(a.connect))
}

/// What the probe of one repository found.
pub struct Probed {
    pub name: String,
    pub url: String,
    /// "repository 1a2b3c4d opened with key 5e6f7a8b" when all is well.
    pub ok: Option<String>,
    pub problems: Vec<String>,
}

/// Probe every repository of the config, one after the other.
pub fn probe_all(cfg: &Config, a: ConnectArgs) -> Result<Vec<Probed>> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the ironvault binary: {e}"))?;
    let mut out = Vec::new();
    for repo in cfg.repositories.values() {
        out.push(probe_one(&exe, repo, a)?);
    }
    Ok(out)
}

fn probe_one(exe: &Path, repo: &RepoConfig, a: ConnectArgs) -> Result<Probed> {
    let mut c = ironvault_agent::runner::repo_command(exe, repo);
    // An unreachable server is an answer here, not something to wait out.
    c.args(["--s3-retry-timeout", "10", "--quiet"]);
    c.arg("probe-repository")
        .arg("--min-free-mib")
        .arg(a.min_free_mib.to_string());
    // Never a password prompt: the config must say where the password is.
    let o = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let mut probed = Probed {
        name: repo.name.clone(),
        url: repo.url.clone(),
        ok: None,
        problems: Vec::new(),
    };
    for l in stdout.lines() {
        if let Some(ok) = l.strip_prefix("ok: ") {
            probed.ok = Some(ok.to_string());
        } else if let Some(p) = l.strip_prefix("problem: ") {
            probed.problems.push(p.to_string());
        }
    }
    if !o.status.success() && probed.problems.is_empty() {
        // The probe itself failed before it could say why (a bad flag in
        // the config's values, a crash): its own error line.
        let stderr = String::from_utf8_lossy(&o.stderr);
        let why = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or("the probe failed without a message")
            .to_string();
        probed.problems.push(why);
        probed.ok = None;
    }
    Ok(probed)
}

/// Print the probes, a line per repository that is well and per problem.
pub fn print(probed: &[Probed], config_file: &Path) {
    for p in probed {
        let who = format!("repository {} ({})", p.name, p.url);
        if p.problems.is_empty() {
            println!("  {who}: ok, {}", p.ok.as_deref().unwrap_or("opened"));
        }
        for problem in &p.problems {
            println!(
                "  {who}: {}",
                problem.replace("THE_CONFIG", &config_file.display().to_string())
            );
        }
    }
}

/// The number of problems found.
pub fn count(probed: &[Probed]) -> usize {
    probed.iter().map(|p| p.problems.len()).sum()
}

/// A summary line for a failed doctor.
pub fn failed_line(n: usize) -> String {
    format!(
        "{} found; fix them as each line says and run 'ironvault doctor' again",
        plural(n as u64, "problem")
    )
}

/// The hidden `probe-repository` command: the child side of the doctor.
#[derive(clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Check the repository of `--repo` without changing anything; print
/// `problem: ...` lines (the fix named in terms of the config, whose path the
/// parent puts for `THE_CONFIG`), or one `ok: ...` line.
pub fn probe(cli: &Cli, a: &ProbeArgs) -> Result<Exit> {
    let loc = location(cli)?;
    let mut problems: Vec<(Exit, String)> = Vec::new();
    let mut ok = None;
    let local = !loc.starts_with("s3:");
    let present = !local || Path::new(&loc).exists();
    if local && present {
        local_checks(Path::new(&loc), a.connect.min_free_mib, &mut problems);
    }
    // No cache: a probe writes nothing on this host either.
    match open_backend_with(cli, &loc, false) {
        Err(e) => problems.push((
            Exit::Failure,
            format!(
                "cannot use the location: {}; fix url in THE_CONFIG",
                crate::one_line(&e)
            ),
        )),
        Ok(b) => {
            match Repository::probe(b.as_ref()) {
                Err(CoreError::RepoMissing(_)) => problems.push((
                    Exit::RepoMissing,
                    if local {
                        "no repository there: mount its disk, fix url in THE_CONFIG, or create it with 'ironvault init'".to_string()
                    } else {
                        "no repository there (no config object in the bucket): fix url in THE_CONFIG, or create it with 'ironvault init'".to_string()
                    },
                )),
                Err(e) => problems.push((Exit::Failure, unreachable(&e, local))),
                Ok(()) => match password_source(cli).get("the repository", false) {
                    Err(e) => problems.push((
                        Exit::WrongPassword,
                        format!(
                            "{}; fix password_file or password_command in THE_CONFIG",
                            crate::one_line(&e)
                        ),
                    )),
                    Ok(pw) => match Repository::open_preferring(b.clone(), &pw, None, &mut |_| {}) {
                        Ok(repo) => {
                            ok = Some(format!(
                                "repository {} opened with key {}",
                                repo.config().id.short(),
                                &ironvault_core::format::kind::key_id_text(repo.key_name())[..8]
                            ))
                        }
                        Err(CoreError::WrongPassword(..)) => problems.push((
                            Exit::WrongPassword,
                            "wrong password (no key file matched): fix password_file or password_command in THE_CONFIG".to_string(),
                        )),
                        Err(e) => problems.push((Exit::Failure, unreachable(&e, local))),
                    },
                },
            }
            if let Some(skew) = b.clock_skew() {
                if skew.unsigned_abs() > MAX_CLOCK_SKEW.as_secs() {
                    problems.push((
                        Exit::Failure,
                        format!(
                            "the storage's clock is {} s {} this host's (more than {} s): lock ages go wrong; set the time right on both (NTP)",
                            skew.unsigned_abs(),
                            if skew > 0 { "ahead of" } else { "behind" },
                            MAX_CLOCK_SKEW.as_secs()
                        ),
                    ));
                }
            }
        }
    }
    for (_, p) in &problems {
        println!("problem: {p}");
    }
    match problems.first() {
        Some((code, _)) => Ok(*code),
        None => {
            println!("ok: {}", ok.unwrap_or_default());
            Ok(Exit::Ok)
        }
    }
}

/// A storage that does not answer, or not as it should.
fn unreachable(e: &CoreError, local: bool) -> String {
    let text = e.to_string();
    match e {
        CoreError::Storage { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            format!("{text}: this user may not read it; fix its owner or mode, or the credentials in THE_CONFIG")
        }
        _ if local => format!("{text}: check the disk and the path (url in THE_CONFIG)"),
        _ => format!(
            "cannot reach the storage ({text}): check the endpoint in url, the network and the credentials (env in THE_CONFIG)"
        ),
    }
}

/// Permissions and free space of a local repository, before it is opened.
fn local_checks(root: &Path, min_free_mib: u64, problems: &mut Vec<(Exit, String)>) {
    // The root and each directory in it: every command but `check` writes
    // (locks, packs, index), so this user must be able to.
    let mut dirs = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        dirs.extend(
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    for d in dirs {
        if !may(&d, libc::R_OK | libc::W_OK | libc::X_OK) {
            problems.push((
                Exit::Failure,
                format!(
                    "this user may not write {}: fix its owner or mode (chown -R, chmod -R u+rwX), or run as the repository's owner",
                    d.display()
                ),
            ));
            break;
        }
    }
    if let Some(free) = free_bytes(root) {
        if free < min_free_mib << 20 {
            problems.push((
                Exit::Failure,
                format!(
                    "only {} free on its file system (less than {} MiB, --min-free-mib): free space or move the repository",
                    ironvault_core::human::bytes(free),
                    min_free_mib
                ),
            ));
        }
    }
}

/// True if this process may access `p` as `mode` says (its effective ids).
fn may(p: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; faccessat only reads it.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) == 0 }
}

/// Bytes free for this user on the file system of `p` (statvfs f_bavail).
#[allow(clippy::unnecessary_cast)] // u64 on 64-bit Linux, narrower elsewhere
fn free_bytes(p: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct from a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
