//! `rewrite --exclude`: erasure of named files (GDPR). Each chosen snapshot
//! is written again without the files and directories the patterns match;
//! the original is removed once its replacement is durable. The blobs only
//! those files used, and the trees that named them, go into an erasure
//! request (format.md §9.2), so the next prune repacks every pack holding
//! one, however little of the pack they fill. Blobs that kept files still
//! use (deduplication) cannot be erased; they are reported with a file that
//! uses them.

use crate::backup::exclude::Excludes;
use crate::error::Result;
use crate::format::erasure::ErasureRequest;
use crate::format::id::IdSet;
use crate::format::to_cbor;
use crate::format::tree::{Node, NodeType, Tree};
use crate::format::{BlobType, Id};
use crate::repo::lock::Lock;
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use crate::usage::{find_users, original_root, SharedBlob};
use serde::Serialize;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What happened to one snapshot.
#[derive(Debug, Serialize)]
pub struct SnapshotRewrite {
    pub original: String,
    /// The replacement (None in a dry run).
    pub new: Option<String>,
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    /// Paths removed, as they were backed up (directories end in `/`).
    pub removed: Vec<String>,
    pub files_removed: u64,
    pub bytes_removed: u64,
}

/// The audit record of a rewrite.
#[derive(Debug, Default, Serialize)]
pub struct RewriteReport {
    pub dry_run: bool,
    pub patterns: Vec<String>,
    pub rewritten: Vec<SnapshotRewrite>,
    /// Snapshots that held nothing matching (left as they are).
    pub unchanged: Vec<String>,
    /// Blobs (data and tree) the removed files and directories used.
    pub blobs_removed: usize,
    /// Of those, blobs no remaining snapshot uses: erased by the next prune.
    pub blobs_to_erase: usize,
    /// Of those, blobs kept files still use: NOT erased.
    pub shared: Vec<SharedBlob>,
    /// The erasure request written (`erasures/<id>`).
    pub erasure_request: Option<String>,
    /// Patterns (as given) that matched nothing in the snapshots rewritten:
    /// nothing was erased for them.
    pub unmatched_patterns: Vec<String>,
}

struct Rewriter<'a> {
    repo: &'a Repository,
    sink: &'a BlobSink,
    excludes: &'a Excludes,
    /// Blobs of what was removed, and trees replaced.
    removed_blobs: IdSet,
    /// The patterns that matched something.
    matched: std::collections::BTreeSet<String>,
}

impl Rewriter<'_> {
    /// The nodes of `tree` without what matches; None when nothing below
    /// matched. `paths_of(name)` gives a node's path inside the snapshot and
    /// the path it was backed up from.
    fn nodes(
        &mut self,
        tree: Tree,
        paths_of: &dyn Fn(&[u8]) -> (PathBuf, PathBuf),
        out: &mut SnapshotRewrite,
    ) -> Result<Option<Vec<Node>>> {
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let mut changed = false;
        for mut n in tree.nodes {
            let (p_snap, p_orig) = paths_of(&n.name);
            let hits = self.excludes.matching_entry(&p_snap, &p_orig);
            if !hits.is_empty() {
                self.matched.extend(hits.into_iter().map(String::from));
                changed = true;
                let dir = n.node_type == NodeType::Dir;
                out.removed.push(format!(
                    "{}{}",
                    p_orig.display(),
                    if dir { "/" } else { "" }
                ));
                self.remove_node(&n, out);
                if let Some(sub) = n.subtree {
                    self.remove_all(&sub, out)?;
                }
                continue;
            }
            if let (NodeType::Dir, Some(sub)) = (n.node_type, n.subtree) {
                let sub_tree = self.repo.read_tree(&sub)?;
                let join = |name: &[u8]| {
                    let name = OsStr::from_bytes(name);
                    (p_snap.join(name), p_orig.join(name))
                };
                if let Some(kept) = self.nodes(sub_tree, &join, out)? {
                    self.removed_blobs.insert(sub);
                    n.subtree = Some(
                        self.sink
                            .add(BlobType::Tree, &to_cbor(&Tree { nodes: kept })?)?
                            .0,
                    );
                    changed = true;
                }
            }
            nodes.push(n);
        }
        Ok(changed.then_some(nodes))
    }

    fn remove_node(&mut self, n: &Node, out: &mut SnapshotRewrite) {
        if n.node_type == NodeType::File {
            out.files_removed += 1;
            out.bytes_removed += n.size;
        }
        self.removed_blobs
            .extend(n.content.iter().flatten().copied());
    }

    /// Everything below a removed directory.
    fn remove_all(&mut self, id: &Id, out: &mut SnapshotRewrite) -> Result<()> {
        self.removed_blobs.insert(*id);
        for n in self.repo.read_tree(id)?.nodes {
            self.remove_node(&n, out);
            if let Some(sub) = n.subtree {
                self.remove_all(&sub, out)?;
            }
        }
        Ok(())
    }
}

/// Originals deleted per erasure request written (each request replaces the
/// previous one and names everything removed so far).
const ORIGINALS_PER_REQUEST: usize = 64;

/// The erasure request of a run, kept up to date before originals go.
#[derive(Default)]
struct Record {
    patterns: Vec<String>,
    originals: Vec<Id>,
    /// The request written last (`erasures/<id>`).
    current: Option<String>,
}

