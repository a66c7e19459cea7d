//! The local security record of one repository (format.md §11): what this
//! host saw of the repository, kept on the host and not in the storage, so
//! that someone who can only write to the storage cannot rewrite it.
//!
//! It lives in `<state root>/security/<repository id>/record.json` (directory
//! 0700, file 0600). Every change is a read-modify-write under an `flock` on
//! the `lock` file beside it, so two commands on one host never lose each
//! other's changes, and is written to a temporary file, `fsync`ed, renamed
//! over the record and the directory `fsync`ed, so a crash leaves the old
//! record or the new one, never a mix.

use crate::error::{Error, Result};
use crate::format::Id;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Version of the record's layout; a newer one is refused, not rewritten.
pub const RECORD_VERSION: u32 = 1;
/// Removed snapshots remembered at most (the oldest removals go first).
pub const MAX_REMOVED: usize = 10_000;
/// Superseded index ids remembered at most (the oldest learned go first).
pub const MAX_SUPERSEDED: usize = 16_384;

/// The default state root: `$IRONVAULT_STATE_DIR`, else
/// `$XDG_STATE_HOME/ironvault`, else `~/.local/state/ironvault`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("IRONVAULT_STATE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return Some(PathBuf::from(d).join("ironvault"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/ironvault"))
}

/// The directory of one repository's record under a state root.
pub fn record_dir(root: &Path, repository: &Id) -> PathBuf {
    root.join("security").join(repository.to_hex())
}

/// An id written as 64 hex digits (the record is JSON, for people to read).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct HexId(pub Id);

impl Serialize for HexId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_hex())
    }
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::from_hex(&s)
            .map(HexId)
            .ok_or_else(|| serde::de::Error::custom("an id must be 64 hex digits"))
    }
}

/// Snapshots with the same host and paths: the unit whose newest snapshot
/// must not disappear.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub hostname: String,
    pub paths: Vec<String>,
}

impl Group {
    /// The key of the group in `Record::groups`: 16 hex digits of a hash.
    pub fn key(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.hostname.as_bytes());
        let mut paths = self.paths.clone();
        paths.sort();
        for p in &paths {
            h.update(&[0]);
            h.update(p.as_bytes());
        }
        hex::encode(&h.finalize().as_bytes()[..8])
    }
}

/// A snapshot this host saw in the repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The snapshot's time, as it records it.
    pub time: String,
    /// Its group's key.
    pub group: String,
}

/// Why a snapshot left the repository, as this host knows it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// `forget` on this host.
    Forget,
    /// `rewrite` (here, or named by another host's erasure request).
    Rewrite,
    /// `repair snapshots --forget` on this host.
    Repair,
    /// Gone since this host last looked, and not its group's newest
    /// (another host's `forget` does this).
    Gone,
    /// Its disappearance raised an alarm that the operator accepted.
    Accepted,
}

impl How {
    /// "forgotten on this host", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            How::Forget => "forgotten on this host",
            How::Rewrite => "rewritten (its erased files left with it)",
            How::Repair => "replaced by a repaired copy on this host",
            How::Gone => "seen gone (forgotten by another host)",
            How::Accepted => "accepted as gone",
        }
    }
}

/// A snapshot removed from the repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    pub id: HexId,
    pub how: How,
    /// When this host removed it or saw it gone (RFC 3339).
    pub when: String,
    /// Written before the object is deleted; cleared after. A pending entry
    /// whose snapshot is still there belongs to a removal that never
    /// happened (the command stopped first) and is dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// How a snapshot is described in an alarm.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Described {
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
}

/// What went wrong.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlarmKind {
    /// The newest snapshot of a group disappeared: the repository went back in time.
    Gone,
    /// A snapshot this host knows was removed is back.
    Back,
    /// The config object differs from the one first seen.
    Config,
    /// An index file this host knows was superseded is back, and no index
    /// file in the repository supersedes it any more.
    Index,
    /// A snapshot this host saw is gone and no forget record names it:
    /// deleted by someone without the key.
    Deleted,
    /// A snapshot this host saw cannot be read any more (damaged, or
    /// replaced by other bytes): `latest` skips it.
    Unreadable,
}

/// A problem found, kept until the operator accepts the repository's state
/// (`ironvault security accept`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub kind: AlarmKind,
    /// The snapshot or index file concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<HexId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Described>,
    /// For `back`: how and when it was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<How>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
    /// When this host first noticed it (RFC 3339).
    pub noticed: String,
}

