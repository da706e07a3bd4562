//! IPFS UnixFS trees shown as foreign trees ([`ware_store::ForeignTree`]): [`UnixfsTree`]
//! reads dag-pb nodes and raw leaves (CIDv0 `Qm…` and CIDv1 `bafy…`/`bafk…`, SHA2-256 or
//! BLAKE3), files of many blocks, plain and HAMT-sharded directories, symlinks, and the UnixFS
//! 1.5 `mode` and `mtime`, block by block and only when asked.
//!
//! Each block comes from the local store's block cache (re-verified by the store on every
//! read) or else from the IPFS warehouses in order (verified by [`Warehouse::get_block`]),
//! and is then cached in the store and decoded ([`decode`]). Decoded blocks are also kept in a
//! bounded in-memory LRU, and concurrent requests for one block share one fetch.
//!
//! Invariants:
//! - Nothing unverified is decoded, cached or served; a block that fails verification or does
//!   not decode as what its place in the tree requires is [`ware_store::Error::CorruptBlock`]
//!   naming its CID (and logged), a block no warehouse has is `NotFound`.
//! - One call (a lookup, a listing, a read) starts no fetch after its deadline (the read
//!   deadline the source was made with) has passed, and each fetch is bounded by its
//!   warehouse's own deadline: a dead warehouse is an error in bounded time, never a hang.
//! - Sizes are checked, not trusted: a file's bytes are read by the `blocksizes` of its nodes,
//!   and each child must hold exactly what its parent says; names that could not be a single
//!   path component are left out of listings (logged).
//!
//! What is not supported: UnixFS `Metadata` nodes (refused), hashes other than SHA2-256 and
//! BLAKE3 (refused before any request), HAMT hashes other than murmur3-x64-64.

// The errors are the store's (this is what a BlockSource reader gets): not ours to resize.
#![allow(clippy::result_large_err)]

pub mod decode;
mod links;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One link of a directory: name, CID and the size the link claims (`Tsize`).
type DirLink = (Vec<u8>, Cid, Option<u64>);

use bytes::Bytes;
use cid::Cid;
use ware_store::node::{Entry, Kind, NAME_MAX};
use ware_store::{Error, ForeignTree, Result};

use crate::local::LocalCache;
use crate::{DAG_PB, Kind as WhKind, RAW, Warehouse};
use decode::{DataType, Node};
use links::{ShardLink, copy_overlap, entry_of, file_size, shard_link};

/// Bytes of decoded blocks kept in memory.
const CACHE_BYTES: u64 = 64 << 20;
/// Blocks fetched at once when a listing or a read needs several.
const PARALLEL: usize = 8;
/// The deepest file tree read (importers make trees of a few levels).
const MAX_FILE_DEPTH: usize = 32;

/// A UnixFS reader over a local block cache and IPFS warehouses.
pub struct UnixfsTree {
    local: Arc<dyn LocalCache>,
    warehouses: Vec<Arc<dyn Warehouse>>,
    deadline: Duration,
    cache: Mutex<Lru>,
    inflight: Mutex<HashMap<Vec<u8>, Arc<Flight>>>,
}

struct Lru {
    map: lru::LruCache<Vec<u8>, (Arc<Node>, u64)>,
    used: u64,
}

#[derive(Default)]
struct Flight {
    result: Mutex<Option<Result<Arc<Node>>>>,
    cv: Condvar,
}

/// Whether a CID could name a UnixFS block this reader can verify: dag-pb or raw, SHA2-256 or
/// BLAKE3 with a 32-byte digest.
pub fn is_unixfs_cid(cid: &Cid) -> bool {
    let mh = cid.hash();
    matches!(cid.codec(), DAG_PB | RAW)
        && matches!(mh.code(), crate::SHA2_256 | crate::BLAKE3)
        && mh.size() == 32
}

fn corrupt(cid: &Cid, why: impl Into<String>) -> Error {
    let why = why.into();
    tracing::error!(block = %cid, "{why}");
    Error::CorruptBlock {
        cid: cid.to_string(),
        why,
    }
}

