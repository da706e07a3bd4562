//! The warehouse layout v1: how wares are laid out as objects in a warehouse (a directory, a
//! web server, an S3 bucket). docs/FORMAT.md, "Warehouses", is the specification.
//!
//! ```text
//! warefs-warehouse        "warefs-warehouse/1\n"
//! wares/<ware id>         manifest: every node of the ware, and the packs holding its chunks
//! packs/<name>.pack       stored chunks back to back (tag byte + zstd frame or raw bytes)
//! packs/<name>.idx        the pack's index: (chunk ID, offset, stored length), sorted by ID
//! ```
//!
//! A cold start reads the manifest (all of the ware's metadata in one request) and the indexes
//! of its packs, then fetches chunks by byte range. Everything is self-verifying: a manifest's
//! nodes are hashed into their IDs (and one of them must be the ware's root), an index is named
//! by its hash, and every chunk is checked against its ID when decoded.
//!
//! Invariants: decoders never allocate beyond the stated bounds, whatever the bytes; nothing
//! returned by a decoder is unverified.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId, WareId};

/// The marker object's key.
pub const MARKER_KEY: &str = "warefs-warehouse";
/// The marker object's content: the layout version.
pub const MARKER: &[u8] = b"warefs-warehouse/1\n";
/// Largest decompressed manifest accepted (a ware's metadata; ~5 MB for a 760 MB rootfs).
pub const MANIFEST_MAX: usize = 256 << 20;
/// Largest pack index accepted.
pub const INDEX_MAX: usize = 64 << 20;
/// A writer closes a pack once it holds this many bytes.
pub const PACK_TARGET: usize = 16 << 20;

/// The prefix of manifests' keys.
pub const WARES_PREFIX: &str = "wares/";

/// The key of a ware's manifest.
pub fn ware_key(id: &WareId) -> String {
    format!("{WARES_PREFIX}{id}")
}
/// The key of a ware's profiles ([`crate::profile::ProfileSet`]).
pub fn profiles_key(id: &WareId) -> String {
    format!("profiles/{id}")
}
/// The key of a pack's data.
pub fn pack_key(name: &str) -> String {
    format!("packs/{name}.pack")
}
/// The key of a pack's index.
pub fn index_key(name: &str) -> String {
    format!("packs/{name}.idx")
}

/// Checks a marker object.
pub fn check_marker(bytes: &[u8]) -> Result<()> {
    if bytes == MARKER {
        Ok(())
    } else {
        Err(Error::Malformed(format!(
            "warehouse marker is {:?}; this ware reads {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(64)]),
            String::from_utf8_lossy(MARKER).trim()
        )))
    }
}

/// Where one chunk lives in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The chunk.
    pub chunk: ChunkId,
    /// Byte offset of its stored form in the pack.
    pub offset: u64,
    /// Length of its stored form (tag byte included).
    pub stored_len: u32,
}

#[derive(Serialize, Deserialize)]
struct IndexDoc {
    v: String,
    /// (chunk ID, offset, stored length), sorted by chunk ID.
    c: Vec<(ByteBuf, u64, u32)>,
}

/// Builds one pack from stored chunks, in the order they are added.
#[derive(Default)]
pub struct PackBuilder {
    data: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a chunk's stored form (as [`crate::chunk::encode_chunk`] makes it).
    pub fn add(&mut self, chunk: ChunkId, stored: &[u8]) {
        self.entries.push(PackEntry {
            chunk,
            offset: self.data.len() as u64,
            stored_len: stored.len() as u32,
        });
        self.data.extend_from_slice(stored);
    }
    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// True when no chunk was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The pack's name, its data and its encoded index. The name is the index's hash, so an
    /// index fetched by name is verified.
    pub fn finish(self) -> (String, Vec<u8>, Vec<PackEntry>, Vec<u8>) {
        let (name, sorted, index) = encode_index(self.entries);
        (name, self.data, sorted, index)
    }
}

/// The index of a pack holding `entries` (in any order): its name, the entries sorted by
/// chunk (each once) and its bytes.
pub fn encode_index(mut entries: Vec<PackEntry>) -> (String, Vec<PackEntry>, Vec<u8>) {
    entries.sort_by_key(|e| e.chunk);
    entries.dedup_by_key(|e| e.chunk);
    let doc = IndexDoc {
        v: String::from_utf8_lossy(MARKER).trim().to_string(),
        c: entries
            .iter()
            .map(|e| (ByteBuf::from(e.chunk.0.to_vec()), e.offset, e.stored_len))
            .collect(),
    };
    let index = crate::node::encode(&doc);
    (index_name(&index), entries, index)
}

fn index_name(index: &[u8]) -> String {
    blake3::hash(index).to_hex().to_string()
}

