//! Nodes: the DAG-CBOR blocks that describe a ware's tree (format v1, see docs/FORMAT.md).
//!
//! - [`RootNode`]: the ware itself: the format name and the root directory's [`Entry`].
//! - [`DirNode`]: a directory's entries sorted by name bytes, or, when they would make a node
//!   larger than [`NODE_TARGET`], an index of parts (each a `DirNode`) by first name.
//! - [`FileNode`]: a large file's chunk list, or an index of parts (each a `FileNode`).
//!
//! Invariants: every node decoded here has been checked by `validate` (names are single path
//! components, kinds carry exactly their fields, sizes add up, lists are sorted), so a reader
//! can trust the shape of what it walks; nothing decodes a block larger than [`MAX_NODE`].

use cid::Cid;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::chunk::MAX_CHUNK;
use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId};

/// The format name carried by every root node.
pub const FORMAT_V1: &str = "warefs/1";
/// Files of at most this many bytes live inside their directory entry.
pub const INLINE_MAX: usize = 4096;
/// A file entry lists at most this many chunks itself; longer lists go to [`FileNode`]s.
pub const ENTRY_CHUNKS_MAX: usize = 64;
/// A [`FileNode`] holds at most this many chunk references or parts.
pub const FILE_NODE_FANOUT: usize = 4096;
/// Directory nodes are filled up to this many encoded bytes of entries (or parts).
pub const NODE_TARGET: usize = 256 * 1024;
/// No node larger than this is ever decoded or written.
pub const MAX_NODE: usize = 1024 * 1024;
/// Longest name of a directory entry (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Longest symlink target.
pub const TARGET_MAX: usize = 4095;
/// Largest total of xattr names and values on one entry (Linux XATTR_LIST_MAX-like bound).
pub const XATTRS_MAX: usize = 64 * 1024;
/// Deepest directory nesting a ware may have.
pub const MAX_DEPTH: usize = 4096;
/// The normalised mtime (2010-01-01T00:00:00Z, as repeatr uses) given to every entry by default.
pub const NORMALISED_MTIME: i64 = 1_262_304_000;

/// The kind of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe (only when packing was asked to keep devices).
    Fifo,
    /// A character device (only when asked for).
    CharDevice,
    /// A block device (only when asked for).
    BlockDevice,
}

impl From<Kind> for u8 {
    fn from(k: Kind) -> u8 {
        match k {
            Kind::File => 0,
            Kind::Dir => 1,
            Kind::Symlink => 2,
            Kind::Fifo => 3,
            Kind::CharDevice => 4,
            Kind::BlockDevice => 5,
        }
    }
}

impl TryFrom<u8> for Kind {
    type Error = String;
    fn try_from(v: u8) -> Result<Kind, String> {
        Ok(match v {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink,
            3 => Kind::Fifo,
            4 => Kind::CharDevice,
            5 => Kind::BlockDevice,
            _ => return Err(format!("unknown entry kind {v}")),
        })
    }
}

impl Kind {
    /// The name used in listings and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::CharDevice => "char",
            Kind::BlockDevice => "block",
        }
    }

    /// The `ls -l` type letter.
    pub fn letter(self) -> char {
        match self {
            Kind::File => '-',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Fifo => 'p',
            Kind::CharDevice => 'c',
            Kind::BlockDevice => 'b',
        }
    }
}

/// A reference to one chunk of a file: its CID (raw, BLAKE3) and its length in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef(pub Cid, pub u32);

impl ChunkRef {
    /// Makes a reference from a chunk ID and length.
    pub fn new(id: ChunkId, len: u32) -> Self {
        ChunkRef(id.to_cid(), len)
    }
    /// The chunk's ID (validated nodes only hold raw BLAKE3 CIDs).
    pub fn id(&self) -> Result<ChunkId> {
        ChunkId::from_cid(&self.0)
    }
    /// Length of the chunk in bytes.
    #[allow(clippy::len_without_is_empty)] // a chunk is never empty (validated)
    pub fn len(&self) -> u64 {
        u64::from(self.1)
    }
}

