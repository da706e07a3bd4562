//! Applying image layers (OCI, Docker) one over another, as the OCI image spec's "Applying
//! changesets" says: a whiteout `.wh.NAME` removes NAME of the layers below, an opaque marker
//! `.wh..wh..opq` hides every child of its directory that the layers below gave it, wherever
//! the marker stands in the layer's tar; what the layer itself adds stays. `.wh..wh.plnk` and
//! `.wh..wh.aufs` (AUFS bookkeeping) are ignored, and markers never appear in the result.

use std::collections::{BTreeMap, HashSet};

use super::tree::{Body, Node, Tree};
use crate::error::{Error, Result};

/// The whiteout prefix.
const WH: &[u8] = b".wh.";
/// The opaque directory marker.
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What the layer being applied has added so far: each entry's path, and every directory
/// above one.
#[derive(Default)]
pub(super) struct Layer {
    added: HashSet<Vec<Vec<u8>>>,
    above: HashSet<Vec<Vec<u8>>>,
    /// The layer's number (from 1), for messages.
    pub(super) number: usize,
}

impl Layer {
    pub(super) fn new(number: usize) -> Layer {
        Layer {
            number,
            ..Layer::default()
        }
    }

    /// The layer placed an entry at `path`.
    pub(super) fn added(&mut self, path: &[Vec<u8>]) {
        for i in 0..path.len() {
            self.above.insert(path[..i].to_vec());
        }
        self.added.insert(path.to_vec());
    }

    /// Whether `path` is what this layer added, or holds something it added.
    fn keeps(&self, path: &[Vec<u8>]) -> Option<bool> {
        if self.added.contains(path) {
            Some(true)
        } else if self.above.contains(path) {
            Some(false)
        } else {
            None
        }
    }

    /// Handles `path` if its name is a whiteout or marker: true when it was one (and is not
    /// to be placed in the tree).
    pub(super) fn whiteout(&self, tree: &mut Tree, path: &[Vec<u8>], entry: &str) -> Result<bool> {
        let Some(name) = path.last() else {
            return Ok(false);
        };
        if !name.starts_with(WH) {
            return Ok(false);
        }
        let dir = &path[..path.len() - 1];
        let bad = |why: &str| {
            Error::bad_input(format!("layer {}: {entry}", self.number), why.to_string())
        };
        if name == OPAQUE {
            match tree.get_mut(dir).map(|n| &mut n.body) {
                Some(Body::Dir(children)) => self.prune(children, dir),
                Some(_) => return Err(bad("opaque marker in something that is not a directory")),
                // Nothing below to hide.
                None => {}
            }
            return Ok(true);
        }
        if name.starts_with(b".wh..wh.") {
            return Ok(true);
        }
        let target = &name[WH.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err(bad("malformed whiteout (it names no entry)"));
        }
        let mut gone = dir.to_vec();
        gone.push(target.to_vec());
        if let Some(Body::Dir(children)) = tree.get_mut(dir).map(|n| &mut n.body) {
            match self.keeps(&gone) {
                Some(true) => {}
                Some(false) => {
                    if let Some(Node {
                        body: Body::Dir(below),
                        ..
                    }) = children.get_mut(target)
                    {
                        self.prune(below, &gone);
                    }
                }
                None => {
                    children.remove(target);
                }
            }
        }
        Ok(true)
    }

    /// Removes from `children` (of the directory at `dir`) everything the layers below put
    /// there, keeping what this layer added.
    fn prune(&self, children: &mut BTreeMap<Vec<u8>, Node>, dir: &[Vec<u8>]) {
        let mut path = dir.to_vec();
        children.retain(|name, node| {
            path.push(name.clone());
            let keep = match self.keeps(&path) {
                Some(true) => true,
                Some(false) => {
                    if let Body::Dir(below) = &mut node.body {
                        self.prune(below, &path);
                    }
                    true
                }
                None => false,
            };
            path.pop();
            keep
        });
    }
}
