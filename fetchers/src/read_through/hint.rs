//! Read-ahead hints of sequential readers ([`BlockSource::prefetch`]): the next chunks of the
//! file they read, fetched in the background by a few threads, those back to back in one pack
//! in one request; a full queue drops the hint. While a profile is being prefetched and every
//! read so far was of its chunks, hints are dropped: the profile knows where the job stops
//! reading, and what a sequential reader would fetch past that is never read. The first read
//! of a chunk outside the profile turns hints back on.

use std::sync::atomic::{AtomicU8, Ordering};

use super::*;

/// No profile is followed: hints are taken.
const IDLE: u8 = 0;
/// A profile is followed and every read so far was of its chunks: hints are dropped.
const HOLDING: u8 = 1;
/// A read left the profile: hints are taken again, for the rest of the mount.
const LEFT: u8 = 2;

/// The chunks of the profiles a source prefetches, and whether a read has left them. Reads
/// look at the state first, so a source that follows no profile (or was left) takes no lock
/// per read.
#[derive(Default)]
pub(super) struct Following {
    chunks: Mutex<HashSet<ChunkId>>,
    state: AtomicU8,
}

impl Following {
    /// A profile's chunks are being prefetched.
    pub(super) fn follow(&self, ids: impl IntoIterator<Item = ChunkId>) {
        let mut chunks = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
        chunks.extend(ids);
        if !chunks.is_empty() {
            let _ =
                self.state
                    .compare_exchange(IDLE, HOLDING, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A chunk is read.
    pub(super) fn read(&self, id: &ChunkId) {
        if self.state.load(Ordering::Relaxed) != HOLDING {
            return;
        }
        let chunks = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
        if !chunks.contains(id) {
            self.state.store(LEFT, Ordering::Relaxed);
            tracing::debug!(chunk = %id, "a read left the profile: reading ahead again");
        }
    }

    /// Whether hints are dropped now: a profile is followed and no read has left it.
    fn holds(&self) -> bool {
        self.state.load(Ordering::Relaxed) == HOLDING
    }
}

/// Read-ahead hints of sequential readers.
impl ReadThrough {
    /// The queue of the prefetch threads, started on first use.
    fn prefetch_queue(&self) -> Option<std::sync::mpsc::SyncSender<Job>> {
        let mut q = self.prefetch.lock().unwrap_or_else(|p| p.into_inner());
        if q.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(PREFETCH_QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            for n in 0..PREFETCHERS {
                let (inner, rx) = (self.inner.clone(), rx.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("ware-prefetch-{n}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            let Ok((id, loc, n)) = job else { return };
                            let entries = run_of(&loc, n);
                            // Read meanwhile (the reader did not wait): nothing left to do.
                            let needed = !inner.local.has_chunk(&id).unwrap_or(false);
                            if needed {
                                inner.mark_started(entries, true);
                                let got = inner.read_entries(&id, &loc, entries, Why::Readahead);
                                if let Err(e) = got {
                                    tracing::debug!(chunk = %id, "prefetch: {e}");
                                }
                                inner.mark_started(entries, false);
                            }
                            inner.forget_inflight(entries);
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("cannot start a prefetch thread: {e}");
                    return None;
                }
            }
            *q = Some(tx);
        }
        q.clone()
    }

    /// A sequential reader's hint ([`BlockSource::prefetch`]): fetches the hinted chunks the
    /// store lacks in the background, those back to back in one pack in one request of up
    /// to [`PREFETCH_SPAN`]; a full queue drops the hint.
    pub(super) fn hint(&self, ids: &[ChunkId]) {
        if self.following.holds() {
            return;
        }
        let mut jobs: Vec<Job> = Vec::new();
        {
            let state = self.inner.state();
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // The hinted chunks only; those back to back in one pack make one request.
            let mut want: Vec<Location> = Vec::new();
            for id in ids {
                if inflight.contains(id) || self.inner.local.has_chunk(id).unwrap_or(true) {
                    continue;
                }
                let Some(loc) = state.chunks.get(id) else {
                    continue;
                };
                inflight.insert(*id);
                want.push(loc.clone());
            }
            want.sort_by(|a, b| (a.warehouse, &*a.pack, a.at).cmp(&(b.warehouse, &*b.pack, b.at)));
            want.dedup_by(|b, a| a.warehouse == b.warehouse && a.pack == b.pack && a.at == b.at);
            let mut i = 0;
            while i < want.len() {
                let head = &want[i];
                let first = &head.by_offset[head.at];
                let start = first.offset;
                let mut end = start.saturating_add(u64::from(first.stored_len));
                let mut n = 1;
                while let Some(next) = want.get(i + n) {
                    let Some(e) = head.by_offset.get(head.at + n) else {
                        break;
                    };
                    let e_end = e.offset.saturating_add(u64::from(e.stored_len));
                    if next.warehouse != head.warehouse
                        || next.pack != head.pack
                        || next.at != head.at + n
                        || e.offset != end
                        || e_end - start > PREFETCH_SPAN
                    {
                        break;
                    }
                    end = e_end;
                    n += 1;
                }
                jobs.push((first.chunk, head.clone(), n));
                i += n;
            }
        }
        if jobs.is_empty() {
            return;
        }
        let Some(q) = self.prefetch_queue() else {
            return;
        };
        for (id, loc, n) in jobs {
            if q.try_send((id, loc.clone(), n)).is_err() {
                // Queue full: forget the hint, and let the chunks be fetched when read.
                self.inner.forget_inflight(run_of(&loc, n));
            }
        }
    }
}