/// One entry of a directory (or the root of a ware, with an empty name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The name: any bytes but `/` and NUL, not `.` or `..`, at most [`NAME_MAX`].
    #[serde(rename = "n")]
    pub name: ByteBuf,
    /// What kind of entry this is.
    #[serde(rename = "k")]
    pub kind: Kind,
    /// Permission bits, setuid/setgid/sticky included (`mode & 0o7777`).
    #[serde(rename = "m")]
    pub mode: u32,
    /// Owner.
    #[serde(rename = "u")]
    pub uid: u32,
    /// Group.
    #[serde(rename = "g")]
    pub gid: u32,
    /// Modification time, seconds since the epoch ([`NORMALISED_MTIME`] unless kept).
    #[serde(rename = "t")]
    pub mtime: i64,
    /// Nanoseconds of the modification time (absent when 0).
    #[serde(rename = "tn", default, skip_serializing_if = "is_zero_u32")]
    pub mtime_nsec: u32,
    /// Files: the content size in bytes (absent when 0).
    #[serde(rename = "s", default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    /// Files of at most [`INLINE_MAX`] bytes: the content itself.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<ByteBuf>,
    /// Files of up to [`ENTRY_CHUNKS_MAX`] chunks: the chunk list.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// Files of more chunks: the [`FileNode`] listing them.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Cid>,
    /// Directories: the [`DirNode`] of its entries.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Cid>,
    /// Symlinks: the target, verbatim.
    #[serde(rename = "y", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ByteBuf>,
    /// Devices: (major, minor).
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes: (name, value) pairs sorted by name bytes.
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(ByteBuf, ByteBuf)>,
    /// Regular files with more than one name in the ware: the hardlink group, numbered from 1
    /// in depth-first, name-sorted order of first appearance.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<u64>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

impl Entry {
    /// A blank entry of a kind; callers fill in the rest.
    pub fn new(name: Vec<u8>, kind: Kind) -> Self {
        Entry {
            name: ByteBuf::from(name),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: NORMALISED_MTIME,
            mtime_nsec: 0,
            size: 0,
            inline: None,
            chunks: Vec::new(),
            file: None,
            dir: None,
            target: None,
            rdev: None,
            xattrs: Vec::new(),
            hardlink: None,
        }
    }

    /// The name, shown lossily as UTF-8.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The directory node of a directory entry.
    pub fn dir_id(&self) -> Result<NodeId> {
        match self.dir {
            Some(c) => NodeId::from_cid(c),
            None => Err(Error::Malformed(format!(
                "{}: directory entry without a node",
                self.display_name()
            ))),
        }
    }

