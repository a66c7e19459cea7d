//! Scrub records (`scrubs/<record id>`, format.md §9.1): what one data-reading
//! `check` run read and found. Which packs a run reads is `crate::check::scrub`.

use super::kind::{ObjectKind, SealedObject};
use super::Id;
use serde::{Deserialize, Serialize};

/// What one check run read and found (format.md §9.1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScrubRecord {
    /// RFC 3339 start time, in UTC.
    pub time: String,
    pub hostname: String,
    /// "all", "subset 2/7", "subset 10%", "scrub cycle of 30 days, day 12 of the cycle".
    pub selection: String,
    /// Packs read, and their total size.
    pub packs: Vec<Id>,
    pub bytes_read: u64,
    /// Damage found in the data read (empty: all of it verified).
    pub errors: Vec<String>,
}

impl SealedObject for ScrubRecord {
    const KIND: ObjectKind = ObjectKind::Scrub;
}
