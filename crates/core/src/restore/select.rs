//! The decisions of a restore, taken by the planner for the restore and its
//! dry run alike, and followed by verification: which nodes it restores
//! (include/exclude patterns on snapshot paths, unsafe names refused), what
//! it does with what the target already has at a node's name (the overwrite
//! policy, `decide`), and whether a file on disk already has a node's content.
//!
//! Invariant: these functions only look (lstat, readlink, read); nothing here
//! changes the target, so a dry run that calls them changes nothing either.

use super::dir::{Dir, Stat};
use crate::backup::exclude::Excludes;
use crate::browse::paths::Roots;
use crate::format::tree::{Node, NodeType};
use crate::format::BlobType;
use crate::repo::Repository;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What to do with a file that already exists in the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it.
    #[default]
    Always,
    /// Replace it unless its content already equals the snapshot's (checked
    /// by hashing it against the snapshot's blob ids); metadata is set either way.
    IfChanged,
    /// Replace it only if the snapshot's version is newer (mtime).
    IfNewer,
    /// Keep it.
    Never,
}

impl std::str::FromStr for Overwrite {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "always" => Ok(Overwrite::Always),
            "if-changed" => Ok(Overwrite::IfChanged),
            "if-newer" => Ok(Overwrite::IfNewer),
            "never" => Ok(Overwrite::Never),
            _ => Err(format!("{s:?}: use always, if-changed, if-newer or never")),
        }
    }
}

/// Include/exclude patterns, with the matching rules of backup excludes,
/// on snapshot paths (`/data/app`) and, given the snapshot's `roots`, on
/// the paths they were backed up from (`/srv/www/data/app`): a node matches
/// if either of its paths does.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub include: Option<Excludes>,
    pub exclude: Option<Excludes>,
    pub roots: Option<Roots>,
    /// Whether the exclude and the include patterns match the snapshot
    /// directory the restored nodes lie under (`under`), and so all of them.
    base_hit: (bool, bool),
}

/// True if `m` matches the snapshot path `spath` or, with `roots`, the path
/// it was backed up from (or a directory above a backed-up path).
pub fn matches(m: &Excludes, roots: Option<&Roots>, spath: &[u8]) -> bool {
    let snap = Path::new(std::ffi::OsStr::from_bytes(spath));
    match roots.and_then(|r| r.original_path(spath)) {
        Some(o) => m.matches_entry(snap, Path::new(std::ffi::OsStr::from_bytes(&o))),
        // A snapshot of "/": the stored path is the original one.
        None => m.matches_entry(snap, snap),
    }
}

/// True if `m` matches the snapshot directory `base` (SNAPSHOT:/PATH) or a
/// directory above it, as `matches` judges each: then it matches every
/// node restored from it.
pub fn matches_base(m: &Excludes, roots: Option<&Roots>, base: &[u8]) -> bool {
    let mut prefix = Vec::new();
    for c in crate::browse::components(base) {
        prefix.push(b'/');
        prefix.extend_from_slice(c);
        if matches(m, roots, &prefix) {
            return true;
        }
    }
    false
}

/// The verdict for one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Restore it (and everything below it).
    Yes,
    /// Leave it and everything below it out.
    No,
    /// Not selected itself, but something below it may be: look inside.
    Maybe,
}

impl Selection {
    /// Decide for `path`; `parent_selected` if an ancestor was picked.
    pub fn pick(&self, path: &[u8], parent_selected: bool) -> Pick {
        let hit = |m: &Excludes| matches(m, self.roots.as_ref(), path);
        if self.base_hit.0 || self.exclude.as_ref().is_some_and(hit) {
            return Pick::No;
        }
        match &self.include {
            None => Pick::Yes,
            Some(_) if parent_selected || self.base_hit.1 => Pick::Yes,
            Some(i) if hit(i) => Pick::Yes,
            Some(_) => Pick::Maybe,
        }
    }

    /// The nodes restored lie under the snapshot directory `base`
    /// (SNAPSHOT:/PATH): a pattern that matches it or a directory above it
    /// matches them all.
    pub fn under(&mut self, base: &[u8]) {
        let roots = self.roots.as_ref();
        let hit = |m: &Option<Excludes>| m.as_ref().is_some_and(|m| matches_base(m, roots, base));
        self.base_hit = (hit(&self.exclude), hit(&self.include));
    }

    /// True if include patterns are in use.
    pub fn has_include(&self) -> bool {
        self.include.is_some()
    }

