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
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    WriteBatch, WriteOptions,
};

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

const ALL_CFS: [&str; 8] = [
    CF_CHUNKS,
    CF_CHUNK_META,
    CF_NODES,
    CF_NAMES,
    CF_META,
    CF_RUNS,
    CF_BLOCKS,
    CF_PROFILES,
];

/// Families of a few kilobytes to megabytes, written to by every run and mount.
const SMALL_CFS: [&str; 4] = [CF_NAMES, CF_META, CF_RUNS, CF_PROFILES];

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

/// A store closes with its memtables written to tables, so the next open (the daemon's start,
/// on the path of a cold command) replays no log: opening no longer flushes what it replays
/// (`avoid_flush_during_recovery`), and without this the logs of past processes would pile up.
/// A process that dies without closing leaves its log, replayed into the next one's memtable
/// and written out when that one closes.
impl Drop for Store {
    fn drop(&mut self) {
        let cfs: Vec<_> = ALL_CFS
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .collect();
        if let Err(e) = self
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
        {
            tracing::warn!(
                "{}: flushing the database at close: {e}",
                self.dir.display()
            );
        }
        // The small families every run and mount writes a little to get a table per close,
        // and with keys that grow (run records by time) compaction only moves each table down,
        // never merging them: a store would open one more file per run, for ever. Merge them
        // into one here once they are more than a few (kilobytes: quick).
        for name in SMALL_CFS {
            let Some(cf) = self.db.cf_handle(name) else {
                continue;
            };
            let tables: u64 = (0..7)
                .filter_map(|level| {
                    self.db
                        .property_int_value_cf(
                            cf,
                            format!("rocksdb.num-files-at-level{level}").as_str(),
                        )
                        .ok()
                        .flatten()
                })
                .sum();
            if tables > 4 {
                let mut how = rocksdb::CompactOptions::default();
                how.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                self.db
                    .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &how);
            }
        }
    }
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

fn block_cache() -> &'static rocksdb::Cache {
    static CACHE: std::sync::OnceLock<rocksdb::Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES))
}

/// Table options on the shared block cache, with or without a bloom filter.
fn table_options(bloom: bool) -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(block_cache());
    if bloom {
        t.set_bloom_filter(10.0, false);
    }
    t
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(64 << 20);
    o.set_block_based_table_factory(&table_options(false));
    o
}

/// Foreign blocks are chunk-sized data mostly (UnixFS leaves of 256 KiB to 1 MiB): blob files,
/// as for `chunks`.
fn blocks_options() -> Options {
    let mut o = cf_options();
    o.set_compression_type(DBCompressionType::None);
    o.set_enable_blob_files(true);
    o.set_min_blob_size(1024);
    o.set_blob_compression_type(DBCompressionType::None);
    o
}

impl Store {
    /// Opens (creating if needed) the store in `dir`. Fails with [`Error::Busy`] when another
    /// process holds it. Sets this process's umask to 077 (see `private.rs`): the store is
    /// private to its owner, 0700 and 0600.
    pub fn open(dir: &Path) -> Result<Store> {
        Self::open_with(dir, true)
    }

    /// Opens the store in `dir` only if there is one: a directory with no store is
    /// [`Error::NoStore`] and nothing is created (for commands that only read).
    pub fn open_existing(dir: &Path) -> Result<Store> {
        Self::open_with(dir, false)
    }

    fn open_with(dir: &Path, create: bool) -> Result<Store> {
        crate::private::prepare(dir, create)?;
        let bad = |why: &str| Error::BadStore {
            dir: dir.to_path_buf(),
            why: why.to_string(),
        };
        let has_db = dir.join("CURRENT").exists();
        let lock_path = dir.join("ware.lock");
        if !has_db
            && !lock_path.exists()
            && std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .next()
                .is_some()
        {
            return Err(bad("directory is not empty and is not a ware store"));
        }
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        if let Err(e) = rustix::fs::flock(
            lock.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                return Err(Error::Busy {
                    dir: dir.to_path_buf(),
                    holder: holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                });
            }
            return Err(Error::io(&lock_path, e.into()));
        }
        // The lock is ours: a store whose maker stopped before its database existed is no
        // store to a command that only reads.
        if !create && !dir.join("CURRENT").exists() {
            return Err(Error::NoStore {
                dir: dir.to_path_buf(),
            });
        }
        lock.set_len(0)
            .and_then(|_| write!(lock, "{}", std::process::id()))
            .map_err(|e| Error::io(&lock_path, e))?;

        // Opening is on the path of every cold command (a daemon starts for a mount or a run):
        // a WAL left by the last daemon is replayed into the memtable, not flushed into a new
        // table file with its fsyncs; no table properties or file sizes are read at open; tables
        // are opened by this thread, not by a pool of 16 threads started for each family.
        let mut opts = Options::default()
            .get_options_from_string(
                "avoid_flush_during_recovery=true;skip_checking_sst_file_sizes_on_db_open=true",
            )
            .map_err(|e| bad(&format!("database options: {}", e.into_string())))?;
        opts.set_skip_stats_update_on_db_open(true);
        opts.set_max_file_opening_threads(1);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2);
        opts.increase_parallelism(cpus);
        opts.set_max_background_jobs(cpus.max(2));
        opts.set_keep_log_file_num(3);
        opts.set_log_level(rocksdb::LogLevel::Warn);
        opts.set_max_total_wal_size(512 << 20);
        opts.set_db_write_buffer_size(MEMTABLES_BYTES);

        let mut chunks = cf_options();
        chunks.set_compression_type(DBCompressionType::None);
        chunks.set_enable_blob_files(true);
        chunks.set_min_blob_size(1024);
        chunks.set_blob_compression_type(DBCompressionType::None);
        let bloom = table_options(true);
        let mut chunk_meta = cf_options();
        chunk_meta.set_block_based_table_factory(&bloom);
        let mut nodes = cf_options();
        nodes.set_compression_type(DBCompressionType::Zstd);
        // Nodes are a few percent of a store and compress well (names, inline files): a higher
        // zstd level costs little time at flush and saves space.
        nodes.set_compression_options(-14, 12, 0, 0);
        nodes.set_block_based_table_factory(&bloom);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_CHUNKS, chunks),
            ColumnFamilyDescriptor::new(CF_CHUNK_META, chunk_meta),
            ColumnFamilyDescriptor::new(CF_NODES, nodes),
            ColumnFamilyDescriptor::new(CF_NAMES, cf_options()),
            ColumnFamilyDescriptor::new(CF_META, cf_options()),
            ColumnFamilyDescriptor::new(CF_RUNS, cf_options()),
            ColumnFamilyDescriptor::new(CF_BLOCKS, blocks_options()),
            ColumnFamilyDescriptor::new(CF_PROFILES, cf_options()),
        ];
        let db = DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|e| bad(&format!("cannot open the database: {}", e.into_string())))?;
        let store = Store {
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
            names_lock: std::sync::Mutex::new(()),
        };
        match store
            .db
            .get_cf(store.cf(CF_META), b"format")
            .map_err(db_err)?
        {
            Some(v) if v == STORE_FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(bad(&format!(
                    "store format {:?}; this ware reads {STORE_FORMAT}",
                    String::from_utf8_lossy(&v)
                )));
            }
            None => {
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                store
                    .db
                    .put_cf_opt(store.cf(CF_META), b"format", STORE_FORMAT, &wo)
                    .map_err(db_err)?;
            }
        }
        Ok(store)
    }

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
