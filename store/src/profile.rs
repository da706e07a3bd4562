//! Access profiles: the order in which a ware's nodes and chunks were first read, learned while
//! it was mounted, so a later mount of it can fetch them ahead of the reads (format v1, see
//! docs/FORMAT.md, "Profiles").
//!
//! A profile is a DAG-CBOR node named like every other (CIDv1, dag-cbor, BLAKE3). It holds
//! only CIDs: the ware's own, and the nodes and chunks of that ware in first-read order, each
//! with the number of recent recordings that did not read it. It names no path, so it says
//! nothing about a job beyond the ware itself.
//!
//! Invariants: a decoded profile has passed `validate` (format, CID kinds, bounds, no block
//! twice); [`Profile::merge`] keeps the first-read order of the union and drops what the last
//! [`KEEP_MISSES`] + 1 recordings did not read; no profile encodes to more than
//! [`crate::node::MAX_NODE`] bytes.

use std::collections::{HashMap, HashSet};

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{BLAKE3, DAG_CBOR, NodeId, RAW};
use crate::node::{MAX_NODE, encode};

pub mod set;
pub use set::ProfileSet;

/// The format name carried by every profile.
pub const PROFILE_V1: &str = "warefs-profile/1";
/// A profile lists at most this many blocks (about 40 bytes each: well under a node's limit).
pub const PROFILE_MAX_BLOCKS: usize = 20_000;
/// A block not read by this many recordings in a row is still kept; one more miss drops it.
pub const KEEP_MISSES: u8 = 2;

/// One block of a profile: its CID (a node's dag-cbor or a chunk's raw CID) and how many of the
/// latest recordings did not read it (0: the last one did).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileBlock(pub Cid, pub u8);

/// A learned access profile of one ware.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Always [`PROFILE_V1`].
    #[serde(rename = "format")]
    pub format: String,
    /// The ware whose reads these are.
    #[serde(rename = "ware")]
    pub ware: Cid,
    /// How many recordings went into it.
    #[serde(rename = "runs")]
    pub runs: u64,
    /// The ware's nodes and chunks, in first-read order.
    #[serde(rename = "blocks")]
    pub blocks: Vec<ProfileBlock>,
}

/// What a block of a profile is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// A node of the ware (dag-cbor).
    Node,
    /// A chunk of a file (raw).
    Chunk,
}

/// Whether a CID can be a block of a profile, and which kind.
pub fn block_kind(cid: &Cid) -> Option<BlockKind> {
    let mh = cid.hash();
    if cid.version() != cid::Version::V1 || mh.code() != BLAKE3 || mh.digest().len() != 32 {
        return None;
    }
    match cid.codec() {
        DAG_CBOR => Some(BlockKind::Node),
        RAW => Some(BlockKind::Chunk),
        _ => None,
    }
}

impl Profile {
    /// A profile of one recording: `reads` in the order they were first read (repeats are
    /// dropped, the list is cut at [`PROFILE_MAX_BLOCKS`]).
    pub fn first(ware: Cid, reads: &[Cid]) -> Profile {
        let mut seen = HashSet::new();
        let blocks = reads
            .iter()
            .filter(|c| seen.insert(**c))
            .take(PROFILE_MAX_BLOCKS)
            .map(|c| ProfileBlock(*c, 0))
            .collect();
        Profile {
            format: PROFILE_V1.into(),
            ware,
            runs: 1,
            blocks,
        }
    }

    /// This profile after one more recording that read `reads` (in first-read order): what was
    /// read counts as read now; what it did not read ages by one and goes once it has missed
    /// more than [`KEEP_MISSES`] recordings; what is new goes right after the block the
    /// recording read before it, so the union keeps the order of first reads.
    pub fn merge(&self, reads: &[Cid]) -> Profile {
        let now: HashSet<Cid> = reads.iter().copied().collect();
        let known: HashSet<Cid> = self.blocks.iter().map(|b| b.0).collect();
        // New blocks, grouped after the last known block read before them (None: at the head).
        let mut after: HashMap<Option<Cid>, Vec<Cid>> = HashMap::new();
        let mut last_known = None;
        let mut placed = HashSet::new();
        for c in reads {
            if known.contains(c) {
                last_known = Some(*c);
            } else if placed.insert(*c) {
                after.entry(last_known).or_default().push(*c);
            }
        }
        let mut blocks = Vec::with_capacity(self.blocks.len() + placed.len());
        let fresh = |v: Option<&Vec<Cid>>, out: &mut Vec<ProfileBlock>| {
            out.extend(v.into_iter().flatten().map(|c| ProfileBlock(*c, 0)));
        };
        fresh(after.get(&None), &mut blocks);
        for b in &self.blocks {
            let misses = if now.contains(&b.0) {
                0
            } else {
                b.1.saturating_add(1)
            };
            if misses <= KEEP_MISSES {
                blocks.push(ProfileBlock(b.0, misses));
            }
            fresh(after.get(&Some(b.0)), &mut blocks);
        }
        blocks.truncate(PROFILE_MAX_BLOCKS);
        Profile {
            format: PROFILE_V1.into(),
            ware: self.ware,
            runs: self.runs.saturating_add(1),
            blocks,
        }
    }

    /// The profile's DAG-CBOR bytes and its CID.
    pub fn encode(&self) -> (NodeId, Vec<u8>) {
        let bytes = encode(self);
        (NodeId::of(&bytes), bytes)
    }

