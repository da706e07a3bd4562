//! What the top of a mount of many wares lists (`ware mount --all`, `ware mount URL`): the
//! store's wares and names, and those of warehouses' catalogs (docs/FORMAT.md, "Catalogs"),
//! read again once they are older than the mount's TTL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ware_fetchers::Warehouse;
use ware_fs::Catalog;
use ware_store::WareId;
use ware_store::db::Store;

use super::lock;

/// The whole store as a catalog for `ware mount --all`.
pub(super) struct StoreCatalog(pub(super) Arc<Store>);

impl Catalog for StoreCatalog {
    fn wares(&self) -> Vec<WareId> {
        match self.0.wares() {
            Ok(w) => w.into_iter().map(|(id, _)| id).collect(),
            Err(e) => {
                tracing::error!("listing wares: {e}");
                Vec::new()
            }
        }
    }
    fn names(&self) -> Vec<(String, WareId)> {
        self.0.names().unwrap_or_else(|e| {
            tracing::error!("listing names: {e}");
            Vec::new()
        })
    }
    fn name(&self, name: &str) -> Option<WareId> {
        self.0.name(name).ok().flatten()
    }
}

/// What the warehouses' catalogs listed, and when.
struct Seen {
    at: Instant,
    wares: BTreeSet<WareId>,
    names: BTreeMap<String, WareId>,
    /// The wares of the warehouses' catalogs, each with its first push (seconds since the
    /// epoch, the earliest any catalog says).
    pushed: BTreeMap<WareId, u64>,
}

/// Warehouses' catalogs (and, for `--all`, the store's own wares and names first): the
/// wares of every catalog, and each name as the first warehouse that has it says. A catalog
/// that cannot be read keeps what it listed before (logged); one never read lists nothing.
pub(super) struct WarehouseCatalog {
    /// The store the mount reads through: a ware it holds whole is shown as it is.
    local: Arc<Store>,
    /// When the mount started: the time shown for a ware whose first push is unknown (an
    /// IPFS node's pins).
    started: SystemTime,
    store: Option<StoreCatalog>,
    warehouses: Vec<Arc<dyn Warehouse>>,
    ttl: Duration,
    seen: Mutex<Option<Seen>>,
    /// Per warehouse, what it listed last (kept when a read fails).
    last: Mutex<Vec<Option<ware_fetchers::catalog::Listing>>>,
}

impl WarehouseCatalog {
    /// The catalogs of `warehouses` (those that keep one), read again after `ttl`; with
    /// `own`, the wares and names of `local` (the store the mount reads through) too.
    pub(super) fn new(
        local: Arc<Store>,
        own: bool,
        warehouses: Vec<Arc<dyn Warehouse>>,
        ttl: Duration,
    ) -> WarehouseCatalog {
        let warehouses: Vec<_> = warehouses
            .into_iter()
            .filter(|w| w.kind().can_catalog())
            .collect();
        let last = Mutex::new(vec![None; warehouses.len()]);
        WarehouseCatalog {
            store: own.then(|| StoreCatalog(local.clone())),
            local,
            started: SystemTime::now(),
            warehouses,
            ttl,
            seen: Mutex::new(None),
            last,
        }
    }

    /// Reads what it must and calls `f` with the current wares and names.
    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        let mut seen = lock(&self.seen);
        if seen.as_ref().is_none_or(|s| s.at.elapsed() >= self.ttl) {
            *seen = Some(self.read());
        }
        f(seen.as_ref().expect("just read"))
    }

    fn read(&self) -> Seen {
        let mut last = lock(&self.last);
        for (wh, kept) in self.warehouses.iter().zip(last.iter_mut()) {
            match ware_fetchers::catalog::read(&**wh) {
                Ok(l) => {
                    if !l.found && kept.is_none() {
                        tracing::info!("{}: no catalog; its wares show by typed ID", wh.url());
                    }
                    *kept = Some(l);
                }
                Err(e) => tracing::warn!("{}: reading its catalog: {e}", wh.url()),
            }
        }
        let mut wares = BTreeSet::new();
        let mut names = BTreeMap::new();
        let mut pushed = BTreeMap::new();
        if let Some(s) = &self.store {
            wares.extend(s.wares());
            names.extend(s.names());
        }
        for l in last.iter().flatten() {
            wares.extend(l.wares.iter().map(|e| e.id()));
            for e in &l.wares {
                let at = pushed.entry(e.id()).or_insert(e.at);
                *at = (*at).min(e.at);
            }
            for (n, (id, _)) in &l.names {
                names.entry(n.clone()).or_insert(*id);
            }
        }
        Seen {
            at: Instant::now(),
            wares,
            names,
            pushed,
        }
    }
}

impl Catalog for WarehouseCatalog {
    fn wares(&self) -> Vec<WareId> {
        self.with(|s| s.wares.iter().copied().collect())
    }
    fn names(&self) -> Vec<(String, WareId)> {
        self.with(|s| s.names.iter().map(|(n, id)| (n.clone(), *id)).collect())
    }
    fn name(&self, name: &str) -> Option<WareId> {
        if let Some(id) = self.store.as_ref().and_then(|s| s.name(name)) {
            return Some(id);
        }
        self.with(|s| s.names.get(name).copied())
    }
    fn unfetched(&self, id: &WareId) -> Option<SystemTime> {
        // Only a catalog's ware the store lacks whole: one the store holds only in part
        // fetches its manifest when its root is read (to find its missing chunks).
        let at = self.with(|s| s.pushed.get(id).copied())?;
        if self.local.ware(id).ok().flatten().is_some() {
            return None;
        }
        Some(match at {
            0 => self.started,
            at => UNIX_EPOCH + Duration::from_secs(at),
        })
    }
}
