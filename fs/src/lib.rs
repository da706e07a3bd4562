//! ware-fs: the read-only FUSE filesystem of warefs.
//!
//! It shows one ware ([`MountRoot::Ware`]) or a whole store ([`MountRoot::All`]: every ware
//! as `MNT/<id>/`, names as symlinks `MNT/names/<name>` → `../<id>`) as a lazy, read-only FUSE
//! mount over any [`ware_store::BlockSource`]. It is the only crate that uses `fuser` and maps
//! errors to errno values. It never knows about the network: the caller hands it a source (for
//! the daemon, a read-through source that asks the local store first, the warehouses second).
//!
//! The code is split the way puzzlefs splits it: the `fuser::Filesystem` methods
//! (`src/fuse.rs`) are one-line adapters into a private core (`src/core/`) whose methods
//! return `Result<_, Fault>`, and one function turns a `Fault` into an errno. The tree logic
//! is therefore unit-tested over a [`ware_store::MemStore`] without a kernel. `src/mount.rs`
//! mounts, unmounts and reads /proc/self/mountinfo.
//!
//! Invariants:
//! - Read-only: every mutating request answers `EROFS`, and mounts are `ro,nosuid,nodev`
//!   unless [`MountConfig`] says otherwise; `default_permissions` is always on, so the kernel
//!   checks modes and owners, and `allow_other` never exposes a ware's 0600 files.
//! - Lazy: mounting reads the root node and nothing else; a lookup reads the directory nodes on
//!   its way, a read the chunks it covers (through a bounded LRU cache of decompressed
//!   chunks), and hardlink counts cost one metadata-only walk of a ware, the first time a
//!   hardlinked entry is asked for.
//! - Never wrong bytes: the [`ware_store::BlockSource`] hands out verified bytes only; a
//!   missing or corrupt chunk or node gives `EIO` for that request (logged with
//!   `tracing::error!`, naming the ID, the ware and the path), and other files keep working.
//! - Timeouts follow mutability: a ware's entries and attributes are cached by the kernel for
//!   a year (`keep_cache` on open, cached directory listings), while the top of an `--all`
//!   mount and `names/` use 1 s, since names and the list of wares change while mounted.
//! - Inode numbers are stable for the life of a mount: an entry keeps the number it was first
//!   given (hardlinked names share one), and numbers are never reused.
//! - No panic on a request path: handlers return errors, and the adapters also catch an
//!   unexpected panic and answer `EIO`, so one bad request never takes a serving thread down.
//!
//! What it reports, where a ware has nothing to say: `atime` and `ctime` are the `mtime`;
//! `st_blocks` is the size in 4 KiB blocks; directories have size 4096 and `nlink` 1 (the
//! "not counted" value btrfs also uses; `find` then does not rely on it). The inode table
//! counts the kernel's lookups and drops an inode the kernel forgets (numbers are never reused:
//! a later lookup makes a new one), so a long-lived mount holds about what the kernel holds.
//! Reads ahead of the program are the kernel's readahead (raised to
//! [`MountConfig::read_ahead_kb`]) and the source's prefetch: a sequential reader's next 4 MiB
//! (from the start of a file when it is opened) are handed to the source as hints.
//!
//! FUSE passthrough (`BackingId`) is not used: it hands the kernel a real file to read from,
//! and a ware's contents are chunks in a store, not files; it would mean writing every opened
//! file out to a cache directory first, which is what a lazy mount exists to avoid.
#![deny(missing_docs)]
// The store's error type is large and travels by value, as the store's own API does.
#![allow(clippy::result_large_err)]

mod cache;
mod core;
mod fuse;
mod fusermount;
mod mount;
#[cfg(test)]
mod tests;
mod warm;

use std::path::PathBuf;
use std::sync::Arc;

pub use cache::Caches;
pub use mount::{Mount, detach_unmount, is_dead, mount, ware_mounts};
use ware_store::WareId;
pub use warm::{Warmed, Warming, warm};

/// The wares and names of a store, for a whole-store mount ([`MountRoot::All`]).
pub trait Catalog: Send + Sync {
    /// The wares listed at the top of the mount (any other ID still appears on lookup).
    fn wares(&self) -> Vec<WareId>;
    /// Every name and the ware it points to, listed in `MNT/names/`.
    fn names(&self) -> Vec<(String, WareId)>;
    /// The ware a name points to now.
    fn name(&self, name: &str) -> Option<WareId>;
    /// For a ware it lists that the store does not hold whole (it lives in a warehouse): the
    /// time to show for it (its first push). The top of the mount then shows it as a bare directory
    /// (`r-xr-xr-x`, that time) until a program looks inside, so listing and `stat` of the
    /// top fetch nothing. `None` (the default): its root is at hand and shown as it is.
    fn unfetched(&self, _id: &WareId) -> Option<std::time::SystemTime> {
        None
    }
}

