//! The local store first: a node or chunk the store holds is served from it, and a ware's
//! nodes read from it teach the read-through where the ware's chunks lie in its warehouses.

use super::*;

impl Inner {
    pub(super) fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        match self.local.node(id) {
            Err(ware_store::Error::NotFound { .. }) => {}
            Ok(bytes) => {
                self.learn_locations(id, &bytes);
                return Ok(bytes);
            }
            other => return other,
        }
        let deadline = Instant::now() + self.deadline;
        let tried = self.state().tried.contains(id);
        if !tried && self.fetch_ware(id, deadline)? {
            return self.local.node(id);
        }
        let block = self.fetch_node_block(id, deadline)?;
        // A ware's root, fetched block by block (IPFS): the ware is now partly cached.
        if ware_store::node::RootNode::decode(id, &block).is_ok() {
            self.local.note_partial(id)?;
        }
        Ok(block)
    }

    /// A ware root the store holds only in part (cached by an earlier mount, in an earlier
    /// daemon): fetch its manifest once, so its missing chunks can be found. Complete wares and
    /// other nodes cost one check each, once.
    fn learn_locations(&self, id: &NodeId, bytes: &[u8]) {
        if !self.state().tried.insert(*id) {
            return;
        }
        if ware_store::node::RootNode::decode(id, bytes).is_err()
            || self.local.has_ware(id).unwrap_or(true)
        {
            return;
        }
        self.state().tried.remove(id);
        if let Err(e) = self.fetch_ware(id, Instant::now() + self.deadline) {
            // Its cached files still read; the others fail until a warehouse answers.
            tracing::warn!(ware = %id, "partly cached ware: {e}");
            self.state().tried.insert(*id);
        }
    }

    pub(super) fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        match self.local.chunk(id) {
            Err(ware_store::Error::NotFound { .. }) => {}
            other => return other,
        }
        let t = Instant::now();
        let deadline = t + self.deadline;
        let _reading = Reading::new(&self.demand_inflight);
        // Being fetched (a prefetch, another read): wait for that rather than fetch it twice.
        let got = if self.wait_started(id, deadline) {
            match self.local.chunk(id) {
                Err(ware_store::Error::NotFound { .. }) => self.fetch_chunk(id, deadline),
                other => other,
            }
        } else {
            self.fetch_chunk(id, deadline)
        };
        self.counters.waited(t.elapsed());
        got
    }
}

/// A read fetching from a warehouse, counted while it lasts.
struct Reading<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Reading<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reading(n)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
