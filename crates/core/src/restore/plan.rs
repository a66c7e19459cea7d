//! Plan, the first stage of a restore: walk the snapshot's trees through
//! the selection, take for each node the overwrite decision of `select.rs`
//! on what the target already has at its name, and do the directory-level
//! work — create directories, symlinks and special files, remove what
//! `--delete` removes — handing regular files to the writers. A dry run is
//! this same walk with the same decisions (`Mode::DryRun`); it only reports
//! them, and reports as errors what the restore would report.
//!
//! Every directory is reached from its parent's descriptor without following
//! a symlink (see `dir`). A directory only passed through on the way to an
//! `--include` match is created when something below it is restored; one
//! the target has as a symlink or file is replaced then, as a restored one is.
//! A directory the target has where the snapshot has something else is
//! never removed (only `--delete` removes directories, and only extra names).

use super::dir::{self, Dir};
use super::metadata::{apply_metadata_at, privileges, without_privileges};
use super::select::{self, Decision, Step};
use super::write::FileJob;
use super::{Ctx, RestoreStats};
use crate::format::tree::{Node, NodeType};
use crossbeam_channel::Sender;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// A restore writes; a dry run reports.
pub(super) enum Mode<'a> {
    Restore(Sender<FileJob>),
    DryRun(&'a mut dyn FnMut(&Path, Action)),
}

/// A directory of the target on the walk's current path.
struct Level {
    /// Path relative to the target ("a/b"; empty: the target).
    rel: Vec<u8>,
    path: PathBuf,
    /// Its snapshot node, for its metadata.
    node: Option<Node>,
    state: State,
}

#[derive(Clone)]
enum State {
    Open(Arc<Dir>),
    /// Not a directory in the target (missing, or something else there):
    /// made when something below it is restored.
    Pending,
    /// Dry run: would be made (so everything below would be created).
    Absent,
    /// Could not be made (reported); nothing below it is restored.
    Failed,
}

/// What the walk leaves for the stages after it.
#[derive(Default)]
pub(super) struct Planned {
    /// Hard links to make once the writers are done: (name, first name), relative.
    pub links: Vec<(Vec<u8>, Vec<u8>)>,
    /// Directories whose metadata is set last (parents before children), relative.
    pub dirs: Vec<(Vec<u8>, Node)>,
    /// Entries left as they were by the overwrite policy (for --verify).
    pub kept: HashSet<PathBuf>,
    pub stats: RestoreStats,
}

pub(super) struct Planner<'a, 'c> {
    ctx: &'a Ctx<'c>,
    mode: Mode<'a>,
    levels: Vec<Level>,
    /// First name restored of each hard-linked inode of the snapshot.
    first_names: HashMap<(u64, u64), Vec<u8>>,
    out: Planned,
}

/// `rel` + "/" + `name`.
pub(super) fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        r.extend_from_slice(rel);
        r.push(b'/');
    }
    r.extend_from_slice(name);
    r
}

impl<'a, 'c> Planner<'a, 'c> {
    /// A walk from the target `root` (None: a dry run into a target that does not exist yet).
    pub fn new(ctx: &'a Ctx<'c>, root: Option<Arc<Dir>>, mode: Mode<'a>) -> Self {
        let state = match root {
            Some(d) => State::Open(d),
            None => State::Absent,
        };
        Planner {
            ctx,
            mode,
            levels: vec![Level {
                rel: Vec::new(),
                path: ctx.opts.target.clone(),
                node: None,
                state,
            }],
            first_names: HashMap::new(),
            out: Planned::default(),
        }
    }

    /// Walk `nodes`, the content of the snapshot directory `base`.
    pub fn plan(mut self, nodes: &[Node], base: &[u8]) -> Planned {
        self.plan_tree(nodes, true, base, false);
        self.out
    }

    fn dry(&self) -> bool {
        matches!(self.mode, Mode::DryRun(_))
    }

    fn report(&mut self, path: &Path, action: Action) {
        if let Mode::DryRun(out) = &mut self.mode {
            out(path, action);
        }
    }

