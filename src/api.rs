//! The one interface every command uses to reach a store.
//!
//! Commands talk to a `dyn StoreApi`, never to the database: today [`LocalStore`] opens the
//! store in this process; the per-store daemon (mount issue) implements the same trait over a
//! unix socket, so switching to it rewrites no command. Everything that crosses this
//! interface is plain data (serialisable), or a byte stream.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ware_store::db::{Damage, Store, StoreStats};
use ware_store::fsck::FsckReport;
use ware_store::node::{Entry, Kind};
use ware_store::pack::{PackOptions, PackReport, Progress};
use ware_store::unpack::UnpackReport;
use ware_store::{Reader, WareId, WareRecord};

/// A ware and a path inside it (`ID` or `ID/some/path`).
#[derive(Clone, Debug)]
pub struct WarePath {
    /// The ware.
    pub ware: WareId,
    /// The path inside it, `/`-separated, as bytes; empty for the root.
    pub path: Vec<u8>,
}

impl WarePath {
    /// Parses `ID[/PATH]`.
    pub fn parse(s: &str) -> Result<WarePath> {
        let (id, path) = s.split_once('/').unwrap_or((s, ""));
        let ware: WareId = id
            .parse()
            .with_context(|| format!("{s:?}: expected a ware ID, optionally followed by /PATH"))?;
        Ok(WarePath {
            ware,
            path: path.as_bytes().to_vec(),
        })
    }
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
    /// A tar stream (plain, gzip or zstd).
    Tar(Box<dyn Read + Send>),
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
    fn stat(&self, at: &WarePath) -> Result<Entry>;
    /// The entries of the directory at a path.
    fn list(&self, at: &WarePath) -> Result<Vec<Entry>>;
    /// Writes the file at a path to `out`.
    fn cat(&self, at: &WarePath, out: &mut dyn Write) -> Result<u64>;
    /// Complete wares in the store.
    fn wares(&self) -> Result<Vec<(WareId, WareRecord)>>;
    /// Verifies the whole store.
    fn fsck(&self, progress: &dyn Progress) -> Result<FsckReport>;
    /// Counts and sizes.
    fn stats(&self) -> Result<StoreStats>;
    /// Flips a bit in the first chunk of the file at a path (or in the node of a directory):
    /// a testing aid. Returns what was damaged.
    fn damage(&self, at: &WarePath) -> Result<String>;
}

/// A store opened in this process.
pub struct LocalStore {
    store: Store,
}

impl LocalStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<LocalStore> {
        Ok(LocalStore {
            store: Store::open(dir)?,
        })
    }

    fn resolve(&self, at: &WarePath) -> Result<Entry> {
        Ok(Reader::new(&self.store).resolve(&at.ware, &at.path)?)
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
            PackSource::Dir(p) => ware_store::pack::pack_dir(&self.store, &p, opts, progress)?,
            PackSource::Tar(mut r) => {
                ware_store::pack::pack_tar(&self.store, &mut *r, opts, progress)?
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
            &self.store,
            ware,
            target,
            progress,
        )?)
    }

    fn stat(&self, at: &WarePath) -> Result<Entry> {
        self.resolve(at)
    }

    fn list(&self, at: &WarePath) -> Result<Vec<Entry>> {
        let e = self.resolve(at)?;
        if e.kind != Kind::Dir {
            return Ok(vec![e]);
        }
        Ok(Reader::new(&self.store).list(&e)?)
    }

    fn cat(&self, at: &WarePath, out: &mut dyn Write) -> Result<u64> {
        let e = self.resolve(at)?;
        match e.kind {
            Kind::File => Ok(Reader::new(&self.store).copy_file(&e, out)?),
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
        let e = self.resolve(at)?;
        let reader = Reader::new(&self.store);
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
        })
    }
}
