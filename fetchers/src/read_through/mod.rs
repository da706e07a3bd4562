//! [`ReadThrough`]: a [`BlockSource`] that answers from the local store and, for what the
//! store lacks, from the warehouses, in order, verifying and caching everything it fetches. It
//! is what a lazy mount reads through.
//!
//! - A node the store lacks is taken to be a ware's root: the ware's manifest (all its nodes
//!   at once) is fetched from the first warehouse that has it, every node is verified and
//!   cached, the ware is noted partial, and the indexes of its packs are loaded so that later
//!   chunk misses know where to read; the ware's profiles (`profiles/<id>`) are fetched beside
//!   the indexes, at no extra round trip, and kept for [`ReadThrough::profiles`]. IPFS
//!   warehouses answer the single block instead.
//! - A chunk the store lacks is read by byte range from its pack, together with the chunks
//!   that follow it back to back in the pack up to [`READ_WINDOW`] bytes (a pack holds a
//!   file's chunks in order, then the next file's: this is a small readahead at the source);
//!   every chunk is verified, then cached. The window stops before the first follower already
//!   cached or being fetched, and a chunk being fetched (by a prefetch or another read) is
//!   waited for: no byte is fetched twice.
//! - A prefetch hint (the chunks a sequential reader will read next, from the file it reads)
//!   fetches those chunks only: runs of them that lie back to back in a pack go in one
//!   request of up to [`PREFETCH_SPAN`] bytes; the chunks around them are not read.
//! - Each call gives up after the source's deadline across all warehouses and retries:
//!   the caller gets an error, never a hang.
//!
//! Invariant: no byte leaves this source or enters the store unverified against its ID.

// The errors are the store's (this is a BlockSource): their size is not ours to change.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ware_store::bundle::{PackEntry, pack_key};
use ware_store::chunk::{decode_chunk, encode_chunk};
use ware_store::{BlockSource, ChunkId, NodeId, WareId};

use crate::transfer::{
    check_warehouse, fetch_indexes, fetch_manifest, fetch_profiles, named_by_manifest,
};
use ware_store::profile::ProfileSet;

mod hint;
mod local;
pub(crate) mod prefetch;
mod stats;
pub use prefetch::{MERGE_GAP, Prefetch, PrefetchOptions, PrefetchReport};
pub use stats::FetchStats;
use stats::{Counters, Why};

use crate::{Kind, Warehouse};

/// Bytes read from a pack in one request when a chunk is missed (the chunk and those after it).
///
/// Measured on a cold chroot job (`ls /usr/bin; dpkg -l; python3 -c "import numpy"`) on the
/// large benchmark rootfs; see docs/benchmarks.md, "Bytes fetched at start".
pub const READ_WINDOW: u64 = 256 << 10;

/// Largest request of a prefetch (hinted chunks back to back in one pack).
pub const PREFETCH_SPAN: u64 = 1 << 20;

pub use crate::local::LocalCache;

/// A prefetch job: `n` entries of a pack from the one at `loc`.
type Job = (ChunkId, Location, usize);

#[derive(Clone)]
struct Location {
    warehouse: usize,
    pack: Arc<str>,
    /// The pack's index, sorted by offset, shared by every chunk of the pack.
    by_offset: Arc<Vec<PackEntry>>,
    at: usize,
}

#[derive(Default)]
struct State {
    /// Wares whose manifest was fetched, or that no warehouse has, in this process.
    tried: HashSet<WareId>,
    /// Where each known chunk lives.
    chunks: HashMap<ChunkId, Location>,
    /// The profiles of each ware whose metadata was fetched, from the same warehouse.
    profiles: HashMap<WareId, ProfileSet>,
}

/// Local store first, warehouses second.
pub struct ReadThrough {
    inner: Arc<Inner>,
    /// IPFS UnixFS trees, read through the same store and warehouses.
    unixfs: crate::unixfs::UnixfsTree,
    /// Background fetches asked for by [`BlockSource::prefetch`], started on first use.
    prefetch: Mutex<Option<std::sync::mpsc::SyncSender<Job>>>,
    /// The chunks of the profiles being prefetched, and whether reads have left them.
    following: hint::Following,
}

struct Inner {
    local: Arc<dyn LocalCache>,
    warehouses: Vec<Arc<dyn Warehouse>>,
    deadline: Duration,
    state: Mutex<State>,
    /// Chunks a prefetch job is fetching or about to fetch.
    inflight: Mutex<HashSet<ChunkId>>,
    /// Chunks being fetched now (by a prefetch worker or a read that missed): a read of one
    /// waits for that fetch instead of fetching it again.
    started: Mutex<HashSet<ChunkId>>,
    /// Signalled when a fetch ends (with `started` as its mutex).
    done: std::sync::Condvar,
    /// What was fetched, and why.
    counters: Counters,
    /// Reads fetching from a warehouse now (a background fill waits for none).
    demand_inflight: std::sync::atomic::AtomicUsize,
}