    /// How a restore treats `node`, an entry of the snapshot directory `spath`
    /// restored at `dir`; `prev` is the name of the entry before it. The
    /// restore and its verification both walk through this, so they see the
    /// same nodes at the same paths.
    pub(super) fn step(
        &self,
        dir: &Path,
        spath: &[u8],
        node: &Node,
        at_root: bool,
        prev: Option<&[u8]>,
        parent_selected: bool,
    ) -> Step {
        // A name from a damaged or hostile tree must not escape the target
        // or make two nodes share one path (names are strictly sorted).
        if node.name.is_empty()
            || node.name == b"."
            || node.name == b".."
            || (node.name.contains(&b'/') && !(at_root && node.name == b"/"))
            || prev.is_some_and(|p| p >= node.name.as_slice())
        {
            return Step::Refuse;
        }
        let mut child_spath = spath.to_vec();
        if node.name != b"/" {
            child_spath.push(b'/');
            child_spath.extend_from_slice(&node.name);
        }
        let selected = match self.pick(&child_spath, parent_selected) {
            Pick::No => return Step::Skip,
            Pick::Yes => true,
            Pick::Maybe if node.node_type == NodeType::Dir => false,
            Pick::Maybe => return Step::Skip,
        };
        // A backup of "/" restores its contents into the target itself.
        let path = if node.name == b"/" {
            dir.to_path_buf()
        } else {
            dir.join(std::ffi::OsStr::from_bytes(&node.name))
        };
        Step::Visit {
            path,
            spath: child_spath,
            selected,
        }
    }
}

/// The patterns (case-sensitive `patterns`, then `insensitive`) that match
/// nothing among `nodes`, the content of the snapshot directory `base`, at
/// their snapshot paths or (with `roots`) their original ones: an include
/// among them would restore less than asked, an exclude would leave out
/// nothing, and both would still succeed. Walks the trees until every
/// pattern has matched.
pub fn unmatched(
    repo: &Repository,
    nodes: &[Node],
    base: &[u8],
    roots: Option<&Roots>,
    patterns: &[String],
    insensitive: &[String],
) -> crate::error::Result<Vec<String>> {
    let mut left = Vec::new();
    for (p, ci) in patterns
        .iter()
        .map(|p| (p, false))
        .chain(insensitive.iter().map(|p| (p, true)))
    {
        let one = std::slice::from_ref(p);
        let m = match ci {
            false => Excludes::new(one, &[])?,
            true => Excludes::new(&[], one)?,
        };
        if !m.is_empty() {
            left.push((p.clone(), m));
        }
    }
    fn visit(
        repo: &Repository,
        nodes: &[Node],
        spath: &[u8],
        roots: Option<&Roots>,
        left: &mut Vec<(String, Excludes)>,
    ) -> crate::error::Result<()> {
        for n in nodes {
            if left.is_empty() {
                return Ok(());
            }
            // As `Selection::step` builds the paths it matches.
            let mut p = spath.to_vec();
            if n.name != b"/" {
                p.push(b'/');
                p.extend_from_slice(&n.name);
            }
            left.retain(|(_, m)| !matches(m, roots, &p));
            if let (NodeType::Dir, Some(sub), false) = (n.node_type, n.subtree, left.is_empty()) {
                visit(repo, &repo.read_tree(&sub)?.nodes, &p, roots, left)?;
            }
        }
        Ok(())
    }
    left.retain(|(_, m)| !matches_base(m, roots, base));
    visit(repo, nodes, base, roots, &mut left)?;
    Ok(left.into_iter().map(|(p, _)| p).collect())
}

/// What a restore does with one node of a snapshot directory.
pub(super) enum Step {
    /// An unsafe or out-of-order name (damaged or hostile tree): refuse it.
    Refuse,
    /// Left out by the selection, with everything below it.
    Skip,
    /// Visit it at `path` (snapshot path `spath`): restore it if `selected`,
    /// else only look inside (a directory on the way to an --include match).
    Visit {
        path: PathBuf,
        spath: Vec<u8>,
        selected: bool,
    },
}

/// What the restore does with one node that is not a directory, given what
/// the target has at its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Create,
    Replace,
    Keep,
    /// `--overwrite if-changed`: keep it if its content already matches.
    KeepIfSame,
    /// A directory is in the way: a restore never removes one to put a file,
    /// symlink or special file at its name (reported, left as it is).
    Blocked,
}

/// The overwrite policy for `node` (not a directory), in one place for the
/// restore and its dry run; `existing` is the lstat of what `dir` has at its
/// name.
pub(super) fn decide(
    dir: Option<&Dir>,
    existing: Option<&Stat>,
    node: &Node,
    policy: Overwrite,
) -> Decision {
    let (Some(dir), Some(st)) = (dir, existing) else {
        return Decision::Create;
    };
    if st.is_dir() {
        return Decision::Blocked;
    }
    match node.node_type {
        NodeType::File if st.is_file() => match policy {
            Overwrite::Never => Decision::Keep,
            Overwrite::IfNewer if at_least_as_new(st, node) => Decision::Keep,
            // A name of a hard-linked file is written again, never changed in
            // place: the other names may be anywhere.
            Overwrite::IfChanged if node.links <= 1 && st.nlink == 1 => Decision::KeepIfSame,
            _ => Decision::Replace,
        },
        NodeType::Symlink | NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev
            if keep_existing_special(dir, &node.name, st, node, policy) =>
        {
            Decision::Keep
        }
        _ => Decision::Replace,
    }
}

