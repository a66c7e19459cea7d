//! Rollback and replay detection (format.md §11). Someone who can write to
//! the storage but holds no key cannot forge an object, but can delete
//! objects and put back old ones. Each host therefore keeps a small record
//! per repository (`record`) of the snapshots it saw, the snapshots it knows
//! were removed and the index files it knows were superseded, and compares
//! the repository with it whenever it opens it:
//! - the newest snapshot of a host and paths that this host saw is gone,
//!   and nothing newer of them is there: the repository went back in time;
//! - a snapshot this host removed (or saw removed) is back: a replay;
//! - the config differs from the one first seen: a swapped repository;
//! - an index file known superseded is back and nothing supersedes it any
//!   more: the index went back in time (the file stays ignored).
//!
//! Each finding is an alarm kept in the record and repeated by every
//! command until the operator accepts the repository as it is
//! (`ironvault security accept`). A snapshot known removed is never what
//! `latest` names. The first contact with a repository trusts it as it is.

pub mod record;

pub use record::{default_root, record_dir, Alarm, AlarmKind, How, Record};

use super::Repository;
use crate::error::{Error, Result};
use crate::format::id::{IdMap, IdSet};
use crate::format::snapshot::Snapshot;
use crate::format::Id;
use crate::sync::Locked;
use record::{Described, Group, HexId};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where warnings about the record itself go (the CLI prints them).
pub type WarnFn = Box<dyn Fn(&str) + Send + Sync>;

/// A repository's record, attached to the open repository.
pub struct Guard {
    dir: PathBuf,
    /// The record as this process last read or wrote it.
    record: Mutex<Record>,
    warn: WarnFn,
}

/// What opening found.
#[derive(Debug, Default)]
pub struct Findings {
    /// No record existed: the repository is trusted as it is from now on.
    pub first_contact: bool,
    /// The record's directory.
    pub dir: PathBuf,
    /// Snapshots in the repository.
    pub snapshots: usize,
    /// On first contact: the repository this host last knew at the same
    /// location, if it was another one.
    pub previous_at_location: Option<Id>,
    /// Every alarm kept (new and earlier ones), as one-line messages.
    pub alarms: Vec<String>,
}

/// What `accept` changed.
#[derive(Debug, Default)]
pub struct Accepted {
    pub alarms_cleared: usize,
    pub snapshots: usize,
}

/// The group a snapshot belongs to.
fn group_of(s: &Snapshot) -> Group {
    let mut paths = s.paths.clone();
    paths.sort();
    Group {
        hostname: s.hostname.clone(),
        paths,
    }
}

fn describe(s: &Snapshot) -> Described {
    Described {
        time: s.time.clone(),
        hostname: s.hostname.clone(),
        paths: s.paths.clone(),
    }
}

fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(t).ok()
}

/// "2026-12-01 10:00 erp01 /srv", or the raw time if it does not parse.
fn show(d: &Described) -> String {
    let time = parse_time(&d.time)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| d.time.clone());
    format!("{time} {} {}", d.hostname, d.paths.join(" "))
}

fn show_day(rfc3339: &str) -> String {
    parse_time(rfc3339)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| rfc3339.to_string())
}