/// Threads fetching prefetched windows, per source.
const PREFETCHERS: usize = 4;
/// Windows waiting for a prefetch thread; more are dropped (a hint, not a promise).
const PREFETCH_QUEUE: usize = 32;

fn not_found(what: &'static str, id: String) -> ware_store::Error {
    ware_store::Error::NotFound { what, id }
}

fn remote_err(e: crate::Error) -> ware_store::Error {
    // A remote that fails is an I/O failure of this read (EIO), not corruption of the store.
    ware_store::Error::Remote(e.to_string())
}

impl ReadThrough {
    /// Reads through `local` to `warehouses` (tried in order); each call gives up after
    /// `deadline`.
    pub fn new(
        local: Arc<dyn LocalCache>,
        warehouses: Vec<Arc<dyn Warehouse>>,
        deadline: Duration,
    ) -> ReadThrough {
        ReadThrough {
            unixfs: crate::unixfs::UnixfsTree::new(local.clone(), warehouses.clone(), deadline),
            inner: Arc::new(Inner {
                local,
                warehouses,
                deadline,
                state: Mutex::new(State::default()),
                inflight: Mutex::new(HashSet::new()),
                started: Mutex::new(HashSet::new()),
                done: std::sync::Condvar::new(),
                counters: Counters::default(),
                demand_inflight: std::sync::atomic::AtomicUsize::new(0),
            }),
            prefetch: Mutex::new(None),
            following: hint::Following::default(),
        }
    }

    /// Makes a ware readable: fetches its manifest and pack indexes unless the store holds the
    /// ware complete. Call it before mounting a ware that may be remote or partly cached;
    /// returns whether a warehouse had it.
    pub fn prepare(&self, ware: &WareId) -> ware_store::Result<bool> {
        self.inner.prepare(ware)
    }

    /// The profiles the warehouse that served `ware`'s metadata holds for it, if it has any
    /// (checked: a damaged set, or one naming another ware, was refused with a warning).
    pub fn profiles(&self, ware: &WareId) -> Option<ProfileSet> {
        self.inner.state().profiles.get(ware).cloned()
    }