/// What one host knows of one repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub version: u32,
    pub repository: HexId,
    /// BLAKE3 of the `config` object as first seen (hex).
    pub config: String,
    /// Where this host last opened it.
    pub location: String,
    /// When this host first opened it (RFC 3339).
    pub first_contact: String,
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    /// Snapshots in the repository when this host last looked, or written since.
    #[serde(default)]
    pub seen: BTreeMap<HexId, Seen>,
    /// Snapshots removed, oldest first.
    #[serde(default)]
    pub removed: Vec<Removed>,
    /// Index files known to be superseded, oldest first.
    #[serde(default)]
    pub superseded_index: Vec<HexId>,
    /// The repository has forget records (format.md §9.3): a snapshot gone
    /// without one naming it was deleted by someone without the key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forget_records: bool,
    #[serde(default)]
    pub alarms: Vec<Alarm>,
}

impl Record {
    /// A record for a repository seen for the first time.
    pub fn new(repository: Id, config: &Id, location: &str) -> Record {
        Record {
            version: RECORD_VERSION,
            repository: HexId(repository),
            config: config.to_hex(),
            location: location.to_string(),
            first_contact: chrono::Utc::now().to_rfc3339(),
            groups: BTreeMap::new(),
            seen: BTreeMap::new(),
            removed: Vec::new(),
            superseded_index: Vec::new(),
            forget_records: false,
            alarms: Vec::new(),
        }
    }

    /// The entry of a removed snapshot.
    pub fn removal(&self, id: &Id) -> Option<&Removed> {
        self.removed.iter().find(|r| r.id.0 == *id)
    }

    /// Remember a removal (replacing an earlier entry for the same id).
    pub fn note_removed(&mut self, id: Id, how: How, pending: bool) {
        self.removed.retain(|r| r.id.0 != id);
        self.removed.push(Removed {
            id: HexId(id),
            how,
            when: chrono::Utc::now().to_rfc3339(),
            pending,
        });
        if self.removed.len() > MAX_REMOVED {
            let extra = self.removed.len() - MAX_REMOVED;
            self.removed.drain(..extra);
        }
    }

    /// Remember a snapshot as present, with its group.
    pub fn note_seen(&mut self, id: Id, time: &str, group: Group) {
        let key = group.key();
        self.groups.entry(key.clone()).or_insert(group);
        self.seen.insert(
            HexId(id),
            Seen {
                time: time.to_string(),
                group: key,
            },
        );
    }

    /// Drop groups no seen snapshot belongs to.
    pub fn drop_unused_groups(&mut self) {
        let used: std::collections::HashSet<&String> =
            self.seen.values().map(|s| &s.group).collect();
        let keep: Vec<String> = self
            .groups
            .keys()
            .filter(|k| used.contains(k))
            .cloned()
            .collect();
        self.groups.retain(|k, _| keep.contains(k));
    }

    /// Remember superseded index ids (oldest first); returns true if any was new.
    pub fn note_superseded(&mut self, ids: impl IntoIterator<Item = Id>) -> bool {
        let mut known: std::collections::HashSet<Id> =
            self.superseded_index.iter().map(|h| h.0).collect();
        let before = self.superseded_index.len();
        for id in ids {
            if known.insert(id) {
                self.superseded_index.push(HexId(id));
            }
        }
        let grew = self.superseded_index.len() > before;
        if self.superseded_index.len() > MAX_SUPERSEDED {
            let extra = self.superseded_index.len() - MAX_SUPERSEDED;
            self.superseded_index.drain(..extra);
        }
        grew
    }

    /// An alarm about snapshot `id`, described as this record saw it.
    pub fn snapshot_alarm(&self, kind: AlarmKind, id: Id, seen: &Seen, noticed: &str) -> Alarm {
        Alarm {
            kind,
            id: Some(HexId(id)),
            snapshot: self.groups.get(&seen.group).map(|g| Described {
                time: seen.time.clone(),
                hostname: g.hostname.clone(),
                paths: g.paths.clone(),
            }),
            how: None,
            removed: None,
            noticed: noticed.to_string(),
        }
    }

    /// Add an alarm unless one of the same kind and id is already kept.
    pub fn raise(&mut self, alarm: Alarm) -> bool {
        let dup = self
            .alarms
            .iter()
            .any(|a| a.kind == alarm.kind && a.id == alarm.id);
        if !dup {
            self.alarms.push(alarm);
        }
        !dup
    }

