//! One module per subcommand.

pub mod backup;
pub mod cat;
pub mod check;
pub mod completions;
pub mod copy;
pub mod diff;
pub mod doctor;
pub mod dump;
pub mod find;
pub mod forget;
pub mod history;
pub mod incident;
pub mod init;
pub mod key;
pub mod lock;
pub mod ls;
pub mod man;
pub mod plans;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod security;
pub mod serve;
pub mod snapshots;
pub mod stats;
pub mod status;
pub mod unlock;
pub mod version;

use crate::password::PasswordSource;
use crate::Cli;
use crate::Exit;
use anyhow::{anyhow, Result};
use ironvault_core::backend::s3::S3Options;
use ironvault_core::backend::{open_location, Backend};
use ironvault_core::repo::Repository;
use std::sync::Arc;

/// The repository location from `--repo` / `IRONVAULT_REPO`.
pub fn location(cli: &Cli) -> Result<String> {
    cli.repo
        .clone()
        .ok_or_else(|| anyhow!("no repository given: use --repo PATH or set IRONVAULT_REPO"))
}

/// The backend for the repository location.
pub fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    open_backend(cli, &location(cli)?)
}

/// The backend for any location (also `--from-repo`), with the global S3 options.
pub fn open_backend(cli: &Cli, location: &str) -> Result<Arc<dyn Backend>> {
    open_backend_with(cli, location, !cli.no_cache)
}

/// The same, with or without the metadata cache.
pub fn open_backend_with(cli: &Cli, location: &str, cache: bool) -> Result<Arc<dyn Backend>> {
    let opts = S3Options {
        cacert: cli.cacert.clone(),
        limit_upload: cli.limit_upload,
        limit_download: cli.limit_download,
        connections: cli.s3_connections,
        virtual_host: cli.s3_virtual_host,
        retry_timeout: std::time::Duration::from_secs(cli.s3_retry_timeout),
        on_retry: {
            let (quiet, secs, loc) = (cli.quiet, cli.s3_retry_timeout, location.to_string());
            Some(Arc::new(move |why: &str| {
                if !quiet {
                    eprintln!(
                        "warning: a request to {loc} failed ({why}); retrying for up to {secs} s (--s3-retry-timeout)"
                    );
                }
            }))
        },
        cache: if !cache {
            None
        } else {
            cli.cache_dir
                .clone()
                .or_else(ironvault_core::backend::cache::default_root)
        },
        token: match &cli.token_file {
            Some(f) => Some(read_token_file(f)?),
            None => None,
        },
        ..S3Options::default()
    };
    Ok(Arc::from(open_location(location, &opts)?))
}

/// The first line of a `--token-file`.
fn read_token_file(f: &std::path::Path) -> Result<String> {
    let text =
        std::fs::read_to_string(f).map_err(|e| anyhow!("--token-file {}: {e}", f.display()))?;
    let t = text.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        return Err(anyhow!("--token-file {}: the file is empty; put the token 'ironvault serve token add' printed on its first line", f.display()));
    }
    Ok(t)
}

/// Password sources from the global flags.
pub fn password_source(cli: &Cli) -> PasswordSource {
    PasswordSource {
        env_var: "IRONVAULT_PASSWORD",
        file: cli.password_file.clone(),
        command: cli.password_command.clone(),
    }
}

/// With -v, a line on stderr about what is being done.
pub fn verbose(cli: &Cli, msg: impl FnOnce() -> String) {
    if cli.verbose > 0 {
        eprintln!("{}", msg());
    }
}

/// Open the repository: check it exists (before asking a password), then unlock a key.
pub fn open_repo(cli: &Cli) -> Result<Arc<Repository>> {
    open_repo_with(cli, !cli.no_cache)
}

