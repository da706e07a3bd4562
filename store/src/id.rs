//! Identifiers: [`ChunkId`] (BLAKE3 of a chunk's bytes) and [`NodeId`] / [`WareId`] (CIDv1 of a
//! DAG-CBOR node with a BLAKE3 multihash).
//!
//! Chunks are also addressable as CIDs (codec `raw`, BLAKE3 multihash: `bafkr4i…`), which is how
//! nodes link to them, so a ware is an ordinary IPLD DAG that IPFS tooling can walk.

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use multihash::Multihash;

use crate::error::{Error, Result};

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

    /// Reads a chunk ID back from a raw/BLAKE3 CID; any other CID is an error.
    pub fn from_cid(cid: &Cid) -> Result<Self> {
        let mh = cid.hash();
        if cid.codec() != RAW || mh.code() != BLAKE3 || mh.digest().len() != 32 {
            return Err(Error::BadId(format!("{cid} is not a raw BLAKE3 chunk CID")));
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(mh.digest());
        Ok(ChunkId(out))
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

    /// Accepts only CIDs that can name a warefs node.
    pub fn from_cid(cid: Cid) -> Result<Self> {
        let mh = cid.hash();
        if cid.version() != cid::Version::V1
            || cid.codec() != DAG_CBOR
            || mh.code() != BLAKE3
            || mh.digest().len() != 32
        {
            return Err(Error::BadId(format!(
                "{cid} is not a warefs node ID (want CIDv1, dag-cbor, blake3)"
            )));
        }
        Ok(NodeId(cid))
    }

    /// True when `encoded` hashes to this ID.
    pub fn matches(&self, encoded: &[u8]) -> bool {
        self.0.hash().digest() == blake3::hash(encoded).as_bytes()
    }

    /// The binary form of the CID, used as a database key.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Parses the binary form of a CID.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let cid = Cid::try_from(bytes).map_err(|e| Error::BadId(format!("bad CID bytes: {e}")))?;
        Self::from_cid(cid)
    }
}

/// Encodes any serialisable value as DAG-CBOR and names it the way nodes are named (CIDv1,
/// dag-cbor, BLAKE3): how a formula gets its ID. Fails on what DAG-CBOR cannot hold (floats
/// that are not finite, maps with non-string keys).
pub fn cbor_id<T: serde::Serialize>(value: &T) -> Result<(NodeId, Vec<u8>)> {
    let encoded = serde_ipld_dagcbor::to_vec(value)
        .map_err(|e| Error::bad_input("value to hash", format!("not DAG-CBOR: {e}")))?;
    Ok((NodeId::of(&encoded), encoded))
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let cid = Cid::from_str(s).map_err(|e| {
            // An argument may be anything, of any length: quote only its start.
            let shown: String = s.chars().take(80).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            Error::BadId(format!("{shown:?}{more} is not a CID: {e}"))
        })?;
        Self::from_cid(cid)
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

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Multihash code of SHA2-256, IPFS's default hash.
pub const SHA2_256: u64 = 0x12;

/// Checks foreign (IPFS) block bytes against their CID's multihash: SHA2-256 or BLAKE3 with a
/// 32-byte digest (the codec is not checked: the same bytes under another codec are the same
/// bytes). A CID of any other hash is an [`Error::BadId`] naming it, since it cannot be verified.
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<()> {
    use sha2::Digest;
    let mh = cid.hash();
    let digest: [u8; 32] = match (mh.code(), mh.size()) {
        (SHA2_256, 32) => sha2::Sha256::digest(data).into(),
        (BLAKE3, 32) => *blake3::hash(data).as_bytes(),
        (code, size) => {
            return Err(Error::BadId(format!(
                "{cid}: multihash 0x{code:x} ({size} bytes) cannot be verified (sha2-256 and \
                 blake3 can)"
            )));
        }
    };
    if digest != mh.digest() {
        return Err(Error::CorruptBlock {
            cid: cid.to_string(),
            why: format!("its {} bytes do not match its hash", data.len()),
        });
    }
    Ok(())
}

fn blake3_multihash(digest: &[u8; 32]) -> Multihash<64> {
    // A 32-byte digest always fits a 64-byte multihash, so this cannot fail.
    Multihash::wrap(BLAKE3, digest).expect("32-byte digest fits in a 64-byte multihash")
}

#[cfg(test)]
mod tests {
    use super::*;

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