    /// Encode as JSON (one field per line: the file is for people too).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("encoding the security record: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Decode; `what` names the file in errors.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Record> {
        let r: Record = serde_json::from_slice(bytes)
            .map_err(|e| Error::damaged(what, format!("not a security record: {e}")))?;
        if r.version > RECORD_VERSION {
            return Err(Error::Failed(format!(
                "{what} was written by a newer ironvault (record version {}, this one reads {RECORD_VERSION}); upgrade ironvault",
                r.version
            )));
        }
        Ok(r)
    }
}

/// The record file of a record directory.
pub fn record_file(dir: &Path) -> PathBuf {
    dir.join("record.json")
}

/// Read the record, if there is one (no lock: a reader sees the old or the
/// new file, both whole).
pub fn load(dir: &Path) -> Result<Option<Record>> {
    let file = record_file(dir);
    match std::fs::read(&file) {
        Ok(b) => Record::decode(&b, &file.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&file, e)),
    }
}

/// Create `dir` (and its parents) with mode 0700 where missing, and make
/// sure `dir` itself is 0700.
fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Read-modify-write the record under the directory's lock. `change` gets
/// the record as stored (None if there is none; a damaged one is moved
/// aside first and reported through `damaged`) and may replace it; the file
/// is written only if its bytes change.
pub fn update<R>(
    dir: &Path,
    damaged: &mut dyn FnMut(&Error, &Path),
    change: impl FnOnce(&mut Option<Record>) -> R,
) -> Result<R> {
    private_dir(dir)?;
    let lock_path = dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(&lock_path, std::io::Error::last_os_error()));
    }
    let file = record_file(dir);
    let old = match std::fs::read(&file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&file, e)),
    };
    let mut rec = match &old {
        None => None,
        Some(b) => match Record::decode(b, &file.display().to_string()) {
            Ok(r) => Some(r),
            Err(e @ Error::Damaged { .. }) => {
                let aside = dir.join(format!(
                    "record.json.damaged-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
                ));
                std::fs::rename(&file, &aside).map_err(|e| Error::io(&file, e))?;
                damaged(&e, &aside);
                None
            }
            Err(e) => return Err(e),
        },
    };
    let out = change(&mut rec);
    if let Some(r) = &rec {
        let bytes = r.encode()?;
        if old.as_deref() != Some(&bytes[..]) {
            write_atomically(dir, &file, &bytes)?;
        }
    }
    drop(lock);
    Ok(out)
}

/// Write `bytes` to `file` in `dir`: temporary file, fsync, rename, fsync of the directory.
fn write_atomically(dir: &Path, file: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(
        "record.json.tmp-{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(file, e));
    }
    Ok(())
}

