//! What the store operations work on and with: [`LocalStore`] (a store opened in this process:
//! a command's own, or the daemon's), [`WarePath`] (`ID[/PATH]`) and [`RemoteOptions`] (the
//! warehouses for what a store lacks). The operations themselves are in `crate::ops`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ware_fetchers::read_through::ReadThrough;
use ware_fetchers::{FetchOptions, Warehouse};
use ware_store::db::Store;
use ware_store::node::Entry;
use ware_store::{BlockSource, Reader, WareId};

/// A ware and a path inside it (`ID` or `ID/some/path`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WarePath {
    /// The ware.
    pub ware: WareId,
    /// The path inside it, `/`-separated, as bytes; empty for the root.
    pub path: Vec<u8>,
}

/// A usage error (exit 2) with its message.
pub fn usage_error(message: String) -> anyhow::Error {
    crate::exit::Failure { code: 2, message }.into()
}

impl std::fmt::Display for WarePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.ware)
        } else {
            write!(f, "{}/{}", self.ware, String::from_utf8_lossy(&self.path))
        }
    }
}

/// Where to fetch what a store lacks, and how long one fetch may take.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoteOptions {
    /// Warehouse URLs, tried in order.
    pub warehouses: Vec<String>,
    /// One read's deadline across every retry and warehouse, in milliseconds.
    pub read_deadline_ms: u64,
    /// A directory warehouse that a push creates is readable by every user (0755/0644, for a
    /// web server to serve) rather than private (0700/0600).
    #[serde(default)]
    pub shared: bool,
}

impl RemoteOptions {
    /// One read's deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.read_deadline_ms.max(1))
    }

    /// The source a lazy read uses: `store` first, these warehouses second, every piece
    /// verified and cached.
    pub fn read_through(&self, store: Arc<Store>) -> Result<ReadThrough> {
        Ok(ReadThrough::new(store, self.open()?, self.deadline()))
    }

    /// The fetch options these stand for.
    pub fn fetch_options(&self) -> FetchOptions {
        let deadline = self.deadline();
        FetchOptions {
            deadline,
            request_timeout: FetchOptions::default().request_timeout.min(deadline),
            shared: self.shared,
            ..FetchOptions::default()
        }
    }

    /// Opens the warehouses, naming the URL at fault. Each gets an equal share of the read
    /// deadline, so a dead first warehouse still leaves time to fail over to the next.
    pub fn open(&self) -> Result<Vec<Arc<dyn Warehouse>>> {
        let mut opts = self.fetch_options();
        let n = self.warehouses.len().max(1) as u32;
        opts.deadline /= n;
        opts.request_timeout = opts.request_timeout.min(opts.deadline);
        self.warehouses
            .iter()
            .map(|u| ware_fetchers::open(u, &opts).with_context(|| format!("warehouse {u}")))
            .collect()
    }
}

/// A store opened in this process (by a command, or by the daemon that serves it).
pub struct LocalStore {
    store: Arc<Store>,
}

impl LocalStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<LocalStore> {
        Ok(LocalStore {
            store: Arc::new(Store::open(dir)?),
        })
    }

    /// Opens the store in `dir` only if there is one (`no store at DIR`, exit 3, otherwise);
    /// nothing is created.
    pub fn open_existing(dir: &Path) -> Result<LocalStore> {
        Ok(LocalStore {
            store: Arc::new(Store::open_existing(dir)?),
        })
    }

    /// The database, shared with the daemon's mounts.
    pub fn shared(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// What to read a ware through: the store, or — when warehouses are given and the store
    /// does not hold the ware whole — the store first and the warehouses second, every piece
    /// verified and cached as a lazy mount does.
    pub(crate) fn source(
        &self,
        ware: &WareId,
        remote: &RemoteOptions,
    ) -> Result<Arc<dyn BlockSource>> {
        if remote.warehouses.is_empty() || self.store.ware(ware)?.is_some() {
            return Ok(self.store.clone());
        }
        let rt = remote.read_through(self.store.clone())?;
        rt.prepare(ware)?;
        Ok(Arc::new(rt))
    }

    pub(crate) fn resolve(&self, at: &WarePath, src: &dyn BlockSource) -> Result<Entry> {
        Ok(Reader::new(src).resolve(&at.ware, &at.path)?)
    }

    /// The database.
    pub(crate) fn db(&self) -> &Store {
        &self.store
    }
}