/// The cache key: the CIDv1 form (codec and multihash), so `Qm…` and its `bafy…` are one.
fn key(cid: &Cid) -> Vec<u8> {
    Cid::new_v1(cid.codec(), *cid.hash()).to_bytes()
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

impl UnixfsTree {
    /// A reader that looks in `local` first, then asks the IPFS warehouses among
    /// `warehouses` in order; each call starts no fetch after `deadline`.
    pub fn new(
        local: Arc<dyn LocalCache>,
        warehouses: Vec<Arc<dyn Warehouse>>,
        deadline: Duration,
    ) -> UnixfsTree {
        UnixfsTree {
            local,
            warehouses: warehouses
                .into_iter()
                .filter(|w| matches!(w.kind(), WhKind::IpfsRpc | WhKind::IpfsGateway))
                .collect(),
            deadline,
            cache: Mutex::new(Lru {
                map: lru::LruCache::unbounded(),
                used: 0,
            }),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.deadline
    }

    /// One decoded block: from memory, the store, or a warehouse. Concurrent callers for one
    /// block wait for a single fetch.
    fn node(&self, cid: &Cid, deadline: Instant) -> Result<Arc<Node>> {
        if !is_unixfs_cid(cid) {
            return Err(Error::BadId(format!(
                "{cid} is not a UnixFS block CID (dag-pb or raw, sha2-256 or blake3)"
            )));
        }
        let k = key(cid);
        if let Some((n, _)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(&k)
        {
            return Ok(n.clone());
        }
        let (flight, leader) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(&k) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    inflight.insert(k.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            let mut result = flight.result.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(r) = &*result {
                    return r.clone_result();
                }
                result = flight.cv.wait(result).unwrap_or_else(|p| p.into_inner());
            }
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.load(cid, deadline)))
            .unwrap_or_else(|_| Err(corrupt(cid, "decoding panicked")));
        if let Ok(n) = &r {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let cost = n.cost();
            if let Some((_, old)) = c.map.put(k.clone(), (n.clone(), cost)) {
                c.used -= old;
            }
            c.used += cost;
            while c.used > CACHE_BYTES {
                match c.map.pop_lru() {
                    Some((_, (_, cost))) => c.used -= cost,
                    None => break,
                }
            }
        }
        *flight.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone_result());
        flight.cv.notify_all();
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&k);
        r
    }

    fn load(&self, cid: &Cid, deadline: Instant) -> Result<Arc<Node>> {
        let bytes = match self.local.block(cid) {
            Ok(b) => Bytes::from(b),
            Err(Error::NotFound { .. }) => self.fetch(cid, deadline)?,
            Err(e) => {
                tracing::error!(block = %cid, "cached block: {e}");
                return Err(e);
            }
        };
        Node::decode(cid, bytes)
            .map(Arc::new)
            .map_err(|e| corrupt(cid, e.0))
    }

    fn fetch(&self, cid: &Cid, deadline: Instant) -> Result<Bytes> {
        let mut last: Option<Error> = None;
        for wh in &self.warehouses {
            if Instant::now() >= deadline {
                last = Some(Error::Remote(format!(
                    "block {cid}: the read deadline ({} ms) passed",
                    self.deadline.as_millis()
                )));
                break;
            }
            match wh.get_block(cid) {
                Ok(b) => {
                    // Verified by get_block against the CID: cache it, then serve it.
                    self.local.put_blocks(&[(*cid, b.to_vec())])?;
                    return Ok(b);
                }
                Err(e) if e.is_not_found() => {}
                Err(e @ crate::Error::Verify { .. }) => {
                    tracing::error!(block = %cid, url = wh.url(), "{e}");
                    last = Some(Error::CorruptBlock {
                        cid: cid.to_string(),
                        why: e.to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(block = %cid, url = wh.url(), "{e}");
                    if !matches!(last, Some(Error::CorruptBlock { .. })) {
                        last = Some(Error::Remote(e.to_string()));
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound {
            what: "block",
            id: cid.to_string(),
        }))
    }

    /// Fetches blocks on up to [`PARALLEL`] threads so that the calls after it find them in
    /// memory; errors are left for those calls to meet.
    fn fetch_all(&self, cids: &[Cid], deadline: Instant) {
        if cids.len() < 2 {
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(cids.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(cid) = cids.get(i) else { return };
                        let _ = self.node(cid, deadline);
                    }
                });
            }
        });
    }

    /// The entry a link names; dag-pb children are read to learn their type and size, raw
    /// ones are files of the link's size (checked when they are read).
    fn entry(
        &self,
        name: &[u8],
        cid: &Cid,
        tsize: Option<u64>,
        deadline: Instant,
    ) -> Result<Entry> {
        if cid.codec() == RAW
            && let Some(size) = tsize
        {
            let mut e = Entry::new(name.to_vec(), Kind::File);
            e.mode = 0o644;
            e.size = size;
            e.file = Some(*cid);
            return Ok(e);
        }
        let node = self.node(cid, deadline)?;
        entry_of(name, cid, &node)
    }

    /// A directory's links (HAMT shards flattened), as (name, CID, tsize), unsorted.
    fn dir_links(&self, dir: &Cid, deadline: Instant) -> Result<Vec<DirLink>> {
        let node = self.node(dir, deadline)?;
        let Node::Pb { links, unixfs } = &*node else {
            return Err(corrupt(dir, "a raw block where a directory was expected"));
        };
        match unixfs.kind {
            DataType::Directory => Ok(links
                .iter()
                .map(|l| (l.name.as_bytes().to_vec(), l.cid, l.tsize))
                .collect()),
            DataType::HamtShard => {
                let fanout = unixfs.fanout.unwrap_or(256);
                let mut out = Vec::new();
                let mut level = vec![(*dir, node.clone())];
                for _depth in 0..=64 / fanout.trailing_zeros().max(1) as usize {
                    let mut subs = Vec::new();
                    for (cid, shard) in &level {
                        let Node::Pb { links, .. } = &**shard else {
                            return Err(corrupt(cid, "a raw block inside a HAMT"));
                        };
                        for l in links {
                            match shard_link(cid, l, fanout)? {
                                ShardLink::Sub => subs.push(l.cid),
                                ShardLink::Entry(name) => out.push((name.to_vec(), l.cid, l.tsize)),
                            }
                        }
                    }
                    if subs.is_empty() {
                        return Ok(out);
                    }
                    self.fetch_all(&subs, deadline);
                    level = subs
                        .iter()
                        .map(|c| Ok((*c, self.shard(c, fanout, deadline)?)))
                        .collect::<Result<_>>()?;
                }
                Err(corrupt(dir, "HAMT deeper than its hash allows"))
            }
            _ => Err(corrupt(
                dir,
                format!("a {:?} node where a directory was expected", unixfs.kind),
            )),
        }
    }

    /// A sub-shard, which must be a shard of the same fanout.
    fn shard(&self, cid: &Cid, fanout: u64, deadline: Instant) -> Result<Arc<Node>> {
        let n = self.node(cid, deadline)?;
        match &*n {
            Node::Pb { unixfs, .. }
                if unixfs.kind == DataType::HamtShard && unixfs.fanout == Some(fanout) =>
            {
                Ok(n)
            }
            _ => Err(corrupt(
                cid,
                "a HAMT link to something that is not a shard of the same fanout",
            )),
        }
    }

    /// The bytes of `[from, to)` of the file under `node` (which starts at `start`) into `out`.
    #[allow(clippy::too_many_arguments)]
    fn read_node(
        &self,
        cid: &Cid,
        node: &Node,
        start: u64,
        from: u64,
        to: u64,
        out: &mut Vec<u8>,
        depth: usize,
        deadline: Instant,
    ) -> Result<()> {
        if depth > MAX_FILE_DEPTH {
            return Err(corrupt(
                cid,
                format!("file tree deeper than {MAX_FILE_DEPTH} levels"),
            ));
        }
        let own = node.own_data();
        copy_overlap(own, start, from, to, out);
        let Node::Pb { links, unixfs } = node else {
            return Ok(());
        };
        if !matches!(unixfs.kind, DataType::File | DataType::Raw) {
            return Err(corrupt(
                cid,
                format!("a {:?} node inside a file", unixfs.kind),
            ));
        }
        // The children that overlap [from, to), with where each starts.
        let mut pos = start + own.len() as u64;
        let mut wanted = Vec::new();
        for (l, &size) in links.iter().zip(&unixfs.blocksizes) {
            let end = pos.saturating_add(size);
            if end > from && pos < to && size > 0 {
                wanted.push((l.cid, pos, size));
            }
            if end >= to {
                break;
            }
            pos = end;
        }
        let cids: Vec<Cid> = wanted.iter().map(|w| w.0).collect();
        self.fetch_all(&cids, deadline);
        for (child_cid, child_start, size) in wanted {
            let child = self.node(&child_cid, deadline)?;
            let child_size = match &*child {
                Node::Raw(b) => b.len() as u64,
                Node::Pb { unixfs, .. } => file_size(unixfs),
            };
            if child_size != size {
                return Err(corrupt(
                    &child_cid,
                    format!("holds {child_size} bytes of file, its parent {cid} says {size}"),
                ));
            }
            self.read_node(
                &child_cid,
                &child,
                child_start,
                from,
                to,
                out,
                depth + 1,
                deadline,
            )?;
        }
        Ok(())
    }
}

