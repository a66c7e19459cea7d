//! The kinds of stored objects (format.md §2): for each, the directory it
//! lives in, how its name is formed, the associated data it is sealed under
//! (format.md §3.1) and what a reader of all of them does with a damaged one.
//! Object names are built and parsed here and nowhere else.

use super::{from_cbor, to_cbor, BlobType, Id};
use crate::crypto::{open, seal};
use crate::error::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Associated-data strings (format.md §3.1). Each sealed object kind has its
/// own, so that no sealed value can be passed off as another kind's.
pub mod ad {
    pub const BLOB: &[u8] = b"ironvault/blob/v1";
    pub const PACK_HEADER: &[u8] = b"ironvault/pack-header/v1";
    pub const INDEX: &[u8] = b"ironvault/index/v1";
    pub const SNAPSHOT: &[u8] = b"ironvault/snapshot/v1";
    pub const CONFIG: &[u8] = b"ironvault/config/v1";
    pub const LOCK: &[u8] = b"ironvault/lock/v1";
    pub const DELETIONS: &[u8] = b"ironvault/deletions/v1";
    pub const KEY: &[u8] = b"ironvault/key/v1";
    pub const SCRUB: &[u8] = b"ironvault/scrub/v1";
    pub const ERASURE: &[u8] = b"ironvault/erasure/v1";
    pub const FORGOTTEN: &[u8] = b"ironvault/forgotten/v1";
}

/// The name of the repository configuration object (format.md §3.3).
pub const CONFIG_NAME: &str = "config";

/// A kind of object stored under a directory of its own, named by an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `keys/<id>` (format.md §3.2).
    Key,
    /// `packs/data/<xx>/<id>` and `packs/tree/<xx>/<id>` (format.md §5).
    Pack(BlobType),
    /// `index/<id>` (format.md §6).
    Index,
    /// `snapshots/<id>` (format.md §7.2).
    Snapshot,
    /// `locks/<id>` (format.md §9).
    Lock,
    /// `deletions/<id>`: prune phase-1 deletion lists (format.md §9).
    Deletions,
    /// `scrubs/<id>` (format.md §9.1).
    Scrub,
    /// `erasures/<id>` (format.md §9.2).
    Erasure,
    /// `forgotten/<id>` (format.md §9.3).
    Forgotten,
}

/// How an object's name is formed, and what a reader checks of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// The BLAKE3 (unkeyed) of the stored bytes, in 64 lowercase hex
    /// digits; with `checked`, readers compare the bytes with the name (and
    /// take a mismatch for damage). Names of another spelling are skipped.
    ContentHash { checked: bool },
    /// The keyed id of the plaintext (format.md §4), in 64 lowercase hex
    /// digits, checked once the object is opened. Names of another spelling
    /// are skipped.
    KeyedId,
    /// A random id in 64 lowercase hex digits; readers take every name
    /// listed in the directory, whatever its spelling.
    Random,
}

/// What reading all objects of a kind does with one that cannot be opened
/// or decoded (an object that vanished since the listing is always skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDamage {
    /// The whole read fails: the caller cannot act safely without it.
    Fail,
    /// It is left out without a word, as is one that cannot be read at
    /// all (nothing depends on it).
    Skip,
    /// It is returned beside the readable ones, for the caller to report.
    Report,
}

impl ObjectKind {
    /// Every kind, in the order of format.md §2.
    pub const ALL: [ObjectKind; 10] = [
        ObjectKind::Key,
        ObjectKind::Pack(BlobType::Data),
        ObjectKind::Pack(BlobType::Tree),
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::Lock,
        ObjectKind::Deletions,
        ObjectKind::Scrub,
        ObjectKind::Erasure,
        ObjectKind::Forgotten,
    ];

