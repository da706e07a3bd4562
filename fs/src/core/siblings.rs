//! Reading ahead without a profile: a file opened for the first time is fetched whole if it
//! is not large ([`crate::MountConfig::opened_bytes`], as CernVM-FS fetches whole files), and
//! the first time a file of a directory is opened, the source is told of the small files
//! beside it ([`crate::MountConfig::siblings_bytes`]); opening one it was not told of tells it
//! of the next ones, from there.
//! A program that opens one file of a directory often opens its neighbours next (an
//! interpreter importing a package's modules, a loader its libraries), and a warehouse's packs
//! hold a directory's files back to back, so they arrive in a few range requests instead of
//! one round trip each. Only a hint: the source fetches what it lacks in the background, and
//! a read never waits for it.

use std::collections::{HashMap, HashSet};

use super::*;

/// Files larger than this are not read ahead for their neighbours: a large file is read by
/// whoever opens it (with the sequential read-ahead), or not at all.
pub(crate) const SIBLING_FILE_MAX: u64 = 256 << 10;

/// The budget per hint, the largest file fetched whole when opened, and per directory (by
/// node ID: a directory shared by several wares or paths is one) the names already opened or
/// hinted, each hinted at most once.
#[derive(Default)]
pub(crate) struct Siblings {
    pub(crate) bytes: u64,
    pub(crate) opened: u64,
    dirs: Mutex<HashMap<NodeId, HashSet<Vec<u8>>>>,
}

impl Siblings {
    pub(crate) fn new(bytes: u64, opened: u64) -> Self {
        Siblings {
            bytes,
            opened,
            dirs: Mutex::new(HashMap::new()),
        }
    }
}

impl Core {
    /// Tells the source of every chunk of a file just opened for the first time (its chunk
    /// map new), if it is at most the budget for opened files: a program that opens a file
    /// mostly reads it, and not always in order (a loader maps a library and touches its pages
    /// where it needs them), so its chunks come in parallel range requests, not one window
    /// per miss.
    pub(super) fn hint_opened(&self, ware: &WareCtx, map: &ChunkMap) {
        if self.siblings.opened == 0 || ware.foreign || map.size() > self.siblings.opened {
            return;
        }
        let ids: Vec<ChunkId> = map.chunks.iter().filter_map(|c| c.id().ok()).collect();
        if ids.len() > 1 {
            self.src.prefetch(&ids);
        }
    }

    /// Tells the source of the small files beside `node` (just opened), in name order from
    /// it on, round to the start, up to the budget, unless it was hinted itself: the first
    /// open in a directory hints its neighbours, and each open of a file not hinted (the
    /// program went past the guess: a package's modules are not opened in name order) hints
    /// the next ones from there. No file is hinted twice.
    pub(super) fn hint_siblings(&self, node: &Node, ware: &WareCtx) {
        if self.siblings.bytes == 0 || ware.foreign {
            return;
        }
        let Ok(parent) = self.node(node.parent) else {
            return;
        };
        let NodeKind::Ware { entry: dir, .. } = &parent.kind else {
            return;
        };
        let Ok(dir_id) = dir.dir_id() else {
            return;
        };
        if !self
            .siblings
            .dirs
            .lock()
            .entry(dir_id)
            .or_default()
            .insert(node.name.clone())
        {
            return;
        }
        let Ok(entries) = self.list(ware, dir) else {
            return;
        };
        let mut dirs = self.siblings.dirs.lock();
        let known = dirs.entry(dir_id).or_default();
        let at = entries.partition_point(|e| e.name.as_slice() < node.name.as_slice());
        let (before, after) = entries.split_at(at);
        let mut ids: Vec<ChunkId> = Vec::new();
        let mut total = 0u64;
        for e in after.iter().chain(before) {
            if total >= self.siblings.bytes {
                break;
            }
            let small = e.kind == Kind::File
                && e.inline.is_none()
                && e.size > 0
                && e.size <= SIBLING_FILE_MAX
                && !e.chunks.is_empty();
            if !small || known.contains(e.name.as_slice()) {
                continue;
            }
            known.insert(e.name.to_vec());
            total += e.size;
            ids.extend(e.chunks.iter().filter_map(|c| c.id().ok()));
        }
        drop(dirs);
        if !ids.is_empty() {
            tracing::debug!(
                ware = %ware.id,
                dir = self.path(&parent),
                "reading ahead {} chunks of {total} bytes beside {}",
                ids.len(),
                String::from_utf8_lossy(&node.name)
            );
            self.src.prefetch(&ids);
        }
    }
}
