//! Decoding UnixFS blocks: raw leaves, and dag-pb nodes (through `ipld-dagpb`, the IPLD
//! project's codec) whose `Data` is a UnixFS `Data` message, decoded here by a small protobuf
//! reader of our own with explicit bounds.
//!
//! The UnixFS schema (unixfs.proto, with the 1.5 `mode` and `mtime` fields):
//! ```text
//! message Data {
//!   enum DataType { Raw = 0; Directory = 1; File = 2; Metadata = 3; Symlink = 4; HAMTShard = 5; }
//!   required DataType Type = 1;   optional bytes Data = 2;      optional uint64 filesize = 3;
//!   repeated uint64 blocksizes = 4; optional uint64 hashType = 5; optional uint64 fanout = 6;
//!   optional uint32 mode = 7;     optional UnixTime mtime = 8;
//! }
//! message UnixTime { required int64 Seconds = 1; optional fixed32 FractionalNanoseconds = 2; }
//! ```
//!
//! Invariants: decoding never panics and never allocates more than a constant factor of its
//! input (every length is checked against the bytes that remain); a block over [`MAX_BLOCK`]
//! is refused before it is decoded; what decodes is checked for consistency (a file's sizes add
//! up, a shard's parameters are the supported ones), so the reader above can trust the shape.

use bytes::Bytes;
use cid::Cid;

use crate::block::{DAG_PB, RAW};

/// The largest block decoded: IPFS nodes refuse to exchange blocks over 2 MiB.
pub const MAX_BLOCK: usize = 2 << 20;
/// The multihash code of the HAMT's hash function (murmur3-x64-64).
pub const MURMUR3_X64_64: u64 = 0x22;
/// The largest HAMT fanout accepted (the UnixFS spec's bound).
pub const MAX_FANOUT: u64 = 1024;

/// The `Type` of a UnixFS node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// File content held in a dag-pb leaf (older importers).
    Raw,
    /// A directory: one named link per entry.
    Directory,
    /// A file: its own `Data`, then its children's bytes in link order.
    File,
    /// Metadata wrapping another node (unsupported: no importer writes it).
    Metadata,
    /// A symlink: `Data` is the target.
    Symlink,
    /// A shard of a HAMT directory.
    HamtShard,
}

/// A decoded UnixFS `Data` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixfsData {
    /// The node's type.
    pub kind: DataType,
    /// Its own bytes (file content, symlink target, shard bitfield).
    pub data: Bytes,
    /// Files: the size of the whole file below this node.
    pub filesize: Option<u64>,
    /// Files: the size of the content under each link, in link order.
    pub blocksizes: Vec<u64>,
    /// Shards: the hash function.
    pub hash_type: Option<u64>,
    /// Shards: the number of buckets.
    pub fanout: Option<u64>,
    /// UnixFS 1.5: permission bits.
    pub mode: Option<u32>,
    /// UnixFS 1.5: modification time (seconds, nanoseconds).
    pub mtime: Option<(i64, u32)>,
}

/// A dag-pb link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The child.
    pub cid: Cid,
    /// The link's name (UTF-8 in dag-pb; empty when absent).
    pub name: String,
    /// The cumulative size the link claims (informative, never trusted for content).
    pub tsize: Option<u64>,
}

/// A decoded block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A raw leaf: the bytes are file content.
    Raw(Bytes),
    /// A dag-pb node with its UnixFS data.
    Pb {
        /// The links, in order.
        links: Vec<Link>,
        /// The UnixFS data.
        unixfs: UnixfsData,
    },
}

/// Why a block does not decode. The caller names the CID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn bad(why: impl Into<String>) -> DecodeError {
    DecodeError(why.into())
}

impl Node {
    /// Decodes a block of the codec `cid` names (raw or dag-pb; others are refused).
    pub fn decode(cid: &Cid, block: Bytes) -> Result<Node, DecodeError> {
        if block.len() > MAX_BLOCK {
            return Err(bad(format!(
                "{} bytes: larger than the {MAX_BLOCK}-byte block limit",
                block.len()
            )));
        }
        match cid.codec() {
            RAW => Ok(Node::Raw(block)),
            DAG_PB => decode_pb(block),
            c => Err(bad(format!("codec 0x{c:x} is not UnixFS (dag-pb or raw)"))),
        }
    }

    /// The file bytes this node holds itself (all of a raw leaf, a dag-pb node's `Data`).
    pub fn own_data(&self) -> &Bytes {
        match self {
            Node::Raw(b) => b,
            Node::Pb { unixfs, .. } => &unixfs.data,
        }
    }

    /// Rough memory cost, for caches.
    pub fn cost(&self) -> u64 {
        match self {
            Node::Raw(b) => b.len() as u64,
            Node::Pb { links, unixfs } => {
                unixfs.data.len() as u64
                    + links.iter().map(|l| 96 + l.name.len() as u64).sum::<u64>()
                    + 8 * unixfs.blocksizes.len() as u64
                    + 128
            }
        }
    }
}

