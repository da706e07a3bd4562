//! Reading a ware's nodes and chunks for the core: directory nodes through a cache of decoded
//! nodes, lookups through split directories, listings, hardlink counts, and chunks through the
//! LRU cache of decompressed chunks.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use ware_store::node::{ChunkRef, DirNode, Entry, Kind};
use ware_store::tree::MAX_INDEX_DEPTH;
use ware_store::{BlockSource, ChunkId, NodeId, Reader};

use super::{Core, Fault, Node, R, WareCtx, ware_fault};

/// A file's chunks and where each ends, for binary search by offset.
pub(super) struct ChunkMap {
    pub(super) chunks: Vec<ChunkRef>,
    pub(super) ends: Vec<u64>,
}

impl ChunkMap {
    pub(super) fn new(chunks: Vec<ChunkRef>) -> Self {
        let mut end = 0u64;
        let ends = chunks
            .iter()
            .map(|c| {
                end += c.len();
                end
            })
            .collect();
        ChunkMap { chunks, ends }
    }
    pub(super) fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }
    /// Start offset of chunk `i`.
    pub(super) fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }
}

/// Directory and file nodes, through the decoded-node cache.
impl Core {
    /// Tells the read log of a read of `block` for `ware` (not of a foreign tree's).
    fn log_read(&self, ware: &WareCtx, block: &ware_store::Cid) {
        if let Some(log) = &self.reads
            && !ware.foreign
        {
            log.read(&ware.id, block);
        }
    }

    fn dir_node(&self, ware: &WareCtx, id: &NodeId) -> Result<Arc<DirNode>, ware_store::Error> {
        self.log_read(ware, &id.0);
        if let Some(n) = self.caches.dirs.get(id) {
            return Ok(n);
        }
        let bytes = self.src.node(id)?;
        let node = Arc::new(DirNode::decode(id, &bytes)?);
        // Decoded entries take a few times their encoded size; charge twice the bytes.
        self.caches
            .dirs
            .insert(*id, node.clone(), 2 * bytes.len() as u64);
        Ok(node)
    }

    /// A file's chunk list, reading its file nodes (if any) through the read log.
    pub(super) fn file_chunks(
        &self,
        ware: &WareCtx,
        file: &Entry,
    ) -> Result<Vec<ChunkRef>, ware_store::Error> {
        Reader::new(&Logged { core: self, ware }).chunks(file)
    }

    /// One name in a directory entry (binary search through split parts), through the
    /// decoded-node cache.
    pub(super) fn find(
        &self,
        ware: &WareCtx,
        dir: &Entry,
        name: &[u8],
    ) -> Result<Option<Entry>, ware_store::Error> {
        ware_store::tree::lookup_in(dir, name, &mut |id| self.dir_node(ware, id))
    }

    /// Every entry of a directory, in name order.
    pub(super) fn list(
        &self,
        ware: &WareCtx,
        dir: &Entry,
    ) -> Result<Vec<Entry>, ware_store::Error> {
        let mut out = Vec::new();
        // (node, depth) still to visit, in order: a stack holding parts in reverse.
        let mut stack = vec![(dir.dir_id()?, 0usize)];
        while let Some((id, depth)) = stack.pop() {
            if depth > MAX_INDEX_DEPTH {
                return Err(ware_store::Error::CorruptNode {
                    id,
                    why: format!("index nodes nested deeper than {MAX_INDEX_DEPTH} levels"),
                });
            }
            let node = self.dir_node(ware, &id)?;
            out.extend(node.entries.iter().cloned());
            for p in node.parts.iter().rev() {
                stack.push((NodeId::from_cid(p.1)?, depth + 1));
            }
        }
        Ok(out)
    }

