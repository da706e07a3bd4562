//! Moving whole wares between a local store and a warehouse: [`push`] and [`pull`], in the
//! warehouse layout v1 (docs/FORMAT.md, "Warehouses"; [`ware_store::bundle`]).
//!
//! Invariants: push writes every pack and its index before the ware's manifest, so a manifest
//! never names a missing pack; it uploads no chunk the warehouse's packs already hold, and a
//! push of a ware already there uploads nothing but the ware's profiles the warehouse lacks or
//! holds from fewer recordings (`profiles/<id>`, after the manifest). Pull verifies every node
//! and chunk before it writes it, writes chunks before nodes, and records the ware complete
//! last. A warehouse without profiles reads as before.

// Store errors travel as they are (BlockSource is the store's trait): their size is not ours.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use ware_store::bundle::{
    MARKER, MARKER_KEY, Manifest, PACK_TARGET, PackBuilder, PackEntry, check_marker, decode_index,
    decode_manifest, encode_manifest, index_key, pack_key, profiles_key, ware_key,
};
use ware_store::chunk::decode_chunk;
use ware_store::pack::Progress;
use ware_store::profile::ProfileSet;
use ware_store::{BlockSink, BlockSource, ChunkId, NodeId, Reader, WareId};

use crate::{Error, Kind, Result, Warehouse};

mod order;

/// How many packs are uploaded at once.
const UPLOADERS: usize = 3;

/// Bytes of blocks per CAR imported into an IPFS node.
const CAR_TARGET: usize = 32 << 20;

/// What a push did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PushReport {
    /// The ware.
    pub ware: Option<WareId>,
    /// The warehouse's URL.
    pub url: String,
    /// True when the warehouse had the ware already (nothing but profiles was written).
    pub already_there: bool,
    /// Profiles uploaded (new to the warehouse, or learned from more recordings than its own).
    #[serde(default)]
    pub profiles: u64,
    /// Chunks copied into packs in profile order for a ware the warehouse had already
    /// (its manifest rewritten to name them first).
    #[serde(default)]
    pub ordered_chunks: u64,
    /// Nodes of the ware.
    pub nodes: u64,
    /// Distinct chunks of the ware.
    pub chunks: u64,
    /// Chunks uploaded (the others were in the warehouse already).
    pub new_chunks: u64,
    /// Bytes uploaded (packs, indexes, manifest or blocks).
    pub uploaded_bytes: u64,
    /// Whether the push is in the warehouse's catalog (docs/FORMAT.md, "Catalogs"; on an
    /// IPFS node: the ware's root is pinned): false where recording it failed
    /// (`catalog_error` says why).
    #[serde(default)]
    pub cataloged: bool,
    /// Why the push is not in the catalog, if recording it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_error: Option<String>,
    /// What the push could not do but the ware is there all the same (names an IPFS node
    /// cannot keep).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// What a pull did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PullReport {
    /// The ware.
    pub ware: Option<WareId>,
    /// The warehouse's URL.
    pub url: String,
    /// Nodes of the ware.
    pub nodes: u64,
    /// Distinct chunks of the ware.
    pub chunks: u64,
    /// Chunks fetched (the others were in the store already).
    pub fetched_chunks: u64,
    /// Bytes fetched.
    pub fetched_bytes: u64,
    /// Profiles taken from the warehouse (new to the store, or learned from more recordings).
    #[serde(default)]
    pub profiles: u64,
}

fn store_err(e: ware_store::Error) -> Error {
    e.into()
}

/// Makes sure the warehouse carries the layout marker (writing it into an empty one).
pub fn ensure_marker(wh: &dyn Warehouse) -> Result<()> {
    match wh.get(MARKER_KEY) {
        Ok(b) => check_marker(&b).map_err(store_err),
        Err(e) if e.is_not_found() => wh.put(MARKER_KEY, Bytes::from_static(MARKER)),
        Err(e) => Err(e),
    }
}

/// Checks, before a ware found in a warehouse is read, that the warehouse is one of the layout
/// this ware reads: a missing marker (a directory that only looks like a warehouse) or another
/// version (one written by a future ware) is refused, never read silently.
pub fn check_warehouse(wh: &dyn Warehouse) -> Result<()> {
    let layout = |why: String| Error::Layout {
        url: wh.url().to_string(),
        why,
    };
    match wh.get(MARKER_KEY) {
        Ok(b) => check_marker(&b).map_err(|e| layout(e.to_string())),
        Err(e) if e.is_not_found() => Err(layout(format!(
            "it has a ware's manifest but no {MARKER_KEY} marker: not a warefs warehouse"
        ))),
        Err(e) => Err(e),
    }
}

