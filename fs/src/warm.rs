//! Warming the caches of a mount from an access profile: the directory nodes and chunks a
//! profile lists are read from the source (for a local store: a database read, a
//! decompression and a hash check each) by a few threads at once, ahead of the program's
//! reads, into the caches the mount serves from. A cold start then stops paying one disk read
//! and one decompression at a time.
//!
//! Bounded: at most half of each cache's budget is filled this way, so warming never evicts
//! what it warmed; what is cached already is skipped. Dropping the [`Warming`] stops it after
//! the reads in progress. Nothing is told to the mount's read log: these are not the
//! program's reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use ware_store::node::DirNode;
use ware_store::profile::{BlockKind, block_kind};
use ware_store::{BlockSource, ChunkId, Cid, NodeId};

use crate::Caches;

/// What a warm-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Warmed {
    /// Chunks read into the cache.
    pub chunks: u64,
    /// Their decompressed bytes.
    pub chunk_bytes: u64,
    /// Directory nodes read into the cache.
    pub dirs: u64,
}

struct Shared {
    src: Arc<dyn BlockSource>,
    caches: Arc<Caches>,
    blocks: Vec<Cid>,
    next: AtomicUsize,
    stop: AtomicBool,
    chunks: AtomicU64,
    chunk_bytes: AtomicU64,
    dirs: AtomicU64,
    dir_bytes: AtomicU64,
    running: AtomicUsize,
}

/// A running warm-up of the caches; dropping it stops it.
pub struct Warming {
    shared: Arc<Shared>,
}

impl Warming {
    /// What it did so far.
    pub fn warmed(&self) -> Warmed {
        let s = &self.shared;
        Warmed {
            chunks: s.chunks.load(Ordering::Relaxed),
            chunk_bytes: s.chunk_bytes.load(Ordering::Relaxed),
            dirs: s.dirs.load(Ordering::Relaxed),
        }
    }

    /// True once every block was read (or it stopped).
    pub fn finished(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst) == 0
    }
}

impl Drop for Warming {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts reading `blocks` (a profile's, in first-read order) from `src` into `caches` with
/// `threads` readers (1–64).
pub fn warm(
    src: Arc<dyn BlockSource>,
    caches: Arc<Caches>,
    blocks: Vec<Cid>,
    threads: usize,
) -> Warming {
    let n = threads.clamp(1, 64).min(blocks.len());
    let shared = Arc::new(Shared {
        src,
        caches,
        blocks,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        chunks: AtomicU64::new(0),
        chunk_bytes: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        dir_bytes: AtomicU64::new(0),
        running: AtomicUsize::new(0),
    });
    for i in 0..n {
        let s = shared.clone();
        shared.running.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("ware-warm-{i}"))
            .spawn(move || {
                s.work();
                s.running.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            shared.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("cannot start a cache warming thread: {e}");
            break;
        }
    }
    Warming { shared }
}

impl Shared {
    fn work(&self) {
        let chunk_room = self.caches.chunks.budget() / 2;
        let dir_room = self.caches.dirs.budget() / 2;
        while !self.stop.load(Ordering::SeqCst) {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(cid) = self.blocks.get(i) else {
                return;
            };
            match block_kind(cid) {
                Some(BlockKind::Chunk) => {
                    if self.chunk_bytes.load(Ordering::Relaxed) >= chunk_room {
                        continue;
                    }
                    let Ok(id) = ChunkId::from_cid(cid) else {
                        continue;
                    };
                    if self.caches.chunks.get(&id).is_some() {
                        continue;
                    }
                    match self.src.chunk(&id) {
                        Ok(data) => {
                            let len = data.len() as u64;
                            self.caches.chunks.insert(id, Arc::new(data), len);
                            self.chunks.fetch_add(1, Ordering::Relaxed);
                            self.chunk_bytes.fetch_add(len, Ordering::Relaxed);
                        }
                        Err(e) => tracing::debug!(chunk = %id, "warming: {e}"),
                    }
                }
                Some(BlockKind::Node) => {
                    if self.dir_bytes.load(Ordering::Relaxed) >= dir_room {
                        continue;
                    }
                    let Ok(id) = NodeId::from_cid(*cid) else {
                        continue;
                    };
                    if self.caches.dirs.get(&id).is_some() {
                        continue;
                    }
                    // Directory nodes only: a root or file node is read where it is used.
                    let Ok(bytes) = self.src.node(&id) else {
                        continue;
                    };
                    // (Any CBOR map decodes as an empty directory: only canonical ones count.)
                    if let Ok(dir) = DirNode::decode(&id, &bytes)
                        && ware_store::node::encode(&dir) == bytes
                    {
                        let cost = 2 * bytes.len() as u64;
                        self.caches.dirs.insert(id, Arc::new(dir), cost);
                        self.dirs.fetch_add(1, Ordering::Relaxed);
                        self.dir_bytes.fetch_add(cost, Ordering::Relaxed);
                    }
                }
                None => {}
            }
        }
    }
}
