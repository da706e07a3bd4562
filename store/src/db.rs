//! The RocksDB store: the local home of wares and the cache of remote ones.
//!
//! Column families (docs/FORMAT.md, "Store"):
//! - `chunks`: chunk ID (32 bytes) → encoded chunk (tag byte + zstd frame or raw bytes), in
//!   blob files so large values are not rewritten by compaction;
//! - `chunk_meta`: chunk ID → length and stored length (8 bytes), so existence and sizes are
//!   known without reading a chunk;
//! - `nodes`: node CID (binary) → DAG-CBOR bytes;
//! - `names`: human names and their history (see [`crate::names`]);
//! - `blocks`: multihash (binary) → a foreign (IPFS UnixFS) block, cached by lazy mounts of
//!   IPFS content and verified against its multihash on every read;
//! - `meta`: `format` → the store format; `ware/<cid>` → a complete ware's record;
//!   `partial/<cid>` → a ware cached piece by piece.
//!
//! Invariants: one process holds a store (an exclusive `flock` on `ware.lock`, then RocksDB's
//! own lock); every read is verified against its ID; writes go through the write-ahead log in
//! order, and a ware's record is written last with `sync`, so after a crash at any moment the
//! store opens, and every recorded ware is whole.

use std::fs::File;
use std::path::{Path, PathBuf};

use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};

use crate::chunk::decode_chunk;
use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId, WareId};
use crate::source::{BlockSink, BlockSource, WareRecord};
use crate::verify::verify_block;

/// The store format this code reads and writes.
pub const STORE_FORMAT: &str = "warefs-store/1";

pub(crate) const CF_CHUNKS: &str = "chunks";
pub(crate) const CF_CHUNK_META: &str = "chunk_meta";
pub(crate) const CF_NODES: &str = "nodes";
pub(crate) const CF_NAMES: &str = "names";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_RUNS: &str = "runs";
pub(crate) const CF_BLOCKS: &str = "blocks";
pub(crate) const CF_PROFILES: &str = "profiles";

mod open;

const WARE_PREFIX: &[u8] = b"ware/";
const PARTIAL_PREFIX: &[u8] = b"partial/";

/// A store opened by this process.
pub struct Store {
    pub(crate) db: DB,
    dir: PathBuf,
    _lock: File,
    /// Serialises name changes (read the log's length, then write the next entry).
    pub(crate) names_lock: std::sync::Mutex<()>,
}

/// Sizes and counts of a store.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Complete wares.
    pub wares: u64,
    /// Wares cached in part.
    pub partial_wares: u64,
    /// Sum of the logical sizes (file bytes) of the complete wares.
    pub logical_bytes: u64,
    /// Distinct chunks.
    pub chunks: u64,
    /// Uncompressed bytes of the distinct chunks.
    pub chunk_bytes: u64,
    /// Bytes the chunks take at rest (after compression).
    pub stored_chunk_bytes: u64,
    /// Nodes.
    pub nodes: u64,
    /// Encoded bytes of the nodes.
    pub node_bytes: u64,
    /// `stored_chunk_bytes + node_bytes`.
    pub stored_bytes: u64,
    /// Logical bytes over stored bytes: what dedup and compression save together.
    pub dedup_ratio: f64,
    /// Bytes the store's files take on disk (database files, logs included).
    pub disk_bytes: u64,
}

pub(crate) fn db_err(e: rocksdb::Error) -> Error {
    Error::Db(e.into_string())
}

/// Memory RocksDB may use, bounded for the whole database (a long-lived daemon keeps it open):
/// all memtables together, and one block cache shared by every column family (RocksDB would
/// otherwise give each its own 32 MiB cache).
pub const MEMTABLES_BYTES: usize = 128 << 20;
/// See [`MEMTABLES_BYTES`].
pub const BLOCK_CACHE_BYTES: usize = 32 << 20;

impl Store {
    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every family is created at open; a missing one is a programming error.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// The record of a complete ware, if the store has it whole.
    pub fn ware(&self, id: &WareId) -> Result<Option<WareRecord>> {
        let key = [WARE_PREFIX, &id.to_bytes()].concat();
        match self.db.get_cf(self.cf(CF_META), key).map_err(db_err)? {
            Some(v) => {
                Ok(Some(serde_ipld_dagcbor::from_slice(&v).map_err(|e| {
                    Error::Db(format!("ware record of {id}: {e}"))
                })?))
            }
            None => Ok(None),
        }
    }