    fn plan_tree(&mut self, nodes: &[Node], at_root: bool, spath: &[u8], parent_selected: bool) {
        let opts = self.ctx.opts;
        let mut prev: Option<&[u8]> = None;
        for node in nodes {
            if crate::interrupt::requested() {
                return;
            }
            let here = &self.levels[self.levels.len() - 1].path;
            let step = opts
                .selection
                .step(here, spath, node, at_root, prev, parent_selected);
            prev = Some(&node.name);
            let (path, child_spath, selected) = match step {
                Step::Refuse => {
                    let shown = String::from_utf8_lossy(&node.name);
                    self.ctx.error(
                        here,
                        format!("refusing unsafe or duplicate name {shown:?} (damaged tree)"),
                    );
                    continue;
                }
                Step::Skip => continue,
                Step::Visit {
                    path,
                    spath,
                    selected,
                } => (path, spath, selected),
            };
            let node = match opts.no_special {
                false => Cow::Borrowed(node),
                true => {
                    let tamed = without_privileges(node);
                    if selected {
                        self.count_taming(node, tamed.is_none());
                    }
                    match tamed {
                        Some(n) => n,
                        None => continue,
                    }
                }
            };
            if node.node_type == NodeType::Dir {
                self.plan_dir(path, &node, &child_spath, selected);
            } else if selected {
                if let Err(e) = self.plan_leaf(&path, &node) {
                    self.ctx.fail(&path, e);
                }
            }
        }
    }

    fn count_taming(&mut self, node: &Node, skipped: bool) {
        let s = &mut self.out.stats;
        if skipped {
            s.devices_skipped += 1;
            return;
        }
        let (setid, cap) = privileges(node);
        s.setid_dropped += u64::from(setid);
        s.capabilities_dropped += u64::from(cap);
    }

    fn plan_dir(&mut self, path: PathBuf, node: &Node, spath: &[u8], selected: bool) {
        let top = &self.levels[self.levels.len() - 1];
        // A backup of "/" restores its contents into the target itself.
        let itself = node.name == b"/";
        let rel = match itself {
            true => top.rel.clone(),
            false => join_rel(&top.rel, &node.name),
        };
        let state = match &top.state {
            _ if itself => top.state.clone(),
            State::Open(parent) => match parent.stat(&node.name) {
                Ok(Some(st)) if st.is_dir() => match parent.open_dir(&node.name) {
                    Ok(d) => State::Open(Arc::new(d)),
                    Err(e) => return self.ctx.fail(&path, dir::open_error(&e)),
                },
                Ok(_) => State::Pending,
                Err(e) => return self.ctx.fail(&path, format!("cannot look at it: {e}")),
            },
            // Reported where it failed.
            State::Failed => return,
            State::Pending | State::Absent => State::Pending,
        };
        // Before anything is changed: a directory whose content cannot be
        // read is neither made nor emptied by --delete.
        let tree = match node.subtree {
            None => Err("directory without a subtree".to_string()),
            Some(id) => self.ctx.repo.read_tree(&id).map_err(|e| e.to_string()),
        };
        let tree = match tree {
            Ok(t) => t,
            Err(e) => {
                return self
                    .ctx
                    .fail(&path, format!("directory contents not restored: {e}"))
            }
        };
        let existed = matches!(state, State::Open(_));
        self.levels.push(Level {
            rel,
            path: path.clone(),
            node: Some(node.clone()),
            state,
        });
        let i = self.levels.len() - 1;
        if existed {
            self.record_dir(i);
            if selected {
                self.report(&path, Action::Keep);
            }
        } else if selected && self.make_dir(i).is_err() {
            self.levels.pop();
            return;
        }
        if selected && existed {
            self.delete_extras(i, &tree.nodes);
        }
        self.plan_tree(&tree.nodes, false, spath, selected);
        self.levels.pop();
    }