    /// Decodes and checks a profile; `what` names it in errors (its key or CID).
    pub fn decode(what: &str, bytes: &[u8]) -> Result<Profile> {
        let bad = |why: String| Error::bad_input(format!("profile {what}"), why);
        if bytes.len() > MAX_NODE {
            return Err(bad(format!("{} bytes, more than {MAX_NODE}", bytes.len())));
        }
        let p: Profile = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| bad(format!("does not decode: {e}")))?;
        p.validate().map_err(bad)?;
        Ok(p)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.format != PROFILE_V1 {
            return Err(format!(
                "format {:?}; this ware reads {PROFILE_V1}",
                self.format
            ));
        }
        if block_kind(&self.ware) != Some(BlockKind::Node) {
            return Err(format!("{} is not a ware ID", self.ware));
        }
        if self.blocks.len() > PROFILE_MAX_BLOCKS {
            return Err(format!(
                "{} blocks, more than {PROFILE_MAX_BLOCKS}",
                self.blocks.len()
            ));
        }
        let mut seen = HashSet::new();
        for b in &self.blocks {
            if block_kind(&b.0).is_none() {
                return Err(format!("{} is neither a node nor a chunk of a ware", b.0));
            }
            if b.1 > KEEP_MISSES {
                return Err(format!(
                    "{} missed {} recordings, over {KEEP_MISSES}",
                    b.0, b.1
                ));
            }
            if !seen.insert(b.0) {
                return Err(format!("{} is listed twice", b.0));
            }
        }
        Ok(())
    }
}

/// Checks a profile key: `ware:<ware id>`, or `run:<formula id>:<absolute input path>`.
pub fn check_key(key: &str) -> Result<()> {
    // A key comes from the command line: a bad one is a usage error (exit 2) naming it.
    let bad = |why: &str| Err(Error::bad_name(key, format!("not a profile key: {why}")));
    if key.len() > 4096 {
        return bad("longer than 4096 bytes");
    }
    if let Some(id) = key.strip_prefix("ware:") {
        return match id.parse::<NodeId>() {
            Ok(_) => Ok(()),
            Err(_) => bad("after 'ware:' comes a ware ID"),
        };
    }
    if let Some(rest) = key.strip_prefix("run:") {
        let Some((formula, path)) = rest.split_once(':') else {
            return bad("a run key is run:<formula id>:<path>");
        };
        if formula.parse::<NodeId>().is_err() {
            return bad("after 'run:' comes a formula ID");
        }
        if !path.starts_with('/') || path.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return bad("a run key ends with the input's absolute path");
        }
        return Ok(());
    }
    bad("a profile key is ware:<id> or run:<formula id>:<path>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;

    fn c(n: u8) -> Cid {
        ChunkId::of(&[n]).to_cid()
    }

    fn ware() -> Cid {
        NodeId::of(b"ware").0
    }

    fn order(p: &Profile) -> Vec<(Cid, u8)> {
        p.blocks.iter().map(|b| (b.0, b.1)).collect()
    }

    #[test]
    fn first_keeps_first_reads_in_order() {
        let p = Profile::first(ware(), &[c(3), c(1), c(3), c(2), c(1)]);
        assert_eq!(order(&p), vec![(c(3), 0), (c(1), 0), (c(2), 0)]);
        assert_eq!(p.runs, 1);
    }

    #[test]
    fn merge_keeps_the_union_in_first_read_order_and_ages_what_was_not_read() {
        let p = Profile::first(ware(), &[c(1), c(2), c(3)]);
        // Reads 2, then a new 9, then 3; 1 is not read.
        let q = p.merge(&[c(2), c(9), c(3)]);
        assert_eq!(order(&q), vec![(c(1), 1), (c(2), 0), (c(9), 0), (c(3), 0)]);
        // New before anything known goes first.
        let r = q.merge(&[c(7), c(2)]);
        assert_eq!(
            order(&r),
            vec![(c(7), 0), (c(1), 2), (c(2), 0), (c(9), 1), (c(3), 1)]
        );
        // 1 has now missed three recordings: gone.
        let s = r.merge(&[c(2)]);
        assert!(!s.blocks.iter().any(|b| b.0 == c(1)));
        assert_eq!(s.runs, 4);
    }

    #[test]
    fn profiles_round_trip_and_bad_ones_are_refused() {
        let p = Profile::first(ware(), &[c(1), NodeId::of(b"dir").0]);
        let (id, bytes) = p.encode();
        assert_eq!(Profile::decode("x", &bytes).unwrap(), p);
        assert_eq!(NodeId::of(&bytes), id);
        let mut twice = p.clone();
        twice.blocks.push(twice.blocks[0].clone());
        let err = Profile::decode("x", &encode(&twice))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
        let mut other = p.clone();
        other.format = "warefs-profile/9".into();
        assert!(Profile::decode("x", &encode(&other)).is_err());
        let mut notware = p.clone();
        notware.ware = c(1);
        assert!(Profile::decode("x", &encode(&notware)).is_err());
        assert!(Profile::decode("x", b"\xa0garbage").is_err());
    }

    #[test]
    fn keys_are_checked() {
        let w = NodeId::of(b"ware");
        check_key(&format!("ware:{w}")).unwrap();
        check_key(&format!("run:{w}:/")).unwrap();
        check_key(&format!("run:{w}:/data/in")).unwrap();
        for k in ["", "ware:", "ware:nope", "run:x:/", "ware", "name:x"] {
            assert!(check_key(k).is_err(), "{k}");
        }
        assert!(check_key(&format!("run:{w}:relative")).is_err());
        assert!(check_key(&format!("run:{w}")).is_err());
    }
}
