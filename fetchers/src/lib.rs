//! Warehouses: where wares live when they are not in the local store. This crate moves bytes
//! between this machine and a warehouse — a local directory, a web server, an S3 bucket, an
//! IPFS node or an IPFS trustless gateway — behind one [`Warehouse`] trait, and knows nothing
//! of what the bytes mean (the warehouse layout, push, pull and lazy fetch sit on top of it).
//!
//! # URL forms ([`open`])
//! | URL | kind | objects by key | blocks by CID |
//! |---|---|---|---|
//! | `file:///abs/dir` | [`DirWarehouse`] | read, write, list | — |
//! | `http://host/path`, `https://…` | [`HttpWarehouse`] | read (GET, Range, HEAD) | — |
//! | `s3://bucket/prefix[?endpoint=URL&region=R&allow_http=true]` | [`S3Warehouse`] | read, write, list | — |
//! | `ipfs+http://host:port` (`ipfs+https://…`) | [`IpfsRpcWarehouse`] (Kubo RPC API) | — | read, write, CAR import |
//! | `ipfs+gateway+http://host[:port][/path]` (`ipfs+gateway+https://…`) | [`IpfsGatewayWarehouse`] | — | read |
//!
//! # What it owns
//! The network clients (reqwest with rustls, object_store for S3) and the tokio runtime they
//! run on: one multi-threaded runtime for the process, two worker threads, started on first
//! use. No other crate of warefs (but the binary's daemon) holds a network client or a
//! runtime.
//!
//! # Why a synchronous trait
//! The callers are plain threads: FUSE request handlers in `fs`, and the CLI. A synchronous
//! facade over the crate's own runtime keeps tokio out of their signatures and lets a FUSE
//! thread simply block for at most one deadline. Internally every call is async, so timeouts
//! and the deadline are enforced by the runtime's timers rather than by hoping a socket read
//! returns. Parallelism comes from calling from several threads (the runtime multiplexes
//! their requests over pooled connections). Calling from inside an async context works too
//! (the call moves to a helper thread rather than panic), but async callers should prefer
//! `spawn_blocking`.
//!
//! # Invariants
//! - **Nothing unverified leaves a block call.** [`Warehouse::get_block`] hashes what it
//!   received (SHA2-256 or BLAKE3, the only multihashes accepted) and compares it with the
//!   CID before returning it; [`Warehouse::put_block`] computes the CID itself and refuses a
//!   node's answer naming another one. There is no switch to turn this off. Objects by key are
//!   not content-addressed here; their verification is the layer above's.
//! - **Exact lengths.** [`Warehouse::get_range`] returns exactly `end - start` bytes or an
//!   error: a `200` with the whole object, a short or long body, or a `Content-Range` that is
//!   not the one asked for are [`Error::BadResponse`], never data. A body shorter than its
//!   `Content-Length` is an error too.
//! - **Bounded time.** Every network call returns within [`FetchOptions::deadline`] (plus
//!   scheduling noise), across all attempts and backoff waits, with [`Error::Timeout`] if need
//!   be — never a hang. (A directory warehouse does plain file I/O on the calling thread; a
//!   hung network file system under it is not bounded here.) Retries (exponential backoff with jitter) happen only for connection errors,
//!   attempt timeouts, cut-off bodies, 5xx, 408 and 429; never for 404 (that is
//!   [`Error::NotFound`]), 403 or a failed verification.
//! - **Keys are relative paths** with `/` separators and no `.`, `..` or empty segments
//!   ([`validate_key`]); every kind refuses the same keys, so none escapes a directory
//!   warehouse's root.
//! - **Puts are idempotent**: writing the same key twice with the same bytes is not an error.
//!   A directory warehouse's puts are atomic (temporary file, fsync, rename, fsync of the
//!   directory). Read-only kinds answer [`Error::ReadOnly`].
//! - Every error names the URL, key or CID at fault; retries, rejected answers and passed
//!   deadlines are `tracing` events. The crate installs no subscriber.
//!
//! # IPFS notes
//! - js-ipfs 0.66.1 (the node the tests run) **refuses BLAKE3 on `block/put`**: `mhtype=blake3`
//!   answers HTTP 500 `Failed to put block: No hasher found for "blake3"`. It does accept
//!   BLAKE3 blocks inside a CAR on `dag/import` (without hashing them itself) and then serves
//!   them through `block/get`. So [`Warehouse::put_block`] tries `block/put` first (what Kubo,
//!   which has BLAKE3, takes) and, when a node refuses the hash, imports a one-block CAR
//!   ([`car_v1`], [`Warehouse::put_car`]) and reads the block back to confirm it is served.
//! - js-ipfs also ignores Kubo's `cid-codec` parameter (it knows the older `format`) and then
//!   names the block by a CIDv0; the answer is checked, and the put repeated with `format`.
//!   Blocks are stored by multihash, so the first put was not wrong, only misnamed.
//! - A node looks for a missing block until the request's `timeout` parameter
//!   ([`FetchOptions::ipfs_block_timeout`], capped by the deadline) and then answers an error,
//!   which this crate reports as [`Error::NotFound`]; without the parameter js-ipfs would
//!   search forever.
//! - js-ipfs's own HTTP gateway is not a trustless gateway (it ignores `?format=raw`); the
//!   gateway kind speaks the trustless protocol of public gateways.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod block;
mod car;
pub mod catalog;
mod dir;
mod error;
mod http;
mod ipfs;
mod key;
mod local;
mod options;
pub mod read_through;
mod runtime;
mod s3;
pub mod transfer;
pub mod unixfs;

