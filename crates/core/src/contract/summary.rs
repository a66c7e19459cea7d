//! The `--json` summaries of the commands whose results are read by
//! another program (the agent records them in its history and decides a
//! step's outcome from them). Each is one JSON object printed as one line.
//!
//! Keys are printed in sorted order (`to_json_line` goes through a
//! `serde_json::Value`, as the commands' `json!` objects did), so the order
//! of the fields below is free: add a field where it reads best. A field
//! renamed here is renamed for every reader at once; the golden tests below
//! hold the printed shape byte for byte.

use crate::backend::TransferStats;
use crate::format::snapshot::{Snapshot, Summary as SnapshotSummary};
use crate::format::Id;
use serde::{Deserialize, Serialize};

/// The `message_type` of a summary line (progress lines have others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    #[default]
    Summary,
}

/// A summary as the one line `--json` prints: keys sorted, no spaces.
pub fn to_json_line<T: Serialize>(summary: &T) -> String {
    // Serialising these types cannot fail: no map has non-string keys and
    // every field serialises as plain JSON.
    serde_json::to_value(summary)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Requests and bytes of a network backend; `null` for those that do not count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStats {
    pub requests: u64,
    pub puts: u64,
    pub gets: u64,
    pub lists: u64,
    pub deletes: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl From<TransferStats> for StorageStats {
    fn from(t: TransferStats) -> Self {
        StorageStats {
            requests: t.requests,
            puts: t.puts,
            gets: t.gets,
            lists: t.lists,
            deletes: t.deletes,
            bytes_sent: t.bytes_sent,
            bytes_received: t.bytes_received,
        }
    }
}

/// `backup --json`: restic's summary fields under restic's names, with ours
/// beside them (`dirs`, `bytes_read`, `errors`, ...). Fields added after the
/// first release default when absent, so a line from an older binary reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub message_type: MessageType,
    pub snapshot_id: String,
    pub parent: Option<String>,
    pub dry_run: bool,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    /// Directories new, changed and unmodified against the parent snapshot.
    #[serde(default)]
    pub dirs_new: u64,
    #[serde(default)]
    pub dirs_changed: u64,
    #[serde(default)]
    pub dirs_unmodified: u64,
    /// Every directory backed up (`dirs_new + dirs_changed + dirs_unmodified`).
    pub dirs: u64,
    /// New data blobs (chunks) and tree blobs (directory listings) stored.
    #[serde(default)]
    pub data_blobs: u64,
    #[serde(default)]
    pub tree_blobs: u64,
    /// Bytes of the new blobs before compression and encryption (restic's meaning).
    pub data_added: u64,
    /// Bytes the backup added to the repository: compressed and encrypted.
    #[serde(default)]
    pub data_added_packed: u64,
    /// Files backed up: new, changed and unmodified.
    #[serde(default)]
    pub total_files_processed: u64,
    /// Size of every file backed up, read or found unchanged.
    #[serde(default)]
    pub total_bytes_processed: u64,
    /// Bytes read from files (unchanged files are not read).
    pub bytes_read: u64,
    /// Files that could not be read (a partial snapshot, exit 3).
    pub errors: u64,
    pub changed_during_read: u64,
    /// Signs of a mass encryption against the parent snapshot (format.md
    /// §7.2 `Signals`): files gone, extensions renamed, ransom-note-like
    /// names, plain bytes of new data that did not compress.
    #[serde(default)]
    pub files_deleted: u64,
    #[serde(default)]
    pub extensions_renamed: u64,
    #[serde(default)]
    pub ransom_notes: u64,
    #[serde(default)]
    pub data_added_incompressible: u64,
    /// Share of the parent's files changed or gone, and of the new data that
    /// did not compress (0 to 1; `backup::signals`).
    #[serde(default)]
    pub changed_share: f64,
    #[serde(default)]
    pub incompressible_share: f64,
    /// With `--suspect-if`: why the snapshot was judged suspect and tagged
    /// `suspect`; null when it was not.
    #[serde(default)]
    pub suspect: Option<String>,
    /// When the backup started and ended (RFC 3339 with offset).
    #[serde(default)]
    pub backup_start: String,
    #[serde(default)]
    pub backup_end: String,
    /// Seconds.
    pub total_duration: f64,
    pub storage: Option<StorageStats>,
    /// What keeps this host from deleting the repository's objects, as its
    /// storage answered; absent when nothing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutability: Option<ImmutabilityFact>,
}

/// What keeps this host from deleting or overwriting a repository's objects,
/// as its storage answered (`Backend::immutability`): printed by `backup`
/// and `copy` for the repository they wrote, so the agent's history holds
/// the fact without opening every repository on `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmutabilityFact {
    /// `append_only` or `object_lock`.
    pub kind: String,
    /// For `append_only`: the token's role on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// For `object_lock`: COMPLIANCE or GOVERNANCE, and the retention in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u32>,
}

