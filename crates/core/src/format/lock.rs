//! Lock objects (`locks/<random id>`, format.md §9): who holds a lock, and
//! since when. The locking protocol is `crate::repo::lock`.

use super::kind::{ObjectKind, SealedObject};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The content of a lock object (format.md §9).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub hostname: String,
    pub pid: u32,
    pub username: String,
    pub created: String,
    pub refreshed: String,
    /// Linux boot id, PID namespace and process start time (clock ticks since
    /// boot): a pid is only checked for liveness when all three match ours, so
    /// containers sharing a host name and reused pids are not mistaken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// The command holding it (`backup`, `prune`, ...), for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// How long ago the storage stamped the object's last write, by the
    /// storage's clock (filled in by listing; not stored).
    #[serde(skip)]
    pub age: Option<Duration>,
}

impl SealedObject for LockInfo {
    const KIND: ObjectKind = ObjectKind::Lock;
}
