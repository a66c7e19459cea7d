//! Repairs that rebuild metadata from what is stored. `rebuild_index` reads
//! every pack's header and writes one new index file that supersedes all
//! existing ones (format.md §6), so blobs a damaged or deleted index file
//! listed become reachable again. Packs are never modified.

pub mod packs;

use crate::error::{Error, Result};
use crate::format::index::IndexFile;
use crate::format::{BlobType, Id, ObjectKind};
use crate::repo::lock::Lock;
use crate::repo::Repository;

/// What `rebuild_index` did.
#[derive(Debug, Default)]
pub struct IndexRepair {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    pub index_files_replaced: usize,
    /// Packs left out: a header that could not be read, or a pack no index
    /// listed that does not verify (`check --read-data` details them).
    pub unreadable_packs: Vec<String>,
    pub new_index: Option<Id>,
}

/// Rebuild the index from the packs' headers.
pub fn rebuild_index(repo: &Repository, progress: &dyn Fn(u64, u64)) -> Result<IndexRepair> {
    // Exclusive: a prune deleting packs meanwhile would leave the new index
    // naming packs that are gone (format.md §9).
    let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), true)?;
    let r = rebuild_index_locked(repo, &lock, progress)?;
    lock.release()?;
    Ok(r)
}

/// The same, for a caller that already holds a lock.
pub(crate) fn rebuild_index_locked(
    repo: &Repository,
    lock: &Lock,
    progress: &dyn Fn(u64, u64),
) -> Result<IndexRepair> {
    let b = repo.backend();
    let old: Vec<Id> = b
        .list(ObjectKind::Index.dir())?
        .iter()
        .filter_map(|o| ObjectKind::Index.parse_name(&o.name))
        .collect();
    // The new file also names what the old ones superseded, so none of
    // those can come back into force once the old files are deleted.
    let (readable, _) = repo.read_index_files()?;
    let supersedes = repo.supersedes_list(&old, &readable);
    let packs = repo.stored_packs()?;
    // A pack some readable index file lists was sound when it was indexed:
    // its header says what it holds. Any other pack is verified whole first,
    // so a damaged or planted one never enters the index (format.md §9).
    let (files, _) = repo.read_index_files()?;
    let listed: crate::format::id::IdSet = files
        .iter()
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
        .collect();
    let mut r = IndexRepair::default();
    let mut file = IndexFile {
        packs: Vec::new(),
        supersedes,
    };
    for (i, p) in packs.iter().enumerate() {
        progress(i as u64, packs.len() as u64);
        if crate::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        let found = if listed.contains(&p.id) {
            repo.read_pack_header(p.t, &p.id, p.size)
                .map_err(|e| e.to_string())
        } else {
            match repo.verify_unindexed_pack(p) {
                Ok(v) => v.map_err(|why| format!("in no index and {why}")),
                Err(e) => Err(e.to_string()),
            }
        };
        match found {
            Ok(ip) => {
                r.blobs_indexed += ip.blobs.len();
                file.packs.push(ip);
            }
            Err(why) => r.unreadable_packs.push(format!("{}: {why}", p.name)),
        }
    }
    r.packs_indexed = file.packs.len();
    let bytes = file.seal(repo.master_key())?;
    // Reading every header may have taken long: is the lock still ours?
    lock.confirm()?;
    let new = Id::hash_of(&bytes);
    b.put(&ObjectKind::Index.name(&new), &bytes)?;
    if let Some(g) = repo.security() {
        let sup: Vec<Id> = file.supersedes.iter().rev().copied().collect();
        g.learn_superseded(sup.into_iter().filter(|i| *i != new).collect());
    }
    // The new index is durable and supersedes the old ones: removing them is tidy, not needed.
    for o in &old {
        if *o != new {
            b.delete(&ObjectKind::Index.name(o))?;
            r.index_files_replaced += 1;
        }
    }
    r.new_index = Some(new);
    Ok(r)
}

/// What `repair_snapshots` did to one snapshot.
#[derive(Debug, Default)]
pub struct SnapshotRepair {
    pub old: Id,
    /// The repaired snapshot (None if nothing needed repair, or in a dry run).
    pub new: Option<Id>,
    /// Paths removed (files whose data is gone) or emptied (unreadable directories).
    pub changes: Vec<String>,
}

