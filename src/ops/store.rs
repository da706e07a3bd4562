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
}

impl Op for Push {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<PushReport> {
        let (ware, url) = (&self.ware, &self.url);
        let wh = ware_fetchers::open(url, &self.remote.fetch_options())
            .with_context(|| format!("warehouse {url}"))?;
        ware_fetchers::transfer::push(s.db(), ware, &*wh, cx.progress)
            .with_context(|| format!("pushing {ware} to {url}"))
    }
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

/// A stored access profile, as `ware profile ls` and `show` tell it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileInfo {
    /// `ware:<id>` or `run:<formula id>:<path>`.
    pub key: String,
    /// The CID of the profile's bytes.
    pub id: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// The ware it is of (`None` when it cannot be read).
    pub ware: Option<String>,
    /// How many recordings went into it.
    pub runs: u64,
    /// Nodes it lists.
    pub nodes: usize,
    /// Chunks it lists.
    pub chunks: usize,
    /// Why it cannot be read, if it cannot.
    pub error: Option<String>,
    /// With `show`: every block in first-read order, with the recordings that missed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<(String, u8)>>,
}

impl ProfileInfo {
    fn of(s: ware_store::profiles::StoredProfile, with_blocks: bool) -> ProfileInfo {
        use ware_store::profile::{BlockKind, block_kind};
        let (ware, runs, nodes, chunks, error, blocks) = match &s.profile {
            Ok(p) => {
                let n = |k| {
                    p.blocks
                        .iter()
                        .filter(|b| block_kind(&b.0) == Some(k))
                        .count()
                };
                (
                    Some(p.ware.to_string()),
                    p.runs,
                    n(BlockKind::Node),
                    n(BlockKind::Chunk),
                    None,
                    with_blocks.then(|| p.blocks.iter().map(|b| (b.0.to_string(), b.1)).collect()),
                )
            }
            Err(e) => (None, 0, 0, 0, Some(e.clone()), None),
        };
        ProfileInfo {
            key: s.key,
            id: s.id.to_string(),
            bytes: s.bytes,
            ware,
            runs,
            nodes,
            chunks,
            error,
            blocks,
        }
    }
}

/// Every access profile the store holds, in key order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfileList {}

impl Op for ProfileList {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<ProfileInfo>> {
        Ok(s.db()
            .profiles()?
            .into_iter()
            .map(|p| ProfileInfo::of(p, false))
            .collect())
    }
}

/// One access profile with its blocks, by key (`ware:<id>`, `run:<formula>:<path>`) or by
/// the CID of its bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileShow {
    /// A key or a profile's CID.
    pub which: String,
}

impl Op for ProfileShow {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<ProfileInfo> {
        let found = if self.which.starts_with("ware:") || self.which.starts_with("run:") {
            s.db().profile(&self.which)?
        } else {
            let id: ware_store::NodeId = self.which.parse()?;
            s.db().profiles()?.into_iter().find(|p| p.id == id)
        };
        let p = found.ok_or_else(|| ware_store::Error::NotFound {
            what: "profile",
            id: self.which.clone(),
        })?;
        Ok(ProfileInfo::of(p, true))
    }
}

/// Forget an access profile (the next mount or run goes without it and learns it again).
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileRemove {
    /// `ware:<id>` or `run:<formula id>:<path>`.
    pub key: String,
}

impl Op for ProfileRemove {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<()> {
        if !s.db().remove_profile(&self.key)? {
            return Err(ware_store::Error::NotFound {
                what: "profile",
                id: self.key,
            }
            .into());
        }
        Ok(())
    }
}