    /// Names per hardlink group in a ware: one metadata-only walk, then cached.
    pub(super) fn link_counts(&self, ware: &WareCtx) -> R<Arc<HashMap<u64, u32>>> {
        let mut slot = ware.links.lock();
        if let Some(m) = &*slot {
            return Ok(m.clone());
        }
        let reader = Reader::new(&*self.src);
        let mut counts: HashMap<u64, u32> = HashMap::new();
        let mut stack = vec![ware.root.clone()];
        while let Some(dir) = stack.pop() {
            reader
                .for_each_entry(&dir, &mut |e| {
                    if e.kind == Kind::Dir {
                        stack.push(e);
                    } else if let Some(g) = e.hardlink {
                        *counts.entry(g).or_insert(0) += 1;
                    }
                    Ok(())
                })
                .map_err(|e| {
                    ware_fault(&ware.id, "/", "counting hardlinks (walking the ware)", &e)
                })?;
        }
        let counts = Arc::new(counts);
        *slot = Some(counts.clone());
        Ok(counts)
    }

    /// A decompressed chunk, from the cache or the source; any fault is logged with the chunk
    /// ID and the file's path. Concurrent requests for one chunk wait for a single fetch.
    pub(super) fn chunk(&self, node: &Node, ware: &WareCtx, c: &ChunkRef) -> R<Arc<Vec<u8>>> {
        let id = c
            .id()
            .map_err(|e| ware_fault(&ware.id, &self.path(node), "bad chunk reference", &e))?;
        self.log_read(ware, &id.to_cid());
        if let Some(d) = self.caches.chunks.get(&id) {
            return Ok(d);
        }
        let (flight, leader) = {
            let mut inflight = self.inflight.lock();
            // Again, under the lock: a flight that landed between the look above and here put
            // its chunk in the cache before it left `inflight`, so this is not a second fetch.
            if let Some(d) = self.caches.chunks.get(&id) {
                return Ok(d);
            }
            match inflight.get(&id) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    inflight.insert(id, f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            let mut result = flight.result.lock();
            loop {
                if let Some(r) = &*result {
                    return r.clone();
                }
                flight.cv.wait(&mut result);
            }
        }
        // Whatever happens below (a panic included), waiters get an answer and the flight ends.
        let landing = Landing {
            core: self,
            id,
            flight,
        };
        let r = self.fetch(node, ware, c, id);
        landing.land(r.clone());
        r
    }

    fn fetch(&self, node: &Node, ware: &WareCtx, c: &ChunkRef, id: ChunkId) -> R<Arc<Vec<u8>>> {
        let data = self
            .src
            .chunk(&id)
            .map_err(|e| ware_fault(&ware.id, &self.path(node), &format!("chunk {id}"), &e))?;
        if data.len() as u64 != c.len() {
            tracing::error!(
                ware = %ware.id,
                path = self.path(node),
                "chunk {id}: {} bytes, the file lists {}",
                data.len(),
                c.len()
            );
            return Err(Fault::Io);
        }
        let len = data.len() as u64;
        let data = Arc::new(data);
        self.caches.chunks.insert(id, data.clone(), len);
        Ok(data)
    }
}

/// The core's source, telling the read log of the nodes read through it.
struct Logged<'a> {
    core: &'a Core,
    ware: &'a WareCtx,
}

impl BlockSource for Logged<'_> {
    fn node(&self, id: &NodeId) -> Result<Vec<u8>, ware_store::Error> {
        self.core.log_read(self.ware, &id.0);
        self.core.src.node(id)
    }
    fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>, ware_store::Error> {
        self.core.src.chunk(id)
    }
}

/// One fetch of a chunk that other requests may be waiting for.
#[derive(Default)]
pub(super) struct Flight {
    result: Mutex<Option<R<Arc<Vec<u8>>>>>,
    cv: Condvar,
}

/// Ends a flight: records the result (EIO if the fetch never finished), wakes the waiters and
/// forgets the flight.
struct Landing<'a> {
    core: &'a Core,
    id: ChunkId,
    flight: Arc<Flight>,
}

impl Landing<'_> {
    fn land(self, r: R<Arc<Vec<u8>>>) {
        *self.flight.result.lock() = Some(r);
    }
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        {
            let mut result = self.flight.result.lock();
            if result.is_none() {
                *result = Some(Err(Fault::Io));
            }
        }
        self.flight.cv.notify_all();
        self.core.inflight.lock().remove(&self.id);
    }
}