/// A part that a ware's manifest names but the warehouse lacks is damage, not absence.
pub(crate) fn named_by_manifest<T>(
    wh: &dyn Warehouse,
    ware: &WareId,
    key: &str,
    r: Result<T>,
) -> Result<T> {
    r.map_err(|e| match e {
        Error::NotFound { .. } => Error::Corrupt {
            url: format!("{}/{key}", wh.url().trim_end_matches('/')),
            why: format!("missing, though the manifest of {ware} names it"),
        },
        e => e,
    })
}

/// Every node of a ware (root first) with its bytes, and its distinct chunks with their
/// lengths, in walk order.
pub type Walked = (Vec<(NodeId, Vec<u8>)>, Vec<(ChunkId, u64)>);

/// A ware's nodes and distinct chunks in walk order: what push uploads, and what `ware
/// serve` lays out.
pub fn collect(src: &dyn BlockSource, ware: &WareId) -> Result<Walked> {
    let mut nodes = Vec::new();
    let mut chunks = Vec::new();
    let mut seen = HashSet::new();
    Reader::new(src)
        .walk_ware(
            ware,
            &mut |id, b| {
                nodes.push((*id, b.to_vec()));
                Ok(())
            },
            &mut |c| {
                let id = c.id()?;
                if seen.insert(id) {
                    chunks.push((id, c.len()));
                }
                Ok(())
            },
        )
        .map_err(store_err)?;
    Ok((nodes, chunks))
}

/// The chunks the warehouse's packs hold: chunk → pack name.
fn known_chunks(wh: &dyn Warehouse) -> Result<HashMap<ChunkId, String>> {
    let mut known = HashMap::new();
    for key in wh.list("packs/")? {
        let Some(name) = key
            .strip_prefix("packs/")
            .and_then(|k| k.strip_suffix(".idx"))
        else {
            continue;
        };
        let entries = fetch_index(wh, name)?;
        for e in entries {
            known.entry(e.chunk).or_insert_with(|| name.to_string());
        }
    }
    Ok(known)
}

/// Fetches and verifies a pack's index.
pub fn fetch_index(wh: &dyn Warehouse, name: &str) -> Result<Vec<PackEntry>> {
    let bytes = wh.get(&index_key(name))?;
    decode_index(name, &bytes).map_err(|e| Error::Corrupt {
        url: format!("{}/{}", wh.url().trim_end_matches('/'), index_key(name)),
        why: e.to_string(),
    })
}

/// Pack indexes fetched at once when a ware's metadata is fetched (each is a round trip).
const INDEX_FETCHERS: usize = 8;

/// The indexes of `names` from `wh`, in that order, fetched by up to [`INDEX_FETCHERS`]
/// threads (this one included); those not started by `deadline` fail with a timeout.
pub(crate) fn fetch_indexes(
    wh: &dyn Warehouse,
    names: &[String],
    deadline: std::time::Instant,
    budget: std::time::Duration,
) -> Vec<Result<Vec<PackEntry>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Vec<PackEntry>>>>> =
        names.iter().map(|_| Mutex::new(None)).collect();
    let timeout = || Error::Timeout {
        url: wh.url().to_string(),
        deadline: budget,
    };
    let work = || {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(name) = names.get(k) else { return };
            let got = if std::time::Instant::now() >= deadline {
                Err(timeout())
            } else {
                fetch_index(wh, name)
            };
            *slots[k].lock().unwrap_or_else(|p| p.into_inner()) = Some(got);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..INDEX_FETCHERS.min(names.len()) {
            // A thread that cannot start leaves its share to the others and to this one.
            if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                break;
            }
        }
        work();
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(timeout()))
        })
        .collect()
}

/// Fetches and verifies a ware's manifest.
pub fn fetch_manifest(wh: &dyn Warehouse, ware: &WareId) -> Result<Manifest> {
    let bytes = wh.get(&ware_key(ware))?;
    decode_manifest(ware, &bytes).map_err(|e| Error::Corrupt {
        url: format!("{}/{}", wh.url().trim_end_matches('/'), ware_key(ware)),
        why: e.to_string(),
    })
}

