//! Every operation a command may ask of a store or of its daemon, each defined once: a request
//! type (its fields are what goes on the wire), its reply type, and, for a store operation,
//! its implementation on a store opened in this process ([`Op::run`]). From that one
//! definition follow the in-process call ([`crate::client::StoreClient::call`] on a local
//! store), the wire encoding ([`Request`], tagged by the operation's name), the client stub
//! (the same `call` through the daemon) and the daemon's dispatch ([`Request::serve`]).
//!
//! What is not a plain call is said here too: an operation that takes a file descriptor gets
//! it in its [`Cx`] (in process: the command's own; through the daemon: passed with the
//! request, SCM_RIGHTS), one that reports progress reports it to `Cx::progress` (through the
//! daemon: forwarded as reply lines), and the daemon's own operations (mounts, which may live
//! as long as the connection; status; stop) are served by the daemon ([`Serves`]).
//!
//! Adding an operation: its struct and `Op` impl in `store.rs` (`profile.rs` for access
//! profiles), its line in `operations!`
//! below, and the command that calls it (`src/cli/`). A daemon operation: its struct in
//! `daemon.rs` and its line here, its `Serves` impl in `src/daemon/serves.rs`, its command. Nothing
//! else changes (docs/ARCHITECTURE.md, "Adding a store operation").

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ware_fetchers::transfer::{PullReport, PushReport};
use ware_store::db::StoreStats;
use ware_store::fsck::FsckReport;
use ware_store::names::NameChange;
use ware_store::node::Entry;
use ware_store::pack::{NoProgress, PackReport, Progress};
use ware_store::unpack::UnpackReport;
use ware_store::{WareId, WareRecord};

use crate::api::LocalStore;

mod daemon;
mod image;
mod profile;
mod serve;
mod store;
#[cfg(test)]
mod tests;

pub use daemon::{Mount, MountInfo, MountWhat, Mounts, Ping, Shutdown, Umount};
pub use image::Import;
pub use profile::{Prefetch, ProfileInfo, ProfileList, ProfileRemove, ProfileShow};
pub use serve::{Serve, ServeReport};
pub use store::{
    AddRun, Cat, ConfigList, ConfigSet, Damage, Fsck, List, NameGet, NameLog, NameSet, Names, Pack,
    Pull, Push, Runs, Stat, Stats, Unpack, Wares, broken_pipe,
};

/// What an operation gets besides its request: the descriptor that came with it, and where its
/// progress goes.
pub struct Cx<'a> {
    /// `Pack` without `dir` reads a tar stream from it; `Cat` writes the file to it.
    pub fd: Option<OwnedFd>,
    /// Byte progress of long operations (pack, unpack, fsck, push, pull).
    pub progress: &'a dyn Progress,
}

impl Cx<'static> {
    /// No descriptor, no progress.
    pub fn plain() -> Cx<'static> {
        Cx {
            fd: None,
            progress: &NoProgress,
        }
    }
}

impl<'a> Cx<'a> {
    /// Progress to `progress`, with `fd` if any.
    pub fn new(fd: Option<OwnedFd>, progress: &'a dyn Progress) -> Cx<'a> {
        Cx { fd, progress }
    }

    pub(crate) fn take_fd(&mut self, what: &str) -> Result<OwnedFd> {
        self.fd
            .take()
            .with_context(|| format!("{what} needs a file descriptor and none came with it"))
    }
}

/// A request that can go on the wire, with the type of its reply.
pub trait Wire: Serialize + DeserializeOwned + Into<Request> {
    /// What a successful request answers.
    type Reply: Serialize + DeserializeOwned;
}

/// A store operation: runs on a store opened in this process (the command's own, or the
/// daemon's for its clients).
pub trait Op: Wire {
    /// Runs the operation on `store`.
    fn run(self, store: &LocalStore, cx: &mut Cx<'_>) -> Result<Self::Reply>;
}

/// What serves the daemon's own operations (the daemon, `src/daemon/serves.rs`). `Ok(None)`: no reply
/// is due (a foreground mount whose client went away).
pub trait Serves<O: Wire> {
    /// Serves `op` for the client on `conn`.
    fn serve(&self, op: O, conn: &UnixStream, cx: &mut Cx<'_>) -> Result<Option<O::Reply>>;
}

/// Declares [`Request`] from the operations, with each one's reply type, its `From` and `Wire`
/// impls, and the one dispatch of a request to its implementation.
macro_rules! operations {
    (store { $($s:ident -> $sr:ty,)* } daemon { $($d:ident -> $dr:ty,)* }) => {
        /// One request: an operation, tagged by its name (`{"op": "name_set", …}`).
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Request {
            $(#[allow(missing_docs)] $s($s),)*
            $(#[allow(missing_docs)] $d($d),)*
        }
        $(
            impl From<$s> for Request {
                fn from(o: $s) -> Request {
                    Request::$s(o)
                }
            }
            impl Wire for $s {
                type Reply = $sr;
            }
        )*
        $(
            impl From<$d> for Request {
                fn from(o: $d) -> Request {
                    Request::$d(o)
                }
            }
            impl Wire for $d {
                type Reply = $dr;
            }
        )*
        impl Request {
            /// Serves the request: a store operation on `store`, a daemon operation by
            /// `daemon`; the reply as JSON, or `None` when no reply is due.
            pub fn serve<D>(
                self,
                store: &LocalStore,
                daemon: &D,
                conn: &UnixStream,
                cx: &mut Cx<'_>,
            ) -> Result<Option<serde_json::Value>>
            where
                $(D: Serves<$d>,)*
            {
                match self {
                    $(Request::$s(op) => Ok(Some(serde_json::to_value(op.run(store, cx)?)?)),)*
                    $(Request::$d(op) => match <D as Serves<$d>>::serve(daemon, op, conn, cx)? {
                        Some(r) => Ok(Some(serde_json::to_value(r)?)),
                        None => Ok(None),
                    },)*
                }
            }
        }
    };
}

operations! {
    store {
        Pack -> PackReport,
        Import -> crate::oci::ImportReport,
        Unpack -> UnpackReport,
        Stat -> Entry,
        List -> Vec<Entry>,
        Cat -> u64,
        Wares -> Vec<(WareId, WareRecord)>,
        Fsck -> FsckReport,
        Stats -> StoreStats,
        Damage -> String,
        NameSet -> Option<WareId>,
        NameGet -> Option<WareId>,
        Names -> Vec<(String, WareId)>,
        NameLog -> Vec<NameChange>,
        Push -> PushReport,
        Pull -> PullReport,
        AddRun -> (),
        Runs -> Vec<serde_json::Value>,
        ConfigSet -> (),
        ConfigList -> Vec<crate::config::Setting>,
        ProfileList -> Vec<ProfileInfo>,
        ProfileShow -> ProfileInfo,
        ProfileRemove -> (),
        Prefetch -> ware_fetchers::read_through::PrefetchReport,
        Serve -> ServeReport,
    }
    daemon {
        Ping -> serde_json::Value,
        Mount -> MountInfo,
        Umount -> (),
        Mounts -> Vec<MountInfo>,
        Shutdown -> (),
    }
}