impl Alarm {
    /// One line: what happened and what to do.
    pub fn message(&self, repo: &Id) -> String {
        let repo = repo.short();
        let id = self.id.map(|i| i.0.short()).unwrap_or_default();
        let snap = self
            .snapshot
            .as_ref()
            .map(|d| format!(" ({})", show(d)))
            .unwrap_or_default();
        match self.kind {
            AlarmKind::Gone => format!(
                "repository {repo} went back in time: snapshot {id}{snap} that this host saw is gone, and nothing newer of that host and paths is there; someone with access to the storage removed it, or this is an older copy of the repository (or another host forgot it by id). Check with 'ironvault snapshots'; once explained, 'ironvault security accept' takes the repository as it is"
            ),
            AlarmKind::Back => format!(
                "snapshot {id}{snap} was {} on {} but is back in repository {repo}: someone with access to the storage put it back, or this is an older copy of the repository; 'latest' never picks it. Remove it again with 'ironvault forget {id}', or keep it with 'ironvault security accept'",
                self.how.map(How::describe).unwrap_or("removed"),
                self.removed.as_deref().map(show_day).unwrap_or_default()
            ),
            AlarmKind::Config => format!(
                "the config of repository {repo} is not the one this host first saw: the repository was swapped for another copy; check the location, and run 'ironvault security accept' only once you know why"
            ),
            AlarmKind::Deleted => format!(
                "snapshot {id}{snap} that this host saw was deleted from repository {repo} without a forget record naming it: someone with access to the storage removed it (or a host running an ironvault that writes no forget records forgot it). Copy it back from another repository ('ironvault copy --from-repo ... {id}') if one holds it; once explained, 'ironvault security accept' takes the repository as it is"
            ),
            AlarmKind::Unreadable => format!(
                "snapshot {id}{snap} that this host saw cannot be read any more from repository {repo} (damaged, or replaced by other bytes), so 'latest' and backups skip it and the repository looks older than it is. Run 'ironvault check'; copy it back from another repository ('ironvault copy --from-repo ... {id}') or forget it; then 'ironvault security accept'"
            ),
            AlarmKind::Index => format!(
                "index file {id} of repository {repo} is back although an index file that superseded it was seen, and none supersedes it now: it stays ignored (someone with access to the storage, or an older copy of the repository). Run 'ironvault check' (and 'ironvault repair index' if blobs are missing); once explained, 'ironvault security accept' takes the index as it is"
            ),
        }
    }
}

/// What `attach` learned from storage before it updates the record.
struct Facts {
    listing: IdSet,
    /// Snapshots in the listing this host had not seen (and could read).
    loaded: IdMap<Snapshot>,
    /// Snapshots the record had as seen when the listing was taken.
    seen_before: IdSet,
    /// Removals the record held when the listing was taken (id → pending).
    /// Only these can be judged by the listing: a removal another command
    /// of this host recorded after it (a forget running beside us) may be
    /// newer than the listing, which then still shows the snapshot.
    removed_before: IdMap<bool>,
    /// Snapshots whose disappearance had raised an alarm when the listing was taken.
    gone_alarms_before: IdSet,
    /// Snapshots named by erasure requests (rewritten by some host).
    erased: IdSet,
    /// Snapshots named by forget records (removed by a host with the key),
    /// read after the listing; and whether any forget record is stored.
    forgotten: IdSet,
    forget_records_exist: bool,
    config: Id,
    location: String,
    created: bool,
}

impl Repository {
    /// The attached record, if any (the CLI attaches one to every repository it opens).
    pub fn security(&self) -> Option<&Guard> {
        self.security.get()
    }

