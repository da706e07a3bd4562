//! Identifiers: [`ChunkId`] (BLAKE3 of a chunk's bytes) and [`NodeId`] / [`WareId`] (CIDv1 of a
//! DAG-CBOR node with a BLAKE3 multihash).
//!
//! Chunks are also addressable as CIDs (codec `raw`, BLAKE3 multihash: `bafkr4i…`), which is how
//! nodes link to them, so a ware is an ordinary IPLD DAG that IPFS tooling can walk.
//!
//! What can fail (IDs from text, bytes or any CID; bytes checked against an ID) is in
//! [`crate::verify`], above the error type, which names these IDs.

use std::fmt;

use cid::Cid;
use multihash::Multihash;

/// Multicodec code of DAG-CBOR, the codec of every warefs node.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code of raw bytes, the codec of chunk CIDs.
pub const RAW: u64 = 0x55;
/// Multihash code of BLAKE3 (32-byte digest).
pub const BLAKE3: u64 = 0x1e;

/// The BLAKE3 hash of a chunk's uncompressed bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Hashes `data` into its chunk ID.
    pub fn of(data: &[u8]) -> Self {
        ChunkId(*blake3::hash(data).as_bytes())
    }

    /// The chunk as a CIDv1 (codec raw, multihash BLAKE3).
    pub fn to_cid(self) -> Cid {
        Cid::new_v1(RAW, blake3_multihash(&self.0))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_cid())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// The CID of a node: CIDv1, codec DAG-CBOR, BLAKE3 multihash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub Cid);

/// A ware ID is the CID of the ware's root node.
pub type WareId = NodeId;

impl NodeId {
    /// Hashes an encoded node into its CID.
    pub fn of(encoded: &[u8]) -> Self {
        NodeId(Cid::new_v1(
            DAG_CBOR,
            blake3_multihash(blake3::hash(encoded).as_bytes()),
        ))
    }

    /// True when `encoded` hashes to this ID.
    pub fn matches(&self, encoded: &[u8]) -> bool {
        self.0.hash().digest() == blake3::hash(encoded).as_bytes()
    }

    /// The binary form of the CID, used as a database key.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// IDs travel as their text form in JSON (and over the daemon's socket).
impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Multihash code of SHA2-256, IPFS's default hash.
pub const SHA2_256: u64 = 0x12;

pub(crate) fn blake3_multihash(digest: &[u8; 32]) -> Multihash<64> {
    // A 32-byte digest always fits a 64-byte multihash, so this cannot fail.
    Multihash::wrap(BLAKE3, digest).expect("32-byte digest fits in a 64-byte multihash")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::verify::verify_block;

    #[test]
    fn node_ids_print_as_bafyr4i() {
        let id = NodeId::of(b"\xa0");
        assert!(id.to_string().starts_with("bafyr4i"), "{id}");
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        assert!(id.matches(b"\xa0"));
        assert!(!id.matches(b"\xa1"));
    }

    #[test]
    fn chunk_cids_print_as_bafkr4i_and_round_trip() {
        let c = ChunkId::of(b"hello\n");
        assert!(c.to_string().starts_with("bafkr4i"), "{c}");
        assert_eq!(ChunkId::from_cid(&c.to_cid()).unwrap(), c);
    }

    #[test]
    fn foreign_blocks_verify_by_their_multihash() {
        let hello: Cid = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
            .parse()
            .unwrap();
        verify_block(&hello, b"hello\n").unwrap();
        let err = verify_block(&hello, b"hellO\n").unwrap_err();
        assert!(
            err.is_corruption() && err.to_string().contains(&hello.to_string()),
            "{err}"
        );
        verify_block(&ChunkId::of(b"x").to_cid(), b"x").unwrap();
        let sha512 = Cid::new_v1(RAW, Multihash::wrap(0x13, &[0u8; 64]).unwrap());
        assert!(matches!(verify_block(&sha512, b""), Err(Error::BadId(_))));
    }

    #[test]
    fn foreign_cids_are_rejected_with_the_cid_named() {
        // A sha2-256 raw CID (IPFS "hello\n") is not a warefs node.
        let s = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am";
        let err = s.parse::<NodeId>().unwrap_err().to_string();
        assert!(err.contains(s), "{err}");
        assert!("not-a-cid".parse::<NodeId>().is_err());
    }
}
