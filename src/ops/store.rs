//! The store operations: each request, and its implementation on a store opened in this
//! process.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use ware_fetchers::transfer::{PullReport, PushReport};
use ware_store::db::StoreStats;
use ware_store::fsck::FsckReport;
use ware_store::names::NameChange;
use ware_store::node::{Entry, Kind};
use ware_store::pack::{PackOptions, PackReport};
use ware_store::unpack::UnpackReport;
use ware_store::{Reader, WareId, WareRecord};

use super::{Cx, Op};
use crate::api::{LocalStore, RemoteOptions, WarePath};

/// Pack a directory, or the tar stream (plain, gzip or zstd) of the descriptor that comes with
/// the request, into a ware.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pack {
    /// An absolute directory; `None`: the tar stream of `Cx::fd`.
    pub dir: Option<PathBuf>,
    /// Filters.
    pub opts: PackOptions,
}

impl Op for Pack {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<PackReport> {
        Ok(match self.dir {
            Some(p) => ware_store::pack::pack_dir(s.db(), &p, &self.opts, cx.progress)?,
            None => {
                let mut input = std::fs::File::from(cx.take_fd("packing a tar stream")?);
                ware_store::pack::pack_tar(s.db(), &mut input, &self.opts, cx.progress)?
            }
        })
    }
}

/// Materialise a ware into a directory (absent or empty).
#[derive(Debug, Serialize, Deserialize)]
pub struct Unpack {
    /// The ware.
    pub ware: WareId,
    /// Absolute target directory.
    pub target: PathBuf,
}

impl Op for Unpack {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<UnpackReport> {
        Ok(ware_store::unpack::unpack(
            s.db(),
            &self.ware,
            &self.target,
            cx.progress,
        )?)
    }
}

/// The entry at a path.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stat {
    /// Where.
    pub at: WarePath,
    /// Warehouses for what the store lacks.
    #[serde(default)]
    pub remote: RemoteOptions,
}

impl Op for Stat {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Entry> {
        s.resolve(&self.at, &*s.source(&self.at.ware, &self.remote)?)
    }
}

/// The entries of the directory at a path (or the entry itself, for anything else).
#[derive(Debug, Serialize, Deserialize)]
pub struct List {
    /// Where.
    pub at: WarePath,
    /// Warehouses for what the store lacks.
    #[serde(default)]
    pub remote: RemoteOptions,
}

impl Op for List {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<Entry>> {
        let src = s.source(&self.at.ware, &self.remote)?;
        let e = s.resolve(&self.at, &*src)?;
        if e.kind != Kind::Dir {
            return Ok(vec![e]);
        }
        Ok(Reader::new(&*src).list(&e)?)
    }
}

/// Write the file at a path to the descriptor that comes with the request (such as stdout);
/// answers the bytes written.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cat {
    /// Which file.
    pub at: WarePath,
    /// Warehouses for what the store lacks.
    #[serde(default)]
    pub remote: RemoteOptions,
}