impl ImmutabilityFact {
    /// The fact a backend reported.
    pub fn new(i: &crate::backend::Immutability) -> Self {
        use crate::backend::Immutability as I;
        match i {
            I::AppendOnly { role } => ImmutabilityFact {
                kind: "append_only".into(),
                role: Some(role.clone()),
                mode: None,
                retain_days: None,
            },
            I::ObjectLock { mode, retain_days } => ImmutabilityFact {
                kind: "object_lock".into(),
                role: None,
                mode: Some(mode.clone()),
                retain_days: Some(*retain_days),
            },
        }
    }

    /// Words for messages: "append-only server (role append)".
    pub fn describe(&self) -> String {
        match self.kind.as_str() {
            "append_only" => format!(
                "append-only server (role {})",
                self.role.as_deref().unwrap_or("?")
            ),
            "object_lock" => format!(
                "Object Lock {} {} days",
                self.mode.as_deref().unwrap_or("?"),
                self.retain_days.unwrap_or(0)
            ),
            other => other.to_string(),
        }
    }
}

/// `restore --json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreSummary {
    pub message_type: MessageType,
    pub snapshot_id: String,
    pub files_restored: u64,
    /// Directories the restore made (not those already in the target).
    pub dirs_restored: u64,
    pub bytes_restored: u64,
    pub files_unchanged: u64,
    pub files_kept: u64,
    pub files_deleted: u64,
    pub devices_skipped: u64,
    pub setid_bits_dropped: u64,
    pub capabilities_dropped: u64,
    /// `--verify` was given and every byte and metadata matched.
    pub verified: bool,
    /// What could not be restored or failed verification, one line each.
    pub errors: Vec<String>,
    /// Seconds.
    pub total_duration: f64,
    pub storage: Option<StorageStats>,
}

/// What a snapshot group is keyed by (`--group-by`); `null` for what it is not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupKey {
    pub hostname: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

/// One snapshot as `snapshots --json` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub id: String,
    pub short_id: String,
    /// RFC 3339 with offset (`contract::time`), as the snapshot records it.
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub tree: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub parent: Option<String>,
    pub program_version: String,
    pub summary: Option<SnapshotSummary>,
}

impl SnapshotEntry {
    pub fn new(id: &Id, s: &Snapshot) -> Self {
        SnapshotEntry {
            id: id.to_hex(),
            short_id: id.short(),
            time: super::time::normalise(&s.time),
            hostname: s.hostname.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            tree: s.tree.to_hex(),
            username: s.username.clone(),
            uid: s.uid,
            gid: s.gid,
            parent: s.parent.map(|p| p.to_hex()),
            program_version: s.program_version.clone(),
            summary: s.summary.clone().map(|mut m| {
                m.started = super::time::normalise(&m.started);
                m.finished = super::time::normalise(&m.finished);
                m
            }),
        }
    }
}

/// One group of `snapshots --json --group-by ...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    pub group_key: GroupKey,
    pub snapshots: Vec<SnapshotEntry>,
}

/// One snapshot in `forget --json`: kept or removed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetEntry {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub keep: bool,
    /// The rules that kept it, or `["named"]` for a snapshot named to forget.
    pub reasons: Vec<String>,
}