/// `Decision::KeepIfSame`: the file at `node`'s name in `dir`, open for
/// reading, if it is a regular file with no other name and already has
/// `node`'s content (None: it is to be written). The restore sets the
/// metadata of the file returned; its dry run only reports it as kept.
pub(super) fn open_if_same(repo: &Repository, dir: &Dir, node: &Node) -> Option<File> {
    let f = dir.open_read(&node.name).ok()?;
    // Only a file with no other name: the owner and mode set on it must not
    // reach a second name somewhere else.
    let md = f.metadata().ok()?;
    if !md.is_file() || md.nlink() != 1 {
        return None;
    }
    file_matches(repo, &f, node).ok()?.then_some(f)
}

/// True if the existing entry `st` is at least as new (mtime) as `node`.
fn at_least_as_new(st: &Stat, node: &Node) -> bool {
    (st.mtime.0, st.mtime.1) >= (node.mtime.0, node.mtime.1)
}

/// Whether the existing non-file entry `name` of `dir` (symlink, fifo,
/// device node; `st` from lstat) is kept under `policy`: `never` keeps
/// anything already there, `if-newer` keeps what is at least as new,
/// `if-changed` keeps an identical entry (same type and link target or
/// device number).
fn keep_existing_special(
    dir: &Dir,
    name: &[u8],
    st: &Stat,
    node: &Node,
    policy: Overwrite,
) -> bool {
    match policy {
        Overwrite::Always => false,
        Overwrite::Never => !st.is_dir(),
        Overwrite::IfNewer => !st.is_dir() && at_least_as_new(st, node),
        Overwrite::IfChanged => {
            st.kind() == node.node_type
                && match node.node_type {
                    NodeType::Symlink => dir.readlink(name).ok() == node.target,
                    NodeType::Fifo => true,
                    NodeType::Chardev | NodeType::Blockdev => Some(st.rdev) == node.rdev,
                    _ => false,
                }
        }
    }
}

impl std::fmt::Display for Overwrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Overwrite::Always => "always",
            Overwrite::IfChanged => "if-changed",
            Overwrite::IfNewer => "if-newer",
            Overwrite::Never => "never",
        })
    }
}

/// True if `f` is a regular file with exactly the content `node` describes.
pub fn file_matches(repo: &Repository, f: &File, node: &Node) -> std::io::Result<bool> {
    let md = f.metadata()?;
    if !md.is_file() || md.size() != node.size {
        return Ok(false);
    }
    let idx = repo.index();
    let mut off = 0u64;
    let mut buf = Vec::new();
    for id in node.content.as_deref().unwrap_or(&[]) {
        let Some(loc) = idx.get(id) else {
            return Ok(false);
        };
        buf.resize(loc.raw_len as usize, 0);
        if f.read_exact_at(&mut buf, off).is_err()
            || repo.id_keys().blob_id(BlobType::Data, &buf) != *id
        {
            return Ok(false);
        }
        off += loc.raw_len as u64;
    }
    Ok(off == node.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the target has at a node's name decides, whatever the policy,
    /// for the restore and its dry run alike; a directory is never replaced
    /// by something else.
    #[test]
    fn decisions_on_what_the_target_has() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("n")).unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let st = dir.stat(b"n").unwrap();
        for policy in [
            Overwrite::Always,
            Overwrite::IfChanged,
            Overwrite::IfNewer,
            Overwrite::Never,
        ] {
            for t in [NodeType::File, NodeType::Symlink, NodeType::Fifo] {
                let node = crate::format::tree::test_node(b"n", t);
                assert_eq!(
                    decide(Some(&dir), st.as_ref(), &node, policy),
                    Decision::Blocked,
                    "{t:?} {policy}"
                );
                assert_eq!(decide(Some(&dir), None, &node, policy), Decision::Create);
                assert_eq!(decide(None, None, &node, policy), Decision::Create);
            }
        }
        std::fs::remove_dir(d.path().join("n")).unwrap();
        std::fs::write(d.path().join("n"), b"x").unwrap();
        let st = dir.stat(b"n").unwrap();
        let mut node = crate::format::tree::test_node(b"n", NodeType::File);
        node.links = 1;
        let decided = |p| decide(Some(&dir), st.as_ref(), &node, p);
        assert_eq!(decided(Overwrite::Always), Decision::Replace);
        assert_eq!(decided(Overwrite::Never), Decision::Keep);
        assert_eq!(decided(Overwrite::IfChanged), Decision::KeepIfSame);
    }
}
