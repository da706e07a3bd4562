//! Warehouse catalogs, against a warehouse: recording a push, folding pushes into pages,
//! reading what a warehouse holds. The format and its merge rules are
//! [`ware_store::catalog`]; docs/FORMAT.md, "Catalogs", is the specification.
//!
//! A push writes its own object, then folds: it reads the head, lists the push objects, merges
//! those the head lacks into the pages they belong to, writes those pages (named by their
//! hash, so a page is never overwritten) and then the head, and goes round again until a
//! listing after its write holds nothing the head lacks. Two machines pushing at once may
//! overwrite each other's head, but the last to write one has, after it, listed every push
//! made before: no entry is lost, and merging is the same in any order. Readers need no
//! listing: the head, then its pages (in parallel); where the warehouse can list, pushes not
//! yet folded (an interrupted push) are read too.

use std::collections::BTreeMap;

use bytes::Bytes;
use ware_store::WareId;
use ware_store::catalog::{
    self, Entry, GRACE_SECS, HEAD_KEY, Head, PUSHES_PREFIX, Page, PageRef, Push, Retired,
};

use crate::Warehouse;
use crate::error::{Error, Result};

/// Pages fetched at once by a reader.
const PAGE_FETCHES: usize = 8;
/// Rounds a fold makes before it gives up on a catalog that keeps changing under it.
const FOLD_ROUNDS: usize = 16;

/// What a warehouse's catalog says it holds.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The wares, by ID.
    pub wares: Vec<Entry>,
    /// Each name, with the ware it was last pushed for and when.
    pub names: BTreeMap<String, (WareId, u64)>,
    /// Whether the warehouse has a catalog at all (one written before catalogs has none).
    pub found: bool,
    /// The listing is an IPFS node's pins ([`Warehouse::pins`]): each pinned ware, with no
    /// size, entry count, push time (all 0) or name, which a node does not keep.
    pub pinned: bool,
    /// Requests made to read it.
    pub requests: u64,
}

fn url_of(wh: &dyn Warehouse, key: &str) -> String {
    format!("{}/{key}", wh.url().trim_end_matches('/'))
}

fn corrupt(wh: &dyn Warehouse, key: &str, e: ware_store::Error) -> Error {
    Error::Corrupt {
        url: url_of(wh, key),
        why: e.to_string(),
    }
}

/// The head, `None` if the warehouse has no catalog; a damaged head is [`Error::Corrupt`].
pub fn read_head(wh: &dyn Warehouse) -> Result<Option<Head>> {
    match wh.get(HEAD_KEY) {
        Ok(b) => Head::decode(&b)
            .map(Some)
            .map_err(|e| corrupt(wh, HEAD_KEY, e)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fetches and checks page `r` of a head: it must hash to its name, hold what the head says,
/// and only IDs from its first up to (not including) `next`'s.
fn read_page(wh: &dyn Warehouse, r: &PageRef, next: Option<&PageRef>) -> Result<Page> {
    let key = catalog::page_key(&r.name);
    let bytes = wh.get(&key)?;
    let page = Page::decode(&r.name, &bytes).map_err(|e| corrupt(wh, &key, e))?;
    let inside = page.wares.first().is_none_or(|w| w.ware == r.first)
        && page.wares.len() as u64 == r.count
        && next.is_none_or(|n| page.wares.last().is_none_or(|w| w.ware < n.first));
    if !inside {
        return Err(Error::Corrupt {
            url: url_of(wh, &key),
            why: "the page does not hold what the catalog's head says".into(),
        });
    }
    Ok(page)
}

/// The pages of `head` at `at`, fetched [`PAGE_FETCHES`] at a time.
fn read_pages(wh: &dyn Warehouse, head: &Head, at: &[usize]) -> Result<Vec<Page>> {
    let mut out = Vec::with_capacity(at.len());
    for batch in at.chunks(PAGE_FETCHES) {
        let got: Vec<Result<Page>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&i| s.spawn(move || read_page(wh, &head.pages[i], head.pages.get(i + 1))))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Corrupt {
                            url: wh.url().to_owned(),
                            why: "reading a catalog page panicked".into(),
                        })
                    })
                })
                .collect()
        });
        for p in got {
            out.push(p?);
        }
    }
    Ok(out)
}