impl ForgetEntry {
    pub fn new(id: &Id, s: &Snapshot, keep: bool, reasons: Vec<String>) -> Self {
        ForgetEntry {
            id: id.to_hex(),
            short_id: id.short(),
            time: super::time::normalise(&s.time),
            hostname: s.hostname.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            keep,
            reasons,
        }
    }
}

/// One group of `forget --json` (`group` is null when snapshots were named).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetGroup {
    pub group: Option<GroupKey>,
    pub snapshots: Vec<ForgetEntry>,
}

/// `forget --json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ForgetSummary {
    pub message_type: MessageType,
    pub dry_run: bool,
    pub groups: Vec<ForgetGroup>,
    /// Ids of the snapshots removed (or that a dry run would remove).
    pub removed: Vec<String>,
    pub removed_count: u64,
    /// With `--prune`: the prune's summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneSummary>,
}

/// `prune --json` (and the `prune` of `forget --prune`).
///
/// The fields the agent reads are typed; the rest of the prune report
/// (`crate::prune::PruneReport`, which has no `Deserialize`) rides along
/// under `report`, flattened into the same object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PruneSummary {
    pub message_type: MessageType,
    /// Bytes deleted minus bytes written.
    pub bytes_freed: u64,
    /// Seconds.
    pub seconds: f64,
    pub storage: Option<StorageStats>,
    /// Every other field of the prune report.
    #[serde(flatten)]
    pub report: serde_json::Map<String, serde_json::Value>,
}

impl PruneSummary {
    pub fn new(r: &crate::prune::PruneReport, seconds: f64, storage: Option<StorageStats>) -> Self {
        let mut report = match serde_json::to_value(r) {
            Ok(serde_json::Value::Object(m)) => m,
            // A struct of plain fields always serialises to an object.
            _ => serde_json::Map::new(),
        };
        report.remove("bytes_freed");
        PruneSummary {
            message_type: MessageType::Summary,
            bytes_freed: r.bytes_freed,
            seconds,
            storage,
            report,
        }
    }
}

/// One snapshot in `copy --json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedEntry {
    pub id: String,
    /// False if the destination already had it.
    pub copied: bool,
    pub blobs_copied: u64,
    /// Plain bytes of the blobs copied.
    pub bytes_copied: u64,
    /// What they take at the destination, as a backup's `data_added_packed` counts.
    pub bytes_stored: u64,
}

/// `copy --json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CopySummary {
    pub message_type: MessageType,
    pub snapshots: Vec<CopiedEntry>,
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    /// Seconds.
    pub total_duration: f64,
    pub source_storage: Option<StorageStats>,
    pub storage: Option<StorageStats>,
    /// What keeps this host from deleting the destination's objects, as its
    /// storage answered; absent when nothing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutability: Option<ImmutabilityFact>,
}

impl CopySummary {
    /// Bytes the copy stored at the destination.
    pub fn bytes_stored(&self) -> u64 {
        self.snapshots.iter().map(|s| s.bytes_stored).sum()
    }
}

#[cfg(test)]
mod tests {
    //! Golden lines: what the commands printed before these types existed
    //! (captured from the binary of 8a01663; the backup lines again when
    //! restic's field names were added). Each must read back into its type
    //! and print again byte for byte.
    use super::*;

    fn golden<T: Serialize + serde::de::DeserializeOwned>(line: &str) -> T {
        let line = line.trim_end();
        let v: T = serde_json::from_str(line).expect("golden line reads back");
        assert_eq!(to_json_line(&v), line);
        v
    }

