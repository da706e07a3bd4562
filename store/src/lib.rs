//! ware-store: the data model and local store of warefs.
//!
//! It owns chunking (FastCDC), hashing (BLAKE3), compression (zstd), the node format (DAG-CBOR,
//! CIDv1), pack and unpack over any [`BlockSink`]/[`BlockSource`], and, behind the default
//! `rocksdb` feature, the RocksDB store, `fsck` and `stats`. Without that feature the crate
//! still offers IDs, the node codec, chunk verification, pack/unpack and the tree [`Reader`],
//! so `fs` and `fetchers` build without RocksDB's C++.
//!
//! Invariants:
//! - No RocksDB type appears in a public signature.
//! - Every byte handed out by a [`BlockSource`] has been checked against its ID.
//! - A ware is recorded complete only after every chunk and node it names is written.
//! - The format rules that shape an ID live in [`chunk`] and [`node`] and are documented in
//!   docs/FORMAT.md; the golden vectors in `tests/golden.rs` pin them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bundle;
pub mod catalog;
pub mod chunk;
pub mod error;
pub mod foreign;
pub mod id;
pub mod name;
pub mod node;
pub mod pack;
pub mod profile;
pub mod source;
pub mod tree;
pub mod unpack;
pub mod verify;

#[cfg(feature = "rocksdb")]
pub mod db;
#[cfg(feature = "rocksdb")]
pub mod fsck;
#[cfg(feature = "rocksdb")]
pub mod names;
#[cfg(feature = "rocksdb")]
mod private;
#[cfg(feature = "rocksdb")]
pub mod profiles;
#[cfg(feature = "rocksdb")]
pub mod runs;

pub use cid::Cid;
pub use error::{Error, Result};
pub use foreign::ForeignTree;
pub use id::{ChunkId, NodeId, WareId};
pub use source::{BlockSink, BlockSource, MemStore, WareRecord};
pub use tree::Reader;