/// The same, with or without the metadata cache (`check` reads the storage itself).
pub fn open_repo_with(cli: &Cli, cache: bool) -> Result<Arc<Repository>> {
    let b = open_backend_with(cli, &location(cli)?, cache)?;
    Repository::probe(b.as_ref())?;
    let pw = password_source(cli).get(&format!("repository {}", b.location()), false)?;
    let t = std::time::Instant::now();
    let repo = Arc::new(unlock(cli, b, &pw)?);
    attach_security(cli, &repo, Contact::Open);
    verbose(cli, || {
        format!(
            "opened repository {} ({}) with key {} in {:.2} s",
            repo.config().id.short(),
            repo.backend().location(),
            &ironvault_core::format::kind::key_id_text(repo.key_name())[..8],
            t.elapsed().as_secs_f64()
        )
    });
    Ok(repo)
}

/// Unlock a repository with a password. The key file that opened it last on
/// this host is tried first (its name is kept in the repository's cache
/// directory), so key files planted in the storage cost nothing while it
/// works; each key file that cannot be tried is a warning.
fn unlock(cli: &Cli, b: Arc<dyn Backend>, pw: &[u8]) -> ironvault_core::Result<Repository> {
    use ironvault_core::backend::cache;
    use ironvault_core::repo::keys;
    let dir = cli
        .cache_dir
        .clone()
        .or_else(cache::default_root)
        .map(|root| cache::repo_dir(&root, &b.location()));
    let preferred = dir.as_deref().and_then(keys::remembered_key);
    let repo = Repository::open_preferring(b, pw, preferred.as_deref(), &mut |e| {
        eprintln!(
            "warning: {e}; if no one made it on purpose, remove it ('ironvault key list' shows it)"
        );
    })?;
    if let Some(dir) = dir.filter(|_| preferred.as_deref() != Some(repo.key_name())) {
        keys::remember_key(&dir, repo.key_name());
    }
    Ok(repo)
}

/// The source repository of `copy` (and, with other help texts, of `init --from-repo`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct FromRepo {
    /// The repository to copy from (a directory or s3:...).
    #[arg(long, value_name = "LOCATION")]
    pub from_repo: Option<String>,
    /// Read the --from-repo password from the first line of this file
    /// (or set IRONVAULT_FROM_PASSWORD).
    #[arg(long, env = "IRONVAULT_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<std::path::PathBuf>,
    /// Run this command and use the first line it prints as the --from-repo password.
    #[arg(long, env = "IRONVAULT_FROM_PASSWORD_COMMAND")]
    pub from_password_command: Option<String>,
}

/// Open another repository (the source of a copy or of a related init) with
/// its own password: IRONVAULT_FROM_PASSWORD, the file, the command or a prompt.
pub fn open_other(
    cli: &Cli,
    location: &str,
    file: Option<std::path::PathBuf>,
    command: Option<String>,
) -> Result<Arc<Repository>> {
    let b = open_backend(cli, location)?;
    Repository::probe(b.as_ref()).map_err(|e| match e {
        ironvault_core::Error::RepoMissing(_) => anyhow::Error::new(crate::Coded {
            code: Exit::RepoMissing,
            msg: format!(
                "the source repository {location} does not exist (no config object); check --from-repo"
            ),
        }),
        e => anyhow::Error::from(e),
    })?;
    let src = PasswordSource {
        env_var: "IRONVAULT_FROM_PASSWORD",
        file,
        command,
    };
    let pw = src.get(&format!("source repository {location}"), false)?;
    let repo = unlock(cli, b, &pw).map_err(|e| match e {
        ironvault_core::Error::WrongPassword(..) => anyhow::Error::new(crate::Coded {
            code: Exit::WrongPassword,
            msg: format!(
                "wrong password for the source repository {location} (no key file matched); check IRONVAULT_FROM_PASSWORD, --from-password-file or --from-password-command"
            ),
        }),
        e => anyhow::Error::from(e).context(format!("opening {location}")),
    })?;
    attach_security(cli, &repo, Contact::Source);
    Ok(Arc::new(repo))
}

/// How a command comes to a repository, for its security record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// `init` created it: nothing to announce.
    Created,
    /// The repository the command works on.
    Open,
    /// The source of `copy` or `init --from-repo`, only read: a first
    /// contact is not announced (the command's own messages stay alone).
    Source,
}

