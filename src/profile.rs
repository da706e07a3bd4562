//! Learning access profiles (docs/FORMAT.md, "Profiles"): a [`Recorder`] sits over the block
//! source a mount reads and notes each node and chunk the first time it is read (or served
//! from the mount's caches); when the mount ends, [`Recording`] merges what it saw into the
//! ware's profile in the store. `fs` knows nothing of it: it reads a `BlockSource`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ware_store::db::Store;
use ware_store::profile::{PROFILE_MAX_BLOCKS, Profile};
use ware_store::{BlockSource, ChunkId, Cid, ForeignTree, NodeId, WareId};

/// The key of a ware's own profile.
pub fn ware_key(id: &WareId) -> String {
    format!("ware:{id}")
}

/// Notes first reads, in order, of what passes through to `inner`.
pub struct Recorder {
    inner: Arc<dyn BlockSource>,
    seen: Mutex<(HashSet<Cid>, Vec<Cid>)>,
}

impl Recorder {
    /// A recorder over `inner`, having seen nothing.
    pub fn new(inner: Arc<dyn BlockSource>) -> Self {
        Recorder {
            inner,
            seen: Mutex::new((HashSet::new(), Vec::new())),
        }
    }

    fn note(&self, cid: Cid) {
        let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a profile holds at most PROFILE_MAX_BLOCKS; later reads are not kept.
        if s.1.len() < PROFILE_MAX_BLOCKS && s.0.insert(cid) {
            s.1.push(cid);
        }
    }

    /// What was read so far, in first-read order.
    pub fn reads(&self) -> Vec<Cid> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

impl BlockSource for Recorder {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        let r = self.inner.node(id)?;
        self.note(id.0);
        Ok(r)
    }
    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        let r = self.inner.chunk(id)?;
        self.note(id.to_cid());
        Ok(r)
    }
    fn stored_chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        let r = self.inner.stored_chunk(id)?;
        self.note(id.to_cid());
        Ok(r)
    }
    fn prefetch(&self, ids: &[ChunkId]) {
        self.inner.prefetch(ids)
    }
    fn note_cached(&self, cid: &Cid) {
        self.note(*cid);
        self.inner.note_cached(cid)
    }
    fn block(&self, cid: &Cid) -> ware_store::Result<Vec<u8>> {
        self.inner.block(cid)
    }
    fn foreign(&self) -> Option<&dyn ForeignTree> {
        self.inner.foreign()
    }
}

/// A mount's recording: when dropped (the mount ended), what it read goes into the ware's
/// profile (merged with the one the store holds). A failure is logged, never fatal: a profile
/// is a hint.
pub struct Recording {
    store: Arc<Store>,
    ware: WareId,
    recorder: Arc<Recorder>,
}

impl Recording {
    /// Records the reads of a mount of `ware`; the mount reads through the source returned.
    pub fn start(
        store: Arc<Store>,
        ware: WareId,
        src: Arc<dyn BlockSource>,
    ) -> (Recording, Arc<dyn BlockSource>) {
        let recorder = Arc::new(Recorder::new(src));
        let rec = Recording {
            store,
            ware,
            recorder: recorder.clone(),
        };
        (rec, recorder)
    }

    /// Merges the reads into the store's profile of the ware; returns how many blocks it lists.
    pub fn keep(&self) -> anyhow::Result<Option<usize>> {
        let reads = self.recorder.reads();
        if reads.is_empty() {
            return Ok(None);
        }
        let key = ware_key(&self.ware);
        let old = match self.store.profile(&key)? {
            Some(s) => match s.profile {
                Ok(p) if p.ware == self.ware.0 => Some(p),
                Ok(_) => {
                    tracing::warn!("profile {key} names another ware; starting it anew");
                    None
                }
                Err(e) => {
                    tracing::warn!("{e}; starting the profile anew");
                    None
                }
            },
            None => None,
        };
        let p = match old {
            Some(old) => old.merge(&reads),
            None => Profile::first(self.ware.0, &reads),
        };
        let n = p.blocks.len();
        let id = self.store.put_profile(&key, &p)?;
        tracing::info!(
            "profile {key}: {} blocks read, {n} kept after {} recordings ({id})",
            reads.len(),
            p.runs
        );
        Ok(Some(n))
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Err(e) = self.keep() {
            tracing::warn!("keeping the profile of {}: {e:#}", self.ware);
        }
    }
}
