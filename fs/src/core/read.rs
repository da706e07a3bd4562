//! Reading files: open, read (through the shared chunk cache, one fetch per chunk however
//! many readers), prefetch ahead of sequential readers, release.

use super::*;

impl Core {
    /// Opens a file for reading; returns the handle.
    pub(crate) fn open(&self, ino: u64, write: bool) -> R<u64> {
        if write {
            return Err(Fault::ReadOnly);
        }
        let node = self.node(ino)?;
        let NodeKind::Ware { ware, entry, map } = &node.kind else {
            return Err(Fault::IsDir);
        };
        match entry.kind {
            Kind::File => {}
            Kind::Dir => return Err(Fault::IsDir),
            _ => return Err(Fault::Invalid),
        }
        let chunk_map = if ware.foreign || entry.inline.is_some() || entry.size == 0 {
            None
        } else {
            let mut shared = map.lock();
            match shared.upgrade() {
                Some(m) => Some(m),
                None => {
                    let chunks = self.file_chunks(ware, entry).map_err(|e| {
                        ware_fault(&ware.id, &self.path(&node), "file chunk list", &e)
                    })?;
                    let m = Arc::new(ChunkMap::new(chunks));
                    if m.size() != entry.size {
                        tracing::error!(
                            ware = %ware.id,
                            path = self.path(&node),
                            "chunks add up to {} bytes, the entry says {}",
                            m.size(),
                            entry.size
                        );
                        return Err(Fault::Io);
                    }
                    *shared = Arc::downgrade(&m);
                    self.hint_opened(ware, &m);
                    Some(m)
                }
            }
        };
        if chunk_map.is_some() {
            self.hint_siblings(&node, ware);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(
            fh,
            Handle::File {
                node: node.clone(),
                map: chunk_map,
                next: Arc::new(AtomicU64::new(0)),
            },
        );
        Ok(fh)
    }

    /// Up to `size` bytes from `offset`; short only at the end of the file.
    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> R<ReadData> {
        let (node, map, next) = match self.handles.lock().get(&fh) {
            Some(Handle::File { node, map, next }) => (node.clone(), map.clone(), next.clone()),
            _ => return Err(Fault::BadHandle),
        };
        let NodeKind::Ware { ware, entry, .. } = &node.kind else {
            return Err(Fault::BadHandle);
        };
        if ware.foreign {
            let tree = self.foreign().ok_or(Fault::Io)?;
            return tree
                .read(entry, offset, size)
                .map(ReadData::Owned)
                .map_err(|e| ware_fault(&ware.id, &self.path(&node), "read", &e));
        }
        if let Some(d) = &entry.inline {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
            let end = start.saturating_add(size as usize).min(d.len());
            return Ok(ReadData::Owned(d[start..end].to_vec()));
        }
        let Some(map) = map else {
            return Ok(ReadData::Owned(Vec::new()));
        };
        let end = offset.saturating_add(u64::from(size)).min(map.size());
        if offset >= end {
            return Ok(ReadData::Owned(Vec::new()));
        }
        let mut i = map.ends.partition_point(|&e| e <= offset);
        // A read that goes on where the last one stopped is a sequential reader: ask for what
        // follows. (Not on open, nor on scattered reads: programs open many files and read
        // little of each, and a capped link pays for every byte fetched ahead.)
        if offset > 0 && next.swap(end, Ordering::Relaxed) == offset {
            self.prefetch(&map, end);
        } else {
            next.store(end, Ordering::Relaxed);
        }
        if i < map.chunks.len() && end <= map.ends[i] {
            // Within one chunk (the common case): answer from the cached chunk, no copy.
            let data = self.chunk(&node, ware, &map.chunks[i])?;
            let start = map.start(i);
            let range = (offset - start) as usize..(end - start) as usize;
            return Ok(ReadData::Slice(data, range));
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end && i < map.chunks.len() {
            let data = self.chunk(&node, ware, &map.chunks[i])?;
            let start = map.start(i);
            let from = (pos - start) as usize;
            let to = ((end.min(map.ends[i])) - start) as usize;
            out.extend_from_slice(&data[from..to]);
            pos = start + to as u64;
            i += 1;
        }
        Ok(ReadData::Owned(out))
    }

    /// Hints the source about the chunks of up to [`PREFETCH_BYTES`] from `from` on.
    fn prefetch(&self, map: &ChunkMap, from: u64) {
        let first = map.ends.partition_point(|&e| e <= from);
        let limit = from.saturating_add(PREFETCH_BYTES);
        let ids: Vec<ChunkId> = (first..map.chunks.len())
            .take_while(|&i| map.start(i) < limit)
            .filter_map(|i| map.chunks[i].id().ok())
            .collect();
        if !ids.is_empty() {
            self.src.prefetch(&ids);
        }
    }

    pub(crate) fn release(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }
}