/// Fetches and checks a ware's profiles; `None` when the warehouse has none (one written
/// before profiles, or one no push with profiles reached). A set that fails its checks (bad
/// bytes, another ware's profiles) is [`Error::Corrupt`], naming its URL.
pub fn fetch_profiles(wh: &dyn Warehouse, ware: &WareId) -> Result<Option<ProfileSet>> {
    let key = profiles_key(ware);
    let url = format!("{}/{key}", wh.url().trim_end_matches('/'));
    match wh.get(&key) {
        Ok(b) => ProfileSet::decode(&ware.0, &url, &b)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                url,
                why: e.to_string(),
            }),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Merges `local` into the warehouse's set of the ware's profiles and uploads the set if that
/// changed it; returns how many profiles went up and the bytes written. A damaged set there is
/// replaced.
fn push_profiles(wh: &dyn Warehouse, ware: &WareId, local: &ProfileSet) -> Result<(u64, u64)> {
    if local.profiles.is_empty() {
        return Ok((0, 0));
    }
    let mut set = match fetch_profiles(wh, ware) {
        Ok(Some(s)) => s,
        Ok(None) => ProfileSet::new(ware.0),
        Err(e) if e.is_corruption() => {
            tracing::warn!("{e}: replacing it");
            ProfileSet::new(ware.0)
        }
        Err(e) => return Err(e),
    };
    let taken = set.absorb(local);
    if taken.is_empty() {
        return Ok((0, 0));
    }
    let bytes = set.encode();
    let n = bytes.len() as u64;
    wh.put(&profiles_key(ware), Bytes::from(bytes))?;
    Ok((taken.len() as u64, n))
}

/// Uploads what the warehouse lacks of a ware: packs of new chunks, their indexes, the
/// manifest, then the ware's `profiles` it lacks (IPFS warehouses: every chunk and node as a
/// block, and no profiles).
pub fn push(
    src: &dyn BlockSource,
    ware: &WareId,
    wh: &dyn Warehouse,
    profiles: &ProfileSet,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let mut report = PushReport {
        ware: Some(*ware),
        url: wh.url().to_string(),
        ..PushReport::default()
    };
    if matches!(wh.kind(), Kind::IpfsRpc | Kind::IpfsGateway) {
        return push_blocks(src, ware, wh, progress, report);
    }
    ensure_marker(wh)?;
    if wh.exists(&ware_key(ware))? {
        report.already_there = true;
        (report.profiles, report.uploaded_bytes) = push_profiles(wh, ware, profiles)?;
        if report.profiles > 0 {
            // A profile learned after the ware was pushed: its chunks may lie far apart.
            let (n, bytes) = order::reorder(src, ware, wh, profiles, progress)?;
            report.ordered_chunks = n;
            report.uploaded_bytes += bytes;
        }
        return Ok(report);
    }
    let (nodes, chunks) = collect(src, ware)?;
    report.nodes = nodes.len() as u64;
    report.chunks = chunks.len() as u64;
    let known = known_chunks(wh)?;
    let mut packs: BTreeSet<String> = BTreeSet::new();
    let new: Vec<&(ChunkId, u64)> = chunks
        .iter()
        .filter(|(id, _)| match known.get(id) {
            Some(p) => {
                packs.insert(p.clone());
                false
            }
            None => true,
        })
        .collect();
    progress.total(new.iter().map(|(_, len)| len).sum());
    report.new_chunks = new.len() as u64;

    // New chunks in the order of the ware's profile (the chunks it lists first, so a
    // prefetch of it is a few long range reads), then in walk order.
    let new = order::profile_first(new, profiles);
    let (names, bytes) = upload_packs(src, wh, &new, progress)?;
    packs.extend(names);
    report.uploaded_bytes = bytes;
    let manifest = encode_manifest(&Manifest {
        ware: *ware,
        nodes,
        packs: packs.into_iter().collect(),
    });
    report.uploaded_bytes += manifest.len() as u64;
    wh.put(&ware_key(ware), Bytes::from(manifest))?;
    let (n, bytes) = push_profiles(wh, ware, profiles)?;
    report.profiles = n;
    report.uploaded_bytes += bytes;
    Ok(report)
}