/// Rewrite snapshots whose data is partly unreadable: directories whose tree
/// cannot be read become empty, files with data blobs missing from the index
/// are left out. The new snapshot keeps time, host, paths and tags and gets
/// the tag `repaired`; with `forget`, the damaged original is removed.
pub fn repair_snapshots(
    repo: &std::sync::Arc<Repository>,
    ids: &[Id],
    dry_run: bool,
    forget: bool,
) -> Result<Vec<SnapshotRepair>> {
    use crate::format::to_cbor;
    use crate::format::tree::{NodeType, Tree};
    use crate::repo::packer::BlobSink;

    let lock = Lock::acquire(repo.backend().clone(), *repo.master_key(), false)?;
    // Packs actually stored: a blob whose pack is gone is lost even if an
    // index file still lists it (before 'repair index' has run), and a
    // replacement tree must be written again rather than deduplicated
    // against the lost copy. Blobs in a prune's deletion candidates are not
    // lost (the prune may still withdraw them): they are read, not dropped.
    let (sink, stored) = BlobSink::for_rewriting(repo, Some(&lock))?;
    sink.set_dry_run(dry_run);

    fn rebuild(
        repo: &Repository,
        sink: &BlobSink,
        stored: &crate::format::id::IdSet,
        id: &Id,
        path: &str,
        changes: &mut Vec<String>,
    ) -> Result<Option<Id>> {
        let tree = match repo.read_tree(id) {
            Ok(t) => t,
            Err(e) => {
                changes.push(format!("{path}/: directory unreadable ({e}); now empty"));
                return Ok(None);
            }
        };
        let idx = repo.index();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let before = changes.len();
        for mut n in tree.nodes {
            let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
            match n.node_type {
                NodeType::File
                    if n.content.as_ref().is_some_and(|c| {
                        c.iter()
                            .any(|b| !idx.locations(b).iter().any(|l| stored.contains(&l.pack)))
                    }) =>
                {
                    changes.push(format!("{p}: data missing; left out"));
                    continue;
                }
                NodeType::Dir => {
                    if let Some(sub) = n.subtree {
                        let new = rebuild(repo, sink, stored, &sub, &p, changes)?;
                        n.subtree = Some(match new {
                            Some(x) => x,
                            None => sink.add(BlobType::Tree, &to_cbor(&Tree::default())?)?.0,
                        });
                    }
                }
                _ => {}
            }
            nodes.push(n);
        }
        if changes.len() == before {
            return Ok(Some(*id));
        }
        Ok(Some(
            sink.add(BlobType::Tree, &to_cbor(&Tree { nodes })?)?.0,
        ))
    }

    let mut out = Vec::new();
    for id in ids {
        let snap = repo.load_snapshot(id)?;
        let mut r = SnapshotRepair {
            old: *id,
            ..Default::default()
        };
        let root = rebuild(repo, &sink, &stored, &snap.tree, "", &mut r.changes)?;
        if r.changes.is_empty() {
            out.push(r);
            continue;
        }
        let root = match root {
            Some(x) => x,
            None => sink.add(BlobType::Tree, &to_cbor(&Tree::default())?)?.0,
        };
        if !dry_run {
            sink.finish()?;
            let mut s = snap.clone();
            s.tree = root;
            s.parent = Some(*id);
            if !s.tags.iter().any(|t| t == "repaired") {
                s.tags.push("repaired".into());
            }
            lock.confirm()?;
            let new = repo.save_snapshot(&s)?;
            if forget {
                repo.remove_snapshots(&[*id], crate::repo::security::How::Repair, &mut |_| {})?;
            }
            r.new = Some(new);
        }
        out.push(r);
    }
    lock.release()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Snapshot;
    use crate::format::to_cbor;
    use crate::format::tree::{test_node, Node, NodeType, Tree};
    use crate::repo::packer::BlobSink;

    fn dir(name: &[u8], subtree: Id) -> Node {
        let mut n = test_node(name, NodeType::Dir);
        n.subtree = Some(subtree);
        n
    }

    /// A directory whose tree blob is lost becomes an empty directory in a
    /// new snapshot tagged `repaired`; the rest of the snapshot is kept.
    #[test]
    fn unreadable_subtree_becomes_empty() {
        let (_d, repo) = crate::repo::test_repo();
        repo.load_index(true).unwrap();
        // the subtree in a pack of its own, then the root in another
        let s1 = BlobSink::new(repo.clone(), 3);
        let (lost, _) = s1
            .add(
                BlobType::Tree,
                &to_cbor(&Tree {
                    nodes: vec![dir(b"inner", Id([9; 32]))],
                })
                .unwrap(),
            )
            .unwrap();
        let (kept, _) = s1
            .add(BlobType::Tree, &to_cbor(&Tree::default()).unwrap())
            .unwrap();
        s1.finish().unwrap();
        let lost_pack = repo.backend().list("packs/tree/").unwrap();
        assert_eq!(lost_pack.len(), 1);
        // the kept (empty) tree must survive: store it again in the root's pack
        repo.load_index(true).unwrap();
        let s2 = BlobSink::new(repo.clone(), 3);
        let root = Tree {
            nodes: vec![dir(b"a-lost", lost), dir(b"b-kept", kept)],
        };
        let (root_id, _) = s2.add(BlobType::Tree, &to_cbor(&root).unwrap()).unwrap();
        s2.finish().unwrap();
        let snap = Snapshot {
            version: 1,
            time: "2026-11-26T12:00:00Z".into(),
            tree: root_id,
            paths: vec!["/x".into()],
            hostname: "h".into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: vec![],
            parent: None,
            program_version: "test".into(),
            summary: None,
        };
        let sid = repo.save_snapshot(&snap).unwrap();
        repo.backend().delete(&lost_pack[0].name).unwrap();
        // `kept` lived in the deleted pack too, so both directories lose their trees
        let r = repair_snapshots(&repo, &[sid], false, true).unwrap();
        assert_eq!(r.len(), 1);
        assert!(
            r[0].changes
                .iter()
                .any(|c| c.starts_with("/a-lost/: directory unreadable")),
            "{:?}",
            r[0].changes
        );
        let new = repo.load_snapshot(&r[0].new.unwrap()).unwrap();
        assert!(new.tags.contains(&"repaired".to_string()));
        assert!(
            repo.load_snapshot(&sid).is_err(),
            "--forget removes the original"
        );
        repo.load_index(false).unwrap();
        let t = repo.read_tree(&new.tree).unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert!(repo
            .read_tree(&t.nodes[0].subtree.unwrap())
            .unwrap()
            .nodes
            .is_empty());
    }
}