    /// Checks the entry's shape; `root` allows the empty name the root entry has.
    pub fn validate(&self, root: bool) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Malformed(format!(
                "entry {:?}: {why}",
                self.display_name()
            )))
        };
        if root {
            if !self.name.is_empty() || self.kind != Kind::Dir {
                return bad("the root entry must be an unnamed directory".into());
            }
        } else if let Err(why) = check_name(&self.name) {
            return bad(why);
        }
        if self.mode & !0o7777 != 0 {
            return bad(format!("mode {:o} has bits beyond 07777", self.mode));
        }
        if self.mtime_nsec >= 1_000_000_000 {
            return bad("mtime nanoseconds out of range".into());
        }
        let xattr_bytes: usize = self.xattrs.iter().map(|(n, v)| n.len() + v.len()).sum();
        if xattr_bytes > XATTRS_MAX {
            return bad(format!(
                "xattrs total {xattr_bytes} bytes, more than {XATTRS_MAX}"
            ));
        }
        if !self.xattrs.windows(2).all(|w| w[0].0 < w[1].0) {
            return bad("xattrs not sorted or duplicated".into());
        }
        if self
            .xattrs
            .iter()
            .any(|(n, _)| n.is_empty() || n.len() > 255 || n.contains(&0))
        {
            return bad("bad xattr name".into());
        }
        let is_file = self.kind == Kind::File;
        if !is_file
            && (self.size != 0
                || self.inline.is_some()
                || !self.chunks.is_empty()
                || self.file.is_some()
                || self.hardlink.is_some())
        {
            return bad("file content on a non-file".into());
        }
        if (self.kind == Kind::Dir) != self.dir.is_some() {
            return bad("directory node link present iff the entry is a directory".into());
        }
        if (self.kind == Kind::Symlink) != self.target.is_some() {
            return bad("symlink target present iff the entry is a symlink".into());
        }
        let is_dev = matches!(self.kind, Kind::CharDevice | Kind::BlockDevice);
        if is_dev != self.rdev.is_some() {
            return bad("device numbers present iff the entry is a device".into());
        }
        if let Some(t) = &self.target
            && (t.is_empty() || t.len() > TARGET_MAX || t.contains(&0))
        {
            return bad("symlink target empty, too long or with NUL".into());
        }
        if let Some(d) = self.dir {
            NodeId::from_cid(d)?;
        }
        if is_file {
            let forms = usize::from(self.inline.is_some())
                + usize::from(!self.chunks.is_empty())
                + usize::from(self.file.is_some());
            if forms > 1 {
                return bad("more than one form of file content".into());
            }
            if let Some(d) = &self.inline
                && (d.len() as u64 != self.size || d.len() > INLINE_MAX)
            {
                return bad("inline content does not match the size".into());
            }
            if !self.chunks.is_empty() {
                if self.chunks.len() > ENTRY_CHUNKS_MAX {
                    return bad("too many chunks listed in the entry".into());
                }
                if chunk_total(&self.chunks)? != self.size {
                    return bad("chunk lengths do not add up to the size".into());
                }
            }
            if let Some(f) = self.file {
                NodeId::from_cid(f)?;
            }
            if forms == 0 && self.size != 0 {
                return bad("non-empty file without content".into());
            }
            if self.hardlink == Some(0) {
                return bad("hardlink group 0".into());
            }
        }
        Ok(())
    }
}

/// Checks a name: a single path component.
pub fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() {
        Err("empty name".into())
    } else if name == b"." || name == b".." {
        Err("name is . or ..".into())
    } else if name.len() > NAME_MAX {
        Err(format!("name longer than {NAME_MAX} bytes"))
    } else if name.contains(&b'/') || name.contains(&0) {
        Err("name contains / or NUL".into())
    } else {
        Ok(())
    }
}

fn chunk_total(chunks: &[ChunkRef]) -> Result<u64> {
    let mut total = 0u64;
    for c in chunks {
        c.id()?;
        if c.1 == 0 || c.1 as usize > MAX_CHUNK {
            return Err(Error::Malformed(format!(
                "chunk {} has length {}",
                c.0, c.1
            )));
        }
        total += c.len();
    }
    Ok(total)
}

/// The root node: what a ware ID names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootNode {
    /// Always [`FORMAT_V1`].
    #[serde(rename = "v")]
    pub format: String,
    /// The root directory's entry (empty name).
    #[serde(rename = "r")]
    pub root: Entry,
}

/// One part of a split directory: the first name in it, its node, and how many entries it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPart(pub ByteBuf, pub Cid, pub u64);

/// A directory's entries, or the index of its parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirNode {
    /// Entries, strictly sorted by name bytes.
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Entry>,
    /// Parts, strictly sorted by first name.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<DirPart>,
}

/// One part of a split file: its node and how many bytes it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePart(pub Cid, pub u64);

/// A large file's chunk list, or the index of its parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNode {
    /// Chunks in file order.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// Parts in file order.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<FilePart>,
}

