//! The two interfaces everything else is written against: [`BlockSource`] (read verified nodes and
//! chunks) and [`BlockSink`] (write them), plus [`MemStore`], an in-memory implementation of both.
//!
//! Invariant: a `BlockSource` only ever returns bytes that match the ID asked for; callers do
//! not re-check. Implementations verify (see [`crate::chunk::decode_chunk`], [`NodeId::matches`]).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::chunk::decode_chunk;
use crate::error::{Error, Result};
use crate::foreign::ForeignTree;
use crate::id::{ChunkId, NodeId, WareId};
use crate::verify::verify_block;
use cid::Cid;

/// Reads nodes and chunks, verified against their IDs.
pub trait BlockSource: Send + Sync {
    /// The encoded bytes of a node.
    fn node(&self, id: &NodeId) -> Result<Vec<u8>>;
    /// The uncompressed bytes of a chunk.
    fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>>;
    /// A chunk's stored form ([`crate::chunk::encode_chunk`]: what packs and warehouses hold),
    /// verified. Stores that keep it return it without compressing again.
    fn stored_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        Ok(crate::chunk::encode_chunk(&self.chunk(id)?))
    }
    /// A hint: these chunks will be read soon. A source that fetches from far away may start
    /// now, in the background; it never blocks and never fails. Local sources ignore it.
    fn prefetch(&self, _ids: &[ChunkId]) {}
    /// A foreign (IPFS) block by its CID, verified against the CID's multihash
    /// ([`crate::verify::verify_block`]). Sources that hold none answer [`Error::NotFound`].
    fn block(&self, cid: &Cid) -> Result<Vec<u8>> {
        Err(Error::NotFound {
            what: "block",
            id: cid.to_string(),
        })
    }
    /// The reader of foreign trees (IPFS UnixFS) this source can show, if any.
    fn foreign(&self) -> Option<&dyn ForeignTree> {
        None
    }
}

/// What a pack records about a finished ware.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WareRecord {
    /// Regular files (each hardlink counted once).
    pub files: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Fifos and devices.
    pub specials: u64,
    /// Sum of regular file sizes (each hardlinked file once).
    pub logical_bytes: u64,
    /// Seconds since the epoch when the pack finished.
    pub packed_at: u64,
}

/// Writes nodes and chunks. Writes are ordered: a caller that writes a chunk before a node
/// naming it may rely on no crash ever leaving the node durable without the chunk.
pub trait BlockSink: Send + Sync {
    /// True when the chunk is already stored (so it is never written twice).
    fn has_chunk(&self, id: &ChunkId) -> Result<bool>;
    /// Stores chunks: (ID, uncompressed length, encoded bytes from [`crate::chunk::encode_chunk`]).
    fn put_chunks(&self, chunks: &[(ChunkId, u32, Vec<u8>)]) -> Result<()>;
    /// Stores encoded nodes.
    fn put_nodes(&self, nodes: &[(NodeId, Vec<u8>)]) -> Result<()>;
    /// Records a ware as complete, durably, after everything it names.
    fn commit_ware(&self, id: &WareId, record: &WareRecord) -> Result<()>;
    /// Records that a ware is cached in part (a lazily fetched remote ware), so `fsck` tells
    /// what it lacks as not yet fetched rather than missing. Stores without that notion ignore it.
    fn note_partial(&self, _id: &WareId) -> Result<()> {
        Ok(())
    }
    /// True when the ware is recorded complete here.
    fn has_ware(&self, id: &WareId) -> Result<bool>;
    /// Caches foreign (IPFS) blocks, already verified by the caller, under their multihash.
    /// Sinks without such a cache ignore them.
    fn put_blocks(&self, _blocks: &[(Cid, Vec<u8>)]) -> Result<()> {
        Ok(())
    }
}