    /// The directory the objects live in, with its trailing slash (the
    /// prefix to list).
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Key => "keys/",
            ObjectKind::Pack(BlobType::Data) => "packs/data/",
            ObjectKind::Pack(BlobType::Tree) => "packs/tree/",
            ObjectKind::Index => "index/",
            ObjectKind::Snapshot => "snapshots/",
            ObjectKind::Lock => "locks/",
            ObjectKind::Deletions => "deletions/",
            ObjectKind::Scrub => "scrubs/",
            ObjectKind::Erasure => "erasures/",
            ObjectKind::Forgotten => "forgotten/",
        }
    }

    /// The associated data the object is sealed under. Key files are JSON
    /// with only the master key sealed (under `ad::KEY`), packs hold a
    /// sealed header and sealed blobs (`ad::PACK_HEADER`, `blob_ad`);
    /// snapshots add their id (`snapshot_ad`).
    pub fn ad(self) -> &'static [u8] {
        match self {
            ObjectKind::Key => ad::KEY,
            ObjectKind::Pack(_) => ad::PACK_HEADER,
            ObjectKind::Index => ad::INDEX,
            ObjectKind::Snapshot => ad::SNAPSHOT,
            ObjectKind::Lock => ad::LOCK,
            ObjectKind::Deletions => ad::DELETIONS,
            ObjectKind::Scrub => ad::SCRUB,
            ObjectKind::Erasure => ad::ERASURE,
            ObjectKind::Forgotten => ad::FORGOTTEN,
        }
    }

    /// How names of this kind are formed and checked (format.md §2).
    pub fn name_rule(self) -> NameRule {
        match self {
            ObjectKind::Key | ObjectKind::Pack(_) | ObjectKind::Index | ObjectKind::Forgotten => {
                NameRule::ContentHash { checked: true }
            }
            // Written like a forget record, but never checked on reading:
            // a scrub record only informs.
            ObjectKind::Scrub => NameRule::ContentHash { checked: false },
            ObjectKind::Snapshot => NameRule::KeyedId,
            ObjectKind::Lock | ObjectKind::Deletions | ObjectKind::Erasure => NameRule::Random,
        }
    }

    /// What reading every object of this kind does with a damaged one.
    ///
    /// * Deletion lists and erasure requests: `Fail`. Prune cannot tell
    ///   which packs another prune is deleting, or which blobs must go,
    ///   without every one; `check` reports the failure.
    /// * Scrub records: `Skip`. They only say what was read when; a
    ///   record that cannot be read (for any reason) is left out.
    /// * Locks: `Report`. An unreadable lock is listed as such: prune
    ///   treats it as stale, `unlock` removes it, `check` mentions it.
    /// * Key files, index files, snapshots and forget records: `Report`.
    ///   Their readers return the damaged ones in an error list
    ///   (`WithErrors`) or as a per-object error.
    /// * Packs: `Report` (read blob by blob; `check` reports each).
    pub fn on_damage(self) -> OnDamage {
        match self {
            ObjectKind::Deletions | ObjectKind::Erasure => OnDamage::Fail,
            ObjectKind::Scrub => OnDamage::Skip,
            ObjectKind::Key
            | ObjectKind::Pack(_)
            | ObjectKind::Index
            | ObjectKind::Snapshot
            | ObjectKind::Lock
            | ObjectKind::Forgotten => OnDamage::Report,
        }
    }

    /// The object name of `id`.
    pub fn name(self, id: &Id) -> String {
        let h = id.to_hex();
        match self {
            // Packs fan out by the first two hex digits (format.md §5).
            ObjectKind::Pack(_) => format!("{}{}/{}", self.dir(), &h[..2], h),
            _ => format!("{}{h}", self.dir()),
        }
    }

    /// A new object name with a random id (for `NameRule::Random` kinds).
    pub fn random_name(self) -> String {
        self.name(&Id::random())
    }

    /// The id an object name of this kind carries, if it is spelled as
    /// format.md §2 says (64 lowercase hex digits under the kind's directory).
    /// `NameRule::Random` kinds are read whatever their names (`name_rule`).
    pub fn parse_name(self, name: &str) -> Option<Id> {
        let rest = name.strip_prefix(self.dir())?;
        match self {
            // Readers take a pack's id from the last part of its name and do
            // not check the fan-out directory (`check` lists other names).
            ObjectKind::Pack(_) => rest.rsplit('/').next().and_then(Id::from_hex),
            _ => Id::from_hex(rest),
        }
    }

    /// The kind of an object name, by its directory alone.
    pub fn of_name(name: &str) -> Option<ObjectKind> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| name.starts_with(k.dir()))
    }
}

/// A stored object whose bytes are its CBOR plaintext sealed under the
/// master key and its kind's associated data (format.md §3.1): the one codec
/// of locks, deletion lists, scrub records, erasure requests and forget
/// records. Saving and reading them all is `crate::repo::objects`.
pub trait SealedObject: Serialize + DeserializeOwned {
    /// The kind of object this is.
    const KIND: ObjectKind;

    /// The stored bytes.
    fn seal(&self, master: &[u8; 32]) -> Result<Vec<u8>> {
        Ok(seal(master, Self::KIND.ad(), &to_cbor(self)?))
    }

    /// Open stored bytes; `name` names the object in errors.
    fn open(bytes: &[u8], master: &[u8; 32], name: &str) -> Result<Self> {
        from_cbor(&open(master, Self::KIND.ad(), bytes, name)?, name)
    }
}

/// Object name of a pack (`packs/<type>/<xx>/<id>`).
pub fn pack_name(t: BlobType, id: &Id) -> String {
    ObjectKind::Pack(t).name(id)
}

/// Associated data of a blob: prefix ‖ type byte ‖ id (format.md §3.1).
pub fn blob_ad(t: BlobType, id: &Id) -> Vec<u8> {
    let mut v = Vec::with_capacity(ad::BLOB.len() + 33);
    v.extend_from_slice(ad::BLOB);
    v.push(t.as_u8());
    v.extend_from_slice(&id.0);
    v
}

/// Associated data of a snapshot: prefix ‖ id (format.md §3.1).
pub fn snapshot_ad(id: &Id) -> Vec<u8> {
    let mut v = ad::SNAPSHOT.to_vec();
    v.extend_from_slice(&id.0);
    v
}

/// The id part of a key file's name (`keys/<id>` → `<id>`), for display;
/// a name of another form is returned as it is.
pub fn key_id_text(name: &str) -> &str {
    name.strip_prefix(ObjectKind::Key.dir()).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_other_spellings_are_not_objects() {
        let id = Id::random();
        for k in ObjectKind::ALL {
            let n = k.name(&id);
            assert_eq!(k.parse_name(&n), Some(id), "{n}");
            assert_eq!(ObjectKind::of_name(&n), Some(k), "{n}");
            assert_eq!(k.parse_name(&n.to_uppercase()), None);
            assert_eq!(k.parse_name(&n[..n.len() - 1]), None);
        }
        let h = id.to_hex();
        assert_eq!(
            ObjectKind::Pack(BlobType::Data).name(&id),
            format!("packs/data/{}/{h}", &h[..2])
        );
        assert_eq!(
            ObjectKind::Pack(BlobType::Tree).parse_name(&format!("packs/tree/zz/{h}")),
            Some(id)
        );
        assert_eq!(
            ObjectKind::Pack(BlobType::Tree).parse_name("packs/tree/zz/x"),
            None
        );
        assert_eq!(ObjectKind::Snapshot.name(&id), format!("snapshots/{h}"));
        assert_eq!(key_id_text(&ObjectKind::Key.name(&id)), h);
    }
}