    /// Compare the repository with this host's record under `root`, update
    /// the record, and attach it. `created`: this host has just created
    /// the repository (no first-contact notice).
    pub fn attach_security(&self, root: &Path, created: bool, warn: WarnFn) -> Result<Findings> {
        let dir = record_dir(root, &self.config.id);
        let before = match record::load(&dir) {
            Ok(r) => r,
            // Reported and moved aside by the update below.
            Err(Error::Damaged { .. }) => None,
            Err(e) => return Err(e),
        };
        let listing: IdSet = self.snapshot_ids()?.into_iter().collect();
        let seen_before: IdSet = before
            .as_ref()
            .map(|r| r.seen.keys().map(|h| h.0).collect())
            .unwrap_or_default();
        let removed_before: IdMap<bool> = before
            .as_ref()
            .map(|r| r.removed.iter().map(|x| (x.id.0, x.pending)).collect())
            .unwrap_or_default();
        let gone_alarms_before: IdSet = before
            .as_ref()
            .map(|r| {
                r.alarms
                    .iter()
                    .filter(|a| matches!(a.kind, AlarmKind::Gone | AlarmKind::Deleted))
                    .filter_map(|a| a.id.map(|h| h.0))
                    .collect()
            })
            .unwrap_or_default();
        let mut loaded = IdMap::default();
        for id in listing.iter().filter(|i| !seen_before.contains(i)) {
            // An unreadable snapshot is left for `check` to report.
            if let Ok(s) = self.load_snapshot(id) {
                loaded.insert(*id, s);
            }
        }
        let vanished = seen_before.iter().any(|i| !listing.contains(i));
        let erased: IdSet = if vanished {
            self.erasure_requests()
                .map(|v| v.into_iter().flat_map(|(_, q)| q.snapshots).collect())
                .unwrap_or_default()
        } else {
            IdSet::default()
        };
        // Read after the listing: a forget stores its record before it
        // deletes, so every removal the listing misses is named here.
        let (forgotten, forget_records_exist) = if vanished {
            match self.forget_records() {
                Ok((recs, _)) => (
                    recs.iter()
                        .flat_map(|(_, r)| r.snapshots.iter().copied())
                        .collect(),
                    !recs.is_empty(),
                ),
                // Judged as if there were none: false alarms rather than
                // a deletion hidden by making the records unreadable.
                Err(_) => (IdSet::default(), false),
            }
        } else {
            (IdSet::default(), false)
        };
        let facts = Facts {
            listing,
            loaded,
            seen_before,
            removed_before,
            gone_alarms_before,
            erased,
            forgotten,
            forget_records_exist,
            config: self.config_hash,
            location: self.backend.location(),
            created,
        };
        let previous = if before.is_none() {
            record::all_records(root)
                .into_iter()
                .find(|r| r.location == facts.location && r.repository.0 != self.config.id)
                .map(|r| r.repository.0)
        } else {
            None
        };
        let mut damaged = |e: &Error, aside: &Path| {
            warn(&format!(
                "{e}; it was moved to {} and this host starts a new record, trusting the repository as it is",
                aside.display()
            ))
        };
        let (mut findings, rec) = record::update(&dir, &mut damaged, |rec| {
            let first = rec.is_none();
            let r = rec
                .get_or_insert_with(|| Record::new(self.config.id, &facts.config, &facts.location));
            compare(r, &facts);
            let f = Findings {
                first_contact: first && !facts.created,
                snapshots: facts.listing.len(),
                alarms: r
                    .alarms
                    .iter()
                    .map(|a| a.message(&self.config.id))
                    .collect(),
                ..Findings::default()
            };
            (f, r.clone())
        })?;
        findings.dir = dir.clone();
        findings.previous_at_location = previous.filter(|_| findings.first_contact);
        let guard = Guard {
            dir,
            record: Mutex::new(rec),
            warn,
        };
        // Attached once per open repository; a second attach keeps the first.
        let _ = self.security.set(guard);
        Ok(findings)
    }
}

/// Bring the record up to date with what storage shows, raising alarms.
fn compare(r: &mut Record, f: &Facts) {
    let now = chrono::Utc::now().to_rfc3339();
    r.location = f.location.clone();
    if r.config != f.config.to_hex() {
        r.raise(Alarm {
            kind: AlarmKind::Config,
            id: None,
            snapshot: None,
            how: None,
            removed: None,
            noticed: now.clone(),
        });
    }
    // Removals that a command announced before the listing was taken: done
    // if the snapshot is gone, never happened if it is still there (the
    // command stopped first; if it is still running, it records the
    // removal again when it is done). Later ones are left to their command.
    let listing = &f.listing;
    let announced_before = |x: &record::Removed| f.removed_before.get(&x.id.0) == Some(&true);
    r.removed
        .retain(|x| !(x.pending && announced_before(x) && listing.contains(&x.id.0)));
    for x in r.removed.iter_mut() {
        if x.pending && announced_before(x) {
            x.pending = false;
        }
    }
    // Gone since the last look (only what was seen before the listing: a
    // snapshot written meanwhile by this host is not in it).
    let vanished: Vec<(Id, record::Seen)> = r
        .seen
        .iter()
        .filter(|(id, _)| !listing.contains(&id.0) && f.seen_before.contains(&id.0))
        .map(|(id, s)| (id.0, s.clone()))
        .collect();
    for (id, _) in &vanished {
        r.seen.remove(&HexId(*id));
    }
    for (id, s) in &f.loaded {
        if r.removal(id).is_none() {
            r.note_seen(*id, &s.time, group_of(s));
        }
    }
    // A snapshot whose disappearance raised an alarm is there again: nothing is lost.
    let returned: Vec<Alarm> = r
        .alarms
        .iter()
        .filter(|a| {
            matches!(a.kind, AlarmKind::Gone | AlarmKind::Deleted)
                && a.id
                    .is_some_and(|i| listing.contains(&i.0) && f.gone_alarms_before.contains(&i.0))
        })
        .cloned()
        .collect();
    r.alarms.retain(|a| !returned.contains(a));
    // Known removed when the listing was taken, yet listed: a replay.
    for id in listing {
        if f.removed_before.get(id) != Some(&false) {
            continue;
        }
        let Some(x) = r.removal(id).cloned() else {
            continue;
        };
        r.raise(Alarm {
            kind: AlarmKind::Back,
            id: Some(HexId(*id)),
            snapshot: f.loaded.get(id).map(describe),
            how: Some(x.how),
            removed: Some(x.when.clone()),
            noticed: now.clone(),
        });
    }
    // Per group, the vanished snapshots with nothing as new left: the newest
    // of them raises the alarm (the older ones go with it).
    r.forget_records |= f.forget_records_exist;
    let mut lost: std::collections::BTreeMap<String, Vec<(Id, record::Seen)>> = Default::default();
    for (id, s) in vanished {
        if r.removal(&id).is_some() {
            continue; // removed by this host meanwhile
        }
        if f.erased.contains(&id) {
            r.note_removed(id, How::Rewrite, false);
            continue;
        }
        if f.forgotten.contains(&id) {
            r.note_removed(id, How::Gone, false);
            continue;
        }
        if r.forget_records {
            // Every removal by a host with the key names the snapshot in a
            // forget record first: this one was deleted without the key.
            let a = r.snapshot_alarm(AlarmKind::Deleted, id, &s, &now);
            r.raise(a);
            continue;
        }
        let t = parse_time(&s.time);
        let newer_here = r
            .seen
            .values()
            .any(|o| o.group == s.group && parse_time(&o.time) >= t);
        if newer_here {
            r.note_removed(id, How::Gone, false);
        } else {
            lost.entry(s.group.clone()).or_default().push((id, s));
        }
    }
    for mut gone in lost.into_values() {
        gone.sort_by_key(|(id, s)| (parse_time(&s.time), *id));
        let Some((newest, s)) = gone.pop() else {
            continue;
        };
        let a = r.snapshot_alarm(AlarmKind::Gone, newest, &s, &now);
        r.raise(a);
        // The older ones are remembered as removed, so that their return is noticed.
        for (id, _) in gone {
            r.note_removed(id, How::Gone, false);
        }
    }
    r.drop_unused_groups();
}