/// An in-memory store: for tests, and for tools that need no database.
#[derive(Default)]
pub struct MemStore {
    chunks: RwLock<HashMap<ChunkId, Vec<u8>>>,
    nodes: RwLock<HashMap<NodeId, Vec<u8>>>,
    wares: RwLock<HashMap<WareId, WareRecord>>,
    /// Foreign blocks by the bytes of their multihash (a CIDv0 and a CIDv1 of the same bytes
    /// name one block).
    blocks: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of distinct chunks held.
    pub fn chunk_count(&self) -> usize {
        self.chunks.read().map(|c| c.len()).unwrap_or(0)
    }
    /// Wares recorded complete.
    pub fn wares(&self) -> Vec<WareId> {
        self.wares
            .read()
            .map(|w| w.keys().copied().collect())
            .unwrap_or_default()
    }
}

fn poisoned() -> Error {
    Error::Db("in-memory store lock poisoned".into())
}

impl BlockSource for MemStore {
    fn node(&self, id: &NodeId) -> Result<Vec<u8>> {
        let nodes = self.nodes.read().map_err(|_| poisoned())?;
        let bytes = nodes.get(id).ok_or_else(|| Error::NotFound {
            what: "node",
            id: id.to_string(),
        })?;
        if !id.matches(bytes) {
            return Err(Error::CorruptNode {
                id: *id,
                why: "bytes do not match the ID".into(),
            });
        }
        Ok(bytes.clone())
    }
    fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let chunks = self.chunks.read().map_err(|_| poisoned())?;
        let stored = chunks.get(id).ok_or_else(|| Error::NotFound {
            what: "chunk",
            id: id.to_string(),
        })?;
        decode_chunk(*id, stored)
    }
    fn stored_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let chunks = self.chunks.read().map_err(|_| poisoned())?;
        let stored = chunks.get(id).ok_or_else(|| Error::NotFound {
            what: "chunk",
            id: id.to_string(),
        })?;
        decode_chunk(*id, stored)?;
        Ok(stored.clone())
    }
    fn block(&self, cid: &Cid) -> Result<Vec<u8>> {
        let blocks = self.blocks.read().map_err(|_| poisoned())?;
        let bytes = blocks
            .get(&cid.hash().to_bytes())
            .ok_or_else(|| Error::NotFound {
                what: "block",
                id: cid.to_string(),
            })?;
        verify_block(cid, bytes)?;
        Ok(bytes.clone())
    }
}

impl BlockSink for MemStore {
    fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.chunks.read().map_err(|_| poisoned())?.contains_key(id))
    }
    fn put_chunks(&self, chunks: &[(ChunkId, u32, Vec<u8>)]) -> Result<()> {
        let mut map = self.chunks.write().map_err(|_| poisoned())?;
        for (id, _, enc) in chunks {
            map.entry(*id).or_insert_with(|| enc.clone());
        }
        Ok(())
    }
    fn put_nodes(&self, nodes: &[(NodeId, Vec<u8>)]) -> Result<()> {
        let mut map = self.nodes.write().map_err(|_| poisoned())?;
        for (id, bytes) in nodes {
            map.insert(*id, bytes.clone());
        }
        Ok(())
    }
    fn has_ware(&self, id: &WareId) -> Result<bool> {
        Ok(self.wares.read().map_err(|_| poisoned())?.contains_key(id))
    }
    fn commit_ware(&self, id: &WareId, record: &WareRecord) -> Result<()> {
        self.wares
            .write()
            .map_err(|_| poisoned())?
            .insert(*id, record.clone());
        Ok(())
    }
    fn put_blocks(&self, blocks: &[(Cid, Vec<u8>)]) -> Result<()> {
        let mut map = self.blocks.write().map_err(|_| poisoned())?;
        for (cid, bytes) in blocks {
            map.insert(cid.hash().to_bytes(), bytes.clone());
        }
        Ok(())
    }
}

impl MemStore {
    /// Replaces a stored foreign block's bytes without any check: a testing aid for the
    /// "never serve wrong bytes" checks.
    pub fn damage_block(&self, cid: &Cid, bytes: Vec<u8>) {
        if let Ok(mut map) = self.blocks.write() {
            map.insert(cid.hash().to_bytes(), bytes);
        }
    }
}