/// Builds packs of `chunks` (read from `src`, in this order) and uploads each, its index after
/// it, by a few threads; returns the packs' names and the bytes uploaded.
fn upload_packs(
    src: &dyn BlockSource,
    wh: &dyn Warehouse,
    new: &[&(ChunkId, u64)],
    progress: &dyn Progress,
) -> Result<(Vec<String>, u64)> {
    // Packs are built here and uploaded by a few threads.
    let written = Mutex::new((Vec::<String>::new(), 0u64));
    let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<u8>, Vec<u8>)>(UPLOADERS);
    // The workers own the receiver: when the last one stops (on an upload error), sends fail
    // at once instead of waiting forever on a full queue.
    let rx = std::sync::Arc::new(Mutex::new(rx));
    std::thread::scope(|s| -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..UPLOADERS {
            let rx = rx.clone();
            let written = &written;
            workers.push(s.spawn(move || -> Result<()> {
                loop {
                    let next = rx.lock().map_err(|_| poisoned())?.recv();
                    let Ok((name, data, index)) = next else {
                        return Ok(());
                    };
                    let n = (data.len() + index.len()) as u64;
                    wh.put(&pack_key(&name), Bytes::from(data))?;
                    // The index last: a pack counts as there only once its index is.
                    wh.put(&index_key(&name), Bytes::from(index))?;
                    let mut w = written.lock().map_err(|_| poisoned())?;
                    w.0.push(name);
                    w.1 += n;
                }
            }));
        }
        drop(rx);
        let build = || -> Result<()> {
            let mut pack = PackBuilder::new();
            for (id, len) in new {
                let stored = src.stored_chunk(id).map_err(store_err)?;
                pack.add(*id, &stored);
                progress.advance(*len);
                if pack.len() >= PACK_TARGET {
                    let (name, data, _, index) = std::mem::take(&mut pack).finish();
                    tx.send((name, data, index)).map_err(|_| upload_failed())?;
                }
            }
            if !pack.is_empty() {
                let (name, data, _, index) = pack.finish();
                tx.send((name, data, index)).map_err(|_| upload_failed())?;
            }
            Ok(())
        };
        let built = build();
        drop(tx);
        // An upload error explains a failed send better than the send itself.
        for w in workers {
            w.join().map_err(|_| poisoned())??;
        }
        built
    })?;
    written.into_inner().map_err(|_| poisoned())
}

fn poisoned() -> Error {
    Error::Internal("a push worker panicked".into())
}

fn upload_failed() -> Error {
    Error::Internal("the uploaders stopped".into())
}

/// IPFS: every chunk (raw, uncompressed) and node (dag-cbor) as a block, imported as CARs of
/// up to [`CAR_TARGET`] bytes (one request each: nodes refuse BLAKE3 on `block/put`, and one
/// request per block would be thousands); the root comes in the last CAR, after everything
/// it names, and is read back to check the import.
fn push_blocks(
    src: &dyn BlockSource,
    ware: &WareId,
    wh: &dyn Warehouse,
    progress: &dyn Progress,
    mut report: PushReport,
) -> Result<PushReport> {
    let (nodes, chunks) = collect(src, ware)?;
    report.nodes = nodes.len() as u64;
    report.chunks = chunks.len() as u64;
    progress.total(chunks.iter().map(|(_, l)| l).sum());
    let mut batch: Vec<(cid::Cid, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let flush = |batch: &mut Vec<(cid::Cid, Vec<u8>)>, root: cid::Cid| -> Result<u64> {
        let blocks: Vec<(cid::Cid, &[u8])> = batch.iter().map(|(c, b)| (*c, &b[..])).collect();
        let car = crate::car_v1(&[root], &blocks);
        let n = car.len() as u64;
        wh.put_car(car)?;
        batch.clear();
        Ok(n)
    };
    for (id, len) in &chunks {
        let data = src.chunk(id).map_err(store_err)?;
        batch_bytes += data.len();
        batch.push((id.to_cid(), data));
        report.new_chunks += 1;
        progress.advance(*len);
        if batch_bytes >= CAR_TARGET {
            let root = batch[0].0;
            report.uploaded_bytes += flush(&mut batch, root)?;
            batch_bytes = 0;
        }
    }
    // Nodes children-last in the walk, so reversed: the root is the very last block.
    for (id, bytes) in nodes.iter().rev() {
        batch.push((id.0, bytes.clone()));
    }
    report.uploaded_bytes += flush(&mut batch, ware.0)?;
    let back = wh.get_block(&ware.0)?;
    if !ware.matches(&back) {
        return Err(Error::Internal(format!(
            "{}: the ware's root {ware} did not come back after the import",
            wh.url()
        )));
    }
    Ok(report)
}

/// Nodes of a manifest as a block source (no chunks), for walking a ware before its nodes are
/// in the store.
struct ManifestNodes(HashMap<NodeId, Vec<u8>>);

impl BlockSource for ManifestNodes {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        self.0
            .get(id)
            .cloned()
            .ok_or_else(|| ware_store::Error::NotFound {
                what: "node (not in the ware's manifest)",
                id: id.to_string(),
            })
    }
    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        Err(ware_store::Error::NotFound {
            what: "chunk",
            id: id.to_string(),
        })
    }
}

