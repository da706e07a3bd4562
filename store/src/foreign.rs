//! Foreign trees: filesystem trees that are not wares, such as IPFS UnixFS DAGs, shown by the
//! same readers (the FUSE filesystem above all) through [`ForeignTree`].
//!
//! A foreign tree has its own block model (UnixFS: dag-pb nodes, raw leaves, HAMT-sharded
//! directories, SHA2-256 CIDs), so it is not translated into ware nodes and chunks, whose IDs
//! would have to be invented. Instead its entries are described with the in-memory [`Entry`] of
//! the ware model, which is never encoded for them: `dir` (directories) or `file` (regular
//! files) holds the foreign CID of the entry's own block, `size`, `mode`, `mtime` and `target`
//! are filled in, and `chunks`, `inline`, `xattrs` and `hardlink` stay empty. The tree answers
//! listings, lookups and reads of such entries itself.
//!
//! Invariant (as for [`crate::BlockSource`]): every byte a `ForeignTree` hands out comes from
//! blocks verified against their CIDs; a block that is missing, damaged or malformed is an
//! error naming its CID, never data.

use cid::Cid;

use crate::error::Result;
use crate::node::Entry;

/// Reads a foreign tree (see the module documentation for how its entries are described).
pub trait ForeignTree: Send + Sync {
    /// Whether `cid` may name a tree this reader shows (judged by its codec and hash alone,
    /// without fetching anything).
    fn accepts(&self, cid: &Cid) -> bool;
    /// The entry of the tree's root (a directory, a file or a symlink), with an empty name.
    fn root(&self, root: &Cid) -> Result<Entry>;
    /// Every entry of a directory given by [`ForeignTree::root`], `list` or `lookup`, in name
    /// order.
    fn list(&self, dir: &Entry) -> Result<Vec<Entry>>;
    /// One name in a directory, or `None`.
    fn lookup(&self, dir: &Entry, name: &[u8]) -> Result<Option<Entry>>;
    /// Up to `size` bytes of a file from `offset`; short only at the end of the file.
    fn read(&self, file: &Entry, offset: u64, size: u32) -> Result<Vec<u8>>;
}