/// Told of every directory node and chunk a mount reads for a ware, in the order the reads
/// come, whether the mount's caches serve it or the source does (how access profiles are
/// learned). Reads of foreign trees and metadata walks (hardlink counts) are not told.
pub trait ReadLog: Send + Sync + std::fmt::Debug {
    /// `block` (a directory node's or a chunk's CID) was read for the ware `ware`.
    fn read(&self, ware: &ware_store::Cid, block: &ware_store::Cid);
}

/// What the root of a mount shows.
#[derive(Clone)]
pub enum MountRoot {
    /// One ware: the mount's root is the ware's root directory.
    Ware(WareId),
    /// The whole store: `MNT/<id>/` for every ware, `MNT/names/<name>` → `../<id>`; when the
    /// source shows foreign trees ([`ware_store::BlockSource::foreign`]), also `MNT/<cid>/`
    /// for any such tree's CID, on lookup.
    All(Arc<dyn Catalog>),
    /// A foreign tree (an IPFS UnixFS directory), read through the source's
    /// [`ware_store::ForeignTree`].
    Foreign(ware_store::Cid),
}

impl std::fmt::Debug for MountRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountRoot::Ware(id) => f.debug_tuple("Ware").field(id).finish(),
            MountRoot::All(_) => f.write_str("All"),
            MountRoot::Foreign(cid) => f.debug_tuple("Foreign").field(cid).finish(),
        }
    }
}

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// Let other users (and other user namespaces) in. Always comes with
    /// `default_permissions`, so modes and owners are enforced by the kernel.
    pub allow_other: bool,
    /// Threads serving requests (at least 1), so one slow read never stalls the others.
    pub threads: usize,
    /// The in-memory caches (decompressed chunks, decoded directories; least recently used
    /// evicted first). Share one between mounts to bound them together.
    pub caches: Arc<Caches>,
    /// Source name shown in /proc/self/mountinfo and `mount`.
    pub fsname: String,
    /// Honour setuid/setgid bits (off by default: `nosuid`).
    pub suid: bool,
    /// Honour device nodes (off by default: `nodev`).
    pub dev: bool,
    /// Largest read request, in bytes (`max_read`).
    pub max_read: u32,
    /// Kernel readahead for the mount, in KiB (`/sys/class/bdi/<dev>/read_ahead_kb`); 0 leaves
    /// the kernel's default.
    pub read_ahead_kb: u32,
    /// How long to wait for the mount to appear in /proc/self/mountinfo.
    pub mount_timeout: std::time::Duration,
    /// Show every entry as owned by this uid and gid. For mounts made without root: the
    /// kernel would never let that user act as the recorded owners anyway, and in a job's
    /// user namespace (where the user is root) the tree then behaves as it does for root —
    /// as rootless container tools present their images.
    pub owner: Option<(u32, u32)>,
    /// Told of each read (see [`ReadLog`]); none by default.
    pub reads: Option<Arc<dyn ReadLog>>,
    /// The first time a file of a directory is opened, tell the source
    /// ([`ware_store::BlockSource::prefetch`]) of the small files beside it, up to this many
    /// bytes: reading ahead for a ware with no access profile. 0 (the default): never.
    pub siblings_bytes: u64,
    /// A file of at most this many bytes opened for the first time: tell the source of all
    /// its chunks at once (reading ahead for a ware with no access profile). 0 (the default):
    /// never.
    pub opened_bytes: u64,
}

impl Default for MountConfig {
    fn default() -> Self {
        MountConfig {
            allow_other: false,
            threads: 4,
            caches: Caches::new(64 << 20, 32 << 20),
            fsname: "ware".into(),
            suid: false,
            dev: false,
            max_read: 1 << 20,
            read_ahead_kb: 1024,
            mount_timeout: std::time::Duration::from_secs(10),
            owner: None,
            reads: None,
            siblings_bytes: 0,
            opened_bytes: 0,
        }
    }
}

/// Errors of mounting and unmounting. Request-time faults never surface here: they become
/// errno values for the program that made the request.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The ware (or foreign tree) to mount cannot be read (missing or corrupt root node), or
    /// is not a directory.
    #[error("cannot mount {id}: {source}")]
    Ware {
        /// The ware (or foreign tree root) asked for.
        id: ware_store::Cid,
        /// Why its root node cannot be read.
        #[source]
        source: ware_store::Error,
    },
    /// The mountpoint is not a usable directory.
    #[error("mountpoint {path}: {why}")]
    Mountpoint {
        /// The mountpoint.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The FUSE mount failed.
    #[error("mount {path}: {source}")]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The mount did not appear in /proc/self/mountinfo in time.
    #[error("mount {path}: not visible in /proc/self/mountinfo after {secs} s")]
    NotLive {
        /// The mountpoint.
        path: PathBuf,
        /// Seconds waited.
        secs: u64,
    },
    /// Unmounting failed (for example because the mount is busy).
    #[error("unmount {path}: {source}")]
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}
