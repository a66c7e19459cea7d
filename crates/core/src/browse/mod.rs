//! Browsing snapshots without restoring them: walk a snapshot's trees,
//! resolve a path inside a snapshot (stored or original, `paths.rs`), and
//! gather statistics.

pub mod paths;

use crate::error::{Error, Result};
use crate::format::id::IdSet;
use crate::format::tree::{Node, NodeType};
use crate::format::Id;
use crate::repo::Repository;

/// Visit every node under tree `id`, depth first in name order. `path` is
/// the node's path inside the snapshot (`/name/...`). The visitor returns
/// whether to descend into a directory.
pub fn walk(
    repo: &Repository,
    id: &Id,
    base: &[u8],
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<bool>,
) -> Result<()> {
    let tree = repo.read_tree(id)?;
    for n in &tree.nodes {
        let path = child_path(base, &n.name);
        // The root of a backup of "/" is listed as "/", its content at the
        // paths it was backed up from.
        let shown: &[u8] = if path.is_empty() { b"/" } else { &path };
        let descend = visit(shown, n)?;
        if descend && n.node_type == NodeType::Dir {
            if let Some(sub) = &n.subtree {
                walk(repo, sub, &path, visit)?;
            }
        }
    }
    Ok(())
}

/// Split a snapshot path (`/a/b`, `a/b/`) into its components.
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// A snapshot path in the form `ls` prints: `a//b/` → `/a/b`, `/` → empty.
pub fn normalize(path: &[u8]) -> Vec<u8> {
    components(path)
        .iter()
        .flat_map(|c| [&b"/"[..], c].concat())
        .collect()
}

/// The snapshot path of the entry `name` in the directory `base`:
/// `base/name`, except for the root node of a backup of "/" (named "/"),
/// whose content keeps the paths it was backed up from (`/etc`, not `//etc`).
pub fn child_path(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = base.to_vec();
    if name != b"/" {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    path
}

/// The node at the stored path `path` inside the tree `root`, or None for
/// the root itself. A path that does not exist is an error naming it. Paths
/// the user gives go through `paths::resolve_given`, which also takes the
/// original path and suggests what was meant.
pub fn resolve(repo: &Repository, root: &Id, path: &[u8]) -> Result<Option<Node>> {
    let mut tree_id = *root;
    let mut found: Option<Node> = None;
    let comps = components(path);
    for (i, c) in comps.iter().enumerate() {
        let mut tree = repo.read_tree(&tree_id)?;
        // In a snapshot of "/", the top-level names are inside its root node.
        if i == 0 && tree.find(c).is_none() {
            if let Some(sub) = tree
                .find(b"/")
                .filter(|n| n.node_type == NodeType::Dir)
                .and_then(|n| n.subtree)
            {
                tree = repo.read_tree(&sub)?;
            }
        }
        let node = tree.find(c).cloned().ok_or_else(|| Error::NotFound {
            what: "path",
            name: String::from_utf8_lossy(path).into_owned(),
            hint: "is not in the snapshot ('ironvault ls' shows what is)".into(),
        })?;
        if i + 1 < comps.len() {
            tree_id = match (node.node_type, node.subtree) {
                (NodeType::Dir, Some(s)) => s,
                _ => {
                    return Err(Error::Usage(format!(
                        "{} is not a directory in the snapshot",
                        String::from_utf8_lossy(&comps[..=i].join(&b'/'))
                    )))
                }
            };
        }
        found = Some(node);
    }
    Ok(found)
}

/// Sizes and counts over a set of snapshots.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    pub snapshots_count: u64,
    /// Sum of file sizes as a restore would write them, over all snapshots.
    pub total_size: u64,
    pub total_file_count: u64,
    /// Unique data and tree blobs the snapshots reference, uncompressed.
    pub total_uncompressed_size: u64,
    /// The same blobs as stored (compressed and encrypted).
    pub total_blob_stored_size: u64,
    pub total_blob_count: u64,
    /// restore size / unique uncompressed data: how much deduplication saves.
    pub dedup_ratio: f64,
    /// unique uncompressed / stored: how much compression saves.
    pub compression_ratio: f64,
    pub pack_count: u64,
    /// All packs in the index, referenced or not.
    pub repository_size: u64,
}

