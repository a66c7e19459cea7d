//! Tree blobs (format.md §7.1): one CBOR map per directory, nodes sorted by
//! raw name bytes.

use super::Id;
use serde::{Deserialize, Serialize};

/// Kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    File,
    Dir,
    Symlink,
    Fifo,
    Chardev,
    Blockdev,
    Socket,
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Time(pub i64, pub u32);

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(rename = "type")]
    pub node_type: NodeType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default)]
    pub size: u64,
    pub mtime: Time,
    pub ctime: Time,
    /// Not recorded for directories and symlinks: listing a directory or
    /// reading a link changes it, which would make every unchanged subtree a
    /// new tree blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<Time>,
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub device_id: u64,
    #[serde(default)]
    pub links: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub target: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<Id>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holes: Vec<(u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// Flag: the file changed while it was read.
pub const FLAG_CHANGED: &str = "changed_during_read";
/// Flag: the extended attributes could not be read; `xattrs` may be incomplete.
pub const FLAG_XATTRS_UNREADABLE: &str = "xattrs_unreadable";

/// A node with plain metadata, for unit tests that build trees by hand.
#[cfg(test)]
pub(crate) fn test_node(name: &[u8], node_type: NodeType) -> Node {
    Node {
        name: name.to_vec(),
        node_type,
        mode: 0o755,
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        size: 0,
        mtime: Time(1, 0),
        ctime: Time(1, 0),
        atime: None,
        inode: 1,
        device_id: 1,
        links: 1,
        rdev: None,
        target: None,
        content: None,
        holes: vec![],
        subtree: None,
        xattrs: vec![],
        flags: vec![],
    }
}

/// A directory: its nodes sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort nodes by raw name bytes, as the format requires.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Find a node by name (nodes are sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let b: Option<serde_bytes::ByteBuf> = Deserialize::deserialize(d)?;
        Ok(b.map(|b| b.into_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{from_cbor, to_cbor};
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>(), 1..40),
            0usize..7,
            any::<(u32, u32, u32, u64, i64, u32)>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<[u8; 32]>(), 0..5)),
            proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..10),
                    proptest::collection::vec(any::<u8>(), 0..10),
                ),
                0..3,
            ),
        )
            .prop_map(
                |(name, t, (mode, uid, gid, size, sec, ns), target, content, holes, xattrs)| Node {
                    name,
                    node_type: [
                        NodeType::File,
                        NodeType::Dir,
                        NodeType::Symlink,
                        NodeType::Fifo,
                        NodeType::Chardev,
                        NodeType::Blockdev,
                        NodeType::Socket,
                    ][t],
                    mode,
                    uid,
                    gid,
                    user: Some("u".into()),
                    group: None,
                    size,
                    mtime: Time(sec, ns),
                    ctime: Time(-sec / 2, ns / 2),
                    atime: Some(Time(0, 0)),
                    inode: size ^ 7,
                    device_id: 3,
                    links: 1,
                    rdev: None,
                    target,
                    content: content.map(|c| c.into_iter().map(Id).collect()),
                    holes,
                    subtree: None,
                    xattrs: xattrs
                        .into_iter()
                        .map(|(a, b)| {
                            (serde_bytes::ByteBuf::from(a), serde_bytes::ByteBuf::from(b))
                        })
                        .collect(),
                    flags: vec![],
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..8)) {
            let mut t = Tree { nodes };
            t.sort();
            let b = to_cbor(&t).unwrap();
            let back: Tree = from_cbor(&b, "tree").unwrap();
            prop_assert_eq!(back, t);
        }
    }
}