/// The push objects under `keys`; a damaged one is logged and passed over.
fn read_pushes(wh: &dyn Warehouse, keys: &[String]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for key in keys {
        match wh.get(key) {
            Ok(b) => match Push::decode(&b) {
                Ok(p) => out.push(p.entry),
                Err(e) => tracing::warn!("{}: {e}; passed over", url_of(wh, key)),
            },
            // Removed by another fold meanwhile: it folded it.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reads what the warehouse's catalog holds. A page that went missing under a reader (a fold
/// replaced it and its grace passed) makes it read the new head, once.
pub fn read(wh: &dyn Warehouse) -> Result<Listing> {
    if wh.kind().has_pins() {
        return read_pins(wh);
    }
    let mut listing = Listing::default();
    let mut again = true;
    let head = loop {
        listing.requests += 1;
        let Some(head) = read_head(wh)? else {
            break None;
        };
        let all: Vec<usize> = (0..head.pages.len()).collect();
        match read_pages(wh, &head, &all) {
            Ok(pages) => {
                listing.requests += pages.len() as u64;
                listing.wares = pages.into_iter().flat_map(|p| p.wares).collect();
                break Some(head);
            }
            Err(e) if e.is_not_found() && again => again = false,
            Err(e) => return Err(e),
        }
    };
    listing.found = head.is_some();
    // Pushes not folded yet, where the warehouse can say which there are.
    if wh.kind().can_list() {
        listing.requests += 1;
        let folded = head.as_ref().map(|h| &h.folded[..]).unwrap_or(&[]);
        let pending: Vec<String> = wh
            .list(PUSHES_PREFIX)?
            .into_iter()
            .filter(|k| folded.binary_search(k).is_err())
            .collect();
        if !pending.is_empty() {
            listing.found = true;
            listing.requests += pending.len() as u64;
            catalog::merge(&mut listing.wares, read_pushes(wh, &pending)?);
        }
    }
    listing.names = catalog::names(&listing.wares);
    Ok(listing)
}

/// An IPFS node's catalog: the wares among its recursive pins (a push pins each ware's root),
/// in ID order. Other pins (UnixFS trees, anything not shaped like a ware ID) are left out.
fn read_pins(wh: &dyn Warehouse) -> Result<Listing> {
    let mut ids: Vec<WareId> = wh
        .pins()?
        .into_iter()
        .filter_map(|c| WareId::from_cid(c).ok())
        .collect();
    ids.sort_by_key(|id| id.to_string());
    ids.dedup();
    let wares = ids
        .into_iter()
        .map(|id| Entry {
            ware: id.0,
            bytes: 0,
            entries: 0,
            at: 0,
            names: Vec::new(),
        })
        .collect();
    Ok(Listing {
        wares,
        names: BTreeMap::new(),
        found: true,
        pinned: true,
        requests: 1,
    })
}

/// Seconds since the epoch: the time a push or rebuild records.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Records a push of `entry` at `now` (seconds since the epoch) in the warehouse's catalog:
/// its own push object, then a fold.
pub fn record(wh: &dyn Warehouse, entry: Entry, now: u64) -> Result<()> {
    let key = catalog::push_key(now, rand::random());
    wh.put(&key, Bytes::from(Push::new(entry).encode()))?;
    fold(wh, now)
}

/// Folds every push object the head lacks into the pages, until a listing after the head's
/// write shows none; then removes push objects and pages whose grace has passed.
pub fn fold(wh: &dyn Warehouse, now: u64) -> Result<()> {
    for _ in 0..FOLD_ROUNDS {
        let head = read_head(wh)?.unwrap_or_else(Head::new);
        let listed = wh.list(PUSHES_PREFIX)?;
        let pending: Vec<String> = listed
            .iter()
            .filter(|k| head.folded.binary_search(k).is_err())
            .cloned()
            .collect();
        if pending.is_empty() {
            sweep(wh, &head, now);
            return Ok(());
        }
        let entries = read_pushes(wh, &pending)?;
        let mut head = fold_into(wh, head, entries, &listed, &pending, now)?;
        // Pages whose grace has passed leave the head here, and the warehouse after it.
        let expired: Vec<Retired> = head.retired.extract_if(.., |r| old(r.at, now)).collect();
        wh.put(HEAD_KEY, Bytes::from(head.encode()))?;
        for r in expired {
            remove(wh, &catalog::page_key(&r.name));
        }
    }
    Err(Error::Corrupt {
        url: url_of(wh, HEAD_KEY),
        why: format!("the catalog kept changing through {FOLD_ROUNDS} folds; push again"),
    })
}

/// `head` with `entries` merged into the pages they belong to (new pages written), `pending`
/// added to what it folded, and what left the listing dropped.
fn fold_into(
    wh: &dyn Warehouse,
    mut head: Head,
    entries: Vec<Entry>,
    listed: &[String],
    pending: &[String],
    now: u64,
) -> Result<Head> {
    let mut by_page: BTreeMap<usize, Vec<Entry>> = BTreeMap::new();
    for e in entries {
        by_page
            .entry(head.page_of(&e.id()).unwrap_or(0))
            .or_default()
            .push(e);
    }
    let touched: Vec<usize> = by_page
        .keys()
        .copied()
        .filter(|&i| i < head.pages.len())
        .collect();
    let mut old = read_pages(wh, &head, &touched)?.into_iter();
    // From the last page back, so the indexes of those before stay right as pages split.
    for (i, adds) in by_page.into_iter().rev() {
        let (mut wares, replaced) = if i < head.pages.len() {
            let page = old.next_back().expect("one page read per touched index");
            (page.wares, Some(head.pages[i].name.clone()))
        } else {
            (Vec::new(), None)
        };
        catalog::merge(&mut wares, adds);
        let mut refs = Vec::new();
        for page in catalog::paginate(wares) {
            let (bytes, r) = page.encode_ref();
            if replaced.as_deref() != Some(r.name.as_str()) {
                wh.put(&catalog::page_key(&r.name), Bytes::from(bytes))?;
            }
            refs.push(r);
        }
        match replaced {
            Some(name) => {
                if !refs.iter().any(|r| r.name == name) {
                    head.retired.push(Retired { name, at: now });
                }
                head.pages.splice(i..=i, refs);
            }
            None => head.pages = refs,
        }
    }
    let mut folded: Vec<String> = head
        .folded
        .into_iter()
        .filter(|k| listed.binary_search(k).is_ok())
        .chain(pending.iter().cloned())
        .collect();
    folded.sort();
    folded.dedup();
    head.folded = folded;
    Ok(head)
}

/// Removes folded push objects and retired pages older than [`GRACE_SECS`] (a hint: failures
/// are logged). The head keeps naming what it removed until a later fold writes it again.
fn sweep(wh: &dyn Warehouse, head: &Head, now: u64) {
    let pushes = head
        .folded
        .iter()
        .filter(|k| catalog::push_key_secs(k).is_some_and(|at| old(at, now)))
        .cloned();
    let pages = head
        .retired
        .iter()
        .filter(|r| old(r.at, now))
        .map(|r| catalog::page_key(&r.name));
    for key in pushes.chain(pages) {
        remove(wh, &key);
    }
}

/// Whether something made or replaced `at` is past its grace at `now`.
fn old(at: u64, now: u64) -> bool {
    at.saturating_add(GRACE_SECS) < now
}

/// Removes `key` (a hint: a failure is logged).
fn remove(wh: &dyn Warehouse, key: &str) {
    if let Err(e) = wh.delete(key) {
        tracing::warn!("removing {} from the catalog: {e}", url_of(wh, key));
    }
}

/// What a rebuild found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Rebuilt {
    /// Wares in the catalog written.
    pub wares: u64,
    /// Of those, found only by their manifest (no name, the rebuild's time as their push).
    pub from_manifests: u64,
    /// Pages and push objects that did not decode, passed over.
    pub refused: u64,
}

/// Writes a new catalog from what the warehouse lists: the pages and push objects still there
/// that decode (so names survive where they do), and every manifest under `wares/` that none
/// of them names (its size and entries read from its nodes, `now` as its push time). The old
/// head, damaged or not, is replaced; its pages are retired. Needs a listing (directory, S3).
pub fn rebuild(wh: &dyn Warehouse, now: u64) -> Result<Rebuilt> {
    if !wh.kind().can_list() {
        return Err(Error::Unsupported {
            url: wh.url().to_owned(),
            what: "rebuilding a catalog (it needs a listing: a directory or S3 warehouse)",
        });
    }
    let mut report = Rebuilt::default();
    let mut wares: Vec<Entry> = Vec::new();
    let old_pages = wh.list(catalog::PAGES_PREFIX)?;
    for key in &old_pages {
        let name = key.strip_prefix(catalog::PAGES_PREFIX).unwrap_or(key);
        let bytes = match wh.get(key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        match Page::decode(name, &bytes) {
            Ok(p) => catalog::merge(&mut wares, p.wares),
            Err(e) => {
                report.refused += 1;
                tracing::warn!("{}: {e}; passed over", url_of(wh, key));
            }
        }
    }
    let pushes = wh.list(PUSHES_PREFIX)?;
    let from_pushes = read_pushes(wh, &pushes)?;
    report.refused += (pushes.len() - from_pushes.len()) as u64;
    catalog::merge(&mut wares, from_pushes);
    let mut found = Vec::new();
    for key in wh.list(ware_store::bundle::WARES_PREFIX)? {
        let Some(Ok(id)) = key
            .strip_prefix(ware_store::bundle::WARES_PREFIX)
            .map(str::parse::<WareId>)
        else {
            continue;
        };
        if wares.binary_search_by(|w| w.ware.cmp(&id.0)).is_ok() {
            continue;
        }
        match manifest_entry(wh, &id, now) {
            Ok(e) => found.push(e),
            Err(e) => tracing::warn!("{}: {e}; not in the rebuilt catalog", url_of(wh, &key)),
        }
    }
    report.from_manifests = found.len() as u64;
    catalog::merge(&mut wares, found);
    report.wares = wares.len() as u64;
    let mut head = Head::new();
    if !wares.is_empty() {
        for page in catalog::paginate(wares) {
            let (bytes, r) = page.encode_ref();
            wh.put(&catalog::page_key(&r.name), Bytes::from(bytes))?;
            head.pages.push(r);
        }
    }
    head.retired = old_pages
        .iter()
        .filter_map(|k| k.strip_prefix(catalog::PAGES_PREFIX))
        .filter(|n| !head.pages.iter().any(|p| p.name == *n))
        .map(|n| Retired {
            name: n.to_string(),
            at: now,
        })
        .collect();
    head.folded = pushes;
    wh.put(HEAD_KEY, Bytes::from(head.encode()))?;
    Ok(report)
}

/// A catalog entry for `ware` read from its manifest: its size and entries from its nodes.
fn manifest_entry(wh: &dyn Warehouse, ware: &WareId, now: u64) -> Result<Entry> {
    use ware_store::BlockSink;
    let m = crate::transfer::fetch_manifest(wh, ware)?;
    let mem = ware_store::MemStore::new();
    let damaged = |e: ware_store::Error| Error::Corrupt {
        url: url_of(wh, &ware_store::bundle::ware_key(ware)),
        why: e.to_string(),
    };
    mem.put_nodes(&m.nodes).map_err(damaged)?;
    let record = ware_store::Reader::new(&mem)
        .record(ware)
        .map_err(damaged)?;
    Ok(Entry {
        ware: ware.0,
        bytes: record.logical_bytes,
        entries: record.files + record.dirs + record.symlinks + record.specials,
        at: now,
        names: Vec::new(),
    })
}