impl Record {
    /// Write a request naming every blob removed so far, drop the previous
    /// one, then delete the `pending` originals: no original goes before a
    /// request names what it alone held.
    fn flush(&mut self, repo: &Repository, removed: &IdSet, pending: &mut Vec<Id>) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        self.originals.extend(pending.iter().copied());
        let mut blobs: Vec<Id> = removed.iter().copied().collect();
        blobs.sort();
        let req = ErasureRequest {
            created: chrono::Utc::now().to_rfc3339(),
            hostname: crate::host::hostname(),
            snapshots: self.originals.clone(),
            blobs,
            patterns: self.patterns.clone(),
        };
        let name = repo.save_erasure_request(&req)?;
        crate::failpoint::hit("rewrite-request-written");
        if let Some(prev) = self.current.replace(name) {
            repo.backend().delete(&prev)?;
        }
        let originals = std::mem::take(pending);
        repo.remove_snapshots(&originals, crate::repo::security::How::Rewrite, &mut |_| {
            crate::failpoint::hit("rewrite-original-deleted")
        })
    }
}

/// Rewrite `ids` without what `excludes` matches.
pub fn rewrite(
    repo: Arc<Repository>,
    ids: &[Id],
    excludes: &Excludes,
    patterns: &[String],
    dry_run: bool,
) -> Result<RewriteReport> {
    let lock = Lock::unless_dry_run(dry_run, repo.backend().clone(), *repo.master_key(), false)?;
    let (sink, _) = BlobSink::for_rewriting(&repo, lock.as_ref())?;
    sink.set_dry_run(dry_run);
    let mut rw = Rewriter {
        repo: &repo,
        sink: &sink,
        excludes,
        removed_blobs: IdSet::default(),
        matched: Default::default(),
    };
    let mut report = RewriteReport {
        dry_run,
        patterns: patterns.to_vec(),
        ..RewriteReport::default()
    };
    let mut record = Record {
        patterns: patterns.to_vec(),
        ..Record::default()
    };
    let mut pending = Vec::new();
    let mut interrupted = false;
    for id in ids {
        // Stop between snapshots, and still record what was erased so far.
        if crate::interrupt::requested() {
            interrupted = true;
            break;
        }
        let snap = repo.load_snapshot(id)?;
        let mut out = SnapshotRewrite {
            original: id.to_hex(),
            new: None,
            time: snap.time.clone(),
            hostname: snap.hostname.clone(),
            paths: snap.paths.clone(),
            removed: Vec::new(),
            files_removed: 0,
            bytes_removed: 0,
        };
        // The root tree's nodes are the backed-up paths, by their last component.
        let root = repo.read_tree(&snap.tree)?;
        let root_paths = |name: &[u8]| {
            (
                Path::new("/").join(OsStr::from_bytes(name)),
                original_root(&snap, name),
            )
        };
        let Some(nodes) = rw.nodes(root, &root_paths, &mut out)? else {
            report.unchanged.push(id.to_hex());
            continue;
        };
        if nodes.is_empty() {
            return Err(crate::error::Error::Failed(format!(
                "the patterns match everything in snapshot {} (paths {}); to remove whole snapshots use 'ironvault forget'",
                id.short(),
                snap.paths.join(", ")
            )));
        }
        rw.removed_blobs.insert(snap.tree);
        let new_root = sink.add(BlobType::Tree, &to_cbor(&Tree { nodes })?)?.0;
        if !dry_run {
            sink.finish()?;
            let mut s = snap.clone();
            s.tree = new_root;
            if !s.tags.iter().any(|t| t == "rewritten") {
                s.tags.push("rewritten".into());
            }
            if let Some(l) = &lock {
                l.confirm()?;
            }
            let new = repo.save_snapshot(&s)?;
            crate::failpoint::hit("rewrite-snapshot-saved");
            out.new = Some(new.to_hex());
            pending.push(*id);
            if pending.len() >= ORIGINALS_PER_REQUEST {
                record.flush(&repo, &rw.removed_blobs, &mut pending)?;
            }
        }
        report.rewritten.push(out);
    }
    // The replacements are durable; the originals go once a request names
    // what they alone held (an error before this leaves both, and a second
    // run rewrites the originals again, to the same snapshots).
    if !dry_run {
        record.flush(&repo, &rw.removed_blobs, &mut pending)?;
    }
    report.erasure_request = record.current.take();
    report.unmatched_patterns = excludes
        .patterns()
        .iter()
        .filter(|p| !rw.matched.contains(*p))
        .cloned()
        .collect();
    report.blobs_removed = rw.removed_blobs.len();
    // Which removed blobs the remaining snapshots still use, and where. In a
    // dry run the replacements do not exist: the originals are walked
    // without what the patterns match instead.
    let removed = std::mem::take(&mut rw.removed_blobs);
    if !dry_run {
        repo.load_index(false)?; // the new trees
    }
    let rewritten: IdSet = report
        .rewritten
        .iter()
        .filter_map(|r| Id::from_hex(&r.original))
        .collect();
    let mut walks = Vec::new();
    for sid in repo.snapshot_ids()? {
        let filtered = dry_run && rewritten.contains(&sid);
        walks.push((sid, filtered));
    }
    report.shared = find_users(&repo, &walks, Some(excludes), &removed)?;
    report.blobs_to_erase = removed.len() - report.shared.len();
    if let Some(l) = lock {
        l.release()?;
    }
    if interrupted {
        return Err(crate::error::Error::Interrupted);
    }
    Ok(report)
}
