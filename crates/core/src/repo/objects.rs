//! Saving a sealed object and reading every object of its kind
//! (`crate::format::SealedObject`): the one place where names are chosen
//! and checked by the kind's `NameRule`, and where a damaged object is
//! handled by the kind's `OnDamage` (see `ObjectKind::on_damage` for the
//! policy of each kind and why). Below them, the repository's readers and
//! writers of each such kind, which add nothing but their types.

use super::{Repository, WithErrors};
use crate::backend::{is_not_found, Backend, ObjectInfo};
use crate::error::{Error, Result};
use crate::format::deletions::Deletions;
use crate::format::erasure::ErasureRequest;
use crate::format::forgotten::ForgetRecord;
use crate::format::kind::{NameRule, OnDamage};
use crate::format::scrub::ScrubRecord;
use crate::format::{Id, SealedObject};

/// One listed object and what reading it gave.
pub struct Listed<T> {
    /// As the listing showed it (name, size, the storage's time stamp).
    pub info: ObjectInfo,
    /// The id its name carries (None for a `NameRule::Random` kind's name
    /// of another spelling).
    pub id: Option<Id>,
    /// The object, or why it cannot be read (only for `OnDamage::Report`
    /// kinds: others fail or skip instead).
    pub item: Result<T>,
}

/// Seal `value` and store it under a new name; returns the name's id.
pub fn save<T: SealedObject>(b: &dyn Backend, master: &[u8; 32], value: &T) -> Result<Id> {
    let sealed = value.seal(master)?;
    let id = match T::KIND.name_rule() {
        NameRule::ContentHash { .. } => Id::hash_of(&sealed),
        NameRule::Random => Id::random(),
        // Keyed ids need the id key: snapshots are saved by the repository.
        NameRule::KeyedId => {
            return Err(Error::Internal(format!(
                "{} objects are not saved by objects::save",
                T::KIND.dir()
            )))
        }
    };
    b.put(&T::KIND.name(&id), &sealed)?;
    Ok(id)
}

/// Read every object of `T`'s kind, in listing order. Objects that vanished
/// since the listing are skipped; damaged ones as `T::KIND.on_damage()` says.
pub fn load_all<T: SealedObject>(b: &dyn Backend, master: &[u8; 32]) -> Result<Vec<Listed<T>>> {
    let kind = T::KIND;
    let policy = kind.on_damage();
    let mut out = Vec::new();
    for o in b.list(kind.dir())? {
        let named = kind.parse_name(&o.name);
        if named.is_none() && kind.name_rule() != NameRule::Random {
            continue;
        }
        let bytes = match b.get(&o.name) {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => continue,
            Err(_) if policy == OnDamage::Skip => continue,
            Err(e) => return Err(e),
        };
        let item = if kind.name_rule() == (NameRule::ContentHash { checked: true })
            && named != Some(Id::hash_of(&bytes))
        {
            Err(Error::damaged(
                &o.name,
                "content does not match its name (changed or truncated)",
            ))
        } else {
            T::open(&bytes, master, &o.name)
        };
        match (item, policy) {
            (Err(e), OnDamage::Fail) => return Err(e),
            (Err(_), OnDamage::Skip) => continue,
            (item, _) => out.push(Listed {
                info: o,
                id: named,
                item,
            }),
        }
    }
    Ok(out)
}

impl Repository {
    /// Every prune phase-1 deletion list (format.md §9), with its object name.
    pub fn deletion_lists(&self) -> Result<Vec<(String, Deletions)>> {
        Ok(load_all::<Deletions>(self.backend.as_ref(), &self.master)?
            .into_iter()
            .filter_map(|l| Some((l.info.name, l.item.ok()?)))
            .collect())
    }

    /// Store a deletion list; returns its object name.
    pub fn save_deletion_list(&self, d: &Deletions) -> Result<String> {
        Ok(Deletions::KIND.name(&save(self.backend.as_ref(), &self.master, d)?))
    }

    /// Every erasure request (format.md §9.2), with its object name.
    pub fn erasure_requests(&self) -> Result<Vec<(String, ErasureRequest)>> {
        Ok(
            load_all::<ErasureRequest>(self.backend.as_ref(), &self.master)?
                .into_iter()
                .filter_map(|l| Some((l.info.name, l.item.ok()?)))
                .collect(),
        )
    }

    /// Store an erasure request; returns its object name.
    pub fn save_erasure_request(&self, q: &ErasureRequest) -> Result<String> {
        Ok(ErasureRequest::KIND.name(&save(self.backend.as_ref(), &self.master, q)?))
    }

    /// Store a scrub record (format.md §9.1); returns its id (the hash of
    /// the stored bytes).
    pub fn save_scrub_record(&self, r: &ScrubRecord) -> Result<Id> {
        save(self.backend.as_ref(), &self.master, r)
    }

    /// All scrub records, oldest first (unreadable ones are skipped).
    pub fn scrub_records(&self) -> Result<Vec<(Id, ScrubRecord)>> {
        let mut out: Vec<(Id, ScrubRecord)> =
            load_all::<ScrubRecord>(self.backend.as_ref(), &self.master)?
                .into_iter()
                .filter_map(|l| Some((l.id?, l.item.ok()?)))
                .collect();
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time));
        Ok(out)
    }

    /// Store a forget record (format.md §9.3).
    pub(super) fn save_forget_record(&self, r: &ForgetRecord) -> Result<Id> {
        save(self.backend.as_ref(), &self.master, r)
    }

    /// Every forget record (format.md §9.3); a damaged one is returned in the
    /// error list (a record that vanished meanwhile is skipped).
    pub fn forget_records(&self) -> Result<WithErrors<(Id, ForgetRecord)>> {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for l in load_all::<ForgetRecord>(self.backend.as_ref(), &self.master)? {
            match (l.id, l.item) {
                (Some(id), Ok(r)) => out.push((id, r)),
                (_, Err(e)) => errs.push(e),
                // load_all skips names that are not ids for this kind.
                (None, Ok(_)) => {}
            }
        }
        Ok((out, errs))
    }
}
