//! Packs in access order (docs/FORMAT.md, "Warehouses"): a push lays the chunks a ware's
//! profile lists first, in first-read order, so a prefetch of the profile is a few long range
//! reads instead of many short ones. A ware pushed before its profile was learned gets its
//! profile's chunks copied into new packs, in that order, and a manifest that names those
//! packs first (readers take a chunk from the first pack that holds it) — only when the
//! layout it has would cost a prefetch more than twice the requests an ordered one would.
//! IDs never change: packs are a warehouse detail.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use ware_store::bundle::{Manifest, PackEntry, encode_manifest, ware_key};
use ware_store::pack::Progress;
use ware_store::profile::{BlockKind, ProfileSet, block_kind};
use ware_store::{BlockSource, ChunkId, WareId};

use super::{fetch_indexes, fetch_manifest, named_by_manifest, upload_packs};
use crate::read_through::PrefetchOptions;
use crate::read_through::prefetch::joins;
use crate::{Result, Warehouse};

/// The chunks of the ware's profiles in first-read order, each once: its own profile's, then
/// those its run profiles add.
fn profile_chunks(profiles: &ProfileSet) -> Vec<ChunkId> {
    let own = format!("ware:{}", profiles.ware);
    let mut keys: Vec<&String> = profiles.profiles.keys().collect();
    keys.sort_by_key(|k| **k != own);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for k in keys {
        for b in &profiles.profiles[k].blocks {
            if block_kind(&b.0) == Some(BlockKind::Chunk)
                && let Ok(id) = ChunkId::from_cid(&b.0)
                && seen.insert(id)
            {
                out.push(id);
            }
        }
    }
    out
}

/// `chunks` (in walk order) with those the profiles list moved to the front, in profile order.
pub(super) fn profile_first<'a>(
    chunks: Vec<&'a (ChunkId, u64)>,
    profiles: &ProfileSet,
) -> Vec<&'a (ChunkId, u64)> {
    let order = profile_chunks(profiles);
    if order.is_empty() {
        return chunks;
    }
    let place: HashMap<ChunkId, usize> = order.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    type Chunks<'b> = Vec<&'b (ChunkId, u64)>;
    let (mut first, rest): (Chunks<'a>, Chunks<'a>) =
        chunks.into_iter().partition(|c| place.contains_key(&c.0));
    first.sort_by_key(|c| place[&c.0]);
    first.extend(rest);
    first
}

/// Range requests a prefetch of `order` makes over `layout` (chunk → pack, entry), by the
/// read-through's rule (`joins`): per pack, chunks in offset order merged into requests.
fn requests(order: &[ChunkId], layout: &HashMap<ChunkId, (usize, PackEntry)>, max: u64) -> usize {
    let mut at: Vec<(usize, u64, u64)> = order
        .iter()
        .filter_map(|c| layout.get(c))
        .map(|(p, e)| (*p, e.offset, e.offset + u64::from(e.stored_len)))
        .collect();
    at.sort_unstable();
    let mut n = 0;
    let mut cur: Option<(usize, u64, u64)> = None; // pack, start, end
    for (p, start, end) in at {
        match cur {
            Some((cp, cs, ce)) if cp == p && joins(cs, ce, start, end, max) => {
                cur = Some((cp, cs, ce.max(end)));
            }
            _ => {
                n += 1;
                cur = Some((p, start, end));
            }
        }
    }
    n
}

/// For a ware the warehouse holds: copies its profile's chunks into new packs in profile
/// order and rewrites its manifest to name them first, if its layout would cost a prefetch
/// more than twice the requests (and two more) an ordered one would; returns the chunks copied
/// and the bytes uploaded. `src` holds the whole ware (as for any push).
pub(super) fn reorder(
    src: &dyn BlockSource,
    ware: &WareId,
    wh: &dyn Warehouse,
    profiles: &ProfileSet,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let order = profile_chunks(profiles);
    if order.is_empty() {
        return Ok((0, 0));
    }
    let manifest = fetch_manifest(wh, ware)?;
    let budget = std::time::Duration::from_secs(600);
    let indexes = fetch_indexes(
        wh,
        &manifest.packs,
        std::time::Instant::now() + budget,
        budget,
    );
    let mut layout: HashMap<ChunkId, (usize, PackEntry)> = HashMap::new();
    for (i, (name, got)) in manifest.packs.iter().zip(indexes).enumerate() {
        let key = ware_store::bundle::index_key(name);
        for e in named_by_manifest(wh, ware, &key, got)? {
            layout.entry(e.chunk).or_insert((i, e));
        }
    }
    let max = PrefetchOptions::default().max_range;
    let mut stored = 0u64;
    let mut wanted: Vec<(ChunkId, u64)> = Vec::new();
    for c in &order {
        if let Some((_, e)) = layout.get(c) {
            stored += u64::from(e.stored_len);
            wanted.push((*c, u64::from(e.stored_len)));
        }
    }
    let now = requests(&order, &layout, max);
    let ideal = stored.div_ceil(max) as usize;
    if wanted.is_empty() || now <= 2 * ideal + 2 {
        return Ok((0, 0));
    }
    tracing::info!(
        ware = %ware,
        url = wh.url(),
        "laying out {} profile chunks in access order: {now} range requests, {ideal} after",
        wanted.len()
    );
    progress.total(wanted.iter().map(|(_, l)| l).sum());
    let refs: Vec<&(ChunkId, u64)> = wanted.iter().collect();
    let (names, mut bytes) = upload_packs(src, wh, &refs, progress)?;
    let rest: Vec<String> = manifest
        .packs
        .iter()
        .filter(|p| !names.contains(p))
        .cloned()
        .collect();
    let mut packs = names;
    packs.extend(rest);
    let m = encode_manifest(&Manifest {
        ware: *ware,
        nodes: manifest.nodes,
        packs,
    });
    bytes += m.len() as u64;
    // Every new pack and its index are up: only now does the manifest name them.
    wh.put(&ware_key(ware), Bytes::from(m))?;
    Ok((wanted.len() as u64, bytes))
}
