//! Reading a ware's tree over any [`BlockSource`]: resolve paths, list directories (split ones
//! included), and stream file contents chunk by chunk.

use std::io::Write;

use crate::error::{Error, Result};
use crate::id::{NodeId, WareId};
use crate::node::{ChunkRef, DirNode, Entry, FileNode, Kind, RootNode};
use crate::source::{BlockSource, WareRecord};

/// Deepest chain of index nodes (split directories or files) a reader follows. Writers need
/// about 3 levels for any real tree; a hostile ware cannot make a reader recurse without bound.
pub const MAX_INDEX_DEPTH: usize = 16;

fn too_deep(id: &NodeId) -> Error {
    Error::CorruptNode {
        id: *id,
        why: format!("index nodes nested deeper than {MAX_INDEX_DEPTH} levels"),
    }
}

/// Looks up one name in a directory, reading its (possibly split) directory nodes through
/// `load`: binary search in each node, down through the parts. Callers with a cache of decoded
/// nodes hand it in here.
pub fn lookup_in<N: std::ops::Deref<Target = DirNode>>(
    dir: &Entry,
    name: &[u8],
    load: &mut dyn FnMut(&NodeId) -> Result<N>,
) -> Result<Option<Entry>> {
    let mut id = dir.dir_id()?;
    for _ in 0..=MAX_INDEX_DEPTH {
        let node = load(&id)?;
        if node.parts.is_empty() {
            return Ok(node
                .entries
                .binary_search_by(|e| e.name.as_slice().cmp(name))
                .ok()
                .map(|i| node.entries[i].clone()));
        }
        // The part whose first name is the greatest one not after `name`.
        let i = node.parts.partition_point(|p| p.0.as_slice() <= name);
        if i == 0 {
            return Ok(None);
        }
        id = NodeId::from_cid(node.parts[i - 1].1)?;
    }
    Err(too_deep(&id))
}

/// Most entries [`Reader::record`] counts before it gives up on a ware.
pub const RECORD_MAX_ENTRIES: u64 = 100_000_000;

/// Walks wares stored in (or reachable through) a block source.
pub struct Reader<'a> {
    src: &'a dyn BlockSource,
}

impl<'a> Reader<'a> {
    /// A reader over `src`.
    pub fn new(src: &'a dyn BlockSource) -> Self {
        Reader { src }
    }

