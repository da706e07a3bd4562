//! The local store as the read paths (a ware's read-through, a UnixFS tree) need it: where
//! they look first, and where they keep what they fetched and verified.

use ware_store::{BlockSink, BlockSource};

/// A store to read from and write verified objects into.
pub trait LocalCache: BlockSource + BlockSink {}
impl<T: BlockSource + BlockSink> LocalCache for T {}