impl Guard {
    /// The record's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A copy of the record as this process knows it.
    pub fn record(&self) -> Record {
        self.record.locked().clone()
    }

    /// Alarms kept.
    pub fn alarms(&self) -> Vec<Alarm> {
        self.record().alarms
    }

    /// Snapshots this host knows were removed: never `latest`, never a parent.
    pub fn distrusted(&self) -> IdSet {
        self.record().removed.iter().map(|x| x.id.0).collect()
    }

    /// Index files known superseded.
    pub fn superseded_index(&self) -> Vec<Id> {
        self.record().superseded_index.iter().map(|h| h.0).collect()
    }

    /// Change the record on disk and keep the result; a failure is warned
    /// about (a record that cannot be written weakens the detection, it
    /// must not fail the work) and returns false.
    fn change(&self, what: &str, f: impl FnOnce(&mut Record)) -> bool {
        let mut damaged = |e: &Error, aside: &Path| {
            (self.warn)(&format!(
                "{e}; it was moved to {} and a new record begins",
                aside.display()
            ))
        };
        let res = record::update(&self.dir, &mut damaged, |rec| {
            let r = rec.get_or_insert_with(|| self.record());
            f(r);
            r.clone()
        });
        match res {
            Ok(r) => {
                *self.record.locked() = r;
                true
            }
            Err(e) => {
                (self.warn)(&format!(
                    "could not update the security record in {} ({e}); {what}",
                    self.dir.display()
                ));
                false
            }
        }
    }

    /// This host is about to write snapshot `id`: it is no longer one it
    /// removed (and not a replay if it appears).
    pub fn writing(&self, id: &Id) {
        self.change(
            &format!(
                "snapshot {} may be reported as put back by someone else",
                id.short()
            ),
            |r| {
                r.removed.retain(|x| x.id.0 != *id);
                r.alarms
                    .retain(|a| !(a.kind == AlarmKind::Back && a.id == Some(HexId(*id))));
            },
        );
    }

    /// This host wrote a snapshot: remember it, so its disappearance is noticed.
    pub fn note_written(&self, id: &Id, s: &Snapshot) {
        self.change(
            &format!(
                "this host will not notice if snapshot {} disappears",
                id.short()
            ),
            |r| {
                r.removed.retain(|x| x.id.0 != *id);
                r.alarms
                    .retain(|a| !(a.kind == AlarmKind::Back && a.id == Some(HexId(*id))));
                r.note_seen(*id, &s.time, group_of(s));
            },
        );
    }