impl ForeignTree for UnixfsTree {
    fn accepts(&self, cid: &Cid) -> bool {
        is_unixfs_cid(cid)
    }

    fn root(&self, root: &Cid) -> Result<Entry> {
        let node = self.node(root, self.deadline())?;
        entry_of(b"", root, &node)
    }

    fn list(&self, dir: &Entry) -> Result<Vec<Entry>> {
        let deadline = self.deadline();
        let cid = dir
            .dir
            .ok_or_else(|| Error::Malformed("not a UnixFS directory".into()))?;
        let mut links = self.dir_links(&cid, deadline)?;
        links.retain(|(name, _, _)| {
            let ok = valid_name(name);
            if !ok {
                tracing::warn!(dir = %cid, name = %String::from_utf8_lossy(name), "left out: not a valid file name");
            }
            ok
        });
        links.sort_by(|a, b| a.0.cmp(&b.0));
        links.dedup_by(|a, b| a.0 == b.0);
        let children: Vec<Cid> = links
            .iter()
            .filter(|(_, c, t)| c.codec() != RAW || t.is_none())
            .map(|(_, c, _)| *c)
            .collect();
        self.fetch_all(&children, deadline);
        links
            .iter()
            .map(|(name, c, t)| self.entry(name, c, *t, deadline))
            .collect()
    }