/// Brings a whole ware into a local store, verified, and records it complete.
pub fn pull(
    wh: &dyn Warehouse,
    ware: &WareId,
    sink: &dyn BlockSink,
    progress: &dyn Progress,
) -> Result<PullReport> {
    let mut report = PullReport {
        ware: Some(*ware),
        url: wh.url().to_string(),
        ..PullReport::default()
    };
    if matches!(wh.kind(), Kind::IpfsRpc | Kind::IpfsGateway) {
        return Err(Error::Unsupported {
            url: wh.url().to_string(),
            what: "pulling a whole ware (mount it lazily instead)",
        });
    }
    let manifest = fetch_manifest(wh, ware)?;
    check_warehouse(wh)?;
    let nodes = ManifestNodes(manifest.nodes.iter().cloned().collect());
    let (_, chunks) = collect(&nodes, ware)?;
    report.nodes = manifest.nodes.len() as u64;
    report.chunks = chunks.len() as u64;
    let lens: HashMap<ChunkId, u64> = chunks.iter().copied().collect();
    let mut missing: HashSet<ChunkId> = HashSet::new();
    for (id, _) in &chunks {
        if !sink.has_chunk(id).map_err(store_err)? {
            missing.insert(*id);
        }
    }
    progress.total(missing.iter().map(|id| lens[id]).sum());
    for name in &manifest.packs {
        let wanted: Vec<PackEntry> =
            named_by_manifest(wh, ware, &index_key(name), fetch_index(wh, name))?
                .into_iter()
                .filter(|e| missing.contains(&e.chunk))
                .collect();
        if wanted.is_empty() {
            continue;
        }
        // The whole pack: a pull wants all of the ware's chunks its packs hold that the
        // store lacks, usually most of the pack.
        let data = named_by_manifest(wh, ware, &pack_key(name), wh.get(&pack_key(name)))?;
        report.fetched_bytes += data.len() as u64;
        let mut batch = Vec::new();
        for e in wanted {
            let stored = slice(&data, &e).ok_or_else(|| Error::Corrupt {
                url: format!("{}/{}", wh.url().trim_end_matches('/'), pack_key(name)),
                why: format!("chunk {} lies past the end of the pack", e.chunk),
            })?;
            let plain = decode_chunk(e.chunk, stored).map_err(|_| Error::Corrupt {
                url: format!("{}/{}", wh.url().trim_end_matches('/'), pack_key(name)),
                why: format!("chunk {} does not match its hash", e.chunk),
            })?;
            batch.push((e.chunk, plain.len() as u32, stored.to_vec()));
            missing.remove(&e.chunk);
            report.fetched_chunks += 1;
            progress.advance(plain.len() as u64);
        }
        sink.put_chunks(&batch).map_err(store_err)?;
    }
    if let Some(id) = missing.iter().next() {
        return Err(Error::Corrupt {
            url: format!("{}/{}", wh.url().trim_end_matches('/'), ware_key(ware)),
            why: format!(
                "{} chunks of the ware are in none of its packs (first: {id})",
                missing.len()
            ),
        });
    }
    // Nodes after every chunk; the record last.
    sink.put_nodes(&manifest.nodes).map_err(store_err)?;
    let mut record = Reader::new(&nodes).record(ware).map_err(store_err)?;
    record.packed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sink.commit_ware(ware, &record).map_err(store_err)?;
    Ok(report)
}

/// The stored bytes of one pack entry, if the pack is long enough.
pub(crate) fn slice<'a>(data: &'a [u8], e: &PackEntry) -> Option<&'a [u8]> {
    let start = usize::try_from(e.offset).ok()?;
    let end = start.checked_add(e.stored_len as usize)?;
    data.get(start..end)
}
