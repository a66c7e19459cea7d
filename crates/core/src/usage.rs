//! Which files use a blob: the tree walk that names, for blobs about to
//! be erased, one file (or directory) of a snapshot that still holds each.
//! `rewrite` reports the blobs its kept files share, prune those of erasure
//! requests still in use (format.md §9.2).

use crate::backup::exclude::Excludes;
use crate::error::Result;
use crate::format::id::IdSet;
use crate::format::snapshot::Snapshot;
use crate::format::Id;
use crate::repo::Repository;
use serde::Serialize;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A blob of a removed file that a kept file still uses.
#[derive(Clone, Debug, Serialize)]
pub struct SharedBlob {
    pub blob: String,
    pub snapshot: String,
    pub path: String,
}

/// The path a root node was backed up from: the recorded path stored under
/// its name (`data-1` for the second path whose last component is `data`).
pub fn original_root(s: &Snapshot, name: &[u8]) -> PathBuf {
    let paths: Vec<PathBuf> = s.paths.iter().map(PathBuf::from).collect();
    crate::backup::root_names(&paths)
        .into_iter()
        .zip(paths)
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .unwrap_or_else(|| Path::new("/").join(OsStr::from_bytes(name)))
}

/// For each blob of `blobs`, one file of the snapshots `snaps` that uses it.
pub fn users(repo: &Repository, snaps: &[Id], blobs: &IdSet) -> Result<Vec<SharedBlob>> {
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let walks: Vec<(Id, bool)> = snaps.iter().map(|s| (*s, false)).collect();
    find_users(repo, &walks, None, blobs)
}

/// Blobs of `removed` that the snapshots use, each with one file (or
/// directory) that uses it. A snapshot marked `true` is walked without what
/// `excludes` matches (as its replacement would be).
pub fn find_users(
    repo: &Repository,
    snaps: &[(Id, bool)],
    excludes: Option<&Excludes>,
    removed: &IdSet,
) -> Result<Vec<SharedBlob>> {
    struct Finder<'a> {
        repo: &'a Repository,
        excludes: Option<&'a Excludes>,
        removed: &'a IdSet,
        found: std::collections::BTreeMap<Id, SharedBlob>,
        seen_trees: IdSet,
        snapshot: String,
        filtered: bool,
    }
    impl Finder<'_> {
        fn note(&mut self, b: &Id, path: &Path) {
            if self.removed.contains(b) && !self.found.contains_key(b) {
                self.found.insert(
                    *b,
                    SharedBlob {
                        blob: b.to_hex(),
                        snapshot: self.snapshot.clone(),
                        path: path.to_string_lossy().into_owned(),
                    },
                );
            }
        }
        fn walk(
            &mut self,
            tree: &Id,
            paths_of: &dyn Fn(&[u8]) -> (PathBuf, PathBuf),
        ) -> Result<()> {
            for n in self.repo.read_tree(tree)?.nodes {
                let (p_snap, p_orig) = paths_of(&n.name);
                if let Some(x) = self.excludes.filter(|_| self.filtered) {
                    if x.matches_entry(&p_snap, &p_orig) {
                        continue;
                    }
                }
                for b in n.content.iter().flatten() {
                    self.note(b, &p_orig);
                }
                if let Some(sub) = n.subtree {
                    if !self.filtered {
                        // (a filtered walk stands for new trees, not these)
                        self.note(&sub, &p_orig);
                    }
                    // A subtree walked before holds nothing new, unless
                    // patterns apply (its path differs).
                    if self.seen_trees.insert(sub) || self.filtered {
                        let join = |name: &[u8]| {
                            let name = OsStr::from_bytes(name);
                            (p_snap.join(name), p_orig.join(name))
                        };
                        self.walk(&sub, &join)?;
                    }
                }
            }
            Ok(())
        }
    }
    let mut f = Finder {
        repo,
        excludes,
        removed,
        found: Default::default(),
        seen_trees: IdSet::default(),
        snapshot: String::new(),
        filtered: false,
    };
    for (sid, filtered) in snaps {
        if f.found.len() == removed.len() {
            break;
        }
        let snap = match repo.load_snapshot(sid) {
            Ok(x) => x,
            Err(crate::error::Error::SnapshotNotFound(_)) => continue, // forgotten meanwhile
            Err(e) => return Err(e),
        };
        f.snapshot = sid.to_hex();
        f.filtered = *filtered;
        if !filtered {
            f.note(&snap.tree, Path::new("/"));
        }
        let root_paths = |name: &[u8]| {
            (
                Path::new("/").join(OsStr::from_bytes(name)),
                original_root(&snap, name),
            )
        };
        f.walk(&snap.tree, &root_paths)?;
    }
    Ok(f.found.into_values().collect())
}
