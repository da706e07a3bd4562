//! A least-recently-used cache bounded by bytes, for decompressed chunks and decoded directory
//! nodes. Values are `Arc`s, so a reader keeps its bytes while the cache evicts them.

use std::hash::Hash;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use ware_store::node::DirNode;
use ware_store::{ChunkId, NodeId};

/// The caches of decompressed chunks and decoded directory nodes, each bounded by bytes. Keys
/// are content hashes, so one `Caches` can serve every mount of a process: what one mount
/// decompressed serves the next, and the budgets bound the process, not each mount.
pub struct Caches {
    pub(crate) chunks: ByteLru<ChunkId, Vec<u8>>,
    pub(crate) dirs: ByteLru<NodeId, DirNode>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (chunks, dirs) = self.used();
        f.debug_struct("Caches")
            .field("chunk_bytes", &chunks)
            .field("dir_bytes", &dirs)
            .finish()
    }
}

impl Caches {
    /// Empty caches of at most `chunk_bytes` of decompressed chunks and `dir_bytes` of decoded
    /// directory nodes (charged at twice their encoded size).
    pub fn new(chunk_bytes: u64, dir_bytes: u64) -> Arc<Caches> {
        Arc::new(Caches {
            chunks: ByteLru::new(chunk_bytes),
            dirs: ByteLru::new(dir_bytes),
        })
    }

    /// Bytes held now: (chunks, directory nodes).
    pub fn used(&self) -> (u64, u64) {
        (self.chunks.used(), self.dirs.used())
    }
}

/// A thread-safe LRU cache whose budget is a number of bytes: each value is charged a cost
/// given on insert, and the least recently used values go when the total exceeds the budget.
pub(crate) struct ByteLru<K: Hash + Eq, V> {
    inner: Mutex<Inner<K, V>>,
    budget: u64,
}

struct Inner<K: Hash + Eq, V> {
    map: LruCache<K, (Arc<V>, u64)>,
    used: u64,
}

impl<K: Hash + Eq + Clone, V> ByteLru<K, V> {
    /// An empty cache holding at most `budget` bytes (0 disables it).
    pub fn new(budget: u64) -> Self {
        ByteLru {
            inner: Mutex::new(Inner {
                map: LruCache::unbounded(),
                used: 0,
            }),
            budget,
        }
    }

    /// The value for `key`, marked as recently used.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.inner.lock().map.get(key).map(|(v, _)| v.clone())
    }

    /// Inserts a value charged `cost` bytes; values larger than the whole budget are not kept.
    pub fn insert(&self, key: K, value: Arc<V>, cost: u64) {
        if cost > self.budget {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some((_, old)) = inner.map.put(key, (value, cost)) {
            inner.used -= old;
        }
        inner.used += cost;
        while inner.used > self.budget {
            match inner.map.pop_lru() {
                Some((_, (_, c))) => inner.used -= c,
                None => break,
            }
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.inner.lock().used
    }

    /// The budget, in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c: ByteLru<u32, Vec<u8>> = ByteLru::new(10);
        c.insert(1, Arc::new(vec![0; 4]), 4);
        c.insert(2, Arc::new(vec![0; 4]), 4);
        assert!(c.get(&1).is_some()); // 1 is now more recent than 2
        c.insert(3, Arc::new(vec![0; 4]), 4);
        assert!(c.get(&2).is_none());
        assert!(c.get(&1).is_some() && c.get(&3).is_some());
        assert_eq!(c.used(), 8);
        c.insert(4, Arc::new(vec![0; 11]), 11);
        assert!(c.get(&4).is_none(), "larger than the budget");
        c.insert(1, Arc::new(vec![0; 2]), 2);
        assert_eq!(c.used(), 6);
    }
}