/// Compare the repository with this host's security record (format.md §11)
/// and attach the record: a first contact is said once, every alarm kept is
/// repeated on each run until 'ironvault security accept'. A record that
/// cannot be used is warned about; the command goes on without it.
pub fn attach_security(cli: &Cli, repo: &Repository, contact: Contact) {
    use ironvault_core::repo::security::default_root;
    let id = repo.config().id.short();
    let location = repo.backend().location();
    let Some(root) = cli.state_dir.clone().or_else(default_root) else {
        eprintln!(
            "warning: no state directory (HOME is not set), so this host cannot notice if repository {id} goes back in time; set IRONVAULT_STATE_DIR"
        );
        return;
    };
    let warn = Box::new(|m: &str| eprintln!("warning: {m}"));
    let f = match repo.attach_security(&root, contact == Contact::Created, warn) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "warning: the security record of repository {id} under {} cannot be used ({e}), so this run cannot notice if the repository went back in time; fix that directory or set IRONVAULT_STATE_DIR",
                root.display()
            );
            return;
        }
    };
    if let Some(prev) = f.previous_at_location {
        eprintln!(
            "warning: {location} held repository {} when this host last used it and now holds repository {id}: a new repository, or another one put in its place; make sure it is the one you mean",
            prev.short()
        );
    }
    if f.first_contact && contact == Contact::Open && !cli.quiet {
        eprintln!(
            "note: first contact with repository {id} ({location}): this host trusts its {} as they are and from now on warns if the repository goes back in time (record in {})",
            crate::output::plural(f.snapshots as u64, "snapshot"),
            f.dir.display()
        );
    }
    for a in &f.alarms {
        eprintln!("warning: {a}");
    }
}

/// For `backup` and `restore latest`: the exit code when alarms are kept,
/// after a last line that sums them up (what a scheduler shows).
pub fn rollback_exit(repo: &Repository, done: &str) -> Option<Exit> {
    let n = repo.security().map(|g| g.alarms().len()).unwrap_or(0);
    if n == 0 {
        return None;
    }
    eprintln!(
        "warning: {done}, but repository {} went back in time or was tampered with ({} above); 'ironvault security status' lists them, 'ironvault security accept' takes the repository as it is",
        repo.config().id.short(),
        crate::output::plural(n as u64, "problem")
    );
    Some(Exit::Rollback)
}

/// Filters that select snapshots (repeatable; a snapshot matches if it has
/// one of the hosts, all of one tag list, and one of the paths given).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct SnapshotFilter {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags (comma-separated: all of them; repeatable: any group).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// True if the snapshot passes every filter given.
    pub fn matches(&self, s: &ironvault_core::format::snapshot::Snapshot) -> bool {
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&s.hostname);
        let tag_ok = self.tags.is_empty()
            || self.tags.iter().any(|group| {
                group
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .all(|t| s.tags.iter().any(|x| x == t))
            });
        let path_ok = self.paths.is_empty()
            || self.paths.iter().any(|p| {
                // As backups record them: `/srv/`, `/srv/.` and `//srv` are
                // `/srv`; `/`, `//` and `/.` are `/`.
                let comps: Vec<&str> = p
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .collect();
                let lead = if p.starts_with('/') { "/" } else { "" };
                let p = format!("{lead}{}", comps.join("/"));
                s.paths.contains(&p)
            });
        host_ok && tag_ok && path_ok
    }
}

impl SnapshotFilter {
    fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }
}

/// Say on stderr which snapshot `latest` turned out to be, so that `dump
/// latest` taking another plan's snapshot does not go unnoticed (stderr:
/// --json output stays as it is).
pub fn announce_latest(
    cli: &Cli,
    spec: &str,
    id: &ironvault_core::format::Id,
    s: &ironvault_core::format::snapshot::Snapshot,
) {
    if spec == "latest" && !cli.quiet {
        eprintln!(
            "using snapshot {} of {} on host {} at {}",
            id.short(),
            crate::output::escape_str(&s.paths.join(", ")),
            crate::output::escape_str(&s.hostname),
            crate::output::escape_str(&s.time)
        );
    }
}

