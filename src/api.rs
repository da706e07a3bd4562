//! The one interface every command uses to reach a store.
//!
//! Commands talk to a `dyn StoreApi`, never to the database: today [`LocalStore`] opens the
//! store in this process; the per-store daemon (mount issue) implements the same trait over a
//! unix socket, so switching to it rewrites no command. Everything that crosses this
//! interface is plain data (serialisable), or a byte stream.

use std::io::{BufWriter, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ware_fetchers::read_through::ReadThrough;
use ware_fetchers::transfer::{PullReport, PushReport};
use ware_fetchers::{FetchOptions, Warehouse};
use ware_store::db::{Damage, Store, StoreStats};
use ware_store::fsck::FsckReport;
use ware_store::names::NameChange;
use ware_store::node::{Entry, Kind};
use ware_store::pack::{PackOptions, PackReport, Progress};
use ware_store::unpack::UnpackReport;
use ware_store::{BlockSource, Reader, WareId, WareRecord};

/// A ware and a path inside it (`ID` or `ID/some/path`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WarePath {
    /// The ware.
    pub ware: WareId,
    /// The path inside it, `/`-separated, as bytes; empty for the root.
    pub path: Vec<u8>,
}

impl WarePath {
    /// Parses `ID[/PATH]` or `NAME[/PATH]`, asking the store what a name points at. The path
    /// is taken as bytes (an OS string): names in a ware need not be UTF-8.
    pub fn parse(s: &std::ffi::OsStr, store: &dyn StoreApi) -> Result<WarePath> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = s.as_bytes();
        let (head, path) = match bytes.iter().position(|&b| b == b'/') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (bytes, &b""[..]),
        };
        let shown = crate::output::safe_short(bytes, 120);
        let head = std::str::from_utf8(head)
            .map_err(|_| usage_error(format!("{shown}: a ware ID or name is ASCII")))?;
        Ok(WarePath {
            ware: resolve_ware(head, store).with_context(|| {
                format!("{shown}: expected a ware ID or name, optionally followed by /PATH")
            })?,
            path: path.to_vec(),
        })
    }
}

/// A usage error (exit 2) with its message.
pub fn usage_error(message: String) -> anyhow::Error {
    crate::exit::Failure { code: 2, message }.into()
}