/// Decodes a pack index fetched under `name`, checking it hashes to its name.
pub fn decode_index(name: &str, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let bad = |why: &str| Error::Malformed(format!("pack index {name}: {why}"));
    if bytes.len() > INDEX_MAX {
        return Err(bad("too large"));
    }
    if index_name(bytes) != name {
        return Err(bad("its bytes do not hash to its name"));
    }
    let doc: IndexDoc =
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| bad(&format!("undecodable: {e}")))?;
    doc.c
        .into_iter()
        .map(|(id, offset, stored_len)| {
            let chunk = ChunkId(
                id.as_slice()
                    .try_into()
                    .map_err(|_| bad("a chunk ID is not 32 bytes"))?,
            );
            // A stored chunk is its tag byte and at most MAX_CHUNK bytes (raw is never
            // larger than a useful zstd frame): anything longer is a lie about the pack.
            if stored_len as usize > crate::chunk::MAX_CHUNK + 1 || stored_len == 0 {
                return Err(bad("a chunk's stored length is out of bounds"));
            }
            Ok(PackEntry {
                chunk,
                offset,
                stored_len,
            })
        })
        .collect()
}

/// A ware's manifest: all its nodes and the packs that hold its chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The ware.
    pub ware: WareId,
    /// Every node of the ware, each with the ID its bytes hash to (root first).
    pub nodes: Vec<(NodeId, Vec<u8>)>,
    /// Names of the packs holding the ware's chunks.
    pub packs: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ManifestDoc {
    v: String,
    n: Vec<ByteBuf>,
    p: Vec<String>,
}

/// Encodes a manifest (DAG-CBOR, zstd-compressed).
pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let doc = ManifestDoc {
        v: String::from_utf8_lossy(MARKER).trim().to_string(),
        n: m.nodes
            .iter()
            .map(|(_, b)| ByteBuf::from(b.clone()))
            .collect(),
        p: m.packs.clone(),
    };
    let cbor = crate::node::encode(&doc);
    zstd::bulk::compress(&cbor, 9).unwrap_or(cbor)
}

/// Decodes the manifest fetched for `ware`: every node is hashed into its ID, and the ware's
/// root must be among them.
pub fn decode_manifest(ware: &WareId, bytes: &[u8]) -> Result<Manifest> {
    let bad = |why: String| Error::Malformed(format!("manifest of ware {ware}: {why}"));
    let cbor = zstd::bulk::decompress(bytes, MANIFEST_MAX).map_err(|e| {
        bad(format!(
            "not a zstd frame of at most {MANIFEST_MAX} bytes: {e}"
        ))
    })?;
    let doc: ManifestDoc =
        serde_ipld_dagcbor::from_slice(&cbor).map_err(|e| bad(format!("undecodable: {e}")))?;
    if doc.v.as_bytes() != MARKER.trim_ascii_end() {
        return Err(bad(format!("layout {:?}", doc.v)));
    }
    let nodes: Vec<(NodeId, Vec<u8>)> = doc
        .n
        .into_iter()
        .map(|b| (NodeId::of(&b), b.into_vec()))
        .collect();
    if !nodes.iter().any(|(id, _)| id == ware) {
        return Err(bad("it does not hold the ware's root node".into()));
    }
    let mut seen = HashSet::new();
    for p in &doc.p {
        if p.len() != 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) || !seen.insert(p) {
            return Err(bad(format!("bad pack name {p:?}")));
        }
    }
    Ok(Manifest {
        ware: *ware,
        nodes,
        packs: doc.p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{decode_chunk, encode_chunk};

    #[test]
    fn packs_index_their_chunks_and_indexes_are_named_by_their_hash() {
        let mut b = PackBuilder::new();
        let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
        for c in &chunks {
            b.add(ChunkId::of(c), &encode_chunk(c));
        }
        let (name, data, entries, index) = b.finish();
        let decoded = decode_index(&name, &index).unwrap();
        assert_eq!(decoded, entries);
        for c in &chunks {
            let id = ChunkId::of(c);
            let e = decoded.iter().find(|e| e.chunk == id).unwrap();
            let stored = &data[e.offset as usize..][..e.stored_len as usize];
            assert_eq!(&decode_chunk(id, stored).unwrap(), c);
        }
        let mut bad = index.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode_index(&name, &bad).is_err());
    }

    #[test]
    fn manifests_verify_their_nodes_and_root() {
        let root = vec![0xa0];
        let other = vec![0xa1];
        let ware = NodeId::of(&root);
        let m = Manifest {
            ware,
            nodes: vec![(ware, root.clone()), (NodeId::of(&other), other.clone())],
            packs: vec!["ab".repeat(32)],
        };
        let enc = encode_manifest(&m);
        assert_eq!(decode_manifest(&ware, &enc).unwrap(), m);
        // Another ware's manifest does not pass for this one.
        assert!(decode_manifest(&NodeId::of(&[0xa2]), &enc).is_err());
        // Garbage is an error, not a panic.
        for junk in [&b""[..], b"\x28\xb5\x2f\xfd", &enc[..enc.len() / 2]] {
            assert!(decode_manifest(&ware, junk).is_err());
        }
    }
}
