//! Erasure requests (`erasures/<random id>`, format.md §9.2): written by
//! `rewrite --exclude`, read by prune, which repacks every pack holding one
//! of their blobs that no snapshot needs.

use super::kind::{ObjectKind, SealedObject};
use super::Id;
use serde::{Deserialize, Serialize};

/// An erasure request (format.md §9.2): blobs that must leave the repository
/// at the next prune, even from packs that are mostly in use.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ErasureRequest {
    pub created: String,
    pub hostname: String,
    /// The snapshots that were rewritten (the originals, now removed).
    pub snapshots: Vec<Id>,
    /// Blobs (data and tree) of the removed files and directories, and the
    /// trees that named them.
    pub blobs: Vec<Id>,
    /// The patterns of the rewrite (for the record; optional for readers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
}

impl SealedObject for ErasureRequest {
    const KIND: ObjectKind = ObjectKind::Erasure;
}