/// Statistics over `trees` (snapshot roots).
pub fn stats(repo: &Repository, trees: &[Id]) -> Result<Stats> {
    let idx = repo.index();
    let mut s = Stats {
        snapshots_count: trees.len() as u64,
        ..Default::default()
    };
    let mut seen = IdSet::default();
    let mut packs = IdSet::default();
    let mut add_blob = |id: &Id, s: &mut Stats| {
        if seen.insert(*id) {
            if let Some(l) = idx.get(id) {
                s.total_uncompressed_size += l.raw_len as u64;
                s.total_blob_stored_size += l.stored_len as u64;
                s.total_blob_count += 1;
                packs.insert(l.pack);
            }
        }
    };
    for root in trees {
        add_blob(root, &mut s);
        walk(repo, root, b"", &mut |_, n| {
            if n.node_type == NodeType::File {
                s.total_size += n.size;
                s.total_file_count += 1;
                for b in n.content.as_deref().unwrap_or(&[]) {
                    add_blob(b, &mut s);
                }
            }
            if let Some(sub) = &n.subtree {
                add_blob(sub, &mut s);
            }
            Ok(true)
        })?;
    }
    s.pack_count = packs.len() as u64;
    s.repository_size = idx.packs().values().map(|p| p.1).sum();
    if s.total_uncompressed_size > 0 {
        s.dedup_ratio = s.total_size as f64 / s.total_uncompressed_size as f64;
    }
    if s.total_blob_stored_size > 0 {
        s.compression_ratio = s.total_uncompressed_size as f64 / s.total_blob_stored_size as f64;
    }
    Ok(s)
}

/// How a path differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    /// Content changed.
    Modified,
    /// Type changed (e.g. a file became a directory).
    TypeChanged,
    /// Same content, other metadata (mode, owner, times, xattrs).
    MetadataOnly,
}

impl Change {
    /// restic's one-letter modifier.
    pub fn letter(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::TypeChanged => 'T',
            Change::MetadataOnly => 'U',
        }
    }
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
        && a.target == b.target
        && a.rdev == b.rdev
}

/// Receives (path, change, old node, new node) for each difference.
pub type DiffVisitor<'a> = dyn FnMut(&[u8], Change, Option<&Node>, Option<&Node>) + 'a;

/// Report every difference between trees `a` and `b`; identical subtrees
/// (same id) are skipped without reading them.
pub fn diff(
    repo: &Repository,
    a: Option<&Id>,
    b: Option<&Id>,
    base: &[u8],
    out: &mut DiffVisitor<'_>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = match a {
        Some(id) => repo.read_tree(id)?.nodes,
        None => Vec::new(),
    };
    let tb = match b {
        Some(id) => repo.read_tree(id)?.nodes,
        None => Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while i < ta.len() || j < tb.len() {
        let order = match (ta.get(i), tb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (na, nb) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (Some(&ta[i - 1]), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (None, Some(&tb[j - 1]))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                (Some(&ta[i - 1]), Some(&tb[j - 1]))
            }
        };
        let name = &na.or(nb).expect("one side is present").name;
        let path = child_path(base, name);
        let shown: &[u8] = if path.is_empty() { b"/" } else { &path };
        let dir_a = na
            .filter(|n| n.node_type == NodeType::Dir)
            .and_then(|n| n.subtree);
        let dir_b = nb
            .filter(|n| n.node_type == NodeType::Dir)
            .and_then(|n| n.subtree);
        match (na, nb) {
            (Some(x), None) => {
                out(shown, Change::Removed, Some(x), None);
                diff(repo, dir_a.as_ref(), None, &path, out)?;
            }
            (None, Some(y)) => {
                out(shown, Change::Added, None, Some(y));
                diff(repo, None, dir_b.as_ref(), &path, out)?;
            }
            (Some(x), Some(y)) => {
                if x.node_type != y.node_type {
                    out(shown, Change::TypeChanged, Some(x), Some(y));
                } else if x.node_type == NodeType::File && x.content != y.content {
                    out(shown, Change::Modified, Some(x), Some(y));
                } else if !same_metadata(x, y) {
                    out(shown, Change::MetadataOnly, Some(x), Some(y));
                }
                diff(repo, dir_a.as_ref(), dir_b.as_ref(), &path, out)?;
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// Reads a file's content from the repository, blob by blob (each verified).
pub struct FileReader<'a> {
    repo: &'a Repository,
    blobs: std::vec::IntoIter<Id>,
    current: Vec<u8>,
    pos: usize,
}

impl<'a> FileReader<'a> {
    /// A reader over the content of file node `n`.
    pub fn new(repo: &'a Repository, n: &Node) -> FileReader<'a> {
        FileReader {
            repo,
            blobs: n.content.clone().unwrap_or_default().into_iter(),
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            let Some(id) = self.blobs.next() else {
                return Ok(0);
            };
            self.current = self
                .repo
                .read_blob(crate::format::BlobType::Data, &id)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
