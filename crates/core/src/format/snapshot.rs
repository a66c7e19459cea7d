//! Snapshots (format.md §7.2): CBOR, sealed, named by the keyed id of the plaintext.

use super::Id;
use serde::{Deserialize, Serialize};

/// What a backup did, stored with its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub errors: u64,
    pub changed_during_read: u64,
    pub started: String,
    pub finished: String,
    /// Signs of a mass encryption (format.md §7.2); absent in snapshots
    /// written before they were recorded, and in those of `--stdin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Signals>,
}

/// What a backup saw that an attack which encrypts files in place leaves
/// behind, against the parent snapshot (format.md §7.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signals {
    /// Files and other non-directories the parent had in a directory still
    /// backed up, that are gone.
    pub files_deleted: u64,
    /// New files named like a gone file of the same directory with another
    /// extension (`report.docx` → `report.docx.locked`, `report.enc`).
    pub extensions_renamed: u64,
    /// New files named like a ransom note (`backup::signals::RANSOM_NOTE_WORDS`).
    pub ransom_notes: u64,
    /// Plain bytes of the new data blobs, and of those that did not compress.
    pub data_added_raw: u64,
    pub data_added_incompressible: u64,
    /// Why the backup judged itself suspect (then it carries the tag
    /// `suspect`), when it was asked to judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub time: String,
    pub tree: Id,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    pub program_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

impl Snapshot {
    /// The recorded time, parsed (RFC 3339 with offset).
    pub fn parsed_time(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        chrono::DateTime::parse_from_rfc3339(&self.time).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{from_cbor, to_cbor};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshot_round_trip(paths in proptest::collection::vec(".*", 0..4), tags in proptest::collection::vec("[a-z]{0,8}", 0..3), host in ".*", parent in proptest::option::of(any::<[u8; 32]>())) {
            let s = Snapshot {
                version: 1, time: "2026-11-26T12:00:00+01:00".into(), tree: Id([7; 32]), paths, hostname: host,
                username: "root".into(), uid: 0, gid: 0, tags, parent: parent.map(Id),
                program_version: "ironvault 0.1.0".into(), summary: Some(Summary::default()),
            };
            let b = to_cbor(&s).unwrap();
            prop_assert_eq!(from_cbor::<Snapshot>(&b, "s").unwrap(), s);
        }
    }
}