fn decode_pb(block: Bytes) -> Result<Node, DecodeError> {
    let pb = ipld_dagpb::PbNode::from_bytes(block).map_err(|e| bad(format!("not dag-pb: {e}")))?;
    let data = pb
        .data
        .ok_or_else(|| bad("a dag-pb node without Data is not UnixFS"))?;
    let unixfs = decode_unixfs(&data)?;
    let links: Vec<Link> = pb
        .links
        .into_iter()
        .map(|l| Link {
            cid: l.cid,
            name: l.name.unwrap_or_default(),
            tsize: l.size,
        })
        .collect();
    check(&links, &unixfs)?;
    Ok(Node::Pb { links, unixfs })
}

/// The shape each type must have, so readers can rely on it.
fn check(links: &[Link], u: &UnixfsData) -> Result<(), DecodeError> {
    match u.kind {
        DataType::Raw | DataType::File => {
            if u.blocksizes.len() != links.len() {
                return Err(bad(format!(
                    "file node with {} links but {} blocksizes",
                    links.len(),
                    u.blocksizes.len()
                )));
            }
            let total = u
                .blocksizes
                .iter()
                .try_fold(u.data.len() as u64, |a, &b| a.checked_add(b))
                .ok_or_else(|| bad("file sizes overflow"))?;
            if let Some(fs) = u.filesize
                && fs != total
            {
                return Err(bad(format!(
                    "filesize {fs} but the data and blocksizes add up to {total}"
                )));
            }
            if u.kind == DataType::Raw && !links.is_empty() {
                return Err(bad("a Raw node with links"));
            }
        }
        DataType::Directory => {}
        DataType::Symlink => {
            if !links.is_empty() {
                return Err(bad("a symlink with links"));
            }
        }
        DataType::HamtShard => {
            if u.hash_type != Some(MURMUR3_X64_64) {
                return Err(bad(format!(
                    "HAMT hash {:?} is not murmur3-x64-64 (0x22)",
                    u.hash_type
                )));
            }
            match u.fanout {
                Some(f) if f.is_power_of_two() && (8..=MAX_FANOUT).contains(&f) => {}
                f => {
                    return Err(bad(format!(
                        "HAMT fanout {f:?} is not a power of two from 8 to {MAX_FANOUT}"
                    )));
                }
            }
        }
        DataType::Metadata => {
            return Err(bad("UnixFS Metadata nodes are not supported"));
        }
    }
    Ok(())
}

/// A cursor over protobuf bytes that checks every length against what remains.
struct Pb<'a> {
    b: &'a [u8],
}

impl<'a> Pb<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self
                .b
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.b = rest;
            if i == 9 && byte > 1 {
                return Err(bad("varint longer than 64 bits"));
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| bad("length too large"))?;
        if n > self.b.len() {
            return Err(bad(format!(
                "field of {n} bytes but only {} remain",
                self.b.len()
            )));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        self.take(n)
    }
    /// Skips a field of an unknown number (forward compatibility, as protobuf readers do).
    fn skip(&mut self, wire: u64) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            w => Err(bad(format!("unsupported protobuf wire type {w}"))),
        }
    }
}

fn expect_wire(field: u64, wire: u64, want: u64) -> Result<(), DecodeError> {
    if wire != want {
        return Err(bad(format!(
            "UnixFS field {field} has wire type {wire}, not {want}"
        )));
    }
    Ok(())
}

/// Decodes a UnixFS `Data` message.
pub fn decode_unixfs(buf: &[u8]) -> Result<UnixfsData, DecodeError> {
    let mut r = Pb { b: buf };
    let mut kind = None;
    let mut u = UnixfsData {
        kind: DataType::Raw,
        data: Bytes::new(),
        filesize: None,
        blocksizes: Vec::new(),
        hash_type: None,
        fanout: None,
        mode: None,
        mtime: None,
    };
    while !r.b.is_empty() {
        let key = r.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        match field {
            1 => {
                expect_wire(1, wire, 0)?;
                kind = Some(match r.varint()? {
                    0 => DataType::Raw,
                    1 => DataType::Directory,
                    2 => DataType::File,
                    3 => DataType::Metadata,
                    4 => DataType::Symlink,
                    5 => DataType::HamtShard,
                    t => return Err(bad(format!("unknown UnixFS type {t}"))),
                });
            }
            2 => {
                expect_wire(2, wire, 2)?;
                u.data = Bytes::copy_from_slice(r.bytes()?);
            }
            3 => {
                expect_wire(3, wire, 0)?;
                u.filesize = Some(r.varint()?);
            }
            4 if wire == 0 => u.blocksizes.push(r.varint()?),
            4 if wire == 2 => {
                // Packed: each value takes at least one byte, so the vector is bounded by the
                // input.
                let mut p = Pb { b: r.bytes()? };
                while !p.b.is_empty() {
                    u.blocksizes.push(p.varint()?);
                }
            }
            4 => return Err(bad(format!("UnixFS blocksizes with wire type {wire}"))),
            5 => {
                expect_wire(5, wire, 0)?;
                u.hash_type = Some(r.varint()?);
            }
            6 => {
                expect_wire(6, wire, 0)?;
                u.fanout = Some(r.varint()?);
            }
            7 => {
                expect_wire(7, wire, 0)?;
                u.mode = Some((r.varint()? & 0xffff_ffff) as u32);
            }
            8 => {
                expect_wire(8, wire, 2)?;
                u.mtime = Some(decode_time(r.bytes()?)?);
            }
            _ => r.skip(wire)?,
        }
    }
    u.kind = kind.ok_or_else(|| bad("UnixFS Data without a Type"))?;
    Ok(u)
}