use std::ops::Range;
use std::sync::Arc;

pub use block::{
    BLAKE3, BlockHash, DAG_CBOR, DAG_JSON, DAG_PB, RAW, SHA2_256, block_cid, verify_block,
};
pub use bytes::Bytes;
pub use car::car_v1;
pub use cid::Cid;
pub use dir::DirWarehouse;
pub use error::{Error, Result};
pub use http::HttpWarehouse;
pub use ipfs::{IpfsGatewayWarehouse, IpfsRpcWarehouse};
pub use key::{validate_key, validate_prefix};
pub use options::FetchOptions;
pub use s3::{S3Settings, S3Warehouse};

/// The kind of a warehouse, as chosen by its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `file:///abs/dir`.
    Dir,
    /// `http://…`, `https://…` (read-only).
    Http,
    /// `s3://bucket/prefix`.
    S3,
    /// `ipfs+http://host:port`: the Kubo RPC API of a node (blocks only).
    IpfsRpc,
    /// `ipfs+gateway+http(s)://host`: a trustless gateway (blocks only, read-only).
    IpfsGateway,
}

impl Kind {
    /// Whether objects or blocks can be written.
    pub fn is_writable(self) -> bool {
        matches!(self, Kind::Dir | Kind::S3 | Kind::IpfsRpc)
    }

    /// Whether objects are addressed by key (`get`, `put`, `exists`).
    pub fn has_objects(self) -> bool {
        matches!(self, Kind::Dir | Kind::Http | Kind::S3)
    }

    /// Whether blocks are addressed by CID (`get_block`).
    pub fn has_blocks(self) -> bool {
        matches!(self, Kind::IpfsRpc | Kind::IpfsGateway)
    }

    /// Whether [`Warehouse::list`] works.
    pub fn can_list(self) -> bool {
        matches!(self, Kind::Dir | Kind::S3)
    }

    /// Whether the node keeps pins ([`Warehouse::pin`], [`Warehouse::pins`]): what an IPFS
    /// warehouse lists instead of a catalog.
    pub fn has_pins(self) -> bool {
        matches!(self, Kind::IpfsRpc)
    }

    /// Whether the warehouse says what it holds: a catalog (objects) or pins (an IPFS node).
    pub fn can_catalog(self) -> bool {
        self.has_objects() || self.has_pins()
    }
}

/// A place that holds objects by key and/or blocks by CID. Calls block the calling thread for
/// at most the warehouse's [`FetchOptions::deadline`]; a warehouse is shared between threads
/// (`Arc<dyn Warehouse>`). See the crate documentation for the invariants every
/// implementation keeps.
pub trait Warehouse: Send + Sync + std::fmt::Debug {
    /// The warehouse's URL (credentials never appear in it).
    fn url(&self) -> &str;

    /// Which kind of warehouse this is.
    fn kind(&self) -> Kind;

    /// The whole object at `key`; [`Error::NotFound`] if there is none.
    fn get(&self, key: &str) -> Result<Bytes>;

    /// Bytes `range.start..range.end` of the object at `key`: exactly that many, or an error
    /// (a range past the end of the object is [`Error::BadResponse`]). An empty range returns
    /// no bytes without a request.
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// Stores `data` at `key`, replacing what was there. Idempotent; [`Error::ReadOnly`] on
    /// read-only kinds.
    fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Whether an object exists at `key`.
    fn exists(&self, key: &str) -> Result<bool>;

    /// Removes the object at `key` (none there is no error). [`Error::ReadOnly`] on read-only
    /// kinds; [`Error::Unsupported`] where objects cannot be removed.
    fn delete(&self, key: &str) -> Result<()> {
        let _ = key;
        Err(if self.kind().is_writable() {
            Error::Unsupported {
                url: self.url().to_owned(),
                what: "removing objects",
            }
        } else {
            Error::ReadOnly {
                url: self.url().to_owned(),
            }
        })
    }