/// Encodes any node as DAG-CBOR.
pub fn encode<T: Serialize>(node: &T) -> Vec<u8> {
    // Serialising plain structs of bytes, integers and CIDs into a Vec cannot fail.
    serde_ipld_dagcbor::to_vec(node).expect("encoding a node into memory cannot fail")
}

fn decode<T: for<'de> Deserialize<'de>>(id: &NodeId, bytes: &[u8]) -> Result<T> {
    if bytes.len() > MAX_NODE {
        return Err(corrupt(
            id,
            format!("{} bytes, more than {MAX_NODE}", bytes.len()),
        ));
    }
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| corrupt(id, format!("does not decode: {e}")))
}

fn corrupt(id: &NodeId, why: String) -> Error {
    Error::CorruptNode { id: *id, why }
}

fn with_id<T>(id: &NodeId, r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        Error::Malformed(why) | Error::BadId(why) => corrupt(id, why),
        other => other,
    })
}

impl RootNode {
    /// Decodes and validates a root node. Verified bytes that are a valid directory or file
    /// node instead are [`Error::NotAWare`], not corruption: the ID names a part of a ware.
    pub fn decode(id: &NodeId, bytes: &[u8]) -> Result<Self> {
        let n: RootNode = match decode(id, bytes) {
            Ok(n) => n,
            Err(e) => {
                // Only bytes that are exactly a canonical directory or file node count (any CBOR
                // map would decode as an empty directory node otherwise).
                if DirNode::decode(id, bytes).is_ok_and(|d| encode(&d) == bytes) {
                    return Err(Error::NotAWare {
                        id: *id,
                        kind: "directory",
                    });
                }
                if FileNode::decode(id, bytes).is_ok_and(|f| encode(&f) == bytes) {
                    return Err(Error::NotAWare {
                        id: *id,
                        kind: "file",
                    });
                }
                return Err(e);
            }
        };
        if n.format != FORMAT_V1 {
            return Err(corrupt(
                id,
                format!(
                    "unknown format {:?} (this ware reads {FORMAT_V1})",
                    n.format
                ),
            ));
        }
        with_id(id, n.root.validate(true))?;
        Ok(n)
    }
}

impl DirNode {
    /// Decodes and validates a directory node.
    pub fn decode(id: &NodeId, bytes: &[u8]) -> Result<Self> {
        let n: DirNode = decode(id, bytes)?;
        if !n.entries.is_empty() && !n.parts.is_empty() {
            return Err(corrupt(id, "both entries and parts".into()));
        }
        for e in &n.entries {
            with_id(id, e.validate(false))?;
        }
        if !n.entries.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(corrupt(id, "entries not strictly sorted by name".into()));
        }
        if !n.parts.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(corrupt(id, "parts not strictly sorted".into()));
        }
        for p in &n.parts {
            with_id(id, NodeId::from_cid(p.1).map(|_| ()))?;
            if p.2 == 0 {
                return Err(corrupt(id, "empty part".into()));
            }
        }
        Ok(n)
    }
}

impl FileNode {
    /// Decodes and validates a file node.
    pub fn decode(id: &NodeId, bytes: &[u8]) -> Result<Self> {
        let n: FileNode = decode(id, bytes)?;
        if n.chunks.is_empty() == n.parts.is_empty() {
            return Err(corrupt(
                id,
                "a file node holds either chunks or parts".into(),
            ));
        }
        if n.chunks.len() > FILE_NODE_FANOUT || n.parts.len() > FILE_NODE_FANOUT {
            return Err(corrupt(id, "more than the fan-out".into()));
        }
        with_id(id, chunk_total(&n.chunks).map(|_| ()))?;
        for p in &n.parts {
            with_id(id, NodeId::from_cid(p.0).map(|_| ()))?;
        }
        Ok(n)
    }

    /// Bytes covered by this node.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(ChunkRef::len).sum::<u64>()
            + self.parts.iter().map(|p| p.1).sum::<u64>()
    }
}

#[cfg(test)]
mod tests;
