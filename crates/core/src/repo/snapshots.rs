//! Snapshots: the last object a backup writes, named by the keyed id of its
//! plaintext (format.md §7.2), and how users name them (`latest`, ids, prefixes).

use super::security::How;
use super::{Repository, WithErrors};
use crate::backend::is_not_found;
use crate::crypto::{open, seal};
use crate::error::{Error, Result};
use crate::format::forgotten::{ForgetRecord, MAX_PER_RECORD};
use crate::format::id::IdSet;
use crate::format::kind::snapshot_ad;
use crate::format::snapshot::Snapshot;
use crate::format::{from_cbor, to_cbor, Id, ObjectKind};

impl Repository {
    /// Store a snapshot (last step of a backup); returns its id.
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        self.save_snapshot_plain(&to_cbor(s)?)
    }

    /// Store a snapshot's plaintext exactly as given (copying between
    /// related repositories keeps the id); returns its id.
    pub fn save_snapshot_plain(&self, plain: &[u8]) -> Result<Id> {
        let id = self.keys.snapshot_id(plain);
        let sealed = seal(&self.master, &snapshot_ad(&id), plain);
        // Said before the write: a put that lands although this process
        // never hears so (a lost answer, a kill) must not look like a
        // replay of a snapshot this host had removed (copy writes the same
        // ids again).
        if let Some(g) = self.security() {
            g.writing(&id);
        }
        self.backend.put(&ObjectKind::Snapshot.name(&id), &sealed)?;
        if let Some(g) = self.security() {
            if let Ok(s) = from_cbor::<Snapshot>(plain, "snapshot") {
                g.note_written(&id, &s);
            }
        }
        Ok(id)
    }

    /// Delete snapshot objects, telling this host's security record first
    /// (so that their return is noticed); `each` is called after each one.
    ///
    /// First a forget record naming them is stored (format.md §9.3): if it
    /// cannot be written, nothing is deleted. Other hosts tell such a
    /// removal from a deletion by someone with only storage access by it.
    pub fn remove_snapshots(&self, ids: &[Id], how: How, each: &mut dyn FnMut(&Id)) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write_forget_records(ids, how)?;
        let guard = self.security();
        if let Some(g) = guard {
            g.removing(ids, how);
        }
        let mut done = Vec::with_capacity(ids.len());
        let res = ids.iter().try_for_each(|id| {
            self.backend.delete(&ObjectKind::Snapshot.name(id))?;
            done.push(*id);
            each(id);
            Ok(())
        });
        if let Some(g) = guard {
            g.removed(&done, how);
        }
        res
    }

    /// Snapshots this host knows were removed (none without a security record).
    ///
    /// Also every snapshot a forget record names (format.md §9.3): a host
    /// with the key removed it, so if it is listed it was put back, or its
    /// removal was interrupted or is running; either way it is not current.
    /// This holds on hosts that never saw the removal, without an alarm
    /// (a removal still running would make that a false one).
    pub fn distrusted_snapshots(&self) -> IdSet {
        let mut out: IdSet = self.security().map(|g| g.distrusted()).unwrap_or_default();
        out.extend(self.forgotten_snapshots());
        out
    }

    /// Snapshots named by forget records (format.md §9.3); none if they
    /// cannot be read.
    pub fn forgotten_snapshots(&self) -> IdSet {
        match self.forget_records() {
            Ok((recs, _)) => recs.into_iter().flat_map(|(_, r)| r.snapshots).collect(),
            Err(_) => IdSet::default(),
        }
    }

    /// Read one snapshot's verified plaintext (CBOR).
    pub fn load_snapshot_plain(&self, id: &Id) -> Result<Vec<u8>> {
        let name = ObjectKind::Snapshot.name(id);
        let bytes = match self.backend.get(&name) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Err(Error::SnapshotNotFound(id.to_hex())),
            Err(e) => return Err(e),
        };
        let plain = open(&self.master, &snapshot_ad(id), &bytes, &name)?;
        if self.keys.snapshot_id(&plain) != *id {
            return Err(Error::damaged(name, "content does not match its id"));
        }
        Ok(plain)
    }

    /// Read and verify one snapshot.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let plain = self.load_snapshot_plain(id)?;
        from_cbor(&plain, &format!("snapshot {}", id.short()))
    }

    /// Ids of all snapshot objects.
    pub fn snapshot_ids(&self) -> Result<Vec<Id>> {
        Ok(self
            .backend
            .list(ObjectKind::Snapshot.dir())?
            .iter()
            .filter_map(|o| ObjectKind::Snapshot.parse_name(&o.name))
            .collect())
    }

    /// Store forget records naming `ids` (format.md §9.3).
    fn write_forget_records(&self, ids: &[Id], how: How) -> Result<()> {
        let how = match how {
            How::Forget => "forget",
            How::Rewrite => "rewrite",
            How::Repair => "repair",
            How::Gone | How::Accepted => "forget",
        };
        for part in ids.chunks(MAX_PER_RECORD) {
            let rec = ForgetRecord {
                created: chrono::Utc::now().to_rfc3339(),
                hostname: crate::host::hostname(),
                how: how.to_string(),
                snapshots: part.to_vec(),
            };
            self.save_forget_record(&rec)?;
        }
        Ok(())
    }

    /// All readable snapshots, oldest first; unreadable ones are returned as errors.
    pub fn list_snapshots(&self) -> Result<WithErrors<(Id, Snapshot)>> {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        let mut unreadable = Vec::new();
        for id in self.snapshot_ids()? {
            match self.load_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                // Vanished since the listing (a forget beside us): not an error.
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    // Damage, not a storage error that may pass (a network fault).
                    if matches!(e, Error::Damaged { .. }) {
                        unreadable.push(id);
                    }
                    errs.push(e);
                }
            }
        }
        // One this host saw readable is damaged or replaced: `latest` now
        // skips it, so the repository looks older than it is (format.md §11).
        if let Some(g) = self.security() {
            g.unreadable(&unreadable, &self.config.id);
        }
        out.sort_by(|a, b| {
            let ta = a.1.parsed_time();
            let tb = b.1.parsed_time();
            ta.cmp(&tb).then(a.0.cmp(&b.0))
        });
        Ok((out, errs))
    }

    /// Resolve `latest`, a full id or a unique prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<(Id, Snapshot)> {
        if spec == "latest" {
            // A snapshot this host knows was removed and that is back is
            // never `latest` (format.md §11).
            let (all, _) = self.list_snapshots()?;
            let distrusted = self.distrusted_snapshots();
            return all
                .into_iter()
                .rfind(|(id, _)| !distrusted.contains(id))
                .ok_or(Error::NoSnapshots);
        }
        let spec_l = spec.to_ascii_lowercase();
        if spec_l.is_empty() || !spec_l.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound(spec.into()));
        }
        let matches: Vec<Id> = self
            .snapshot_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_l))
            .collect();
        match matches.len() {
            0 => Err(Error::SnapshotNotFound(spec.into())),
            1 => Ok((matches[0], self.load_snapshot(&matches[0])?)),
            _ => Err(Error::SnapshotAmbiguous(
                spec.into(),
                matches
                    .iter()
                    .map(|m| m.short())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }
}