    /// Directory metadata is set at the end, deepest first: record it.
    fn record_dir(&mut self, i: usize) {
        if self.dry() {
            return;
        }
        let level = &self.levels[i];
        if let Some(node) = &level.node {
            self.out.dirs.push((level.rel.clone(), node.clone()));
        }
    }

    /// Make the directory of level `i` (and those above it) exist, private
    /// until its metadata is set at the end; Ok(None) in a dry run where it
    /// does not exist yet, Err once reported.
    fn make_dir(&mut self, i: usize) -> Result<Option<Arc<Dir>>, ()> {
        match &self.levels[i].state {
            State::Open(d) => return Ok(Some(d.clone())),
            State::Absent => return Ok(None),
            State::Failed => return Err(()),
            State::Pending => {}
        }
        // The target's own level is never pending.
        let parent = self.make_dir(i.checked_sub(1).ok_or(())?)?;
        let path = self.levels[i].path.clone();
        let made = match parent {
            None => {
                self.report(&path, Action::Create);
                Ok(State::Absent)
            }
            Some(parent) => self.replace_with_dir(&parent, i, &path),
        };
        match made {
            Ok(state) => {
                let opened = match &state {
                    State::Open(d) => Some(d.clone()),
                    _ => None,
                };
                self.levels[i].state = state;
                self.record_dir(i);
                // The summary counts the directories made, not those walked
                // through or found in place.
                if !self.dry() {
                    self.out.stats.dirs += 1;
                }
                Ok(opened)
            }
            Err(e) => {
                self.ctx.fail(&path, e);
                self.levels[i].state = State::Failed;
                Err(())
            }
        }
    }

    fn replace_with_dir(&mut self, parent: &Dir, i: usize, path: &Path) -> Result<State, String> {
        let name = match &self.levels[i].node {
            Some(n) => n.name.clone(),
            None => return Err("the target itself cannot be made here".into()),
        };
        let existing = parent
            .stat(&name)
            .map_err(|e| format!("cannot look at it: {e}"))?;
        if self.dry() {
            let action = match existing {
                Some(_) => Action::Replace,
                None => Action::Create,
            };
            self.report(path, action);
            return Ok(State::Absent);
        }
        match existing {
            // Made meanwhile (by someone else): opened below like any other.
            Some(st) if st.is_dir() => {}
            Some(_) => {
                parent
                    .unlink(&name)
                    .map_err(|e| format!("cannot replace the existing entry: {e}"))?;
                parent
                    .mkdir(&name, 0o700)
                    .map_err(|e| format!("cannot create directory: {e}"))?;
            }
            None => parent
                .mkdir(&name, 0o700)
                .map_err(|e| format!("cannot create directory: {e}"))?,
        }
        match parent.open_dir(&name) {
            Ok(d) => Ok(State::Open(Arc::new(d))),
            Err(e) => Err(dir::open_error(&e)),
        }
    }

    /// Remove (or, in a dry run, list) what the directory of level `i` has
    /// and its snapshot `nodes` do not: everything with --delete, else only
    /// temporary files a killed restore left behind.
    fn delete_extras(&mut self, i: usize, nodes: &[Node]) {
        let State::Open(d) = self.levels[i].state.clone() else {
            return;
        };
        let path = self.levels[i].path.clone();
        let want: HashSet<&[u8]> = nodes.iter().map(|n| n.name.as_slice()).collect();
        let mut names = match d.names() {
            Ok(n) => n,
            Err(e) => {
                return self
                    .ctx
                    .error(&path, format!("cannot list it for --delete: {e}"))
            }
        };
        let delete = self.ctx.opts.delete;
        names.retain(|n| !want.contains(n.as_slice()) && (delete || dir::is_temp_name(n)));
        names.sort();
        for name in names {
            let shown = path.join(OsStr::from_bytes(&name));
            if self.dry() {
                self.report(&shown, Action::Delete);
                continue;
            }
            match d.remove_all(&name) {
                Ok(()) => self.out.stats.deleted += u64::from(delete),
                Err(e) => self.ctx.error(&shown, format!("cannot delete: {e}")),
            }
        }
    }

