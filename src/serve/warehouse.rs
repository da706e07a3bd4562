//! The warehouse protocol from `ware serve` (docs/FORMAT.md, "Warehouses"): the store's whole
//! wares as a read-only HTTP warehouse, so another machine mounts one straight from here with
//! `ware --warehouse http://HOST:PORT mount ID`, lazily and verified on its side as from any
//! warehouse. Nothing is written: a ware's manifest and packs are laid out on first request
//! (its nodes in walk order; its chunks, each once, in walk order, in raw stored form so every
//! offset is known from the nodes alone) and kept in memory; a pack range reads only the
//! chunks it covers, each verified against its ID as the store reads it. The catalog lists
//! the store's whole wares and names; a ware's profiles are the store's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use ware_store::bundle::{MARKER, Manifest, PACK_TARGET, PackEntry, encode_index, encode_manifest};
use ware_store::catalog::{Entry, Head, Named, paginate};
use ware_store::chunk::TAG_RAW;
use ware_store::db::Store;
use ware_store::{BlockSource, ChunkId, WareId};

/// The first path segments the protocol answers (a store name spelt so is browsed as
/// `/<its id>/`).
pub(super) const RESERVED: &[&str] = &["warefs-warehouse", "wares", "packs", "profiles", "catalog"];

/// Wares laid out at most; the oldest layout is dropped beyond (laid out again when asked).
const LAYOUTS_MAX: usize = 32;

/// One chunk's place in a pack.
struct Placed {
    id: ChunkId,
    offset: u64,
    stored: u64,
}

/// A pack as served: its index and where its chunks sit.
pub(super) struct Pack {
    index: Bytes,
    chunks: Vec<Placed>,
    /// Its length in bytes.
    pub(super) len: u64,
}

/// A ware laid out as a warehouse holds it.
struct Layout {
    manifest: Bytes,
    packs: Vec<(String, Arc<Pack>)>,
}

/// What the server has laid out: by ware, and each pack by name.
#[derive(Default)]
pub(super) struct Layouts {
    inner: Mutex<LayoutsInner>,
}

#[derive(Default)]
struct LayoutsInner {
    wares: HashMap<WareId, Arc<Layout>>,
    order: std::collections::VecDeque<WareId>,
    packs: HashMap<String, Arc<Pack>>,
    /// The pages of the catalog the last head listed, by name.
    pages: HashMap<String, Bytes>,
}

/// What a protocol request is answered with.
pub(super) enum Object {
    /// Bytes served as they are.
    Bytes(Bytes),
    /// A pack, streamed by range from the store.
    Pack(Arc<Pack>),
    /// Nothing under that key.
    Missing,
}