    /// Every complete ware with its record.
    pub fn wares(&self) -> Result<Vec<(WareId, WareRecord)>> {
        self.prefixed(WARE_PREFIX)?
            .into_iter()
            .map(|(id, v)| {
                Ok((
                    id,
                    serde_ipld_dagcbor::from_slice(&v)
                        .map_err(|e| Error::Db(format!("ware record of {id}: {e}")))?,
                ))
            })
            .collect()
    }

    /// Wares cached in part (their root is here, not necessarily everything below).
    pub fn partial_wares(&self) -> Result<Vec<WareId>> {
        Ok(self
            .prefixed(PARTIAL_PREFIX)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Marks a ware as cached in part: `fsck` then reports what it lacks as not yet fetched.
    pub fn mark_partial(&self, id: &WareId) -> Result<()> {
        let key = [PARTIAL_PREFIX, &id.to_bytes()].concat();
        self.db.put_cf(self.cf(CF_META), key, b"").map_err(db_err)
    }

    fn prefixed(&self, prefix: &[u8]) -> Result<Vec<(WareId, Vec<u8>)>> {
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(db_err)?;
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            out.push((NodeId::from_bytes(rest)?, v.into_vec()));
        }
        Ok(out)
    }

    /// Counts and sizes; reads only metadata, never chunk contents.
    pub fn stats(&self) -> Result<StoreStats> {
        let mut s = StoreStats::default();
        for (_, r) in self.wares()? {
            s.wares += 1;
            s.logical_bytes += r.logical_bytes;
        }
        s.partial_wares = self.partial_wares()?.len() as u64;
        for item in self
            .db
            .iterator_cf(self.cf(CF_CHUNK_META), IteratorMode::Start)
        {
            let (_, v) = item.map_err(db_err)?;
            let (len, stored) =
                parse_chunk_meta(&v).ok_or_else(|| Error::Db("malformed chunk metadata".into()))?;
            s.chunks += 1;
            s.chunk_bytes += u64::from(len);
            s.stored_chunk_bytes += u64::from(stored);
        }
        for item in self.db.iterator_cf(self.cf(CF_NODES), IteratorMode::Start) {
            let (_, v) = item.map_err(db_err)?;
            s.nodes += 1;
            s.node_bytes += v.len() as u64;
        }
        s.stored_bytes = s.stored_chunk_bytes + s.node_bytes;
        s.dedup_ratio = if s.stored_bytes > 0 {
            s.logical_bytes as f64 / s.stored_bytes as f64
        } else {
            0.0
        };
        s.disk_bytes = dir_size(&self.dir);
        Ok(s)
    }

    /// The stored (encoded) bytes of a chunk, unverified; for fsck and for tests that damage
    /// a store on purpose.
    pub(crate) fn raw_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(CF_CHUNKS), id.0).map_err(db_err)
    }

    /// Flips one bit of a stored chunk, or of a stored node. A testing aid for `fsck` and for
    /// the "never serve wrong bytes" checks; never used on a request path.
    pub fn damage(&self, what: Damage) -> Result<()> {
        let (cf, key) = match what {
            Damage::Chunk(id) => (CF_CHUNKS, id.0.to_vec()),
            Damage::Node(id) => (CF_NODES, id.to_bytes()),
            Damage::Block(cid) => (CF_BLOCKS, cid.hash().to_bytes()),
        };
        let mut v = self
            .db
            .get_cf(self.cf(cf), &key)
            .map_err(db_err)?
            .ok_or_else(|| Error::NotFound {
                what: "object",
                id: format!("{what:?}"),
            })?;
        match v.last_mut() {
            Some(b) => *b ^= 0x01,
            None => v.push(0),
        }
        self.db.put_cf(self.cf(cf), key, v).map_err(db_err)
    }
}

/// What [`Store::damage`] flips a bit of.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// A chunk.
    Chunk(ChunkId),
    /// A node.
    Node(NodeId),
    /// A foreign (IPFS) block.
    Block(cid::Cid),
}

