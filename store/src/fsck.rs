//! `fsck`: re-hash every chunk and node in the store, then walk every ware the store claims to
//! hold, and tell apart what is corrupt (bytes that do not match their hash, or a recorded-
//! complete ware missing a piece) from what is merely not fetched yet (a partly cached ware).

use std::collections::HashSet;

use rocksdb::IteratorMode;

use crate::chunk::decode_chunk;
use crate::db::{CF_BLOCKS, CF_CHUNK_META, CF_CHUNKS, CF_NODES, Store, parse_chunk_meta};
use crate::error::{Error, Result};
use crate::id::{ChunkId, NodeId};
use crate::node::{DirNode, Entry, FileNode, RootNode};
use crate::pack::Progress;
use crate::source::BlockSource;
use crate::tree::MAX_INDEX_DEPTH;

/// What `fsck` found.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FsckReport {
    /// Chunks re-hashed.
    pub chunks_checked: u64,
    /// Nodes re-hashed.
    pub nodes_checked: u64,
    /// Foreign (IPFS) blocks re-hashed: a cache of lazily mounted IPFS content, which no ware
    /// names.
    #[serde(default)]
    pub blocks_checked: u64,
    /// Complete wares walked.
    pub wares_checked: u64,
    /// Partly cached wares walked.
    pub partial_wares_checked: u64,
    /// Corrupt objects: "chunk <cid>: …" or "node <cid>: …".
    pub corrupt: Vec<String>,
    /// Pieces a complete ware names but the store lacks: "<what> <cid> (ware <id>)".
    pub missing: Vec<String>,
    /// Pieces of partly cached wares not fetched yet.
    pub not_yet_fetched: u64,
    /// Objects no ware names (left by an interrupted pack; `gc` will remove them).
    pub unreferenced: u64,
    /// Damage the database itself reported (a file whose checksum fails, …).
    pub database_errors: Vec<String>,
}

impl FsckReport {
    /// True when nothing is corrupt or missing.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.database_errors.is_empty()
    }
}

/// How many problems of one kind are listed before the rest are only counted.
const LIST_MAX: usize = 1000;

fn push_limited(v: &mut Vec<String>, s: String) {
    if v.len() < LIST_MAX {
        v.push(s);
    }
}

/// Checks the whole store.
pub fn fsck(store: &Store, progress: &dyn Progress) -> Result<FsckReport> {
    // Walking a ware recurses once per directory level: use a stack sized for the deepest.
    crate::pack::with_big_stack(|| check(store, progress))
}

fn check(store: &Store, progress: &dyn Progress) -> Result<FsckReport> {
    let mut r = FsckReport::default();
    let mut bad_nodes = HashSet::new();
    let mut all_chunks = HashSet::new();
    let mut all_nodes = HashSet::new();

    let total: u64 = store
        .db
        .iterator_cf(store.cf(CF_CHUNK_META), IteratorMode::Start)
        .filter_map(|i| i.ok())
        .filter_map(|(_, v)| parse_chunk_meta(&v).map(|m| u64::from(m.1)))
        .sum();
    progress.total(total);
    for item in store
        .db
        .iterator_cf(store.cf(CF_CHUNKS), IteratorMode::Start)
    {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                r.database_errors
                    .push(format!("chunks: {}", e.into_string()));
                break;
            }
        };
        progress.advance(v.len() as u64);
        r.chunks_checked += 1;
        let Ok(raw) = <[u8; 32]>::try_from(&k[..]) else {
            push_limited(&mut r.corrupt, format!("chunk key of {} bytes", k.len()));
            continue;
        };
        let id = ChunkId(raw);
        all_chunks.insert(id);
        if let Err(e) = decode_chunk(id, &v) {
            push_limited(&mut r.corrupt, e.to_string());
        }
    }
    for item in store
        .db
        .iterator_cf(store.cf(CF_CHUNK_META), IteratorMode::Start)
    {
        match item {
            Ok((k, _)) => {
                if let Ok(raw) = <[u8; 32]>::try_from(&k[..])
                    && !all_chunks.contains(&ChunkId(raw))
                {
                    push_limited(
                        &mut r.corrupt,
                        format!("chunk {}: metadata without data", ChunkId(raw)),
                    );
                }
            }
            Err(e) => {
                r.database_errors
                    .push(format!("chunk_meta: {}", e.into_string()));
                break;
            }
        }
    }
    for item in store
        .db
        .iterator_cf(store.cf(CF_NODES), IteratorMode::Start)
    {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                r.database_errors
                    .push(format!("nodes: {}", e.into_string()));
                break;
            }
        };
        r.nodes_checked += 1;
        match NodeId::from_bytes(&k) {
            Ok(id) => {
                all_nodes.insert(id);
                if !id.matches(&v) {
                    bad_nodes.insert(id);
                    push_limited(
                        &mut r.corrupt,
                        format!("node {id} is corrupt: its bytes do not match its hash"),
                    );
                }
            }
            Err(e) => push_limited(&mut r.corrupt, format!("node key: {e}")),
        }
    }

    for item in store
        .db
        .iterator_cf(store.cf(CF_BLOCKS), IteratorMode::Start)
    {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                r.database_errors
                    .push(format!("blocks: {}", e.into_string()));
                break;
            }
        };
        r.blocks_checked += 1;
        match multihash::Multihash::<64>::from_bytes(&k) {
            Ok(mh) => {
                let cid = cid::Cid::new_v1(crate::id::RAW, mh);
                if let Err(e) = crate::verify::verify_block(&cid, &v) {
                    push_limited(&mut r.corrupt, e.to_string());
                }
            }
            Err(e) => push_limited(&mut r.corrupt, format!("block key: {e}")),
        }
    }

    let mut walk = Walk {
        store,
        seen_nodes: HashSet::new(),
        seen_chunks: HashSet::new(),
        all_chunks: &all_chunks,
        bad_nodes: &bad_nodes,
        corrupt: Vec::new(),
    };
    for (ware, _) in store.wares()? {
        r.wares_checked += 1;
        let mut missing = Vec::new();
        walk.ware(&ware, &mut missing);
        for m in missing {
            push_limited(&mut r.missing, format!("{m} (ware {ware})"));
        }
    }
    for ware in store.partial_wares()? {
        r.partial_wares_checked += 1;
        let mut missing = Vec::new();
        walk.ware(&ware, &mut missing);
        r.not_yet_fetched += missing.len() as u64;
    }
    for c in std::mem::take(&mut walk.corrupt) {
        push_limited(&mut r.corrupt, c);
    }
    let referenced_chunks = walk.seen_chunks.len() as u64;
    let referenced_nodes = walk.seen_nodes.len() as u64;
    r.unreferenced = (all_chunks.len() as u64).saturating_sub(referenced_chunks)
        + (all_nodes.len() as u64).saturating_sub(referenced_nodes);
    Ok(r)
}

