//! The inode table of a mount: inode numbers, the names they were found under, and the
//! kernel's lookup counts, so what the kernel forgets leaves the table.

use std::collections::HashMap;
use std::sync::Arc;

use ware_store::node::Kind;

use super::{Node, NodeKind};

/// An inode and the number of lookups the kernel holds on it.
pub(super) struct Slot {
    node: Arc<Node>,
    lookups: u64,
}

/// The inodes the kernel may name. Each lookup the kernel is told of (a found entry, an entry
/// of readdirplus) counts; a `forget` takes its count back, and at zero the inode goes (a
/// later lookup makes a new one), so a long-lived mount holds about what the kernel holds,
/// not everything ever looked up. The roots are never forgotten.
#[derive(Default)]
pub(super) struct Inodes {
    pub(super) nodes: HashMap<u64, Slot>,
    /// The last inode number given (numbers are never reused).
    pub(super) last: u64,
    /// Inodes up to this one stay: the root, and `names/` of an `--all` mount.
    pub(super) pinned: u64,
    pub(super) by_name: HashMap<(u64, Vec<u8>), u64>,
    /// (ware root inode, hardlink group) → inode.
    pub(super) by_link: HashMap<(u64, u64), u64>,
}

/// Where an inode is indexed for interning.
pub(super) enum IndexKey {
    Name((u64, Vec<u8>)),
    Link((u64, u64)),
}

impl Inodes {
    pub(super) fn push(&mut self, parent: u64, name: Vec<u8>, kind: NodeKind) -> Arc<Node> {
        self.last += 1;
        let ino = self.last;
        let node = Arc::new(Node {
            ino,
            parent: if parent == 0 { ino } else { parent },
            name,
            kind,
        });
        self.nodes.insert(
            ino,
            Slot {
                node: node.clone(),
                lookups: 0,
            },
        );
        node
    }
    /// Puts `node` in the place of the inode of its number, if the table holds it, keeping
    /// the kernel's lookups.
    pub(super) fn replace(&mut self, node: &Arc<Node>) {
        if let Some(s) = self.nodes.get_mut(&node.ino) {
            s.node = node.clone();
        }
    }
    pub(super) fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.nodes.get(&ino).map(|s| s.node.clone())
    }
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The key `node` is interned under (none for the roots).
    pub(super) fn index_key(node: &Node) -> Option<IndexKey> {
        match &node.kind {
            NodeKind::AllRoot | NodeKind::NamesDir => None,
            NodeKind::Listed { .. } => Some(IndexKey::Name((node.parent, node.name.clone()))),
            NodeKind::NameLink(target) => {
                let mut k = node.name.clone();
                k.push(0);
                k.extend_from_slice(target.to_string().as_bytes());
                Some(IndexKey::Name((node.parent, k)))
            }
            NodeKind::Ware { ware, entry, .. } => match (entry.kind, entry.hardlink) {
                (Kind::File, Some(g)) => Some(IndexKey::Link((ware.root_ino, g))),
                _ if node.parent == node.ino => None,
                _ => Some(IndexKey::Name((node.parent, node.name.clone()))),
            },
        }
    }

    /// The kernel was told of `node` once more. A node forgotten meanwhile (between the lookup
    /// that found it and now) comes back under its number.
    pub(super) fn looked_up(&mut self, node: &Arc<Node>) {
        if let Some(s) = self.nodes.get_mut(&node.ino) {
            s.lookups += 1;
            return;
        }
        self.nodes.insert(
            node.ino,
            Slot {
                node: node.clone(),
                lookups: 1,
            },
        );
        match Self::index_key(node) {
            Some(IndexKey::Name(k)) => {
                self.by_name.entry(k).or_insert(node.ino);
            }
            Some(IndexKey::Link(k)) => {
                self.by_link.entry(k).or_insert(node.ino);
            }
            None => {}
        }
    }

    /// The kernel dropped `n` of its lookups of `ino`.
    pub(super) fn forget(&mut self, ino: u64, n: u64) {
        if ino <= self.pinned {
            return;
        }
        let Some(s) = self.nodes.get_mut(&ino) else {
            return;
        };
        s.lookups = s.lookups.saturating_sub(n);
        if s.lookups > 0 {
            return;
        }
        let Some(s) = self.nodes.remove(&ino) else {
            return;
        };
        match Self::index_key(&s.node) {
            Some(IndexKey::Name(k)) if self.by_name.get(&k) == Some(&ino) => {
                self.by_name.remove(&k);
            }
            Some(IndexKey::Link(k)) if self.by_link.get(&k) == Some(&ino) => {
                self.by_link.remove(&k);
            }
            _ => {}
        }
    }
}