fn decode_time(buf: &[u8]) -> Result<(i64, u32), DecodeError> {
    let mut r = Pb { b: buf };
    let (mut secs, mut nsec) = (None, 0u32);
    while !r.b.is_empty() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => secs = Some(r.varint()? as i64),
            (2, 5) => {
                let b = r.take(4)?;
                nsec = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if nsec >= 1_000_000_000 {
                    return Err(bad(format!("mtime nanoseconds {nsec} out of range")));
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((secs.ok_or_else(|| bad("mtime without Seconds"))?, nsec))
}

/// The HAMT's hash of a name: the first 64 bits of murmur3-x64-128 (seed 0), big-endian, as
/// go-unixfs and js-ipfs compute it.
pub fn hamt_hash(name: &[u8]) -> [u8; 8] {
    let h = murmur3::murmur3_x64_128(&mut std::io::Cursor::new(name), 0)
        .expect("reading from memory cannot fail");
    (h as u64).to_be_bytes()
}

/// Hex digits of a shard link's bucket prefix for a fanout: those of `fanout - 1` (2 for 256).
pub fn prefix_len(fanout: u64) -> usize {
    format!("{:X}", fanout.saturating_sub(1)).len()
}

/// The bucket of `hash` at `depth` of a HAMT with this fanout (bits taken from the most
/// significant end), or `None` once the 64 bits are used up.
pub fn bucket(hash: &[u8; 8], depth: usize, fanout: u64) -> Option<u64> {
    let bits = fanout.trailing_zeros() as usize;
    let start = depth.checked_mul(bits)?;
    if bits == 0 || start + bits > 64 {
        return None;
    }
    let v = u64::from_be_bytes(*hash);
    Some((v << start) >> (64 - bits))
}

/// Encoding, for tests of this crate and its users: builds UnixFS blocks by hand.
pub mod encode {
    use super::DataType;

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
        varint(out, field << 3);
        varint(out, v);
    }

    /// A UnixFS `Data` message.
    #[allow(clippy::too_many_arguments)]
    pub fn unixfs(
        kind: DataType,
        data: &[u8],
        filesize: Option<u64>,
        blocksizes: &[u64],
        fanout: Option<u64>,
        mode: Option<u32>,
        mtime: Option<(i64, u32)>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let t = match kind {
            DataType::Raw => 0,
            DataType::Directory => 1,
            DataType::File => 2,
            DataType::Metadata => 3,
            DataType::Symlink => 4,
            DataType::HamtShard => 5,
        };
        field_varint(&mut out, 1, t);
        if !data.is_empty() {
            field_bytes(&mut out, 2, data);
        }
        if let Some(s) = filesize {
            field_varint(&mut out, 3, s);
        }
        for &b in blocksizes {
            field_varint(&mut out, 4, b);
        }
        if let Some(f) = fanout {
            field_varint(&mut out, 5, super::MURMUR3_X64_64);
            field_varint(&mut out, 6, f);
        }
        if let Some(m) = mode {
            field_varint(&mut out, 7, u64::from(m));
        }
        if let Some((s, n)) = mtime {
            let mut t = Vec::new();
            field_varint(&mut t, 1, s as u64);
            if n != 0 {
                varint(&mut t, 2 << 3 | 5);
                t.extend_from_slice(&n.to_le_bytes());
            }
            field_bytes(&mut out, 8, &t);
        }
        out
    }

    /// A dag-pb node: links (CID, name, tsize) in the order given, then Data, as the
    /// canonical dag-pb form puts them.
    pub fn pb(links: &[(cid::Cid, &str, u64)], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (cid, name, tsize) in links {
            let mut l = Vec::new();
            field_bytes(&mut l, 1, &cid.to_bytes());
            field_bytes(&mut l, 2, name.as_bytes());
            field_varint(&mut l, 3, *tsize);
            field_bytes(&mut out, 2, &l);
        }
        field_bytes(&mut out, 1, data);
        out
    }
}