    fn lookup(&self, dir: &Entry, name: &[u8]) -> Result<Option<Entry>> {
        if !valid_name(name) {
            return Ok(None);
        }
        let deadline = self.deadline();
        let cid = dir
            .dir
            .ok_or_else(|| Error::Malformed("not a UnixFS directory".into()))?;
        let node = self.node(&cid, deadline)?;
        let Node::Pb { links, unixfs } = &*node else {
            return Err(corrupt(&cid, "a raw block where a directory was expected"));
        };
        if unixfs.kind == DataType::Directory {
            return match links.iter().find(|l| l.name.as_bytes() == name) {
                Some(l) => self.entry(name, &l.cid, l.tsize, deadline).map(Some),
                None => Ok(None),
            };
        }
        if unixfs.kind != DataType::HamtShard {
            return Err(corrupt(
                &cid,
                format!("a {:?} node where a directory was expected", unixfs.kind),
            ));
        }
        let fanout = unixfs.fanout.unwrap_or(256);
        let plen = decode::prefix_len(fanout);
        let hash = decode::hamt_hash(name);
        let (mut shard_cid, mut shard) = (cid, node.clone());
        for depth in 0.. {
            let Some(bucket) = decode::bucket(&hash, depth, fanout) else {
                return Err(corrupt(&shard_cid, "HAMT deeper than its hash allows"));
            };
            let prefix = format!("{bucket:0plen$X}");
            let Node::Pb { links, .. } = &*shard else {
                return Err(corrupt(&shard_cid, "a raw block inside a HAMT"));
            };
            let Some(l) = links
                .iter()
                .find(|l| l.name.as_bytes().starts_with(prefix.as_bytes()))
            else {
                return Ok(None);
            };
            match shard_link(&shard_cid, l, fanout)? {
                ShardLink::Entry(n) if n == name => {
                    return self.entry(name, &l.cid, l.tsize, deadline).map(Some);
                }
                ShardLink::Entry(_) => return Ok(None),
                ShardLink::Sub => {
                    let next = l.cid;
                    shard = self.shard(&next, fanout, deadline)?;
                    shard_cid = next;
                }
            }
        }
        unreachable!("the loop returns")
    }

    fn read(&self, file: &Entry, offset: u64, size: u32) -> Result<Vec<u8>> {
        let deadline = self.deadline();
        let cid = file
            .file
            .ok_or_else(|| Error::Malformed("not a UnixFS file".into()))?;
        let end = offset.saturating_add(u64::from(size)).min(file.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let node = self.node(&cid, deadline)?;
        let total = match &*node {
            Node::Raw(b) => b.len() as u64,
            Node::Pb { unixfs, .. } => file_size(unixfs),
        };
        if total != file.size {
            return Err(corrupt(
                &cid,
                format!("holds {total} bytes, its directory says {}", file.size),
            ));
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        self.read_node(&cid, &node, 0, offset, end, &mut out, 0, deadline)?;
        if out.len() as u64 != end - offset {
            return Err(corrupt(
                &cid,
                "the file's blocks do not cover the range read",
            ));
        }
        Ok(out)
    }
}

trait CloneResult {
    fn clone_result(&self) -> Self;
}

impl CloneResult for Result<Arc<Node>> {
    fn clone_result(&self) -> Self {
        match self {
            Ok(n) => Ok(n.clone()),
            // The store's error is not Clone: waiters get the same message and kind.
            Err(Error::NotFound { what, id }) => Err(Error::NotFound {
                what,
                id: id.clone(),
            }),
            Err(Error::CorruptBlock { cid, why }) => Err(Error::CorruptBlock {
                cid: cid.clone(),
                why: why.clone(),
            }),
            Err(Error::BadId(s)) => Err(Error::BadId(s.clone())),
            Err(e) => Err(Error::Remote(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
