//! Turns a packed [`Tree`] into nodes, bottom-up, splitting large directories and files, and
//! numbering hardlink groups; writes children before parents and returns the root's ID.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_bytes::ByteBuf;

use super::tree::{Body, Content, Meta, Node, Tree};
use crate::error::{Error, Result};
use crate::id::{NodeId, WareId};
use crate::node::{
    ChunkRef, DirNode, DirPart, ENTRY_CHUNKS_MAX, Entry, FILE_NODE_FANOUT, FORMAT_V1, FileNode,
    FilePart, Kind, NODE_TARGET, RootNode, encode,
};
use crate::source::{BlockSink, WareRecord};

/// Encoded node bytes gathered before one write.
const NODE_BATCH_BYTES: usize = 4 << 20;

pub(crate) struct Built {
    pub id: WareId,
    pub record: WareRecord,
    pub chunk_refs: u64,
}

struct Builder<'s> {
    sink: &'s dyn BlockSink,
    pending: Vec<(NodeId, Vec<u8>)>,
    pending_bytes: usize,
    /// Hardlink key → number of names in the ware.
    link_counts: HashMap<u64, u32>,
    /// Hardlink key → group number, assigned on first appearance.
    groups: HashMap<u64, u64>,
    record: WareRecord,
    chunk_refs: u64,
}

pub(crate) fn build(sink: &dyn BlockSink, tree: Tree) -> Result<Built> {
    let mut b = Builder {
        sink,
        pending: Vec::new(),
        pending_bytes: 0,
        link_counts: HashMap::new(),
        groups: HashMap::new(),
        record: WareRecord::default(),
        chunk_refs: 0,
    };
    count_links(&tree.root, &mut b.link_counts);
    let root = b.entry(Vec::new(), tree.root)?;
    let bytes = encode(&RootNode {
        format: FORMAT_V1.to_string(),
        root,
    });
    let id = NodeId::of(&bytes);
    b.push(id, bytes)?;
    b.flush()?;
    b.record.packed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Built {
        id,
        record: b.record,
        chunk_refs: b.chunk_refs,
    })
}

fn count_links(node: &Node, counts: &mut HashMap<u64, u32>) {
    match &node.body {
        Body::File { link: Some(k), .. } => *counts.entry(*k).or_default() += 1,
        Body::Dir(children) => children.values().for_each(|c| count_links(c, counts)),
        _ => {}
    }
}

fn base_entry(name: Vec<u8>, kind: Kind, meta: Meta) -> Entry {
    let mut e = Entry::new(name, kind);
    e.mode = meta.mode;
    e.uid = meta.uid;
    e.gid = meta.gid;
    e.mtime = meta.mtime;
    e.mtime_nsec = meta.mtime_nsec;
    e.xattrs = meta
        .xattrs
        .into_iter()
        .map(|(n, v)| (ByteBuf::from(n), ByteBuf::from(v)))
        .collect();
    e
}

