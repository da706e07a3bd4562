//! The in-memory tree a pack builds before it writes nodes: metadata and chunk lists only.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::node::{ChunkRef, Kind, MAX_DEPTH, check_name};

/// Filtered metadata shared by every kind of entry.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A file's content as known so far.
#[derive(Clone, Debug)]
pub(crate) enum Content {
    /// At most `INLINE_MAX` bytes, kept in the entry.
    Inline(Vec<u8>),
    /// Chunked and stored (total size).
    Chunks(Vec<ChunkRef>, u64),
    /// Not read yet: index into the pack's list of files to read.
    Pending(usize),
}

#[derive(Clone, Debug)]
pub(crate) enum Body {
    File {
        content: Content,
        /// Source identity of the inode, for hardlinks: same key, same file.
        link: Option<u64>,
    },
    Dir(BTreeMap<Vec<u8>, Node>),
    Symlink(Vec<u8>),
    Special(Kind, Option<(u32, u32)>),
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub meta: Meta,
    pub body: Body,
}

/// A whole tree: the root directory.
pub(crate) struct Tree {
    pub root: Node,
}

impl Node {
    pub fn dir(meta: Meta) -> Node {
        Node {
            meta,
            body: Body::Dir(BTreeMap::new()),
        }
    }
}

/// Shows a path made of byte components, for messages.
pub(crate) fn show(path: &[Vec<u8>]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    parts.join("/")
}

impl Tree {
    /// Splits an archive path into checked components: leading `/` and `./` dropped (reported
    /// through `absolute`), `.` components dropped, `..` refused.
    pub fn components(path: &[u8], entry: &str, absolute: &mut bool) -> Result<Vec<Vec<u8>>> {
        if path.first() == Some(&b'/') {
            *absolute = true;
        }
        let mut out = Vec::new();
        for c in path.split(|&b| b == b'/') {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                return Err(Error::bad_input(entry, "path contains '..'"));
            }
            check_name(c).map_err(|why| Error::bad_input(entry, why))?;
            out.push(c.to_vec());
        }
        if out.len() > MAX_DEPTH {
            return Err(Error::bad_input(
                entry,
                format!("deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(out)
    }

    /// The directory that will hold `path`'s last component, creating missing parents with
    /// `implicit` metadata. A parent that exists but is not a directory (a symlink, say) is an
    /// error: nothing is ever placed "through" a symlink.
    pub fn parent_mut(
        &mut self,
        path: &[Vec<u8>],
        implicit: &Meta,
        entry: &str,
    ) -> Result<&mut BTreeMap<Vec<u8>, Node>> {
        let mut node = &mut self.root;
        for (i, comp) in path[..path.len().saturating_sub(1)].iter().enumerate() {
            let Body::Dir(children) = &mut node.body else {
                return Err(Error::bad_input(
                    entry,
                    format!("{} is not a directory", show(&path[..i])),
                ));
            };
            node = children
                .entry(comp.clone())
                .or_insert_with(|| Node::dir(implicit.clone()));
            if !matches!(node.body, Body::Dir(_)) {
                return Err(Error::bad_input(
                    entry,
                    format!(
                        "parent {} is not a directory (a symlink or file is never followed)",
                        show(&path[..=i])
                    ),
                ));
            }
        }
        match &mut node.body {
            Body::Dir(children) => Ok(children),
            _ => Err(Error::bad_input(entry, "parent is not a directory")),
        }
    }

    /// The node at `path`, if any.
    pub fn get(&self, path: &[Vec<u8>]) -> Option<&Node> {
        let mut node = &self.root;
        for comp in path {
            let Body::Dir(children) = &node.body else {
                return None;
            };
            node = children.get(comp)?;
        }
        Some(node)
    }

    /// The node at `path`, if any, mutably.
    pub fn get_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for comp in path {
            let Body::Dir(children) = &mut node.body else {
                return None;
            };
            node = children.get_mut(comp)?;
        }
        Some(node)
    }
}