/// A ware ID, or the ID a name points at now.
pub fn resolve_ware(id_or_name: &str, store: &dyn StoreApi) -> Result<WareId> {
    if let Ok(id) = id_or_name.parse::<WareId>() {
        return Ok(id);
    }
    if ware_store::names::check_name(id_or_name).is_err() {
        // Neither an ID nor a possible name: say why it is not an ID.
        return Ok(id_or_name.parse::<WareId>()?);
    }
    store.name_get(id_or_name)?.ok_or_else(|| {
        ware_store::Error::NotFound {
            what: "name",
            id: crate::output::safe_short(id_or_name.as_bytes(), 120),
        }
        .into()
    })
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

/// What to pack.
pub enum PackSource {
    /// A directory tree.
    Dir(PathBuf),
    /// A tar stream (plain, gzip or zstd): an open file or pipe, such as stdin.
    Fd(OwnedFd),
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

/// Every operation a command may ask of a store.
pub trait StoreApi {
    /// Packs a directory or tar stream into a ware.
    fn pack(
        &self,
        source: PackSource,
        opts: &PackOptions,
        progress: &dyn Progress,
    ) -> Result<PackReport>;
    /// Materialises a ware into a directory.
    fn unpack(&self, ware: &WareId, target: &Path, progress: &dyn Progress)
    -> Result<UnpackReport>;
    /// The entry at a path.
    fn stat(&self, at: &WarePath, remote: &RemoteOptions) -> Result<Entry>;
    /// The entries of the directory at a path.
    fn list(&self, at: &WarePath, remote: &RemoteOptions) -> Result<Vec<Entry>>;
    /// Writes the file at a path to the open file or pipe `out` (such as stdout).
    fn cat(&self, at: &WarePath, out: BorrowedFd<'_>, remote: &RemoteOptions) -> Result<u64>;
    /// Complete wares in the store.
    fn wares(&self) -> Result<Vec<(WareId, WareRecord)>>;
    /// Verifies the whole store.
    fn fsck(&self, progress: &dyn Progress) -> Result<FsckReport>;
    /// Counts and sizes.
    fn stats(&self) -> Result<StoreStats>;
    /// Flips a bit in the first chunk of the file at a path (or in the node of a directory):
    /// a testing aid. Returns what was damaged.
    fn damage(&self, at: &WarePath) -> Result<String>;
    /// Points a name at a ware (which must be in the store), or removes it (`None`); returns
    /// what it pointed at before.
    fn name_set(&self, name: &str, id: Option<&WareId>) -> Result<Option<WareId>>;
    /// What a name points at now.
    fn name_get(&self, name: &str) -> Result<Option<WareId>>;
    /// Every name and what it points at.
    fn names(&self) -> Result<Vec<(String, WareId)>>;
    /// Every change of a name, oldest first.
    fn name_log(&self, name: &str) -> Result<Vec<NameChange>>;
    /// Uploads what a warehouse lacks of a ware.
    fn push(
        &self,
        ware: &WareId,
        url: &str,
        remote: &RemoteOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport>;
    /// Brings a whole ware from the first of the warehouses that has it.
    fn pull(
        &self,
        ware: &WareId,
        remote: &RemoteOptions,
        progress: &dyn Progress,
    ) -> Result<PullReport>;
    /// Keeps a run record (JSON) under the time its run started.
    fn add_run(&self, started_ms: u64, record: &serde_json::Value) -> Result<()>;
    /// Every run record, oldest first.
    fn runs(&self) -> Result<Vec<serde_json::Value>>;
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
    fn source(&self, ware: &WareId, remote: &RemoteOptions) -> Result<Arc<dyn BlockSource>> {
        if remote.warehouses.is_empty() || self.store.ware(ware)?.is_some() {
            return Ok(self.store.clone());
        }
        let rt = remote.read_through(self.store.clone())?;
        rt.prepare(ware)?;
        Ok(Arc::new(rt))
    }

    fn resolve(&self, at: &WarePath, src: &dyn BlockSource) -> Result<Entry> {
        Ok(Reader::new(src).resolve(&at.ware, &at.path)?)
    }
}

impl StoreApi for LocalStore {
    fn pack(
        &self,
        source: PackSource,
        opts: &PackOptions,
        progress: &dyn Progress,
    ) -> Result<PackReport> {
        Ok(match source {
            PackSource::Dir(p) => ware_store::pack::pack_dir(&*self.store, &p, opts, progress)?,
            PackSource::Fd(fd) => {
                let mut input = std::fs::File::from(fd);
                ware_store::pack::pack_tar(&*self.store, &mut input, opts, progress)?
            }
        })
    }

    fn unpack(
        &self,
        ware: &WareId,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<UnpackReport> {
        Ok(ware_store::unpack::unpack(
            &*self.store,
            ware,
            target,
            progress,
        )?)
    }

    fn stat(&self, at: &WarePath, remote: &RemoteOptions) -> Result<Entry> {
        self.resolve(at, &*self.source(&at.ware, remote)?)
    }

    fn list(&self, at: &WarePath, remote: &RemoteOptions) -> Result<Vec<Entry>> {
        let src = self.source(&at.ware, remote)?;
        let e = self.resolve(at, &*src)?;
        if e.kind != Kind::Dir {
            return Ok(vec![e]);
        }
        Ok(Reader::new(&*src).list(&e)?)
    }

    fn cat(&self, at: &WarePath, out: BorrowedFd<'_>, remote: &RemoteOptions) -> Result<u64> {
        let src = self.source(&at.ware, remote)?;
        let e = self.resolve(at, &*src)?;
        match e.kind {
            Kind::File => {
                let file = std::fs::File::from(out.try_clone_to_owned()?);
                let mut out = BufWriter::with_capacity(256 * 1024, file);
                let n = Reader::new(&*src).copy_file(&e, &mut out)?;
                out.flush()?;
                Ok(n)
            }
            Kind::Dir => anyhow::bail!("{at}: is a directory"),
            Kind::Symlink => anyhow::bail!(
                "{at}: is a symlink to {:?}; cat does not follow symlinks",
                String::from_utf8_lossy(
                    e.target
                        .as_deref()
                        .map(|t| t.as_slice())
                        .unwrap_or_default()
                )
            ),
            other => anyhow::bail!("{at}: is a {}, not a regular file", other.name()),
        }
    }

    fn wares(&self) -> Result<Vec<(WareId, WareRecord)>> {
        Ok(self.store.wares()?)
    }

    fn fsck(&self, progress: &dyn Progress) -> Result<FsckReport> {
        Ok(ware_store::fsck::fsck(&self.store, progress)?)
    }

    fn stats(&self) -> Result<StoreStats> {
        Ok(self.store.stats()?)
    }

    fn damage(&self, at: &WarePath) -> Result<String> {
        let e = self.resolve(at, &*self.store)?;
        let reader = Reader::new(&*self.store);
        let what = if e.kind == Kind::File && e.inline.is_none() && e.size > 0 {
            Damage::Chunk(reader.chunks(&e)?[0].id()?)
        } else if e.kind == Kind::Dir {
            Damage::Node(e.dir_id()?)
        } else {
            anyhow::bail!("{at}: only a chunked file or a directory can be damaged")
        };
        self.store.damage(what)?;
        Ok(match what {
            Damage::Chunk(c) => format!("chunk {c}"),
            Damage::Node(n) => format!("node {n}"),
            Damage::Block(b) => format!("block {b}"),
        })
    }

    fn name_set(&self, name: &str, id: Option<&WareId>) -> Result<Option<WareId>> {
        if let Some(id) = id {
            // Only a ware whose root this store holds can be named.
            Reader::new(&*self.store).root(id)?;
        }
        Ok(self.store.set_name(name, id)?)
    }

    fn name_get(&self, name: &str) -> Result<Option<WareId>> {
        ware_store::names::check_name(name)?;
        Ok(self.store.name(name)?)
    }

    fn names(&self) -> Result<Vec<(String, WareId)>> {
        Ok(self.store.names()?)
    }

    fn name_log(&self, name: &str) -> Result<Vec<NameChange>> {
        ware_store::names::check_name(name)?;
        Ok(self.store.name_log(name)?)
    }

    fn push(
        &self,
        ware: &WareId,
        url: &str,
        remote: &RemoteOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        let wh = ware_fetchers::open(url, &remote.fetch_options())
            .with_context(|| format!("warehouse {url}"))?;
        ware_fetchers::transfer::push(&*self.store, ware, &*wh, progress)
            .with_context(|| format!("pushing {ware} to {url}"))
    }

    fn pull(
        &self,
        ware: &WareId,
        remote: &RemoteOptions,
        progress: &dyn Progress,
    ) -> Result<PullReport> {
        anyhow::ensure!(
            !remote.warehouses.is_empty(),
            "no warehouse to pull {ware} from: give one (`ware pull ID URL` or --warehouse URL)"
        );
        let mut failures = Vec::new();
        let mut damaged = false;
        for wh in remote.open()? {
            match ware_fetchers::transfer::pull(&*wh, ware, &*self.store, progress) {
                Ok(r) => return Ok(r),
                Err(e) if e.is_not_found() => failures.push(format!("{}: not there", wh.url())),
                Err(e) => {
                    damaged |= e.is_corruption();
                    failures.push(format!("{}: {e}", wh.url()));
                }
            }
        }
        if failures.iter().all(|f| f.ends_with(": not there")) {
            return Err(ware_store::Error::NotFound {
                what: "ware in any warehouse",
                id: format!("{ware} ({})", failures.join("; ")),
            }
            .into());
        }
        let message = format!("cannot pull {ware}: {}", failures.join("; "));
        if damaged {
            // A warehouse that has the ware's manifest but not all it names is damaged: exit 4.
            return Err(crate::exit::Failure { code: 4, message }.into());
        }
        anyhow::bail!(message)
    }

    fn add_run(&self, started_ms: u64, record: &serde_json::Value) -> Result<()> {
        Ok(self
            .store
            .add_run(started_ms, serde_json::to_string(record)?.as_bytes())?)
    }

    fn runs(&self) -> Result<Vec<serde_json::Value>> {
        self.store
            .runs()?
            .into_iter()
            .map(|(t, text)| {
                serde_json::from_slice(&text)
                    .with_context(|| format!("the run record of {t} ms is not JSON"))
            })
            .collect()
    }
}