    /// What this source fetched from its warehouses so far, and why.
    pub fn fetch_stats(&self) -> FetchStats {
        self.inner.counters.snapshot()
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prepare(&self, ware: &WareId) -> ware_store::Result<bool> {
        if self.state().tried.contains(ware) {
            return Ok(true);
        }
        self.fetch_ware(ware, Instant::now() + self.deadline)
    }

    fn fetch_ware(&self, ware: &WareId, deadline: Instant) -> ware_store::Result<bool> {
        let mut last_err = None;
        for (i, wh) in self.warehouses.iter().enumerate() {
            if Instant::now() >= deadline {
                break;
            }
            if !matches!(wh.kind(), Kind::Dir | Kind::Http | Kind::S3) {
                continue;
            }
            let t0 = Instant::now();
            let manifest = match fetch_manifest(&**wh, ware) {
                Ok(m) => m,
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    tracing::warn!(ware = %ware, url = wh.url(), "manifest: {e}");
                    last_err = Some(e);
                    continue;
                }
            };

            // Where a mount's start goes (the daemon log says): the manifest fetched and
            // decoded, then the indexes, marker and profiles, the nodes stored meanwhile.
            let manifest_ms = t0.elapsed().as_millis();
            let mut locations = Vec::new();
            let mut ok = true;
            // One deadline for the whole ware, not one per index; the indexes side by side.
            // The layout marker is checked beside them, so it costs no round trip of its own.
            // So are the ware's profiles (hints: a failure costs a warning, not the ware), and
            // the nodes go into the store meanwhile (verified by the manifest's decoder; kept
            // even if an index then fails: content-addressed, and no record names them).
            let (marker, indexes, profiles, stored) = std::thread::scope(|s| {
                let marker = s.spawn(|| check_warehouse(&**wh));
                let profiles = s.spawn(|| fetch_profiles(&**wh, ware));
                let stored = s.spawn(|| {
                    let t = Instant::now();
                    self.local.put_nodes(&manifest.nodes).map(|()| t.elapsed())
                });
                let indexes = fetch_indexes(&**wh, &manifest.packs, deadline, self.deadline);
                let marker = marker.join().unwrap_or_else(|_| {
                    Err(crate::Error::Internal("the marker check panicked".into()))
                });
                let profiles = match profiles.join() {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        tracing::warn!(ware = %ware, "{e}; going without its profiles");
                        None
                    }
                    Err(_) => None,
                };
                let stored = stored.join().unwrap_or_else(|_| {
                    Err(ware_store::Error::Db(
                        "storing the manifest's nodes panicked".into(),
                    ))
                });
                (marker, indexes, profiles, stored)
            });
            let store_ms = stored?.as_millis();
            let side_ms = t0.elapsed().as_millis() - manifest_ms;
            if let Err(e) = marker {
                tracing::warn!(ware = %ware, url = wh.url(), "{e}");
                last_err = Some(e);
                continue;
            }
            for (name, got) in manifest.packs.iter().zip(indexes) {
                let key = ware_store::bundle::index_key(name);
                match named_by_manifest(&**wh, ware, &key, got) {
                    Ok(mut entries) => {
                        entries.sort_by_key(|e| e.offset);
                        let by_offset = Arc::new(entries);
                        let pack: Arc<str> = Arc::from(name.as_str());
                        for (at, e) in by_offset.iter().enumerate() {
                            locations.push((
                                e.chunk,
                                Location {
                                    warehouse: i,
                                    pack: pack.clone(),
                                    by_offset: by_offset.clone(),
                                    at,
                                },
                            ));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(ware = %ware, url = wh.url(), pack = %name, "index: {e}");
                        last_err = Some(e);
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                continue;
            }
            self.local.note_partial(ware)?;
            let mut st = self.state();
            st.tried.insert(*ware);
            for (c, l) in locations {
                st.chunks.entry(c).or_insert(l);
            }
            if let Some(p) = profiles {
                st.profiles.insert(*ware, p);
            }
            tracing::info!(
                ware = %ware,
                url = wh.url(),
                nodes = manifest.nodes.len(),
                packs = manifest.packs.len(),
                manifest_ms,
                side_ms,
                store_ms,
                "fetched the ware's metadata"
            );
            return Ok(true);
        }
        match last_err {
            // A failure may pass: the next read tries again.
            Some(e) => Err(remote_err(e)),
            None => {
                // No warehouse has it: do not ask again for every lookup of this ID.
                self.state().tried.insert(*ware);
                Ok(false)
            }
        }
    }

    fn fetch_node_block(&self, id: &NodeId, deadline: Instant) -> ware_store::Result<Vec<u8>> {
        for wh in &self.warehouses {
            if Instant::now() >= deadline {
                break;
            }
            if !matches!(wh.kind(), Kind::IpfsRpc | Kind::IpfsGateway) {
                continue;
            }
            match wh.get_block(&id.0) {
                Ok(b) if id.matches(&b) => {
                    self.local.put_nodes(&[(*id, b.to_vec())])?;
                    return Ok(b.to_vec());
                }
                Ok(_) => {
                    tracing::error!(node = %id, url = wh.url(), "block does not match its CID")
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(node = %id, url = wh.url(), "{e}"),
            }
        }
        Err(not_found("node", id.to_string()))
    }

    fn fetch_chunk(&self, id: &ChunkId, deadline: Instant) -> ware_store::Result<Vec<u8>> {
        let loc = self.state().chunks.get(id).cloned();
        if let Some(loc) = loc {
            // The warehouse the ware's manifest came from first, then the other object
            // warehouses: a pack is named by its index's hash, so the same name is the same
            // pack wherever it is.
            let order =
                std::iter::once(loc.warehouse)
                    .chain((0..self.warehouses.len()).filter(|&i| {
                        i != loc.warehouse && self.warehouses[i].kind().has_objects()
                    }));
            for i in order {
                if Instant::now() >= deadline {
                    break;
                }
                let at = Location {
                    warehouse: i,
                    ..loc.clone()
                };
                match self.read_window(id, &at) {
                    Ok(data) => return Ok(data),
                    Err(e) => {
                        tracing::warn!(chunk = %id, url = self.warehouses[i].url(), "{e}")
                    }
                }
            }
        }
        for wh in &self.warehouses {
            if Instant::now() >= deadline {
                break;
            }
            if !matches!(wh.kind(), Kind::IpfsRpc | Kind::IpfsGateway) {
                continue;
            }
            match wh.get_block(&id.to_cid()) {
                Ok(b) if ChunkId::of(&b) == *id => {
                    let stored = encode_chunk(&b);
                    self.local.put_chunks(&[(*id, b.len() as u32, stored)])?;
                    return Ok(b.to_vec());
                }
                Ok(_) => {
                    tracing::error!(chunk = %id, url = wh.url(), "block does not match its CID")
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(chunk = %id, url = wh.url(), "{e}"),
            }
        }
        Err(not_found("chunk", id.to_string()))
    }

    /// Reads the chunk and its followers in the pack (up to [`READ_WINDOW`]), verifies and
    /// caches each, and returns the one asked for.
    ///
    /// The window stops before the first follower already cached or being fetched, so that
    /// no byte is fetched twice; a chunk another reader is fetching is waited for.
    fn read_window(&self, id: &ChunkId, loc: &Location) -> ware_store::Result<Vec<u8>> {
        let all = window(loc, READ_WINDOW);
        let deadline = Instant::now() + self.deadline;
        if self.wait_started(id, deadline) {
            match self.local.chunk(id) {
                Err(ware_store::Error::NotFound { .. }) => {}
                other => return other,
            }
        }
        let n = {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            let mut n = 1;
            for e in all.iter().skip(1) {
                if started.contains(&e.chunk) || self.local.has_chunk(&e.chunk).unwrap_or(true) {
                    break;
                }
                n += 1;
            }
            for e in &all[..n.min(all.len())] {
                started.insert(e.chunk);
            }
            n.min(all.len())
        };
        let got = self.read_entries(id, loc, &all[..n], Why::Demand);
        self.mark_started(&all[..n], false);
        self.done.notify_all();
        got
    }

    fn mark_started(&self, entries: &[PackEntry], on: bool) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        for e in entries {
            if on {
                started.insert(e.chunk);
            } else {
                started.remove(&e.chunk);
            }
        }
    }

    fn forget_inflight(&self, entries: &[PackEntry]) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for e in entries {
            inflight.remove(&e.chunk);
        }
        drop(inflight);
        self.done.notify_all();
    }

    /// Waits (until `deadline`) while `id` is being fetched; true if it was.
    fn wait_started(&self, id: &ChunkId, deadline: Instant) -> bool {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if !started.contains(id) {
            return false;
        }
        while started.contains(id) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            started = match self.done.wait_timeout(started, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    /// Reads `entries` (back to back in the pack at `loc`) in one request, verifies and
    /// caches each, and returns the chunk `id` (one of them).
    fn read_entries(
        &self,
        id: &ChunkId,
        loc: &Location,
        entries: &[PackEntry],
        why: Why,
    ) -> ware_store::Result<Vec<u8>> {
        let wh = &self.warehouses[loc.warehouse];
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Err(ware_store::Error::CorruptChunk(*id));
        };
        let start = first.offset;
        let end = last.offset.saturating_add(u64::from(last.stored_len));
        let data = wh
            .get_range(&pack_key(&loc.pack), start..end)
            .map_err(remote_err)?;
        self.counters.fetched(why, end - start);
        let mut batch = Vec::with_capacity(entries.len());
        let mut wanted = None;
        for e in entries {
            let from = (e.offset - start) as usize;
            let Some(stored) = data.get(from..from + e.stored_len as usize) else {
                break;
            };
            match decode_chunk(e.chunk, stored) {
                Ok(plain) => {
                    batch.push((e.chunk, plain.len() as u32, stored.to_vec()));
                    if e.chunk == *id {
                        wanted = Some(plain);
                    }
                }
                Err(_) => {
                    tracing::error!(chunk = %e.chunk, url = wh.url(), pack = %loc.pack, "chunk from the warehouse does not match its hash: not cached");
                    if e.chunk == *id {
                        return Err(ware_store::Error::CorruptChunk(*id));
                    }
                }
            }
        }
        self.local.put_chunks(&batch)?;
        wanted.ok_or(ware_store::Error::CorruptChunk(*id))
    }
}

/// The pack entries read together with the one at `loc`: it and those that follow it back to
/// back, up to `limit` bytes (at least the one).
fn window(loc: &Location, limit: u64) -> &[PackEntry] {
    let entries = loc.by_offset.get(loc.at..).unwrap_or_default();
    let Some(first) = entries.first() else {
        return entries;
    };
    let start = first.offset;
    let mut end = start.saturating_add(u64::from(first.stored_len));
    let mut n = 1;
    for e in &entries[1..] {
        let e_end = e.offset.saturating_add(u64::from(e.stored_len));
        if e.offset != end || e_end - start > limit {
            break;
        }
        end = e_end;
        n += 1;
    }
    &entries[..n]
}

/// The `n` entries from the one at `loc`.
fn run_of(loc: &Location, n: usize) -> &[PackEntry] {
    let all = &loc.by_offset[..];
    let from = loc.at.min(all.len());
    &all[from..(from + n).min(all.len())]
}

impl BlockSource for ReadThrough {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        self.inner.node(id)
    }

    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        self.following.read(id);
        self.inner.chunk(id)
    }

    fn foreign(&self) -> Option<&dyn ware_store::ForeignTree> {
        Some(&self.unixfs)
    }

    fn prefetch(&self, ids: &[ChunkId]) {
        self.hint(ids)
    }
}