/// A path that is not in the snapshot `latest` resolved to: say which
/// snapshot that was and how to pick another one.
pub fn after_latest(
    e: ironvault_core::Error,
    spec: &str,
    id: &ironvault_core::format::Id,
    s: &ironvault_core::format::snapshot::Snapshot,
) -> ironvault_core::Error {
    match e {
        ironvault_core::Error::NotFound { what, name, hint } if spec == "latest" => {
            ironvault_core::Error::NotFound {
                what,
                name,
                hint: format!(
                    "{hint}; latest is snapshot {} of {} on host {}: pick another with --path, --host or --tag",
                    id.short(),
                    crate::output::escape_str(&s.paths.join(", ")),
                    crate::output::escape_str(&s.hostname)
                ),
            }
        }
        e => e,
    }
}

/// One snapshot by id, prefix or "latest"; with filters, "latest" is the
/// newest snapshot that passes them (`restore latest --tag plan:erp --host db1`).
/// Which snapshot `latest` is, is said on stderr.
pub fn find_snapshot(
    cli: &Cli,
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(
    ironvault_core::format::Id,
    ironvault_core::format::snapshot::Snapshot,
)> {
    let (id, s) = find_snapshot_quietly(repo, spec, filter)?;
    announce_latest(cli, spec, &id, &s);
    Ok((id, s))
}

fn find_snapshot_quietly(
    repo: &Repository,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<(
    ironvault_core::format::Id,
    ironvault_core::format::snapshot::Snapshot,
)> {
    if filter.is_empty() {
        return Ok(repo.find_snapshot(spec)?);
    }
    if spec != "latest" {
        return Err(crate::Coded {
            code: Exit::Failure,
            msg: format!(
                "--host, --tag and --path choose which snapshot 'latest' is; {spec} names one already: drop them, or write latest"
            ),
        }
        .into());
    }
    let (all, errs) = repo.list_snapshots()?;
    for e in errs {
        eprintln!("warning: {e}");
    }
    let total = all.len();
    // Never a snapshot this host knows was removed (format.md §11).
    let distrusted = repo.distrusted_snapshots();
    match all
        .into_iter()
        .rfind(|(id, s)| filter.matches(s) && !distrusted.contains(id))
    {
        Some(found) => Ok(found),
        None => Err(crate::Coded {
            code: Exit::Failure,
            msg: format!(
                "no snapshot matches the filters (of {}); 'ironvault snapshots' with the same --host/--tag/--path lists what is there",
                crate::output::plural(total as u64, "snapshot")
            ),
        }
        .into()),
    }
}

/// The snapshots named (ids, prefixes or "latest", said on stderr), or all
/// that pass the filter.
pub fn select_snapshots(
    cli: &Cli,
    repo: &Repository,
    ids: &[String],
    filter: &SnapshotFilter,
) -> Result<
    Vec<(
        ironvault_core::format::Id,
        ironvault_core::format::snapshot::Snapshot,
    )>,
> {
    if !ids.is_empty() {
        // The same snapshot named twice (an id and its prefix) counts once.
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for i in ids {
            let (id, s) = repo.find_snapshot(i)?;
            announce_latest(cli, i, &id, &s);
            if seen.insert(id) {
                out.push((id, s));
            }
        }
        return Ok(out);
    }
    let (all, errs) = repo.list_snapshots()?;
    for e in errs {
        eprintln!("warning: {e}");
    }
    Ok(all.into_iter().filter(|(_, s)| filter.matches(s)).collect())
}

/// After prune or forget deleted objects: on a bucket with Object Lock (as
/// the server reports it), say in one line that the bucket keeps the
/// deleted objects' locked versions until their retention ends.
pub fn say_object_lock(cli: &Cli, backend: &dyn ironvault_core::backend::Backend) {
    if cli.quiet || cli.json {
        return;
    }
    if let Ok(Some(ironvault_core::backend::Immutability::ObjectLock { mode, retain_days })) =
        backend.immutability()
    {
        println!(
            "Object Lock ({mode}, {}): the deleted objects are gone from the repository; the bucket keeps their locked versions until their retention ends (see docs/immutability.md)",
            crate::output::plural(retain_days as u64, "day")
        );
    }
}