impl Op for Cat {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<u64> {
        let at = &self.at;
        let src = s.source(&at.ware, &self.remote)?;
        let e = s.resolve(at, &*src)?;
        match e.kind {
            Kind::File => {
                let file = std::fs::File::from(cx.take_fd("cat")?);
                let mut out = BufWriter::with_capacity(256 * 1024, file);
                let copied = Reader::new(&*src)
                    .copy_file(&e, &mut out)
                    .map_err(anyhow::Error::from)
                    .and_then(|n| Ok(out.flush().map(|()| n)?));
                match copied {
                    // The reader went away (`ware cat … | head`): nothing to report.
                    Err(e) if broken_pipe(&e) => Ok(0),
                    other => other,
                }
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
}

/// True when `e` is, somewhere in its chain, a write to a reader that went away.
pub fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The complete wares of the store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Wares {}

impl Op for Wares {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<(WareId, WareRecord)>> {
        Ok(s.db().wares()?)
    }
}

/// Re-hash every chunk and node of the store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Fsck {}

impl Op for Fsck {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<FsckReport> {
        Ok(ware_store::fsck::fsck(&s.shared(), cx.progress)?)
    }
}

/// Counts and sizes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stats {}

impl Op for Stats {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<StoreStats> {
        Ok(s.db().stats()?)
    }
}

/// Testing aid: flip a bit in the first chunk of the file at a path (or in a directory's node);
/// answers what was damaged.
#[derive(Debug, Serialize, Deserialize)]
pub struct Damage {
    /// Where.
    pub at: WarePath,
}

impl Op for Damage {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<String> {
        use ware_store::db::Damage as What;
        let at = &self.at;
        let e = s.resolve(at, s.db())?;
        let reader = Reader::new(s.db());
        let what = if e.kind == Kind::File && e.inline.is_none() && e.size > 0 {
            What::Chunk(reader.chunks(&e)?[0].id()?)
        } else if e.kind == Kind::Dir {
            What::Node(e.dir_id()?)
        } else {
            anyhow::bail!("{at}: only a chunked file or a directory can be damaged")
        };
        s.db().damage(what)?;
        Ok(match what {
            What::Chunk(c) => format!("chunk {c}"),
            What::Node(n) => format!("node {n}"),
            What::Block(b) => format!("block {b}"),
        })
    }
}

/// Point a name at a ware the store holds, or remove it (`id: None`); answers what it pointed
/// at before.
#[derive(Debug, Serialize, Deserialize)]
pub struct NameSet {
    /// The name.
    pub name: String,
    /// The ware; `None` removes the name.
    pub id: Option<WareId>,
}

impl Op for NameSet {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Option<WareId>> {
        if let Some(id) = &self.id {
            // Only a ware whose root this store holds can be named.
            Reader::new(s.db()).root(id)?;
        }
        Ok(s.db().set_name(&self.name, self.id.as_ref())?)
    }
}

/// What a name points at now.
#[derive(Debug, Serialize, Deserialize)]
pub struct NameGet {
    /// The name.
    pub name: String,
}

impl Op for NameGet {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Option<WareId>> {
        ware_store::names::check_name(&self.name)?;
        Ok(s.db().name(&self.name)?)
    }
}

/// Every name and what it points at.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Names {}

impl Op for Names {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<(String, WareId)>> {
        Ok(s.db().names()?)
    }
}

/// Every change of a name, oldest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct NameLog {
    /// The name.
    pub name: String,
}

impl Op for NameLog {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<NameChange>> {
        ware_store::names::check_name(&self.name)?;
        Ok(s.db().name_log(&self.name)?)
    }
}

/// Upload what a warehouse lacks of a ware.
#[derive(Debug, Serialize, Deserialize)]
pub struct Push {
    /// The ware.
    pub ware: WareId,
    /// The warehouse.
    pub url: String,
    /// Deadlines, and whether a directory warehouse is shared.
    pub remote: RemoteOptions,
    /// The names the warehouse's catalog records it under (`ware push NAME URL`, `--name`).
    #[serde(default)]
    pub names: Vec<String>,
}

impl Op for Push {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<PushReport> {
        let (ware, url) = (&self.ware, &self.url);
        for n in &self.names {
            ware_store::names::check_name(n)?;
        }
        let wh = ware_fetchers::open(url, &self.remote.fetch_options())
            .with_context(|| format!("warehouse {url}"))?;
        // The ware's profiles travel with it (docs/FORMAT.md, "Profiles in a warehouse").
        let profiles = s.db().ware_profiles(ware)?;
        let mut report = ware_fetchers::transfer::push(s.db(), ware, &*wh, &profiles, cx.progress)
            .with_context(|| format!("pushing {ware} to {url}"))?;
        // Then the catalog (docs/FORMAT.md, "Catalogs"): the ware is there by ID whatever
        // happens to it, so a failure is reported, not fatal.
        if wh.kind().has_objects() {
            match catalog_entry(s, ware, &self.names) {
                Ok(entry) => {
                    match ware_fetchers::catalog::record(&*wh, entry, ware_fetchers::catalog::now())
                    {
                        Ok(()) => report.cataloged = true,
                        Err(e) => report.catalog_error = Some(e.to_string()),
                    }
                }
                Err(e) => report.catalog_error = Some(format!("{e:#}")),
            }
        } else if wh.kind().has_pins() {
            // An IPFS node: the pin is the catalog, and what keeps the ware through the
            // node's garbage collection.
            match wh.pin(&ware.0) {
                Ok(()) => report.cataloged = true,
                Err(e) => report.catalog_error = Some(format!("pinning its root: {e}")),
            }
            if !self.names.is_empty() {
                report.notices.push(format!(
                    "an IPFS node keeps no names: {} not recorded (the ware is listed by ID)",
                    self.names.join(", ")
                ));
            }
        }
        Ok(report)
    }
}

/// The catalog's entry for a push of `ware` under `names`, now.
fn catalog_entry(
    s: &LocalStore,
    ware: &WareId,
    names: &[String],
) -> Result<ware_store::catalog::Entry> {
    let r = s
        .db()
        .ware(ware)?
        .with_context(|| format!("the store has no record of {ware}"))?;
    let at = ware_fetchers::catalog::now();
    let mut names: Vec<ware_store::catalog::Named> = names
        .iter()
        .map(|n| ware_store::catalog::Named {
            name: n.clone(),
            at,
        })
        .collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    names.dedup_by(|a, b| a.name == b.name);
    Ok(ware_store::catalog::Entry {
        ware: ware.0,
        bytes: r.logical_bytes,
        entries: r.files + r.dirs + r.symlinks + r.specials,
        at,
        names,
    })
}

/// Bring a whole ware from the first of the warehouses that has it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pull {
    /// The ware.
    pub ware: WareId,
    /// Warehouses and deadlines.
    pub remote: RemoteOptions,
}

impl Op for Pull {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<PullReport> {
        let ware = &self.ware;
        anyhow::ensure!(
            !self.remote.warehouses.is_empty(),
            "no warehouse to pull {ware} from: give one (`ware pull ID URL` or --warehouse URL)"
        );
        let mut failures = Vec::new();
        let mut damaged = false;
        for wh in self.remote.open()? {
            match ware_fetchers::transfer::pull(&*wh, ware, s.db(), cx.progress) {
                Ok(mut r) => {
                    // The ware's profiles come with it (a hint: a failure is logged).
                    r.profiles = match ware_fetchers::transfer::fetch_profiles(&*wh, ware) {
                        Ok(Some(set)) => crate::profile::keep_fetched(s.db(), &set),
                        Ok(None) => 0,
                        Err(e) => {
                            tracing::warn!("{e}; pulled {ware} without its profiles");
                            0
                        }
                    };
                    return Ok(r);
                }
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
}

/// Keep a run record (JSON) under the time its run started.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddRun {
    /// When the run started, in ms since the epoch.
    pub started_ms: u64,
    /// The record.
    pub record: serde_json::Value,
}

impl Op for AddRun {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<()> {
        let text = serde_json::to_string(&self.record)?;
        Ok(s.db().add_run(self.started_ms, text.as_bytes())?)
    }
}

/// Every run record, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Runs {}

impl Op for Runs {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<serde_json::Value>> {
        s.db()
            .runs()?
            .into_iter()
            .map(|(t, text)| {
                serde_json::from_slice(&text)
                    .with_context(|| format!("the run record of {t} ms is not JSON"))
            })
            .collect()
    }
}

/// Set a setting of the store (`STORE/config.toml`) to a value, checked; `None` removes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigSet {
    /// The key (`cache.chunk_bytes`).
    pub key: String,
    /// The value; `None`: back to the default.
    pub value: Option<String>,
}

impl Op for ConfigSet {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<()> {
        crate::config::Config::set(s.db().dir(), &self.key, self.value.as_deref())
    }
}

/// Every setting of the store, with its value, default and meaning.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ConfigList {}

impl Op for ConfigList {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<crate::config::Setting>> {
        Ok(crate::config::Config::load(s.db().dir())?.list())
    }
}