impl Layouts {
    fn layout(&self, store: &Store, ware: &WareId) -> Result<Arc<Layout>> {
        if let Some(l) = self.lock().wares.get(ware) {
            return Ok(l.clone());
        }
        let l = Arc::new(lay_out(store, ware)?);
        let mut inner = self.lock();
        if inner.wares.insert(*ware, l.clone()).is_none() {
            inner.order.push_back(*ware);
            for (name, p) in &l.packs {
                inner.packs.insert(name.clone(), p.clone());
            }
        }
        while inner.order.len() > LAYOUTS_MAX {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.wares.remove(&old) {
                for (name, _) in &gone.packs {
                    inner.packs.remove(name);
                }
            }
        }
        Ok(l)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LayoutsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pack named `name`: one of a laid-out ware, else (a client that read a manifest
    /// before this server started, or one dropped since) of any whole ware laid out again.
    fn pack(&self, store: &Store, name: &str) -> Result<Option<Arc<Pack>>> {
        if let Some(p) = self.lock().packs.get(name) {
            return Ok(Some(p.clone()));
        }
        for (id, _) in store.wares()? {
            let l = self.layout(store, &id)?;
            if let Some((_, p)) = l.packs.iter().find(|(n, _)| n == name) {
                return Ok(Some(p.clone()));
            }
        }
        Ok(None)
    }

    /// The store's catalog as it is now: its head, its pages kept for the requests that follow.
    fn catalog(&self, store: &Store) -> Result<Head> {
        let (head, pages) = catalog(store)?;
        self.lock().pages = pages
            .into_iter()
            .map(|(n, b)| (n, Bytes::from(b)))
            .collect();
        Ok(head)
    }

    /// The object under `key`, for a store that holds the wares it names whole.
    pub(super) fn get(&self, store: &Store, key: &str) -> Result<Object> {
        let whole = |id: &str| -> Result<Option<WareId>> {
            let Ok(id) = id.parse::<WareId>() else {
                return Ok(None);
            };
            Ok(store.ware(&id)?.map(|_| id))
        };
        let bytes = |b: Vec<u8>| Ok(Object::Bytes(Bytes::from(b)));
        if key == ware_store::bundle::MARKER_KEY {
            return bytes(MARKER.to_vec());
        }
        if let Some(id) = key.strip_prefix("wares/") {
            return match whole(id)? {
                Some(id) => Ok(Object::Bytes(self.layout(store, &id)?.manifest.clone())),
                None => Ok(Object::Missing),
            };
        }
        if let Some(id) = key.strip_prefix("profiles/") {
            let Some(id) = whole(id)? else {
                return Ok(Object::Missing);
            };
            let set = store.ware_profiles(&id)?;
            return if set.profiles.is_empty() {
                Ok(Object::Missing)
            } else {
                bytes(set.encode())
            };
        }
        if let Some(rest) = key.strip_prefix("packs/") {
            let (name, index) = match (rest.strip_suffix(".idx"), rest.strip_suffix(".pack")) {
                (Some(n), _) => (n, true),
                (_, Some(n)) => (n, false),
                _ => return Ok(Object::Missing),
            };
            if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Ok(Object::Missing);
            }
            return Ok(match self.pack(store, name)? {
                Some(p) if index => Object::Bytes(p.index.clone()),
                Some(p) => Object::Pack(p),
                None => Object::Missing,
            });
        }
        if key == "catalog/head" {
            return bytes(self.catalog(store)?.encode());
        }
        if let Some(name) = key.strip_prefix("catalog/pages/") {
            // The pages of the head last served; else (the store changed since, or a head
            // served before a restart) of the catalog as it is now.
            if !self.lock().pages.contains_key(name) {
                self.catalog(store)?;
            }
            return Ok(match self.lock().pages.get(name) {
                Some(b) => Object::Bytes(b.clone()),
                None => Object::Missing,
            });
        }
        Ok(Object::Missing)
    }
}

/// Lays out a ware: its manifest (every node, root first, depth-first in name order) and
/// packs of its chunks in walk order, each chunk once, raw, closed at [`PACK_TARGET`].
fn lay_out(store: &Store, ware: &WareId) -> Result<Layout> {
    let (nodes, chunks) = ware_fetchers::transfer::collect(store, ware)?;
    let mut packs = Vec::new();
    let mut placed: Vec<Placed> = Vec::new();
    let mut at = 0u64;
    let close = |placed: &mut Vec<Placed>, at: &mut u64, packs: &mut Vec<(String, Arc<Pack>)>| {
        let entries = placed
            .iter()
            .map(|p| PackEntry {
                chunk: p.id,
                offset: p.offset,
                stored_len: p.stored as u32,
            })
            .collect();
        let (name, _, index) = encode_index(entries);
        packs.push((
            name,
            Arc::new(Pack {
                index: Bytes::from(index),
                chunks: std::mem::take(placed),
                len: *at,
            }),
        ));
        *at = 0;
    };
    for (id, len) in chunks {
        let stored = len + 1;
        if at > 0 && at + stored > PACK_TARGET as u64 {
            close(&mut placed, &mut at, &mut packs);
        }
        placed.push(Placed {
            id,
            offset: at,
            stored,
        });
        at += stored;
    }
    if !placed.is_empty() {
        close(&mut placed, &mut at, &mut packs);
    }
    let manifest = encode_manifest(&Manifest {
        ware: *ware,
        nodes,
        packs: packs.iter().map(|(n, _)| n.clone()).collect(),
    });
    tracing::debug!(%ware, packs = packs.len(), "serve: laid out as a warehouse");
    Ok(Layout {
        manifest: Bytes::from(manifest),
        packs,
    })
}

/// A catalog page's name and bytes.
type NamedPage = (String, Vec<u8>);

/// The store's catalog: its whole wares (first push = when packed), each name on the ware
/// it points at; the head and its pages' (name, bytes).
fn catalog(store: &Store) -> Result<(Head, Vec<NamedPage>)> {
    let mut named: HashMap<WareId, Vec<Named>> = HashMap::new();
    let wares = store.wares()?;
    let at: HashMap<WareId, u64> = wares.iter().map(|(id, r)| (*id, r.packed_at)).collect();
    for (name, id) in store.names()? {
        if let Some(t) = at.get(&id) {
            named.entry(id).or_default().push(Named { name, at: *t });
        }
    }
    let mut entries: Vec<Entry> = wares
        .into_iter()
        .map(|(id, r)| {
            let mut names = named.remove(&id).unwrap_or_default();
            names.sort_by(|a, b| a.name.cmp(&b.name));
            names.truncate(ware_store::catalog::NAMES_MAX);
            Entry {
                ware: id.0,
                bytes: r.logical_bytes,
                entries: r.files + r.dirs + r.symlinks + r.specials,
                at: r.packed_at,
                names,
            }
        })
        .collect();
    entries.sort_by_key(|e| e.ware);
    let mut head = Head::new();
    let mut pages = Vec::new();
    if entries.is_empty() {
        return Ok((head, pages));
    }
    for page in paginate(entries) {
        let (bytes, r) = page.encode_ref();
        pages.push((r.name.clone(), bytes));
        head.pages.push(r);
    }
    Ok((head, pages))
}

/// Writes bytes `start..end` of a pack: for each chunk they cover, its tag and the part of its
/// bytes in range, read (and verified) from the store.
pub(super) fn write_pack(
    store: &Store,
    pack: &Pack,
    start: u64,
    end: u64,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let first = pack
        .chunks
        .partition_point(|p| p.offset + p.stored <= start);
    for p in &pack.chunks[first..] {
        if p.offset >= end {
            break;
        }
        let a = start.max(p.offset) - p.offset;
        let b = end.min(p.offset + p.stored) - p.offset;
        if a == 0 {
            out.write_all(&[TAG_RAW])?;
        }
        if b > 1 {
            let data = store
                .chunk(&p.id)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let slice = data
                .get(a.max(1) as usize - 1..b as usize - 1)
                .ok_or_else(|| std::io::Error::other("a chunk shorter than its reference"))?;
            out.write_all(slice)?;
        }
    }
    Ok(())
}
