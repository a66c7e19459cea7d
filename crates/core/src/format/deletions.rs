//! Deletion lists (`deletions/<random id>`, format.md §9): the packs a prune
//! in phase 1 means to delete. Backups keep away from them until the list
//! is gone.

use super::kind::{ObjectKind, SealedObject};
use super::Id;
use serde::{Deserialize, Serialize};

/// A prune phase-1 deletion list (format.md §9).
#[derive(Serialize, Deserialize)]
pub struct Deletions {
    pub created: String,
    pub packs: Vec<Id>,
    /// The writing prune's lock object (`locks/<id>`): while that lock is
    /// live the prune is running; once it is gone or stale, the list is
    /// abandoned and the next prune replaces it. Absent in lists written
    /// before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl SealedObject for Deletions {
    const KIND: ObjectKind = ObjectKind::Deletions;
}