    /// A selected node that is not a directory.
    fn plan_leaf(&mut self, path: &Path, node: &Node) -> Result<(), String> {
        // A socket is recreated by the program that owns it; nothing to restore.
        if node.node_type == NodeType::Socket {
            return Ok(());
        }
        let Ok(dir) = self.make_dir(self.levels.len() - 1) else {
            // Reported for the directory.
            return Ok(());
        };
        let existing = match &dir {
            Some(d) => d
                .stat(&node.name)
                .map_err(|e| format!("cannot look at the existing entry: {e}"))?,
            None => None,
        };
        let decision = select::decide(
            dir.as_deref(),
            existing.as_ref(),
            node,
            self.ctx.opts.overwrite,
        );
        if decision == Decision::Blocked {
            return Err(
                "a directory is in the way; left as it is (a restore does not remove a directory to put something else there)"
                    .into(),
            );
        }
        if self.dry() {
            let action = match decision {
                Decision::Create => Action::Create,
                // (Blocked returned above.)
                Decision::Replace | Decision::Blocked => Action::Replace,
                Decision::Keep => Action::Keep,
                // The same check the writer makes before it writes anything.
                Decision::KeepIfSame => match dir
                    .as_deref()
                    .and_then(|d| select::open_if_same(self.ctx.repo, d, node))
                {
                    Some(_) => Action::Keep,
                    None => Action::Replace,
                },
            };
            self.report(path, action);
            return Ok(());
        }
        let Some(dir) = dir else {
            return Err("its directory does not exist".into());
        };
        if decision == Decision::Keep {
            self.out.stats.kept += 1;
            if self.ctx.opts.verify {
                self.out.kept.insert(path.to_path_buf());
            }
            return Ok(());
        }
        match node.node_type {
            NodeType::File => {
                self.plan_file(dir, path, node, decision == Decision::KeepIfSame);
                Ok(())
            }
            _ => self.make_special(&dir, node, existing.is_some()),
        }
    }

    fn plan_file(&mut self, dir: Arc<Dir>, path: &Path, node: &Node, check_existing: bool) {
        let rel_dir = self.levels[self.levels.len() - 1].rel.clone();
        if !check_existing && node.links > 1 {
            let key = (node.device_id, node.inode);
            let rel = join_rel(&rel_dir, &node.name);
            if let Some(first) = self.first_names.get(&key) {
                // Linked once the first name is written and verified.
                self.out.links.push((rel, first.clone()));
                return;
            }
            self.first_names.insert(key, rel);
        }
        self.out.stats.files += 1;
        if let Mode::Restore(tx) = &self.mode {
            let _ = tx.send(FileJob {
                dir,
                rel_dir,
                path: path.to_path_buf(),
                node: node.clone(),
                check_existing,
            });
        }
    }

    fn make_special(&mut self, dir: &Dir, node: &Node, exists: bool) -> Result<(), String> {
        let name = &node.name;
        if exists {
            dir.unlink(name)
                .map_err(|e| format!("cannot replace the existing entry: {e}"))?;
        }
        if node.node_type == NodeType::Symlink {
            let target = node.target.as_deref().ok_or("symlink without a target")?;
            dir.symlink(target, name)
                .map_err(|e| format!("cannot create symlink: {e}"))?;
        } else {
            let kind = match node.node_type {
                NodeType::Fifo => libc::S_IFIFO,
                NodeType::Chardev => libc::S_IFCHR,
                _ => libc::S_IFBLK,
            };
            // Private until its metadata is set, right below.
            dir.mknod(name, kind | 0o600, node.rdev.unwrap_or(0))
                .map_err(|e| format!("cannot create special file: {e}"))?;
        }
        self.out.stats.others += 1;
        apply_metadata_at(dir, name, node, self.ctx.opts.owners)
            .map_err(|e| format!("cannot set metadata: {e}"))
    }
}
