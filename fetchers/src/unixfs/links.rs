//! What a UnixFS node's links mean: a HAMT shard's link (a sub-shard or an entry), a file's
//! size and the bytes of it a range covers, a directory entry as a ware `Entry`.

use cid::Cid;
use ware_store::Result;
use ware_store::node::{Entry, Kind, TARGET_MAX};

use super::corrupt;
use super::decode::{self, DataType, Link, Node};

pub(super) enum ShardLink<'a> {
    Sub,
    Entry(&'a [u8]),
}

/// What a HAMT link is: a sub-shard (its name is just the bucket prefix) or an entry (prefix
/// then the entry's name).
pub(super) fn shard_link<'a>(cid: &Cid, l: &'a Link, fanout: u64) -> Result<ShardLink<'a>> {
    let plen = decode::prefix_len(fanout);
    let name = l.name.as_bytes();
    if name.len() < plen || !name[..plen].iter().all(u8::is_ascii_hexdigit) {
        return Err(corrupt(
            cid,
            format!("HAMT link name {:?} has no bucket prefix", l.name),
        ));
    }
    Ok(if name.len() == plen {
        ShardLink::Sub
    } else {
        ShardLink::Entry(&name[plen..])
    })
}

pub(super) fn copy_overlap(data: &[u8], start: u64, from: u64, to: u64, out: &mut Vec<u8>) {
    let end = start + data.len() as u64;
    let (a, b) = (from.max(start), to.min(end));
    if a < b {
        out.extend_from_slice(&data[(a - start) as usize..(b - start) as usize]);
    }
}

/// A file node's size: its own data and its children's (checked to add up when decoded).
pub(super) fn file_size(u: &decode::UnixfsData) -> u64 {
    u.blocksizes
        .iter()
        .fold(u.data.len() as u64, |a, &b| a.saturating_add(b))
}

/// The entry of a decoded node under `name`.
pub(super) fn entry_of(name: &[u8], cid: &Cid, node: &Node) -> Result<Entry> {
    let (kind, u) = match node {
        Node::Raw(b) => {
            let mut e = Entry::new(name.to_vec(), Kind::File);
            e.mode = 0o644;
            e.size = b.len() as u64;
            e.file = Some(*cid);
            return Ok(e);
        }
        Node::Pb { unixfs, .. } => (unixfs.kind, unixfs),
    };
    let mut e = match kind {
        DataType::File | DataType::Raw => {
            let mut e = Entry::new(name.to_vec(), Kind::File);
            e.mode = 0o644;
            e.size = file_size(u);
            e.file = Some(*cid);
            e
        }
        DataType::Directory | DataType::HamtShard => {
            let mut e = Entry::new(name.to_vec(), Kind::Dir);
            e.mode = 0o755;
            e.dir = Some(*cid);
            e
        }
        DataType::Symlink => {
            let t = &u.data;
            if t.is_empty() || t.len() > TARGET_MAX || t.contains(&0) {
                return Err(corrupt(
                    cid,
                    "symlink target empty, too long or holding NUL",
                ));
            }
            let mut e = Entry::new(name.to_vec(), Kind::Symlink);
            e.mode = 0o777;
            e.target = Some(serde_bytes::ByteBuf::from(t.to_vec()));
            e
        }
        DataType::Metadata => return Err(corrupt(cid, "UnixFS Metadata nodes are not supported")),
    };
    if let Some(m) = u.mode {
        e.mode = m & 0o7777;
    }
    if let Some((s, n)) = u.mtime {
        e.mtime = s;
        e.mtime_nsec = n;
    }
    Ok(e)
}