struct Walk<'a> {
    store: &'a Store,
    seen_nodes: HashSet<NodeId>,
    seen_chunks: HashSet<ChunkId>,
    all_chunks: &'a HashSet<ChunkId>,
    bad_nodes: &'a HashSet<NodeId>,
    /// Nodes whose bytes match their hash but do not decode as the node expected there.
    corrupt: Vec<String>,
}

impl Walk<'_> {
    fn ware(&mut self, ware: &NodeId, missing: &mut Vec<String>) {
        if let Some(root) = self.node(ware, missing, |id, b| {
            RootNode::decode(id, b).map(|n| n.root)
        }) {
            self.entry(&root, missing);
        }
    }

    /// Loads and decodes a node once; absent or undecodable nodes go to `missing`, corrupt
    /// ones were already reported by the scan.
    fn node<T>(
        &mut self,
        id: &NodeId,
        missing: &mut Vec<String>,
        decode: impl Fn(&NodeId, &[u8]) -> Result<T>,
    ) -> Option<T> {
        if !self.seen_nodes.insert(*id) || self.bad_nodes.contains(id) {
            return None;
        }
        match self.store.node(id) {
            Ok(bytes) => match decode(id, &bytes) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.corrupt.push(e.to_string());
                    None
                }
            },
            Err(Error::NotFound { .. }) => {
                missing.push(format!("node {id}"));
                None
            }
            Err(e) => {
                missing.push(e.to_string());
                None
            }
        }
    }

    fn chunk(&mut self, id: ChunkId, missing: &mut Vec<String>) {
        if self.seen_chunks.insert(id) && !self.all_chunks.contains(&id) {
            missing.push(format!("chunk {id}"));
        }
    }

    fn entry(&mut self, e: &Entry, missing: &mut Vec<String>) {
        for c in &e.chunks {
            if let Ok(id) = c.id() {
                self.chunk(id, missing);
            }
        }
        if let Some(f) = e.file.and_then(|c| NodeId::from_cid(c).ok()) {
            self.file(&f, missing, 0);
        }
        if let Some(d) = e.dir.and_then(|c| NodeId::from_cid(c).ok()) {
            self.dir(&d, missing, 0);
        }
    }

    fn file(&mut self, id: &NodeId, missing: &mut Vec<String>, depth: usize) {
        if depth > MAX_INDEX_DEPTH {
            self.corrupt
                .push(format!("node {id}: index nodes nested too deep"));
            return;
        }
        if let Some(n) = self.node(id, missing, FileNode::decode) {
            for c in &n.chunks {
                if let Ok(cid) = c.id() {
                    self.chunk(cid, missing);
                }
            }
            for p in &n.parts {
                if let Ok(pid) = NodeId::from_cid(p.0) {
                    self.file(&pid, missing, depth + 1);
                }
            }
        }
    }

    fn dir(&mut self, id: &NodeId, missing: &mut Vec<String>, depth: usize) {
        if depth > MAX_INDEX_DEPTH {
            self.corrupt
                .push(format!("node {id}: index nodes nested too deep"));
            return;
        }
        if let Some(n) = self.node(id, missing, DirNode::decode) {
            for e in &n.entries {
                self.entry(e, missing);
            }
            for p in &n.parts {
                if let Ok(pid) = NodeId::from_cid(p.1) {
                    self.dir(&pid, missing, depth + 1);
                }
            }
        }
    }
}