/// Every record under a state root (for finding which repository a location
/// held before); unreadable ones are skipped.
pub fn all_records(root: &Path) -> Vec<Record> {
    let Ok(rd) = std::fs::read_dir(root.join("security")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| load(&e.path()).ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_id() -> impl Strategy<Value = Id> {
        any::<[u8; 32]>().prop_map(Id)
    }

    fn arb_how() -> impl Strategy<Value = How> {
        prop_oneof![
            Just(How::Forget),
            Just(How::Rewrite),
            Just(How::Repair),
            Just(How::Gone),
            Just(How::Accepted)
        ]
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            arb_id(),
            arb_id(),
            ".{0,20}",
            proptest::collection::vec((arb_id(), ".{0,12}", ".{0,8}", vec![".{0,10}"; 2]), 0..6),
            proptest::collection::vec((arb_id(), arb_how(), any::<bool>()), 0..6),
            proptest::collection::vec(arb_id(), 0..6),
            proptest::collection::vec((arb_id(), any::<bool>()), 0..4),
        )
            .prop_map(|(repo, cfg, loc, seen, removed, sup, alarms)| {
                let mut r = Record::new(repo, &cfg, &loc);
                for (id, time, host, paths) in seen {
                    r.note_seen(
                        id,
                        &time,
                        Group {
                            hostname: host,
                            paths,
                        },
                    );
                }
                for (id, how, pending) in removed {
                    r.note_removed(id, how, pending);
                }
                r.note_superseded(sup);
                for (id, gone) in alarms {
                    r.raise(Alarm {
                        kind: if gone {
                            AlarmKind::Gone
                        } else {
                            AlarmKind::Back
                        },
                        id: Some(HexId(id)),
                        snapshot: gone.then(|| Described {
                            time: "2026-12-01T10:00:00+01:00".into(),
                            hostname: "erp01".into(),
                            paths: vec!["/srv".into()],
                        }),
                        how: (!gone).then_some(How::Forget),
                        removed: (!gone).then(|| "2026-11-02T00:00:00Z".into()),
                        noticed: "2026-12-02T00:00:00Z".into(),
                    });
                }
                r
            })
    }

    proptest! {
        #[test]
        fn record_round_trip(r in arb_record()) {
            let b = r.encode().unwrap();
            prop_assert_eq!(Record::decode(&b, "r").unwrap(), r);
            // A torn file is refused as damaged, never half read.
            let torn = matches!(Record::decode(&b[..b.len() / 2], "r"), Err(Error::Damaged { .. }));
            prop_assert!(torn);
        }
    }

    #[test]
    fn newer_record_versions_are_refused_not_taken_for_damage() {
        let mut r = Record::new(Id([1; 32]), &Id([2; 32]), "/srv/backup");
        r.version = RECORD_VERSION + 1;
        let e = Record::decode(&r.encode().unwrap(), "f").unwrap_err();
        assert!(e.to_string().contains("newer ironvault"), "{e}");
    }

    #[test]
    fn lists_are_bounded_oldest_first() {
        let mut r = Record::new(Id([1; 32]), &Id([2; 32]), "/r");
        let ids: Vec<Id> = (0..MAX_SUPERSEDED as u32 + 10)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&i.to_le_bytes());
                Id(b)
            })
            .collect();
        assert!(r.note_superseded(ids.iter().copied()));
        assert_eq!(r.superseded_index.len(), MAX_SUPERSEDED);
        assert_eq!(r.superseded_index[0].0, ids[10], "the oldest went first");
        assert!(!r.note_superseded(ids[20..30].iter().copied()));
        for id in &ids[..MAX_REMOVED + 5] {
            r.note_removed(*id, How::Gone, false);
        }
        assert_eq!(r.removed.len(), MAX_REMOVED);
        assert_eq!(r.removed[0].id.0, ids[5]);
    }

    #[test]
    fn updates_are_atomic_private_and_never_lost() {
        let d = tempfile::tempdir().unwrap();
        let dir = record_dir(d.path(), &Id([7; 32]));
        let mut no_damage = |e: &Error, _: &Path| panic!("{e}");
        update(&dir, &mut no_damage, |r| {
            *r = Some(Record::new(Id([7; 32]), &Id([8; 32]), "/r"));
        })
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&record_file(&dir)), 0o600);
        // Concurrent writers (each its own open file, as two processes
        // would have): every change lands.
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..10u8 {
                        let mut no_damage = |e: &Error, _: &Path| panic!("{e}");
                        update(&dir, &mut no_damage, |r| {
                            r.as_mut().unwrap().note_removed(
                                Id([t * 16 + i; 32]),
                                How::Forget,
                                false,
                            )
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(load(&dir).unwrap().unwrap().removed.len(), 80);
        // A temporary file left by a crash is ignored; an unchanged record
        // is not written again.
        std::fs::write(dir.join("record.json.tmp-0011"), b"{\"torn").unwrap();
        let before = std::fs::metadata(record_file(&dir))
            .unwrap()
            .modified()
            .unwrap();
        update(&dir, &mut no_damage, |_| ()).unwrap();
        assert_eq!(
            std::fs::metadata(record_file(&dir))
                .unwrap()
                .modified()
                .unwrap(),
            before
        );
        assert_eq!(load(&dir).unwrap().unwrap().removed.len(), 80);
        // A write that fails (here its rename) leaves the old record whole
        // and no temporary file behind.
        assert!(write_atomically(&dir, &dir.join("gone/record.json"), b"{}").is_err());
        assert_eq!(load(&dir).unwrap().unwrap().removed.len(), 80);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.iter().filter(|n| n.contains(".tmp-")).count(),
            1,
            "{names:?}"
        );
        // A damaged record is moved aside and reported, and a new one begins.
        std::fs::write(record_file(&dir), b"{\"version\": 1, \"repo").unwrap();
        let mut reported = Vec::new();
        let mut note = |e: &Error, p: &Path| reported.push((e.to_string(), p.to_path_buf()));
        let was = update(&dir, &mut note, |r| r.is_some()).unwrap();
        assert!(!was);
        assert_eq!(reported.len(), 1);
        assert!(reported[0].1.exists(), "kept for inspection");
    }
}
