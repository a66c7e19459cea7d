//! The deletion-list protocol of prune (format.md §9): the list of
//! candidate packs phase 1 writes, the locks that were there before it (L1)
//! and that phase 2 waits for, the lists of other prunes (running: refuse;
//! abandoned: finish their job), and the index files a finished prune leaves
//! superseded. `super::prune` runs these steps in order.

use super::{interrupted, Observer, PruneReport};
use crate::backend::{is_not_found, Backend};
use crate::error::{Error, Result};
use crate::format::deletions::Deletions;
use crate::format::id::IdSet;
use crate::format::{Id, ObjectKind};
use crate::repo::lock::{list_locks, list_locks_at, Lock, StorageClock};
use crate::repo::Repository;
use std::time::{Duration, Instant};

/// Store the deletion list naming `candidates`, held by the prune whose lock
/// object is `own`; returns its object name.
pub(super) fn write_deletion_list(
    repo: &Repository,
    candidates: &IdSet,
    own: Option<&str>,
) -> Result<String> {
    let mut sorted: Vec<Id> = candidates.iter().copied().collect();
    sorted.sort();
    let list = Deletions {
        created: chrono::Utc::now().to_rfc3339(),
        packs: sorted,
        lock: own.map(String::from),
        hostname: Some(crate::host::hostname()),
    };
    repo.save_deletion_list(&list)
}

/// The lock objects stored now other than `own` (L1, once the deletion list
/// is written).
pub(super) fn locks_besides(
    b: &dyn Backend,
    key: &[u8; 32],
    own: Option<&str>,
) -> Result<Vec<String>> {
    Ok(list_locks(b, key)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| Some(n.as_str()) != own)
        .collect())
}

/// Deletion lists of other prunes: refuse while one of them is running
/// (its lock is live); return the names of abandoned ones.
pub(super) fn other_prunes(
    repo: &Repository,
    own: Option<&str>,
    own_list: Option<&str>,
    clock: &StorageClock,
    dry_run: bool,
    obs: &Observer,
) -> Result<Vec<String>> {
    let host = crate::host::hostname();
    let locks: std::collections::HashMap<String, _> =
        list_locks_at(repo.backend().as_ref(), repo.master_key(), clock)?
            .into_iter()
            .collect();
    let mut abandoned = Vec::new();
    for (name, d) in repo.deletion_lists()? {
        let live = match &d.lock {
            Some(l) if Some(l.as_str()) == own => continue,
            Some(l) => locks
                .get(l)
                .is_some_and(|i| i.as_ref().is_some_and(|i| !i.is_stale(&host))),
            // A list without its lock's name: running if any other lock is live.
            None => locks.iter().any(|(n, i)| {
                Some(n.as_str()) != own && i.as_ref().is_some_and(|i| !i.is_stale(&host))
            }),
        };
        if live {
            let who = d.hostname.unwrap_or_else(|| "another host".into());
            if dry_run {
                (obs.notice)(&format!(
                    "a prune on {who} is running (deletion list {name}); this dry run shows the state before it"
                ));
                continue;
            }
            return Err(Error::Locked(format!(
                "a prune on {who} (deletion list {name}, created {})",
                d.created
            )));
        }
        abandoned.push(name);
    }
    if !abandoned.is_empty() && !dry_run && own_list.is_none() {
        (obs.notice)(&format!(
            "found {} of an interrupted prune; this prune finishes the job",
            crate::human::plural(abandoned.len() as u64, "deletion list")
        ));
    }
    Ok(abandoned)
}

/// Wait until every lock of `l1` has been removed or gone stale, by the
/// storage's clock as our own lock last read it.
pub(super) fn wait_for_locks(
    b: &dyn Backend,
    lock: &Lock,
    key: &[u8; 32],
    l1: &[String],
    poll: Duration,
    r: &mut PruneReport,
    obs: &Observer,
) -> Result<()> {
    let host = crate::host::hostname();
    let started = Instant::now();
    let mut shown: Option<Vec<String>> = None;
    (obs.progress)("waiting for older locks", 0, 0);
    loop {
        let live: Vec<(String, String)> = list_locks_at(b, key, &lock.clock())?
            .into_iter()
            .filter(|(n, _)| l1.contains(n))
            .filter_map(|(n, i)| {
                let i = i?;
                (!i.is_stale(&host)).then(|| (n, i.describe()))
            })
            .collect();
        if live.is_empty() {
            r.wait_seconds = started.elapsed().as_secs_f64();
            return Ok(());
        }
        let names: Vec<String> = live.iter().map(|l| l.0.clone()).collect();
        if shown.as_ref() != Some(&names) {
            r.waited_for_locks = r.waited_for_locks.max(names.len());
            (obs.notice)(&format!(
                "waiting for {} that began before the deletion list to end: {} (backups go on meanwhile; Ctrl-C stops the prune safely)",
                if live.len() == 1 { "1 lock".to_string() } else { format!("{} locks", live.len()) },
                live.iter().map(|l| l.1.as_str()).collect::<Vec<_>>().join("; ")
            ));
            shown = Some(names);
        }
        for _ in 0..(poll.as_millis() / 100).max(1) {
            interrupted()?;
            std::thread::sleep(Duration::from_millis(100).min(poll));
        }
    }
}

/// Delete index files that a newest index file supersedes; returns how many.
/// Every index file prune or `repair index` writes supersedes all files it
/// read, so a file no other supersedes (a root) is never deleted, and a
/// deleted file can never come back into force through a broken chain.
pub(super) fn tidy_superseded_index_files(repo: &Repository) -> Result<usize> {
    let (files, _) = repo.read_index_files()?;
    let superseded: IdSet = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let doomed: IdSet = files
        .iter()
        .filter(|(id, _)| !superseded.contains(id))
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .filter(|s| files.iter().any(|(id, _)| id == s))
        .collect();
    for s in &doomed {
        match repo.backend().delete(&ObjectKind::Index.name(s)) {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(doomed.len())
}