    /// The root entry of a ware (an unnamed directory).
    pub fn root(&self, ware: &WareId) -> Result<Entry> {
        let bytes = self.src.node(ware).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: "ware",
                id: ware.to_string(),
            },
            other => other,
        })?;
        Ok(RootNode::decode(ware, &bytes)?.root)
    }

    fn dir_node(&self, id: &NodeId) -> Result<DirNode> {
        DirNode::decode(id, &self.src.node(id)?)
    }

    /// Every entry of a directory, in name order.
    pub fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.for_each_entry(dir, &mut |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// Visits a directory's entries in name order without holding them all at once.
    pub fn for_each_entry(
        &self,
        dir: &Entry,
        f: &mut dyn FnMut(Entry) -> Result<()>,
    ) -> Result<()> {
        self.visit(&dir.dir_id()?, f, 0)
    }

    fn visit(
        &self,
        id: &NodeId,
        f: &mut dyn FnMut(Entry) -> Result<()>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_INDEX_DEPTH {
            return Err(too_deep(id));
        }
        let node = self.dir_node(id)?;
        for e in node.entries {
            f(e)?;
        }
        for part in &node.parts {
            self.visit(&NodeId::from_cid(part.1)?, f, depth + 1)?;
        }
        Ok(())
    }

    /// Looks up one name in a directory (binary search through split parts).
    pub fn lookup(&self, dir: &Entry, name: &[u8]) -> Result<Option<Entry>> {
        lookup_in(dir, name, &mut |id| self.dir_node(id).map(Box::new))
    }

    /// Resolves a `/`-separated path inside a ware (empty or `/` is the root). Symlinks are not
    /// followed: the path names entries as stored.
    pub fn resolve(&self, ware: &WareId, path: &[u8]) -> Result<Entry> {
        let mut entry = self.root(ware)?;
        let mut so_far = Vec::new();
        for comp in path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
        {
            if !so_far.is_empty() {
                so_far.push(b'/');
            }
            so_far.extend_from_slice(comp);
            let shown = || String::from_utf8_lossy(&so_far).into_owned();
            if entry.kind != Kind::Dir {
                return Err(Error::NotADirectory {
                    ware: *ware,
                    path: shown(),
                });
            }
            if comp == b".." {
                return Err(Error::NoSuchPath {
                    ware: *ware,
                    path: shown(),
                });
            }
            entry = self
                .lookup(&entry, comp)?
                .ok_or_else(|| Error::NoSuchPath {
                    ware: *ware,
                    path: shown(),
                })?;
        }
        Ok(entry)
    }

    /// The chunk list of a file entry, expanding file nodes.
    pub fn chunks(&self, file: &Entry) -> Result<Vec<ChunkRef>> {
        let mut out = file.chunks.clone();
        if let Some(f) = file.file {
            self.file_chunks(&NodeId::from_cid(f)?, &mut out, 0)?;
        }
        Ok(out)
    }

    fn file_chunks(&self, id: &NodeId, out: &mut Vec<ChunkRef>, depth: usize) -> Result<()> {
        if depth > MAX_INDEX_DEPTH {
            return Err(too_deep(id));
        }
        let node = FileNode::decode(id, &self.src.node(id)?)?;
        out.extend(node.chunks);
        for p in &node.parts {
            self.file_chunks(&NodeId::from_cid(p.0)?, out, depth + 1)?;
        }
        Ok(())
    }

    /// Visits every node of a ware once (root first, then depth-first in name order) with
    /// its encoded bytes, and every chunk reference in file order (repeats included). The
    /// walk keeps its own stack, so deep trees do not recurse.
    pub fn walk_ware(
        &self,
        ware: &WareId,
        on_node: &mut dyn FnMut(&NodeId, &[u8]) -> Result<()>,
        on_chunk: &mut dyn FnMut(&ChunkRef) -> Result<()>,
    ) -> Result<()> {
        enum Todo {
            Dir(NodeId, usize),
            File(NodeId, usize),
        }
        let mut seen = std::collections::HashSet::new();
        let bytes = self.src.node(ware)?;
        on_node(ware, &bytes)?;
        seen.insert(*ware);
        let root = RootNode::decode(ware, &bytes)?.root;
        // Entries are expanded in order; the stack holds what is still to visit, reversed.
        let mut stack: Vec<Todo> = Vec::new();
        let push_entry = |e: &Entry, stack: &mut Vec<Todo>, chunks: &mut Vec<ChunkRef>| {
            chunks.extend(e.chunks.iter().cloned());
            if let Some(f) = e.file {
                stack.push(Todo::File(NodeId::from_cid(f)?, 0));
            }
            if let Some(d) = e.dir {
                stack.push(Todo::Dir(NodeId::from_cid(d)?, 0));
            }
            Ok::<(), Error>(())
        };
        let mut chunks = Vec::new();
        push_entry(&root, &mut stack, &mut chunks)?;
        for c in chunks.drain(..) {
            on_chunk(&c)?;
        }
        while let Some(todo) = stack.pop() {
            let (id, depth, is_dir) = match todo {
                Todo::Dir(id, d) => (id, d, true),
                Todo::File(id, d) => (id, d, false),
            };
            if depth > MAX_INDEX_DEPTH {
                return Err(too_deep(&id));
            }
            if !seen.insert(id) {
                continue;
            }
            let bytes = self.src.node(&id)?;
            on_node(&id, &bytes)?;
            let mut next = Vec::new();
            if is_dir {
                let node = DirNode::decode(&id, &bytes)?;
                for e in &node.entries {
                    push_entry(e, &mut next, &mut chunks)?;
                    for c in chunks.drain(..) {
                        on_chunk(&c)?;
                    }
                }
                for p in &node.parts {
                    next.push(Todo::Dir(NodeId::from_cid(p.1)?, depth + 1));
                }
            } else {
                let node = FileNode::decode(&id, &bytes)?;
                for c in &node.chunks {
                    on_chunk(c)?;
                }
                for p in &node.parts {
                    next.push(Todo::File(NodeId::from_cid(p.0)?, depth + 1));
                }
            }
            // Children in order: the first one is popped first.
            stack.extend(next.into_iter().rev());
        }
        Ok(())
    }

    /// Counts a ware the way pack records it ([`WareRecord`], `packed_at` left 0): regular
    /// files and their bytes with each hardlink group once, directories with the root, symlinks,
    /// and fifos and devices. Walks every entry (identical subtrees count each time they
    /// appear), with its own stack.
    pub fn record(&self, ware: &WareId) -> Result<WareRecord> {
        let mut r = WareRecord::default();
        let mut groups = std::collections::HashSet::new();
        let mut stack = vec![self.root(ware)?];
        let mut seen = 0u64;
        while let Some(dir) = stack.pop() {
            r.dirs += 1;
            self.for_each_entry(&dir, &mut |e| {
                // Shared subtrees count each time they appear: a hostile ware that nests them
                // would count for ever. No real tree has this many entries.
                seen += 1;
                if seen > RECORD_MAX_ENTRIES {
                    return Err(Error::Malformed(format!(
                        "ware {ware} has more than {RECORD_MAX_ENTRIES} entries"
                    )));
                }
                match e.kind {
                    Kind::Dir => stack.push(e),
                    Kind::File => {
                        if e.hardlink.is_none_or(|g| groups.insert(g)) {
                            r.files += 1;
                            r.logical_bytes += e.size;
                        }
                    }
                    Kind::Symlink => r.symlinks += 1,
                    _ => r.specials += 1,
                }
                Ok(())
            })?;
        }
        Ok(r)
    }

    /// Writes a file's content to `out`, chunk by chunk, every chunk verified. Fails (naming the
    /// chunk) rather than writing bytes that do not match.
    pub fn copy_file(&self, file: &Entry, out: &mut dyn Write) -> Result<u64> {
        let io = |e| Error::io("<output>", e);
        if let Some(d) = &file.inline {
            out.write_all(d).map_err(io)?;
            return Ok(d.len() as u64);
        }
        let mut total = 0u64;
        for c in self.chunks(file)? {
            let data = self.src.chunk(&c.id()?)?;
            if data.len() as u64 != c.len() {
                return Err(Error::CorruptChunk(c.id()?));
            }
            out.write_all(&data).map_err(io)?;
            total += c.len();
        }
        if total != file.size {
            return Err(Error::Malformed(format!(
                "{}: chunks add up to {total} bytes, entry says {}",
                file.display_name(),
                file.size
            )));
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{NoProgress, PackOptions, pack_dir};
    use crate::source::MemStore;

    /// The walk sees every node the pack wrote (a split directory and a file node included)
    /// exactly once, root first, and every chunk of every file.
    #[test]
    fn walk_ware_visits_every_node_once_and_every_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("big/sub")).unwrap();
        for i in 0..9000 {
            std::fs::write(root.join("big").join(format!("f{i:05}")), b"").unwrap();
        }
        let data: Vec<u8> = (0..6_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
            .collect();
        std::fs::write(root.join("big/sub/data"), &data).unwrap();
        std::fs::write(root.join("small"), b"hello").unwrap();
        let store = MemStore::new();
        let report = pack_dir(&store, &root, &PackOptions::default(), &NoProgress).unwrap();
        let mut nodes = Vec::new();
        let mut chunk_bytes = 0u64;
        Reader::new(&store)
            .walk_ware(
                &report.id,
                &mut |id, bytes| {
                    assert!(id.matches(bytes));
                    nodes.push(*id);
                    Ok(())
                },
                &mut |c| {
                    chunk_bytes += c.len();
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(nodes[0], report.id);
        let unique: std::collections::HashSet<_> = nodes.iter().collect();
        assert_eq!(unique.len(), nodes.len(), "a node was visited twice");
        // Root, top dir, big (split: index + parts), sub, the file node of data.
        assert!(nodes.len() >= 6, "{} nodes", nodes.len());
        assert_eq!(chunk_bytes, data.len() as u64);
        // The count matches what pack recorded.
        let mut r = Reader::new(&store).record(&report.id).unwrap();
        r.packed_at = report.record.packed_at;
        assert_eq!(r, report.record);
    }
}
