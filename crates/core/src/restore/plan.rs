//! What a restore would do, without doing it (`--dry-run`), and removal of
//! what the snapshot does not have (`--delete`).

use super::select::{file_matches, Overwrite, Pick};
use super::RestoreOptions;
use crate::error::Result;
use crate::format::tree::{Node, NodeType};
use crate::repo::Repository;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One planned action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Not in the target: would be created.
    Create,
    /// In the target but different: would be replaced.
    Replace,
    /// In the target and already right (or kept by the overwrite policy).
    Keep,
    /// In the target but not in the snapshot: would be removed (--delete).
    Delete,
}

impl Action {
    /// One-letter code for listings.
    pub fn letter(self) -> char {
        match self {
            Action::Create => '+',
            Action::Replace => 'M',
            Action::Keep => '=',
            Action::Delete => '-',
        }
    }
}

/// Report, for every node a restore of `nodes` would touch, what it would do.
pub fn dry_run(
    repo: &Repository,
    nodes: &[Node],
    base: &[u8],
    opts: &RestoreOptions,
    delete: bool,
    out: &mut dyn FnMut(&Path, Action),
) -> Result<()> {
    walk(repo, &opts.target, nodes, base, false, opts, delete, out)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    repo: &Repository,
    dir: &Path,
    nodes: &[Node],
    spath: &[u8],
    parent_selected: bool,
    opts: &RestoreOptions,
    delete: bool,
    out: &mut dyn FnMut(&Path, Action),
) -> Result<()> {
    for n in nodes {
        let mut child = spath.to_vec();
        if n.name != b"/" {
            child.push(b'/');
            child.extend_from_slice(&n.name);
        }
        let selected = match opts.selection.pick(&child, parent_selected) {
            Pick::No => continue,
            Pick::Yes => true,
            Pick::Maybe if n.node_type == NodeType::Dir => false,
            Pick::Maybe => continue,
        };
        let path = if n.name == b"/" {
            dir.to_path_buf()
        } else {
            dir.join(OsStr::from_bytes(&n.name))
        };
        let existing = std::fs::symlink_metadata(&path).ok();
        if selected {
            let action = match (&existing, n.node_type) {
                (None, _) => Action::Create,
                (Some(md), NodeType::Dir) if md.is_dir() => Action::Keep,
                (
                    Some(_),
                    NodeType::Symlink | NodeType::Fifo | NodeType::Chardev | NodeType::Blockdev,
                ) if super::select::keep_existing_special(&path, n, opts.overwrite) => Action::Keep,
                (Some(md), NodeType::File) if md.is_file() => match opts.overwrite {
                    Overwrite::Never => Action::Keep,
                    Overwrite::IfNewer
                        if (md.mtime(), md.mtime_nsec()) >= (n.mtime.0, n.mtime.1 as i64) =>
                    {
                        Action::Keep
                    }
                    Overwrite::IfChanged if file_matches(repo, &path, n)? => Action::Keep,
                    _ => Action::Replace,
                },
                _ => Action::Replace,
            };
            out(&path, action);
        }
        if let (NodeType::Dir, Some(sub)) = (n.node_type, n.subtree) {
            let tree = repo.read_tree(&sub)?;
            walk(
                repo,
                &path,
                &tree.nodes,
                &child,
                selected,
                opts,
                delete,
                out,
            )?;
            if delete && selected {
                for extra in extra_entries(&path, &tree.nodes) {
                    out(&extra, Action::Delete);
                }
            }
        }
    }
    Ok(())
}

/// Entries of the target directory `dir` that the snapshot's `nodes` do not have.
pub fn extra_entries(dir: &Path, nodes: &[Node]) -> Vec<std::path::PathBuf> {
    let want: HashSet<&[u8]> = nodes.iter().map(|n| n.name.as_slice()).collect();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut extra: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter(|e| !want.contains(e.file_name().as_bytes()))
        .map(|e| e.path())
        .collect();
    extra.sort();
    extra
}

/// Remove a target entry the snapshot does not have; never follows a symlink.
pub fn remove_entry(path: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(path)?;
    if md.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