impl Builder<'_> {
    fn push(&mut self, id: NodeId, bytes: Vec<u8>) -> Result<()> {
        self.pending_bytes += bytes.len();
        self.pending.push((id, bytes));
        if self.pending_bytes >= NODE_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.sink.put_nodes(&self.pending)?;
            self.pending.clear();
            self.pending_bytes = 0;
        }
        Ok(())
    }

    fn write<T: serde::Serialize>(&mut self, node: &T) -> Result<NodeId> {
        let bytes = encode(node);
        let id = NodeId::of(&bytes);
        self.push(id, bytes)?;
        Ok(id)
    }

    /// Builds the entry of `node` (and every node below it).
    fn entry(&mut self, name: Vec<u8>, node: Node) -> Result<Entry> {
        match node.body {
            Body::Dir(children) => {
                self.record.dirs += 1;
                let mut entries = Vec::with_capacity(children.len());
                for (child_name, child) in children {
                    entries.push(self.entry(child_name, child)?);
                }
                let mut e = base_entry(name, Kind::Dir, node.meta);
                e.dir = Some(self.dir(entries)?.0);
                Ok(e)
            }
            Body::File { content, link } => {
                let mut e = base_entry(name, Kind::File, node.meta);
                let first_name =
                    match link.filter(|k| self.link_counts.get(k).copied().unwrap_or(0) > 1) {
                        Some(k) => {
                            let next = self.groups.len() as u64 + 1;
                            let mut first = false;
                            let g = *self.groups.entry(k).or_insert_with(|| {
                                first = true;
                                next
                            });
                            e.hardlink = Some(g);
                            first
                        }
                        None => true,
                    };
                match content {
                    Content::Inline(d) => {
                        e.size = d.len() as u64;
                        if !d.is_empty() {
                            e.inline = Some(ByteBuf::from(d));
                        }
                    }
                    Content::Chunks(chunks, size) => {
                        e.size = size;
                        self.chunk_refs += chunks.len() as u64;
                        if chunks.len() <= ENTRY_CHUNKS_MAX {
                            e.chunks = chunks;
                        } else {
                            e.file = Some(self.file(chunks)?.0);
                        }
                    }
                    Content::Pending(_) => {
                        return Err(Error::Db(
                            "internal error: file content not read before building".into(),
                        ));
                    }
                }
                if first_name {
                    self.record.files += 1;
                    self.record.logical_bytes += e.size;
                }
                Ok(e)
            }
            Body::Symlink(target) => {
                self.record.symlinks += 1;
                let mut e = base_entry(name, Kind::Symlink, node.meta);
                e.target = Some(ByteBuf::from(target));
                Ok(e)
            }
            Body::Special(kind, rdev) => {
                self.record.specials += 1;
                let mut e = base_entry(name, kind, node.meta);
                e.rdev = rdev;
                Ok(e)
            }
        }
    }

    /// Writes a directory's entries as one node, or as parts under index nodes, each filled up
    /// to [`NODE_TARGET`] encoded bytes in name order.
    fn dir(&mut self, entries: Vec<Entry>) -> Result<NodeId> {
        let sizes: Vec<usize> = entries.iter().map(|e| encode(e).len()).collect();
        if sizes.iter().sum::<usize>() <= NODE_TARGET {
            return self.write(&DirNode {
                entries,
                parts: vec![],
            });
        }
        let mut parts = Vec::new();
        let mut group: Vec<Entry> = Vec::new();
        let mut group_bytes = 0;
        for (e, size) in entries.into_iter().zip(sizes) {
            if !group.is_empty() && group_bytes + size > NODE_TARGET {
                parts.push(self.dir_part(std::mem::take(&mut group))?);
                group_bytes = 0;
            }
            group_bytes += size;
            group.push(e);
        }
        if !group.is_empty() {
            parts.push(self.dir_part(group)?);
        }
        // Index levels until the parts fit in one node.
        loop {
            let sizes: Vec<usize> = parts.iter().map(|p| encode(p).len()).collect();
            if sizes.iter().sum::<usize>() <= NODE_TARGET {
                return self.write(&DirNode {
                    entries: vec![],
                    parts,
                });
            }
            let mut upper = Vec::new();
            let mut group: Vec<DirPart> = Vec::new();
            let mut group_bytes = 0;
            for (p, size) in parts.into_iter().zip(sizes) {
                if !group.is_empty() && group_bytes + size > NODE_TARGET {
                    upper.push(self.index_part(std::mem::take(&mut group))?);
                    group_bytes = 0;
                }
                group_bytes += size;
                group.push(p);
            }
            if !group.is_empty() {
                upper.push(self.index_part(group)?);
            }
            parts = upper;
        }
    }

    fn dir_part(&mut self, entries: Vec<Entry>) -> Result<DirPart> {
        let first = entries[0].name.clone();
        let count = entries.len() as u64;
        let id = self.write(&DirNode {
            entries,
            parts: vec![],
        })?;
        Ok(DirPart(first, id.0, count))
    }

    fn index_part(&mut self, parts: Vec<DirPart>) -> Result<DirPart> {
        let first = parts[0].0.clone();
        let count = parts.iter().map(|p| p.2).sum();
        let id = self.write(&DirNode {
            entries: vec![],
            parts,
        })?;
        Ok(DirPart(first, id.0, count))
    }

    /// Writes a long chunk list as file nodes of at most [`FILE_NODE_FANOUT`] references each,
    /// under index nodes of the same fan-out.
    fn file(&mut self, chunks: Vec<ChunkRef>) -> Result<NodeId> {
        let mut parts = Vec::new();
        for group in chunks.chunks(FILE_NODE_FANOUT) {
            let node = FileNode {
                chunks: group.to_vec(),
                parts: vec![],
            };
            let size = node.size();
            parts.push(FilePart(self.write(&node)?.0, size));
        }
        while parts.len() > 1 {
            let mut upper = Vec::new();
            for group in parts.chunks(FILE_NODE_FANOUT) {
                let node = FileNode {
                    chunks: vec![],
                    parts: group.to_vec(),
                };
                let size = node.size();
                upper.push(FilePart(self.write(&node)?.0, size));
            }
            parts = upper;
        }
        NodeId::from_cid(parts[0].0)
    }
}
