//! The daemon's own operations (served in `src/daemon.rs`): requests only a daemon can serve.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ware_store::WareId;

use crate::api::RemoteOptions;
use ware_fetchers::read_through::FetchStats;

/// Is the daemon there? Answers its pid, store and memory.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ping {}

/// What a mount shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountWhat {
    /// One ware.
    Ware(WareId),
    /// The whole store (`ware mount --all`).
    All,
    /// The whole store, as [`MountWhat::All`], for the inputs of a run of `formula`: the reads
    /// of each input (path → ware) are learned as the profile `run:<formula>:<path>`.
    Run {
        /// The formula's ID.
        formula: WareId,
        /// Its inputs: path → ware.
        inputs: BTreeMap<String, WareId>,
        /// Inputs (by ware) to fill in the background, at the store's `fill.rate`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fill: Vec<WareId>,
    },
    /// An IPFS UnixFS directory, by its CID (`Qm…`, `bafy…`), read from the IPFS warehouses.
    Unixfs(String),
    /// A warehouse (`ware mount URL MNT`): as [`MountWhat::All`], listing the wares and names
    /// of its catalog (read again after `catalog_ttl_s`) instead of the store's.
    Warehouse {
        /// Its URL (also the mount's first warehouse).
        url: String,
        /// Seconds a catalog read is listed before it is read again.
        catalog_ttl_s: u64,
    },
}

/// A live mount of the daemon.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountInfo {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// What it shows.
    pub what: MountWhat,
    /// Mounted with allow_other (and default_permissions).
    pub allow_other: bool,
    /// Kept alive by a `ware mount --foreground` that is still attached.
    pub foreground: bool,
    /// Inodes the mount holds now (filled in by `ware daemon status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    /// What the mount fetched from warehouses so far, and why (filled in by `ware daemon
    /// status`; none for a mount of the local store only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<FetchStats>,
}

/// Mount a ware or the whole store. With `foreground` the mount lives as long as the
/// connection: the daemon answers `ready` once it is live and the final reply when it ends.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mount {
    /// Warehouses to fetch what the store lacks from, and the read deadline.
    pub remote: RemoteOptions,
    /// What to show.
    pub what: MountWhat,
    /// Absolute mountpoint.
    pub mountpoint: PathBuf,
    /// Let other users (and other namespaces) read it.
    pub allow_other: bool,
    /// Keep the mount only while this connection stays open.
    pub foreground: bool,
    /// Fetch the rest of a remote ware in the background after its profile, at most this
    /// many bytes a second (`ware mount --fill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<u64>,
}

/// Unmount one of the daemon's mounts (or a dead ware mount).
#[derive(Debug, Serialize, Deserialize)]
pub struct Umount {
    /// Absolute mountpoint.
    pub mountpoint: PathBuf,
    /// Detach it even when busy (it ends when its last user lets go).
    pub lazy: bool,
}

/// The daemon's live mounts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Mounts {}

/// Unmount everything and exit.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Shutdown {}