    #[test]
    fn backup_summary_is_unchanged() {
        // Captured again when restic's fields joined ours (dirs_new ...
        // data_added_packed, backup_start/_end), from the same tree as the
        // first capture: two files, then one more. `data_added` took
        // restic's meaning (bytes before compression and encryption); the
        // stored size it used to be is now `data_added_packed`.
        // Lines from before the signals of a mass encryption still read
        // (the fields they lack default); the shape with them is below.
        let older = |l: &str| -> BackupSummary {
            serde_json::from_str(l.trim_end()).expect("an older line reads")
        };
        let first = older(include_str!("golden/backup.json"));
        assert_eq!(
            (first.data_added, first.data_added_packed),
            (100758, 100832)
        );
        assert_eq!(
            (first.dirs_new, first.data_blobs, first.tree_blobs),
            (2, 2, 3)
        );
        assert_eq!(first.parent, None);
        let second = older(include_str!("golden/backup2.json"));
        assert_eq!(second.parent.as_deref(), Some(first.snapshot_id.as_str()));
        assert_eq!((second.dirs_changed, second.total_files_processed), (2, 3));
        // A line of the binary before restic's fields (8a01663) still reads:
        // the fields it lacks default.
        let line = include_str!("golden/backup_s3.json").trim_end();
        let s3: BackupSummary = serde_json::from_str(line).expect("an older line reads");
        assert_eq!(s3.storage.map(|s| s.puts), Some(6));
        assert_eq!(
            (s3.files_new, s3.dirs_new, s3.backup_start.as_str()),
            (1, 0, "")
        );
        // Captured from a backup of 40 text files after each was encrypted
        // with `openssl enc` into NAME.locked and a HOW_TO_DECRYPT.txt added,
        // with `--suspect-if changed=0.5 --suspect-baseline changed=0.01,incompressible=0.1`.
        let hit: BackupSummary = golden(include_str!("golden/backup_suspect.json"));
        assert_eq!(
            (hit.files_deleted, hit.extensions_renamed, hit.ransom_notes),
            (40, 40, 1)
        );
        assert_eq!(hit.changed_share, 1.0);
        assert!(hit.incompressible_share > 0.99);
        assert!(hit
            .suspect
            .is_some_and(|s| s.starts_with("possible mass encryption")));
    }

    #[test]
    fn restore_summary_is_unchanged() {
        let r: RestoreSummary = golden(include_str!("golden/restore.json"));
        assert!(r.verified && r.errors.is_empty());
        assert_eq!(r.bytes_restored, 100011);
    }

    #[test]
    fn snapshot_listing_is_unchanged() {
        let l: Vec<SnapshotEntry> = golden(include_str!("golden/snapshots.json"));
        assert_eq!(l.len(), 2);
        let g: Vec<SnapshotGroup> = golden(include_str!("golden/snapshots_grouped.json"));
        assert_eq!(g[0].group_key.hostname.as_deref(), Some("h"));
    }

    #[test]
    fn forget_summary_is_unchanged() {
        let dry: ForgetSummary = golden(include_str!("golden/forget_dry.json"));
        assert!(dry.dry_run && dry.prune.is_none());
        assert_eq!(dry.removed_count, 1);
        let named: ForgetSummary = golden(include_str!("golden/forget_ids.json"));
        assert_eq!(named.groups[0].group, None);
        let pruned: ForgetSummary = golden(include_str!("golden/forget_prune.json"));
        assert_eq!(pruned.prune.map(|p| p.bytes_freed), Some(608));
    }

    #[test]
    fn prune_summary_is_unchanged() {
        let p: PruneSummary = golden(include_str!("golden/prune.json"));
        assert_eq!(p.bytes_freed, 0);
        assert_eq!(p.report["packs_after"], 4);
        // Built from a report, the summary has every field of the report once.
        let built = PruneSummary::new(&crate::prune::PruneReport::default(), 0.5, None);
        let v = serde_json::to_value(&built).unwrap_or_default();
        let want = serde_json::to_value(crate::prune::PruneReport::default()).unwrap_or_default();
        for (k, x) in want.as_object().into_iter().flatten() {
            assert_eq!(&v[k], x, "{k}");
        }
        assert_eq!(v["message_type"], "summary");
    }

    #[test]
    fn copy_summary_is_unchanged() {
        let c: CopySummary = golden(include_str!("golden/copy.json"));
        assert_eq!(c.bytes_stored(), 100826 + 612);
    }
}
