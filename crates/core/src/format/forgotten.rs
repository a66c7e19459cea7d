//! Forget records (format.md §9.3): which snapshots a command removed,
//! written before it deletes them, so that every host can tell a removal
//! by someone holding the key from a deletion by someone with only
//! storage access.

use super::kind::{ObjectKind, SealedObject};
use super::Id;
use serde::{Deserialize, Serialize};

/// At most this many snapshot ids in one record (a removal of more writes several).
pub const MAX_PER_RECORD: usize = 4096;

/// A forget record's plaintext (`forgotten/<record id>`, format.md §9.3): a CBOR map.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ForgetRecord {
    /// RFC 3339 time of the removal.
    pub created: String,
    /// Host that removed them.
    pub hostname: String,
    /// `forget`, `rewrite` or `repair`.
    pub how: String,
    /// The snapshots removed.
    pub snapshots: Vec<Id>,
}

impl SealedObject for ForgetRecord {
    const KIND: ObjectKind = ObjectKind::Forgotten;
}