    /// The keys that start with `prefix` (a plain string prefix; `""` for all), sorted.
    /// [`Error::Unsupported`] where the kind cannot list (HTTP, IPFS).
    fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// The block named by `cid`, verified against it. [`Error::Unsupported`] for kinds without
    /// blocks.
    fn get_block(&self, cid: &Cid) -> Result<Bytes> {
        let _ = cid;
        Err(Error::Unsupported {
            url: self.url().to_owned(),
            what: "blocks by CID",
        })
    }

    /// Stores `data` as a block of `codec` (e.g. [`RAW`], [`DAG_CBOR`]) hashed with `hash`,
    /// and returns its CIDv1, computed here and checked against the node's answer.
    fn put_block(&self, codec: u64, hash: BlockHash, data: Bytes) -> Result<Cid> {
        let _ = (codec, hash, data);
        Err(Error::Unsupported {
            url: self.url().to_owned(),
            what: "blocks by CID",
        })
    }

    /// Pins `cid` and every block it links to, recursively, so the node's garbage collection
    /// keeps them (an IPFS node; the blocks must all be there). Idempotent.
    fn pin(&self, cid: &Cid) -> Result<()> {
        let _ = cid;
        Err(Error::Unsupported {
            url: self.url().to_owned(),
            what: "pins",
        })
    }

    /// The roots pinned recursively on the node, in no particular order.
    fn pins(&self) -> Result<Vec<Cid>> {
        Err(Error::Unsupported {
            url: self.url().to_owned(),
            what: "pins",
        })
    }

    /// Imports a CAR file (CARv1) of blocks, for nodes that refuse a hash on `block/put`;
    /// returns the roots the node reported (possibly none). The node verifies the blocks.
    fn put_car(&self, car: Bytes) -> Result<Vec<Cid>> {
        let _ = car;
        Err(Error::Unsupported {
            url: self.url().to_owned(),
            what: "CAR import",
        })
    }
}

/// Opens the warehouse named by `url` (see the crate documentation for the forms).
pub fn open(url: &str, opts: &FetchOptions) -> Result<Arc<dyn Warehouse>> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let inner = |scheme: &str| -> Result<url::Url> {
        let rest = &url[url.find(':').map(|i| i + 1).unwrap_or(0)..];
        let u = url::Url::parse(&format!("{scheme}:{rest}")).map_err(|e| invalid(e.to_string()))?;
        if u.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".into()));
        }
        Ok(u)
    };
    Ok(match parsed.scheme() {
        "file" => {
            if parsed
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(invalid(
                    "file URLs name a local directory: file:///abs/dir".into(),
                ));
            }
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("not an absolute local path".into()))?;
            Arc::new(
                DirWarehouse::new(path)?
                    .shared(opts.shared)
                    .deadline(opts.deadline),
            )
        }
        "http" | "https" => Arc::new(HttpWarehouse::new(inner(parsed.scheme())?, opts)?),
        "s3" => Arc::new(S3Warehouse::new(&parsed, opts)?),
        "ipfs+http" => Arc::new(IpfsRpcWarehouse::new(url, inner("http")?, opts)?),
        "ipfs+https" => Arc::new(IpfsRpcWarehouse::new(url, inner("https")?, opts)?),
        "ipfs+gateway+http" => Arc::new(IpfsGatewayWarehouse::new(url, inner("http")?, opts)?),
        "ipfs+gateway+https" => Arc::new(IpfsGatewayWarehouse::new(url, inner("https")?, opts)?),
        other => return Err(invalid(format!("unknown scheme {other:?}"))),
    })
}

impl dyn Warehouse {
    /// Opens the warehouse named by `url`: the same as [`open`], spelt
    /// `<dyn Warehouse>::open(url, &opts)`.
    pub fn open(url: &str, opts: &FetchOptions) -> Result<Arc<dyn Warehouse>> {
        open(url, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = FetchOptions::default();
        assert_eq!(open("file:///tmp/x", &o).unwrap().kind(), Kind::Dir);
        assert_eq!(open("http://127.0.0.1:1/a", &o).unwrap().kind(), Kind::Http);
        assert_eq!(
            open("ipfs+http://127.0.0.1:5001", &o).unwrap().kind(),
            Kind::IpfsRpc
        );
        assert_eq!(
            open("ipfs+gateway+https://gw.example", &o).unwrap().kind(),
            Kind::IpfsGateway
        );
        for bad in [
            "ftp://x/y",
            "file://host/x",
            "s3:///prefix",
            "ipfs+http://",
            "s3://b/p?color=red",
            "nonsense",
        ] {
            assert!(
                matches!(open(bad, &o), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