pub(crate) fn parse_chunk_meta(v: &[u8]) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(v.get(0..4)?.try_into().ok()?);
    let stored = u32::from_le_bytes(v.get(4..8)?.try_into().ok()?);
    Some((len, stored))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl BlockSource for Store {
    fn node(&self, id: &NodeId) -> Result<Vec<u8>> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_NODES), id.to_bytes())
            .map_err(db_err)?
            .ok_or_else(|| Error::NotFound {
                what: "node",
                id: id.to_string(),
            })?;
        if !id.matches(&bytes) {
            tracing::error!(node = %id, "stored node does not match its hash");
            return Err(Error::CorruptNode {
                id: *id,
                why: "stored bytes do not match the ID".into(),
            });
        }
        Ok(bytes)
    }

    fn chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let stored = self.raw_chunk(id)?.ok_or_else(|| Error::NotFound {
            what: "chunk",
            id: id.to_string(),
        })?;
        decode_chunk(*id, &stored)
            .inspect_err(|_| tracing::error!(chunk = %id, "stored chunk does not match its hash"))
    }

    fn stored_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let stored = self.raw_chunk(id)?.ok_or_else(|| Error::NotFound {
            what: "chunk",
            id: id.to_string(),
        })?;
        // Decoded only to verify: what leaves the store matches its hash.
        decode_chunk(*id, &stored).inspect_err(
            |_| tracing::error!(chunk = %id, "stored chunk does not match its hash"),
        )?;
        Ok(stored)
    }

    fn block(&self, cid: &cid::Cid) -> Result<Vec<u8>> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_BLOCKS), cid.hash().to_bytes())
            .map_err(db_err)?
            .ok_or_else(|| Error::NotFound {
                what: "block",
                id: cid.to_string(),
            })?;
        verify_block(cid, &bytes)
            .inspect_err(|e| tracing::error!(block = %cid, "stored block: {e}"))?;
        Ok(bytes)
    }
}

impl BlockSink for Store {
    fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        let cf = self.cf(CF_CHUNK_META);
        if !self.db.key_may_exist_cf(cf, id.0) {
            return Ok(false);
        }
        Ok(self.db.get_pinned_cf(cf, id.0).map_err(db_err)?.is_some())
    }

    fn put_chunks(&self, chunks: &[(ChunkId, u32, Vec<u8>)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (id, len, enc) in chunks {
            let mut meta = [0u8; 8];
            meta[..4].copy_from_slice(&len.to_le_bytes());
            meta[4..].copy_from_slice(&(enc.len() as u32).to_le_bytes());
            // Data and metadata in one batch: both or neither survive a crash.
            batch.put_cf(self.cf(CF_CHUNKS), id.0, enc);
            batch.put_cf(self.cf(CF_CHUNK_META), id.0, meta);
        }
        self.db.write(batch).map_err(db_err)
    }

    fn put_nodes(&self, nodes: &[(NodeId, Vec<u8>)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (id, bytes) in nodes {
            batch.put_cf(self.cf(CF_NODES), id.to_bytes(), bytes);
        }
        self.db.write(batch).map_err(db_err)
    }

    fn has_ware(&self, id: &WareId) -> Result<bool> {
        Ok(self.ware(id)?.is_some())
    }

    fn put_blocks(&self, blocks: &[(cid::Cid, Vec<u8>)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (cid, bytes) in blocks {
            batch.put_cf(self.cf(CF_BLOCKS), cid.hash().to_bytes(), bytes);
        }
        self.db.write(batch).map_err(db_err)
    }

    fn note_partial(&self, id: &WareId) -> Result<()> {
        if self.ware(id)?.is_some() {
            return Ok(());
        }
        self.mark_partial(id)
    }

    fn commit_ware(&self, id: &WareId, record: &WareRecord) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_META),
            [WARE_PREFIX, &id.to_bytes()].concat(),
            serde_ipld_dagcbor::to_vec(record).map_err(|e| Error::Db(e.to_string()))?,
        );
        batch.delete_cf(self.cf(CF_META), [PARTIAL_PREFIX, &id.to_bytes()].concat());
        let mut wo = WriteOptions::default();
        // The sync makes the whole log durable up to here: every chunk and node before it.
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(db_err)?;
        // Move what the pack wrote from the log into table and blob files now, so the next
        // open does not replay a large log.
        // The ware is durable already; a failed flush only costs a longer replay at next open.
        for cf in [CF_CHUNKS, CF_CHUNK_META, CF_NODES, CF_META] {
            if let Err(e) = self.db.flush_cf(self.cf(cf)) {
                tracing::warn!(error = %e, "flushing after a commit failed");
            }
        }
        Ok(())
    }
}
