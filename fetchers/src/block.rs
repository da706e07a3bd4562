//! CIDs of blocks: computing them and verifying bytes against them.

use cid::Cid;
use multihash::Multihash;
use sha2::Digest;

use crate::error::{Error, Result};

/// Multihash code of SHA2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of BLAKE3 (32-byte digest, warefs's own hash).
pub const BLAKE3: u64 = 0x1e;
/// Multicodec of raw bytes (chunks, UnixFS raw leaves).
pub const RAW: u64 = 0x55;
/// Multicodec of DAG-PB (UnixFS directories and files, CIDv0).
pub const DAG_PB: u64 = 0x70;
/// Multicodec of DAG-CBOR (warefs nodes).
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec of DAG-JSON.
pub const DAG_JSON: u64 = 0x0129;

/// A hash function a block can be named with; the ones this crate can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockHash {
    /// SHA2-256 (multihash 0x12): IPFS's default.
    Sha2_256,
    /// BLAKE3 with a 32-byte digest (multihash 0x1e): warefs's chunks and nodes.
    Blake3,
}

impl BlockHash {
    /// The multihash code.
    pub fn code(self) -> u64 {
        match self {
            BlockHash::Sha2_256 => SHA2_256,
            BlockHash::Blake3 => BLAKE3,
        }
    }

    /// The name the Kubo RPC API uses for it (`mhtype`).
    pub fn name(self) -> &'static str {
        match self {
            BlockHash::Sha2_256 => "sha2-256",
            BlockHash::Blake3 => "blake3",
        }
    }

    /// The hash function of a multihash code, if this crate knows it.
    pub fn from_code(code: u64) -> Option<BlockHash> {
        match code {
            SHA2_256 => Some(BlockHash::Sha2_256),
            BLAKE3 => Some(BlockHash::Blake3),
            _ => None,
        }
    }

    /// The 32-byte digest of `data`.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        match self {
            BlockHash::Sha2_256 => sha2::Sha256::digest(data).into(),
            BlockHash::Blake3 => *blake3::hash(data).as_bytes(),
        }
    }
}

/// The name the Kubo RPC API uses for a codec (`cid-codec`).
pub(crate) fn codec_name(codec: u64) -> Option<&'static str> {
    match codec {
        RAW => Some("raw"),
        DAG_PB => Some("dag-pb"),
        DAG_CBOR => Some("dag-cbor"),
        DAG_JSON => Some("dag-json"),
        _ => None,
    }
}

/// The CIDv1 of `data` as a block of `codec` hashed with `hash`.
pub fn block_cid(codec: u64, hash: BlockHash, data: &[u8]) -> Cid {
    let mh = Multihash::<64>::wrap(hash.code(), &hash.digest(data))
        .expect("a 32-byte digest fits a 64-byte multihash");
    Cid::new_v1(codec, mh)
}

/// Checks that `data` hashes to `cid`'s multihash (the codec is not checked: the same bytes
/// under another codec are still those bytes). `url` names where the bytes came from.
pub fn verify_block(cid: &Cid, data: &[u8], url: &str) -> Result<()> {
    let mh = cid.hash();
    let Some(hash) = BlockHash::from_code(mh.code()) else {
        return Err(Error::Cid {
            cid: cid.to_string(),
            reason: format!(
                "multihash 0x{:x} cannot be verified here (sha2-256 and blake3 can)",
                mh.code()
            ),
        });
    };
    if mh.size() != 32 {
        return Err(Error::Cid {
            cid: cid.to_string(),
            reason: format!("{}-byte digest (32 expected)", mh.size()),
        });
    }
    if hash.digest(data) != mh.digest() {
        tracing::warn!(%cid, url, len = data.len(), "block rejected: hash mismatch");
        return Err(Error::Verify {
            cid: cid.to_string(),
            url: url.to_owned(),
            reason: format!(
                "{} of the {} bytes received differs",
                hash.name(),
                data.len()
            ),
        });
    }
    Ok(())
}

/// Checks up front that a CID can be verified, so no request is made for one that could not.
pub(crate) fn check_verifiable(cid: &Cid) -> Result<()> {
    let mh = cid.hash();
    match BlockHash::from_code(mh.code()) {
        Some(_) if mh.size() == 32 => Ok(()),
        _ => Err(Error::Cid {
            cid: cid.to_string(),
            reason: format!(
                "multihash 0x{:x} ({} bytes) cannot be verified here (sha2-256 and blake3 can)",
                mh.code(),
                mh.size()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_the_known_raw_cid() {
        let cid = block_cid(RAW, BlockHash::Sha2_256, b"hello\n");
        assert_eq!(
            cid.to_string(),
            "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
        );
        verify_block(&cid, b"hello\n", "test").unwrap();
        assert!(matches!(
            verify_block(&cid, b"hellO\n", "test"),
            Err(Error::Verify { .. })
        ));
        let empty = block_cid(RAW, BlockHash::Sha2_256, b"");
        assert_eq!(
            empty.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn blake3_raw_cids_read_bafkr4i() {
        let cid = block_cid(RAW, BlockHash::Blake3, b"chunk");
        assert!(cid.to_string().starts_with("bafkr4i"), "{cid}");
        verify_block(&cid, b"chunk", "test").unwrap();
        assert!(verify_block(&cid, b"chunk!", "test").is_err());
    }

    #[test]
    fn unknown_multihash_is_refused() {
        let mh = Multihash::<64>::wrap(0x13, &[0u8; 64]).unwrap(); // sha2-512
        let cid = Cid::new_v1(RAW, mh);
        assert!(matches!(check_verifiable(&cid), Err(Error::Cid { .. })));
        assert!(matches!(
            verify_block(&cid, b"x", "t"),
            Err(Error::Cid { .. })
        ));
    }
}
