//! IDs from outside (text, bytes, any CID) and bytes checked against IDs: everything about
//! identifiers that can fail, with the store's [`Error`] (which itself names IDs, so this sits
//! above both [`crate::id`] and [`crate::error`]).

use std::str::FromStr;

use cid::Cid;

use crate::error::{Error, Result};
use crate::id::{BLAKE3, ChunkId, DAG_CBOR, NodeId, RAW, SHA2_256};

impl ChunkId {
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

impl NodeId {
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

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