    /// Snapshots are about to be deleted (written before the deletion).
    pub fn removing(&self, ids: &[Id], how: How) {
        if ids.is_empty() {
            return;
        }
        self.change("this host will not notice if they come back", |r| {
            r.forget_records = true; // the caller stored one
            for id in ids {
                r.note_removed(*id, how, true);
            }
        });
    }

    /// Snapshots were deleted.
    pub fn removed(&self, ids: &[Id], how: How) {
        if ids.is_empty() {
            return;
        }
        self.change("this host will not notice if they come back", |r| {
            for id in ids {
                r.note_removed(*id, how, false);
                r.seen.remove(&HexId(*id));
            }
            r.drop_unused_groups();
        });
    }

    /// Remember superseded index ids (oldest first) not known yet.
    pub fn learn_superseded(&self, ids: Vec<Id>) {
        let known: IdSet = self.superseded_index().into_iter().collect();
        let new: Vec<Id> = ids.into_iter().filter(|i| !known.contains(i)).collect();
        if new.is_empty() {
            return;
        }
        self.change(
            "a superseded index file put back would not be noticed",
            |r| {
                r.note_superseded(new);
            },
        );
    }

    /// Snapshots that did not load: an alarm for each this host saw.
    pub fn unreadable(&self, ids: &[Id], repo: &Id) {
        let rec = self.record();
        if !ids.iter().any(|id| rec.seen.contains_key(&HexId(*id))) {
            return;
        }
        let now = chrono::Utc::now().to_rfc3339();
        let mut raised = Vec::new();
        self.change("the alarm is not kept", |r| {
            for id in ids {
                let Some(seen) = r.seen.get(&HexId(*id)).cloned() else {
                    continue;
                };
                let a = r.snapshot_alarm(AlarmKind::Unreadable, *id, &seen, &now);
                if r.raise(a.clone()) {
                    raised.push(a);
                }
            }
        });
        for a in raised {
            (self.warn)(&a.message(repo));
        }
    }

    /// Index files known superseded are back with nothing superseding them.
    pub fn index_went_back(&self, ids: &[Id], repo: &Id) {
        let now = chrono::Utc::now().to_rfc3339();
        let mut raised = Vec::new();
        self.change("the alarm is not kept", |r| {
            for id in ids {
                let a = Alarm {
                    kind: AlarmKind::Index,
                    id: Some(HexId(*id)),
                    snapshot: None,
                    how: None,
                    removed: None,
                    noticed: now.clone(),
                };
                if r.raise(a.clone()) {
                    raised.push(a);
                }
            }
        });
        for a in raised {
            (self.warn)(&a.message(repo));
        }
    }

    /// Take the repository as it is now: clear every alarm, trust the
    /// snapshots and index files it holds, and keep knowing what is gone.
    pub fn accept(&self, repo: &Repository) -> Result<Accepted> {
        let listing: IdSet = repo.snapshot_ids()?.into_iter().collect();
        let mut present = IdMap::default();
        for id in &listing {
            if let Ok(s) = repo.load_snapshot(id) {
                present.insert(*id, s);
            }
        }
        let (files, _) = repo.read_index_files()?;
        let files_sup: IdSet = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let stored_index: IdSet = files.iter().map(|(i, _)| *i).collect();
        let config = repo.config_hash.to_hex();
        let mut out = Accepted {
            snapshots: listing.len(),
            ..Accepted::default()
        };
        let ok = self.change("nothing was accepted", |r| {
            out.alarms_cleared = r.alarms.len();
            r.alarms.clear();
            r.config = config;
            let gone: Vec<Id> = r
                .seen
                .keys()
                .map(|h| h.0)
                .filter(|i| !listing.contains(i))
                .collect();
            for id in gone {
                r.note_removed(id, How::Accepted, false);
            }
            r.removed.retain(|x| !listing.contains(&x.id.0));
            r.seen.clear();
            r.groups.clear();
            for (id, s) in &present {
                r.note_seen(*id, &s.time, group_of(s));
            }
            r.superseded_index
                .retain(|i| !stored_index.contains(&i.0) || files_sup.contains(&i.0));
        });
        if !ok {
            return Err(Error::Failed(format!(
                "the security record in {} could not be written; nothing was accepted",
                self.dir.display()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
