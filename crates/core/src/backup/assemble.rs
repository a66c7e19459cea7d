//! The assembler, last stage before the snapshot: receives the walker's
//! events in walk order, waits for each changed file's node from its reader,
//! and stores one tree blob per directory, children first; the root tree's
//! id is what the snapshot records.
//!
//! Invariants: a tree's nodes are sorted by name, so the same directory
//! always encodes to the same blob; a directory whose nodes equal its parent
//! snapshot's version (and whose blob the repository has) reuses that blob's
//! id without encoding it again. After a fatal error (`abort`) no root is
//! returned, so no snapshot is written.

use super::walk::Event;
use super::Shared;
use crate::format::tree::{Node, Tree};
use crate::format::{to_cbor, BlobType, Id};
use crossbeam_channel::Receiver;
use std::sync::atomic::Ordering;

/// Build trees from walker events; returns the root tree id.
pub(super) fn assemble(sh: &Shared<'_>, events: Receiver<Vec<Event>>) -> Option<Id> {
    let mut stack: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
    let store_tree = |nodes: Vec<Node>| -> Option<Id> {
        let mut t = Tree { nodes };
        t.sort();
        let bytes = match to_cbor(&t) {
            Ok(b) => b,
            Err(e) => {
                sh.fail(e);
                return None;
            }
        };
        match sh.sink.add(BlobType::Tree, &bytes) {
            Ok((id, _)) => Some(id),
            Err(e) => {
                sh.fail(e);
                None
            }
        }
    };
    for ev in events.into_iter().flatten() {
        match ev {
            Event::Enter(n) => stack.push((Some(n), Vec::new())),
            Event::Ready(n) => stack.last_mut()?.1.push(n),
            Event::Pending(rx) => {
                if let Ok(Some(n)) = rx.recv() {
                    stack.last_mut()?.1.push(n);
                }
            }
            Event::Leave(parent) => {
                let (node, mut nodes) = stack.pop()?;
                let mut node = node?;
                nodes.sort_by(|a, b| a.name.cmp(&b.name));
                let p = &sh.progress;
                let counter = match &parent {
                    None => &p.dirs_new,
                    Some((_, t)) if t.nodes == nodes => &p.dirs_unmodified,
                    Some(_) => &p.dirs_changed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // Unchanged directory: same nodes give the same blob; skip encoding it.
                let reuse = parent
                    .filter(|(id, t)| t.nodes == nodes && sh.sink.is_known(id))
                    .map(|p| p.0);
                node.subtree = Some(match reuse {
                    Some(id) => id,
                    None => store_tree(nodes)?,
                });
                stack.last_mut()?.1.push(node);
            }
        }
    }
    if sh.abort.load(Ordering::Relaxed) || stack.len() != 1 {
        return None;
    }
    let (_, nodes) = stack.pop()?;
    store_tree(nodes)
}
